"""Media and rows stay consistent (storage.sweep): gc of files no row references, the sweep of half-written
temporary files and staging folders, and writers that remove their file when its row is not committed."""

from __future__ import annotations

import os
import time

import pytest

from storage import open_store
from storage.__main__ import main as storage_main


def _age(path, seconds: float = 7200) -> None:
    t = time.time() - seconds
    os.utime(path, (t, t))


def test_gc_lists_then_deletes_only_old_unreferenced_content_files(store, conv, make_plan, png_bytes, finish_ok):
    img = store.add_image(png_bytes(), filename="a.png")
    done = finish_ok(store.create_generation(conv.id, make_plan(), img.id, "preview", "m").id)
    kept = [img.path, done.video_path]
    orphan = store.media.put_bytes(b"a video nobody recorded", ".mp4").path
    young = store.media.put_bytes(b"a video being recorded right now", ".mp4").path
    in_params = store.media.put_bytes(b"a frame named in params", ".png").path
    store.create_generation(conv.id, make_plan(), None, "preview", "m", params={"end_frame": str(in_params)})
    exported = store.media.root / "videos" / "mine.mp4"  # not content-addressed: not gc's business
    exported.parent.mkdir()
    exported.write_bytes(b"x")
    for p in (*kept, orphan, in_params, exported):
        _age(p)
    assert store.gc() == [orphan] and orphan.exists()  # a dry run by default
    assert store.gc(min_age_s=0) == sorted([orphan, young])
    assert store.gc(delete=True) == [orphan] and not orphan.exists()
    assert all(p.exists() for p in (*kept, young, in_params, exported))


def test_gc_command_is_a_dry_run_until_yes(tmp_path, capsys):
    home = tmp_path / "home"
    with open_store(home=home) as store:
        orphan = store.media.put_bytes(b"left by a crash", ".mp4").path
    assert storage_main(["gc", "--home", str(home), "--min-age", "0"]) == 0
    out = capsys.readouterr().out
    assert f"would delete {orphan}" in out and "--yes" in out and orphan.exists()
    assert storage_main(["gc", "--home", str(home), "--min-age", "0", "--yes"]) == 0
    assert f"deleted {orphan}" in capsys.readouterr().out and not orphan.exists()
    assert storage_main(["gc", "--home", str(home)]) == 0
    assert "no unreferenced media" in capsys.readouterr().out


def test_sweep_removes_staging_of_jobs_not_running_and_old_temp_files(store, conv, make_plan):
    running = store.create_generation(conv.id, make_plan(), None, "preview", "m")
    store.claim_generation(running.id)
    ended = store.create_generation(conv.id, make_plan(), None, "preview", "m")
    store.finish_generation(ended.id, "cancelled")
    live_dir, dead_dir, gone_dir = (store.media.staging_dir(i) for i in (running.id, ended.id, 9999))
    for d in (live_dir, dead_dir, gone_dir):
        d.mkdir(parents=True)
        (d / ".tmp-export-x.mp4").write_bytes(b"\0" * 10)
    old_tmp, new_tmp = store.media.temp_path(".mp4"), store.media.temp_path(".mp4")
    old_tmp.write_bytes(b"half")
    new_tmp.write_bytes(b"half")
    _age(old_tmp)
    removed = store.sweep_temp()
    assert sorted(removed) == sorted([dead_dir, gone_dir, old_tmp])
    assert live_dir.is_dir() and new_tmp.exists()


def test_an_image_whose_row_fails_leaves_no_file(store, png_bytes, monkeypatch):
    def broken(row):
        raise RuntimeError("the row could not be read back")

    monkeypatch.setattr(store, "_image", broken)
    with pytest.raises(RuntimeError):
        store.add_image(png_bytes(5, 5), filename="x.png")
    monkeypatch.undo()
    assert store.counts()["source_images"] == 0
    assert not [p for p in store.media.root.rglob("*") if p.is_file()]


def test_discard_keeps_content_another_row_uses(store, conv, make_plan, finish_ok):
    done = finish_ok(store.create_generation(conv.id, make_plan(), None, "preview", "m").id)
    lone = store.media.put_bytes(b"nobody's", ".mp4").path
    assert store.discard_media([done.video_path, lone, None]) == [lone]
    assert done.video_path.exists() and not lone.exists()
