"""Reading a message clause by clause: splitting a normalised message into clauses, the `Clause` being read
(a matcher blanks out the words it used, so no later matcher reads them twice), the `Turn` the clauses
build up, and the degree, pace and strength words shared by the matchers."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from agent import vocabulary as V
from agent.edits import SESSION_OPS, AddMotion, Edit, RemoveMotion, ScaleCamera, SetCamera, SetDuration, SetSteps
from agent.languages import translate
from agent.plan import LIMITS, MotionPlan
from agent.rules import patterns as P
from agent.spelling import correct

log = logging.getLogger(__name__)

MIN_FACTOR, MAX_FACTOR = 0.02, 10.0  # the range a ScaleMotion / ScaleCamera factor may take
MAX_CLAUSE_CHARS = 300  # a longer clause (no punctuation or "and" in 300 characters) is read in pieces

# Phrases kept whole when a message is split into clauses ("back and forth" is not two clauses).
_PROTECT = (
    ("back and forth", "back_and_forth"), ("side to side", "side_to_side"), ("and a half", "and_a_half"),
    ("rises and falls", "rises_and_falls"), ("rise and fall", "rise_and_fall"),
    ("tilt and smile", "tilt_and_smile"), ("in and out", "in_and_out"), ("up and down", "up_and_down"),
    ("black and white", "black_and_white"), ("rock and roll", "rock_and_roll"), ("one with", "one_with"),
    ("again but different", "again_but_different"), ("same but different", "same_but_different"),
)
_SPLIT_RE = re.compile(
    r"[,;.!?]+(?!\d)|\s-\s|\b(?:and\s+then|and\s+also|then|but|and|plus|with|while|whilst|although|though|also)\b"
    r"|\bas\b(?=\s+(?:the|she|he|they|it|her|his|its|their|we)\b)"
)
_HANDS_WAVE_FIX = re.compile(r"\bwaves\s+(hello|hi|goodbye|bye|at)\b")
_GENERIC_WAVES_FIX = re.compile(r"\b(" + "|".join(re.escape(n) for n in V.GENERIC_OBJECTS) + r")\s+waves\b")
_PRONOUN_WAVES_FIX = re.compile(r"\b(she|he|they|person|man|woman|girl|boy|guy|lady|kid|child)\s+waves\b")
_RELATIVE_FIX = re.compile(r"\b(shorter|longer)\s*,?\s*(?:like|maybe|say|about|around|by|so)?\s*(?:half|double|twice)\b"
                           r"(?:\s+(?:as\s+long|the\s+length))?")
_NUMBER_PAIR = re.compile(r"(\d)\s+and\s+(\d)")
_THE_LIGHT_FIX = re.compile(r"\b(?:her|his|its|their|some|more)\s+light\b")
_WORD_RE = re.compile(r"[a-z0-9#][a-z0-9_'#-]*")


@dataclass
class Clause:
    """One clause being read: the text with used words blanked out."""

    text: str
    original: str
    understood: bool = False

    def take_all_text(self) -> None:
        """The whole clause is used (a question, "nevermind")."""
        self.text = " " * len(self.text)
        self.understood = True

    def take(self, m: re.Match[str]) -> None:
        """Blank out a match so no later matcher reads it; the clause counts as understood."""
        s, e = m.span()
        self.text = self.text[:s] + " " * (e - s) + self.text[e:]
        self.understood = True

    def used_up(self) -> bool:
        """Every word of the clause was used (only blanks, punctuation or filler left)."""
        return not _WORD_RE.search(self.text)

    def search(self, pattern: re.Pattern[str]) -> re.Match[str] | None:
        return pattern.search(self.text)

    def has(self, pattern: re.Pattern[str]) -> bool:
        return pattern.search(self.text) is not None


@dataclass
class Turn:
    """What one message is turning into."""

    plan: MotionPlan  # the plan the message refers to (the template default on a first message)
    template_locked: bool
    hands_in_view: bool
    new: bool = False  # no plan yet: `plan` is only the start the first message is read against
    edits: list[Edit] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    unparsed: list[str] = field(default_factory=list)
    last_subjects: list[str] = field(default_factory=list)
    previous_targets: list[str] = field(default_factory=list)  # what the last message was about ("camera" too)
    previous_message: str = ""  # the person's last message before this one
    previous_edits: Callable[[], list[Edit]] = list  # the last message's edits, parsed again when asked for
    answers: list[str] = field(default_factory=list)  # answers to the questions asked
    cancel: bool = False  # "nevermind"

    # what the edits so far have made of the camera, the length and each motion, kept up to date by `add` so a
    # matcher's question costs the same however many edits came before (a long message stays linear)
    _camera: tuple[str, float] | None = field(default=None, repr=False)
    _duration: float | None = field(default=None, repr=False)
    _steps: int | None = field(default=None, repr=False)
    _motions: dict[str, object] = field(default_factory=dict, repr=False)  # subject -> Motion/AddMotion or None
    _added: dict[str, None] = field(default_factory=dict, repr=False)  # subjects of AddMotion edits, first said first

    def add(self, edit: Edit) -> None:
        self.edits.append(edit)
        if isinstance(edit, SetCamera):
            _, speed = self.camera()
            speed = edit.speed if edit.speed is not None and edit.move != "static" else speed
            self._camera = (edit.move, speed)
        elif isinstance(edit, ScaleCamera):
            move, speed = self.camera()
            self._camera = (move, speed * edit.factor)
        elif isinstance(edit, SetDuration):
            self._duration = min(max(edit.seconds, LIMITS["duration_s"][0]), LIMITS["duration_s"][1])
        elif isinstance(edit, SetSteps):
            self._steps = edit.steps
        elif isinstance(edit, AddMotion):
            self._motions[edit.subject] = edit
            self._added.setdefault(edit.subject)
        elif isinstance(edit, RemoveMotion):
            self._motions[edit.subject] = None

    def camera(self) -> tuple[str, float]:
        """(move, speed) of the camera after the edits so far."""
        if self._camera is None:
            return self.plan.camera.move, self.plan.camera.speed
        return self._camera

    def duration(self) -> float:
        """The clip length after the edits so far (clamped as `apply` will)."""
        return self.plan.duration_s if self._duration is None else self._duration

    def steps(self) -> int:
        """The number of steps after the edits so far."""
        return self.plan.steps if self._steps is None else self._steps

    def motion(self, subject: str):  # -> Motion | AddMotion | None, after the edits so far
        if subject in self._motions:
            return self._motions[subject]
        return self.plan.motion(subject)

    def added_subjects(self) -> list[str]:
        """The subjects that AddMotion edits so far made move, in the order first said."""
        return list(self._added)


def read_message(raw: str) -> tuple[str, str, list[tuple[str, str]]]:
    """A message as the matchers read it: normalised, another language's words in English, typos of an English
    message corrected. Returns (text, language, typos read)."""
    text, lang = translate(V.normalize(raw))
    if lang != "en":
        return text, lang, []
    text, typos = correct(text)
    return text, lang, typos


def split_clauses(text: str) -> list[str]:
    """Clauses of a normalised message; protected phrases ("back and forth") stay whole."""
    for phrase, joined in _PROTECT:
        text = text.replace(phrase, joined)
    text = P.ARTIFACT_LIST_RE.sub(lambda m: re.sub(r"\s*,\s*(?:and\s+|or\s+)?|\s+and\s+", " or ", m.group(0)), text)
    text = _RELATIVE_FIX.sub(lambda m: "half_as_long" if m.group(1) == "shorter" else "twice_as_long", text)
    text = _NUMBER_PAIR.sub(r"\1/\2", text)
    text = _HANDS_WAVE_FIX.sub(r"waving \1", text)
    text = _PRONOUN_WAVES_FIX.sub(r"\1 waving", text)
    text = _GENERIC_WAVES_FIX.sub(r"\1 waving", text)  # "the flag waves": a verb, not the sea
    text = _THE_LIGHT_FIX.sub("the light", text)
    return [piece for c in _SPLIT_RE.split(text) if c and c.strip() for piece in _bounded(c.strip())]


def _bounded(clause: str) -> list[str]:
    """A clause in pieces of at most MAX_CLAUSE_CHARS, cut at spaces. Real clauses are far shorter (the longest
    in the conversation tables is about 120 characters); the bound keeps a matcher's work on a clause (each
    blanked match is searched for again from the start) constant, so a message costs time linear in its length."""
    pieces = []
    while len(clause) > MAX_CLAUSE_CHARS:
        cut = clause.rfind(" ", MAX_CLAUSE_CHARS // 2, MAX_CLAUSE_CHARS + 1)
        cut = cut if cut > 0 else MAX_CLAUSE_CHARS
        pieces.append(clause[:cut].strip())
        clause = clause[cut:].strip()
    if clause:
        pieces.append(clause)
    return [p for p in pieces if p]


def is_meaningful(clause: str) -> bool:
    return any(w not in V.FILLER for w in _WORD_RE.findall(clause))


def ordered(edits: list[Edit]) -> list[Edit]:
    """Session edits (recall, undo, reset) first, then the rest in the order said; exact repeats dropped."""
    out: list[Edit] = []
    seen: set[Edit] = set()
    for e in [e for e in edits if e.op in SESSION_OPS] + [e for e in edits if e.op not in SESSION_OPS]:
        if e not in seen:
            seen.add(e)
            out.append(e)
    return out


def take_all(c: Clause, pattern: re.Pattern[str]) -> bool:
    found = False
    while (m := c.search(pattern)) is not None:
        c.take(m)
        found = True
    return found


def number_value(word: str) -> float | None:
    try:
        return float(word)
    except ValueError:
        return V.NUMBER_WORDS.get(word)


def degree_of(c: Clause) -> str:
    if c.has(P.STRONG_RE):
        return "strong"
    if c.has(P.MILD_RE):
        return "mild"
    return "normal"


def read_pace(c: Clause, degree: str, *, take: bool) -> tuple[str | None, float, int]:
    """(kind, value, direction) of the pace said: kind "comparative" (value is a factor: "slower", "twice as
    fast") or "absolute" (value is a speed: "slow", "quickly") or None; direction -1 slower, +1 faster."""
    m = c.search(P.TIMES_RE)
    if m:
        said = m.group(0)
        factor = V.TIMES_WORDS.get(said.split()[0])
        if factor is None:
            num = re.match(r"(\d+(?:\.\d+)?)", said)
            factor = float(num.group(1)) if num else 2.0
        if "slow" in said and factor > 1:
            factor = 1 / factor
        if not MIN_FACTOR <= factor <= MAX_FACTOR:
            log.info("scale factor %s out of %s..%s, clamped", factor, MIN_FACTOR, MAX_FACTOR)
            factor = min(max(factor, MIN_FACTOR), MAX_FACTOR)
        if take:
            c.take(m)
        return "comparative", factor, (1 if factor > 1 else -1)
    for pattern, factor in ((P.HALF_SPEED_RE, 0.5), (P.DOUBLE_SPEED_RE, 2.0)):
        m = c.search(pattern)
        if m:
            if take:
                c.take(m)
            return "comparative", factor, (1 if factor > 1 else -1)
    return _graded(c, degree, P.PACE_WORDS, take=take)


def read_strength(c: Clause, degree: str, *, take: bool) -> tuple[str | None, float, int]:
    """Like `read_pace` for intensity: "more"/"subtler" (comparative), "gently"/"dramatically" (absolute)."""
    return _graded(c, degree, P.STRENGTH_WORDS, take=take)


def _graded(c: Clause, degree: str, words: P.Graded, *, take: bool) -> tuple[str | None, float, int]:
    """The first of `words` the clause says: (kind, the value for `degree`, direction); the degree words go too."""
    for pattern, kind, table, direction in words:
        if c.has(pattern):
            if take:
                take_all(c, pattern)
                take_all(c, P.MILD_RE)
                take_all(c, P.STRONG_RE)
            return kind, table[degree], direction
    return None, 1.0, 0


def clamp_speed(value: float) -> float:
    lo, hi = LIMITS["speed"]
    return round(min(max(value, lo), hi), 3)
