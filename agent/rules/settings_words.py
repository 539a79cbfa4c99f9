"""Clause matchers for the settings and the session: history references, undo and reset, seed, steps,
guidance, duration and the typed prompt."""

from __future__ import annotations

import logging
import re

from agent import vocabulary as V
from agent.edits import Recall, Reset, SetDuration, SetGuidance, SetPrompt, SetSeed, SetSteps, Undo
from agent.plan import LIMITS, MAX_SEED, QUALITY_STEPS
from agent.rules import patterns as P
from agent.rules.clauses import Clause, Turn, degree_of, number_value, take_all

log = logging.getLogger(__name__)


def read_session(c: Clause, turn: Turn) -> None:
    m = c.search(P.RECALL_ID_RE)
    if m:
        c.take(m)
        number = int(m.group(1) or m.group(2))
        if number >= 1:
            turn.add(Recall(generation_id=number))
        else:
            turn.notes.append(f"there is no generation #{number}: generations are numbered from #1")
        return
    m = c.search(P.RECALL_ORDINAL_RE)
    if m:
        word = m.group(1) or m.group(2)
        c.take(m)
        turn.add(Recall(index=V.ORDINALS[word] if word else -2))
        take_all(c, P.RERUN_RE)
        return
    m = c.search(P.RECALL_QUERY_RE)
    if m:
        words = [w for w in (m.group(1) or m.group(2) or "").split() if w not in V.FILLER and w not in V.ORDINALS]
        if words:
            c.take(m)
            turn.add(Recall(query=" ".join(words)[:40]))
            return
    m = c.search(P.RERUN_RE)
    if m:
        c.take(m)
        turn.add(Recall(index=-1))
        return
    m = c.search(P.RESET_RE)
    if m and not re.search(r"\b(?:reset|clear)\s+(?:my\s+|the\s+)?prompt\b", c.text):
        c.take(m)
        turn.add(Reset())
        return
    m = c.search(P.UNDO_RE)
    if m:
        c.take(m)
        turn.add(Undo())


def read_seed(c: Clause, turn: Turn) -> None:
    m = c.search(P.SEED_VALUE_RE)
    if m:
        c.take(m)
        value = int(m.group(1))
        if value > MAX_SEED:
            turn.notes.append(f"seed {value} is past the maximum {MAX_SEED}: used {value % (MAX_SEED + 1)}")
            value %= MAX_SEED + 1
        turn.add(SetSeed(policy="explicit", value=value))
        return
    if take_all(c, P.SEED_SAME_RE):
        turn.add(SetSeed(policy="same"))
        return
    if take_all(c, P.SEED_NEW_RE):
        turn.add(SetSeed(policy="new"))


def read_steps(c: Clause, turn: Turn) -> None:
    m = c.search(P.STEPS_RE)
    if m:
        c.take(m)
        n = number_value(m.group(1) or m.group(2))
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
    degree = degree_of(c)
    if c.has(P.QUALITY_UP_RE):
        best = c.has(P.QUALITY_MAX_RE)
        take_all(c, P.QUALITY_UP_RE)
        take_all(c, P.MILD_RE)
        take_all(c, P.STRONG_RE)
        current = turn.steps()
        if current < QUALITY_STEPS[1]:  # first up to the top of a Lightning render's range, then on
            hi = QUALITY_STEPS[1]
        if current >= hi:
            turn.notes.append(f"steps are already at the {hi} maximum")
            return
        turn.add(SetSteps(steps=hi if best else min(hi, current + V.STEPS_DELTA[degree])))
        return
    if c.has(P.QUALITY_DOWN_RE):
        least = c.has(P.QUALITY_MIN_RE)
        take_all(c, P.QUALITY_DOWN_RE)
        take_all(c, P.MILD_RE)
        take_all(c, P.STRONG_RE)
        current = turn.steps()
        if current <= lo:
            turn.notes.append(f"steps are already at the {lo} minimum (the fastest render)")
            return
        turn.add(SetSteps(steps=lo if least else max(lo, current - V.STEPS_DELTA[degree])))


def read_guidance(c: Clause, turn: Turn) -> None:
    hi = LIMITS["guidance_scale"][1]
    m = c.search(P.GUIDANCE_RE)
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
    m = c.search(P.GUIDANCE_BEFORE_RE)
    if m:
        c.take(m)
        v = min(float(m.group(1)), hi)
        turn.add(SetGuidance(high=v, low=v))
        return
    g1, g2 = turn.plan.guidance_scale, turn.plan.guidance_scale_2
    if (m := c.search(P.GUIDANCE_OFF_RE)) is not None:
        c.take(m)
        turn.add(SetGuidance(high=1.0, low=1.0))
    elif (m := c.search(P.GUIDANCE_MORE_RE)) is not None:
        c.take(m)
        turn.add(SetGuidance(high=min(hi, g1 + 1.0), low=min(hi, g2 + 1.0)))
    elif (m := c.search(P.GUIDANCE_LESS_RE)) is not None:
        c.take(m)
        turn.add(SetGuidance(high=max(0.0, g1 - 1.0), low=max(0.0, g2 - 1.0)))


def read_duration(c: Clause, turn: Turn) -> None:
    m = c.search(P.DURATION_DELTA_RE)
    if m:
        c.take(m)
        amount = number_value(m.group(1)) or 1.0
        if "and_a_half" in m.group(0):
            amount += 0.5
        sign = 1 if m.group(2) in ("longer", "more") else -1
        turn.add(SetDuration(seconds=max(0.01, turn.duration() + sign * amount)))
        return
    for pattern, value in ((P.HALF_SECOND_RE, 0.5), (P.ONE_AND_HALF_RE, 1.5)):
        m = c.search(pattern)
        if m:
            c.take(m)
            turn.add(SetDuration(seconds=value))
            return
    m = c.search(P.DURATION_RE)
    if m:
        c.take(m)
        seconds = float(m.group(1) or m.group(2))
        if seconds <= 0:
            turn.notes.append(f"a clip cannot last {m.group(1)} s: kept {turn.duration():g} s")
            return
        turn.add(SetDuration(seconds=min(seconds, 3600)))
        return
    m = c.search(P.DURATION_WORDS_RE)
    if m:
        c.take(m)
        seconds = (number_value(m.group(1)) or 0) + (0.5 if m.group(2) else 0)
        if seconds <= 0:
            turn.notes.append(f"a clip cannot last {seconds:g} s: kept {turn.duration():g} s")
            return
        turn.add(SetDuration(seconds=seconds))
        return
    m = c.search(P.MINUTES_RE)
    if m:
        c.take(m)
        turn.add(SetDuration(seconds=min(3600.0, (number_value(m.group(1)) or 1.0) * 60)))
        return
    m = c.search(P.FRAMES_RE)
    if m:
        c.take(m)
        frames = int(m.group(1))
        turn.add(SetDuration(seconds=max(0.01, min(3600.0, (frames - 1) / 16))))
        return
    m = c.search(P.A_SECOND_RE)
    if m:
        c.take(m)
        turn.add(SetDuration(seconds=1.0))
        return
    if take_all(c, P.LONGEST_RE):
        turn.add(SetDuration(seconds=LIMITS["duration_s"][1]))
        return
    if take_all(c, P.SHORTEST_RE):
        turn.add(SetDuration(seconds=LIMITS["duration_s"][0]))
        return
    lo, hi = LIMITS["duration_s"]
    for pattern, sign in ((P.LONGER_RE, 1), (P.SHORTER_RE, -1)):
        if c.has(pattern):
            step = V.DURATION_STEP_S[degree_of(c)]
            take_all(c, pattern)
            take_all(c, P.MILD_RE)
            take_all(c, P.STRONG_RE)
            current = turn.duration()
            if (sign > 0 and current >= hi) or (sign < 0 and current <= lo):
                turn.notes.append(f"the clip is already at the {current:g} s {'maximum' if sign > 0 else 'minimum'}")
                return
            turn.add(SetDuration(seconds=min(hi, max(lo, current + sign * step))))
            return


def read_prompt(c: Clause, turn: Turn) -> None:
    m = c.search(V.PROMPT_CLEAR)
    if m:
        c.take(m)
        turn.add(SetPrompt(text=None))
