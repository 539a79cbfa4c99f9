"""The command lines' bad-input corpus (issue #11): every case is refused with its exit status and one clear line
on stderr, no traceback anywhere, and nothing written — no --out file, no temporary file, no generation recorded.

Most cases run in this process through each CLI's wrapped `main(argv)` (the same boundary `python -m …` uses);
a few real processes check what only a process shows: /dev/urandom and a FIFO refused at once, and Ctrl-C
during a render (exit 130, the job cancelled, nothing left behind). Storage faults have their own corpus.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import signal
import sqlite3
import struct
import subprocess
import sys
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from PIL import Image

from agent.__main__ import main as agent_main
from agent.plan import MotionPlan
from generation.__main__ import main as generation_main
from storage.__main__ import main as storage_main
from vividflow.boundary import run_cli
from vividflow.cli import main as vividflow_main

REPO = Path(__file__).resolve().parents[1]
GOOD_PLAN = MotionPlan.create(template="animals", duration_s=0.5, seed=3,
                              motions=[{"subject": "tail", "action": "wag"}]).to_dict()
GOOD_PLAN.pop("num_frames")  # derived from duration_s; the cases that change the duration leave it out
MAINS = {"generation": generation_main, "agent": agent_main, "storage": storage_main, "vividflow": vividflow_main}
PROGS = {"generation": "python -m generation", "agent": "python -m agent", "storage": "python -m storage",
         "vividflow": "vividflow"}
MAX_LINE = 500  # a message quotes at most ~80 characters of a bad value; paths of the test folder add the rest


@dataclass(frozen=True)
class Case:
    id: str
    tool: str
    argv: tuple[str, ...]
    message: str  # a piece of the one line on stderr
    code: int = 2
    usage: bool = False  # argparse's refusal: its usage line(s), then `prog: error: …`
    files: dict[str, bytes | str] = field(default_factory=dict)  # written into the test folder first
    stdin: str | None = None
    env: dict[str, str] = field(default_factory=dict)


def plan_with(**changes) -> str:
    return json.dumps({**GOOD_PLAN, **changes})


def plan_without(key: str) -> str:
    return json.dumps({k: v for k, v in GOOD_PLAN.items() if k != key})


def render(plan: str | bytes, message: str, id: str, *extra: str) -> Case:
    """`render --image {image} --plan {tmp}/plan.json` with this plan file."""
    return Case(id, "generation", ("render", "--image", "{image}", "--plan", "{tmp}/plan.json", "--out",
                                   "{tmp}/out/clip.mp4", *extra), message, files={"plan.json": plan})


def png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def image_bytes(size: tuple[int, int], fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (120, 80, 40)).save(buf, fmt)
    return buf.getvalue()


HUGE_KEY = "k" * 900_000
PLAN_CASES = [
    # the JSON itself
    render("not json", "--plan is not valid JSON", "plan-not-json"),
    render("", "--plan is not valid JSON", "plan-empty-file"),
    render("{", "--plan is not valid JSON", "plan-truncated"),
    render("[1, 2]", "a plan must be a JSON object, got list", "plan-array"),
    render('"a plan"', "a plan must be a JSON object, got str", "plan-string"),
    render("null", "a plan must be a JSON object, got NoneType", "plan-null"),
    render("42", "a plan must be a JSON object, got int", "plan-number"),
    render("[" * 33 + "]" * 33, "33 levels deep; at most 32", "plan-nested-33"),
    render("[" * 50_000 + "]" * 50_000, "far too deep", "plan-nested-50000"),
    render('{"template": "animals", "x": ' + "[" * 40 + "]" * 40 + "}", "41 levels deep", "plan-nested-inside"),
    render('"' + "a" * (1 << 20) + '"', "at most 1.0 MB", "plan-over-1mb"),
    render(b"\xff\xfe{}", "is not UTF-8 text", "plan-not-utf8"),
    render(b'{"template": "anim\xc3"}', "is not UTF-8 text", "plan-bad-utf8-inside"),
    render("{\"template\": \"animals\"} trailing", "--plan is not valid JSON", "plan-trailing-garbage"),
    render(json.dumps({**GOOD_PLAN, HUGE_KEY: 1}), "Extra inputs are not permitted", "plan-900kb-unknown-key"),
    render(json.dumps({f"bad{i}": i for i in range(50)}), "and 46 more", "plan-50-errors"),
    # fields and their types
    render(plan_without("template"), "template: Field required", "plan-no-template"),
    render(plan_with(template="cartoon"), "template: Input should be", "plan-unknown-template"),
    render(plan_with(template=7), "template: Input should be", "plan-template-number"),
    render(plan_with(seed=True), "seed: must be a number, not true", "plan-seed-true"),
    render(plan_with(seed=False), "seed: must be a number, not false", "plan-seed-false"),
    render(plan_with(steps=True), "steps: must be a number, not true", "plan-steps-true"),
    render(plan_with(duration_s=True), "duration_s: must be a number, not true", "plan-duration-true"),
    render(plan_with(steps="four"), "steps: Input should be a valid integer", "plan-steps-word"),
    render(plan_with(steps=4.5), "steps: Input should be a valid integer", "plan-steps-fraction"),
    render(plan_with(steps=3), "allowed range 4–50", "plan-steps-below"),
    render(plan_with(steps=51), "allowed range 4–50", "plan-steps-above"),
    render(plan_with(steps=10**30), "steps", "plan-steps-huge"),
    render(plan_with(seed=-1), "allowed range 0–2147483647", "plan-seed-negative"),
    render(plan_with(seed=2**31), "allowed range 0–2147483647", "plan-seed-too-big"),
    render(plan_with(duration_s=0), "allowed range 0.5–30", "plan-duration-zero"),
    render(plan_with(duration_s=600), "allowed range 0.5–30", "plan-duration-long"),
    render('{"template": "animals", "duration_s": NaN}', "duration_s", "plan-duration-nan"),
    render('{"template": "animals", "duration_s": Infinity}', "duration_s", "plan-duration-infinity"),
    render(plan_with(guidance_scale=-1), "allowed range 0–20", "plan-guidance-negative"),
    render(plan_with(guidance_scale_2=21), "allowed range 0–20", "plan-guidance2-high"),
    render(plan_with(fps=24), "fps: Input should be 16", "plan-fps-24"),
    render(plan_with(num_frames=10), "num_frames = 10 does not match duration_s", "plan-num-frames-mismatch"),
    render(plan_with(seed_policy="always"), "seed_policy: Input should be", "plan-seed-policy"),
    # text bounds
    render(plan_with(atmosphere=["x" * 121]), "atmosphere.0: String should have at most 120 characters",
           "plan-atmosphere-121-chars"),
    render(plan_with(atmosphere=["fog"] * 9), "atmosphere: Tuple should have at most 8 items", "plan-atmosphere-9"),
    render(plan_with(atmosphere="fog"), "atmosphere: Input should be a valid tuple", "plan-atmosphere-string"),
    render(plan_with(atmosphere=[1]), "atmosphere.0: Input should be a valid string", "plan-atmosphere-number"),
    render(plan_with(negative_terms=["n" * 121]), "negative_terms.0: String should have at most 120",
           "plan-negative-121-chars"),
    render(plan_with(negative_terms=["hands"] * 17), "negative_terms: Tuple should have at most 16 items",
           "plan-negative-17"),
    render(plan_with(prompt_override="p" * 2001), "prompt_override: String should have at most 2000",
           "plan-typed-prompt-2001"),
    render(plan_with(prompt="p" * 2001), "prompt: String should have at most 2000", "plan-prompt-2001"),
    render(plan_with(negative_prompt="n" * 2001), "negative_prompt: String should have at most 2000",
           "plan-negative-prompt-2001"),
    # motions and camera
    render(plan_with(motions=[{"subject": "tentacle", "action": "wave"}]), "motions.0.subject",
           "plan-unknown-subject"),
    render(plan_with(motions=[{"subject": "tail", "action": "wag"}] * 2), "each subject may appear once",
           "plan-duplicate-subject"),
    render(plan_with(motions=[{"subject": "tail", "action": ""}]), "motions.0.action", "plan-empty-action"),
    render(plan_with(motions=[{"subject": "tail", "action": "w" * 61}]), "motions.0.action: String should have at most",
           "plan-long-action"),
    render(plan_with(motions=[{"subject": "tail", "action": "wag", "speed": True}]), "motions.0.speed: must be a number",
           "plan-motion-speed-true"),
    render(plan_with(motions=[{"subject": "tail", "action": "wag", "intensity": 2}]), "allowed range 0–1",
           "plan-motion-intensity"),
    render(plan_with(motions={"subject": "tail"}), "motions: Input should be a valid tuple", "plan-motions-object"),
    render(plan_with(camera={"move": "barrel_roll"}), "camera.move: Input should be", "plan-camera-move"),
    render(plan_with(camera={"move": "zoom_in", "speed": 0}), "allowed range 0.05–5", "plan-camera-speed"),
    render(plan_with(camera={"move": "zoom_in", "roll": 1}), "camera.roll: Extra inputs", "plan-camera-extra"),
    # the command's own numbers
    render(json.dumps(GOOD_PLAN), "seed", "seed-flag-negative", "--seed", "-4"),
]

PATH_CASES = [
    Case("plan-missing", "generation", ("render", "--image", "{image}", "--plan", "{tmp}/nope.json"),
         "--plan file not found"),
    Case("plan-is-a-folder", "generation", ("render", "--image", "{image}", "--plan", "{tmp}"), "is a folder"),
    Case("plan-dev-urandom", "generation", ("render", "--image", "{image}", "--plan", "/dev/urandom"), "is a device"),
    Case("plan-dev-zero", "generation", ("render", "--image", "{image}", "--plan", "/dev/zero"), "is a device"),
    Case("plan-dev-null", "generation", ("render", "--image", "{image}", "--plan", "/dev/null"), "is a device"),
    Case("plan-fifo", "generation", ("render", "--image", "{image}", "--plan", "{fifo}"), "is a FIFO"),
    Case("plan-link-to-urandom", "generation", ("render", "--image", "{image}", "--plan", "{tmp}/link.json"),
         "is a device"),
    Case("plan-empty-path", "generation", ("render", "--image", "{image}", "--plan", ""), "--plan file not found"),
    Case("plan-long-path", "generation", ("render", "--image", "{image}", "--plan", "/" + "d" * 5000),
         "--plan"),
    Case("plan-stdin-not-json", "generation", ("render", "--image", "{image}", "--plan", "-"),
         "--plan is not valid JSON", stdin="nope"),
    Case("plan-stdin-over-1mb", "generation", ("render", "--image", "{image}", "--plan", "-"),
         "larger than 1.0 MB", stdin='"' + "a" * (1 << 20) + '"'),
    Case("plan-stdin-deep", "generation", ("render", "--image", "{image}", "--plan", "-"), "levels deep",
         stdin="[" * 40 + "]" * 40),
]

IMAGE_CASES = [
    Case("image-missing", "generation", ("render", "--image", "{tmp}/nope.png", "--plan", "{plan}"),
         "image file not found"),
    Case("image-folder", "generation", ("render", "--image", "{tmp}", "--plan", "{plan}"), "not a file"),
    Case("image-dev-urandom", "generation", ("render", "--image", "/dev/urandom", "--plan", "{plan}"), "not a file"),
    Case("image-fifo", "generation", ("render", "--image", "{fifo}", "--plan", "{plan}"), "not a file"),
    Case("image-empty", "generation", ("render", "--image", "{tmp}/empty.png", "--plan", "{plan}"),
         "not a readable image", files={"empty.png": b""}),
    Case("image-text", "generation", ("render", "--image", "{tmp}/notes.png", "--plan", "{plan}"),
         "not a readable image", files={"notes.png": "just words"}),
    Case("image-truncated", "generation", ("render", "--image", "{tmp}/cut.png", "--plan", "{plan}"),
         "corrupt or truncated", files={"cut.png": image_bytes((64, 48), "PNG")[:60]}),
    Case("image-too-small", "generation", ("render", "--image", "{tmp}/tiny.png", "--plan", "{plan}"),
         "8×8", files={"tiny.png": image_bytes((8, 8), "PNG")}),
    Case("image-unsupported-format", "generation", ("render", "--image", "{tmp}/pic.ico", "--plan", "{plan}"),
         "unsupported format", files={"pic.ico": image_bytes((32, 32), "ICO")}),
    Case("image-pixel-bomb", "generation", ("render", "--image", "{tmp}/bomb.png", "--plan", "{plan}"),
         "too large", files={"bomb.png": png_header_only(100_000, 100_000)}),
    Case("image-over-the-byte-limit", "generation", ("render", "--image", "{big}", "--plan", "{plan}"),
         "pictures up to 50 MB are accepted"),
    Case("image-long-name", "generation", ("render", "--image", "{tmp}/" + "n" * 200, "--plan", "{plan}"),
         "image file not found"),
]

OUT_CASES = [
    Case("out-existing-file", "generation", ("render", "--image", "{image}", "--plan", "{plan}", "--out", "{tmp}/old.mp4"),
         "already exists; add --force", files={"old.mp4": b"keep me"}),
    Case("out-folder", "generation", ("render", "--image", "{image}", "--plan", "{plan}", "--out", "{tmp}"),
         "is a folder"),
    Case("out-folder-force", "generation", ("render", "--image", "{image}", "--plan", "{plan}", "--out", "{tmp}",
                                            "--force"), "is a folder"),
    Case("out-dev-null", "generation", ("render", "--image", "{image}", "--plan", "{plan}", "--out", "/dev/null"),
         "is a device"),
    Case("out-dev-null-force", "generation", ("render", "--image", "{image}", "--plan", "{plan}", "--out", "/dev/null",
                                              "--force"), "is a device"),
    Case("out-inside-media", "generation", ("render", "--image", "{image}", "--plan", "{plan}", "--out",
                                            "{home}/media/x.mp4"), "inside the data folder"),
    Case("out-the-database", "generation", ("render", "--image", "{image}", "--plan", "{plan}", "--out",
                                            "{home}/vividflow.db", "--force"), "inside the data folder"),
    Case("out-parent-is-a-file", "generation", ("render", "--image", "{image}", "--plan", "{plan}", "--out",
                                                "{tmp}/old.mp4/x.mp4"), "is not a folder", files={"old.mp4": b"x"}),
    Case("out-empty", "generation", ("render", "--image", "{image}", "--plan", "{plan}", "--out", ""),
         "must be a file path"),
    Case("rerun-out-existing", "generation", ("rerun", "1", "--out", "{tmp}/old.mp4"), "no generation with id 1",
         files={"old.mp4": b"keep me"}),
]

GENERATION_CASES = [
    Case("gen-no-command", "generation", (), "the following arguments are required", usage=True),
    Case("gen-unknown-command", "generation", ("paint",), "invalid choice: 'paint'", usage=True),
    Case("render-no-plan", "generation", ("render", "--image", "{image}"), "--plan", usage=True),
    Case("render-seed-word", "generation", ("render", "--plan", "{plan}", "--seed", "abc"),
         "invalid int value", usage=True),
    Case("render-unknown-flag", "generation", ("render", "--plan", "{plan}", "--colour", "red"),
         "unrecognized arguments", usage=True),
    Case("render-unknown-backend", "generation", ("render", "--image", "{image}", "--plan", "{plan}", "--backend",
                                                  "sora"), "unknown backend 'sora'"),
    Case("render-huge-backend-name", "generation", ("render", "--image", "{image}", "--plan", "{plan}", "--backend",
                                                    "b" * 100_000), "unknown backend"),
    Case("render-words-with-preview", "generation", ("render", "--plan", "{plan}", "--backend", "preview"),
         "the preview animates a picture"),
    Case("rerun-missing", "generation", ("rerun", "99"), "no generation with id 99"),
    Case("rerun-id-word", "generation", ("rerun", "first"), "invalid int value", usage=True),
    Case("rerun-steps-word", "generation", ("rerun", "1", "--steps", "many"), "invalid int value", usage=True),
    Case("worker-concurrency-0", "generation", ("worker", "--concurrency", "0"), "must be at least 1", usage=True),
    Case("worker-unknown-backend", "generation", ("worker", "--backend", "sora"), "invalid choice", usage=True),
    Case("worker-lease-word", "generation", ("worker", "--lease-s", "long"), "invalid float value", usage=True),
    Case("worker-bad-lease-setting", "generation", ("worker",), "VIVIDFLOW_LEASE_S", env={"VIVIDFLOW_LEASE_S": "soon"}),
    Case("recipe-lightning-value", "generation", ("recipe", "--lightning", "yes"), "unrecognized arguments",
         usage=True),
    Case("render-bad-backend-setting", "generation", ("render", "--image", "{image}", "--plan", "{plan}"),
         "VIVIDFLOW_BACKEND", env={"VIVIDFLOW_BACKEND": "sora"}),
    Case("render-bad-crf-setting", "generation", ("render", "--image", "{image}", "--plan", "{plan}"),
         "VIVIDFLOW_CRF", env={"VIVIDFLOW_CRF": "999"}),
]

AGENT_CASES = [
    Case("agent-no-command", "agent", (), "the following arguments are required", usage=True),
    Case("agent-not-json", "agent", ("plan",), "stdin is not valid JSON", stdin="hello"),
    Case("agent-empty-stdin", "agent", ("plan",), "stdin is not valid JSON", stdin=""),
    Case("agent-array", "agent", ("plan",), "must be a JSON object", stdin="[1, 2]"),
    Case("agent-turns-string", "agent", ("plan",), "list of strings", stdin='{"turns": "hello"}'),
    Case("agent-turns-numbers", "agent", ("plan",), "list of strings", stdin='{"turns": [1, 2]}'),
    Case("agent-turns-huge-list", "agent", ("plan",), "list of strings",
         stdin=json.dumps({"turns": [0] * 100_000})),
    Case("agent-template-unknown", "agent", ("plan",), "must be null or one of",
         stdin='{"turns": ["a"], "template": "nope"}'),
    Case("agent-template-huge", "agent", ("plan",), "must be null or one of",
         stdin=json.dumps({"turns": ["a"], "template": "t" * 500_000})),
    Case("agent-unknown-key", "agent", ("plan",), "unknown keys", stdin='{"turns": ["a"], "extra": 1}'),
    Case("agent-unknown-huge-key", "agent", ("plan",), "unknown keys",
         stdin=json.dumps({"turns": ["a"], "k" * 900_000: 1})),
    Case("agent-stdin-over-1mb", "agent", ("plan",), "larger than 1.0 MB",
         stdin=json.dumps({"turns": ["a" * (1 << 20)]})),
    Case("agent-stdin-deep", "agent", ("plan",), "levels deep", stdin='{"turns": ' + "[" * 40 + "]" * 40 + "}"),
    Case("agent-input-missing", "agent", ("plan", "--input", "{tmp}/nope.json"), "--input file not found"),
    Case("agent-input-folder", "agent", ("plan", "--input", "{tmp}"), "is a folder"),
    Case("agent-input-urandom", "agent", ("plan", "--input", "/dev/urandom"), "is a device"),
    Case("agent-input-fifo", "agent", ("plan", "--input", "{fifo}"), "is a FIFO"),
    Case("agent-input-not-utf8", "agent", ("plan", "--input", "{tmp}/t.json"), "is not UTF-8 text",
         files={"t.json": b'{"turns": ["\xff"]}'}),
    Case("agent-rng-seed-word", "agent", ("plan", "--rng-seed", "x"), "invalid int value", usage=True),
    Case("agent-planner-unknown", "agent", ("plan", "--planner", "gpt"), "invalid choice", usage=True),
    Case("agent-qwen-without-model", "agent", ("plan", "--planner", "qwen"), "--planner qwen needs --model",
         stdin='{"turns": ["a"]}'),
]

STORAGE_CASES = [
    Case("storage-no-command", "storage", (), "the following arguments are required", usage=True),
    Case("storage-unknown-command", "storage", ("vacuum-everything",), "invalid choice", usage=True),
    Case("storage-info-unknown-flag", "storage", ("info", "--fast"), "unrecognized arguments", usage=True),
    Case("storage-recover-unknown-flag", "storage", ("recover", "--everything"), "unrecognized arguments",
         usage=True),
]

VIVIDFLOW_CASES = [
    Case("vf-no-command", "vividflow", (), "the following arguments are required", usage=True),
    Case("vf-unknown-command", "vividflow", ("dance",), "invalid choice", usage=True),
    Case("vf-config-bad-crf", "vividflow", ("config",), "VIVIDFLOW_CRF: crf must be an integer in 0–51, got 99",
         env={"VIVIDFLOW_CRF": "99"}),
    Case("vf-config-huge-value", "vividflow", ("config",), "VIVIDFLOW_CRF", env={"VIVIDFLOW_CRF": "9" * 100_000}),
    Case("vf-config-bad-bool", "vividflow", ("config",), "VIVIDFLOW_WAN_LIGHTNING",
         env={"VIVIDFLOW_WAN_LIGHTNING": "maybe"}),
    Case("vf-config-missing-file", "vividflow", ("config",), "VIVIDFLOW_CONFIG",
         env={"VIVIDFLOW_CONFIG": "/nonexistent/vividflow.toml"}),
    Case("vf-config-bad-toml", "vividflow", ("config",), "not valid TOML", files={"bad.toml": "[wan\ncrf = "},
         env={"VIVIDFLOW_CONFIG": "{tmp}/bad.toml"}),
    Case("vf-config-unknown-key", "vividflow", ("config",), "unknown keys",
         files={"k.toml": "k" * 100_000 + " = 1\n"}, env={"VIVIDFLOW_CONFIG": "{tmp}/k.toml"}),
    Case("vf-config-unknown-section-key", "vividflow", ("config",), "unknown [wan] keys",
         files={"w.toml": "[wan]\nturbo = true\n"}, env={"VIVIDFLOW_CONFIG": "{tmp}/w.toml"}),
    Case("vf-plan-not-json", "vividflow", ("plan",), "stdin is not valid JSON", stdin="{"),
    Case("vf-render-seed-true", "vividflow", ("render", "--image", "{image}", "--plan", "{tmp}/p.json"),
         "seed: must be a number, not true", files={"p.json": plan_with(seed=True)}),
    Case("vf-render-urandom", "vividflow", ("render", "--plan", "/dev/urandom"), "is a device"),
    Case("vf-rerun-missing", "vividflow", ("rerun", "5"), "no generation with id 5"),
    Case("vf-db-unknown", "vividflow", ("db", "shrink"), "invalid choice", usage=True),
]

CASES = PLAN_CASES + PATH_CASES + IMAGE_CASES + OUT_CASES + GENERATION_CASES + AGENT_CASES + STORAGE_CASES \
    + VIVIDFLOW_CASES


@pytest.fixture(scope="module")
def good_image(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("inputs") / "pet.png"
    path.write_bytes(image_bytes((64, 48), "PNG"))
    return path


@pytest.fixture(scope="module")
def big_image(tmp_path_factory) -> Path:
    """A 51 MB 'picture' (sparse: no disk used) that must be refused from its size alone."""
    path = tmp_path_factory.mktemp("inputs") / "big.png"
    with open(path, "wb") as f:
        f.write(image_bytes((64, 48), "PNG"))
        f.truncate(51 * 2**20)
    return path


def fill(text: str, values: dict[str, Path]) -> str:
    for key, value in values.items():
        text = text.replace("{" + key + "}", str(value))
    return text


def everything_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def generations(home: Path) -> int:
    db = home / "vividflow.db"
    if not db.exists():
        return 0
    with sqlite3.connect(db) as con:
        return con.execute("select count(*) from generations").fetchone()[0]


def test_the_corpus_is_large_and_names_are_unique():
    assert len(CASES) >= 100 and len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_clear_line_and_writes_nothing(case, tmp_path, monkeypatch, capsys, good_image, big_image):
    home = tmp_path / "home"
    work = tmp_path / "work"
    work.mkdir()
    os.mkfifo(work / "fifo")
    (work / "link.json").symlink_to("/dev/urandom")
    plan = work / "good-plan.json"
    plan.write_text(json.dumps(GOOD_PLAN))
    values = {"tmp": work, "home": home, "image": good_image, "plan": plan, "fifo": work / "fifo", "big": big_image}
    for name, content in case.files.items():
        (work / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    monkeypatch.setenv("VIVIDFLOW_HOME", str(home))
    monkeypatch.chdir(work)
    for key, value in case.env.items():
        monkeypatch.setenv(key, fill(value, values))
    if case.stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(case.stdin))
    argv = [fill(a, values) for a in case.argv]
    if case.tool in ("generation", "storage") and case.argv and case.argv[0] not in ("info", "recover"):
        argv = ["--home", str(home), *argv]
    before = everything_under(work)

    rc = MAINS[case.tool](argv)

    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert rc == case.code, err
    assert "Traceback" not in out + err and out == ""
    prefix = f"{PROGS[case.tool]}: error: " if not case.usage else ": error: "
    if case.usage:  # argparse: its usage line(s), then one error line
        assert 2 <= len(lines) <= 6 and lines[0].startswith("usage:") and prefix in lines[-1], err
    else:
        assert len(lines) == 1 and lines[0].startswith(prefix), err
    assert case.message in lines[-1], err
    assert all(len(line) <= MAX_LINE for line in lines), [len(line) for line in lines]
    assert everything_under(work) == before  # no --out file, no temporary file, nothing changed
    assert generations(home) == 0
    assert not [p for p in home.rglob("*") if ".tmp" in p.name] if home.exists() else True


# the benches and the development scripts that go through the CLI boundary (devtools/scripted_visit.py)
SCRIPTS = sorted([f"bench/{p.name}" for p in (REPO / "bench").glob("*.py")] +
                 [f"devtools/{p.name}" for p in (REPO / "devtools").glob("*.py") if "run_cli(" in p.read_text()])


def _load_script(script: str):
    spec = importlib.util.spec_from_file_location("script_" + script.replace("/", "_")[:-3], REPO / script)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(spec.name, None)
    return module


def test_the_development_scripts_are_among_the_checked_ones():
    assert "devtools/scripted_visit.py" in SCRIPTS and "bench/agent_bench.py" in SCRIPTS


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_bench_refuses_bad_arguments_with_one_error_line(script, capsys):
    module = _load_script(script)
    assert run_cli(module.main, ["--no-such-option", "1"], prog=script) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("usage:") and lines[-1].endswith("error: unrecognized arguments: --no-such-option 1")
    assert len(lines) <= 8


@pytest.mark.parametrize("minutes", ["0", "-1", "ten"])
def test_the_scripted_visit_refuses_a_bad_length_before_starting_anything(minutes, capsys, tmp_path):
    module = _load_script("devtools/scripted_visit.py")
    assert run_cli(module.main, ["--minutes", minutes, "--keep", str(tmp_path / "visit")],
                   prog="devtools/scripted_visit.py") == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines[-1].startswith("devtools/scripted_visit.py: error: argument --minutes") or \
        "--minutes must be more than 0" in lines[-1], lines
    assert not (tmp_path / "visit").exists()  # no server started, no folder made


# --- real processes -----------------------------------------------------------------------------------


def _env(home: Path) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "VIVIDFLOW_HOME": str(home)}
    env.pop("VIVIDFLOW_DEBUG", None)
    return env


def test_a_fifo_plan_is_refused_at_once_by_a_real_process(tmp_path):
    os.mkfifo(tmp_path / "fifo")  # nobody writes to it: reading would wait forever
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "generation", "render", "--plan", str(tmp_path / "fifo")], cwd=REPO,
                       env=_env(tmp_path / "home"), capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and p.stdout == "" and "Traceback" not in p.stderr
    assert len(p.stderr.splitlines()) == 1 and "not a regular file" in p.stderr
    assert time.monotonic() - t0 < 30


def test_ctrl_c_during_a_render_cancels_the_job_and_leaves_nothing(tmp_path, good_image):
    plan = tmp_path / "plan.json"
    plan.write_text(plan_with(duration_s=5.0))
    out = tmp_path / "out" / "clip.mp4"
    home = tmp_path / "home"
    proc = subprocess.Popen([sys.executable, "-m", "generation", "render", "--image", str(good_image), "--plan",
                             str(plan), "--backend", "preview", "--out", str(out)], cwd=REPO, env=_env(home),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        seen = ""
        while "started on backend" not in seen:  # the job runs: now interrupt it
            line = proc.stderr.readline()
            assert line, f"render ended before it started: {seen}"
            seen += line
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, seen + stderr
    assert "Traceback" not in seen + stderr + stdout and "status: cancelled" in stdout
    assert not out.exists() and not out.parent.exists()
    with sqlite3.connect(home / "vividflow.db") as con:
        assert con.execute("select status from generations").fetchall() == [("cancelled",)]
    leftovers = [p for p in home.rglob("*") if p.is_file() and ("tmp" in p.name or "staging" in str(p))]
    assert leftovers == []
