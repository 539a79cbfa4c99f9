"""Words for long videos, story mode, smoother and larger output (#12 §2 §4 §5).

Message level (before the clauses are split, since the phrases hold "and" and "then"): the story order ("go from
the first photo to the second, then the third"), a transition's pace ("slower between 2 and 3"), story mode on
and off. Clause level: "smoother" / "32 fps" / "no interpolation", and "in 720p" / "twice as large" / "original
size". Durations ("make it 12 seconds") are read by the duration words: past 5 s the video is chained segments.
"""

from __future__ import annotations

import re

from agent.edits import Edit
from agent.edits_long import ScaleTransition, SetOutputFps, SetStory, SetUpscale
from agent.plan import LIMITS, STORY_PICTURES, SUBJECTS, MotionPlan
from agent import vocabulary as V
from agent.rules.clauses import Clause, Turn

_ORDINALS = {"first": 1, "1st": 1, "one": 1, "second": 2, "2nd": 2, "two": 2, "third": 3, "3rd": 3, "three": 3,
             "fourth": 4, "4th": 4, "four": 4, "fifth": 5, "5th": 5, "five": 5, "sixth": 6, "6th": 6, "six": 6,
             "last": -1}
_PIC = r"(?:photos?|pictures?|pics?|images?|shots?|ones?|frames?)"
_ORD = V.alternation(("first", "second", "third", "fourth", "fifth", "sixth", "last", "1st", "2nd", "3rd", "4th", "5th",
                      "6th"))
# one picture named: "the second photo", "the third", "picture 2", "photo #3", "image three"
_REF = (rf"(?:(?:the\s+)?{_ORD}(?:\s+{_PIC})?|{_PIC}\s+(?:number\s+|no\.?\s*|#\s*)?(?:[1-6]|one|two|three|four|five|six)"
        rf"|(?:the\s+)?(?:one|two|three|four|five|six)(?:\s+{_PIC})?)")
_NEXT = r"(?:\s*,\s*|\s+)(?:and\s+)?(?:then\s+)?(?:on\s+)?(?:to\s+|into\s+|towards?\s+)?(?:finally\s+)?"
STORY_ORDER = re.compile(
    rf"\b(?:(?:go|move|travel|transition|morph|pass|animate|start)\s+)?from\s+(?P<refs>{_REF}\s+(?:to|into|towards?)\s+"
    rf"{_REF}(?:{_NEXT}{_REF})*)")
_ONE_REF = re.compile(rf"{_ORD}|\b[1-6]\b|\b(?:one|two|three|four|five|six)\b")
BETWEEN = re.compile(
    rf"\bbetween\s+(?:the\s+)?(?P<a>{_ORD}|[1-6]|one|two|three|four|five|six)(?:\s+{_PIC})?\s+and\s+(?:the\s+)?"
    rf"(?P<b>{_ORD}|[1-6]|one|two|three|four|five|six)(?:\s+{_PIC})?")
PACE = re.compile(r"\b(?P<deg>a\s+(?:bit|little)\s+|much\s+|way\s+|a\s+lot\s+)?(?P<dir>slower|faster|quicker|"
                  r"more\s+slowly|more\s+quickly|longer|shorter)\b")
STORY_OFF = re.compile(r"\b(?:no|stop\s+the|turn\s+off(?:\s+the)?|end\s+the|without(?:\s+the)?|exit)\s+story(?:\s+mode)?\b"
                       r"|\bstory\s+mode\s+off\b|\bjust\s+the\s+first\s+(?:photo|picture|image)\b")
STORY_ON = re.compile(r"\bstory\s+mode\b|\b(?:make|tell|turn\s+(?:them|it)\s+into)\s+a\s+story\b"
                      r"|\b(?:use|animate|with)\s+all\s+(?:the\s+|my\s+)?(?:photos|pictures|images)\b")

# smoother: frame interpolation ("smoother camera" is a steadier camera, read elsewhere)
SMOOTHER = re.compile(
    r"\b(?:smoother|more\s+(?:smooth|fluid))(?=\s*$|\s+(?:video|clip|playback|motion|frames?|frame\s+rate|output|"
    r"result|please|overall|animation)\b)|\b(?:silky|buttery)\s+smooth\b|\bsmooth\s+it\s+out\b|\bless\s+(?:choppy|"
    r"stuttery|jerky|stuttering)\b|\b(?:frame\s+)?interpolat(?:e|ed|ion)\b(?!\s+off)|\bhigher\s+frame\s*rate\b")
FPS = re.compile(r"\b(?P<n>\d{1,3})\s*(?:fps|frames?\s+(?:per|a)\s+second)\b")
SMOOTHER_OFF = re.compile(
    r"\b(?:no|without|skip|turn\s+off|stop|remove)\s+(?:the\s+)?(?:frame\s+)?(?:interpolation|smoothing)\b"
    r"|\binterpolation\s+off\b|\boriginal\s+frame\s*rate\b|\bnot\s+(?:so\s+)?smooth\b|\bless\s+smooth\b")
# larger: upscale on export
HEIGHT = re.compile(r"\b(?P<h>240|360|480|540|720|1080|1440|2160)\s*p\b|\b(?P<name>full\s+hd|ultra\s+hd|uhd|4k|2k|hd)\b")
FACTOR = re.compile(
    r"\b(?P<f>twice|double|two\s+times|2\s*[x×]|three\s+times|triple|3\s*[x×]|four\s+times|4\s*[x×])\s+"
    r"(?:as\s+)?(?:large|big|bigger|larger|the\s+(?:size|resolution)|(?:the\s+)?resolution|size|upscale[ds]?)\b"
    r"|\bupscale[ds]?(?:\s+(?:it|the\s+video|this))?(?:\s+(?:by\s+)?(?P<g>[234])\s*[x×]|\s+(?P<w>twice|2x))?\b"
    r"|\b(?P<hi>higher|more)\s+resolution\b")
UPSCALE_OFF = re.compile(r"\b(?:no|without|skip|turn\s+off|stop|remove)\s+(?:the\s+)?upscal\w*\b"
                         r"|\b(?:original|native|normal)\s+(?:size|resolution)\b|\bnot\s+(?:so\s+)?(?:large|big)\s+a\s+video\b")
_SUBJECTS = re.compile(r"\b" + V.alternation((*SUBJECTS, "camera", "zoom", "pan", "wave", "waves", "ocean", "sea", "lake",
                                                "river")) + r"\b")
_HEIGHT_NAMES = {"full hd": 1080, "ultra hd": 2160, "uhd": 2160, "4k": 2160, "2k": 1440, "hd": 720}
_FACTOR_WORDS = {"twice": 2.0, "double": 2.0, "two times": 2.0, "2x": 2.0, "2×": 2.0, "three times": 3.0,
                 "triple": 3.0, "3x": 3.0, "3×": 3.0, "four times": 4.0, "4x": 4.0, "4×": 4.0}
_PACE = {"slower": 0.6, "more slowly": 0.6, "longer": 0.6, "faster": 1.6, "quicker": 1.6, "more quickly": 1.6,
         "shorter": 1.6}


def _number(word: str, count: int) -> int:
    n = _ORDINALS.get(word)
    if n is None:
        n = int(word) if word.isdigit() else 0
    return count if n == -1 else n


def read_story(text: str, plan: MotionPlan | None) -> tuple[str, list[Edit], list[str]]:
    """(text with the story phrases blanked, their edits, notes): the order, a transition's pace, on and off."""
    edits: list[Edit] = []
    notes: list[str] = []
    count = len(plan.story_images) if plan is not None else 0

    def blank(m: re.Match[str]) -> None:
        nonlocal text
        s, e = m.span()
        text = text[:s] + " " * (e - s) + text[e:]

    if (m := STORY_OFF.search(text)) is not None:
        edits.append(SetStory(order=()))
        blank(m)
    if (m := STORY_ORDER.search(text)) is not None:
        refs = [_number(w, max(count, 2)) for w in _ONE_REF.findall(m.group("refs"))]
        refs = [r for r in refs if 1 <= r <= STORY_PICTURES[1]]
        if len(refs) >= STORY_PICTURES[0]:
            edits.append(SetStory(order=tuple(refs)))
            blank(m)
    elif (m := STORY_ON.search(text)) is not None and not edits:
        edits.append(SetStory(order=tuple(range(1, STORY_PICTURES[1] + 1))))  # 1…6: all of them, in upload order
        blank(m)
    while (m := BETWEEN.search(text)) is not None:
        a, b = sorted((_number(m.group("a"), count), _number(m.group("b"), count)))
        pace = PACE.search(text)
        blank(m)
        if pace is None:
            continue
        if b - a != 1:
            notes.append(f"transitions go between neighbouring pictures: {a} and {b} are not neighbours")
            blank(pace)
            continue
        factor = _PACE[re.sub(r"\s+", " ", pace.group("dir"))]
        deg = (pace.group("deg") or "").strip()
        if deg.startswith(("a bit", "a little")):
            factor = 0.8 if factor < 1 else 1.25
        elif deg:
            factor = 0.4 if factor < 1 else 2.5
        edits.append(ScaleTransition(index=a, factor=factor))
        blank(pace)
    return text, edits, notes


def read_smoother_larger(c: Clause, turn: Turn) -> None:
    """Frame interpolation and upscaling words in one clause."""
    lo, hi = LIMITS["output_fps"]
    if (m := c.search(SMOOTHER_OFF)) is not None:
        c.take(m)
        turn.add(SetOutputFps(fps=None))
    elif (m := c.search(FPS)) is not None:
        c.take(m)
        fps = int(m.group("n"))
        if fps > hi:
            turn.notes.append(f"{fps} fps is more than the {int(hi)} fps maximum: set to {int(hi)} fps")
            fps = int(hi)
        turn.add(SetOutputFps(fps=fps if fps > turn.plan.fps else None) if fps >= lo else SetOutputFps(fps=None))
        if fps < lo:
            turn.notes.append(f"the video is rendered at {turn.plan.fps} fps: {fps} fps is not offered, kept {turn.plan.fps}")
    elif (m := c.search(SMOOTHER)) is not None and not c.has(_SUBJECTS):  # "smoother water" is the water's motion
        c.take(m)
        turn.add(SetOutputFps(fps=2 * turn.plan.fps))
    if (m := c.search(UPSCALE_OFF)) is not None:
        c.take(m)
        turn.add(SetUpscale())
    elif (m := c.search(HEIGHT)) is not None:
        c.take(m)
        height = int(m.group("h")) if m.group("h") else _HEIGHT_NAMES[re.sub(r"\s+", " ", m.group("name"))]
        turn.add(SetUpscale(height=height))
    elif (m := c.search(FACTOR)) is not None:
        c.take(m)
        word = m.group("f") or m.group("g") or m.group("w")
        word = re.sub(r"\s+", " ", word) if word else ""
        factor = _FACTOR_WORDS.get(word.replace(" x", "x").replace(" ×", "×"), float(word) if word.isdigit() else 2.0)
        turn.add(SetUpscale(factor=factor))
