"""`LLMConfig`: how to load and use the LLM planner, one frozen value read from the environment in one place
(`LLMConfig.from_env`, the `ENV_VARS` table) and shared by the UI, the CLI and the tests."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal, get_args

from agent import edits as edit_ops
from agent.llm.grammar import GrammarSpec

Mode = Literal["fallback_only", "always"]
DType = Literal["auto", "bfloat16", "float16", "float32"]
MODES: tuple[str, ...] = get_args(Mode)
DTYPES: tuple[str, ...] = get_args(DType)


class LLMConfigError(ValueError):
    """A setting outside what we support; the message names the setting, its value and the allowed range."""


@dataclass(frozen=True)
class LLMConfig:
    """How to load and use the LLM planner: one frozen value shared by the UI, the CLI and the tests."""

    model: str | None = None  # hub id (Qwen/Qwen2.5-1.5B-Instruct), local folder, .gguf path, or "smollm2"
    gguf_file: str | None = None  # a GGUF file inside `model` (folder or hub repo)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    dtype: DType = "auto"  # auto: bfloat16 on CUDA, float32 on CPU
    max_new_tokens: int = 512  # answer budget; the default edit grammar's longest answer fits in it
    enhance_max_new_tokens: int = 160  # budget of enhance_prompt
    timeout_s: float = 20.0  # wall-clock limit of one generation (loading is not counted)
    enabled: bool = True
    mode: Mode = "fallback_only"  # fallback_only: LLM only for what rules left; always: LLM on every message
    history_turns: int = 4  # earlier chat turns shown to the model
    max_edits: int = 4  # most edits in one answer (grammar bound)
    grounded_only: bool = True  # keep only edits whose target the message names (small models invent edits)
    temperature: float = 0.0  # 0 = greedy (deterministic); > 0 samples, reproducibly from `seed`
    seed: int = 0  # torch seed before each generation

    def __post_init__(self) -> None:
        if self.model is not None and (not isinstance(self.model, str) or not self.model.strip()):
            raise LLMConfigError(f"model must be a hub id, a folder, a .gguf file or 'smollm2', got {self.model!r}")
        if self.gguf_file is not None and (not isinstance(self.gguf_file, str) or not self.gguf_file.endswith(".gguf")):
            raise LLMConfigError(f"gguf_file must be a file name ending in .gguf, got {self.gguf_file!r}")
        dev = self.device
        if not isinstance(dev, str) or not (dev in ("auto", "cpu", "cuda") or _is_cuda_index(dev)):
            raise LLMConfigError(f"device must be auto, cpu, cuda or cuda:N, got {dev!r}")
        if self.dtype not in DTYPES:
            raise LLMConfigError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.mode not in MODES:
            raise LLMConfigError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        for name, lo, hi in (("max_new_tokens", 16, 4096), ("enhance_max_new_tokens", 16, 1024),
                             ("history_turns", 0, 20), ("max_edits", 1, edit_ops.MAX_EDITS_PER_TURN),
                             ("seed", 0, 2**31 - 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
                raise LLMConfigError(f"{name} must be an integer in {lo}–{hi}, got {value!r}")
        temp = self.temperature
        if not isinstance(temp, (int, float)) or isinstance(temp, bool) or not 0.0 <= temp <= 2.0:
            raise LLMConfigError(f"temperature must be a number in 0–2, got {temp!r}")
        t = self.timeout_s
        if not isinstance(t, (int, float)) or isinstance(t, bool) or not math.isfinite(t) or not 0 < t <= 600:
            raise LLMConfigError(f"timeout_s must be a number of seconds in (0, 600], got {t!r}")

    @property
    def available(self) -> bool:
        """On, and a model is named."""
        return self.enabled and self.model is not None

    @property
    def grammar(self) -> GrammarSpec:
        return GrammarSpec(max_edits=self.max_edits)

    def replace(self, **changes: Any) -> LLMConfig:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> LLMConfig:
        """Read ENV_VARS (unset or empty = default), then apply `overrides` (CLI flags; None = not given)."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for name, (fieldname, parse) in ENV_VARS.items():
            raw = env.get(name)
            if raw is None or raw.strip() == "":
                continue
            try:
                values[fieldname] = parse(raw.strip())
            except ValueError as e:
                raise LLMConfigError(f"{name}={raw!r} is not valid: {e}") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls(**values)
        except LLMConfigError as e:
            names = {f: n for n, (f, _) in ENV_VARS.items()}
            fieldname = str(e).split(" ", 1)[0]
            if fieldname in names and fieldname not in overrides and fieldname in values:
                raise LLMConfigError(f"{names[fieldname]}: {e}") from None
            raise


def _is_cuda_index(dev: str) -> bool:
    head, _, idx = dev.partition(":")
    return head == "cuda" and idx.isdigit()


def parse_bool(text: str) -> bool:
    t = text.strip().lower()
    if t in ("1", "true", "yes", "on"):
        return True
    if t in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected 1/0, true/false, yes/no or on/off, got {text!r}")


def _optional_str(text: str) -> str | None:
    return None if text.lower() in ("none", "off", "") else text


# The one table of environment variables: name -> (LLMConfig field, parser).
ENV_VARS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "VIVIDFLOW_LLM_MODEL": ("model", _optional_str),
    "VIVIDFLOW_LLM_GGUF_FILE": ("gguf_file", _optional_str),
    "VIVIDFLOW_LLM_DEVICE": ("device", str.lower),
    "VIVIDFLOW_LLM_DTYPE": ("dtype", str.lower),
    "VIVIDFLOW_LLM_MAX_NEW_TOKENS": ("max_new_tokens", int),
    "VIVIDFLOW_LLM_ENHANCE_MAX_NEW_TOKENS": ("enhance_max_new_tokens", int),
    "VIVIDFLOW_LLM_TIMEOUT_S": ("timeout_s", float),
    "VIVIDFLOW_LLM_ENABLED": ("enabled", parse_bool),
    "VIVIDFLOW_LLM_MODE": ("mode", str.lower),
    "VIVIDFLOW_LLM_HISTORY_TURNS": ("history_turns", int),
    "VIVIDFLOW_LLM_MAX_EDITS": ("max_edits", int),
    "VIVIDFLOW_LLM_GROUNDED_ONLY": ("grounded_only", parse_bool),
    "VIVIDFLOW_LLM_TEMPERATURE": ("temperature", float),
}
