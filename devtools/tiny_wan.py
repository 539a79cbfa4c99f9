"""Tiny random Wan2.2 pipelines for tests, benchmarks and offline demos, one per supported model shape.

    kind "i2v":  `Wan-AI/Wan2.2-I2V-A14B-Diffusers` — WanImageToVideoPipeline, two experts, in_channels 36
                 (16 noise + 4 mask + 16 image latents), VAE z_dim 16, spatial scale 8: sides multiples of 16;
    kind "ti2v": `Wan-AI/Wan2.2-TI2V-5B-Diffusers` — saved as WanPipeline (as the hub repo is), one expert,
                 `expand_timesteps=True`, in_channels 48, the Wan2.2 VAE (z_dim 48, patch_size 2, residual,
                 spatial scale 16): sides multiples of 32;
    kind "t2v":  `Wan-AI/Wan2.2-T2V-A14B-Diffusers` — WanPipeline, two experts, in_channels 16.

Same classes and code path as the real models, with 2-layer components (the shapes diffusers' own tests use,
see shared/OFFLINE-MODELS.md), an offline unigram T5 tokenizer, and tiny LoRA files in both key formats we
load: diffusers/PEFT and lightx2v/ComfyUI. Nothing here touches the network.
"""

from __future__ import annotations

import os
import string
from pathlib import Path
from typing import Any

TINY_MAX_AREA = 64 * 64  # the tiny model's registry max area: keeps test clips small
TINY_KINDS = ("i2v", "ti2v", "t2v")
TINY_FOLDERS = {"i2v": "tiny-wan2.2-i2v", "ti2v": "tiny-wan2.2-ti2v-5b", "t2v": "tiny-wan2.2-t2v"}
TINY_NUM_LAYERS = 2
TINY_HEADS = 2
TINY_HEAD_DIM = 12
TINY_DIM = TINY_HEADS * TINY_HEAD_DIM  # 24
TINY_FFN = 32
TINY_TEXT_DIM = 32


def _tokenizer() -> Any:
    from transformers import T5Tokenizer

    chars = string.ascii_lowercase + string.digits + ".,!?'-"
    words = ["the", "a", "and", "of", "in", "slowly", "gently", "hair", "wind", "camera", "light", "water"]
    vocab: list[tuple[str, float]] = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    vocab += [(c, -5.0) for c in chars]
    vocab += [("▁" + c, -4.0) for c in chars]
    vocab += [("▁" + w, -3.0) for w in words]
    return T5Tokenizer(vocab=vocab, extra_ids=0)


def build_tiny_pipeline(
    *, kind: str = "i2v", boundary_ratio: float = 0.875, flow_shift: float = 3.0, seed: int = 0,
    attention_head_dim: int = TINY_HEAD_DIM,
) -> Any:
    """A random Wan2.2 pipeline of `kind`'s shape (module docstring) in float32 on CPU (~0.5 MB of weights), in
    eval mode. `boundary_ratio` applies to the two-expert kinds.

    `attention_head_dim=16` makes every linear a multiple of 16 wide (what FP8 matmuls on a GPU need).
    """
    import torch
    from diffusers import (
        AutoencoderKLWan,
        UniPCMultistepScheduler,
        WanImageToVideoPipeline,
        WanPipeline,
        WanTransformer3DModel,
    )
    from transformers import UMT5Config, UMT5EncoderModel

    if kind not in TINY_KINDS:
        raise ValueError(f"kind must be one of {', '.join(TINY_KINDS)}, got {kind!r}")
    tok = _tokenizer()
    torch.manual_seed(seed)
    if kind == "ti2v":  # the Wan2.2 VAE: patchified RGB (3·2·2 channels), residual blocks, 16× spatial
        vae = AutoencoderKLWan(
            base_dim=3, z_dim=48, in_channels=12, out_channels=12, is_residual=True, patch_size=2,
            latents_mean=[0.0] * 48, latents_std=[1.0] * 48, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
            scale_factor_spatial=16, scale_factor_temporal=4, temperal_downsample=[False, True, True],
        )
    else:
        vae = AutoencoderKLWan(
            base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True]
        )
    channels = {"i2v": (36, 16), "ti2v": (48, 48), "t2v": (16, 16)}[kind]  # (in, out)
    text_encoder = UMT5EncoderModel(
        UMT5Config(
            vocab_size=len(tok), d_model=TINY_TEXT_DIM, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
            relative_attention_num_buckets=8, feed_forward_proj="gated-gelu", pad_token_id=0, eos_token_id=1,
        )
    )

    def expert() -> Any:
        return WanTransformer3DModel(
            patch_size=(1, 2, 2), num_attention_heads=TINY_HEADS, attention_head_dim=attention_head_dim,
            in_channels=channels[0], out_channels=channels[1], text_dim=TINY_TEXT_DIM, freq_dim=256, ffn_dim=TINY_FFN,
            num_layers=TINY_NUM_LAYERS, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
            rope_max_seq_len=32, image_dim=None,
        )

    transformer = expert()
    transformer_2 = expert() if kind != "ti2v" else None
    for module in (vae, text_encoder, transformer, transformer_2):
        if module is not None:
            module.eval()  # built in train mode: dropout (the text encoder's 0.1) would make two calls differ
    scheduler = UniPCMultistepScheduler(
        prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=flow_shift
    )
    parts = dict(tokenizer=tok, text_encoder=text_encoder, vae=vae, scheduler=scheduler, transformer=transformer,
                 transformer_2=transformer_2)
    if kind == "i2v":
        return WanImageToVideoPipeline(**parts, image_encoder=None, image_processor=None, boundary_ratio=boundary_ratio)
    if kind == "ti2v":
        return WanPipeline(**parts, boundary_ratio=None, expand_timesteps=True)
    return WanPipeline(**parts, boundary_ratio=boundary_ratio)


def save_tiny_pipeline(folder: str | os.PathLike[str], **kwargs: Any) -> Path:
    """Build the tiny pipeline and `save_pretrained` it into `folder` (a Diffusers layout); returns the folder."""
    folder = Path(folder)
    build_tiny_pipeline(**kwargs).save_pretrained(folder)
    return folder


# --- tiny LoRA files ------------------------------------------------------------------------------

# Our (diffusers) attention projection names and their lightx2v/ComfyUI (original Wan) names.
_ATTN = {"attn1": "self_attn", "attn2": "cross_attn"}
_PROJ = {"to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "o"}


def tiny_lora_state_dict(
    fmt: str = "diffusers", *, rank: int = 4, seed: int = 1, std: float = 0.5, dim: int = TINY_DIM,
    num_layers: int = TINY_NUM_LAYERS,
) -> dict[str, Any]:
    """Random LoRA weights for the tiny expert's attention projections.

    fmt "diffusers": `transformer.blocks.0.attn1.to_q.lora_A.weight` / `lora_B` (PEFT names);
    fmt "lightx2v":  `diffusion_model.blocks.0.self_attn.q.lora_down.weight` / `lora_up` / `.alpha`
    (the key layout of Kijai/WanVideo_comfy's Lightx2v files). `dim` other than the tiny width makes
    a LoRA that does not match the model (for the error test).
    """
    import torch

    if fmt not in ("diffusers", "lightx2v"):
        raise ValueError(f"fmt must be 'diffusers' or 'lightx2v', got {fmt!r}")
    g = torch.Generator("cpu").manual_seed(seed)
    sd: dict[str, Any] = {}
    for i in range(num_layers):
        for attn, orig_attn in _ATTN.items():
            for proj, orig_proj in _PROJ.items():
                down = torch.randn(rank, dim, generator=g) * std
                up = torch.randn(dim, rank, generator=g) * std
                if fmt == "diffusers":
                    base = f"transformer.blocks.{i}.{attn}.{proj}"
                    sd[f"{base}.lora_A.weight"] = down
                    sd[f"{base}.lora_B.weight"] = up
                else:
                    base = f"diffusion_model.blocks.{i}.{orig_attn}.{orig_proj}"
                    sd[f"{base}.lora_down.weight"] = down
                    sd[f"{base}.lora_up.weight"] = up
                    sd[f"{base}.alpha"] = torch.tensor(float(rank))
    return sd


def save_tiny_lora(path: str | os.PathLike[str], fmt: str = "diffusers", **kwargs: Any) -> Path:
    """Write `tiny_lora_state_dict(fmt, **kwargs)` as a .safetensors file; returns the path."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tiny_lora_state_dict(fmt, **kwargs).items()}, str(path))
    return path


_CACHED: dict[str, Path] = {}


def cached_tiny_pipeline_dir(kind: str = "i2v") -> Path:
    """The tiny pipeline of `kind` saved once per process into a temp folder (removed at exit); tests share it."""
    if kind not in _CACHED:
        import atexit
        import shutil
        import tempfile

        root = Path(tempfile.mkdtemp(prefix="vividflow-tiny-wan-"))
        atexit.register(shutil.rmtree, root, True)
        _CACHED[kind] = save_tiny_pipeline(root / TINY_FOLDERS[kind], kind=kind)
    return _CACHED[kind]
