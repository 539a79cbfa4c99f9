"""End to end in a real browser: `streamlit run` on a free loopback port, driven by Debian's Chromium
through Playwright (no browser download). Upload a photo, chat, Generate, watch the video play, open
the gallery; screenshots land in tests/artifacts/ (git-ignored).

Skips when Chromium or Playwright is missing, unless VIVIDFLOW_REQUIRE_BROWSER=1 (CI), where it fails.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = os.environ.get("VIVIDFLOW_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
]
SERVER_START_S = 60
RENDER_S = 90


def _require_browser() -> None:
    missing = []
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        missing.append(f"Chromium ({CHROMIUM})")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright package")
    if missing:
        why = "missing " + " and ".join(missing)
        if os.environ.get("VIVIDFLOW_REQUIRE_BROWSER") == "1":
            pytest.fail(f"VIVIDFLOW_REQUIRE_BROWSER=1 but {why} (apt-get install -y chromium chromium-driver)")
        pytest.skip(why)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"streamlit exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"streamlit did not answer on {url} within {SERVER_START_S} s:\n{log_path.read_text()[-3000:]}")


@pytest.fixture
def server(tmp_path):
    """`streamlit run streamlit_app.py` with its own data folder; stopped by PID at the end."""
    _require_browser()
    port = _free_port()
    home = tmp_path / "home"
    log_path = tmp_path / "streamlit.log"
    env = {**os.environ, "VIVIDFLOW_HOME": str(home), "VIVIDFLOW_BACKEND": "preview", "HF_HUB_OFFLINE": "1"}
    cmd = [
        sys.executable, "-m", "streamlit", "run", str(ROOT / "streamlit_app.py"),
        "--server.port", str(port), "--server.address", "127.0.0.1", "--server.headless", "true",
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
    ]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc, log_path)
        yield url, home, log_path
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


@pytest.fixture
def photo(tmp_path) -> Path:
    from PIL import Image
    from skimage import data

    path = tmp_path / "astronaut.png"
    Image.fromarray(data.astronaut()).save(path)
    return path


def _shot(page, name: str) -> None:
    """A full-page screenshot once every image on the page has loaded."""
    page.wait_for_function("() => Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)",
                           timeout=15_000)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_create_chat_generate_play_and_gallery(server, photo):
    from playwright.sync_api import expect, sync_playwright

    url, home, log_path = server
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            # tall enough that a full-page screenshot shows the whole studio (Streamlit scrolls inside its own pane)
            page = browser.new_page(viewport={"width": 1440, "height": 2000})
            page.set_default_timeout(30_000)
            page.goto(url)
            expect(page.get_by_text("Picture (PNG, JPEG or WebP)")).to_be_visible()

            # 1. upload a photo: the resolution preview appears
            page.locator("input[type=file]").set_input_files(str(photo))
            expect(page.get_by_text("output 624×624", exact=False)).to_be_visible()

            # 2. a chat turn: the reply and its plan diff appear, the panel follows
            box = page.get_by_test_id("stChatInputTextArea")
            box.fill("make her hair flow in the wind, slow zoom in, 1 second")
            box.press("Enter")
            expect(page.get_by_test_id("stChatMessage").nth(1)).to_be_visible()
            expect(page.get_by_text("17 frames", exact=False).first).to_be_visible()
            _shot(page, "1-studio-after-chat")

            # 3. Generate: progress, then the video element plays
            page.get_by_role("button", name="Generate").click()
            video = page.locator("video").first
            video.wait_for(state="attached", timeout=RENDER_S * 1000)
            can_h264 = page.evaluate(
                """() => document.querySelector('video').canPlayType('video/mp4; codecs="avc1.42E01E"')"""
            )
            if can_h264:
                decoded = page.evaluate(
                    """async () => {
                        const v = document.querySelector('video');
                        v.muted = true;
                        try { await v.play(); } catch (e) { return {error: String(e)}; }
                        await new Promise(r => setTimeout(r, 1500));
                        return {readyState: v.readyState, currentTime: v.currentTime, width: v.videoWidth,
                                height: v.videoHeight};
                    }"""
                )
                assert "error" not in decoded, decoded
                assert decoded["width"] == 624 and decoded["height"] == 624, decoded
                assert decoded["currentTime"] > 0, f"the video did not play: {decoded}"
            else:  # a Chromium build without H.264: at least the MP4 must be served
                print("this Chromium cannot decode H.264; checking that the video source loads instead")
                loaded = page.evaluate(
                    """async () => { const r = await fetch(document.querySelector('video').src);
                                     const b = await r.arrayBuffer();
                                     return {status: r.status, type: r.headers.get('content-type'), bytes: b.byteLength}; }"""
                )
                assert loaded["status"] == 200 and "mp4" in (loaded["type"] or "") and loaded["bytes"] > 1000, loaded
            expect(page.get_by_text("Preview", exact=False).first).to_be_visible()
            _shot(page, "2-studio-video")

            # 4. the gallery shows it, and its details open
            page.get_by_role("link", name="Gallery").click()
            expect(page.get_by_role("heading", name="Gallery")).to_be_visible()
            expect(page.get_by_text("#1", exact=False).first).to_be_visible()
            page.get_by_role("button", name="Details").first.click()
            expect(page.get_by_text("Parameters", exact=True)).to_be_visible()
            _shot(page, "3-gallery-details")

            # 5. branch into chat: back on the studio, a new conversation starts from #1's plan and picture
            page.get_by_role("button", name="Branch into chat").click()
            expect(page.get_by_text("Branched from #1")).to_be_visible()
            expect(page.get_by_role("heading", name="Plan")).to_be_visible()
        finally:
            browser.close()
    assert "Traceback" not in log_path.read_text(), log_path.read_text()[-3000:]


def test_loop_then_a_batch_of_variations_and_pick_one(server, photo):
    """#12 §1, §3 in the browser: "seamless loop" from the chat, Generate, "give me 2 variations" renders a batch
    shown as a grid, and "Use this one" makes a clip the plan to refine."""
    from playwright.sync_api import expect, sync_playwright

    url, home, log_path = server
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 2000})
            page.set_default_timeout(30_000)
            page.goto(url)
            page.locator("input[type=file]").first.set_input_files(str(photo))
            expect(page.get_by_text("output 624×624", exact=False)).to_be_visible()
            box = page.get_by_test_id("stChatInputTextArea")
            box.fill("her hair flows, seamless loop, 0.5 seconds")
            box.press("Enter")
            expect(page.get_by_text("ends where it starts", exact=False).first).to_be_visible()
            page.get_by_role("button", name="Generate").click()
            page.locator("video").first.wait_for(state="attached", timeout=RENDER_S * 1000)
            box.fill("give me 2 variations")
            box.press("Enter")
            expect(page.get_by_role("button", name="Use this one")).to_have_count(2, timeout=RENDER_S * 1000)
            _shot(page, "4-studio-variations")
            page.get_by_role("button", name="Use this one").nth(1).click()
            expect(page.get_by_text("Picked variation 2 of 2", exact=False)).to_be_visible()
        finally:
            browser.close()
    assert "Traceback" not in log_path.read_text(), log_path.read_text()[-3000:]
