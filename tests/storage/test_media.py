"""The content-addressed media store: dedup, atomic writes, temp files, safety of deletes."""

from __future__ import annotations

import hashlib
import os
import time

import pytest

from storage import InvalidFieldError, MediaStore


@pytest.fixture
def media(tmp_path):
    return MediaStore(tmp_path / "media")


def test_put_bytes_is_content_addressed(media):
    a = media.put_bytes(b"hello", ".mp4")
    digest = hashlib.sha256(b"hello").hexdigest()
    assert a.sha256 == digest and a.key == f"{digest[:2]}/{digest}.mp4" and a.size_bytes == 5
    assert a.path == media.root / a.key and a.path.read_bytes() == b"hello"
    mtime = a.path.stat().st_mtime_ns
    assert media.put_bytes(b"hello", ".mp4") == a and a.path.stat().st_mtime_ns == mtime
    assert media.exists(a.key) and media.relative_key(a.path) == a.key
    assert list(media.root.rglob("*.tmp-*")) == []


def test_put_file_copies_and_keeps_source(media, tmp_path):
    src = tmp_path / "clip.MP4"
    src.write_bytes(b"x" * (3 << 20))  # larger than one copy chunk
    f = media.put_file(src)
    assert src.exists() and f.path.suffix == ".mp4" and f.path.read_bytes() == src.read_bytes()
    assert f.sha256 == hashlib.sha256(src.read_bytes()).hexdigest()
    assert list((media.root / ".tmp").iterdir()) == []


def test_writer_commits_atomically(media):
    with media.writer(".mp4") as w:
        assert w.path.parent == media.root / ".tmp" and w.path.suffix == ".mp4"
        w.path.write_bytes(b"frames")
        assert w.result is None
    assert w.result.path.read_bytes() == b"frames" and not w.path.exists()
    with media.writer(".mp4") as w2:  # same content again: stored once, temp removed
        w2.path.write_bytes(b"frames")
    assert w2.result == w.result and not w2.path.exists()


def test_writer_discards_on_error(media):
    with pytest.raises(RuntimeError, match="encoder crashed"):
        with media.writer(".mp4") as w:
            w.path.write_bytes(b"half a vid")
            raise RuntimeError("encoder crashed")
    assert not w.path.exists() and w.result is None
    assert [p for p in media.root.rglob("*") if p.is_file()] == []


def test_temp_path_and_commit(media):
    tmp = media.temp_path(".png")
    tmp.write_bytes(b"img")
    f = media.commit(tmp)
    assert not tmp.exists() and f.path.suffix == ".png" and f.path.read_bytes() == b"img"
    with pytest.raises(FileNotFoundError, match="nothing to commit"):
        media.commit(tmp)


def test_cleanup_temp_removes_only_old_strays(media):
    old_tmp = media.temp_path(".mp4")
    old_tmp.write_bytes(b"crashed writer")
    shard = media.root / "ab"
    shard.mkdir()
    old_partial = shard / ".tmp-123abc"
    old_partial.write_bytes(b"partial")
    fresh = media.temp_path(".mp4")
    fresh.write_bytes(b"still writing")
    kept = media.put_bytes(b"real")
    past = time.time() - 7200
    for p in (old_tmp, old_partial, kept.path):
        os.utime(p, (past, past))
    removed = media.cleanup_temp(max_age_s=3600)
    assert sorted(removed) == sorted([old_tmp, old_partial])
    assert fresh.exists() and kept.path.exists()


def test_delete(media, tmp_path):
    f = media.put_bytes(b"bye", ".mp4")
    assert media.delete(f.key) is True and not f.path.exists()
    assert media.delete(f.key) is False
    g = media.put_bytes(b"bye2")
    assert media.delete(g.path) is True
    outside = tmp_path / "precious.txt"
    outside.write_text("keep")
    with pytest.raises(InvalidFieldError, match="outside the media root"):
        media.delete(outside)
    with pytest.raises(InvalidFieldError, match="outside the media root"):
        media.delete("../precious.txt")
    assert outside.exists()


def test_bad_suffix_and_hash(media):
    with pytest.raises(InvalidFieldError, match="suffix must be empty or a dot"):
        media.put_bytes(b"x", "mp4")
    with pytest.raises(InvalidFieldError, match="sha256 must be 64 lowercase hex digits"):
        media.key_for("abc")
