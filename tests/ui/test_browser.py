"""End to end in a real browser: `streamlit run` on a free loopback port, driven by Debian's Chromium
through Playwright (no browser download). Upload a photo, chat (the latest reply stays in view, the input
keeps focus), Generate, watch the video play, refine into a second render, open the gallery (cards differ,
the animated preview plays on hover), compare the two (both play in step), branch, start a new chat and
upload another picture (a new conversation; a bad file's error at once, gone with the next good file);
every control has an accessible name, text passes WCAG AA, nothing is fetched from the internet, and the
server log stays quiet. Screenshots land in tmp/artifacts/ (git-ignored).

Skips when Chromium or Playwright is missing, unless VIVIDFLOW_REQUIRE_BROWSER=1 (CI), where it fails.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import re
import socket
import threading
import time
from pathlib import Path

import pytest

from devtools.browser import CHROMIUM_FLAGS, find_chromium, missing_browser_parts, streamlit_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tmp" / "artifacts"
CHROMIUM = find_chromium(os.environ.get("VIVIDFLOW_CHROMIUM"))
RENDER_S = 90


def _require_browser() -> None:
    if missing := missing_browser_parts(CHROMIUM):
        why = "missing " + " and ".join(missing)
        if os.environ.get("VIVIDFLOW_REQUIRE_BROWSER") == "1":
            pytest.fail(f"VIVIDFLOW_REQUIRE_BROWSER=1 but {why} (apt-get install -y chromium chromium-driver)")
        pytest.skip(why)


_streamlit = streamlit_server  # the studio as the README starts it (devtools/browser.py)


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
    Image.fromarray(data.chelsea()).save(tmp_path / "cat.png")  # a second picture, for the new chat
    (tmp_path / "notes.png").write_text("a text file renamed .png")  # a bad file
    Image.fromarray(data.coffee()).resize((160, 120)).save(tmp_path / "coffee.png")  # an end picture
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


def _in_view(page) -> dict:
    """Where the newest chat message is: inside the scrolling conversation and inside the window?"""
    return page.evaluate(
        """() => {
            const log = document.querySelector('.st-key-chat_log');
            const msgs = log.querySelectorAll('[data-testid=stChatMessage]');
            const last = msgs[msgs.length - 1].getBoundingClientRect();
            const box = log.getBoundingClientRect();
            return {inLog: last.bottom <= box.bottom + 2 && last.top >= box.top - 2,
                    inWindow: last.bottom <= window.innerHeight && last.top >= 0, messages: msgs.length};
        }"""
    )


def _send(page, text: str, replies: int) -> None:
    """A chat turn: the reply appears, it is in view, and the input keeps the keyboard focus."""
    box = page.get_by_test_id("stChatInputTextArea")
    box.fill(text)
    box.press("Enter")
    expect_messages(page, 2 * replies)
    page.wait_for_timeout(400)  # the scroll container follows the new message
    where = _in_view(page)
    assert where["inLog"] and where["inWindow"], where
    focused = page.evaluate("() => document.activeElement && document.activeElement.dataset.testid")
    assert focused == "stChatInputTextArea", focused


def expect_messages(page, n: int) -> None:
    page.wait_for_function(
        f"() => document.querySelectorAll('.st-key-chat_log [data-testid=stChatMessage]').length >= {n}")


CONTRAST_JS = """() => {
  const lum = (r, g, b) => { const f = c => { c /= 255; return c <= 0.04045 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4); };
                             return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
  const parse = s => { const m = s.match(/rgba?\\(([^)]+)\\)/); if (!m) return null;
                       const p = m[1].split(/[ ,\\/]+/).filter(Boolean).map(Number); return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1]; };
  const bgOf = el => { for (let n = el; n; n = n.parentElement) { const c = parse(getComputedStyle(n).backgroundColor);
                                                                  if (c && c[3] > 0.5) return c; } return [255, 255, 255, 1]; };
  const low = [];
  for (const el of document.querySelectorAll("[data-testid=stCaptionContainer], [data-testid=stMarkdownContainer] p, [data-testid=stWidgetLabel] p, button p")) {
    if (!el.offsetParent || !el.textContent.trim() || el.closest('[data-testid=stSlider]')) continue;
    if (el.closest('button:disabled, [aria-disabled=true], [disabled], [data-disabled=true]')) continue;  // WCAG 1.4.3 exempts inactive controls
    const cs = getComputedStyle(el), c = parse(cs.color), bg = bgOf(el);
    let a = c[3]; for (let n = el; n; n = n.parentElement) a *= parseFloat(getComputedStyle(n).opacity);
    const mix = [0, 1, 2].map(i => a * c[i] + (1 - a) * bg[i]);
    const l1 = lum(...mix), l2 = lum(bg[0], bg[1], bg[2]);
    const ratio = (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
    if (ratio < 4.5) low.push([el.textContent.trim().slice(0, 40), Math.round(ratio * 100) / 100]);
  }
  return low;
}"""

UNNAMED = re.compile(r"^\s*- (button|textbox|checkbox|slider|combobox|switch|spinbutton|radio)\s*(\[[^\]]*\])?:?\s*$")


def _accessible(page) -> None:
    """Every control has a name a screen reader reads (the accessibility tree), and text passes WCAG AA."""
    tree = page.locator("body").aria_snapshot()
    unnamed = [line for line in tree.splitlines() if UNNAMED.match(line)]
    assert not unnamed, unnamed
    assert "**" not in tree  # markdown read aloud
    low = page.evaluate(CONTRAST_JS)
    assert not low, low


def _thumbs(page) -> list[str]:
    """The gallery cards' stills as image bytes (hex digests): different videos, different stills."""
    return page.evaluate(
        """async () => {
            const imgs = Array.from(document.querySelectorAll("[class*='st-key-g-media-'] img")).filter(i => !i.src.startsWith('data:'));
            const out = [];
            for (const i of imgs) { const b = await (await fetch(i.src)).arrayBuffer();
                                    const d = await crypto.subtle.digest('SHA-256', b);
                                    out.push(Array.from(new Uint8Array(d)).map(x => x.toString(16)).join('')); }
            return out;
        }"""
    )


def test_create_chat_generate_play_and_gallery(server, photo):
    from playwright.sync_api import expect, sync_playwright

    url, home, log_path = server.url, server.home, server.log_path
    expect.set_options(timeout=30_000)  # a shared, loaded machine: assertions wait like actions do
    outside: list[str] = []
    if Path("/proc/net/tcp").is_file():  # the shipped config: this machine only, on no other interface
        assert _listening_addresses(server.port) == {"127.0.0.1"}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 900})  # a laptop screen
            page.set_default_timeout(30_000)
            page.on("request", lambda r: outside.append(r.url) if not r.url.startswith((url, "data:", "blob:")) else None)
            page.goto(url)
            expect(page.get_by_text("Picture (PNG, JPEG or WebP)")).to_be_visible()

            # 1. upload a photo: the resolution preview appears
            page.locator("input[type=file]").first.set_input_files(str(photo))
            expect(page.get_by_text("output 624×624", exact=False)).to_be_visible()

            # 2. a chat turn: the reply (in view, the input keeps focus) and its plan diff; the panel follows
            _send(page, "make her hair flow in the wind, slow zoom in, 1 second", replies=1)
            expect(page.get_by_text("17 frames", exact=False).first).to_be_visible()
            _accessible(page)
            _shot(page, "1-studio-after-chat")

            # 3. Generate from the keyboard (Alt+G, while typing in the chat): progress, then the video plays
            page.get_by_test_id("stChatInputTextArea").press("Alt+g")
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

            # 4. a refinement renders a child (#2) with another camera move; its reply is in view too
            _send(page, "make it orbit right, half a second", replies=2)
            expect(page.get_by_text("#2 · ", exact=False).first).to_be_visible(timeout=RENDER_S * 1000)

            # 5. the gallery: two cards whose stills differ; the animated preview plays on hover
            page.get_by_role("link", name="Gallery").click()
            expect(page.get_by_role("heading", name="Gallery")).to_be_visible()
            expect(page.get_by_text("#2", exact=False).first).to_be_visible()
            page.wait_for_function(  # both cards' stills are on the page (a loaded machine draws them one by one)
                """() => Array.from(document.querySelectorAll("[class*='st-key-g-media-'] img"))
                              .filter(i => !i.src.startsWith('data:') && i.complete).length >= 2""")
            stills = _thumbs(page)
            assert len(stills) == 2 and stills[0] != stills[1], stills
            card = page.locator("[class*='st-key-g-card-']").first
            card.hover()
            anim = card.locator("img[src^='data:image/webp']")
            expect(anim).to_be_visible()
            _shot(page, "3-gallery-hover")

            # 6. compare #1 and #2: both videos play, in step, the differences between them
            page.get_by_text("Compare #1").click()
            page.get_by_text("Compare #2").click()
            page.get_by_role("button", name="Compare #1 and #2").click()
            expect(page.get_by_text("What differs")).to_be_visible()
            expect(page.locator(".st-key-cmp-b video")).to_be_attached()
            both_playing_in_step = page.wait_for_function(  # started together once both could play
                """() => { const v = Array.from(document.querySelectorAll("[class*='st-key-cmp-'] video"));
                           return v.length === 2 && v.every(x => x.currentTime > 0 && !x.paused)
                                  && Math.abs(v[0].currentTime - v[1].currentTime) < 0.3
                                  && v.map(x => x.currentTime); }""", timeout=15_000)
            assert len(both_playing_in_step.json_value()) == 2
            _shot(page, "4-compare")
            page.get_by_role("button", name="Close").first.click()

            # 7. details, then branch into chat: a new conversation starts from #1's plan and picture
            page.get_by_role("button", name="Details").first.click()
            expect(page.get_by_text("Parameters", exact=True)).to_be_visible()
            page.get_by_role("button", name="Branch into chat").click()
            expect(page.get_by_text("Branched from #", exact=False)).to_be_visible()
            expect(page.get_by_role("heading", name="Plan")).to_be_visible()

            # 8. New chat, then another picture: a new conversation with that picture; a bad file's error
            # shows at once and goes with the next good file
            page.get_by_role("button", name="New chat").click()
            expect(page.get_by_text("Branched from #", exact=False)).to_have_count(0)
            page.get_by_text("Use another picture").click()
            uploader = page.locator("input[type=file]").first  # the picture's; the end frame's comes after it
            uploader.set_input_files(str(photo.parent / "notes.png"))
            error = page.get_by_text("notes.png is not a picture we can read", exact=False)
            expect(error).to_be_visible(timeout=5_000)  # at once: no other action needed
            _shot(page, "5-bad-file")
            uploader.set_input_files(str(photo.parent / "cat.png"))
            expect(page.get_by_text("Picture: cat.png (451×300)")).to_be_visible(timeout=5_000)
            expect(error).to_have_count(0)
            log_text = page.locator(".st-key-chat_log").inner_text()
            assert "astronaut" not in log_text and "Branched" not in log_text, log_text
            _shot(page, "6-new-chat-cat")
            # 9. typed markdown and HTML are shown as text: the browser fetches nothing they point at
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
        # 10. another name for this machine (as a web page using DNS rebinding would use) gets no studio
        rebind = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                   args=[*CHROMIUM_FLAGS, "--host-resolver-rules=MAP rebind.test 127.0.0.1"])
        try:
            page = rebind.new_page()
            page.goto(url.replace("127.0.0.1", "rebind.test"))
            expect(page.get_by_text("answers to http://127.0.0.1 or http://localhost only")).to_be_visible()
            assert page.get_by_test_id("stChatInputTextArea").count() == 0
        finally:
            rebind.close()
    assert not outside, f"the page fetched from outside the studio: {outside}"
    log = log_path.read_text()
    assert "Traceback" not in log and "Inotify" not in log, log[-3000:]
    lines = [line for line in log.splitlines() if line.strip()]
    assert len(lines) <= 8, log  # the URL lines and little else


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


def test_loop_end_picture_and_batches_of_variations(server, photo):
    """#12 §1, §3 in the browser, one session: "seamless loop" from the chat, Generate; "give me 2 variations"
    renders a batch shown as a grid and "Use this one" makes a clip the plan to refine; an end picture from the
    "End frame" uploader and "end on this picture" render a clip that ends on it; "give me 4 variations" renders
    a grid of 4 clips (every clip so far lasts 0.5 s); "make it 12 seconds" renders a 12 s video in segments."""
    from playwright.sync_api import expect, sync_playwright

    url, log_path = server.url, server.log_path
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
            _shot(page, "7-studio-variations")
            page.get_by_role("button", name="Use this one").nth(1).click()
            expect(page.get_by_text("Picked variation 2 of 2", exact=False)).to_be_visible()

            # the end picture: the "End frame" uploader keeps it; the chat uses it and renders (#4) at once
            page.get_by_text("End frame (optional)").click()
            end_frame = page.get_by_test_id("stExpander").filter(has_text="A picture the clip ends on")
            end_frame.locator("input[type=file]").set_input_files(str(photo.parent / "coffee.png"))
            expect(end_frame.get_by_text("Say “end on this picture” to end the clip on it.")).to_be_visible()
            box.fill("don't loop, end on this picture")
            box.press("Enter")
            expect(page.get_by_text("ends on the end picture you uploaded", exact=False).first).to_be_visible()
            expect(page.get_by_text("#4", exact=True).first).to_be_visible(timeout=RENDER_S * 1000)  # the new result
            expect(page.get_by_text("End frame (optional) · used")).to_be_visible()
            expect(end_frame.get_by_text("The clip ends on this picture.")).to_be_visible()
            _shot(page, "8-studio-end-picture")

            # a batch of 4 from the chat: one grid of 4 clips, each playable and each with "Use this one"
            box.fill("give me 4 variations")
            box.press("Enter")
            expect(page.get_by_text("Render #5–#8 (4 variations)", exact=False)).to_be_visible(timeout=RENDER_S * 1000)
            expect(page.get_by_role("button", name="Use this one")).to_have_count(4, timeout=RENDER_S * 1000)
            page.wait_for_function("() => document.querySelectorAll('video').length === 4",
                                   timeout=RENDER_S * 1000)  # every clip of the grid finished
            captions = page.get_by_test_id("stCaptionContainer").all_inner_texts()
            seeds = [m.group(1) for t in captions if (m := re.fullmatch(r"#\d+ · seed (\d+)", t.strip()))]
            assert len(seeds) == 4 and len(set(seeds)) == 4, " | ".join(captions)  # 4 clips, 4 different seeds
            _shot(page, "9-studio-batch-of-4")

            # a 12 s video from the chat: chained segments, one MP4 that plays 12 s (#12 §2); it renders at once
            page.get_by_role("button", name="Use this one").first.click()
            expect(page.get_by_text("Picked variation 1 of 4", exact=False)).to_be_visible()
            box.fill("don't end on that picture, make it 12 seconds")
            box.press("Enter")
            expect(page.get_by_text("renders as 3 segments", exact=False).first).to_be_visible()
            page.wait_for_function(
                "() => Array.from(document.querySelectorAll('video')).some(v => Math.abs(v.duration - 12) < 0.2)",
                timeout=RENDER_S * 1000)
            _shot(page, "10-studio-12-seconds")
        finally:
            browser.close()
    assert "Traceback" not in log_path.read_text(), log_path.read_text()[-3000:]
