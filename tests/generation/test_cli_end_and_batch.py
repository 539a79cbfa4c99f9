"""python -m generation render --end-image | --loop | --variations N (#12 §1, §3)."""

from __future__ import annotations

import pytest

from agent.plan import MotionPlan
from generation.__main__ import main
from generation.export import probe_video
from storage import open_store


@pytest.fixture
def inputs(tmp_path, gh):
    image, end = tmp_path / "cat.jpg", tmp_path / "coffee.png"
    gh.photo("chelsea", 160).save(image)
    gh.photo("coffee", 200).save(end)
    plan = tmp_path / "plan.json"
    plan.write_text(MotionPlan.create(template="animals", duration_s=0.5, seed=3,
                                      motions=[{"subject": "tail", "action": "wag"}]).to_json())
    return image, end, plan


@pytest.fixture
def small_previews(monkeypatch):
    """The CLI's runner renders small previews (the measurements are elsewhere; this is about the wiring)."""
    from generation import jobs
    from generation.preview import PreviewBackend

    monkeypatch.setattr(jobs, "get_backend", lambda name: PreviewBackend(max_area=96 * 64))


def test_end_image_loop_and_variations_from_the_cli(tmp_path, inputs, capsys, small_previews):
    image, end, plan = inputs
    home = str(tmp_path / "home")
    base = ["--home", home, "render", "--image", str(image), "--plan", str(plan)]
    assert main(base + ["--end-image", str(end), "--out", str(tmp_path / "end.mp4")]) == 0
    assert "status: succeeded" in capsys.readouterr().out
    assert main(base + ["--loop"]) == 0
    capsys.readouterr()
    assert main(base + ["--variations", "3", "--out", str(tmp_path / "v.mp4")]) == 0
    captured = capsys.readouterr()
    assert captured.out.count("status: succeeded") == 3 and captured.out.count("batch: ") == 3
    assert (tmp_path / "v-1.mp4").is_file() and (tmp_path / "v-3.mp4").is_file()
    with open_store(home=home) as store:
        ended, looped = store.get_generation(1), store.get_generation(2)
        end_record = store.find_image(ended.plan["end_image"])
        assert end_record is not None and end_record.path.read_bytes() == end.read_bytes()
        assert probe_video(tmp_path / "end.mp4")["metadata"]["plan"]["end_image"] == end_record.sha256
        assert looped.plan["loop"] is True and looped.params["end_frame"] == "loop"
        batch = store.list_batch(store.get_generation(3).batch_id)
        assert len(batch) == 3 and len({g.seed for g in batch}) == 3 and batch[0].seed == 3
    # a rerun of the end-picture clip renders the same bytes
    assert main(["--home", home, "rerun", "1"]) == 0
    with open_store(home=home) as store:
        assert store.get_generation(6).params["sha256"] == ended.params["sha256"]


def test_end_image_and_loop_together_are_refused(tmp_path, inputs, capsys):
    image, end, plan = inputs
    argv = ["--home", str(tmp_path / "home"), "render", "--image", str(image), "--plan", str(plan),
            "--end-image", str(end), "--loop"]
    assert main(argv) == 2
    assert "a loop ends on the first picture" in capsys.readouterr().err
    assert main(argv[:-3] + ["--end-image", str(tmp_path / "nope.png")]) == 2
    assert "not found" in capsys.readouterr().err
    # twelve variations are clamped to 8 with a note (here the picture is missing, so nothing renders)
    assert main(argv[:-5] + ["--image", str(tmp_path / "nope.jpg"), "--plan", str(plan), "--variations", "12"]) == 2
    err = capsys.readouterr().err
    assert "12 variations is more than the 8 a batch can hold: set to 8" in err and "not found" in err


def test_a_batch_checks_each_numbered_out_path_before_any_work(tmp_path, inputs, capsys):
    image, _, plan = inputs
    home = tmp_path / "home"
    (tmp_path / "v-2.mp4").write_bytes(b"kept")
    argv = ["--home", str(home), "render", "--image", str(image), "--plan", str(plan), "--variations", "3",
            "--out", str(tmp_path / "v.mp4")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "v-2.mp4 already exists; add --force to replace it" in err
    assert (tmp_path / "v-2.mp4").read_bytes() == b"kept" and not (tmp_path / "v-1.mp4").exists()
    with open_store(home=str(home)) as store:
        assert store.list_gallery().total == 0  # nothing was queued
