"""Questions, off-topic requests and "nevermind": answered from the plan, never turned into edits.

"what can you do?" gets a short list with examples; "what seed is this?", "why is it slow?", "what will the
prompt be?", "which template is this?" are answered from the plan; "write me a poem" gets a polite
redirect; "nevermind" cancels what is pending (the session knows what that is) and changes nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from agent import vocabulary as V
from agent.compiler import PLURAL_SUBJECTS, camera_phrase, motion_phrase, pace_word, strength_word
from agent.end_and_batch import end_frame_words
from agent.plan import MotionPlan
from agent.wording import GUIDANCE_LABELS, camera_words
from agent.rules.clauses import Clause, Turn
from agent.templates import get_template

CAPABILITIES = (
    "I turn what you say into the video plan: tell me what should move (“her hair flows in the wind”, "
    "“the dog wags its tail”), how the camera moves (“slow zoom in”, “orbit left”, “the other way”), the look "
    "(“golden hour”, “more cinematic”), the length and quality (“4 seconds”, “half as long”, “higher quality”), "
    "what to avoid (“no text or logos”), the seed (“new seed”, “seed 42”), or go back (“undo”, “the second one”), "
    "and ask “what will the prompt be?” to see the prompt."
)
NO_PLAN_YET = ("There is no plan yet: describe the picture and what should move first (“a dog on the beach, "
               "its tail wagging, slow zoom in”).")
OFF_TOPIC = ("I can only help with this video, so nothing changed: tell me what should move or how the camera "
             "should move (ask “what can you do?” for examples).")


def _seed(plan: MotionPlan) -> str:
    how = {"new": "drawn fresh", "same": "kept on purpose", "explicit": "set by you"}[plan.seed_policy]
    return (f"The seed is {plan.seed} ({how}): say “new seed” for another take of the same plan, or “seed 42” "
            "to set one.")


def _slow(plan: MotionPlan) -> str:
    return (f"Rendering time grows with the steps (now {plan.steps}) and the length (now {plan.duration_s:g} s, "
            f"{plan.num_frames} frames); the first video also waits for the model to load. For a quicker look say "
            "“draft” (fewer steps) or “shorter”.")


def _prompt(plan: MotionPlan) -> str:
    own = " (your own prompt)" if plan.prompt_override else ""
    return f"The prompt will be{own}: “{plan.prompt.rstrip('.')}”."


def _template(plan: MotionPlan) -> str:
    t = get_template(plan.template)
    return f"This is the {t.title} template ({t.id}): {t.description}"


def _summary(plan: MotionPlan) -> str:
    moving = "; ".join(motion_phrase(m) for m in plan.motions) or "nothing moves"
    return (f"Now: {moving}; {camera_phrase(plan)}; {plan.duration_s:g} s, {plan.steps} steps, seed {plan.seed} "
            f"({get_template(plan.template).title} template).")


def _duration(plan: MotionPlan) -> str:
    segments = f", rendered as {plan.segment_count} chained segments" if plan.segment_count > 1 else ""  # #12 §2
    return f"The clip is {plan.duration_s:g} s long ({plan.num_frames} frames at {plan.fps} fps{segments})."


def _steps(plan: MotionPlan) -> str:
    early, late = GUIDANCE_LABELS.values()
    return f"{plan.steps} steps; {early} {plan.guidance_scale:g}, {late} {plan.guidance_scale_2:g}."


def _guidance(plan: MotionPlan) -> str:
    early, late = GUIDANCE_LABELS.values()
    return ("Prompt strength (the guidance scale) is how closely each step follows the prompt: higher follows it "
            "more literally, lower leaves the model freer; the early steps set the layout and the motion, the late "
            f"steps the detail. Now: {early} {plan.guidance_scale:g}, {late} {plan.guidance_scale_2:g} "
            "(say “more guidance”, “less guidance” or “guidance 3”).")


def _camera(plan: MotionPlan) -> str:
    if plan.camera.move == "static":
        return "The camera holds still (say “slow zoom in” or “pan left” to move it)."
    words = camera_words(plan)
    return f"{words[0].upper()}{words[1:]}: {camera_phrase(plan)}."


def _motion(plan: MotionPlan, subject: str) -> str:
    """An answer about one thing: what it does, at what pace and how strongly, in words."""
    m = plan.motion(subject)
    if m is None:
        plural = subject in PLURAL_SUBJECTS
        return (f"The {subject} {'do' if plural else 'does'} not move in this plan (say “the {subject} "
                f"{'move' if plural else 'moves'}” to animate {'them' if plural else 'it'}).")
    said = motion_phrase(m)
    usual = "" if pace_word(m.speed) or strength_word(m.intensity) else ", at its usual pace and strength"
    return f"{said[0].upper()}{said[1:]}{usual} (say “slower {subject}” or “subtler {subject}” to change it)."


def _negatives(plan: MotionPlan) -> str:
    if not plan.negative_terms:
        return "You have not asked me to avoid anything yet (the template's negative prompt still applies)."
    return f"I keep these out of the video: {', '.join(plan.negative_terms)}."


def _sentence_of(words: str) -> str:
    return f"The clip {words}."


_Q = r"(?:what|which|whats|what's)\s+(?:is\s+|are\s+)?(?:the\s+|my\s+|this\s+|your\s+)?"
QUESTIONS: tuple[tuple[re.Pattern[str], Callable[[MotionPlan], str] | str], ...] = (
    (re.compile(r"\bwhat\s+(?:else\s+)?(?:can|could|do)\s+(?:you|i)\s+(?:do|say|ask|change|understand|make)\b"
                r"|\bhow\s+(?:does\s+(?:this|it)\s+work|do\s+i\s+use\s+(?:this|you))\b|^\s*help\s*$|\bwho\s+are\s+you\b"
                r"|\bwhat\s+are\s+(?:the\s+|your\s+)?(?:options|commands|features)\b|\bwhat\s+are\s+you\s*$"
                r"|^\s*(?:can|could)\s+you\s+help(?:\s+me)?\s*(?:please)?\s*$|^\s*what\s+now\s*$"),
     CAPABILITIES),
    (re.compile(r"\bwhat\s+(?:is|are|does|do)\s+(?:the\s+)?(?:guidance|cfg|prompt\s+strength)(?:\s+scales?)?"
                r"(?:\s+(?:mean|do))?\s*$|\bwhat\s+(?:is|does)\s+(?:the\s+)?(?:guidance|cfg|prompt\s+strength)"
                r"(?:\s+scale)?\s+(?:mean|do|for)\b|\bhow\s+does\s+(?:the\s+)?(?:guidance|prompt\s+strength)\s+work\b"),
     _guidance),
    (re.compile(_Q + r"seed\b|\bseed\s+(?:is\s+)?(?:this|it|that|we\s+use|used)\b|\bwhich\s+seed\b"), _seed),
    (re.compile(r"\bwhy\s+(?:is|does|was|did)\s+(?:it|this|that|the\s+(?:render(?:ing)?|video|generation))\s+"
                r"(?:so\s+)?(?:slow|take\s+(?:so\s+)?long|taking\s+(?:so\s+)?long)\b|\bwhy\s+(?:so|is\s+it\s+so)\s+slow\b"
                r"|\bhow\s+long\s+will\s+(?:it|this|the\s+(?:render|video))\s+take\b|\bwhy\s+(?:is\s+it\s+)?taking\s+so\s+long\b"),
     _slow),
    (re.compile(_Q + r"prompt(?:\s+(?:be|look\s+like|say))?\b|\b(?:show|tell)\s+me\s+the\s+prompt\b"
                r"|\bwhat\s+(?:will|would)\s+the\s+prompt\s+(?:be|say|look\s+like)\b"), _prompt),
    (re.compile(_Q + r"(?:template|category|preset|mode)\b|\bwhich\s+(?:template|category)\b"
                r"|\bwhat\s+kind\s+of\s+(?:template|video|clip)\b"), _template),
    (re.compile(_Q + r"(?:plan|current\s+plan|settings|setup)\b|\bwhat\s+(?:is\s+)?moving\b"
                r"|\bwhat\s+(?:are\s+you|will\s+you|do\s+you)\s+(?:going\s+to\s+)?(?:animate|move|make\s+move)\b"
                r"|\bwhat\s+(?:will|is\s+going\s+to)\s+(?:move|happen)\b"), _summary),
    (re.compile(r"\bhow\s+long\s+is\s+(?:it|the\s+(?:clip|video))\b|" + _Q + r"(?:duration|length)\b"), _duration),
    (re.compile(r"\bhow\s+many\s+steps\b|" + _Q + r"(?:steps|guidance|cfg)\b"), _steps),
    (re.compile(r"\bwhat\s+(?:is\s+)?the\s+camera\s+doing\b|" + _Q + r"camera(?:\s+move(?:ment)?)?\b"
                r"|\b(?:is|does)\s+the\s+camera\s+(?:moving|move|still|static)\b"
                r"|\bhow\s+(?:fast|slow|quickly)\s+(?:is|does)\s+the\s+camera\b"
                r"|\bwhat\s+(?:kind\s+of\s+)?camera\s+(?:move|movement|motion)\b"), _camera),
    (re.compile(r"\bwhat\s+(?:are\s+you|am\s+i)\s+avoiding\b|" + _Q + r"negative(?:\s+prompt|\s+terms)?\b"), _negatives),
    # end frame and loop (#12 §1)
    (re.compile(r"\b(?:what|where|how)\s+(?:does|will)\s+(?:it|the\s+(?:clip|video))\s+(?:end|finish)\b"
                r"|\b(?:does|will|is)\s+(?:it|the\s+(?:clip|video))\s+(?:a\s+)?loop(?:ing)?\b|" + _Q
                + r"(?:end|last|final)\s+(?:frame|picture|image)\b"), lambda plan: _sentence_of(end_frame_words(plan))),
    (re.compile(r"\b(?:write|compose|make)\s+(?:me\s+)?(?:a|an|some)\s+(?:poem|story|song|essay|email|letter|haiku|"
                r"joke|limerick|tweet|code|program|script|summary|recipe)\b|\btell\s+me\s+(?:a\s+)?(?:joke|story|fact)\b"
                r"|\bweather\b|\brecipes?\b|\bwhat\s+time\s+is\s+it\b|\bcapital\s+of\b|\btranslate\b"
                r"|\bwho\s+(?:won|is\s+the\s+president)\b|\bstock\s+(?:price|market)\b|\bhomework\b"
                r"|\bmeaning\s+of\s+life\b|\bhow\s+are\s+you\b|\bwhat\s+is\s+\d+\s*[-+*/x]\s*\d+\b"), OFF_TOPIC),
)
NEVERMIND_RE = re.compile(r"^\s*(?:oh\s+|ok\s+|okay\s+)?(?:never\s*mind|nvm|forget\s+(?:it|about\s+it)|"
                          r"ignore\s+(?:that|it|me)|no\s+thanks|doesn't\s+matter|does\s+not\s+matter)\s*$")


_OWNER = r"(?:the\s+|her\s+|his\s+|its\s+|their\s+)?"
_SUBJECT = V.alternation(V.SUBJECT_SYNONYMS)
# "how fast is the hair?", "is the water moving?", "what are the clouds doing?": about one thing, not an edit
MOTION_QUESTION_RE = re.compile(
    r"\bhow\s+(?:fast|slow|slowly|quickly|quick|strong|strongly|much)\s+(?:is|are|does|do)\s+" + _OWNER
    + r"(" + _SUBJECT + r")\b(?:\s+(?:move|moving|going|flowing))?\s*$"
    r"|^\s*(?:is|are|does|do)\s+" + _OWNER + r"(" + _SUBJECT + r")\s+(?:moving|move|still|animated)\s*$"
    r"|\bwhat\s+(?:is|are|does|do|will)\s+" + _OWNER + r"(" + _SUBJECT + r")\s+(?:doing|do)\s*$"
)
# a question the rules have no answer for ("why is the sky blue?"): answered with what can be asked, never an edit
OTHER_QUESTION_RE = re.compile(r"^\s*(?:why(?!\s+not\b)|who|where|when|what(?!\s+(?:about|if)\b)|which"
                               r"|how(?!\s+about\b))\b.*\?\s*$")
UNKNOWN_QUESTION = ("I do not have an answer to that one, so nothing changed: ask me about this video (“what's the "
                    "plan?”, “what camera move is this?”, “what seed is this?”, “why is it slow?”) or tell me what "
                    "should move.")


def read_question(c: Clause, turn: Turn) -> bool:
    """A question, an off-topic request or "nevermind" uses the whole clause; True when the clause was one."""
    if c.has(NEVERMIND_RE):
        c.take_all_text()
        turn.cancel = True
        return True
    m = c.search(MOTION_QUESTION_RE)
    if m is not None:
        c.take_all_text()
        subject = V.SUBJECT_SYNONYMS[next(g for g in m.groups() if g)]
        text = NO_PLAN_YET if turn.new else _motion(turn.plan, subject)
        if text not in turn.answers:
            turn.answers.append(text)
        return True
    for pattern, answer in QUESTIONS:
        if c.has(pattern):
            c.take_all_text()
            if isinstance(answer, str):
                text = answer
            elif turn.new:
                text = NO_PLAN_YET
            else:
                text = answer(turn.plan)
            if text not in turn.answers:
                turn.answers.append(text)
            return True
    return False
