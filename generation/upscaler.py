"""A learned upscaler (Real-ESRGAN's RRDBNet, ×4) used instead of Lanczos when VIVIDFLOW_UPSCALER_WEIGHTS names its
checkpoint (e.g. `RealESRGAN_x4plus.pth`): each frame ×4 by the network, then Lanczos to the export size.

    model = load_upscaler("/models/RealESRGAN_x4plus.pth", device="cuda")
    big = model.upscale(frame)          # (4H, 4W, 3) uint8

The network is defined here (23 residual-in-residual dense blocks, 64 features), so loading needs torch only; a
checkpoint that does not fit the layout is refused with the names that differ. torch is imported inside functions.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

SCALE = 4
BLOCKS, FEATURES, GROWTH = 23, 64, 32


class UpscalerError(RuntimeError):
    """Upscaler weights that are missing or do not fit; the message says what to set or fetch."""


def _network(blocks: int = BLOCKS) -> Any:
    import torch
    from torch import nn
    from torch.nn import functional as F

    class DenseBlock(nn.Module):
        def __init__(self, nf: int = FEATURES, gc: int = GROWTH) -> None:
            super().__init__()
            for i in range(4):
                setattr(self, f"conv{i + 1}", nn.Conv2d(nf + i * gc, gc, 3, 1, 1))
            self.conv5 = nn.Conv2d(nf + 4 * gc, nf, 3, 1, 1)
            self.lrelu = nn.LeakyReLU(0.2, True)

        def forward(self, x: Any) -> Any:
            feats = [x]
            for i in range(4):
                feats.append(self.lrelu(getattr(self, f"conv{i + 1}")(torch.cat(feats, 1))))
            return self.conv5(torch.cat(feats, 1)) * 0.2 + x

    class RRDB(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rdb1, self.rdb2, self.rdb3 = DenseBlock(), DenseBlock(), DenseBlock()

        def forward(self, x: Any) -> Any:
            return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x

    class RRDBNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv_first = nn.Conv2d(3, FEATURES, 3, 1, 1)
            self.body = nn.Sequential(*[RRDB() for _ in range(blocks)])
            self.conv_body = nn.Conv2d(FEATURES, FEATURES, 3, 1, 1)
            self.conv_up1 = nn.Conv2d(FEATURES, FEATURES, 3, 1, 1)
            self.conv_up2 = nn.Conv2d(FEATURES, FEATURES, 3, 1, 1)
            self.conv_hr = nn.Conv2d(FEATURES, FEATURES, 3, 1, 1)
            self.conv_last = nn.Conv2d(FEATURES, 3, 3, 1, 1)
            self.lrelu = nn.LeakyReLU(0.2, True)

        def forward(self, x: Any) -> Any:
            feat = self.conv_first(x)
            feat = feat + self.conv_body(self.body(feat))
            feat = self.lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
            feat = self.lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
            return self.conv_last(self.lrelu(self.conv_hr(feat)))

    return RRDBNet()


class Upscaler:
    """A loaded RRDBNet and the device it runs on."""

    def __init__(self, net: Any, device: str) -> None:
        self.net, self.device = net, device

    def upscale(self, frame: np.ndarray) -> np.ndarray:
        import torch

        x = torch.from_numpy(np.ascontiguousarray(frame)).to(self.device).permute(2, 0, 1)[None].float() / 255.0
        with torch.no_grad():
            y = self.net(x)[0].clamp(0, 1)
        return (y.permute(1, 2, 0).cpu().numpy() * 255.0 + 0.5).astype(np.uint8)


@lru_cache(maxsize=2)
def load_upscaler(path: str, device: str = "cpu") -> Upscaler:
    """Load a Real-ESRGAN ×4 RRDBNet checkpoint (`params_ema`, `params` or a plain state dict) onto `device`."""
    import torch

    file = Path(path).expanduser()
    if not file.is_file():
        raise UpscalerError(
            f"upscaler weights not found at {file}: set VIVIDFLOW_UPSCALER_WEIGHTS to a Real-ESRGAN ×4 checkpoint "
            "(RealESRGAN_x4plus.pth), or unset it to upscale with Lanczos")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated or foreign file
        raise UpscalerError(f"upscaler weights at {file} do not load: {e}") from None
    if isinstance(state, dict):
        state = state.get("params_ema") or state.get("params") or state
    if not isinstance(state, dict):
        raise UpscalerError(f"upscaler weights at {file} are not a state dict (got {type(state).__name__})")
    blocks = len({k.split(".")[1] for k in state if k.startswith("body.")}) or BLOCKS
    net = _network(blocks)
    try:
        missing, unexpected = net.load_state_dict(state, strict=False)
    except RuntimeError as e:
        raise UpscalerError(f"upscaler weights at {file} do not fit RRDBNet ×4: {str(e)[:300]}") from None
    if missing or unexpected:
        raise UpscalerError(
            f"upscaler weights at {file} do not fit RRDBNet ×4: missing {sorted(missing)[:3]}, unexpected "
            f"{sorted(unexpected)[:3]} ({len(missing)} and {len(unexpected)} tensors)")
    net.eval().to(device)
    log.info("upscaler: loaded %s (%d blocks) on %s", file, blocks, device)
    return Upscaler(net, device)

