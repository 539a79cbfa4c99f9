"""A live preview while denoising: each step's predicted clean latents (x0) projected to a small RGB strip by a
fixed latent→RGB matrix — no VAE, a few microseconds of work (FramePack's and ComfyUI's "latent2rgb" preview).

The matrices are ComfyUI's published latent-preview factors (`comfy/latent_formats.py`: `Wan21` for the
16-channel Wan2.1 VAE of the A14B models, `Wan22` for TI2V-5B's 48-channel VAE), fitted by its authors on
normalized latents, the same space the diffusers pipeline denoises in. The colours are approximate by design:
a preview of composition and motion, not of the final frames.

The x0 of a step is what the flow-matching UniPC scheduler keeps as its last converted model output
(x0 = latents − σ·v); a scheduler without one previews the current latents instead. torch is imported inside
functions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

PREVIEW_FRAMES = 4  # latent frames shown side by side, evenly spaced over the clip
PREVIEW_WIDTH = 160  # pixels per frame of the strip

WAN21_RGB = (
    (-0.1299, -0.1692, 0.2932), (0.0671, 0.0406, 0.0442), (0.3568, 0.2548, 0.1747), (0.0372, 0.2344, 0.1420),
    (0.0313, 0.0189, -0.0328), (0.0296, -0.0956, -0.0665), (-0.3477, -0.4059, -0.2925), (0.0166, 0.1902, 0.1975),
    (-0.0412, 0.0267, -0.1364), (-0.1293, 0.0740, 0.1636), (0.0680, 0.3019, 0.1128), (0.0032, 0.0581, 0.0639),
    (-0.1251, 0.0927, 0.1699), (0.0060, -0.0633, 0.0005), (0.3477, 0.2275, 0.2950), (0.1984, 0.0913, 0.1861),
)
WAN21_BIAS = (-0.1835, -0.0868, -0.3360)
WAN22_RGB = (
    (0.0119, 0.0103, 0.0046), (-0.1062, -0.0504, 0.0165), (0.0140, 0.0409, 0.0491), (-0.0813, -0.0677, 0.0607),
    (0.0656, 0.0851, 0.0808), (0.0264, 0.0463, 0.0912), (0.0295, 0.0326, 0.0590), (-0.0244, -0.0270, 0.0025),
    (0.0443, -0.0102, 0.0288), (-0.0465, -0.0090, -0.0205), (0.0359, 0.0236, 0.0082), (-0.0776, 0.0854, 0.1048),
    (0.0564, 0.0264, 0.0561), (0.0006, 0.0594, 0.0418), (-0.0319, -0.0542, -0.0637), (-0.0268, 0.0024, 0.0260),
    (0.0539, 0.0265, 0.0358), (-0.0359, -0.0312, -0.0287), (-0.0285, -0.1032, -0.1237), (0.1041, 0.0537, 0.0622),
    (-0.0086, -0.0374, -0.0051), (0.0390, 0.0670, 0.2863), (0.0069, 0.0144, 0.0082), (0.0006, -0.0167, 0.0079),
    (0.0313, -0.0574, -0.0232), (-0.1454, -0.0902, -0.0481), (0.0714, 0.0827, 0.0447), (-0.0304, -0.0574, -0.0196),
    (0.0401, 0.0384, 0.0204), (-0.0758, -0.0297, -0.0014), (0.0568, 0.1307, 0.1372), (-0.0055, -0.0310, -0.0380),
    (0.0239, -0.0305, 0.0325), (-0.0663, -0.0673, -0.0140), (-0.0416, -0.0047, -0.0023), (0.0166, 0.0112, -0.0093),
    (-0.0211, 0.0011, 0.0331), (0.1833, 0.1466, 0.2250), (-0.0368, 0.0370, 0.0295), (-0.3441, -0.3543, -0.2008),
    (-0.0479, -0.0489, -0.0420), (-0.0660, -0.0153, 0.0800), (-0.0101, 0.0068, 0.0156), (-0.0690, -0.0452, -0.0927),
    (-0.0145, 0.0041, 0.0015), (0.0421, 0.0451, 0.0373), (0.0504, -0.0483, -0.0356), (-0.0837, 0.0168, 0.0055),
)
WAN22_BIAS = (0.0317, -0.0878, -0.1388)
_FACTORS = {16: (WAN21_RGB, WAN21_BIAS), 48: (WAN22_RGB, WAN22_BIAS)}


def supported(channels: int) -> bool:
    return channels in _FACTORS


def predicted_x0(scheduler: Any, latents: Any) -> Any:
    """The step's predicted clean latents: the scheduler's last x0 (UniPC, `predict_x0`), else `latents`."""
    outputs = getattr(scheduler, "model_outputs", None)
    if getattr(scheduler.config, "predict_x0", False) and outputs and outputs[-1] is not None:
        return outputs[-1]
    return latents


def strip(x0: Any, *, frames: int = PREVIEW_FRAMES, width: int = PREVIEW_WIDTH) -> np.ndarray:
    """(B, C, T, h, w) latents → an RGB uint8 strip (H, k·width, 3) of k ≤ `frames` evenly spaced frames."""
    import torch
    from PIL import Image

    rgb, bias = _FACTORS[x0.shape[1]]
    t = x0.shape[2]
    k = min(frames, t)
    picks = [round(i * (t - 1) / max(k - 1, 1)) for i in range(k)]
    with torch.no_grad():
        z = x0[0, :, picks].float()  # (C, k, h, w)
        m = torch.tensor(rgb, dtype=z.dtype, device=z.device)
        b = torch.tensor(bias, dtype=z.dtype, device=z.device)
        img = torch.einsum("ckhw,cr->khwr", z, m) + b  # values around [-1, 1]
        img = ((img.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu().numpy()
    h, w = img.shape[1:3]
    height = max(1, round(width * h / w))
    tiles = [np.asarray(Image.fromarray(f).resize((width, height), Image.BILINEAR)) for f in img]
    return np.concatenate(tiles, axis=1)
