"""The LLM planner only ever adds: its edits are validated as a set (repeats collapse, contradictory pairs are
refused, a camera edit needs the words of its move, a seed edit a seed word); the fixed prompt is prefilled at
load, outside the first turn's deadline; and a generation that outlives its deadline never aborts the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from agent.compiler import default_plan
from agent.edits import ScaleMotion, SetCamera, SetDuration, SetSeed
from agent.llm import HybridPlanner, LLMConfig, LLMPlanner, unload_all
from agent.llm.decoding import finish_generations
from agent.llm.grounding import is_grounded
from agent.llm.planner import as_a_set
from agent.rules import RulePlanner
from tests.agent.llm_fixtures import HangingModel, ScriptedModel, build_tokenizer

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


@pytest.fixture(autouse=True)
def _clean(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for name in LLMConfig.env_names.values():
        monkeypatch.delenv(name, raising=False)
    unload_all()
    yield
    unload_all()


def scripted(tokenizer, answer: str, **settings) -> LLMPlanner:
    model = ScriptedModel(tokenizer, answer)
    return LLMPlanner(LLMConfig(model=f"stub-{id(model)}", **settings), loader=lambda cfg: (model, tokenizer))


SLOWER_HAIR = '{"op":"scale_motion","subject":"hair","speed_factor":0.6,"intensity_factor":1}'


# --- edits as a set -------------------------------------------------------------------------------------------

def test_three_identical_slowdowns_are_one(tokenizer):
    out = scripted(tokenizer, f"[{SLOWER_HAIR},{SLOWER_HAIR},{SLOWER_HAIR}]", max_edits=4).propose(
        "slower hair", default_plan("fashion", seed=1))
    assert out.ok and out.edits == [ScaleMotion(subject="hair", speed_factor=0.6)]


def test_a_contradictory_pair_is_refused_and_the_rest_kept(tokenizer):
    answer = ('[{"op":"set_camera","move":"zoom_in","speed":null},{"op":"set_duration","seconds":4},'
              '{"op":"set_camera","move":"zoom_out","speed":null}]')
    out = scripted(tokenizer, answer, max_edits=4).propose("zoom in, 4 seconds, zoom out",
                                                           default_plan("fashion", seed=1))
    assert out.ok and out.edits == [SetDuration(seconds=4)]
    assert {e.move for e in out.dropped} == {"zoom_in", "zoom_out"}


def test_as_a_set_directly():
    kept, refused = as_a_set([ScaleMotion(subject="hair", speed_factor=0.6), ScaleMotion(subject="hair",
                                                                                        speed_factor=1.6)])
    assert kept == [] and len(refused) == 2


@pytest.mark.parametrize("edit,message,grounded", [
    (SetCamera(move="pan_left"), "pan left please", True),
    (SetCamera(move="pan_left"), "move the camera a bit", False),  # "camera" alone names no move
    (SetCamera(move="pan_right"), "pan left please", False),
    (SetCamera(move="zoom_in"), "zoom out", False),
    (SetCamera(move="zoom_out"), "zoom out", True),
    (SetCamera(move="static"), "keep the camera still", True),
    (SetCamera(move="orbit_right"), "orbit to the left", False),
    (SetSeed(policy="new"), "slower hair", False),
    (SetSeed(policy="new"), "same as before", False),
    (SetSeed(policy="new"), "another variation", True),
    (SetSeed(policy="new"), "try again", True),
])
def test_camera_and_seed_edits_need_their_words(edit, message, grounded):
    assert is_grounded(edit, message) is grounded


def test_an_invented_camera_move_and_seed_are_dropped(tokenizer):
    answer = ('[{"op":"set_duration","seconds":4},{"op":"set_camera","move":"pan_left","speed":null},'
              '{"op":"seed","policy":"new","value":null}]')
    out = scripted(tokenizer, answer, max_edits=4).propose("make it 4 seconds", default_plan("fashion", seed=1))
    assert out.edits == [SetDuration(seconds=4)] and len(out.dropped) == 2


# --- load and prefill outside the deadline ---------------------------------------------------------------------

def test_the_timeout_counts_only_decoding_and_the_reply_says_the_load_time(tokenizer):
    model = ScriptedModel(tokenizer, "[" + SLOWER_HAIR + "]")

    def slow_loader(config):
        time.sleep(0.6)  # loading (and prefilling) takes longer than the whole timeout
        return model, tokenizer

    llm = LLMPlanner(LLMConfig(model="stub-slow-load", timeout_s=0.5, mode="always"), loader=slow_loader)
    out = llm.propose("slower hair", default_plan("fashion", seed=1))
    assert out.ok and out.load_s >= 0.6 and out.elapsed_s < 0.5
    result = HybridPlanner(RulePlanner(), llm).parse("slower hair please", default_plan("fashion", seed=1))
    assert not any("loaded in" in n for n in result.notes)  # loaded once: the next turn does not say it again


def test_load_prefills_the_fixed_prompt(tmp_path):
    from devtools.tiny_qwen import build_tiny_qwen

    from agent.llm.loading import _STATE

    llm = LLMPlanner(LLMConfig(model=str(build_tiny_qwen(tmp_path))))
    took = llm.load()
    loaded = _STATE["loaded"]
    assert took > 0 and any(isinstance(k, tuple) and k[0] == "prefix" for k in loaded.cache)
    assert any(isinstance(k, tuple) and k[0] == "matcher" for k in loaded.cache)


# --- a generation that outlives its deadline ---------------------------------------------------------------------

def test_a_timed_out_generation_is_cancelled_and_waited_for(tokenizer):
    model = HangingModel(tokenizer)
    llm = LLMPlanner(LLMConfig(model="stub-hanging", timeout_s=0.1), loader=lambda cfg: (model, tokenizer))
    out = llm.propose("slower hair", default_plan("fashion", seed=1))
    assert out.status == "timeout"
    assert finish_generations(5.0) and model.finished.is_set()


CLI_SCRIPT = textwrap.dedent("""
    import sys
    sys.path.insert(0, {root!r})
    import agent.llm.decoding as decoding
    import agent.llm.planner as planner
    from tests.agent.llm_fixtures import HangingModel, StuckModel, build_tokenizer
    tokenizer = build_tokenizer()
    model = {model}(tokenizer)
    planner.load_model_and_tokenizer = lambda config: (model, tokenizer)
    decoding.finish_generations.__defaults__ = ({exit_wait},)
    from agent.__main__ import main
    code = main(["plan", "--planner", "qwen", "--model", "stub", "--rng-seed", "1"])
    print("finished" if getattr(model, "finished", None) is not None and model.finished.is_set() else "running",
          file=sys.stderr)
    sys.exit(code)
""")


@pytest.mark.parametrize("model", ["HangingModel", "StuckModel"])
def test_the_cli_exits_0_after_a_generation_timeout(model):
    """A model that stops when cancelled is waited for; one that ignores every stop ends the process cleanly
    (exit 0 with every answer printed) instead of the abort (134) of a thread still running at exit."""
    env = {"HF_HUB_OFFLINE": "1", "VIVIDFLOW_LLM_TIMEOUT_S": "0.2", "VIVIDFLOW_LLM_MODE": "always",
           "PATH": "/usr/bin:/bin"}
    turns = {"turns": ["slower hair", "make it 4 seconds"], "template": "fashion"}
    script = CLI_SCRIPT.format(root=str(ROOT), model=model, exit_wait=30.0 if model == "HangingModel" else 0.5)
    out = subprocess.run([sys.executable, "-c", script],
                         input=json.dumps(turns), cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(lines) == 2 and lines[1]["plan"]["duration_s"] == 4.0
    assert "took too long" in lines[0]["reply"]
    if model == "HangingModel":
        assert "finished" in out.stderr
