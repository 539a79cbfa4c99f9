"""Quantizing the Wan experts and text encoder with torchao: which scheme, on which layers, and its size.

    choice = select_quantization("auto", "cuda")      # FP8 on compute capability ≥ 8.9, else int8; none on CPU
    quantize_expert(pipe.transformer, choice, "cuda")   # only the transformer blocks' Linear layers

FP8 is float8 dynamic activation + weight with **per-row** scales (one scale per output row of a weight and per
token of an activation), which keeps the quality of bf16 where a per-tensor scale would lose it; int8 is
weight-only. Either applies to the Linear layers inside the transformer blocks only: the patch/condition
embedders and `proj_out` stay in bf16 (they are small and precision-sensitive), and so does everything outside
the experts but the text encoder (int8 weight-only). torchao is imported inside functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from generation.backend import BackendUnavailable
from vividflow.values import SettingsError

FP8_MIN_CAPABILITY = (8, 9)  # Ada / Hopper / Blackwell: FP8 tensor cores
INT8 = "Int8WeightOnlyConfig"
FP8 = "Float8DynamicActivationFloat8WeightConfig"
EXPERT_LAYERS = "the transformer blocks' Linear layers (not the embedders, not proj_out)"
PRECISION_OF_MODE = {"fp8": "fp8", "int8": "int8", "none": "bf16"}  # quantization mode → memory-plan precision
MODE_OF_PRECISION = {v: k for k, v in PRECISION_OF_MODE.items()}


@dataclass(frozen=True)
class QuantizationChoice:
    """What load_pipeline quantizes with (torchao config names) and why."""

    mode: str  # "none" | "int8" | "fp8"
    reason: str
    experts: str | None = None
    text_encoder: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mode": self.mode, "reason": self.reason, "experts": self.experts, "text_encoder": self.text_encoder,
        }
        if self.experts is not None:
            out["expert_layers"] = EXPERT_LAYERS
            out["granularity"] = "per-row" if self.experts == FP8 else "per-channel weights"
        return out


def select_quantization(requested: str, device: str, precision: str | None = None) -> QuantizationChoice:
    """Pick the quantization for `device` ("auto" | "none" | "int8" | "fp8"); the reason is logged by the caller.

    auto: the memory plan's `precision` when there is one (fp8, bf16 or int8, chosen from the free memory and
    compute capability); without one, FP8 experts + int8 text encoder on CUDA compute capability ≥ 8.9, int8
    weight-only everywhere on older GPUs, none on CPU.
    """
    import torch

    on_cuda = device.startswith("cuda")
    if on_cuda and not torch.cuda.is_available():
        raise BackendUnavailable(f"device={device!r} but CUDA is not available here")
    cap = tuple(torch.cuda.get_device_capability(device)) if on_cuda else None
    cap_text = f"compute capability {cap[0]}.{cap[1]}" if cap else "CPU"
    fp8_ok = cap is not None and cap >= FP8_MIN_CAPABILITY
    if requested == "auto" and precision is not None:
        mode = MODE_OF_PRECISION[precision]
        reason = f"auto: the memory plan chose {precision} ({cap_text})"
        return _choice(mode, reason)
    if requested == "auto":
        if fp8_ok:
            return _choice("fp8", f"auto: CUDA {cap_text} ≥ 8.9 has FP8 tensor cores: FP8 experts, int8 text encoder")
        if on_cuda:
            return _choice("int8", f"auto: CUDA {cap_text} < 8.9 has no FP8: int8 weight-only")
        return _choice("none", "auto: CPU runs unquantized by default (quantization=int8 works on CPU too)")
    if requested == "none":
        return _choice("none", f"requested none ({cap_text})")
    if requested == "int8":
        return _choice("int8", f"requested int8 weight-only ({cap_text})")
    if requested == "fp8":
        if not fp8_ok:
            raise SettingsError(
                f"quantization='fp8' needs CUDA compute capability ≥ 8.9 (Ada, Hopper, Blackwell); this device is "
                f"{cap_text}: use quantization='int8' or 'auto'"
            )
        return _choice("fp8", f"requested fp8 ({cap_text})")
    raise SettingsError(f"quantization must be one of auto, none, int8, fp8, got {requested!r}")


def _choice(mode: str, reason: str) -> QuantizationChoice:
    if mode == "none":
        return QuantizationChoice("none", reason)
    return QuantizationChoice(mode, reason, FP8 if mode == "fp8" else INT8, INT8)


def torchao_config(name: str) -> Any:
    """The torchao config object for a config name; FP8 is per-row (activations and weights)."""
    from torchao import quantization as q

    if name == FP8:
        return q.Float8DynamicActivationFloat8WeightConfig(granularity=q.PerRow())
    return getattr(q, name)()


def is_block_linear(module: Any, fqn: str) -> bool:
    """torchao `filter_fn`: a Linear layer inside a transformer block (`blocks.N.…`) of a Wan expert."""
    import torch

    return isinstance(module, torch.nn.Linear) and fqn.startswith("blocks.")


def quantize_expert(model: Any, quant: QuantizationChoice, device: str) -> None:
    """Quantize one expert in place with `quant.experts`, on its blocks' Linear layers only."""
    if quant.experts is None:
        return
    from torchao.quantization import quantize_

    quantize_(model, torchao_config(quant.experts), filter_fn=is_block_linear, device=_quant_device(device))


def restore_process_settings(quant: QuantizationChoice) -> None:
    """What `quantize_` sets process-wide (torchao's recommended torch.compile settings), for experts that arrive
    already quantized from the weight cache, so compiled kernels are chosen as after a fresh quantization."""
    if quant.experts is not None and torchao_config(quant.experts).set_inductor_config:
        from torchao.quantization.utils import recommended_inductor_config_setter

        recommended_inductor_config_setter()


def quantize_text_encoder(model: Any, quant: QuantizationChoice, device: str) -> None:
    """Quantize the text encoder in place with `quant.text_encoder` (every Linear layer)."""
    if quant.text_encoder is None:
        return
    from torchao.quantization import quantize_

    quantize_(model, torchao_config(quant.text_encoder), device=_quant_device(device))


def _quant_device(device: str) -> str | None:
    return device if device.startswith("cuda") else None


def tensor_bytes(t: Any) -> int:
    """Bytes held by a tensor, counting the inner tensors of torchao subclasses (qdata, scales)."""
    from torch.utils._python_dispatch import is_traceable_wrapper_subclass

    if is_traceable_wrapper_subclass(t):
        names, _ = t.__tensor_flatten__()
        return sum(tensor_bytes(getattr(t, n)) for n in names)
    return t.numel() * t.element_size()


def parameter_bytes(module: Any) -> int:
    """Bytes held by a module's parameters and buffers (torchao subclasses counted by their inner tensors)."""
    return sum(tensor_bytes(p) for p in module.parameters()) + sum(tensor_bytes(b) for b in module.buffers())
