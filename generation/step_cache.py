"""Step caching for many-step (base) recipes: reuse the transformer blocks' residual from an earlier step
when the step barely changes it (diffusers' `enable_cache` hooks, on for one call, off after it).

- `first_block` (diffusers `FirstBlockCacheConfig`): run the first block; when its residual moved less than
  `FIRST_BLOCK_THRESHOLD` (relative) since the last full step, add the cached residual of the other blocks instead.
- `mag` (diffusers `MagCacheConfig`, MagCache, arXiv:2506.09045): skip by a per-step magnitude-ratio curve
  calibrated per checkpoint. The curves below are the MagCache authors' published Wan2.2 ones (github.com/
  Zehong-Ma/MagCache, MagCache4Wan2.2/magcache_generate.py, Apache-2.0; the conditional entries, the
  unconditional ones differ by < 0.003), for 40 (A14B) / 50 (TI2V-5B) steps, nearest-interpolated to other
  counts and split between the two experts at the boundary step, with the authors' settings per model.

With Lightning's 4 steps there is nothing to reuse: below `MIN_STEPS` the cache stays off (logged).
torch and diffusers are imported inside functions.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from generation.specs import I2V_A14B, T2V_A14B, TI2V_5B

log = logging.getLogger(__name__)

MIN_STEPS = 10  # fewer steps (Lightning: 4) leave no neighbouring steps similar enough to reuse
FIRST_BLOCK_THRESHOLD = 0.05  # diffusers' default: relative change of the first block's residual


@dataclass(frozen=True)
class MagCurve:
    """A MagCache calibration: the ratio per step (conditional branch) and the authors' settings."""

    ratios: tuple[float, ...]
    threshold: float = 0.06  # accumulated error allowed before a full step
    max_skip_steps: int = 2  # K: consecutive steps skipped at most
    retention_ratio: float = 0.2  # first fraction of each cached expert's steps always computed
    high_noise: bool = True  # False: the high-noise expert is never cached (the authors' I2V mode)


_MAG_CURVES: dict[tuple[str, bool], MagCurve] = {  # (model id, with an image)
    (I2V_A14B, True): MagCurve((
        1.0, 0.99191, 0.99356, 0.99326, 0.99251, 0.99393, 0.9943, 0.99276, 0.99389, 0.99274, 0.99316, 0.99379,
        0.99268, 0.99222, 0.99175, 0.91076, 0.98931, 0.99087, 0.98852, 0.98895, 0.98806, 0.9871, 0.98613, 0.98434,
        0.983, 0.98185, 0.98131, 0.9783, 0.97619, 0.97264, 0.97088, 0.96568, 0.96045, 0.95322, 0.94579, 0.93297,
        0.91699, 0.89174, 0.8541, 0.79823), retention_ratio=0.1, high_noise=False),
    (T2V_A14B, False): MagCurve((
        1.0, 1.00124, 0.99822, 0.99696, 0.99703, 0.9966, 0.99602, 0.99578, 0.99484, 0.99633, 0.99659, 0.99534,
        0.99584, 0.99681, 0.99563, 0.9944, 0.99594, 0.99466, 0.99453, 0.99389, 0.99391, 0.99354, 0.99283, 0.99268,
        0.99057, 0.99125, 0.65523, 0.98808, 0.98765, 0.9851, 0.98311, 0.9805, 0.97776, 0.97278, 0.96731, 0.95857,
        0.94385, 0.92118, 0.88108, 0.80263), retention_ratio=0.4),
    (TI2V_5B, True): MagCurve((
        1.0, 0.99512, 0.99559, 0.99595, 0.99512, 0.99546, 0.99543, 0.99496, 0.99504, 0.99444, 0.99481, 0.99435,
        0.9943, 0.99411, 0.99373, 0.99413, 0.99363, 0.99335, 0.99244, 0.99229, 0.99239, 0.99163, 0.99149, 0.99191,
        0.9898, 0.9899, 0.98849, 0.98846, 0.98861, 0.9874, 0.98588, 0.98539, 0.98444, 0.9831, 0.98119, 0.98001,
        0.97862, 0.97555, 0.97392, 0.97152, 0.96871, 0.96435, 0.96129, 0.95639, 0.95176, 0.94446, 0.93972, 0.93575,
        0.93537, 0.96655)),
    (TI2V_5B, False): MagCurve((
        1.0, 0.99505, 0.99441, 0.99558, 0.99499, 0.99534, 0.99468, 0.99463, 0.9946, 0.99408, 0.9945, 0.99409,
        0.99403, 0.99382, 0.99349, 0.99377, 0.9933, 0.99303, 0.99217, 0.992, 0.99201, 0.99133, 0.99112, 0.99155,
        0.98958, 0.98959, 0.98838, 0.98826, 0.9883, 0.98711, 0.98562, 0.98511, 0.98414, 0.98284, 0.98104, 0.97981,
        0.97849, 0.97557, 0.97398, 0.97171, 0.96917, 0.96511, 0.96263, 0.95839, 0.95483, 0.94942, 0.9468, 0.94583,
        0.94843, 0.96949)),
}


@dataclass(frozen=True)
class StepCacheChoice:
    """The step cache of one call: `mode` ("off" | "first_block" | "mag") and why."""

    mode: str
    reason: str
    requested: str = "auto"
    curve: MagCurve | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"requested": self.requested, "mode": self.mode, "reason": self.reason}


def choose(requested: str, recipe_default: str | None, steps: int, *, model_id: str | None,
           with_image: bool) -> StepCacheChoice:
    """The step cache for a call of `steps` steps: `requested` ("auto" = the recipe's), off below MIN_STEPS."""
    mode = requested
    why = f"requested {requested}"
    if requested == "auto":
        mode = "off" if recipe_default in (None, "none") else recipe_default
        why = f"the recipe's ({recipe_default or 'none'})"
    if mode == "off":
        return StepCacheChoice("off", why, requested)
    if steps < MIN_STEPS:
        return StepCacheChoice("off", f"{why}, skipped: {steps} steps leave nothing to reuse (worth it from "
                                      f"{MIN_STEPS}; Lightning's 4 never)", requested)
    if mode == "mag":
        curve = _MAG_CURVES.get((model_id or "", with_image))
        if curve is None:
            return StepCacheChoice("off", f"{why}, skipped: no MagCache calibration for {model_id or 'this model'}"
                                          f"{' with an image' if with_image else ' without an image'}", requested)
        return StepCacheChoice("mag", why, requested, curve)
    return StepCacheChoice(mode, f"{why}, threshold {FIRST_BLOCK_THRESHOLD}", requested)


def _nearest(values: tuple[float, ...], n: int) -> list[float]:
    """`values` resampled to `n` entries by nearest index (MagCache's `nearest_interp`)."""
    if n == 1:
        return [values[-1]]
    scale = (len(values) - 1) / (n - 1)
    return [values[int(round(i * scale))] for i in range(n)]


def _configs(pipe: Any, choice: StepCacheChoice, steps: int) -> list[tuple[Any, Any]]:
    """(expert model, diffusers cache config) pairs for this call."""
    from diffusers import FirstBlockCacheConfig, MagCacheConfig

    high, low = pipe.transformer, getattr(pipe, "transformer_2", None)  # low: None for one-expert models
    if choice.mode == "first_block":
        return [(m, FirstBlockCacheConfig(threshold=FIRST_BLOCK_THRESHOLD)) for m in (high, low) if m is not None]
    curve = choice.curve
    assert curve is not None
    ratios = _nearest(curve.ratios, steps)
    n_high = steps
    if low is not None:  # the steps at or above the boundary run on the high-noise expert
        sched = type(pipe.scheduler).from_config(pipe.scheduler.config)
        sched.set_timesteps(steps)
        boundary_t = pipe.config.boundary_ratio * sched.config.num_train_timesteps
        n_high = sum(1 for t in sched.timesteps if float(t) >= boundary_t)
    spans = [(high, ratios[:n_high])] if (low is None or curve.high_noise) else []
    if low is not None:
        spans.append((low, ratios[n_high:]))
    return [
        (model, MagCacheConfig(
            threshold=curve.threshold, max_skip_steps=curve.max_skip_steps, retention_ratio=curve.retention_ratio,
            num_inference_steps=len(part), mag_ratios=list(part),
        ))
        for model, part in spans if part
    ]


@contextlib.contextmanager
def applied(pipe: Any, choice: StepCacheChoice, steps: int) -> Iterator[None]:
    """The step cache of `choice` on the experts for the duration of one pipeline call (nothing when off)."""
    if choice.mode == "off":
        yield
        return
    configs = _configs(pipe, choice, steps)
    enabled = []
    try:
        for model, config in configs:
            model.enable_cache(config)
            enabled.append(model)
        log.info("wan: step cache %s on %d expert(s) (%s)", choice.mode, len(enabled), choice.reason)
        yield
    finally:
        for model in enabled:
            model.disable_cache()
