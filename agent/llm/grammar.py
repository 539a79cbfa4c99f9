"""The edit-list schema as one regular expression: everything the LLM planner is allowed to write.

Constraining a model straight from JSON Schema leaks control characters into strings and lets numbers
run on to the token limit (measured, see the README). So the schema of `agent.edits` is compiled here to a
regex with a fixed key order (the order the fields are declared in), every key written, no free
whitespace, strings from a small character set with a length cap, numbers with at most two decimals and
inside the field's bounds, and at most `max_edits` edits. Whatever matches the regex passes `parse_edits`
(a test checks it on random samples), and the regex has a known longest match (`Pattern.max_chars`), so
a generation budget of that many tokens always ends in a complete answer.

Built from the pydantic fields of the edit classes: a new edit operation is picked up without changes here.
No torch, no transformers: pure text.
"""

from __future__ import annotations

import math
import re
import types
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types as at

from agent import edits as edit_ops
from agent.plan import STORY_PICTURES

# Edits the LLM may not write: a typed prompt is the person's own text, never the model's.
LLM_EXCLUDED_OPS = frozenset({"set_prompt"})

# Bounds for fields the schema leaves open (or very wide); the grammar may be narrower than the schema.
FIELD_BOUNDS: dict[tuple[str, str], tuple[float, float]] = {
    ("set_duration", "seconds"): (0.5, 60.0),  # "make it 12 seconds" → 12, and `apply` clamps and says so
    ("set_steps", "steps"): (1, 50),
    ("scale_motion", "speed_factor"): (0.1, 5.0),
    ("scale_motion", "intensity_factor"): (0.1, 5.0),
    ("scale_camera", "factor"): (0.1, 5.0),
    ("recall", "generation_id"): (1, 99999),
    ("recall", "index"): (-1, 99),
    ("scale_transition", "factor"): (0.1, 5.0),  # story: "slower between 2 and 3" → 0.6 (#12 §4)
    ("variations", "count"): (1, 20),  # "12 variations" → 12, and `apply` clamps to 8 and says so
}
DECIMALS = 2

# Fields whose allowed values depend on another field, written as variants of one operation. A value is
# a tuple of allowed literals, NULL (only null) or REQUIRED (the field's type without null). The plan
# refuses a seed edit with policy "explicit" and no value, so the grammar never writes one.
NULL, REQUIRED = "null", "required"
VARIANTS: dict[str, tuple[dict[str, Any], ...]] = {
    "seed": ({"policy": ("same", "new"), "value": NULL}, {"policy": ("explicit",), "value": REQUIRED}),
}


@dataclass(frozen=True)
class Pattern:
    """A regex and the length of its longest match."""

    regex: str
    max_chars: int


@dataclass(frozen=True)
class GrammarSpec:
    """How much the model may write in one answer."""

    max_edits: int = 4
    max_action_chars: int = 32
    max_term_chars: int = 24
    max_terms: int = 3
    excluded_ops: frozenset[str] = field(default=LLM_EXCLUDED_OPS)

    def __post_init__(self) -> None:
        for name, lo, hi in (("max_edits", 1, edit_ops.MAX_EDITS_PER_TURN), ("max_action_chars", 2, 60),
                             ("max_term_chars", 2, edit_ops.MAX_TERM_CHARS), ("max_terms", 1, 8)):
            value = getattr(self, name)
            if not isinstance(value, int) or not lo <= value <= hi:
                raise ValueError(f"GrammarSpec.{name} = {value!r}: must be an integer in {lo}–{hi}")


def _group(regex: str) -> str:
    return f"({regex})"


# Digits are written [0-9]: in the constraint engine's regex dialect \d also matches other scripts' digits.


# --- numbers ----------------------------------------------------------------------------------------

def _same_length_range(lo: str, hi: str) -> str:
    """Regex for the integers lo..hi written with the same number of digits (lo <= hi)."""
    if lo == hi:
        return lo
    n = len(lo) - 1
    if lo == "0" * len(lo) and hi == "9" * len(hi):
        return f"[0-9]{{{len(lo)}}}" if len(lo) > 1 else "[0-9]"
    if n == 0:
        return f"[{lo}-{hi}]"
    if lo[0] == hi[0]:
        return lo[0] + _group(_same_length_range(lo[1:], hi[1:]))
    parts = [lo[0] + _group(_same_length_range(lo[1:], "9" * n))]
    if int(hi[0]) - int(lo[0]) > 1:
        first, last = int(lo[0]) + 1, int(hi[0]) - 1
        head = str(first) if first == last else f"[{first}-{last}]"
        parts.append(head + (f"[0-9]{{{n}}}" if n > 1 else "[0-9]"))
    parts.append(hi[0] + _group(_same_length_range("0" * n, hi[1:])))
    return "|".join(parts)


def int_range(lo: int, hi: int) -> Pattern:
    """Integers lo..hi in JSON form (no leading zeros; a leading minus for negatives)."""
    if lo > hi:
        raise ValueError(f"int_range: lo = {lo} is above hi = {hi}")
    branches: list[str] = []
    if lo < 0:
        neg = int_range(max(1, -hi) if hi < 0 else 1, -lo)
        branches.append("-" + _group(neg.regex))
    start = max(lo, 0)
    if hi >= 0:
        for digits in range(len(str(start)), len(str(hi)) + 1):
            a = max(start, 10 ** (digits - 1) if digits > 1 else 0)
            b = min(hi, 10**digits - 1)
            if a <= b:
                branches.append(_same_length_range(str(a), str(b)))
    width = max(len(str(lo)), len(str(hi)))
    return Pattern("|".join(_group(b) for b in branches) if len(branches) > 1 else branches[0], width)


def decimal_range(lo: float, hi: float, *, lo_exclusive: bool = False, hi_exclusive: bool = False) -> Pattern:
    """Numbers in [lo, hi] with at most DECIMALS decimals ("0.5", "0.55", "3", "3.0"), non-negative."""
    scale = 10**DECIMALS
    lo_units = math.ceil(round(lo * scale, 6)) + (1 if lo_exclusive and float(lo * scale).is_integer() else 0)
    hi_units = math.floor(round(hi * scale, 6)) - (1 if hi_exclusive and float(hi * scale).is_integer() else 0)
    if lo_units < 0 or lo_units > hi_units:
        raise ValueError(f"decimal_range: empty or negative range [{lo}, {hi}]")
    branches: list[str] = []
    first_int, last_int = lo_units // scale, hi_units // scale
    # Integer parts whose every fraction is allowed, as one integer range.
    full_lo = first_int if lo_units % scale == 0 else first_int + 1
    full_hi = last_int if hi_units % scale == scale - 1 else last_int - 1
    if full_lo <= full_hi:
        branches.append(_group(int_range(full_lo, full_hi).regex) + rf"(\.[0-9]{{1,{DECIMALS}}})?")
    for ip in sorted({first_int, last_int}):
        if full_lo <= ip <= full_hi:
            continue
        f_lo = max(lo_units - ip * scale, 0)
        f_hi = min(hi_units - ip * scale, scale - 1)
        fractions = [_same_length_range(f"{f_lo:0{DECIMALS}d}", f"{f_hi:0{DECIMALS}d}")]
        short = [d for d in range(10) if f_lo <= d * 10 ** (DECIMALS - 1) <= f_hi]
        if short:
            fractions.append(f"[{short[0]}-{short[-1]}]" if len(short) > 1 else str(short[0]))
        tail = r"\." + _group("|".join(_group(f) for f in fractions))
        # The bare integer ("3") is allowed when its fraction .00 is in range.
        branches.append(str(ip) + (_group(tail) + "?" if f_lo == 0 else tail))
    width = len(str(last_int)) + 1 + DECIMALS
    return Pattern("|".join(_group(b) for b in branches), width)


# --- strings and choices ------------------------------------------------------------------------------

WORD_FIRST = "[a-z]"
WORD_CHARS = "[a-z0-9 '-]"
WORD_LAST = "[a-z0-9]"


def words(max_chars: int) -> Pattern:
    """A quoted short phrase: lower-case letters, digits, spaces, ' and -; starts with a letter."""
    if max_chars < 2:
        raise ValueError(f"words: max_chars = {max_chars} must be at least 2")
    return Pattern(f'"{WORD_FIRST}({WORD_CHARS}{{0,{max_chars - 2}}}{WORD_LAST})?"', max_chars + 2)


def choice(values: tuple[Any, ...]) -> Pattern:
    """One of the JSON literals `values` (strings quoted)."""
    texts = [f'"{v}"' if isinstance(v, str) else str(v).lower() for v in values]
    return Pattern("(" + "|".join(re.escape(t) for t in texts) + ")", max(len(t) for t in texts))


def array_of(item: Pattern, max_items: int) -> Pattern:
    regex = rf"\[{item.regex}(,{item.regex}){{0,{max_items - 1}}}\]" if max_items > 1 else rf"\[{item.regex}\]"
    return Pattern(regex, 2 + max_items * item.max_chars + (max_items - 1))


def nullable(p: Pattern) -> Pattern:
    return Pattern(f"({p.regex}|null)", max(p.max_chars, 4))


# --- from the pydantic edit classes --------------------------------------------------------------------

def _bounds(metadata: list[Any]) -> tuple[float | None, float | None, bool, bool]:
    lo = hi = None
    lo_ex = hi_ex = False
    for m in metadata:
        if isinstance(m, at.Ge):
            lo = m.ge
        elif isinstance(m, at.Gt):
            lo, lo_ex = m.gt, True
        elif isinstance(m, at.Le):
            hi = m.le
        elif isinstance(m, at.Lt):
            hi, hi_ex = m.lt, True
    return lo, hi, lo_ex, hi_ex


def _max_len(metadata: list[Any]) -> int | None:
    return next((m.max_length for m in metadata if isinstance(m, at.MaxLen)), None)


def _literals(annotation: Any) -> tuple[Any, ...] | None:
    if get_origin(annotation) is Literal:
        return get_args(annotation)
    if get_origin(annotation) in (Union, types.UnionType):
        values: list[Any] = []
        for arg in get_args(annotation):
            sub = _literals(arg)
            if sub is None:
                return None
            values.extend(sub)
        return tuple(values)
    return None


def field_pattern(op: str, name: str, annotation: Any, metadata: list[Any], spec: GrammarSpec) -> Pattern:
    """The pattern for one field of one edit operation."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType) and type(None) in get_args(annotation):
        rest = [a for a in get_args(annotation) if a is not type(None)]
        inner = rest[0] if len(rest) == 1 else Union[tuple(rest)]  # type: ignore[valid-type]
        return nullable(field_pattern(op, name, inner, metadata, spec))
    if annotation is bool:
        return choice((True, False))
    literals = _literals(annotation)
    if literals is not None:
        return choice(literals)
    if annotation is str:
        cap = _max_len(metadata) or spec.max_action_chars
        return words(min(cap, spec.max_action_chars))
    if origin is tuple:
        (item_type, *_rest) = get_args(annotation)
        item_meta: list[Any] = []
        if get_origin(item_type) is Annotated:
            item_type, *extras = get_args(item_type)
            for extra in extras:
                item_meta.extend(getattr(extra, "metadata", [extra]))
        count = min(_max_len(metadata) or spec.max_terms, STORY_PICTURES[1])
        if item_type is int:  # story order: picture numbers (#12 §4)
            lo, hi, lo_ex, hi_ex = _bounds(item_meta)
            if lo is None or hi is None:
                raise TypeError(f"{op}.{name}: tuple items need bounds for the LLM grammar")
            items = array_of(int_range(int(lo) + (1 if lo_ex else 0), int(hi) - (1 if hi_ex else 0)), count)
            return Pattern(rf"(\[\]|{items.regex})", items.max_chars)
        if item_type is not str:
            raise TypeError(f"{op}.{name}: only tuples of strings or numbers are supported in the LLM grammar")
        item_cap = min(_max_len(item_meta) or spec.max_term_chars, spec.max_term_chars)
        count = min(_max_len(metadata) or spec.max_terms, spec.max_terms)
        return array_of(words(item_cap), count)
    if annotation in (int, float):
        if (op, name) in FIELD_BOUNDS:
            lo, hi = FIELD_BOUNDS[(op, name)]
            lo_ex = hi_ex = False
        else:
            lo, hi, lo_ex, hi_ex = _bounds(metadata)
        if lo is None or hi is None:
            raise TypeError(f"{op}.{name}: a number needs bounds for the LLM grammar (add it to FIELD_BOUNDS)")
        if annotation is int:
            return int_range(int(lo) + (1 if lo_ex else 0), int(hi) - (1 if hi_ex else 0))
        return decimal_range(lo, hi, lo_exclusive=lo_ex, hi_exclusive=hi_ex)
    raise TypeError(f"{op}.{name}: type {annotation!r} is not supported in the LLM grammar")


def edit_classes() -> list[type]:
    """The edit operation classes, in the order of the `Edit` union."""
    union = get_args(edit_ops.Edit)[0]
    return list(get_args(union))


def op_name(cls: type) -> str:
    return get_args(cls.model_fields["op"].annotation)[0]


def _restricted(annotation: Any, rule: Any) -> Any:
    if rule == REQUIRED:
        rest = [a for a in get_args(annotation) if a is not type(None)]
        return rest[0] if len(rest) == 1 else Union[tuple(rest)]  # type: ignore[valid-type]
    if isinstance(rule, tuple):
        return Literal[rule]  # type: ignore[valid-type]
    raise ValueError(f"unknown variant rule {rule!r}")


def edit_pattern(cls: type, spec: GrammarSpec) -> Pattern:
    """`{"op":"…","field":value,…}` with every field, in declaration order (one branch per VARIANTS entry)."""
    op = op_name(cls)
    branches = []
    for variant in VARIANTS.get(op, ({},)):
        parts = [f'\\{{"op":"{op}"']
        total = len(f'{{"op":"{op}"')
        for name, info in cls.model_fields.items():
            if name == "op":
                continue
            rule = variant.get(name)
            if rule == NULL:
                p = Pattern("null", 4)
            else:
                annotation = info.annotation if rule is None else _restricted(info.annotation, rule)
                p = field_pattern(op, name, annotation, list(info.metadata), spec)
            parts.append(f',"{name}":{_group(p.regex)}')
            total += len(f',"{name}":') + p.max_chars
        parts.append(r"\}")
        branches.append(Pattern("".join(parts), total + 1))
    if len(branches) == 1:
        return branches[0]
    return Pattern("|".join(_group(b.regex) for b in branches), max(b.max_chars for b in branches))


def allowed_ops(spec: GrammarSpec, *, template_locked: bool = False) -> list[type]:
    excluded = set(spec.excluded_ops) | ({"set_template"} if template_locked else set())
    return [c for c in edit_classes() if op_name(c) not in excluded]


@lru_cache(maxsize=16)
def edit_list_pattern(spec: GrammarSpec = GrammarSpec(), *, template_locked: bool = False) -> Pattern:
    """The whole answer: `[]` or up to `spec.max_edits` edits, comma-separated, no whitespace."""
    items = [edit_pattern(c, spec) for c in allowed_ops(spec, template_locked=template_locked)]
    one = Pattern("(" + "|".join(_group(p.regex) for p in items) + ")", max(p.max_chars for p in items))
    many = array_of(one, spec.max_edits)
    return Pattern(rf"(\[\]|{many.regex})", many.max_chars)
