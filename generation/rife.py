"""RIFE frame interpolation (Practical-RIFE's IFNet, the 4.x layout): used instead of ffmpeg's minterpolate when
VIVIDFLOW_RIFE_WEIGHTS names its `flownet.pkl` (or a folder holding one).

    model = load_rife("/models/rife/flownet.pkl", device="cuda")
    frames = model.interpolate(frames, fps=16, out_fps=32)

The network (four coarse-to-fine flow blocks, each warping both frames towards the middle time and refining flow
and a blend mask) is defined here, so loading needs torch and nothing else; a checkpoint whose tensors do not
fit this layout is refused with the names that differ. torch is imported inside the functions.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

WEIGHTS_FILE = "flownet.pkl"
BLOCKS = ((7, 192), (8 + 4, 128), (8 + 4, 96), (8 + 4, 64))  # (input channels, width) per flow block
SCALES = (8, 4, 2, 1)


class RifeError(RuntimeError):
    """RIFE weights that are missing or do not fit; the message says what to set or fetch."""


def weights_path(path: str | os.PathLike[str]) -> Path:
    """The checkpoint file: `path` itself, or `path/flownet.pkl`; RifeError when neither exists."""
    p = Path(path).expanduser()
    if p.is_dir():
        p = p / WEIGHTS_FILE
    if not p.is_file():
        raise RifeError(
            f"RIFE weights not found at {p}: set VIVIDFLOW_RIFE_WEIGHTS to Practical-RIFE's {WEIGHTS_FILE} (or its "
            "folder), or unset it to interpolate with ffmpeg's minterpolate")
    return p


def _network() -> Any:
    import torch
    from torch import nn
    from torch.nn import functional as F

    def conv(cin: int, cout: int, stride: int = 1) -> nn.Module:
        return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=True), nn.LeakyReLU(0.2, True))

    class IFBlock(nn.Module):
        def __init__(self, cin: int, c: int) -> None:
            super().__init__()
            self.conv0 = nn.Sequential(conv(cin, c // 2, 2), conv(c // 2, c, 2))
            self.convblock = nn.Sequential(*[conv(c, c) for _ in range(8)])
            self.lastconv = nn.ConvTranspose2d(c, 5, 4, 2, 1)

        def forward(self, x: Any, flow: Any, scale: int) -> tuple[Any, Any]:
            x = F.interpolate(x, scale_factor=1.0 / scale, mode="bilinear", align_corners=False)
            if flow is not None:
                flow = F.interpolate(flow, scale_factor=1.0 / scale, mode="bilinear", align_corners=False) / scale
                x = torch.cat((x, flow), 1)
            feat = self.conv0(x)
            feat = self.convblock(feat) + feat
            tmp = F.interpolate(self.lastconv(feat), scale_factor=scale * 2, mode="bilinear", align_corners=False)
            return tmp[:, :4] * scale * 2, tmp[:, 4:5]

    def warp(img: Any, flow: Any) -> Any:
        n, _, h, w = img.shape
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, h, device=img.device), torch.linspace(-1, 1, w, device=img.device),
                                indexing="ij")
        grid = torch.stack((xs, ys), -1).unsqueeze(0).expand(n, h, w, 2)
        delta = torch.stack((flow[:, 0] / ((w - 1) / 2), flow[:, 1] / ((h - 1) / 2)), -1)
        return F.grid_sample(img, grid + delta, mode="bilinear", padding_mode="border", align_corners=True)

    class IFNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            for i, (cin, c) in enumerate(BLOCKS):
                setattr(self, f"block{i}", IFBlock(cin, c))

        def forward(self, img0: Any, img1: Any, t: float = 0.5) -> Any:
            step = img0[:, :1] * 0 + t
            flow = mask = None
            w0, w1 = img0, img1
            for i, scale in enumerate(SCALES):
                block = getattr(self, f"block{i}")
                if flow is None:
                    flow, mask = block(torch.cat((img0, img1, step), 1), None, scale)
                else:
                    df, dm = block(torch.cat((w0, w1, step, mask), 1), flow, scale)
                    flow, mask = flow + df, mask + dm
                w0, w1 = warp(img0, flow[:, :2]), warp(img1, flow[:, 2:4])
            m = torch.sigmoid(mask)
            return (w0 * m + w1 * (1 - m)).clamp(0, 1)

    return IFNet()


class Rife:
    """A loaded IFNet and the device it runs on."""

    def __init__(self, net: Any, device: str) -> None:
        self.net, self.device = net, device

    def middle(self, a: np.ndarray, b: np.ndarray, t: float = 0.5) -> np.ndarray:
        """The frame at time `t` between `a` and `b` (uint8 HWC); sides padded to multiples of 32 inside."""
        import torch
        from torch.nn import functional as F

        h, w = a.shape[:2]
        ph, pw = (-h) % 32, (-w) % 32

        def tensor(x: np.ndarray) -> Any:
            x = torch.from_numpy(np.ascontiguousarray(x)).to(self.device).permute(2, 0, 1)[None].float() / 255.0
            return F.pad(x, (0, pw, 0, ph), mode="replicate")

        with torch.no_grad():
            out = self.net(tensor(a), tensor(b), t)[0, :, :h, :w]
        return (out.permute(1, 2, 0).cpu().numpy() * 255.0 + 0.5).astype(np.uint8)

    def interpolate(self, frames: Iterable[np.ndarray], *, fps: int, out_fps: int) -> Iterator[np.ndarray]:
        """Frames at `out_fps` (a whole multiple of `fps`): each pair gets out_fps/fps - 1 frames between."""
        if out_fps % fps:
            raise RifeError(f"RIFE interpolates by whole factors: {out_fps} fps is not a multiple of {fps} fps")
        k = out_fps // fps
        prev = None
        for f in frames:
            if prev is not None:
                for j in range(1, k):
                    yield self.middle(prev, f, j / k)
            yield f
            prev = f


@lru_cache(maxsize=2)
def load_rife(path: str, device: str = "cpu") -> Rife:
    """Load Practical-RIFE's `flownet.pkl` (a plain or DataParallel state dict) onto `device`; RifeError with the
    fix when it is missing or does not fit the IFNet layout."""
    import torch

    file = weights_path(path)
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated or foreign file
        raise RifeError(f"RIFE weights at {file} do not load: {e}") from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise RifeError(f"RIFE weights at {file} are not a state dict (got {type(state).__name__})")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    net = _network()
    try:
        missing, unexpected = net.load_state_dict(state, strict=False)
    except RuntimeError as e:  # tensors of the wrong shape
        raise RifeError(f"RIFE weights at {file} do not fit the IFNet 4.x layout: {str(e)[:300]}") from None
    if missing or unexpected:
        raise RifeError(
            f"RIFE weights at {file} do not fit the IFNet 4.x layout: missing {sorted(missing)[:3]}, unexpected "
            f"{sorted(unexpected)[:3]} ({len(missing)} and {len(unexpected)} tensors)")
    net.eval().to(device)
    log.info("rife: loaded %s on %s", file, device)
    return Rife(net, device)
