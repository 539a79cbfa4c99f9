"""`python -m agent plan`: the stdin/stdout contract, reproducibility, errors, and no torch on this path."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import types
from pathlib import Path

import pytest

from agent import __main__ as cli
from agent.edits import ParseResult, SetDuration
from agent.plan import MotionPlan

ROOT = Path(__file__).resolve().parents[2]
ISSUE_TURNS = ["make her hair flow in the wind, slow zoom in", "slower hair, same seed", "make it 12 seconds"]


def run_cli(payload, *args, timeout=60):
    data = payload if isinstance(payload, str) else json.dumps(payload)
    return subprocess.run([sys.executable, "-m", "agent", "plan", *args], input=data, capture_output=True,
                          text=True, cwd=ROOT, timeout=timeout)


def lines(out):
    return [json.loads(line) for line in out.strip().splitlines()]


def test_contract_one_json_line_per_turn():
    p = run_cli({"turns": ISSUE_TURNS, "template": None}, "--rng-seed", "7")
    assert p.returncode == 0, p.stderr
    out = lines(p.stdout)
    assert len(out) == 3 and all(set(d) == {"plan", "reply"} for d in out)
    plans = [MotionPlan.from_dict(d["plan"]) for d in out]
    assert plans[0].motion("hair") and plans[0].camera.move == "zoom_in" and plans[0].camera.speed < 1
    assert "wind" in plans[0].atmosphere
    assert plans[1].motion("hair").speed < plans[0].motion("hair").speed and plans[1].seed == plans[0].seed
    assert plans[1].camera == plans[0].camera and plans[1].duration_s == plans[0].duration_s
    assert plans[2].duration_s == 12.0 and "3 segments" in out[2]["reply"]  # up to 30 s, chained (#12 §2)
    assert out[0]["plan"]["num_frames"] == 49 and out[2]["plan"]["num_frames"] == 193


def test_reproducible_with_rng_seed_and_random_without():
    a = run_cli({"turns": ["a dog", "new seed"]}, "--rng-seed", "3").stdout
    b = run_cli({"turns": ["a dog", "new seed"]}, "--rng-seed", "3").stdout
    c = run_cli({"turns": ["a dog", "new seed"]}, "--rng-seed", "4").stdout
    assert a == b and a != c


def test_template_from_stdin_is_locked():
    out = lines(run_cli({"turns": ["a dog wagging its tail"], "template": "landscape"}, "--rng-seed", "1").stdout)
    assert out[0]["plan"]["template"] == "landscape"


def test_gibberish_gives_a_valid_plan():
    out = lines(run_cli({"turns": ["qqq zzz"]}, "--rng-seed", "1").stdout)
    MotionPlan.from_dict(out[0]["plan"])
    assert "what should move" in out[0]["reply"]


@pytest.mark.parametrize("payload,message", [
    ("not json", "not valid JSON"),
    ("[1, 2]", "JSON object"),
    ('{"turns": "hello"}', "list of strings"),
    ('{"turns": ["a"], "template": "nope"}', "must be null or one of"),
    ('{"turns": ["a"], "extra": 1}', "unknown keys"),
])
def test_bad_input_exits_2_with_a_message(payload, message):
    p = run_cli(payload)
    assert p.returncode == 2 and message in p.stderr and p.stdout == ""


def test_qwen_needs_a_model():
    p = run_cli({"turns": ["a"]}, "--planner", "qwen")
    assert p.returncode == 2 and "--model" in p.stderr


def run_main(monkeypatch, capsys, payload, *args):
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(payload)))
    rc = cli.main(["plan", *args])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def test_qwen_uses_the_llm_make_planner(monkeypatch, capsys):
    calls = []

    class Fake:
        name = "fake-llm"

        def parse(self, message, plan, *, history=(), template_locked=False):
            return ParseResult(edits=[SetDuration(seconds=2)], planner="hybrid")

    def make_planner(model=None, gguf_file=None):
        calls.append((model, gguf_file))
        return Fake()

    monkeypatch.setitem(sys.modules, "agent.llm", types.SimpleNamespace(make_planner=make_planner))
    rc, out, err = run_main(monkeypatch, capsys, {"turns": ["anything"]}, "--planner", "qwen", "--model", "/m",
                            "--gguf-file", "f.gguf", "--explain", "--rng-seed", "1")
    assert rc == 0, err
    line = json.loads(out)
    assert calls == [("/m", "f.gguf")] and line["plan"]["duration_s"] == 2.0 and line["planner"] == "hybrid"
    assert line["edits"] == [{"op": "set_duration", "seconds": 2.0}]


def test_qwen_without_the_llm_module_is_a_clear_error(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "agent.llm", None)
    rc, out, err = run_main(monkeypatch, capsys, {"turns": ["a"]}, "--planner", "qwen", "--model", "/m")
    assert rc == 2 and "agent/llm" in err and out == ""
