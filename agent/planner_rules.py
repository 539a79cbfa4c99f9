"""The rule planner: a chat message becomes a list of edit operations, deterministically, with no model.

A message is normalised (lower case, contractions expanded), split into clauses at punctuation and at
"and", "but", "then", "with", "while", and each clause goes through matchers in a fixed order:
references and undo/reset, seed, steps, guidance, duration, prompt, camera, template, negations,
"only X", atmosphere, motions, then comparatives that name nothing ("slower" = everything slower).
A matcher blanks out the words it used, so a later matcher never reads them twice ("faster render"
is about steps, not motion). A clause that no matcher understood is reported in `unparsed`.

The words themselves live in agent.vocabulary.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Sequence

from agent import vocabulary as V
from agent.edits import (
    AddAtmosphere,
    AddMotion,
    AddNegative,
    RemoveNegative,
    Edit,
    ParseResult,
    Recall,
    RemoveAtmosphere,
    RemoveMotion,
    Reset,
    ScaleCamera,
    ScaleMotion,
    SESSION_OPS,
    MAX_EDITS_PER_TURN,
    SetCamera,
    SetDuration,
    SetGuidance,
    SetPrompt,
    SetSeed,
    SetSteps,
    SetTemplate,
    Undo,
)
from agent.plan import LIMITS, MAX_SEED, QUALITY_STEPS, MotionPlan

log = logging.getLogger(__name__)

DEFAULT_TEMPLATE = "portrait_subtle"  # a first message that names no category starts here
MIN_FACTOR, MAX_FACTOR = 0.02, 10.0  # the range a ScaleMotion / ScaleCamera factor may take

# --- compiled patterns ------------------------------------------------------------------------------


def _words(phrases: Sequence[str]) -> re.Pattern[str]:
    return re.compile(r"(?<![\w#])" + V.alternation(phrases) + r"(?![\w])")


_SUBJECT_RE = _words(tuple(V.SUBJECT_SYNONYMS))
_ACTION_RE = _words(tuple(V.ACTIONS))
_DIRECTION_RE = re.compile(r"^\s*(?:her\s+|his\s+|its\s+|their\s+|the\s+)?(?:head\s+|eyes\s+|gaze\s+)?"
                           + V.alternation(V.DIRECTIONS) + r"\b")
_ATMOSPHERE_RE = _words(tuple(V.ATMOSPHERE_SYNONYMS))
_MILD_RE = _words(V.MILD_WORDS)
_STRONG_RE = _words(V.STRONG_WORDS)
_SLOWER_RE = _words(V.SLOWER_WORDS)
_FASTER_RE = _words(V.FASTER_WORDS)
_SLOW_RE = _words(V.SLOW_WORDS)
_FAST_RE = _words(V.FAST_WORDS)
_MORE_RE = _words(V.MORE_WORDS)
_LESS_RE = _words(V.LESS_WORDS)
_GENTLE_RE = _words(V.GENTLE_WORDS)
_STRONGLY_RE = _words(V.STRONG_MOTION_WORDS)
_NUM = r"(\d+(?:\.\d+)?)"
_TIMES_RE = re.compile(
    r"\b(?:" + V.alternation(V.TIMES_WORDS) + r"|" + _NUM + r"\s*(?:x|times))\s+(?:as\s+)?"
    r"(fast|faster|quick|quicker|slow|slower|the\s+speed|speed)\b"
)
_HALF_SPEED_RE = re.compile(r"\bhalf\s+(?:the\s+)?speed\b|\bhalf\s+as\s+fast\b")
_DOUBLE_SPEED_RE = re.compile(r"\bdouble\s+(?:the\s+)?speed\b")
_CAMERA_WORD_RE = _words(V.CAMERA_WORDS)
_CAMERA_PATTERNS = tuple((re.compile(p), move, needs) for p, move, needs in V.CAMERA_PATTERNS)
_CAMERA_FAMILY_RE = _words(tuple(V.CAMERA_FAMILY))

_NUMBER_WORD = V.alternation(k for k in V.NUMBER_WORDS if k not in ("a", "an"))
_ANY_NUMBER = r"(\d+(?:\.\d+)?|" + _NUMBER_WORD + r"|a|an)"
_DURATION_DELTA_RE = re.compile(
    _ANY_NUMBER + r"(?:\s+and_a_half)?\s*(?:s|sec|secs|second|seconds)\s+(longer|shorter|more|less)\b"
)
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)[\s-]*(?:s|sec|secs|second|seconds)\b"
                          r"|\b(?:duration|length|clip\s+length|runtime)\s*(?:to|of|=|:|at|is)?\s*(\d+(?:\.\d+)?)\b")
_DURATION_WORDS_RE = re.compile(r"\b(" + _NUMBER_WORD + r")(\s+and_a_half)?\s+(?:second|seconds|secs)\b")
_HALF_SECOND_RE = re.compile(r"\b(?:half\s+a\s+second|a\s+half\s+second|half\s+second)\b")
_ONE_AND_HALF_RE = re.compile(r"\ba\s+second\s+and_a_half\b")
_A_SECOND_RE = re.compile(r"\b(?:a|one)\s+second\b(?!\s+(?:" + "|".join(V.GENERATION_NOUNS) + r"|longer|shorter)\b)")
_MINUTES_RE = re.compile(_ANY_NUMBER + r"\s*(?:min|mins|minute|minutes)\b")
_FRAMES_RE = re.compile(r"\b(\d+)\s*frames\b")
_LONGER_RE = _words(V.LONGER_WORDS)
_SHORTER_RE = _words(V.SHORTER_WORDS)
_LONGEST_RE = _words(V.LONGEST_WORDS)
_SHORTEST_RE = _words(V.SHORTEST_WORDS)

_STEPS_RE = re.compile(r"\b(\d+|" + _NUMBER_WORD + r")\s*(?:inference\s+|sampling\s+|denoising\s+)?steps?\b"
                       r"|\bsteps?\s*(?:to|=|:|at|of)\s*(\d+)\b")
_QUALITY_UP_RE = _words(V.QUALITY_UP)
_QUALITY_MAX_RE = _words(V.QUALITY_MAX)
_QUALITY_DOWN_RE = _words(V.QUALITY_DOWN)
_QUALITY_MIN_RE = _words(V.QUALITY_MIN)

_GUIDANCE_BEFORE_RE = re.compile(r"\b(\d+(?:\.\d+)?)\s*(?:guidance|cfg)\b")
_GUIDANCE_RE = re.compile(
    r"\b(?:(high|low)[- ]noise\s+)?(?:guidance|cfg)(?:\s+scales?)?\s*(?:to|of|at|=|:|is)?\s*" + _NUM
    + r"(?:\s*(?:and|/|,)\s*" + _NUM + r")?"
)
_GUIDANCE_MORE_RE = re.compile(r"\b(?:more|stronger|higher|increase(?:\s+the)?)\s+(?:guidance|cfg)\b"
                               r"|\bfollow\s+the\s+prompt\s+more\b")
_GUIDANCE_LESS_RE = re.compile(r"\b(?:less|weaker|lower|decrease(?:\s+the)?)\s+(?:guidance|cfg)\b")
_GUIDANCE_OFF_RE = re.compile(r"\b(?:no|disable|turn\s+off(?:\s+the)?|without)\s+(?:guidance|cfg)\b")

_SEED_VALUE_RE = re.compile(r"\bseed\s*(?:=|:|#|to|of|number|no)?\s*(\d+)\b")
_SEED_SAME_RE = _words(V.SEED_SAME)
_SEED_NEW_RE = _words(V.SEED_NEW)

_UNDO_RE = re.compile(r"(?<![\w])" + V.alternation(p for p in V.UNDO_PHRASES if p != "go back")
                      + r"(?![\w])|\bgo\s+back\b(?!\s+to\b)|\bgo\s+back\s+to\s+(?:the\s+)?(?:previous|last|old)\s+"
                        r"(?:plan|settings?|state)\b")
_RESET_RE = _words(V.RESET_PHRASES)

_ORDINAL = V.alternation(V.ORDINALS)
_GEN_NOUN = V.alternation(V.GENERATION_NOUNS)
_RECALL_ID_RE = re.compile(r"(?<!seed\s)(?<!seed)#\s*(\d+)\b|\b(?:generation|video|clip|take|render|number)\s+#?\s*(\d+)\b(?!\s*(?:s|sec|secs|seconds|steps?)\b)")
_RECALL_ORDINAL_RE = re.compile(r"(?<!\d\s)(?<![\d-])\b(?:the\s+)?(" + _ORDINAL + r")\s+(?:" + _GEN_NOUN + r")\b"
                                r"|\b(?:rerun|re-run|redo|repeat|back\s+to|same\s+as|like)\s+the\s+(" + _ORDINAL + r")\b"
                                r"|\bthe\s+one\s+before\s+(?:the\s+)?last\b")
_RECALL_QUERY_RE = re.compile(
    r"\b(?:go\s+back\s+to|back\s+to|return\s+to|same\s+as|like|rerun|re-run|redo|repeat)\s+(?:the\s+|my\s+|that\s+)?"
    r"((?:[a-z][\w-]*\s+){1,3}?)(?:" + _GEN_NOUN + r")\b"
    r"|\bthe\s+one(?:_with|\s+of|\s+where)\s+(?:the\s+|a\s+|an\s+)?([a-z][\w-]*(?:\s+[a-z][\w-]*)?)"
)
_RERUN_RE = re.compile(r"\b(?:rerun|re-run|render\s+(?:it\s+)?again|run\s+it\s+again|redo\s+it)\b")

_PROTECT = (
    ("back and forth", "back_and_forth"), ("side to side", "side_to_side"), ("and a half", "and_a_half"),
    ("rises and falls", "rises_and_falls"), ("rise and fall", "rise_and_fall"),
    ("tilt and smile", "tilt_and_smile"), ("in and out", "in_and_out"), ("up and down", "up_and_down"),
    ("black and white", "black_and_white"), ("rock and roll", "rock_and_roll"), ("one with", "one_with"),
)
_SPLIT_RE = re.compile(
    r"[,;.!?]+(?!\d)|\s-\s|\b(?:and\s+then|and\s+also|then|but|and|plus|with|while|whilst|although|though|also)\b"
    r"|\bas\b(?=\s+(?:the|she|he|they|it|her|his|its|their|we)\b)"
)

_HANDS_WAVE_FIX = re.compile(r"\bwaves\s+(hello|hi|goodbye|bye|at)\b")
_PRONOUN_WAVES_FIX = re.compile(r"\b(she|he|they|person|man|woman|girl|boy|guy|lady|kid|child)\s+waves\b")
_NUMBER_PAIR = re.compile(r"(\d)\s+and\s+(\d)")
_THE_LIGHT_FIX = re.compile(r"\b(?:her|his|its|their|some|more)\s+light\b")


def _phrase_re(template: str, terms: Sequence[str]) -> re.Pattern[str]:
    return re.compile(template.replace("{x}", "(" + V.alternation(terms) + ")"))


_NEGATABLE = tuple(V.SUBJECT_SYNONYMS) + tuple(V.ATMOSPHERE_SYNONYMS) + ("light",)
_NEGATION_RES = tuple(_phrase_re(p, _NEGATABLE) for p in V.NEGATION_PATTERNS)
_NEGATED_ACTION_RE = re.compile(r"\b(?:no(?:\s+more)?|stop(?:\s+the)?|without(?:\s+any)?|(?:do\s+not|never)"
                                r"(?:\s+let\s+(?:her|him|it|them))?)\s+("
                                + V.alternation(k for k, (a, _) in V.ACTIONS.items() if a != "move") + r")\b")
_ONLY_RE = _phrase_re(r"\b(?:only|just)\s+(?:the\s+|her\s+|his\s+|its\s+|their\s+)?{x}\b"
                      r"|\b{x}\s+only\b|\bnothing\s+(?:else\s+)?(?:but|except)\s+(?:the\s+)?{x}\b",
                      tuple(V.SUBJECT_SYNONYMS))
_FREEZE_ALL_RE = re.compile(r"\b(?:everything|all)\s+(?:still|static|frozen)\b|\bfreeze\s+everything\b"
                            r"|\bnothing\s+(?:should\s+)?moves?\b|\bno\s+(?:motion|movement)\s+at\s+all\b"
                            r"|\bstop\s+all\s+(?:the\s+)?(?:motion|movement)\b")
_ARTIFACT_RE = _phrase_re(r"\b(?:no|without|remove|get\s+rid\s+of)\s+(?:any\s+|the\s+|all\s+)?{x}\b",
                          V.NEGATABLE_ARTIFACTS)
_AVOID_RE = re.compile(r"\b(?:avoid|exclude|negative(?:\s+prompt)?\s*:?)\s+(?:any\s+|the\s+)?([a-z][a-z -]{1,38})")
_TEMPLATE_NAME_RE = _words(tuple(V.TEMPLATE_NAMES))
_TEMPLATE_NAMED_RE = re.compile(r"(?<![\w])(" + V.alternation(V.TEMPLATE_NAMES) + r")\s+"
                                r"(?:template|style|mode|preset|category|look)\b")
_CUE_RE = _words(tuple(V.TEMPLATE_CUES))
_WORD_RE = re.compile(r"[a-z0-9#][a-z0-9_'#-]*")


# --- the parse --------------------------------------------------------------------------------------


@dataclass
class _Clause:
    """One clause being read: the text with used words blanked out."""

    text: str
    original: str
    understood: bool = False

    def take(self, m: re.Match[str]) -> None:
        """Blank out a match so no later matcher reads it; the clause counts as understood."""
        s, e = m.span()
        self.text = self.text[:s] + " " * (e - s) + self.text[e:]
        self.understood = True

    def search(self, pattern: re.Pattern[str]) -> re.Match[str] | None:
        return pattern.search(self.text)

    def has(self, pattern: re.Pattern[str]) -> bool:
        return pattern.search(self.text) is not None


@dataclass
class _Turn:
    """What one message is turning into."""

    plan: MotionPlan  # the plan the message refers to (the template default on a first message)
    template_locked: bool
    hands_in_view: bool
    edits: list[Edit] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    unparsed: list[str] = field(default_factory=list)
    last_subjects: list[str] = field(default_factory=list)
    previous_targets: list[str] = field(default_factory=list)  # what the last message was about ("camera" too)

    def add(self, edit: Edit) -> None:
        self.edits.append(edit)

    def motion(self, subject: str):  # -> Motion | None, after the edits so far
        current = self.plan.motion(subject)
        for e in self.edits:
            if isinstance(e, AddMotion) and e.subject == subject:
                current = e  # type: ignore[assignment]
            elif isinstance(e, RemoveMotion) and e.subject == subject:
                current = None
        return current


class RulePlanner:
    """The deterministic planner (implements agent.edits.Planner)."""

    name = "rules"

    def parse(
        self,
        message: str,
        plan: MotionPlan | None,
        *,
        history: Sequence[tuple[str, str]] = (),
        template_locked: bool = False,
    ) -> ParseResult:
        return parse(message, plan, history=history, template_locked=template_locked)


def parse(
    message: str,
    plan: MotionPlan | None,
    *,
    history: Sequence[tuple[str, str]] = (),
    template_locked: bool = False,
) -> ParseResult:
    """Turn one chat message into edits for `plan` (None before the first turn)."""
    from agent.templates import get_template

    raw = message.strip()
    if not raw:
        return ParseResult(edits=[], unparsed=[], planner="rules")
    override = V.PROMPT_OVERRIDE.match(raw)
    if override:
        return ParseResult(edits=[SetPrompt(text=override.group("text").strip()[:2000])], planner="rules")

    text = V.normalize(raw)
    hands_in_view = (
        V.says_hands_in_view(text)
        or any(role == "user" and V.says_hands_in_view(t) for role, t in history)
        or (plan is not None and plan.template == "portrait_dynamic")
    )
    edits_head: list[Edit] = []
    if plan is None:
        chosen = None if template_locked else template_for(text, hands_in_view=hands_in_view)
        if chosen:
            edits_head.append(SetTemplate(template=chosen))
        plan = get_template(chosen or DEFAULT_TEMPLATE).default_plan(0)
    turn = _Turn(plan=plan, template_locked=template_locked, hands_in_view=hands_in_view)
    if _CONTINUATION_RE.search(text):
        turn.previous_targets = _targets_of(next((t for role, t in reversed(history) if role == "user"), ""))

    for piece in split_clauses(text):
        clause = _Clause(text=piece, original=piece.replace("_", " "))
        _parse_clause(clause, turn, first_message=bool(edits_head) or plan is None)
        if not clause.understood and _meaningful(clause.original):
            turn.unparsed.append(clause.original)

    edits = edits_head + _ordered(turn.edits)
    if (hands_in_view and not template_locked and turn.plan.template == "portrait_subtle"
            and any(isinstance(e, AddMotion) and e.subject == "hands" for e in edits)
            and not any(isinstance(e, SetTemplate) for e in edits)):
        # gestures with the hands in view: the dynamic portrait is the template for that
        edits.insert(0, SetTemplate(template="portrait_dynamic"))
    if len(edits) > MAX_EDITS_PER_TURN:
        turn.notes.append(f"that was a lot at once: I applied the first {MAX_EDITS_PER_TURN} changes")
        edits = edits[:MAX_EDITS_PER_TURN]
    return ParseResult(edits=edits, unparsed=turn.unparsed, notes=turn.notes, planner="rules")


_CONTINUATION_RE = _words(V.CONTINUATION_WORDS)


def _targets_of(message: str) -> list[str]:
    """What a message was about: its subjects, else ["camera"] when it named the camera, else []."""
    text = V.normalize(message)
    subjects = []
    for m in _SUBJECT_RE.finditer(text):
        s = V.SUBJECT_SYNONYMS[m.group(0)]
        if s not in subjects:
            subjects.append(s)
    if subjects:
        return subjects
    if _CAMERA_WORD_RE.search(text) or _CAMERA_FAMILY_RE.search(text) or any(p.search(text) for p, _, n in
                                                                            _CAMERA_PATTERNS if not n):
        return ["camera"]
    return []


def split_clauses(text: str) -> list[str]:
    """Clauses of a normalised message; protected phrases ("back and forth") stay whole."""
    for phrase, joined in _PROTECT:
        text = text.replace(phrase, joined)
    text = _NUMBER_PAIR.sub(r"\1/\2", text)
    text = _HANDS_WAVE_FIX.sub(r"waving \1", text)
    text = _PRONOUN_WAVES_FIX.sub(r"\1 waving", text)
    text = _THE_LIGHT_FIX.sub("the light", text)
    return [c.strip() for c in _SPLIT_RE.split(text) if c and c.strip()]


def _meaningful(clause: str) -> bool:
    return any(w not in V.FILLER for w in _WORD_RE.findall(clause))


def _ordered(edits: list[Edit]) -> list[Edit]:
    """Session edits (recall, undo, reset) first, then the rest in the order said; exact repeats dropped."""
    out: list[Edit] = []
    for e in [e for e in edits if e.op in SESSION_OPS] + [e for e in edits if e.op not in SESSION_OPS]:
        if e not in out:
            out.append(e)
    return out


def template_for(message: str, *, hands_in_view: bool) -> str | None:
    """The template a message's words point at (None: no category words); the words of a history reference
    ("the cat video") do not count."""
    text = V.normalize(message)
    return choose_template(_RECALL_QUERY_RE.sub(" ", _RECALL_ORDINAL_RE.sub(" ", text)), hands_in_view=hands_in_view)


def choose_template(text: str, *, hands_in_view: bool) -> str | None:
    """The template a first message points at: the heaviest cues win, the earliest mention breaks ties.

    `portrait_dynamic` (gestures) is chosen only when the hands are said to be in view; without that its
    cues count for `portrait_subtle`."""
    scores: dict[str, int] = {}
    first: dict[str, int] = {}
    for m in _CUE_RE.finditer(text):
        template, weight = V.TEMPLATE_CUES[m.group(0)]
        if template == "portrait_dynamic" and not hands_in_view:
            template = "portrait_subtle"
        scores[template] = scores.get(template, 0) + weight
        first.setdefault(template, m.start())
    for m in _TEMPLATE_NAMED_RE.finditer(text):
        template = V.TEMPLATE_NAMES[m.group(1)]
        scores[template] = scores.get(template, 0) + 10
        first.setdefault(template, m.start())
    if hands_in_view and scores.get("portrait_dynamic", 0) > 0 and "fashion" not in scores:
        # gestures with visible hands: a portrait is a dynamic one
        scores["portrait_dynamic"] += scores.pop("portrait_subtle", 0)
    if not scores or max(scores.values()) <= 0:
        return None
    return min(scores, key=lambda t: (-scores[t], first[t]))


# --- clause matchers ----------------------------------------------------------------------------------


def _parse_clause(c: _Clause, turn: _Turn, *, first_message: bool) -> None:
    m = c.search(V.HANDS_IN_VIEW)
    if m:
        c.take(m)  # "her hands are visible" is a fact about the picture, not a motion
    _take_all(c, V.KEEP_REST)
    _session(c, turn)
    _seed(c, turn)
    _steps(c, turn)
    _guidance(c, turn)
    _duration(c, turn)
    _prompt(c, turn)
    camera_used = _camera(c, turn)
    _template(c, turn, first_message=first_message)
    _allow(c, turn)
    _negations(c, turn)
    _only(c, turn)
    atmosphere_used = _atmosphere(c, turn)
    _motions(c, turn, others_used=camera_used or atmosphere_used, camera_used=camera_used)


def _session(c: _Clause, turn: _Turn) -> None:
    m = c.search(_RECALL_ID_RE)
    if m:
        c.take(m)
        number = int(m.group(1) or m.group(2))
        if number >= 1:
            turn.add(Recall(generation_id=number))
        else:
            turn.notes.append(f"there is no generation #{number}: generations are numbered from #1")
        return
    m = c.search(_RECALL_ORDINAL_RE)
    if m:
        word = m.group(1) or m.group(2)
        c.take(m)
        turn.add(Recall(index=V.ORDINALS[word] if word else -2))
        _take_all(c, _RERUN_RE)
        return
    m = c.search(_RECALL_QUERY_RE)
    if m:
        words = [w for w in (m.group(1) or m.group(2) or "").split() if w not in V.FILLER and w not in V.ORDINALS]
        if words:
            c.take(m)
            turn.add(Recall(query=" ".join(words)[:40]))
            return
    m = c.search(_RERUN_RE)
    if m:
        c.take(m)
        turn.add(Recall(index=-1))
        return
    m = c.search(_RESET_RE)
    if m and not re.search(r"\b(?:reset|clear)\s+(?:my\s+|the\s+)?prompt\b", c.text):
        c.take(m)
        turn.add(Reset())
        return
    m = c.search(_UNDO_RE)
    if m:
        c.take(m)
        turn.add(Undo())


def _take_all(c: _Clause, pattern: re.Pattern[str]) -> bool:
    found = False
    while (m := c.search(pattern)) is not None:
        c.take(m)
        found = True
    return found


def _seed(c: _Clause, turn: _Turn) -> None:
    m = c.search(_SEED_VALUE_RE)
    if m:
        c.take(m)
        value = int(m.group(1))
        if value > MAX_SEED:
            turn.notes.append(f"seed {value} is past the maximum {MAX_SEED}: used {value % (MAX_SEED + 1)}")
            value %= MAX_SEED + 1
        turn.add(SetSeed(policy="explicit", value=value))
        return
    if _take_all(c, _SEED_SAME_RE):
        turn.add(SetSeed(policy="same"))
        return
    if _take_all(c, _SEED_NEW_RE):
        turn.add(SetSeed(policy="new"))


def _number(word: str) -> float | None:
    try:
        return float(word)
    except ValueError:
        return V.NUMBER_WORDS.get(word)


def _degree(c: _Clause) -> str:
    if c.has(_STRONG_RE):
        return "strong"
    if c.has(_MILD_RE):
        return "mild"
    return "normal"


def _current_steps(turn: _Turn) -> int:
    steps = turn.plan.steps
    for e in turn.edits:
        if isinstance(e, SetSteps):
            steps = e.steps
    return steps


def _steps(c: _Clause, turn: _Turn) -> None:
    m = c.search(_STEPS_RE)
    if m:
        c.take(m)
        n = _number(m.group(1) or m.group(2))
        if n is not None:
            n = int(n)
            if n > 100 or n < 1:
                log.info("steps %s out of the edit range, clamped to 1..100", n)
                turn.notes.append(f"{n} steps is outside {int(LIMITS['steps'][0])}–{int(LIMITS['steps'][1])}: "
                                  f"set to {int(min(max(n, LIMITS['steps'][0]), LIMITS['steps'][1]))}")
                n = int(min(max(n, LIMITS["steps"][0]), LIMITS["steps"][1]))
            turn.add(SetSteps(steps=n))
        return
    lo, hi = int(LIMITS["steps"][0]), int(LIMITS["steps"][1])
    degree = _degree(c)
    if c.has(_QUALITY_UP_RE):
        best = c.has(_QUALITY_MAX_RE)
        _take_all(c, _QUALITY_UP_RE)
        _take_all(c, _MILD_RE)
        _take_all(c, _STRONG_RE)
        current = _current_steps(turn)
        if current < QUALITY_STEPS[1]:  # first up to the top of a Lightning render's range, then on
            hi = QUALITY_STEPS[1]
        if current >= hi:
            turn.notes.append(f"steps are already at the {hi} maximum")
            return
        turn.add(SetSteps(steps=hi if best else min(hi, current + V.STEPS_DELTA[degree])))
        return
    if c.has(_QUALITY_DOWN_RE):
        least = c.has(_QUALITY_MIN_RE)
        _take_all(c, _QUALITY_DOWN_RE)
        _take_all(c, _MILD_RE)
        _take_all(c, _STRONG_RE)
        current = _current_steps(turn)
        if current <= lo:
            turn.notes.append(f"steps are already at the {lo} minimum (the fastest render)")
            return
        turn.add(SetSteps(steps=lo if least else max(lo, current - V.STEPS_DELTA[degree])))


def _guidance(c: _Clause, turn: _Turn) -> None:
    hi = LIMITS["guidance_scale"][1]
    m = c.search(_GUIDANCE_RE)
    if m:
        c.take(m)
        which, a, b = m.group(1), float(m.group(2)), m.group(3)
        values = [a, float(b) if b is not None else a]
        for i, v in enumerate(values):
            if v > hi:
                turn.notes.append(f"guidance {v:g} is past the maximum {hi:g}: set to {hi:g}")
                values[i] = hi
        if which == "high":
            turn.add(SetGuidance(high=values[0]))
        elif which == "low":
            turn.add(SetGuidance(low=values[0]))
        else:
            turn.add(SetGuidance(high=values[0], low=values[1]))
        return
    m = c.search(_GUIDANCE_BEFORE_RE)
    if m:
        c.take(m)
        v = min(float(m.group(1)), hi)
        turn.add(SetGuidance(high=v, low=v))
        return
    g1, g2 = turn.plan.guidance_scale, turn.plan.guidance_scale_2
    if (m := c.search(_GUIDANCE_OFF_RE)) is not None:
        c.take(m)
        turn.add(SetGuidance(high=1.0, low=1.0))
    elif (m := c.search(_GUIDANCE_MORE_RE)) is not None:
        c.take(m)
        turn.add(SetGuidance(high=min(hi, g1 + 1.0), low=min(hi, g2 + 1.0)))
    elif (m := c.search(_GUIDANCE_LESS_RE)) is not None:
        c.take(m)
        turn.add(SetGuidance(high=max(0.0, g1 - 1.0), low=max(0.0, g2 - 1.0)))


def _current_duration(turn: _Turn) -> float:
    d = turn.plan.duration_s
    for e in turn.edits:
        if isinstance(e, SetDuration):
            d = min(max(e.seconds, LIMITS["duration_s"][0]), LIMITS["duration_s"][1])
    return d


def _duration(c: _Clause, turn: _Turn) -> None:
    m = c.search(_DURATION_DELTA_RE)
    if m:
        c.take(m)
        amount = _number(m.group(1)) or 1.0
        if "and_a_half" in m.group(0):
            amount += 0.5
        sign = 1 if m.group(2) in ("longer", "more") else -1
        turn.add(SetDuration(seconds=max(0.01, _current_duration(turn) + sign * amount)))
        return
    for pattern, value in ((_HALF_SECOND_RE, 0.5), (_ONE_AND_HALF_RE, 1.5)):
        m = c.search(pattern)
        if m:
            c.take(m)
            turn.add(SetDuration(seconds=value))
            return
    m = c.search(_DURATION_RE)
    if m:
        c.take(m)
        seconds = float(m.group(1) or m.group(2))
        if seconds <= 0:
            turn.notes.append(f"a clip cannot last {m.group(1)} s: kept {_current_duration(turn):g} s")
            return
        turn.add(SetDuration(seconds=min(seconds, 3600)))
        return
    m = c.search(_DURATION_WORDS_RE)
    if m:
        c.take(m)
        seconds = (_number(m.group(1)) or 0) + (0.5 if m.group(2) else 0)
        if seconds <= 0:
            turn.notes.append(f"a clip cannot last {seconds:g} s: kept {_current_duration(turn):g} s")
            return
        turn.add(SetDuration(seconds=seconds))
        return
    m = c.search(_MINUTES_RE)
    if m:
        c.take(m)
        turn.add(SetDuration(seconds=min(3600.0, (_number(m.group(1)) or 1.0) * 60)))
        return
    m = c.search(_FRAMES_RE)
    if m:
        c.take(m)
        frames = int(m.group(1))
        turn.add(SetDuration(seconds=max(0.01, min(3600.0, (frames - 1) / 16))))
        return
    m = c.search(_A_SECOND_RE)
    if m:
        c.take(m)
        turn.add(SetDuration(seconds=1.0))
        return
    if _take_all(c, _LONGEST_RE):
        turn.add(SetDuration(seconds=LIMITS["duration_s"][1]))
        return
    if _take_all(c, _SHORTEST_RE):
        turn.add(SetDuration(seconds=LIMITS["duration_s"][0]))
        return
    lo, hi = LIMITS["duration_s"]
    for pattern, sign in ((_LONGER_RE, 1), (_SHORTER_RE, -1)):
        if c.has(pattern):
            step = V.DURATION_STEP_S[_degree(c)]
            _take_all(c, pattern)
            _take_all(c, _MILD_RE)
            _take_all(c, _STRONG_RE)
            current = _current_duration(turn)
            if (sign > 0 and current >= hi) or (sign < 0 and current <= lo):
                turn.notes.append(f"the clip is already at the {current:g} s {'maximum' if sign > 0 else 'minimum'}")
                return
            turn.add(SetDuration(seconds=min(hi, max(lo, current + sign * step))))
            return


def _prompt(c: _Clause, turn: _Turn) -> None:
    m = c.search(V.PROMPT_CLEAR)
    if m:
        c.take(m)
        turn.add(SetPrompt(text=None))


def _pace(c: _Clause, degree: str, *, take: bool) -> tuple[str | None, float, int]:
    """(kind, value, direction) of the pace said: kind "comparative" (value is a factor: "slower", "twice as
    fast") or "absolute" (value is a speed: "slow", "quickly") or None; direction -1 slower, +1 faster."""
    m = c.search(_TIMES_RE)
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
    for pattern, factor in ((_HALF_SPEED_RE, 0.5), (_DOUBLE_SPEED_RE, 2.0)):
        m = c.search(pattern)
        if m:
            if take:
                c.take(m)
            return "comparative", factor, (1 if factor > 1 else -1)
    return _graded(c, degree, _PACE_WORDS, take=take)


def _strength(c: _Clause, degree: str, *, take: bool) -> tuple[str | None, float, int]:
    """Like `_pace` for intensity: "more"/"subtler" (comparative), "gently"/"dramatically" (absolute)."""
    return _graded(c, degree, _STRENGTH_WORDS, take=take)


_Graded = tuple[tuple[re.Pattern[str], str, dict[str, float], int], ...]
_PACE_WORDS: _Graded = ((_SLOWER_RE, "comparative", V.SPEED_DOWN, -1), (_FASTER_RE, "comparative", V.SPEED_UP, 1),
                        (_SLOW_RE, "absolute", V.SLOW_PACE, -1), (_FAST_RE, "absolute", V.FAST_PACE, 1))
_STRENGTH_WORDS: _Graded = ((_LESS_RE, "comparative", V.INTENSITY_DOWN, -1),
                            (_MORE_RE, "comparative", V.INTENSITY_UP, 1),
                            (_GENTLE_RE, "absolute", V.GENTLE_INTENSITY, -1),
                            (_STRONGLY_RE, "absolute", V.STRONG_INTENSITY, 1))


def _graded(c: _Clause, degree: str, words: _Graded, *, take: bool) -> tuple[str | None, float, int]:
    """The first of `words` the clause says: (kind, the value for `degree`, direction); the degree words go too."""
    for pattern, kind, table, direction in words:
        if c.has(pattern):
            if take:
                _take_all(c, pattern)
                _take_all(c, _MILD_RE)
                _take_all(c, _STRONG_RE)
            return kind, table[degree], direction
    return None, 1.0, 0


def _current_camera(turn: _Turn) -> tuple[str, float]:
    move, speed = turn.plan.camera.move, turn.plan.camera.speed
    for e in turn.edits:
        if isinstance(e, SetCamera):
            move = e.move
            speed = e.speed if e.speed is not None and e.move != "static" else speed
        elif isinstance(e, ScaleCamera):
            speed *= e.factor
    return move, speed


def _camera(c: _Clause, turn: _Turn) -> bool:
    m = c.search(V.CAMERA_STOP)
    if m:
        c.take(m)
        _take_all(c, _CAMERA_WORD_RE)
        turn.add(SetCamera(move="static"))
        return True
    names_subject = c.has(_SUBJECT_RE) or c.has(_ATMOSPHERE_RE)
    names_camera = c.has(_CAMERA_WORD_RE)
    degree = _degree(c)
    for pattern, move, needs_camera in _CAMERA_PATTERNS:
        m = c.search(pattern)
        if not m or (needs_camera and names_subject and not names_camera):
            continue
        family = _CAMERA_FAMILY_RE.search(m.group(0))
        bare = family is not None and m.group(0).strip() == family.group(0)
        c.take(m)
        _take_all(c, _CAMERA_WORD_RE)
        current_move, current_speed = _current_camera(turn)
        same = current_move == move or (bare and current_move in V.CAMERA_FAMILY[family.group(0)])
        kind, value, _ = _pace(c, degree, take=True)
        if move == "static":
            turn.add(SetCamera(move="static"))
        elif kind == "comparative" and same:
            turn.add(ScaleCamera(factor=value))
        elif kind == "comparative":
            turn.add(SetCamera(move=move, speed=_speed(value)))
        elif kind == "absolute":
            turn.add(SetCamera(move=current_move if same else move, speed=value))
        elif not same:
            turn.add(SetCamera(move=move))
        return True
    # "slower camera", "speed up the zoom": a pace for the move already planned
    family = c.search(_CAMERA_FAMILY_RE)
    if names_camera or family:
        kind, value, _ = _pace(c, degree, take=False)
        if kind is None:
            return False
        _pace(c, degree, take=True)
        _take_all(c, _CAMERA_WORD_RE)
        if family:
            c.take(family)
        c.understood = True
        current_move, _ = _current_camera(turn)
        if current_move == "static":
            turn.notes.append("the camera is static: say which way it should move (zoom in, pan left …)")
        elif kind == "comparative":
            turn.add(ScaleCamera(factor=value))
        else:
            turn.add(SetCamera(move=current_move, speed=value))
        return True
    return False


def _speed(value: float) -> float:
    lo, hi = LIMITS["speed"]
    return round(min(max(value, lo), hi), 3)


def _template(c: _Clause, turn: _Turn, *, first_message: bool) -> None:
    target = None
    m = c.search(_TEMPLATE_NAMED_RE)
    if m:
        target = V.TEMPLATE_NAMES[m.group(1)]
        c.take(m)
    else:
        switch = c.search(V.TEMPLATE_SWITCH)
        if switch:
            tail = switch.group(1)
            name = _TEMPLATE_NAME_RE.search(tail)
            cue = _CUE_RE.search(tail)
            if name and (len(tail.split()) <= 4 or V.TEMPLATE_SWITCH_TAIL.search(tail)):
                target = V.TEMPLATE_NAMES[name.group(0)]
            elif cue and V.TEMPLATE_CUES[cue.group(0)][1] >= 3:
                target = V.TEMPLATE_CUES[cue.group(0)][0]
            if target:
                c.understood = True
                start = switch.start(1)
                picked = name or cue
                assert picked is not None
                c.text = c.text[:start + picked.start()] + " " * len(picked.group(0)) + c.text[start + picked.end():]
    if target is None:
        # Category words that are not things that move ("headshot", "anime", "portrait"): on a first message
        # choose_template read them; later, the strongest ones switch the category.
        for cue in list(_CUE_RE.finditer(c.text)):
            template, weight = V.TEMPLATE_CUES[cue.group(0)]
            if weight >= 3 and cue.group(0) not in V.SUBJECT_SYNONYMS:
                c.take(cue)
                if not first_message and weight >= 4 and target is None:
                    target = template
        if target is None:
            return
    if target == "portrait_subtle" and turn.hands_in_view and c.has(re.compile(r"\b(?:dynamic|gestures?)\b")):
        target = "portrait_dynamic"
    if turn.template_locked:
        if target != turn.plan.template:
            turn.notes.append(f"the template chosen in the app stays {turn.plan.template}")
        return
    if target != turn.plan.template:
        turn.add(SetTemplate(template=target))


def _remove_subject(turn: _Turn, subject: str) -> None:
    turn.add(RemoveMotion(subject=subject))
    term = V.NEGATIVE_TERMS_ON_REMOVE.get(subject)
    if term:
        turn.add(AddNegative(terms=(term,)))


def _allow_res(term: str) -> tuple[re.Pattern[str], ...]:
    t = re.escape(term)
    return (
        re.compile(rf"\b(?:stop avoiding|do not avoid|don't avoid|dont avoid|allow|permit)\s+(?:the\s+|any\s+)?{t}"
                   rf"(?:\s+again)?\b"),
        re.compile(rf"\b{t}\s+(?:is|are)\s+(?:fine|ok|okay|allowed)(?:\s+now|\s+again)?\b"),
        re.compile(rf"\b(?:remove|drop|take)\s+(?:the\s+)?{t}\s+(?:from|out of)\s+the\s+negative(?:\s+prompt)?\b"),
    )


def _allow(c: _Clause, turn: _Turn) -> None:
    """"text is fine now", "stop avoiding hands": a term the person added to the negatives comes out again."""
    for term in turn.plan.negative_terms:
        for pattern in _allow_res(term):
            if (m := c.search(pattern)) is not None:
                c.take(m)
                turn.add(RemoveNegative(terms=(term,)))
                break


def _negations(c: _Clause, turn: _Turn) -> None:
    if (m := c.search(_FREEZE_ALL_RE)) is not None:
        c.take(m)
        for mo in turn.plan.motions:
            if turn.motion(mo.subject) is not None:
                turn.add(RemoveMotion(subject=mo.subject))
        for e in list(turn.edits):
            if isinstance(e, AddMotion) and turn.motion(e.subject) is not None:
                turn.add(RemoveMotion(subject=e.subject))
    m = c.search(_AVOID_RE)
    if m:
        term = " ".join(w for w in m.group(1).split() if w not in ("movement", "motion"))[:40].strip()
        c.take(m)
        if term:
            turn.add(AddNegative(terms=(term,)))
    while (m := c.search(_ARTIFACT_RE)) is not None:
        c.take(m)
        turn.add(AddNegative(terms=(m.group(1),)))
    while (m := c.search(_NEGATED_ACTION_RE)) is not None:
        c.take(m)
        action, default = V.ACTIONS[m.group(1)]
        _remove_subject(turn, _subject_for_action(turn, action, default))
    for pattern in _NEGATION_RES:
        while (m := c.search(pattern)) is not None:
            word = m.group(1)
            c.take(m)
            _take_motion_word(c, m.end())
            if word == "light":
                word = "the light"
            if word in V.ATMOSPHERE_SYNONYMS and word not in V.SUBJECT_SYNONYMS:
                turn.add(RemoveAtmosphere(items=(V.ATMOSPHERE_SYNONYMS[word],)))
            else:
                _remove_subject(turn, V.SUBJECT_SYNONYMS[word])


_MOTION_WORD_RE = re.compile(r"\s*(?:from\s+)?(" + V.alternation(tuple(V.ACTIONS) + ("movement", "motion", "movements",
                                                                                  "animation", "moving")) + r")\b")


def _take_motion_word(c: _Clause, at: int) -> None:
    """After "no tail", also use up "wagging" / "movement", so it does not read as a new motion."""
    m = _MOTION_WORD_RE.match(c.text, at)
    if m:
        c.take(m)


def _only(c: _Clause, turn: _Turn) -> None:
    m = c.search(_ONLY_RE)
    if not m:
        return
    word = next(g for g in m.groups() if g)
    subject = V.SUBJECT_SYNONYMS[word]
    # keep the word for the motion matcher (it may carry an action), drop the "only"
    c.text = re.sub(r"\b(?:only|just|nothing\s+(?:else\s+)?(?:but|except))\b", lambda x: " " * len(x.group(0)), c.text)
    c.understood = True
    for mo in turn.plan.motions:
        if mo.subject != subject and turn.motion(mo.subject) is not None:
            turn.add(RemoveMotion(subject=mo.subject))
    if turn.motion(subject) is None and not c.has(_ACTION_RE):
        turn.add(AddMotion(subject=subject, action=V.DEFAULT_ACTIONS[subject]))


def _atmosphere(c: _Clause, turn: _Turn) -> bool:
    items = []
    while (m := c.search(_ATMOSPHERE_RE)) is not None:
        item = V.ATMOSPHERE_SYNONYMS[m.group(0)]
        c.take(m)
        if item not in items:
            items.append(item)
    if items:
        present = set(turn.plan.atmosphere)
        new = tuple(i for i in items if i not in present)
        if new:
            turn.add(AddAtmosphere(items=new))
        _take_all(c, _MORE_RE)
        _take_all(c, _STRONG_RE)
    return bool(items)


def _action(c: _Clause) -> tuple[str, str] | None:
    """(canonical action, default subject) for the first verb of the clause, with a direction said after it
    ("turn to the left", "look at the camera", "wave hello")."""
    m = c.search(_ACTION_RE)
    if not m:
        return None
    action, subject = V.ACTIONS[m.group(0)]
    c.take(m)
    d = _DIRECTION_RE.match(c.text[m.end():])
    if d and d.group(0).strip():
        phrase = re.sub(r"^\s*(?:(?:her|his|its|their|the)\s+)?(?:(?:head|eyes|gaze)\s+)?", "", d.group(0))
        action = f"{action.split()[0]} {phrase.strip().replace('_', ' ')}".strip()
        c.text = c.text[:m.end()] + " " * len(d.group(0)) + c.text[m.end() + len(d.group(0)):]
    if action.startswith("wave"):
        hello = re.search(r"\b(hello|hi|goodbye|bye)\b", c.text)
        if hello:
            action = f"wave {hello.group(1)}"
            c.take(hello)
    return action, subject


def _subject_for_action(turn: _Turn, action: str, default: str) -> str:
    """The subject a verb said alone refers to: a motion already doing it, else the verb's default."""
    verb = action.split()[0]
    for mo in turn.plan.motions:
        if mo.action.split()[0] == verb and turn.motion(mo.subject) is not None:
            return mo.subject
    if default == "head" and turn.plan.template == "animals":
        return "animal"
    return default


def _motions(c: _Clause, turn: _Turn, *, others_used: bool, camera_used: bool) -> None:
    subjects: list[str] = []
    while (m := c.search(_SUBJECT_RE)) is not None:
        subject = V.SUBJECT_SYNONYMS[m.group(0)]
        c.take(m)
        if subject not in subjects:
            subjects.append(subject)
    said = _action(c)
    if camera_used and not said and subjects and not _MODIFIER_LEFT_RE.search(c.text):
        return  # "move closer to his face", "circle around the dog": the subject is the camera's target
    degree = _degree(c)
    pace_kind, pace, pace_dir = _pace(c, degree, take=True)
    strength_kind, strength, strength_dir = _strength(c, degree, take=True)
    if not subjects and said and said[0] == "move":
        said = None  # "cars moving": a bare "move" says nothing about what moves
    if not subjects and said:
        subjects = [_subject_for_action(turn, said[0], said[1])]
    elif said and len(subjects) > 1:
        # "a dog wagging its tail": the verb belongs to the part it names, not to the whole animal
        if said[1] in subjects:
            subjects = [said[1]]
        elif "animal" in subjects:
            subjects.remove("animal")
    if not subjects:
        if (pace_kind is None and strength_kind is None) or others_used:
            # nothing said, or the pace belonged to the camera or the atmosphere ("slow zoom in", "more wind")
            return
        c.understood = True
        speed_factor = _factor(pace_kind, pace, pace_dir, V.SPEED_DOWN, V.SPEED_UP, degree)
        intensity_factor = _factor(strength_kind, strength, strength_dir, V.INTENSITY_DOWN, V.INTENSITY_UP, degree)
        targets = turn.last_subjects or turn.previous_targets or ["all"]
        if targets == ["camera"]:
            if pace_kind is not None and _current_camera(turn)[0] != "static":
                turn.add(ScaleCamera(factor=speed_factor))
            return
        targets = [t for t in targets if t != "camera"]
        for target in targets:
            turn.add(ScaleMotion(subject=target, speed_factor=speed_factor,  # type: ignore[arg-type]
                                 intensity_factor=intensity_factor))
        if targets == ["all"] and pace_kind is not None and _current_camera(turn)[0] != "static":
            turn.add(ScaleCamera(factor=speed_factor))
        return

    c.understood = True
    turn.last_subjects = subjects
    for subject in subjects:
        current = turn.motion(subject)
        action = said[0] if said and said[0] != "move" else None
        if current is not None and (action is None or _same_action(current.action, action)):
            if pace_kind == "comparative" or strength_kind == "comparative":
                turn.add(ScaleMotion(
                    subject=subject,  # type: ignore[arg-type]
                    speed_factor=pace if pace_kind == "comparative" else 1.0,
                    intensity_factor=strength if strength_kind == "comparative" else 1.0,
                ))
            if pace_kind == "absolute" or strength_kind == "absolute":
                turn.add(AddMotion(
                    subject=subject,  # type: ignore[arg-type]
                    action=current.action,
                    speed=pace if pace_kind == "absolute" else _speed(current.speed),
                    intensity=strength if strength_kind == "absolute" else current.intensity,
                ))
            continue
        base_speed = current.speed if current is not None else 1.0
        base_intensity = current.intensity if current is not None else 0.5
        turn.add(AddMotion(
            subject=subject,  # type: ignore[arg-type]
            action=(action or V.DEFAULT_ACTIONS[subject])[:60],
            speed=_speed(pace if pace_kind == "absolute" else base_speed * (pace if pace_kind else 1.0)),
            intensity=round(min(1.0, strength if strength_kind == "absolute"
                                else base_intensity * (strength if strength_kind else 1.0)), 3),
        ))


_MODIFIER_LEFT_RE = _words(V.SLOWER_WORDS + V.FASTER_WORDS + V.SLOW_WORDS + V.FAST_WORDS + V.MORE_WORDS
                           + V.LESS_WORDS + V.GENTLE_WORDS + V.STRONG_MOTION_WORDS)


def _same_action(current: str, said: str) -> bool:
    """"flow" or "look around" said about a motion that already does "flow gently" / "look around curiously"."""
    return current == said or current.startswith(said + " ")


def _factor(kind: str | None, value: float, direction: int, down: dict[str, float], up: dict[str, float],
            degree: str) -> float:
    """A scale factor for a modifier said about everything: a comparative as said; an absolute word with
    nothing named reads as a comparative ("make it slow" = slower, "make it subtle" = subtler)."""
    if kind is None:
        return 1.0
    if kind == "comparative":
        return value
    return down[degree] if direction < 0 else up[degree]


def plan_summary(plan: MotionPlan | None) -> str:
    """A short description of a plan, for logs and the CLI."""
    if plan is None:
        return "no plan yet"
    moves = ", ".join(f"{m.subject} {m.action} ×{m.speed:g}" for m in plan.motions) or "nothing moves"
    return f"{plan.template}: {moves}; camera {plan.camera.move} ×{plan.camera.speed:g}; {plan.duration_s:g} s"
