"""Argument checks shared by the Store's parts: each error names the field, the value and what is allowed."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from storage.errors import InvalidFieldError

MAX_PAGE_SIZE = 500
MAX_OWNER_LEN = 500
INT_RANGE = (-(2**31), 2**31 - 1)  # every INTEGER column (and id) is 32-bit on PostgreSQL

# plan key -> python type of its column; storage copies the keys it finds, keeps the whole dict
PLAN_COLUMNS: dict[str, type] = {
    "template": str,
    "seed": int,
    "steps": int,
    "guidance_scale": float,
    "guidance_scale_2": float,
    "duration_s": float,
    "num_frames": int,
    "fps": int,
    "width": int,
    "height": int,
    "prompt": str,
    "negative_prompt": str,
}


def check_int(name: str, value: Any, lo: int | None = None, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidFieldError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    lo = INT_RANGE[0] if lo is None else lo
    hi = INT_RANGE[1] if hi is None else hi
    if not lo <= value <= hi:
        raise InvalidFieldError(f"{name} must be in [{lo}, {hi}], got {value}")
    return value


def check_float(name: str, value: Any, lo: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidFieldError(f"{name} must be a finite number, got {value!r}")
    if lo is not None and value < lo:
        raise InvalidFieldError(f"{name} must be >= {lo}, got {value}")
    return float(value)


def check_str(name: str, value: Any, allow_empty: bool = True) -> str:
    if not isinstance(value, str):
        raise InvalidFieldError(f"{name} must be a string, got {value!r} ({type(value).__name__})")
    if not allow_empty and not value.strip():
        raise InvalidFieldError(f"{name} must not be empty")
    return value


def check_owner(owner: Any) -> str | None:
    if owner is None:
        return None
    check_str("owner", owner, allow_empty=False)
    if len(owner) > MAX_OWNER_LEN:
        raise InvalidFieldError(f"owner must be at most {MAX_OWNER_LEN} characters, got {len(owner)}")
    return owner


MAX_USER_LEN = 320  # an e-mail address at most


def check_user(user: Any, name: str = "user") -> str:
    """A person's id (the studio's login name or e-mail, or ``'local'``): non-empty text, at most 320 characters."""
    check_str(name, user, allow_empty=False)
    if len(user) > MAX_USER_LEN:
        raise InvalidFieldError(f"{name} must be at most {MAX_USER_LEN} characters, got {len(user)}")
    return user


def check_choice(name: str, value: Any, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise InvalidFieldError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
    return value


def json_dict(name: str, value: Any) -> dict[str, Any]:
    """A deep, JSON-clean copy of a dict (so later mutation by the caller cannot reach the store)."""
    if not isinstance(value, dict):
        raise InvalidFieldError(f"{name} must be a dict, got {type(value).__name__}")
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as e:
        raise InvalidFieldError(f"{name} must be JSON-serializable: {e}") from e


def plan_columns(plan: dict[str, Any]) -> dict[str, Any]:
    """The filterable column values found in a MotionPlan dict (validated, others left out)."""
    out: dict[str, Any] = {}
    for key, kind in PLAN_COLUMNS.items():
        value = plan.get(key)
        if value is None:
            continue
        name = f"plan[{key!r}]"
        if kind is int:
            out[key] = check_int(name, value)
        elif kind is float:
            out[key] = check_float(name, value)
        else:
            out[key] = check_str(name, value)
    return out
