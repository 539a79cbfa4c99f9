"""python -m generation render | rerun | queue."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.plan import MotionPlan
from generation.__main__ import main
from generation.export import probe_video
from storage import open_store
from storage.owner import current_owner

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def inputs(tmp_path, gh):
    image = tmp_path / "cat.jpg"
    gh.photo("chelsea", 200).save(image)
    plan = tmp_path / "plan.json"
    plan.write_text(MotionPlan.create(template="animals", duration_s=0.5, seed=3,
                                      motions=[{"subject": "tail", "action": "wag"}]).to_json())
    return image, plan


def test_render_as_a_subprocess(tmp_path, inputs, db_url):
    image, plan = inputs
    out = tmp_path / "clips" / "cat.mp4"
    env = {**os.environ, "PYTHONPATH": str(REPO), "VIVIDFLOW_HOME": str(tmp_path / "home")}
    if db_url is not None:  # the same render, recorded in PostgreSQL
        env["VIVIDFLOW_DB_URL"] = db_url
    proc = subprocess.run([sys.executable, "-m", "generation", "render", "--image", str(image), "--plan", str(plan),
                           "--backend", "preview", "--out", str(out)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "id: 1" in proc.stdout and f"video: {out}" in proc.stdout
    assert "rendering" in proc.stderr  # the progress bar
    info = probe_video(out)
    assert info["num_frames"] == 9 and info["metadata"]["plan"]["seed"] == 3
    with open_store(url=db_url, home=tmp_path / "home") as store:
        rec = store.get_generation(1)
        assert rec.status == "succeeded" and rec.backend == "preview"
        assert Path(rec.video_path).read_bytes() == out.read_bytes()


@pytest.mark.slow
def test_render_ti2v_5b_shaped_folder_with_the_wan_backend(tmp_path, inputs):
    """A tiny TI2V-5B-shaped folder renders through the CLI: frames at 24 fps, sides multiples of 32."""
    pytest.importorskip("torch")
    from devtools.tiny_wan import cached_tiny_pipeline_dir

    image, plan = inputs
    out = tmp_path / "ti2v.mp4"
    env = {**os.environ, "PYTHONPATH": str(REPO), "VIVIDFLOW_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1",
           "VIVIDFLOW_WAN_MODEL": str(cached_tiny_pipeline_dir("ti2v")),
           "VIVIDFLOW_WAN_DEFAULTS_FROM": "Wan-AI/Wan2.2-TI2V-5B-Diffusers", "VIVIDFLOW_WAN_DEVICE": "cpu",
           "VIVIDFLOW_WAN_MAX_AREA": str(128 * 64)}
    proc = subprocess.run([sys.executable, "-m", "generation", "render", "--backend", "wan", "--image", str(image),
                           "--plan", str(plan), "--out", str(out)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    info = probe_video(out)
    assert info["fps"] == pytest.approx(24) and info["num_frames"] == 13  # 0.5 s at 24 fps: 4k+1
    assert (info["width"], info["height"]) == (96, 64)  # the cat's 3:2 at multiples of 32
    meta = info["metadata"]["vividflow"]
    assert (meta["recipe"], meta["steps"], meta["guidance_scale"], meta["registry_id"]) == (
        "base", 50, 5.0, "Wan-AI/Wan2.2-TI2V-5B-Diffusers")  # the template's defaults → TI2V-5B's base recipe
    with open_store(home=tmp_path / "home") as store:
        rec = store.get_generation(1)
        assert (rec.status, rec.backend, rec.width, rec.height) == ("succeeded", "wan", 96, 64)
        assert (rec.params["fps"], rec.params["num_frames"]) == (24, 13)


def test_render_rerun_and_queue_in_process(tmp_path, inputs, capsys):
    image, plan = inputs
    home = str(tmp_path / "home")
    assert main(["--home", home, "render", "--image", str(image), "--plan", str(plan)]) == 0
    assert "status: succeeded" in capsys.readouterr().out
    assert main(["--home", home, "rerun", "1", "--seed", "7", "--steps", "6"]) == 0
    out = capsys.readouterr().out
    assert "id: 2" in out and "status: succeeded" in out
    with open_store(home=home) as store:
        child = store.get_generation(2)
        assert child.parent_id == 1 and child.seed == 7 and child.steps == 6
        assert child.source_image_id == store.get_generation(1).source_image_id
        # queued / running jobs as another process sees them
        q1 = store.create_generation(None, child.plan, child.source_image_id, "preview", "preview-warp-1")
        q2 = store.create_generation(None, child.plan, child.source_image_id, "preview", "preview-warp-1")
        store.claim_generation(q1.id)
        store.update_progress(q1.id, "rendering", 4, 9)
    assert main(["--home", home, "queue"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.split()[:2] == [str(q1.id), "running"] and "rendering 4/9" in line for line in lines)
    assert any(line.split()[:3] == [str(q2.id), "queued", "0"] for line in lines)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["render", "--image", "{tmp}/nope.png", "--plan", "{plan}"], "image file not found"),
        (["render", "--image", "{image}", "--plan", "{tmp}/nope.json"], "plan file not found"),
        (["render", "--image", "{image}", "--plan", "{badplan}"], "duration_s"),
        (["render", "--image", "{image}", "--plan", "{plan}", "--backend", "sora"], "unknown backend 'sora'"),
        (["render", "--image", "{image}", "--plan", "{plan}", "--seed", "-4"], "seed"),
        (["rerun", "99"], "no generation with id 99"),
        (["render", "--plan", "{plan}", "--backend", "preview"], "the preview animates a picture: upload one"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(tmp_path, inputs, capsys, gh, argv, message):
    image, plan = inputs
    badplan = tmp_path / "bad.json"
    badplan.write_text('{"template": "landscape", "duration_s": 42}')
    home = tmp_path / "home"
    with open_store(home=home) as store:
        before = gh.db_snapshot(store)
    fmt = {"tmp": tmp_path, "plan": plan, "image": image, "badplan": badplan}
    assert main(["--home", str(home)] + [a.format(**fmt) for a in argv]) == 2
    assert message in capsys.readouterr().err
    with open_store(home=home) as store:
        assert gh.db_snapshot(store) == before


def test_render_recovers_jobs_of_dead_processes_only(tmp_path, inputs, capsys):
    image, plan = inputs
    home = str(tmp_path / "home")
    with open_store(home=home) as store:
        img = store.add_image(image.read_bytes(), filename="cat.jpg")
        plan_dict = MotionPlan.from_json(plan.read_text()).to_dict()
        orphan = store.create_generation(None, plan_dict, img.id, "preview", "preview-warp-1")
        store.claim_generation(orphan.id)  # no owner: left by a process that is gone
        live = store.create_generation(None, plan_dict, img.id, "preview", "preview-warp-1",
                                       owner=current_owner(), lease_s=600)  # held under a live lease
        store.claim_generation(live.id, owner=current_owner(), lease_s=600)
    assert main(["--home", home, "render", "--image", str(image), "--plan", str(plan)]) == 0
    assert f"marked generation(s) #{orphan.id} failed" in capsys.readouterr().err
    with open_store(home=home) as store:
        assert store.get_generation(orphan.id).status == "failed"
        assert store.get_generation(live.id).status == "running"
