"""Bounded input and linear time: a chat message is at most MAX_MESSAGE_CHARS (plan_turn, the CLI and the studio
refuse longer ones with a sentence), and the rule planner's work grows linearly with the message, counted in
function calls and in characters its clause matchers search (no timing: bench/planner_linear.py has the figures)."""

from __future__ import annotations

import random
import re
import sys

import pytest

from agent import MAX_MESSAGE_CHARS, MessageTooLong, new_conversation, plan_turn
from agent import __main__ as cli
from agent import vocabulary as V
from agent.rules import clauses as C
from agent.rules import parse
from devtools.conversations import CONVERSATIONS


def test_a_message_past_the_limit_is_refused_with_a_sentence_and_changes_nothing():
    state, _ = plan_turn(new_conversation(), "a dog on the beach", rng=random.Random(1))
    with pytest.raises(MessageTooLong) as e:
        plan_turn(state, "slower " * 700, rng=random.Random(1))
    assert "at most 4,000 characters" in str(e.value) and "4,900" in str(e.value)
    assert isinstance(e.value, ValueError) and e.value.limit == MAX_MESSAGE_CHARS == 4000
    after, reply = plan_turn(state, ("slower tail, " * 400)[:MAX_MESSAGE_CHARS], rng=random.Random(1))
    assert after.plan is not None and reply.text  # exactly at the limit: planned as usual


def test_the_cli_refuses_a_long_turn_before_planning():
    with pytest.raises(cli.InputError, match="turn 2 has 4,001 characters"):
        cli.read_request('{"turns": ["a dog", "%s"]}' % ("x" * 4001))


def test_the_studio_refuses_a_long_message_as_a_studio_error(tmp_path):
    from storage import open_store
    from vividflow.studio import Studio, StudioError

    store = open_store(url=f"sqlite:///{tmp_path / 'v.db'}", home=tmp_path)
    try:
        studio = Studio.fresh(store)
        with pytest.raises(StudioError, match="at most 4,000 characters"):
            studio.chat("y" * (MAX_MESSAGE_CHARS + 1))
        assert studio.conversation_id is None and not studio.entries  # nothing recorded
    finally:
        store.close()


def _realistic(size: int) -> str:
    said = [t.say for c in CONVERSATIONS for t in c.turns]
    random.Random(0).shuffle(said)
    text = ". ".join(said)
    return (text * (size // len(text) + 1))[:size]


SHAPES = {
    "realistic": _realistic,
    "one word, no punctuation": lambda n: ("hair " * n)[:n],  # one long clause: was quadratic
    "typos": lambda n: ("slowy hiar watr zooom " * n)[:n],
    "many edits": lambda n: "".join(f"seed {i}, {i % 5 + 1} seconds, slower tail, " for i in range(n))[:n],
}


def _work(message: str) -> tuple[int, int]:
    """(Python and C function calls, characters searched by clause matchers) for one parse."""
    calls = 0
    searched = 0

    def count(frame, event, arg):  # noqa: ARG001
        nonlocal calls
        if event in ("call", "c_call"):
            calls += 1

    original = C.Clause.search

    def search(self, pattern):
        nonlocal searched
        searched += len(self.text)
        return original(self, pattern)

    C.Clause.search = search  # type: ignore[method-assign]
    sys.setprofile(count)
    try:
        parse(message, None)
    finally:
        sys.setprofile(None)
        C.Clause.search = original  # type: ignore[method-assign]
    return calls, searched


@pytest.mark.parametrize("shape", SHAPES)
def test_the_planner_does_linear_work_in_the_message_length(shape):
    make = SHAPES[shape]
    parse(make(400), None)  # warm caches (regexes, the spelling index) so both sizes count the same things
    small_calls, small_chars = _work(make(4_000))
    big_calls, big_chars = _work(make(40_000))
    # ten times the text: ten times the work, give or take (quadratic would be ~100 times)
    assert big_calls <= 14 * small_calls, (shape, small_calls, big_calls)
    assert big_chars <= 14 * small_chars, (shape, small_chars, big_chars)


def test_no_clause_is_longer_than_the_bound():
    text = "hair " * 1000 + "x" * 1000 + ", slow zoom in"
    pieces = C.split_clauses(text)
    assert max(map(len, pieces)) <= C.MAX_CLAUSE_CHARS
    assert "".join(pieces).replace(" ", "") == text.replace(",", "").replace(" ", "")  # nothing lost


def test_grouped_alternations_match_exactly_what_the_plain_ones_did():
    phrases = tuple(V.SUBJECT_SYNONYMS) + tuple(V.ACTIONS) + ("a", "an", "h", "")
    plain = re.compile(r"(?<![\w#])(?:" + "|".join(re.escape(p) for p in sorted(set(phrases), key=len, reverse=True))
                       + r")(?![\w])")
    grouped = re.compile(r"(?<![\w#])" + V.alternation(phrases) + r"(?![\w])")
    text = V.normalize(" ".join(t.say for c in CONVERSATIONS for t in c.turns))
    assert [m.span() for m in grouped.finditer(text)] == [m.span() for m in plain.finditer(text)]
