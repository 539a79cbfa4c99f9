"""A scripted visit to the studio (issue #17's acceptance): start it as the README does (`streamlit run
streamlit_app.py` on a free port, the shipped config, a throwaway VIVIDFLOW_HOME, the preview backend,
HF_HUB_OFFLINE=1), drive headless Chromium through Playwright for N minutes — upload a picture, chat, Generate
short clips, refine, ask a question, open the gallery, compare two clips, start a new chat, try a bad file,
reload — and then read the server's log.

Prints the minutes, the turns, renders and page loads, the steps that did not complete, the number of lines in
the server log and every log line with "Traceback", "Error" or "Inotify". Exits 1 when the log has a traceback
or more than 10 lines. A script, not a test:

    .venv/bin/python devtools/scripted_visit.py [--minutes 10] [--keep DIR] [--chromium PATH]
"""

from __future__ import annotations

import argparse
import itertools
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MAX_LOG_LINES = 10
FLAGGED = re.compile(r"Traceback|Error|Inotify")
RENDER_S = 120
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")  # scikit-image's sample photos
ASKS = [  # (a first message, a refinement that renders at once from the result)
    ("make her hair flow in the wind, slow zoom in, half a second", "make it orbit right, same seed"),
    ("the cat's ears twitch, pan left, 0.5 seconds", "slower, new seed"),
    ("steam rises gently, 1 second", "faster steam, zoom out"),
    ("clouds drift, push in slowly, 0.5 seconds", "half a second, orbit left"),
]
NEWEST_ID_JS = """() => Math.max(0, ...Array.from(document.querySelectorAll('[data-testid=stMarkdownContainer] strong'))
    .map(e => (e.textContent.match(/^#(\\d+)$/) || [])[1]).filter(Boolean).map(Number))"""
QUESTIONS = ["what can you do?", "what seed is this?", "why is it slow?"]


@dataclass
class Tally:
    turns: int = 0
    renders: int = 0
    page_loads: int = 0
    steps: int = 0
    failed: list[str] = field(default_factory=list)


def write_pictures(folder: Path) -> list[Path]:
    """scikit-image's sample photos as PNG files, and a text file renamed .png (the bad file, last)."""
    from PIL import Image
    from skimage import data

    paths = []
    for name in PHOTOS:
        path = folder / f"{name}.png"
        Image.fromarray(getattr(data, name)()).convert("RGB").save(path)
        paths.append(path)
    bad = folder / "notes.png"
    bad.write_text("a text file renamed .png")
    return [*paths, bad]


class Visitor:
    """One person's browser tab on the studio; every step counts what it did in `tally`."""

    def __init__(self, page, url: str, tally: Tally, folder: Path) -> None:
        self.page, self.url, self.tally, self.folder = page, url, tally, folder

    def load(self) -> None:
        from playwright.sync_api import expect

        self.page.goto(self.url)
        self.tally.page_loads += 1
        expect(self.page.get_by_test_id("stChatInputTextArea")).to_be_visible()

    def messages(self) -> int:
        return self.page.locator(".st-key-chat_log [data-testid=stChatMessage]").count()

    def say(self, text: str) -> None:
        before = self.messages()
        box = self.page.get_by_test_id("stChatInputTextArea")
        box.fill(text)
        box.press("Enter")
        self.page.wait_for_function(
            f"() => document.querySelectorAll('.st-key-chat_log [data-testid=stChatMessage]').length >= {before + 2}")
        self.tally.turns += 1

    def open_uploader(self) -> None:
        """Open "Use another picture" when it is there and closed (a click on an open one would close it, and
        hide the error it shows)."""
        closed = self.page.evaluate(
            """() => { const d = Array.from(document.querySelectorAll('details'))
                                      .find(x => x.textContent.includes('Use another picture'));
                       return Boolean(d && !d.open); }""")
        if closed:
            self.page.get_by_text("Use another picture").first.click()

    def upload(self, picture: Path) -> None:
        from playwright.sync_api import expect

        self.open_uploader()
        self.page.locator("input[type=file]").first.set_input_files(str(picture))
        expect(self.page.get_by_text(f"Picture: {picture.name}", exact=False).first).to_be_visible()

    def bad_file(self, bad: Path, good: Path) -> None:
        from playwright.sync_api import expect

        self.upload_raw(bad)
        expect(self.page.get_by_text(f"{bad.name} is not a picture we can read", exact=False).first).to_be_visible()
        self.upload(good)

    def upload_raw(self, path: Path) -> None:
        self.open_uploader()
        self.page.locator("input[type=file]").first.set_input_files(str(path))

    def newest_id(self) -> int:
        """The largest result number (**#N**) on the page, 0 when none."""
        return self.page.evaluate(NEWEST_ID_JS)

    def wait_render(self, before: int) -> None:
        """Until a result numbered past `before` shows (renders are counted from the numbers shown)."""
        self.page.wait_for_function(f"() => ({NEWEST_ID_JS})() > {int(before)}", timeout=RENDER_S * 1000)

    def generate(self) -> None:
        before = self.newest_id()
        self.page.get_by_role("button", name="Generate").click()
        self.wait_render(before)
        self.tally.renders += 1

    def refine(self, text: str) -> None:
        """A chat turn after a result: the studio renders the refined plan at once."""
        before = self.newest_id()
        self.say(text)
        self.wait_render(before)
        self.tally.renders += 1

    def gallery_and_compare(self) -> None:
        from playwright.sync_api import expect

        page = self.page
        page.get_by_role("link", name="Gallery").click()
        expect(page.get_by_role("heading", name="Gallery")).to_be_visible()
        boxes = page.get_by_text(re.compile(r"^Compare #\d+$"))
        if boxes.count() >= 2:
            boxes.nth(0).click()
            boxes.nth(1).click()
            page.get_by_role("button", name=re.compile(r"^Compare #\d+ and #\d+$")).click()
            expect(page.get_by_text("What differs")).to_be_visible()
            page.wait_for_timeout(1500)  # both play a little
            page.get_by_role("button", name="Close").first.click()
        page.get_by_role("link", name="Studio").click()
        expect(page.get_by_test_id("stChatInputTextArea")).to_be_visible()

    def new_chat(self) -> None:
        """A new conversation: the previous one's messages leave the chat (the greeting stays alone)."""
        self.page.get_by_role("button", name="New chat").click()
        self.page.wait_for_function(
            "() => document.querySelectorAll('.st-key-chat_log [data-testid=stChatMessage]').length <= 1")


def step(v: Visitor, name: str, action, *args) -> None:
    """Run one step; one that does not complete (a slow machine, a changed label) is noted with a screenshot
    in the visit's folder, the page is loaded afresh and the visit goes on."""
    tally = v.tally
    tally.steps += 1
    try:
        action(*args)
    except Exception as e:  # noqa: BLE001 - the visit reports every failed step, and continues
        first = str(e).splitlines()[0][:160] if str(e) else ""
        shot = v.folder / f"failed-{len(tally.failed) + 1}-{name.replace(' ', '-')}.png"
        tally.failed.append(f"{name}: {type(e).__name__}: {first} ({shot.name})")
        try:
            v.page.screenshot(path=str(shot), full_page=True)
            v.load()
        except Exception as again:  # noqa: BLE001
            tally.failed.append(f"reload after {name}: {type(again).__name__}")


def visit(minutes: float, folder: Path, chromium: str) -> tuple[Tally, float, Path]:
    from playwright.sync_api import expect, sync_playwright

    from devtools.browser import CHROMIUM_FLAGS, streamlit_server

    *photos, bad = write_pictures(folder)
    tally = Tally()
    started = time.monotonic()
    deadline = started + minutes * 60
    with streamlit_server(folder) as srv, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            page.set_default_timeout(30_000)
            expect.set_options(timeout=30_000)
            v = Visitor(page, srv.url, tally, folder)
            step(v, "load", v.load)
            for rnd in itertools.count():
                if time.monotonic() >= deadline:
                    break
                photo, (first, refinement) = photos[rnd % len(photos)], ASKS[rnd % len(ASKS)]
                step(v, "upload", v.upload, photo)
                step(v, "chat", v.say, first)
                step(v, "generate", v.generate)
                step(v, "refine", v.refine, refinement)
                step(v, "question", v.say, QUESTIONS[rnd % len(QUESTIONS)])
                if time.monotonic() >= deadline:
                    break
                step(v, "gallery", v.gallery_and_compare)
                step(v, "new chat", v.new_chat)
                if rnd % 2 == 1:
                    step(v, "bad file", v.bad_file, bad, photos[(rnd + 1) % len(photos)])
                if rnd % 3 == 2:
                    step(v, "reload", v.load)
        finally:
            browser.close()
    return tally, (time.monotonic() - started) / 60, srv.log_path


def report(tally: Tally, minutes: float, log_path: Path) -> int:
    lines = [line for line in log_path.read_text(errors="replace").splitlines() if line.strip()]
    flagged = [line for line in lines if FLAGGED.search(line)]
    print(f"scripted visit: {minutes:.1f} min · {tally.turns} chat turns · {tally.renders} renders · "
          f"{tally.page_loads} page loads · {tally.steps} steps, {len(tally.failed)} not completed")
    for failure in tally.failed[:20]:
        print(f"  step not completed: {failure}")
    print(f"server log: {len(lines)} lines ({log_path})")
    for line in flagged[:40]:
        print(f"  {line[:300]}")
    traceback = any("Traceback" in line for line in lines)
    quiet = not traceback and len(lines) <= MAX_LOG_LINES
    print("server log: quiet" if quiet else
          f"server log: NOT quiet ({'a traceback' if traceback else f'more than {MAX_LOG_LINES} lines'})")
    return 0 if quiet else 1


def main(argv: list[str] | None = None) -> int:
    from devtools.browser import find_chromium, missing_browser_parts
    from vividflow.errors import VividflowError

    ap = argparse.ArgumentParser(prog="devtools/scripted_visit.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0, help="how long to keep visiting (default 10)")
    ap.add_argument("--keep", type=Path, help="a folder to keep the data folder and server log in "
                                               "(default: a temporary folder, removed at the end)")
    ap.add_argument("--chromium", help="the Chromium executable (default: chromium on PATH, else /usr/bin/chromium)")
    args = ap.parse_args(argv)
    if not 0 < args.minutes <= 24 * 60:
        ap.error(f"--minutes must be more than 0 and at most 1440, got {args.minutes:g}")
    chromium = find_chromium(args.chromium)
    if missing := missing_browser_parts(chromium):
        raise VividflowError("cannot drive a browser: missing " + " and ".join(missing))
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        tally, minutes, log_path = visit(args.minutes, args.keep, chromium)
        return report(tally, minutes, log_path)
    with tempfile.TemporaryDirectory(prefix="vividflow-visit-") as tmp:
        tally, minutes, log_path = visit(args.minutes, Path(tmp), chromium)
        return report(tally, minutes, log_path)


if __name__ == "__main__":
    from vividflow.boundary import run_cli

    sys.exit(run_cli(main, prog="devtools/scripted_visit.py"))
