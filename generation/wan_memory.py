"""Fitting Wan to the card: model tier, precision, offload and VAE tiling from the free GPU memory.

    plan = plan_memory(free, total, (9, 0), [Workload(MODELS[I2V_A14B], 81, 832 * 480),
                                             Workload(MODELS[TI2V_5B], 121, 1280 * 704)])
    plan.tier, plan.precision, plan.offload, plan.vae_tiling, plan.reasons

`plan_memory` is pure (numbers and specs in, a `MemoryPlan` out); `plan_for_device` reads the card
(`torch.cuda.mem_get_info`, compute capability) and the settings, and `generation.wan_load` applies the plan,
logs each reason and records the plan with every generation.

The memory model (estimates; `bench/wan_gpu.py` measures the peaks):
- an expert holds params × 1 byte in fp8 or int8, × 2 in bf16; the UMT5-XXL text encoder (5.7 B) is int8 when
  the experts are quantized, else bf16; the VAE's weights ≈ 1 GiB;
- denoising activations: one transformer block at the clip's token count, fp32 norms + bf16 FFN:
  tokens × (6·dim·4 + 2·ffn·2) bytes (≈ 5.8 GB for A14B at 81 frames of 832×480);
- the VAE decode: untiled ≈ 11 kB per output pixel (fp32 full-resolution stages), tiled ≈ 1.5 GiB;
- a reserve of max(1.5 GiB, 8 % of the card) for the allocator, cuBLAS workspaces and fragmentation.
The rules:
1. precision: fp8 on compute capability ≥ 8.9 (FP8 tensor cores); else bf16 when the tier fits in bf16, else int8;
2. tier: the first candidate whose experts (all of them) in that precision plus the activations fit;
3. offload: none when everything stays resident, else group offload (block by block, overlapped with compute on a
   CUDA stream: every A14B setup on a card of 40 GB or less); model offload only when asked for;
4. VAE tiling: only when offloading or at 720p and above (tiling costs ≈ 1.7× the VAE work at 480p).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from generation.specs import I2V_A14B, MODELS, T2V_A14B, TI2V_5B, ModelSpec, model_spec
from generation.wan_quant import FP8_MIN_CAPABILITY, PRECISION_OF_MODE

log = logging.getLogger(__name__)

Precision = Literal["fp8", "bf16", "int8"]
Offload = Literal["none", "model", "group"]

GiB = 1 << 30
TEXT_ENCODER_PARAMS_B = 5.7  # UMT5-XXL encoder, shared by every Wan2.2 model
VAE_WEIGHT_BYTES = 1 * GiB
VAE_TILED_BYTES = int(1.5 * GiB)
VAE_UNTILED_BYTES_PER_PIXEL = 11_000
HD_AREA = 1280 * 704  # "720p": TI2V-5B's 1280×704 and up
GROUP_RESIDENT_FRACTION = 0.1  # group offload keeps ~2 blocks in flight plus the small non-block layers
MIN_RESERVE = int(1.5 * GiB)
RESERVE_FRACTION = 0.08
TEMPORAL_COMPRESSION = 4  # Wan VAEs: 4k+1 frames → k+1 latent frames
TEXT_TOKENS = 512


@dataclass(frozen=True)
class TransformerShape:
    """What the FLOP and activation estimates need from a Wan transformer's config."""

    layers: int
    dim: int
    ffn_dim: int

    @classmethod
    def from_config(cls, config: Any) -> TransformerShape:
        """From a `WanTransformer3DModel.config` (or its dict)."""
        get = config.get if isinstance(config, dict) else (lambda k: getattr(config, k))
        return cls(get("num_layers"), get("num_attention_heads") * get("attention_head_dim"), get("ffn_dim"))


# The registry models' transformer configs (their hub `transformer/config.json`).
SHAPES: dict[str, TransformerShape] = {
    I2V_A14B: TransformerShape(layers=40, dim=5120, ffn_dim=13824),
    T2V_A14B: TransformerShape(layers=40, dim=5120, ffn_dim=13824),
    TI2V_5B: TransformerShape(layers=30, dim=3072, ffn_dim=14336),
}


def tokens(frames: int, height: int, width: int, size_multiple: int) -> int:
    """Transformer tokens of a clip: latent frames × (H / size multiple) × (W / size multiple)."""
    return ((frames - 1) // TEMPORAL_COMPRESSION + 1) * (height // size_multiple) * (width // size_multiple)


def forward_flops(shape: TransformerShape, n_tokens: int, text_tokens: int = TEXT_TOKENS) -> float:
    """FLOPs of one transformer forward pass (one expert, one step, no CFG): per block, self-attention
    (q/k/v/out projections 8·N·d², scores and values 4·N²·d), cross-attention to the text (q/out 4·N·d²,
    k/v 4·L·d², scores and values 4·N·L·d) and the FFN (4·N·d·ffn). A14B: ≈ 832 TFLOP at 49 frames of 832×480."""
    n, d, f, L = n_tokens, shape.dim, shape.ffn_dim, text_tokens
    per_block = 8 * n * d * d + 4 * n * n * d + 4 * n * d * d + 4 * L * d * d + 4 * n * L * d + 4 * n * d * f
    return float(shape.layers * per_block)


def activation_bytes(shape: TransformerShape, n_tokens: int) -> int:
    """Peak activation bytes of one block at `n_tokens` (fp32 norm temporaries + the bf16 FFN hidden)."""
    return n_tokens * (6 * shape.dim * 4 + 2 * shape.ffn_dim * 2)


@dataclass(frozen=True)
class Workload:
    """A model tier and the largest clip it would render (frames × area)."""

    spec: ModelSpec
    frames: int
    area: int

    @property
    def shape(self) -> TransformerShape:
        return SHAPES[self.spec.model_id]

    @property
    def activations(self) -> int:
        m = self.spec.size_multiple
        return activation_bytes(self.shape, ((self.frames - 1) // TEMPORAL_COMPRESSION + 1) * self.area // (m * m))

    def expert_bytes(self, precision: str) -> int:
        return int(self.spec.params_b * 1e9 * (2 if precision == "bf16" else 1))

    def text_encoder_bytes(self, precision: str) -> int:
        return int(TEXT_ENCODER_PARAMS_B * 1e9 * (2 if precision == "bf16" else 1))

    def vae_decode_bytes(self, tiled: bool) -> int:
        return VAE_TILED_BYTES if tiled else VAE_UNTILED_BYTES_PER_PIXEL * self.area

    def tier_bytes(self, precision: str) -> int:
        """What the tier needs on the card: every expert in `precision` plus the denoising activations."""
        return self.spec.experts * self.expert_bytes(precision) + self.activations

    def resident_bytes(self, precision: str) -> int:
        """Everything on the card at once (no offload), the VAE untiled below 720p."""
        decode = self.vae_decode_bytes(tiled=needs_vae_tiling("none", self.area))
        return (self.spec.experts * self.expert_bytes(precision) + self.text_encoder_bytes(precision)
                + VAE_WEIGHT_BYTES + max(self.activations, decode))

    def offloaded_bytes(self, precision: str, offload: str) -> int:
        """The working set with offloading: one component (model) or a few blocks (group) on the card at a time."""
        share = 1.0 if offload == "model" else GROUP_RESIDENT_FRACTION
        return max(int(share * self.expert_bytes(precision)) + self.activations,
                   int(share * self.text_encoder_bytes(precision)),
                   VAE_WEIGHT_BYTES + self.vae_decode_bytes(tiled=True))


def needs_vae_tiling(offload: str, area: int) -> bool:
    """Tile the VAE only when offloading (memory is short) or at 720p and above."""
    return offload != "none" or area >= HD_AREA


def reserve_bytes(total_bytes: int) -> int:
    return max(MIN_RESERVE, int(RESERVE_FRACTION * total_bytes))


def _gib(n: int) -> str:
    return f"{n / GiB:.1f} GiB"


@dataclass(frozen=True)
class MemoryPlan:
    """The memory choices for one card; `tier` None means no tier fits (see `message`)."""

    tier: str | None
    precision: Precision | None
    offload: Offload
    vae_tiling: bool
    need_bytes: int  # free memory the chosen setup needs (or, when nothing fits, the smallest tier)
    free_bytes: int
    total_bytes: int
    capability: tuple[int, int]
    reasons: tuple[str, ...]

    @property
    def fits(self) -> bool:
        return self.tier is not None

    @property
    def message(self) -> str:
        """The last reason: what was chosen, or what the smallest tier would need."""
        return self.reasons[-1]

    def to_dict(self) -> dict[str, Any]:
        return {
            "tier": self.tier, "precision": self.precision, "offload": self.offload, "vae_tiling": self.vae_tiling,
            "need_gib": round(self.need_bytes / GiB, 1), "free_gib": round(self.free_bytes / GiB, 1),
            "total_gib": round(self.total_bytes / GiB, 1), "capability": list(self.capability),
            "reasons": list(self.reasons),
        }


def plan_memory(
    free_bytes: int, total_bytes: int, capability: tuple[int, int], workloads: Sequence[Workload], *,
    precision: Precision | None = None, offload: Offload | None = None,
) -> MemoryPlan:
    """Choose tier, precision, offload and VAE tiling for a card (workloads in order of preference, largest first).

    `precision` / `offload` fix that choice (an explicit setting) instead of deciding it; with `offload` fixed to
    model or group, a tier fits when its offloaded working set does.
    """
    if not workloads:
        raise ValueError("plan_memory needs at least one workload")
    reserve = reserve_bytes(total_bytes)
    budget = free_bytes - reserve
    cc = f"{capability[0]}.{capability[1]}"
    reasons = [f"{_gib(free_bytes)} free of {_gib(total_bytes)}, compute capability {cc}; {_gib(reserve)} kept in reserve"]

    def need(w: Workload, p: str) -> int:
        return w.offloaded_bytes(p, offload) if offload in ("model", "group") else w.tier_bytes(p)

    for w in workloads:
        name = w.spec.model_id.split("/")[-1]
        if precision is not None:
            p, why = precision, f"precision {precision} as set"
        elif tuple(capability) >= FP8_MIN_CAPABILITY:
            p, why = "fp8", f"fp8: compute capability {cc} ≥ 8.9 has FP8 tensor cores"
        elif need(w, "bf16") <= budget:
            p, why = "bf16", f"bf16: compute capability {cc} < 8.9 has no FP8, and bf16 fits"
        else:
            p, why = "int8", f"int8: compute capability {cc} < 8.9 has no FP8, and bf16 needs {_gib(need(w, 'bf16'))}"
        if need(w, p) > budget:
            reasons.append(f"{name} does not fit: {_gib(need(w, p))} for its experts in {p} and the activations "
                           f"of {w.frames} frames at {w.area:,} px, {_gib(budget)} available")
            continue
        reasons.append(f"tier {name}: {_gib(need(w, p))} for its experts in {p} and the activations fits "
                       f"{_gib(budget)}")
        reasons.append(why)
        resident = w.resident_bytes(p)
        if offload is not None:
            off: Offload = offload
            reasons.append(f"offload {offload} as set")
        elif resident <= budget:
            off = "none"
            reasons.append(f"no offload: everything resident takes {_gib(resident)}")
        else:
            off = "group"
            reasons.append(f"group offload (streamed): everything resident would take {_gib(resident)}")
        tiling = needs_vae_tiling(off, w.area)
        reasons.append("VAE tiling on: " + ("offloading" if off != "none" else "720p and above") if tiling
                       else "VAE tiling off: no offload and below 720p")
        used = resident if off == "none" else w.offloaded_bytes(p, off)
        reasons.append(f"plan: {name}, {p}, offload {off}, VAE tiling {'on' if tiling else 'off'}")
        return MemoryPlan(w.spec.model_id, p, off, tiling, used + reserve, free_bytes, total_bytes,
                          tuple(capability), tuple(reasons))

    smallest = workloads[-1]
    cheapest = precision or ("fp8" if tuple(capability) >= FP8_MIN_CAPABILITY else "int8")
    smallest_need = need(smallest, cheapest) + reserve
    reasons.append(
        f"this GPU is too small for Wan: {_gib(free_bytes)} free, and the smallest tier, "
        f"{smallest.spec.model_id}, needs about {_gib(smallest_need)} free ({cheapest}); free the GPU, use a "
        "larger card, or use the preview backend"
    )
    return MemoryPlan(None, None, offload or "none", True, smallest_need, free_bytes, total_bytes,
                      tuple(capability), tuple(reasons))


# --- the wiring: read the card and the settings -----------------------------------------------------------


def workloads_for(model_id: str, max_area: int | None = None) -> list[Workload]:
    """The configured registry model first, then the smaller tiers that can do its task; [] outside the registry."""
    spec = model_spec(model_id)
    if spec is None or spec.model_id not in SHAPES:
        return []
    size = spec.params_b * spec.experts
    smaller = [s for s in MODELS.values() if s.params_b * s.experts < size and s.model_id in SHAPES
               and (s.takes_image if spec.takes_image else not s.needs_image)]
    smaller.sort(key=lambda s: -s.params_b * s.experts)
    first = Workload(spec, spec.max_frames, max_area or spec.max_area)
    return [first] + [Workload(s, s.max_frames, s.max_area) for s in smaller]


def plan_for_device(
    device: str, model_id: str, *, max_area: int | None = None, quantization: str = "auto", offload: str = "auto",
    count_own: bool = False,
) -> MemoryPlan | None:
    """The plan for a CUDA `device` and a registry model (None on the CPU or for a model outside the registry).

    `count_own` counts what this process holds as free too (before a load, the models it frees first: the LLM).
    """
    if not device.startswith("cuda"):
        return None
    workloads = workloads_for(model_id, max_area)
    if not workloads:
        log.info("wan: no memory plan for %s (not a registry model: its size is unknown)", model_id)
        return None
    import torch

    free, total = torch.cuda.mem_get_info(device)
    if count_own:
        free = min(total, free + torch.cuda.memory_reserved(device))
    capability = tuple(torch.cuda.get_device_capability(device))
    precision = None if quantization == "auto" else PRECISION_OF_MODE[quantization]
    return plan_memory(free, total, capability, workloads, precision=precision,
                       offload=None if offload == "auto" else offload)


def check_plan(plan: MemoryPlan, model_id: str) -> None:
    """Raise BackendUnavailable when no tier fits, or when the configured model is not the tier that does."""
    from generation.backend import BackendUnavailable

    if not plan.fits:
        raise BackendUnavailable(plan.message)
    spec = model_spec(model_id)
    if spec is not None and plan.tier != spec.model_id:
        alias = MODELS[plan.tier].aliases[0] if MODELS[plan.tier].aliases else plan.tier
        raise BackendUnavailable(
            f"{spec.model_id} does not fit this GPU ({_gib(plan.free_bytes)} free): {plan.reasons[1]}. "
            f"{plan.tier} fits: set VIVIDFLOW_WAN_MODEL={alias}, or VIVIDFLOW_WAN_CPU_OFFLOAD=group to stream "
            "the experts from host memory (slower)"
        )


def log_plan(plan: MemoryPlan) -> None:
    for reason in plan.reasons:
        log.info("wan: memory: %s", reason)


def plan_for_config(cfg: Any, device: str, *, count_own: bool = False) -> MemoryPlan | None:
    """The memory plan for a GenerationConfig on `device`, logged and checked (raises BackendUnavailable when
    the card is too small for the configured model); None on the CPU or outside the registry."""
    registry_id = cfg.defaults_from or cfg.model_id
    plan = plan_for_device(device, registry_id, max_area=cfg.max_area, quantization=cfg.quantization,
                           offload=cfg.cpu_offload, count_own=count_own)
    if plan is not None:
        log_plan(plan)
        check_plan(plan, registry_id)
    return plan


def choose_offload(setting: str, device: str, plan: MemoryPlan | None) -> str:
    """The offload in use: the setting when not auto, else the plan's; always none on the CPU."""
    if not device.startswith("cuda"):
        if setting not in ("auto", "none"):
            log.info("wan: cpu_offload=%s ignored: the device is already the CPU", setting)
        return "none"
    if setting != "auto":
        return setting
    return plan.offload if plan is not None else "none"


def choose_vae_tiling(setting: str, offload: str, area: int, plan: MemoryPlan | None) -> bool:
    """VAE tiling on/off as set; auto: the plan's choice, else the same rule (offloading or 720p and above)."""
    if setting != "auto":
        return setting == "on"
    return plan.vae_tiling if plan is not None and plan.offload == offload else needs_vae_tiling(offload, area)


def place_pipeline(pipe: Any, offload: str, device: str) -> None:
    """Put the pipeline on `device`: resident ("none"), one component at a time ("model"), or block by block
    ("group": diffusers' group offloading, transfers overlapped with compute on a CUDA stream)."""
    import torch

    if offload == "none":
        pipe.to(device)
        return
    pipe.to("cpu")  # quantize_(device=...) left the quantized layers on the GPU
    if offload == "model":
        pipe.enable_model_cpu_offload(device=device)
    elif offload == "group":
        pipe.enable_group_offload(
            onload_device=torch.device(device), offload_device=torch.device("cpu"), offload_type="block_level",
            num_blocks_per_group=1, use_stream=device.startswith("cuda"),
        )
    else:
        raise ValueError(f"offload must be none, model or group, got {offload!r}")
