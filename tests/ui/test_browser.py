"""End to end in a real browser: `streamlit run` on a free loopback port, driven by Debian's Chromium
through Playwright (no browser download). Upload a photo, chat, Generate, watch the video play, open
the gallery; screenshots land in tests/artifacts/ (git-ignored).

Skips when Chromium or Playwright is missing, unless VIVIDFLOW_REQUIRE_BROWSER=1 (CI), where it fails.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import types
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


@contextlib.contextmanager
def _streamlit(tmp_path: Path, *, address: str | None = None, env: dict[str, str] | None = None):
    """`streamlit run streamlit_app.py` with its own data folder, stopped by PID at the end. Without `address`
    it listens where the shipped .streamlit/config.toml says (as the README's command does)."""
    port = _free_port()
    home = tmp_path / "home"
    log_path = tmp_path / "streamlit.log"
    env = {**os.environ, "VIVIDFLOW_HOME": str(home), "VIVIDFLOW_BACKEND": "preview", "HF_HUB_OFFLINE": "1",
           **(env or {})}
    env.pop("STREAMLIT_SERVER_ADDRESS", None)
    cmd = [
        sys.executable, "-m", "streamlit", "run", str(ROOT / "streamlit_app.py"),
        "--server.port", str(port), "--server.headless", "true",
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
        *(["--server.address", address] if address else []),
    ]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc, log_path)
        yield types.SimpleNamespace(url=url, home=home, log_path=log_path, pid=proc.pid, port=port)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


@pytest.fixture
def server(tmp_path):
    """The studio as the README starts it (the shipped config: 127.0.0.1)."""
    _require_browser()
    with _streamlit(tmp_path) as srv:
        yield srv


@pytest.fixture
def photo(tmp_path) -> Path:
    from PIL import Image
    from skimage import data

    path = tmp_path / "astronaut.png"
    Image.fromarray(data.astronaut()).save(path)
    return path


def _listening_addresses(port: int) -> set[str]:
    """The local addresses with a TCP socket listening on `port` (Linux /proc/net; any process)."""
    found = set()
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        if not Path(table).is_file():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            host, _, hex_port = local.partition(":")
            if state != "0A" or int(hex_port, 16) != port:  # 0A: LISTEN
                continue
            raw = bytes.fromhex(host)
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))  # each 32-bit word is host-endian
            found.add(socket.inet_ntop(family, raw))
    return found


class _Witness(http.server.BaseHTTPRequestHandler):
    """A tiny web server that only records which paths a browser asked it for."""

    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        type(self).hits.append(self.path)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def _witness():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), type("Witness", (_Witness,), {"hits": []}))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()


def _shot(page, name: str) -> None:
    """A full-page screenshot once every image on the page has loaded."""
    page.wait_for_function("() => Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)",
                           timeout=15_000)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_create_chat_generate_play_and_gallery(server, photo):
    from playwright.sync_api import expect, sync_playwright

    url, log_path = server.url, server.log_path
    expect.set_options(timeout=15_000)  # a loaded shared machine draws the page slowly
    if Path("/proc/net/tcp").is_file():  # the shipped config: this machine only, on no other interface
        assert _listening_addresses(server.port) == {"127.0.0.1"}
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

            # 6. typed markdown and HTML are shown as text: the browser fetches nothing they point at
            with _witness() as witness:
                there = f"http://127.0.0.1:{witness.server_port}"
                hostile = f"![x]({there}/image.png) <img src={there}/tag.png> [y]({there}/link) {there}/bare"
                box = page.get_by_test_id("stChatInputTextArea")
                box.fill(hostile)
                box.press("Enter")
                user = page.get_by_test_id("stChatMessage").filter(has_text="image.png").first
                expect(user).to_be_visible()
                assert user.inner_text().replace("\u2060", "").strip().endswith(hostile)  # shown as typed
                assert user.locator("img, a").count() == 0, user.inner_html()  # no image, no link
                page.wait_for_timeout(300)  # a fetch would have been started by now
                assert witness.RequestHandlerClass.hits == [], witness.RequestHandlerClass.hits
        finally:
            browser.close()
        # 7. another name for this machine (as a web page using DNS rebinding would use) gets no studio
        rebind = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                   args=[*CHROMIUM_FLAGS, "--host-resolver-rules=MAP rebind.test 127.0.0.1"])
        try:
            page = rebind.new_page()
            page.goto(url.replace("127.0.0.1", "rebind.test"))
            expect(page.get_by_text("answers to http://127.0.0.1 or http://localhost only")).to_be_visible()
            assert page.get_by_test_id("stChatInputTextArea").count() == 0
        finally:
            rebind.close()
    assert "Traceback" not in log_path.read_text(), log_path.read_text()[-3000:]


def test_the_password_gate_in_a_real_browser(tmp_path):
    """VIVIDFLOW_PASSWORD: a form and nothing else, a wrong password answered after a delay, the right one
    lets this browser in (and only this one)."""
    from playwright.sync_api import expect, sync_playwright

    _require_browser()
    expect.set_options(timeout=15_000)
    password = "correct horse battery"
    with _streamlit(tmp_path, env={"VIVIDFLOW_PASSWORD": password}) as srv, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(30_000)
            page.goto(srv.url)
            expect(page.get_by_role("textbox", name="Password")).to_be_visible()
            assert page.get_by_test_id("stChatInputTextArea").count() == 0
            assert page.get_by_test_id("stSidebar").count() == 0  # nothing but the form
            page.get_by_role("textbox", name="Your name").fill("Ann")
            page.get_by_role("textbox", name="Password").fill("wrong password")
            started = time.monotonic()
            page.get_by_role("button", name="Sign in").click()
            expect(page.get_by_text("Wrong password.")).to_be_visible()
            assert time.monotonic() - started >= 0.9  # the first failure waits a second
            page.get_by_role("textbox", name="Password").fill(password)
            page.get_by_role("button", name="Sign in").click()
            expect(page.get_by_test_id("stChatInputTextArea")).to_be_visible()
            expect(page.get_by_text("Signed in as Ann")).to_be_visible()
            other = browser.new_page()  # another browser session is not signed in by this one
            other.goto(srv.url)
            expect(other.get_by_role("textbox", name="Password")).to_be_visible()
        finally:
            browser.close()
        assert password not in srv.log_path.read_text()
        assert "Traceback" not in srv.log_path.read_text()
