"""Choosing a backend by name: `preview` (CPU warping, always available) and `wan` (Wan2.2 on a GPU).

    backend = get_backend("preview")          # constructed and loaded, ready to generate
    name = default_backend_name()             # "wan" only with CUDA and Wan weights present

No torch import here: `wan` is imported only when asked for, and CUDA is checked only after the
cheap checks (weights present) pass.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from typing import Any

from generation.backend import Backend, BackendUnavailable
from vividflow.errors import VividflowError, short

log = logging.getLogger(__name__)

BACKEND_NAMES = ("preview", "wan")
NO_CUDA_FIX = "no CUDA device: use the preview backend or run on a GPU machine"


class UnknownBackend(VividflowError, ValueError):
    """A backend name we do not have; the message lists the ones we do."""


def check_name(name: Any) -> str:
    if name not in BACKEND_NAMES:
        raise UnknownBackend(f"unknown backend {short(name)}: choose one of {', '.join(BACKEND_NAMES)}")
    return name


def get_backend(name: str, cfg: Any = None) -> Backend:
    """A ready backend (constructed and loaded). `cfg` is the backend's config (GenerationConfig for wan)."""
    check_name(name)
    if name == "preview":
        from generation.preview import PreviewBackend

        backend: Backend = PreviewBackend()
        backend.load(cfg)
        return backend
    check_available(name, cfg)
    from generation.wan import WanBackend

    backend = WanBackend(cfg)
    backend.load(cfg)
    return backend


def model_id_for(name: str, cfg: Any = None) -> str:
    """The model id a backend will record, without loading anything."""
    check_name(name)
    if name == "preview":
        from generation.preview import RENDERER_VERSION

        return RENDERER_VERSION
    return _wan_config(cfg).model_id


def size_rule_for(name: str, cfg: Any = None) -> tuple[int, int, tuple[int, int]]:
    """(max area, size multiple, size from words alone) of a backend's size rule (`generation.image.output_size`),
    without loading anything."""
    from generation.specs import default_spec

    check_name(name)
    if name == "preview":
        from generation.image import MAX_AREA, MULTIPLE

        return MAX_AREA, MULTIPLE, default_spec().text_size
    cfg = _wan_config(cfg)
    return int(cfg.effective_max_area()), cfg.size_multiple, (cfg.spec or default_spec()).text_size


def picture_required(name: str, cfg: Any = None) -> str | None:
    """Why backend `name` cannot start from words alone (one sentence), or None when it can (or may: a model outside
    the registry says so when it loads)."""
    from generation.backend import PREVIEW_NEEDS_PICTURE, model_needs_picture

    check_name(name)
    if name == "preview":
        return PREVIEW_NEEDS_PICTURE
    spec = _wan_config(cfg).spec
    return model_needs_picture(spec.model_id.split("/")[-1]) if spec is not None and spec.needs_image else None


def _wan_config(cfg: Any) -> Any:
    from generation.config import GenerationConfig

    return cfg if cfg is not None else GenerationConfig.from_env()


def check_available(name: str, cfg: Any = None) -> None:
    """Raise BackendUnavailable (with the fix) when `name` cannot run here; cheap for `preview`."""
    check_name(name)
    if name == "preview":
        return
    cfg = _wan_config(cfg)
    if cfg.device == "cpu":
        return  # asked for explicitly (tiny test models, or a very patient person)
    if importlib.util.find_spec("torch") is None:
        raise BackendUnavailable(f"backend 'wan' needs torch, which is not installed; {NO_CUDA_FIX}")
    import torch

    if not torch.cuda.is_available():
        raise BackendUnavailable(
            f"backend 'wan' is unavailable: {NO_CUDA_FIX} (or set VIVIDFLOW_WAN_DEVICE=cpu to force the CPU, "
            "which is only practical for tiny test models)"
        )
    from generation.wan_memory import plan_for_config

    # a card too small for the model: the message names the tier that fits (memory this process would free first,
    # the LLM's, counts as free)
    plan_for_config(cfg, "cuda" if cfg.device == "auto" else cfg.device, count_own=True)


def wan_weights_present(cfg: Any = None) -> bool:
    """True when the configured Wan model is a local Diffusers folder or sits in the Hugging Face cache."""
    cfg = _wan_config(cfg)
    source = os.path.expanduser(cfg.model_id)
    if os.path.isdir(source):
        return os.path.isfile(os.path.join(source, "model_index.json"))
    if importlib.util.find_spec("huggingface_hub") is None:
        return False
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(cfg.model_id, "model_index.json"), str)
    except ValueError:  # not a valid repo id
        return False


def default_backend_name(cfg: Any = None, requested: str | None = None) -> str:
    """`requested` (default: the settings' studio.backend, VIVIDFLOW_BACKEND) unless it is "auto"; then "wan"
    when Wan weights are present and CUDA works, else "preview"."""
    if requested is None:
        from vividflow.settings import load_settings

        requested = load_settings().backend
    if requested != "auto":
        return check_name(requested)
    try:
        if not wan_weights_present(cfg):
            return "preview"
        check_available("wan", cfg)
    except BackendUnavailable as e:
        log.info("default backend is preview: %s", e)
        return "preview"
    return "wan"
