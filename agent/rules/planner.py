"""The rule planner: a chat message becomes a list of edit operations, deterministically, with no model.

A message is normalised (lower case, contractions expanded), split into clauses at punctuation and at
"and", "but", "then", "with", "while", and each clause goes through matchers in a fixed order:
references and undo/reset, seed, steps, guidance, duration, prompt, camera, template, negations,
"only X", atmosphere, motions, then comparatives that name nothing ("slower" = everything slower).
A matcher blanks out the words it used, so a later matcher never reads them twice ("faster render"
is about steps, not motion). A clause that no matcher understood is reported in `unparsed`.

The words live in agent.vocabulary, their compiled patterns in agent.rules.patterns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from agent import template_words as TW
from agent import vocabulary as V
from agent.compiler import default_plan
from agent.edit_sets import last_wins
from agent.edits import MAX_EDITS_PER_TURN, AddMotion, Edit, ParseResult, RemoveMotion, ScaleMotion, SetPrompt, SetTemplate
from agent.plan import MotionPlan
from agent.rules import patterns as P
from agent.rules.end_and_batch_words import read_end_and_batch
from agent.rules.clauses import Clause, Turn, is_meaningful, ordered, read_message, split_clauses, take_all
from agent.rules.long_words import read_smoother_larger, read_story
from agent.rules.meanings import read_meanings
from agent.rules.motions import read_atmosphere, read_camera, read_motions, read_only
from agent.rules.negatives import read_allow, read_negations
from agent.rules.questions import OTHER_QUESTION_RE, UNKNOWN_QUESTION, read_question
from agent.rules.references import read_bring_back, read_compare, read_same_for, targets_of
from agent.rules.settings_words import read_duration, read_guidance, read_prompt, read_seed, read_session, read_steps
from agent.rules.template_choice import names_a_scene, read_template, template_for_text
from agent.languages import writes_throughout
from agent.spelling import read_note
from agent.templates import DEFAULT_TEMPLATE


HANDS_VISIBLE_NOTE = ("the hands are visible, so this is a dynamic portrait now: gestures are allowed "
                      "(say “no hand movement” to keep them still)")


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
    raw = message.strip()
    if not raw:
        return ParseResult(edits=[], unparsed=[], planner="rules")
    override = V.PROMPT_OVERRIDE.match(raw)
    if override:
        return ParseResult(edits=[SetPrompt(text=override.group("text").strip()[:2000])], planner="rules")

    text, lang, typos = read_message(raw)
    compare, text = read_compare(text)
    reply_language = lang if writes_throughout(V.normalize(raw), lang) else "en"
    first_message = plan is None
    hands_in_view = (
        TW.says_hands_in_view(text)
        or any(role == "user" and TW.says_hands_in_view(t) for role, t in history)
        or (plan is not None and plan.template == "portrait_dynamic")
        or (first_message and TW.describes_hands(text))  # a prompt that describes the hands shows them
    )
    edits_head: list[Edit] = []
    if plan is None:
        chosen = None if template_locked else template_for_text(text, hands_in_view=hands_in_view)
        if chosen:
            edits_head.append(SetTemplate(template=chosen))
        plan = default_plan(chosen or DEFAULT_TEMPLATE, seed=0)
    turn = Turn(plan=plan, template_locked=template_locked, hands_in_view=hands_in_view, new=first_message)
    if typos:
        turn.notes.append(read_note(typos))
    previous = next((t for role, t in reversed(history) if role == "user"), "")
    if previous and (P.CONTINUATION_RE.search(text) or P.PRONOUN_RE.search(text)):
        turn.previous_targets = targets_of(previous)
    turn.previous_message = previous
    turn.previous_edits = _once(lambda: parse(previous, plan).edits if previous else [])

    text, story_edits, story_notes = read_story(text, turn.plan)  # story order and pace (#12 §4), before the split
    turn.edits += story_edits
    turn.notes += story_notes
    for piece in split_clauses(text):
        clause = Clause(text=piece, original=piece.replace("_", " "))
        _parse_clause(clause, turn, first_message=first_message)
        if not clause.understood and is_meaningful(clause.original):
            turn.unparsed.append(clause.original)

    edits, conflicts = last_wins(ordered(turn.edits))
    turn.notes += conflicts
    if turn.answers and not edits:
        edits_head = []  # "what are the eyes doing?" first: a question, not a portrait to start
    edits = edits_head + edits
    if first_message and not names_a_scene(text) and P.GENERIC_RE.search(text):
        left_out = _only_what_is_named(turn.plan, edits)
        if left_out:
            edits += left_out
            turn.notes.append(ONLY_NAMED_NOTE)
    if (hands_in_view and not template_locked and turn.plan.template == "portrait_subtle"
            and not any(isinstance(e, SetTemplate) for e in edits)):
        if any(isinstance(e, AddMotion) and e.subject == "hands" for e in edits):
            # gestures with the hands in view: the dynamic portrait is the template for that
            edits.insert(0, SetTemplate(template="portrait_dynamic"))
        elif not first_message and TW.says_hands_in_view(text):
            edits.insert(0, SetTemplate(template="portrait_dynamic"))
            turn.notes.append(HANDS_VISIBLE_NOTE)
    if not turn.answers and not turn.cancel and compare is None and OTHER_QUESTION_RE.search(V.normalize(raw)):
        # "why is the sky blue?": a question with no answer here is still not an edit (not "the sky moves")
        turn.answers.append(UNKNOWN_QUESTION)
        turn.unparsed.clear()
        turn.notes.clear()
        edits = []
    if len(edits) > MAX_EDITS_PER_TURN:
        turn.notes.append(f"that was a lot at once: I applied the first {MAX_EDITS_PER_TURN} changes")
        edits = edits[:MAX_EDITS_PER_TURN]
    return ParseResult(edits=edits, unparsed=turn.unparsed, notes=turn.notes, planner="rules", answers=turn.answers,
                       cancel=turn.cancel, reply_language=reply_language, compare=compare)


def questions_only(message: str, plan: MotionPlan | None) -> ParseResult | None:
    """The rule planner's result when the message only asks questions, is off-topic, says "nevermind" or asks to
    compare two videos (no edits, nothing left unread), else None: every planner answers these the same way."""
    result = parse(message, plan)
    if (result.answers or result.cancel or result.compare) and not result.edits and not result.unparsed:
        return result
    return None


def _once(compute: Callable[[], list[Edit]]) -> Callable[[], list[Edit]]:
    """`compute` run at most once: "the same for the trees" said many times parses the last message once."""
    done: list[list[Edit]] = []

    def get() -> list[Edit]:
        if not done:
            done.append(compute())
        return list(done[0])

    return get


def _only_what_is_named(plan: MotionPlan, edits: list[Edit]) -> list[Edit]:
    """A first message about things outside the canonical subjects ("a flag waving on a pole"): the template's
    default motions are about things that may not be in the picture, so only what the message names moves."""
    named = {e.subject for e in edits if isinstance(e, (AddMotion, ScaleMotion))}
    return [RemoveMotion(subject=m.subject) for m in plan.motions if m.subject not in named]


ONLY_NAMED_NOTE = "only what you named moves: the template's own motions may be about things not in your picture"


def _parse_clause(c: Clause, turn: Turn, *, first_message: bool) -> None:
    """The matchers in order; once every word of the clause is used, the rest have nothing to read (each needs
    a word to match), so they are skipped."""
    if read_question(c, turn):
        return
    m = c.search(TW.HANDS_IN_VIEW)
    if m:
        c.take(m)  # "her hands are visible" is a fact about the picture, not a motion
    take_all(c, V.KEEP_REST)
    # end frame, loop, variations (#12 §1, §3) first: before seeds, history, negations; smoother and larger
    # (#12 §5) before "smoother camera" (meanings) and "N frames" (duration)
    for matcher in (read_end_and_batch, read_session, read_seed, read_steps, read_guidance, read_smoother_larger,
                    read_meanings):
        matcher(c, turn)
        if c.used_up():
            return
    read_same_for(c, turn, turn.previous_edits)
    read_bring_back(c, turn)
    read_duration(c, turn)
    read_prompt(c, turn)
    if c.used_up():
        return
    camera_used = read_camera(c, turn)
    if c.used_up():
        return
    read_template(c, turn, first_message=first_message)
    read_allow(c, turn)
    read_negations(c, turn)
    read_only(c, turn)
    if c.used_up():
        return
    atmosphere_used = read_atmosphere(c, turn)
    if c.used_up():
        return
    read_motions(c, turn, others_used=camera_used or atmosphere_used, camera_used=camera_used)
