"""Setting values: text (from the environment or a file) or typed values in, checked values out.

Every parser raises ValueError with one sentence naming the setting, its value and what is allowed; the
settings sections (`vividflow.sections`) use them as pydantic before-validators.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

from vividflow.errors import VividflowError, short

TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")
Expert = Literal["high_noise", "low_noise"]
EXPERTS: tuple[str, ...] = get_args(Expert)


class SettingsError(VividflowError, ValueError):
    """A setting we cannot use; the message names the setting (variable or file key), its value and the choices."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field  # the section field at fault, when known


def parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    raise ValueError(f"expected 1/0, true/false, yes/no or on/off, got {short(value)}")


def optional_text(value: Any) -> str | None:
    """None for unset, empty, 'none' or 'off'."""
    if value is None:
        return None
    text = str(value).strip()
    return None if text.lower() in ("", "none", "off") else text


def choice(name: str, choices: tuple[str, ...]) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        text = value.strip().lower() if isinstance(value, str) else value
        if text not in choices:
            raise ValueError(f"{name} must be one of {', '.join(choices)}, got {short(value)}")
        return text

    return check


def device_name(name: str = "device") -> Callable[[Any], str]:
    def check(value: Any) -> str:
        text = value.strip().lower() if isinstance(value, str) else value
        if not isinstance(text, str) or not (text in ("auto", "cpu", "cuda") or is_cuda_index(text)):
            raise ValueError(f"{name} must be auto, cpu, cuda or cuda:N, got {short(value)}")
        return text

    return check


def is_cuda_index(device: str) -> bool:
    head, _, idx = device.partition(":")
    return head == "cuda" and idx.isdigit()


def _number(value: Any, kind: type) -> Any:
    if isinstance(value, bool):
        raise TypeError
    if isinstance(value, str):
        return kind(value.strip())
    if kind is int and isinstance(value, float):
        raise TypeError  # 2.5 steps is not an integer
    return kind(value)


def int_in(name: str, lo: int, hi: int | None, *, optional: bool = False) -> Callable[[Any], int | None]:
    bound = f"in {lo}–{hi}" if hi is not None else f"≥ {lo}"

    def check(value: Any) -> int | None:
        if optional and optional_text(value) is None:
            return None
        try:
            number = _number(value, int)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be an integer {bound}, got {short(value)}") from None
        if number < lo or (hi is not None and number > hi):
            raise ValueError(f"{name} must be an integer {bound}, got {number}")
        return number

    return check


def float_in(name: str, lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False,
              optional: bool = False, what: str = "a number") -> Callable[[Any], float | None]:
    shown = f"{'(' if lo_open else ''}{lo:g}{', ' if lo_open or hi_open else '–'}{hi:g}{')' if hi_open else ']' if lo_open else ''}"

    def check(value: Any) -> float | None:
        if optional and optional_text(value) is None:
            return None
        try:
            number = _number(value, float)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be {what} in {shown}, got {short(value)}") from None
        low_ok = number > lo if lo_open else number >= lo
        high_ok = number < hi if hi_open else number <= hi
        if not (math.isfinite(number) and low_ok and high_ok):
            raise ValueError(f"{name} must be {what} in {shown}, got {number:g}")
        return number

    return check


def text(name: str, what: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{name} must be {what}, got {short(value)}")
        return value.strip()

    return check




# --- LoRA specs (text form: expert:scale:source[::weight_name]; …) --------------------------------------------


@dataclass(frozen=True)
class LoraSpec:
    """One LoRA for one expert: a .safetensors file, or a folder / hub repo plus `weight_name`."""

    source: str
    weight_name: str | None = None
    scale: float = 1.0
    expert: Expert = "high_noise"

    def __post_init__(self) -> None:
        if not isinstance(self.source, str) or not self.source.strip():
            raise SettingsError(f"LoRA source must be a file, folder or hub repo id, got {short(self.source)}")
        if self.expert not in EXPERTS:
            raise SettingsError(f"LoRA expert must be one of {', '.join(EXPERTS)}, got {short(self.expert)}")
        if not isinstance(self.scale, (int, float)) or not math.isfinite(self.scale) or abs(self.scale) > 100:
            raise SettingsError(f"LoRA scale must be a finite number in -100–100, got {short(self.scale)}")

    @property
    def label(self) -> str:
        """`source` or `source::weight_name`, the form `parse_loras` reads back."""
        return f"{self.source}::{self.weight_name}" if self.weight_name else self.source

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_loras(text: str) -> tuple[LoraSpec, ...]:
    """`expert:scale:source[::weight_name]` items separated by `;`.

    e.g. `high_noise:3.0:Kijai/WanVideo_comfy::Lightx2v/x.safetensors;low_noise:1.0:/loras/mine.safetensors`.
    """
    specs = []
    for item in (p.strip() for p in text.split(";")):
        if not item:
            continue
        parts = item.split(":", 2)
        if len(parts) != 3:
            raise SettingsError(f"LoRA {short(item)} must be expert:scale:source[::weight_name]")
        expert, scale, rest = parts
        source, _, weight_name = rest.partition("::")
        try:
            value = float(scale)
        except ValueError:
            raise SettingsError(f"LoRA {short(item)}: scale {short(scale)} is not a number") from None
        specs.append(LoraSpec(source.strip(), weight_name.strip() or None, value, expert.strip()))  # type: ignore[arg-type]
    return tuple(specs)


def lora_specs(value: Any) -> tuple[LoraSpec, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return parse_loras(value)
    items = list(value)
    if all(isinstance(x, str) for x in items):  # a TOML list of "expert:scale:source" strings
        return parse_loras(";".join(items))
    specs = tuple(x if isinstance(x, LoraSpec) else LoraSpec(**x) for x in items)
    return specs


def gguf_name(value: Any) -> str | None:
    name = optional_text(value)
    if name is not None and not name.endswith(".gguf"):
        raise ValueError(f"gguf_file must be a file name ending in .gguf, got {short(value)}")
    return name


def first_error(e: Any) -> str:
    """One sentence from a pydantic ValidationError: our own message where a parser gave one."""
    err = e.errors(include_url=False)[0]
    ctx_error = (err.get("ctx") or {}).get("error")
    loc = ".".join(str(p) for p in err["loc"])
    if isinstance(ctx_error, SettingsError) and ctx_error.field and loc:  # raised by a nested section
        loc = f"{loc}.{ctx_error.field}"
    if isinstance(ctx_error, ValueError):
        return f"{loc}: {ctx_error}" if "." in loc else str(ctx_error)
    return f"{loc}: {err['msg'].lower()}, got {short(err.get('input'))}"
