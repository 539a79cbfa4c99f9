"""The edit schema compiled to a regex (agent.llm.grammar): bounded numbers, bounded strings, and every
answer it allows passes parse_edits. No model needed: random walks through the constraint engine."""

from __future__ import annotations

import json
import random
import re

import pytest

from agent.edits import MAX_EDITS_PER_TURN, parse_edits
from agent.llm.grammar import (
    FIELD_BOUNDS,
    GrammarSpec,
    decimal_range,
    edit_classes,
    edit_list_pattern,
    edit_pattern,
    int_range,
    op_name,
    words,
)
from agent.llm.prompts import FEW_SHOT, OP_EXAMPLES

INT_RANGES = [(0, 9), (1, 100), (4, 12), (0, 2**31 - 1), (-1, 99), (1, 99999), (3, 3), (17, 3456), (-25, -3)]


@pytest.mark.parametrize("lo,hi", INT_RANGES)
def test_int_range_matches_exactly_the_integers_in_range(lo, hi):
    rx = re.compile(int_range(lo, hi).regex)
    rnd = random.Random(lo * 31 + hi)
    values = list(range(lo - 30, lo + 30)) + list(range(hi - 30, hi + 30)) + [rnd.randint(lo - 99, hi + 99) for _ in range(300)]
    for v in values:
        assert bool(rx.fullmatch(str(v))) == (lo <= v <= hi), (lo, hi, v)
    for bad in ("01", "00", "+1", "", "1.0", " 1"):
        assert not rx.fullmatch(bad), bad
    assert int_range(lo, hi).max_chars == max(len(str(lo)), len(str(hi)))


DECIMAL_RANGES = [(0.05, 5.0, False), (0.0, 1.0, False), (0.0, 10.0, True), (0.5, 60.0, False), (0.1, 5.0, False),
                  (2.35, 7.81, False), (0.5, 0.5, False)]


@pytest.mark.parametrize("lo,hi,lo_exclusive", DECIMAL_RANGES)
def test_decimal_range_matches_exactly_the_two_decimal_numbers_in_range(lo, hi, lo_exclusive):
    p = decimal_range(lo, hi, lo_exclusive=lo_exclusive)
    rx = re.compile(p.regex)
    candidates = set()
    for i in range(int(hi) + 3):
        candidates |= {str(i)} | {f"{i}.{f}" for f in range(10)} | {f"{i}.{f:02d}" for f in range(100)}
    for c in candidates:
        v = float(c)
        inside = (lo < v if lo_exclusive else lo <= v) and v <= hi
        assert bool(rx.fullmatch(c)) == inside, (lo, hi, c)
        if inside:
            assert len(c) <= p.max_chars
    for bad in ("1.", "1.234", ".5", "01.5", "1e3", "-1", "0.5 "):
        assert not rx.fullmatch(bad), bad


def test_strings_are_short_plain_phrases():
    rx = re.compile(words(12).regex)
    assert rx.fullmatch('"flow gently"') and rx.fullmatch('"x"') and rx.fullmatch("\"don't\"")
    for bad in ('""', '" flow"', '"Flow"', '"a\\"b"', '"a\nb"', '"flow gently now"', '"flow "'):
        assert not rx.fullmatch(bad), bad


def test_every_edit_class_compiles_with_every_field_in_order():
    spec = GrammarSpec()
    for cls in edit_classes():
        p = edit_pattern(cls, spec)
        keys = list(cls.model_fields)
        assert p.regex.lstrip("(").startswith('\\{"op":"' + op_name(cls) + '"')
        positions = [p.regex.find(f'"{k}":') for k in keys]
        assert positions == sorted(positions) and -1 not in positions, cls.__name__


def test_examples_in_the_system_prompt_fit_the_grammar_and_the_schema():
    full = re.compile(edit_list_pattern(GrammarSpec(excluded_ops=frozenset())).regex)
    for op, (example, _) in OP_EXAMPLES.items():
        assert full.fullmatch(f"[{example}]"), op
        assert parse_edits(json.loads(f"[{example}]"))[0].op == op
    rx = re.compile(edit_list_pattern(GrammarSpec()).regex)
    for _, answer in FEW_SHOT:
        assert rx.fullmatch(answer) and parse_edits(json.loads(answer))
    assert set(OP_EXAMPLES) == {op_name(c) for c in edit_classes()}


def test_seed_edits_carry_a_value_exactly_when_explicit():
    rx = re.compile(edit_list_pattern(GrammarSpec()).regex)
    assert rx.fullmatch('[{"op":"seed","policy":"same","value":null}]')
    assert rx.fullmatch('[{"op":"seed","policy":"explicit","value":42}]')
    assert not rx.fullmatch('[{"op":"seed","policy":"explicit","value":null}]')
    assert not rx.fullmatch('[{"op":"seed","policy":"new","value":42}]')


def test_list_bounds_and_excluded_ops():
    spec = GrammarSpec(max_edits=2)
    rx = re.compile(edit_list_pattern(spec).regex)
    one = '{"op":"undo"}'
    assert rx.fullmatch("[]") and rx.fullmatch(f"[{one}]") and rx.fullmatch(f"[{one},{one}]")
    assert not rx.fullmatch(f"[{one},{one},{one}]") and not rx.fullmatch(f"[ {one}]")
    assert not rx.fullmatch('[{"op":"set_prompt","text":null}]')  # a typed prompt is the person's, never the model's
    locked = re.compile(edit_list_pattern(spec, template_locked=True).regex)
    assert rx.fullmatch('[{"op":"set_template","template":"animals"}]')
    assert not locked.fullmatch('[{"op":"set_template","template":"animals"}]')
    # durations wider than the plan allows (12 s): the model writes what was said, apply clamps and says so
    assert rx.fullmatch('[{"op":"set_duration","seconds":12}]') and FIELD_BOUNDS[("set_duration", "seconds")][1] > 5


@pytest.mark.parametrize("bad", [{"max_edits": 0}, {"max_edits": MAX_EDITS_PER_TURN + 1}, {"max_term_chars": 1}])
def test_grammar_spec_validates(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        GrammarSpec(**bad)


def test_random_walks_through_the_engine_always_give_schema_valid_edits():
    """400 answers chosen uniformly among the tokens llguidance allows at each step: all parse and apply."""
    import llguidance
    import llguidance.hf
    import numpy as np

    from agent.llm.planner import check_on_plan
    from agent.compiler import default_plan
    from devtools.tiny_qwen import build_tokenizer

    tok = build_tokenizer()
    llt = llguidance.hf.from_tokenizer(tok, n_vocab=len(tok))
    spec = GrammarSpec()
    pattern = edit_list_pattern(spec)
    root = llguidance.LLMatcher(llt, llguidance.LLMatcher.grammar_from_regex(pattern.regex), log_level=0)
    assert not root.is_error(), root.get_error()
    plan = default_plan("fashion", seed=5)
    rnd = random.Random(7)
    ops_seen: set[str] = set()
    for _ in range(400):
        m = root.deep_copy()
        tokens: list[int] = []
        while True:
            mask = np.frombuffer(m.compute_bitmask(), dtype=np.uint32)
            allowed = [t for t in range(len(tok)) if mask[t // 32] >> (t % 32) & 1]
            choice = rnd.choice(allowed)
            if choice == tok.eos_token_id:
                break
            assert m.consume_token(choice), m.get_error()
            tokens.append(choice)
        text = tok.decode(tokens)
        assert len(text) <= pattern.max_chars
        edits = parse_edits(json.loads(text))
        assert len(edits) <= spec.max_edits
        check_on_plan(plan, edits)  # and the plan takes them (raises otherwise)
        ops_seen |= {e.op for e in edits}
    assert len(ops_seen) >= 12  # the walks reach nearly every operation
