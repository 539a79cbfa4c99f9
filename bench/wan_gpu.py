"""One-command GPU benchmark of the Wan engine: prints a table and writes bench/out/wan_gpu.json beside it.

    python bench/wan_gpu.py [--budget-s 540] [--a14b ID|FOLDER] [--ti2v ID|FOLDER] [--tiny] [--out bench/out]

On a CUDA machine with the weights (Hugging Face cache or local folders), through the engine's own code
(`load_pipeline`, `WanBackend.generate`):
- cold load of Wan2.2-I2V-A14B without the weight cache (fuse + quantize) and with it (read back), in a
  temporary cache folder (the user's cache is not touched); "cold" is a new load in this process;
- warm seconds per clip: A14B 49 and 81 frames at 832×480 (its Lightning recipe), TI2V-5B 121 frames at
  1280×704 (its steps cut to --ti2v-steps, the full recipe extrapolated from the seconds per step);
- seconds per step per expert; the split text-encode / VAE-encode / denoise / decode / export; peak GPU memory;
- each speed switch off and on at 49 frames: every boolean field of the settings' `wan` section (read at run
  time, so switches added later appear) except `lightning` and `weight_cache`, plus the known non-boolean
  ones present (`vae_tiling`, `cpu_offload`); other fields are not switches and are skipped.
Rows run in that order until --budget-s is spent (the rest are listed as skipped): under 10 minutes on one
H100/H200. Without a GPU (or with --tiny) the same code runs on the tiny random models of devtools/tiny_wan.py
in well under a minute and says so; the FLOP-based estimate (derived from the transformer configs) is printed
labelled "estimate" whenever no GPU figures were measured.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

H100_TFLOPS = {"bf16": 989.0, "fp8": 1979.0}  # dense tensor-core peak, SXM
ASSUMED_MFU = 0.45  # sustained fraction of the peak for long-sequence attention + GEMMs
NOT_SWITCHES = {"lightning", "weight_cache"}  # change the recipe / measured by the cold-load rows
KNOWN_SWITCHES = {"vae_tiling": ("off", "on"), "cpu_offload": ("none", "group")}  # non-boolean (off, on)


@dataclass
class Case:
    """One clip to measure."""

    label: str
    model: str  # registry id (the spec) — the weights come from `source`
    source: str
    frames: int
    width: int
    height: int
    steps: int
    recipe_steps: int
    guidance: float


# --- the estimate ------------------------------------------------------------------------------------------


def estimate_rows(cases: list[Case]) -> list[dict[str, Any]]:
    """Denoising FLOPs per clip from the transformer configs, and seconds on an H100 at an assumed efficiency."""
    from generation.specs import model_spec
    from generation.wan_memory import SHAPES, forward_flops, tokens

    rows = []
    for c in cases:
        spec = model_spec(c.model)
        n = tokens(c.frames, c.height, c.width, spec.size_multiple)
        per_forward = forward_flops(SHAPES[spec.model_id], n)
        forwards = c.recipe_steps * (2 if c.guidance > 1 else 1)
        row = {"case": c.label, "tokens": n, "tflop_per_forward": per_forward / 1e12, "forwards": forwards,
               "pflop_per_clip": per_forward * forwards / 1e15}
        for precision, peak in H100_TFLOPS.items():
            row[f"denoise_s_h100_{precision}"] = per_forward * forwards / (peak * 1e12 * ASSUMED_MFU)
        rows.append(row)
    return rows


def print_estimate(rows: list[dict[str, Any]]) -> None:
    print(f"\nestimate (FLOP count from the transformer configs; denoising only; H100 at {ASSUMED_MFU:.0%} of peak):")
    print(f"  {'case':34} {'tokens':>7} {'TFLOP/fwd':>10} {'fwd':>4} {'PFLOP':>7} {'bf16 s':>7} {'fp8 s':>7}")
    for r in rows:
        print(f"  {r['case']:34} {r['tokens']:7d} {r['tflop_per_forward']:10.1f} {r['forwards']:4d} "
              f"{r['pflop_per_clip']:7.2f} {r['denoise_s_h100_bf16']:7.1f} {r['denoise_s_h100_fp8']:7.1f}  estimate")


# --- measuring ---------------------------------------------------------------------------------------------


class Stopwatch:
    """Forward hooks timing each expert's forward passes and the VAE encoder (synchronised on CUDA)."""

    def __init__(self, pipe: Any, cuda: bool) -> None:
        import torch

        self.sync = torch.cuda.synchronize if cuda else (lambda: None)
        self.seconds: dict[str, float] = defaultdict(float)
        self._start: dict[str, float] = {}
        self._handles = []
        for key, module in (("transformer", getattr(pipe, "transformer", None)),
                            ("transformer_2", getattr(pipe, "transformer_2", None)),
                            ("vae_encode", pipe.vae.encoder)):
            if module is not None:
                self._handles.append(module.register_forward_pre_hook(self._begin(key)))
                self._handles.append(module.register_forward_hook(self._end(key)))

    def _begin(self, key: str) -> Any:
        def hook(module: Any, args: Any) -> None:
            self.sync()
            self._start[key] = time.perf_counter()
        return hook

    def _end(self, key: str) -> Any:
        def hook(module: Any, args: Any, out: Any) -> None:
            self.sync()
            self.seconds[key] += time.perf_counter() - self._start.pop(key)
        return hook

    def close(self) -> None:
        for h in self._handles:
            h.remove()


def picture(width: int, height: int) -> Any:
    import numpy as np
    from PIL import Image

    yy, xx = np.mgrid[0:height, 0:width]
    rgb = np.stack([xx * 255 // max(width - 1, 1), yy * 255 // max(height - 1, 1), (xx * 3 + yy) % 256], -1)
    return Image.fromarray(rgb.astype("uint8"))


def plan_for(case: Case) -> Any:
    """The plan for a case, or a string saying why the plan cannot ask for it yet."""
    from agent.plan import MotionPlan, PlanError, frames_for
    from generation.specs import model_spec

    fps = model_spec(case.model).fps  # a plan keeps duration_s; the frames come from the model's fps
    try:
        plan = MotionPlan.create(
            template="portrait_subtle", duration_s=(case.frames - 1) / fps, prompt="the hair moves gently in the wind",
            negative_prompt="blur, static", steps=case.steps, guidance_scale=case.guidance,
            guidance_scale_2=case.guidance, seed=42,
        )
    except PlanError as e:
        return f"the plan cannot ask for this yet ({e})"
    frames = frames_for(plan.duration_s, fps)
    if frames != case.frames:
        return f"the plan gives {frames} frames at {fps} fps, not {case.frames}"
    return plan


def measure_clip(backend: Any, case: Case, out_dir: Path, cuda: bool) -> dict[str, Any]:
    """A warm-up clip, then one measured clip: total, the stage split, per-step per expert, peak memory."""
    import torch

    plan = plan_for(case)
    if isinstance(plan, str):
        return {"case": case.label, "skipped": plan}
    image = picture(case.width, case.height)
    backend.generate(plan, image, out_dir=out_dir)  # warm-up (compilation, caches, allocator)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    watch = Stopwatch(backend.pipe, cuda)
    try:
        r = backend.generate(plan, image, out_dir=out_dir)
    finally:
        watch.close()
    tm, steps = r.timings, r.params.get("expert_steps", {})
    vae_encode = watch.seconds["vae_encode"]
    row = {
        "case": case.label, "size": f"{r.width}×{r.height}", "frames": r.num_frames, "steps": plan.steps,
        "clip_s": tm["total"], "text_encode_s": tm["encode"], "vae_encode_s": vae_encode,
        "denoise_s": tm["sample"] - vae_encode, "decode_s": tm["decode"], "export_s": tm["export"],
        "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
        "quantization": r.params["quantization"]["mode"], "offload": r.params.get("offload"),
        "vae_tiling": r.params.get("vae_tiling"),
    }
    for component, expert in (("transformer", "high_noise"), ("transformer_2", "low_noise")):
        if steps.get(expert):
            row[f"s_per_step_{expert}"] = watch.seconds[component] / steps[expert]
    if case.recipe_steps != plan.steps:
        row["clip_s_full_recipe_extrapolated"] = tm["total"] + (case.recipe_steps - plan.steps) * tm["per_step"]
    return row


def switches() -> list[tuple[str, tuple[Any, Any]]]:
    """(field, (off, on)) for each speed switch of the settings' wan section, read now."""
    from vividflow.sections import WanSettings

    found = []
    for name, field in WanSettings.model_fields.items():
        if name in NOT_SWITCHES:
            continue
        if field.annotation is bool:
            found.append((name, (False, True)))
        elif name in KNOWN_SWITCHES:
            found.append((name, KNOWN_SWITCHES[name]))
    return found


# --- the run -------------------------------------------------------------------------------------------------


def setups(args: argparse.Namespace, tiny: bool, work: Path) -> tuple[Any, list[Case]]:
    """The base config and the clips: the real models on a GPU, the tiny ones otherwise."""
    from generation.config import GenerationConfig
    from generation.specs import I2V_A14B, TI2V_5B, model_spec

    a14b, ti2v = model_spec(I2V_A14B), model_spec(TI2V_5B)
    lightning = a14b.recipe(True)
    if not tiny:
        base = GenerationConfig.from_env().replace(model=args.a14b, max_area=832 * 480)
        return base, [
            Case("A14B 49 frames 832×480", I2V_A14B, args.a14b, 49, 832, 480, lightning.steps, lightning.steps, 1.0),
            Case("A14B 81 frames 832×480", I2V_A14B, args.a14b, 81, 832, 480, lightning.steps, lightning.steps, 1.0),
            Case("TI2V-5B 121 frames 1280×704", TI2V_5B, args.ti2v, 121, 1280, 704, args.ti2v_steps,
                 ti2v.base.steps, ti2v.base.guidance[0]),
        ]
    from devtools.tiny_wan import save_tiny_lora, save_tiny_pipeline

    folder = save_tiny_pipeline(work / "tiny-wan")
    ti2v_folder = save_tiny_pipeline(work / "tiny-ti2v", kind="ti2v")
    lora = save_tiny_lora(work / "tiny-lora.safetensors", "lightx2v")
    base = GenerationConfig(model=str(folder), lightning=False, max_area=32 * 32, max_sequence_length=64,
                            quantization="int8", loras=(f"high_noise:1.0:{lora}",))
    return base, [
        Case("tiny A14B-shaped 49 frames 32×32", I2V_A14B, str(folder), 49, 32, 32, 4, 4, 1.0),
        Case("tiny A14B-shaped 81 frames 32×32", I2V_A14B, str(folder), 81, 32, 32, 4, 4, 1.0),
        Case("tiny TI2V-5B-shaped 121 frames 64×64", TI2V_5B, str(ti2v_folder), 121, 64, 64, 4, 4, 1.0),
    ]


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from generation import wan_load
    from generation.backend import BackendUnavailable
    from generation.wan import WanBackend

    cuda = torch.cuda.is_available() and not args.tiny
    if not cuda:
        torch.set_num_threads(1)  # tiny ops: one thread is several times faster than many
    start = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="wan-gpu-bench-", dir=args.out))
    os.environ["VIVIDFLOW_HOME"] = str(work / "home")  # a temporary weight cache; the user's is not touched
    results: dict[str, Any] = {"loads": [], "clips": [], "switches": [], "skipped": []}
    try:
        base, cases = setups(args, not cuda, work)
        results["mode"] = "gpu" if cuda else "tiny-cpu"
        results["device"] = torch.cuda.get_device_name() if cuda else "CPU (tiny random models)"
        results["settings"] = base.to_dict()

        def left() -> float:
            return args.budget_s - (time.perf_counter() - start)

        def load(cfg: Any, label: str) -> Any:
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            t = time.perf_counter()
            loaded = wan_load.load_pipeline(cfg)
            results["loads"].append({"load": label, "seconds": time.perf_counter() - t,
                                     "weight_cache": loaded.weight_cache.get("status"),
                                     "timings": dict(loaded.timings), "memory_plan": loaded.describe()["memory_plan"],
                                     "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None})
            return loaded

        # 1. Cold loads: the weight cache written (fuse + quantize + write), then read back
        load(base.replace(weight_cache=True), "A14B, weight cache empty (fuse, quantize, write)")
        results["loads"][-1]["without_cache_s"] = (results["loads"][-1]["seconds"]
                                                   - results["loads"][-1]["timings"].get("cache_save", 0.0))
        backend = WanBackend(loaded=load(base, "A14B, weight cache hit"))

        # 2. Warm clips
        for case in cases:
            if left() < 0:
                results["skipped"].append(f"{case.label}: budget spent")
                continue
            if case.model != cases[0].model:
                if not case.source:
                    results["skipped"].append(f"{case.label}: no tiny TI2V-5B model to run")
                    continue
                backend.unload()
                try:
                    backend = WanBackend(loaded=load(base.replace(model=case.source, loras=(), max_area=case.width
                                                                  * case.height), case.label))
                except BackendUnavailable as e:  # not downloaded, or not loadable by this engine yet
                    results["skipped"].append(f"{case.label}: {e}")
                    continue
            results["clips"].append(measure_clip(backend, case, work / "clips", cuda))

        # 3. Each speed switch off and on, at the first case
        backend.unload()
        for name, values in switches():
            for value in values:
                if left() < 0:
                    results["skipped"].append(f"switch {name}={value}: budget spent")
                    continue
                b = WanBackend(loaded=load(base.replace(**{name: value}), f"switch {name}={value}"))
                row = measure_clip(b, cases[0], work / "clips", cuda)
                results["switches"].append({"switch": name, "value": value, **row})
                b.unload()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["seconds"] = time.perf_counter() - start
    results["estimate"] = estimate_rows(cases if cuda else real_cases())
    return results


def real_cases() -> list[Case]:
    """The real cases, for the estimate when the run used the tiny models."""
    from generation.specs import I2V_A14B, TI2V_5B, model_spec

    ti2v = model_spec(TI2V_5B).base
    return [Case("A14B 49 frames 832×480 (Lightning)", I2V_A14B, "", 49, 832, 480, 4, 4, 1.0),
            Case("A14B 81 frames 832×480 (Lightning)", I2V_A14B, "", 81, 832, 480, 4, 4, 1.0),
            Case("TI2V-5B 121 frames 1280×704 (base)", TI2V_5B, "", 121, 1280, 704, ti2v.steps, ti2v.steps,
                 ti2v.guidance[0])]


def print_table(results: dict[str, Any]) -> None:
    tiny = results["mode"] != "gpu"
    print(f"\nWan engine benchmark — {results['device']}" + (
        "\nNOT GPU FIGURES: no CUDA GPU with the weights here, so the same code ran on the tiny random models "
        "(devtools/tiny_wan.py)" if tiny else ""))
    print("\ncold load (a new load_pipeline in this process)")
    for r in results["loads"]:
        extra = f"  (without the cache: {r['without_cache_s']:.1f} s)" if "without_cache_s" in r else ""
        peak = f"  peak {r['peak_gib']:.1f} GiB" if r["peak_gib"] is not None else ""
        print(f"  {r['load']:58} {r['seconds']:7.2f} s  cache {r['weight_cache']}{extra}{peak}")
    head = (f"  {'clip':36} {'total':>7} {'text':>6} {'vae-enc':>7} {'denoise':>8} {'decode':>7} {'export':>7} "
            f"{'s/step hi':>9} {'s/step lo':>9} {'peak GiB':>8}")

    def line(r: dict[str, Any], label: str) -> str:
        if "skipped" in r:
            return f"  {label:36} skipped: {r['skipped']}"
        peak = f"{r['peak_gib']:8.1f}" if r["peak_gib"] is not None else f"{'-':>8}"
        hi, lo = r.get("s_per_step_high_noise"), r.get("s_per_step_low_noise")
        full = (f"  (full recipe ≈ {r['clip_s_full_recipe_extrapolated']:.1f} s, extrapolated)"
                if "clip_s_full_recipe_extrapolated" in r else "")
        return (f"  {label:36} {r['clip_s']:7.2f} {r['text_encode_s']:6.2f} {r['vae_encode_s']:7.2f} "
                f"{r['denoise_s']:8.2f} {r['decode_s']:7.2f} {r['export_s']:7.2f} "
                f"{hi if hi is not None else float('nan'):9.3f} {lo if lo is not None else float('nan'):9.3f} "
                f"{peak}{full}")

    print("\nwarm clips (seconds; the second of two identical calls)")
    print(head)
    for r in results["clips"]:
        print(line(r, r["case"]))
    print("\nspeed switches (at the first clip)")
    print(head)
    for r in results["switches"]:
        print(line(r, f"{r['switch']}={r['value']}"))
    for s in results["skipped"]:
        print(f"  skipped: {s}")
    if tiny:
        print_estimate(results["estimate"])
    print(f"\nbenchmark took {results['seconds']:.0f} s")


def main(argv: list[str] | None = None) -> None:
    from generation.specs import TI2V_5B

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a14b", help="Wan2.2-I2V-A14B hub id or Diffusers folder (default: the settings' wan.model)")
    ap.add_argument("--ti2v", default=TI2V_5B, help="Wan2.2-TI2V-5B hub id or Diffusers folder")
    ap.add_argument("--ti2v-steps", type=int, default=4, help="TI2V-5B steps measured (the recipe's are extrapolated)")
    ap.add_argument("--budget-s", type=float, default=540.0, help="stop starting new rows after this many seconds")
    ap.add_argument("--tiny", action="store_true", help="the tiny CPU models even when a GPU is present")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.a14b is None:
        from generation.config import GenerationConfig

        args.a14b = GenerationConfig.from_env().model
    logging.basicConfig(level=logging.WARNING)
    args.out.mkdir(parents=True, exist_ok=True)
    import torch

    if torch.cuda.is_available() and not args.tiny:
        from generation.choose import wan_weights_present
        from generation.config import GenerationConfig

        if not wan_weights_present(GenerationConfig(model=args.a14b)):
            print(f"CUDA is here but the weights of {args.a14b} are not: running the tiny models instead")
            args.tiny = True
    results = run(args)
    print_table(results)
    path = args.out / "wan_gpu.json"
    path.write_text(json.dumps(results, indent=1, default=str))
    print(f"wrote {path}")


if __name__ == "__main__":
    from vividflow.boundary import run_cli

    sys.exit(run_cli(main, prog="bench/wan_gpu.py"))
