"""The `preview` backend: animate the photo with classic image warping, in about a second, on any CPU.

It shows the motion a plan asks for (camera move, which regions move and how fast) before anyone
spends GPU time. It is not a generative model: nothing new is drawn except falling particles.

How a frame is made (all numpy, float32):
1. Camera: every output pixel maps to a source position (zoom, pan, tilt, dolly with parallax,
   orbit with a slight perspective), eased in and out; pans and orbits zoom in just enough that no
   border ever shows. `camera.speed` scales the total displacement.
2. Subjects: each motion adds a smooth, local displacement field (sway, flutter, ripple, flow, drift,
   rise, breathe, bob, wag, twitch, flap, pulse) or a brightness flicker, weighted by a soft region
   mask. `speed` scales the temporal frequency, `intensity` the amplitude. Fields are computed on a
   coarse grid (every 16 px) and upsampled, so they cost almost nothing.
3. One bilinear resample of the photo at the summed source positions.
4. Particles (snow, rain, dust) are drawn on top; a fog layer drifts over the frame if asked.

Where a subject moves is a HEURISTIC from position and colour, not a segmentation, and it assumes
the usual framing (a portrait's face in the upper middle, a landscape's sky on top):
- hair: a head-sized area in the upper middle around (not on) the face, where the picture is textured;
- face/head/eyes/mouth: soft ellipses in the upper middle; body/clothing: the lower middle;
  hands: lower left and right; animal: the centre; ears: top of it; tail: lower sides; wings: both sides;
- water: the lower part, where bluish or unsaturated and smooth; sky/clouds: the top, bright and smooth;
- trees: upper part, green or textured; grass: lower part, green or textured; flowers: saturated colour;
- fire: bright warm pixels; light: the brightest 15 %; smoke: unsaturated, more towards the top;
- product: the centre; background: everything but the centre.
When the colour evidence is absent the position prior alone is used (the person said there is water,
so the lower part ripples). Eyes and mouth cannot blink or speak with warping; they get a
micro-movement of the face region. The Wan backend does the real thing.

Everything is deterministic for a given plan, image and seed.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import threading
import time
import zlib
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from generation.events import (
    CancelToken,
    EventListener,
    GenerationCancelled,
    GenerationResult,
    Progress,
    ignore,
)
from generation.image import MAX_AREA, preprocess

if TYPE_CHECKING:
    from agent.plan import Motion, MotionPlan

log = logging.getLogger(__name__)

RENDERER_VERSION = "preview-warp-1"
GRID = 16  # px between the coarse-grid points where displacement fields are computed
REF_SIDE = 480.0  # amplitudes below are in px at a 480-px short side and scale with it

# --- camera: rates per second at speed 1.0 -----------------------------------------------------
ZOOM_PER_S = 0.045  # scale change per second
PAN_PER_S = 0.035  # fraction of the frame width (height for tilt) per second
ORBIT_PER_S = 0.03
DOLLY_PARALLAX = 0.6  # edges scale up to 1.6× as fast as the centre
ORBIT_KEYSTONE = 0.06  # vertical scale difference between the near and far side
MAX_TRAVEL = 0.35  # cap on the total pan/tilt/orbit travel (fraction of the frame)
MAX_ZOOM = 1.8


def ease(p: np.ndarray | float) -> Any:
    """Smoothstep: zero velocity at the start and the end."""
    return p * p * (3.0 - 2.0 * p)


# --- motion table -------------------------------------------------------------------------------


@dataclass(frozen=True)
class MotionKind:
    """How a displacement field moves: base amplitude (px at 480p, intensity 1) and frequency (Hz, speed 1)."""

    name: str
    amp: float
    freq: float


KINDS: dict[str, MotionKind] = {
    k.name: k
    for k in (
        MotionKind("sway", 9.0, 0.45),
        MotionKind("flutter", 5.0, 1.3),
        MotionKind("ripple", 4.0, 0.8),
        MotionKind("flow", 5.0, 0.9),
        MotionKind("drift", 16.0, 0.0),  # px per second
        MotionKind("rise", 14.0, 0.0),  # px per second, upward
        MotionKind("breathe", 4.0, 0.3),
        MotionKind("bob", 5.0, 0.4),
        MotionKind("wag", 10.0, 1.8),
        MotionKind("twitch", 5.0, 0.9),
        MotionKind("flap", 14.0, 1.5),
        MotionKind("pulse", 0.03, 0.6),  # relative scale
        MotionKind("shimmer", 2.0, 1.1),
        MotionKind("flicker", 0.25, 2.0),  # relative brightness
    )
}

# subject -> (region heuristic, default kind)
SUBJECTS: dict[str, tuple[str, str]] = {
    "hair": ("hair", "sway"),
    "head": ("face", "bob"),
    "face": ("face", "bob"),
    "eyes": ("eyes", "bob"),
    "mouth": ("mouth", "bob"),
    "hands": ("hands", "sway"),
    "body": ("body", "breathe"),
    "clothing": ("body", "sway"),
    "animal": ("animal", "breathe"),
    "tail": ("tail", "wag"),
    "ears": ("ears", "twitch"),
    "wings": ("wings", "flap"),
    "water": ("water", "ripple"),
    "clouds": ("sky", "drift"),
    "sky": ("sky", "drift"),
    "trees": ("trees", "sway"),
    "grass": ("grass", "flutter"),
    "flowers": ("flowers", "sway"),
    "fire": ("fire", "flicker"),
    "smoke": ("smoke", "rise"),
    "light": ("light", "flicker"),
    "product": ("center", "bob"),
    "background": ("background", "shimmer"),
    "snow": ("none", "fall"),
    "rain": ("none", "fall"),
    "particles": ("none", "fall"),
}

# words in a motion's action that pick another kind (first match wins)
ACTION_WORDS: tuple[tuple[str, str], ...] = (
    ("flow", "flow"), ("stream", "flow"), ("pour", "flow"), ("cascade", "flow"), ("rush", "flow"),
    ("ripple", "ripple"), ("wave hello", "sway"), ("waves", "ripple"), ("lap", "ripple"),
    ("shimmer", "shimmer"), ("sparkle", "shimmer"), ("glisten", "shimmer"),
    ("drift", "drift"), ("float", "drift"), ("roll", "drift"), ("slide", "drift"), ("glide", "drift"),
    ("rise", "rise"), ("billow", "rise"), ("curl", "rise"),
    ("flicker", "flicker"), ("glow", "flicker"), ("twinkle", "flicker"), ("blaze", "flicker"),
    ("pulse", "pulse"), ("breath", "breathe"),
    ("flutter", "flutter"), ("ruffle", "flutter"), ("rustle", "flutter"), ("tremble", "flutter"),
    ("wag", "wag"), ("swish", "wag"), ("flick", "wag"),
    ("twitch", "twitch"), ("perk", "twitch"),
    ("flap", "flap"), ("beat", "flap"),
    ("sway", "sway"), ("swing", "sway"), ("blow", "sway"), ("bend", "sway"), ("wave", "sway"),
    ("nod", "bob"), ("tilt", "bob"), ("turn", "bob"), ("look", "bob"), ("bob", "bob"),
    ("blink", "bob"), ("smile", "bob"),
)

PARTICLE_WORDS: tuple[tuple[str, str], ...] = (
    ("snow", "snow"), ("rain", "rain"), ("drizzle", "rain"), ("dust", "dust"), ("mote", "dust"),
    ("particle", "dust"), ("sparkle", "dust"), ("ember", "dust"), ("petal", "dust"), ("confetti", "dust"),
    ("pollen", "dust"), ("firefl", "dust"), ("leaves falling", "dust"),
)
FOG_WORDS = ("fog", "mist", "haze")
WIND_WORDS = ("wind", "breeze", "gust")


def motion_kind(m: Motion) -> str:
    """The displacement kind for a motion: from its action's words, else the subject's default."""
    action = m.action.lower()
    for word, kind in ACTION_WORDS:
        if word in action:
            if SUBJECTS[m.subject][1] == "fall" or (kind == "flicker" and m.subject not in ("fire", "light")):
                break  # particles always fall; only light sources flicker
            return kind
    return SUBJECTS[m.subject][1]


def _rng(seed: int, *key: str) -> np.random.Generator:
    """A generator that depends on the seed and a stable key (Python's hash() is salted per process)."""
    return np.random.default_rng([seed, *(zlib.crc32(k.encode()) for k in key)])


# --- region heuristics --------------------------------------------------------------------------


class Regions:
    """Soft masks in [0, 1] on the coarse grid of the (preprocessed) source image."""

    def __init__(self, rgb: np.ndarray, grid: int = GRID) -> None:
        h, w = rgb.shape[:2]
        self.gh, self.gw = h // grid + 1, w // grid + 1
        small = np.asarray(
            Image.fromarray(rgb).resize((self.gw, self.gh), Image.Resampling.BOX), np.float32
        ) / 255.0
        r, g, b = small[..., 0], small[..., 1], small[..., 2]
        mx, mn = small.max(axis=2), small.min(axis=2)
        self.lum = 0.299 * r + 0.587 * g + 0.114 * b
        self.sat = np.where(mx > 1e-3, (mx - mn) / np.maximum(mx, 1e-3), 0.0)
        self.green = np.clip((g - np.maximum(r, b)) * 4.0, 0, 1)
        self.blue = np.clip((b - np.maximum(r, g) * 0.9) * 4.0, 0, 1)
        self.warm = np.clip((r - b) * 2.0, 0, 1) * np.clip((self.lum - 0.45) * 3.0, 0, 1)
        # texture: mean gradient magnitude at 1/4 resolution, pooled to the grid
        q = Image.fromarray(rgb).convert("L")
        q = np.asarray(q.resize((max(4, w // 4), max(4, h // 4)), Image.Resampling.BOX), np.float32) / 255.0
        gy, gx = np.gradient(q)
        grad = Image.fromarray(np.hypot(gx, gy).astype(np.float32), "F").resize((self.gw, self.gh), Image.Resampling.BOX)
        tex = np.asarray(grad, np.float32)
        self.texture = np.clip(tex / max(float(np.percentile(tex, 90)), 1e-4), 0, 1)
        self.y = np.linspace(0, 1, self.gh, dtype=np.float32)[:, None] * np.ones((1, self.gw), np.float32)
        self.x = np.ones((self.gh, 1), np.float32) * np.linspace(0, 1, self.gw, dtype=np.float32)[None, :]

    # building blocks
    def _below(self, lo: float, hi: float) -> np.ndarray:
        """0 above y=lo, 1 below y=hi (y from 0 at the top to 1 at the bottom), smooth between."""
        return ease(np.clip((self.y - lo) / (hi - lo), 0, 1))

    def _ellipse(self, cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
        d = ((self.x - cx) / rx) ** 2 + ((self.y - cy) / ry) ** 2
        return np.clip(1.0 - d, 0, 1) ** 0.7

    def mask(self, region: str) -> np.ndarray:
        m = self._raw(region)
        m = _blur(m.astype(np.float32))
        peak = float(m.max())
        return m / peak if peak > 1e-6 else m

    def _raw(self, region: str) -> np.ndarray:
        top = 1.0 - self._below(0.0, 1.0)  # 1 at the top, 0 at the bottom
        sides = np.clip(np.abs(self.x - 0.5) * 2.0, 0, 1)
        if region == "hair":
            # a head-sized area in the upper middle, minus the face core, where the picture is textured
            head = self._ellipse(0.5, 0.3, 0.38, 0.34) * (1.0 - self._below(0.45, 0.7))
            prior = head * (1.0 - 0.8 * self._ellipse(0.5, 0.4, 0.17, 0.2)) + 0.15 * (1.0 - self._below(0.2, 0.5)) * sides
            return _with_evidence(prior, self.texture ** 0.5)
        if region == "face":
            return self._ellipse(0.5, 0.38, 0.24, 0.3)
        if region == "eyes":
            return self._ellipse(0.5, 0.36, 0.2, 0.12)
        if region == "mouth":
            return self._ellipse(0.5, 0.5, 0.16, 0.12)
        if region == "body":
            return self._ellipse(0.5, 0.85, 0.42, 0.45)
        if region == "hands":
            return self._ellipse(0.25, 0.8, 0.2, 0.25) + self._ellipse(0.75, 0.8, 0.2, 0.25)
        if region == "animal":
            return self._ellipse(0.5, 0.55, 0.38, 0.42)
        if region == "ears":
            return self._ellipse(0.35, 0.22, 0.14, 0.12) + self._ellipse(0.65, 0.22, 0.14, 0.12)
        if region == "tail":
            return self._ellipse(0.12, 0.7, 0.16, 0.25) + self._ellipse(0.88, 0.7, 0.16, 0.25)
        if region == "wings":
            return self._ellipse(0.22, 0.45, 0.22, 0.3) + self._ellipse(0.78, 0.45, 0.22, 0.3)
        if region == "water":
            prior = self._below(0.35, 0.7)
            evidence = np.maximum(self.blue, (1.0 - self.sat) * 0.7) * (1.0 - 0.6 * self.texture)
            return _with_evidence(prior, evidence)
        if region == "sky":
            prior = 1.0 - self._below(0.15, 0.6)
            evidence = np.clip((self.lum - 0.35) * 2.0, 0, 1) * (1.0 - self.texture)
            return _with_evidence(prior, evidence)
        if region == "trees":
            prior = 1.0 - self._below(0.55, 0.9)
            return _with_evidence(prior, np.maximum(self.green, 0.6 * self.texture))
        if region == "grass":
            prior = self._below(0.55, 0.8)
            return _with_evidence(prior, np.maximum(self.green, 0.6 * self.texture))
        if region == "flowers":
            prior = 0.4 + 0.6 * self._below(0.2, 0.6)
            return _with_evidence(prior, self.sat * (1.0 - self.green))
        if region == "fire":
            return _with_evidence(np.ones_like(self.y), self.warm)
        if region == "smoke":
            return _with_evidence(0.5 + 0.5 * top, (1.0 - self.sat) * np.clip(self.lum * 1.5, 0, 1))
        if region == "light":
            thr = float(np.percentile(self.lum, 85))
            return np.clip((self.lum - thr) / max(1.0 - thr, 1e-3) + 0.2, 0, 1) * (self.lum >= thr * 0.9)
        if region == "center":
            return self._ellipse(0.5, 0.5, 0.32, 0.38)
        if region == "background":
            return 1.0 - self._ellipse(0.5, 0.5, 0.32, 0.42)
        raise ValueError(f"unknown region {region!r}")


def _with_evidence(prior: np.ndarray, evidence: np.ndarray) -> np.ndarray:
    """prior × evidence, or the prior alone where the image shows no evidence at all."""
    joint = prior * evidence
    if float(joint.max()) < 0.15 * float(prior.max()):
        return prior
    return joint


def _blur(m: np.ndarray, passes: int = 2) -> np.ndarray:
    for _ in range(passes):
        p = np.pad(m, 1, mode="edge")
        m = (p[:-2, 1:-1] + 2 * p[1:-1, 1:-1] + p[2:, 1:-1]) / 4.0
        p = np.pad(m, 1, mode="edge")
        m = (p[1:-1, :-2] + 2 * p[1:-1, 1:-1] + p[1:-1, 2:]) / 4.0
    return m


# --- sampling helpers ---------------------------------------------------------------------------


def _lerp_index(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray]:
    """(i0, f) to interpolate n_in evenly spaced samples onto n_out points spanning the same range."""
    if n_in < 2:
        raise ValueError(f"need at least 2 coarse samples, got {n_in}")
    pos = np.linspace(0, n_in - 1, n_out)
    i0 = np.clip(np.floor(pos).astype(np.int32), 0, n_in - 2)
    return i0, (pos - i0).astype(np.float32)


def _sample_small(field: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Bilinear sample of a small (gh, gw) field at fractional grid positions (u along x, v along y)."""
    gh, gw = field.shape
    u = np.clip(u, 0, gw - 1.0001)
    v = np.clip(v, 0, gh - 1.0001)
    x0, y0 = u.astype(np.int32), v.astype(np.int32)
    fx, fy = u - x0, v - y0
    a, b = field[y0, x0], field[y0, x0 + 1]
    c, d = field[y0 + 1, x0], field[y0 + 1, x0 + 1]
    return (a + (b - a) * fx) * (1 - fy) + (c + (d - c) * fx) * fy


class Sampler:
    """Bilinear resampling of one RGB image at arbitrary source positions, vectorised.

    Pixels are kept planar as int16 and weights in 1/128 px fixed point: the products fit in int16
    ((±255) × 128), and numpy runs this ~4× faster than the same maths in float32 (measured).
    """

    FRAC_BITS = 7
    ONE = 1 << FRAC_BITS

    def __init__(self, rgb: np.ndarray) -> None:
        self.h, self.w = rgb.shape[:2]
        self.planar = np.ascontiguousarray(rgb.transpose(2, 0, 1).reshape(3, -1), dtype=np.int16)

    def __call__(self, sx: np.ndarray, sy: np.ndarray) -> np.ndarray:
        """(3, H*W) int16 colours in 0..255 at source (sx, sy); positions outside clamp to the edge."""
        w, h, one, bits = self.w, self.h, self.ONE, self.FRAC_BITS
        # Clamping just inside the last pixel keeps x0 + 1 in range; all values are ≥ 0, so a shift floors.
        qx = (np.clip(sx, 0.0, w - 1.01) * one).astype(np.int32).ravel()
        qy = (np.clip(sy, 0.0, h - 1.01) * one).astype(np.int32).ravel()
        fx = (qx & (one - 1)).astype(np.int16)
        fy = (qy & (one - 1)).astype(np.int16)
        qy >>= bits
        qy *= w
        qx >>= bits
        idx = qy
        idx += qx
        half = one // 2
        top = self.planar.take(idx, axis=1)
        nxt = self.planar.take(idx + 1, axis=1)
        _lerp(top, nxt, fx, half, bits)
        idx += w
        bottom = self.planar.take(idx, axis=1)
        nxt = self.planar.take(idx + 1, axis=1)
        _lerp(bottom, nxt, fx, half, bits)
        _lerp(top, bottom, fy, half, bits)
        return top


def _lerp(a: np.ndarray, b: np.ndarray, f: np.ndarray, half: int, bits: int) -> None:
    """a += round((b - a) * f / 2**bits), in place, int16 (b is clobbered)."""
    b -= a
    b *= f
    b += half
    b >>= bits
    a += b


# --- the scene: everything precomputed once per clip --------------------------------------------


@dataclass(frozen=True)
class SubjectField:
    subject: str
    kind: str
    mask: np.ndarray  # (gh, gw) in source grid coordinates
    amp: float  # px (or relative, for pulse/flicker)
    freq: float  # Hz
    phase: float
    direction: float  # radians, for drift/flow
    speed: float  # the motion's speed (drift/rise distance per second scales with it)


class Scene:
    """A plan applied to one image: camera path, subject fields, particles; renders frame i."""

    def __init__(self, plan: MotionPlan, rgb: np.ndarray) -> None:
        self.plan = plan
        self.rgb = rgb
        self.h, self.w = rgb.shape[:2]
        self.n = plan.num_frames
        self.fps = plan.fps
        self.duration = (self.n - 1) / self.fps if self.n > 1 else 1.0 / self.fps
        self.scale = min(self.h, self.w) / REF_SIDE
        self.sampler = Sampler(rgb)
        self.cx, self.cy = (self.w - 1) / 2.0, (self.h - 1) / 2.0
        self.xs = np.arange(self.w, dtype=np.float32)[None, :]
        self.ys = np.arange(self.h, dtype=np.float32)[:, None]
        atmosphere = " ".join(plan.atmosphere).lower()
        self.wind = 1.5 if any(w in atmosphere for w in WIND_WORDS) else 1.0
        self._setup_camera()
        self._setup_subjects()
        self._setup_particles(atmosphere)
        self.fog = any(w in atmosphere for w in FOG_WORDS)

    # 1. camera ---------------------------------------------------------------------------------
    def _setup_camera(self) -> None:
        cam = self.plan.camera
        self.move = cam.move
        t = self.duration
        sp = cam.speed
        self.zoom_total = min(ZOOM_PER_S * sp * t, MAX_ZOOM - 1.0)
        travel_rate = ORBIT_PER_S if self.move.startswith("orbit") else PAN_PER_S
        self.travel = min(travel_rate * sp * t, MAX_TRAVEL)
        keystone = ORBIT_KEYSTONE * min(sp, 3.0) if self.move.startswith("orbit") else 0.0
        self.keystone = keystone
        # pans/tilts/orbits: a constant zoom that keeps the borders out of frame all clip long
        if self.move in ("pan_left", "pan_right", "tilt_up", "tilt_down", "orbit_left", "orbit_right"):
            self.z0 = 1.0 / (1.0 - self.travel) / (1.0 - keystone / 2.0)
        else:
            self.z0 = 1.0
        if self.zoom_total * sp != 0 and ZOOM_PER_S * sp * t > MAX_ZOOM - 1.0:
            log.info("zoom of %.2f× capped at %.2f×", 1 + ZOOM_PER_S * sp * t, MAX_ZOOM)

    def camera(self, x: np.ndarray, y: np.ndarray, p: float) -> tuple[np.ndarray, np.ndarray]:
        """Source positions of output positions (x, y) at clip progress p ∈ [0, 1]."""
        e = float(ease(p))
        mv, cx, cy = self.move, self.cx, self.cy
        if mv in ("zoom_in", "zoom_out", "dolly_in", "dolly_out"):
            z = 1.0 + self.zoom_total * (e if mv.endswith("_in") else 1.0 - e)
            if mv.startswith("dolly"):
                # parallax: the edges scale faster than the centre (nearer things grow faster)
                r2 = ((x - cx) / cx) ** 2 * 0.5 + ((y - cy) / cy) ** 2 * 0.5
                z = z * (1.0 + DOLLY_PARALLAX * (z - 1.0) * r2)
            return cx + (x - cx) / z, cy + (y - cy) / z
        z0 = self.z0
        off = (e - 0.5) * self.travel
        if mv in ("pan_left", "pan_right", "orbit_left", "orbit_right"):
            # camera moves right → the scene slides left in the frame (source window moves right)
            sign = 1.0 if mv.endswith("right") else -1.0
            u = cx + (x - cx) / z0 + sign * off * (self.w - 1)
            if mv.startswith("orbit"):
                # perspective: one side of the scene grows taller while the other shrinks
                zy = z0 * (1.0 + sign * self.keystone * (e - 0.5) * (x - cx) / cx)
                return u, cy + (y - cy) / zy
            return u, cy + (y - cy) / z0
        if mv in ("tilt_up", "tilt_down"):
            # camera tilts up → the scene slides down in the frame
            sign = -1.0 if mv == "tilt_up" else 1.0
            return cx + (x - cx) / z0, cy + (y - cy) / z0 + sign * off * (self.h - 1)
        return x + 0.0 * y, y + 0.0 * x  # static

    # 2. subjects -------------------------------------------------------------------------------
    def _setup_subjects(self) -> None:
        self.regions = Regions(self.rgb)
        self.fields: list[SubjectField] = []
        self.particle_kinds: list[tuple[str, float, float]] = []  # (kind, intensity, speed)
        for m in self.plan.motions:
            kind = motion_kind(m)
            if kind == "fall":
                self.particle_kinds.append(
                    ({"snow": "snow", "rain": "rain"}.get(m.subject, "dust"), m.intensity, m.speed)
                )
                continue
            region = SUBJECTS[m.subject][0]
            k = KINDS[kind]
            rng = _rng(self.plan.seed, m.subject, kind)
            amp = k.amp * m.intensity * (1.0 if kind in ("pulse", "flicker") else self.scale)
            if kind in ("sway", "flutter"):
                amp *= self.wind
            self.fields.append(
                SubjectField(
                    subject=m.subject, kind=kind, mask=self.regions.mask(region).astype(np.float32),
                    amp=amp, freq=k.freq * m.speed, phase=float(rng.uniform(0, 2 * math.pi)),
                    direction=float(rng.uniform(-0.4, 0.4)) + (math.pi if rng.random() < 0.5 else 0.0),
                    speed=m.speed,
                )
            )
        gh, gw = self.regions.gh, self.regions.gw
        # coarse output grid (same spacing as the source grid) and its upsampling matrices
        self.gx = np.linspace(0, self.w - 1, gw, dtype=np.float32)[None, :] * np.ones((gh, 1), np.float32)
        self.gy = np.linspace(0, self.h - 1, gh, dtype=np.float32)[:, None] * np.ones((1, gw), np.float32)
        self.up_rows = _lerp_index(self.h, gh)
        self.up_cols = _lerp_index(self.w, gw)

    def _fields_at(self, tau: float, p: float) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
        """Coarse (dx, dy, gain) for time tau; None where no motion contributes."""
        if not self.fields:
            return None, None, None
        u, v = self.camera(self.gx, self.gy, p)  # where each coarse output point looks in the source
        gu = u * ((self.regions.gw - 1) / max(self.w - 1, 1))
        gv = v * ((self.regions.gh - 1) / max(self.h - 1, 1))
        dx = np.zeros_like(self.gx)
        dy = np.zeros_like(self.gx)
        gain = None
        xr, yr = u / max(self.w, 1), v / max(self.h, 1)  # relative source position
        tw = 2 * math.pi
        for f in self.fields:
            m = _sample_small(f.mask, gu, gv)
            a, ph, w = f.amp, f.phase, tw * f.freq * tau
            if f.kind in ("sway", "flutter", "shimmer"):
                k = {"sway": 1.2, "flutter": 3.0, "shimmer": 9.0}[f.kind]
                wave = np.sin(w + ph - tw * k * yr * 0.5 + tw * 0.3 * xr)
                dx += a * m * wave
                dy += 0.25 * a * m * np.sin(2 * w + ph + tw * k * xr * 0.5)
            elif f.kind == "ripple":
                d1 = np.sin(w + ph + tw * (6.0 * xr + 9.0 * yr))
                d2 = np.sin(1.37 * w + 2 * ph + tw * (-5.0 * xr + 7.0 * yr))
                dx += a * m * (0.6 * d1 + 0.4 * d2)
                dy += a * m * (0.5 * d2 - 0.3 * d1)
            elif f.kind == "flow":
                c, s = math.cos(f.direction), math.sin(f.direction)
                along = xr * c + yr * s * 0.3
                wave = np.sin(tw * 8.0 * along - w + ph)
                dx += a * m * (0.5 * c * wave)
                dy += a * m * (wave * 0.6 + 0.3 * np.sin(tw * 5.0 * along - 1.3 * w))
            elif f.kind in ("drift", "rise"):
                dist = a * f.speed * tau
                turb = 0.15 * a * np.sin(tw * 0.3 * tau * 2 + ph + tw * 2.0 * xr)
                if f.kind == "drift":
                    # the source moves against the drift direction so the content moves with it
                    dx -= m * (dist * math.cos(f.direction) + turb)
                    dy -= m * (0.2 * dist * math.sin(f.direction))
                else:
                    dy += m * (dist + turb)
                    dx -= m * 0.3 * turb
            elif f.kind in ("breathe", "bob"):
                dy += a * m * np.sin(w + ph)
                if f.kind == "bob":
                    dx += 0.6 * a * m * np.sin(0.71 * w + 2 * ph)
            elif f.kind == "wag":
                dx += a * m * np.sin(w + ph + tw * 0.5 * yr)
            elif f.kind == "twitch":
                dy += a * m * np.sin(w + ph) ** 8
            elif f.kind == "flap":
                dy += a * m * np.sin(w + ph)
            elif f.kind == "pulse":
                s = a * math.sin(w + ph)
                dx -= m * s * (u - self.cx)
                dy -= m * s * (v - self.cy)
            elif f.kind == "flicker":
                n = 0.55 * math.sin(w + ph) + 0.3 * math.sin(2.71 * w + 2 * ph) + 0.15 * math.sin(6.13 * w + 3 * ph)
                g = 1.0 + a * n * m
                gain = g if gain is None else gain * g
                if f.subject == "fire":
                    dy += 2.0 * self.scale * m * np.sin(3.1 * w + tw * 4 * xr + ph) * f.amp / KINDS["flicker"].amp
        return dx, dy, gain

    def _up(self, coarse: np.ndarray) -> np.ndarray:
        """Coarse grid (gh, gw) → full (H, W), separable linear interpolation (gathers, no BLAS threads)."""
        i0, f = self.up_rows
        rows = coarse.take(i0, axis=0)
        rows += (coarse.take(i0 + 1, axis=0) - rows) * f[:, None]
        j0, g = self.up_cols
        out = rows.take(j0, axis=1)
        nxt = rows.take(j0 + 1, axis=1)
        nxt -= out
        nxt *= g
        out += nxt
        return out

    # 4. particles ------------------------------------------------------------------------------
    def _setup_particles(self, atmosphere: str) -> None:
        kinds = list(self.particle_kinds)
        for word, kind in PARTICLE_WORDS:
            if word in atmosphere and all(k != kind for k, _, _ in kinds):
                kinds.append((kind, 0.5, 1.0))
        self.layers = [ParticleLayer(kind, inten, sp, self.w, self.h, self.scale, _rng(self.plan.seed, "particles", kind))
                       for kind, inten, sp in kinds]

    # frame -------------------------------------------------------------------------------------
    def frame(self, i: int) -> np.ndarray:
        """Frame i as (H, W, 3) uint8."""
        p = i / (self.n - 1) if self.n > 1 else 0.0
        tau = i / self.fps
        sx, sy = self.camera(self.xs, self.ys, p)
        dx, dy, gain = self._fields_at(tau, p)
        if dx is not None:
            sx = sx + self._up(dx)
            sy = sy + self._up(dy)
        sx = np.broadcast_to(sx, (self.h, self.w))
        sy = np.broadcast_to(sy, (self.h, self.w))
        out = self.sampler(sx, sy)  # (3, H*W) int16 in 0..255
        if gain is not None:
            # brightness in 1/64 fixed point: 255 × 2.0 × 64 still fits in int16
            g = (np.clip(self._up(gain), 0.25, 1.95) * 64.0 + 0.5).astype(np.int16).ravel()
            out *= g
            out >>= 6
            np.minimum(out, 255, out=out)
        if self.fog:
            self._fog(out, tau)
        for layer in self.layers:
            layer.draw(out, tau)
        frame = np.empty((self.h, self.w, 3), np.uint8)
        np.copyto(frame, out.reshape(3, self.h, self.w).transpose(1, 2, 0), casting="unsafe")
        return frame

    def _fog(self, out: np.ndarray, tau: float) -> None:
        xr = np.linspace(0, 1, self.regions.gw, dtype=np.float32)[None, :]
        yr = np.linspace(0, 1, self.regions.gh, dtype=np.float32)[:, None]
        s = 0.06 * tau
        haze = (
            0.5 + 0.25 * np.sin(2 * math.pi * (1.3 * xr - s) + 1.7 * np.sin(2 * math.pi * yr))
            + 0.25 * np.sin(2 * math.pi * (2.1 * xr + 0.8 * yr - 1.6 * s))
        ) * (0.4 + 0.6 * yr)
        alpha = (0.28 * haze).astype(np.float32)
        a = (self._up(alpha) * 128.0 + 0.5).astype(np.int16).ravel()  # ≤ 0.3 × 128; × 255 fits int16
        d = 235 - out
        d *= a
        d >>= 7
        out += d


class ParticleLayer:
    """Falling snow, rain streaks or drifting dust, looping vertically, drawn over the frame."""

    def __init__(self, kind: str, intensity: float, speed: float, w: int, h: int, scale: float,
                 rng: np.random.Generator) -> None:
        self.kind, self.w, self.h = kind, w, h
        base = {"snow": 500, "rain": 350, "dust": 140}[kind]
        n = max(8, int(base * (0.25 + 1.5 * intensity) * (w * h) / (832 * 480)))
        self.margin = 24 * scale
        self.x0 = rng.uniform(0, w, n).astype(np.float32)
        self.y0 = rng.uniform(-self.margin, h + self.margin, n).astype(np.float32)
        self.depth = rng.uniform(0.3, 1.0, n).astype(np.float32)
        self.phase = rng.uniform(0, 2 * math.pi, n).astype(np.float32)
        fall = {"snow": 55.0, "rain": 700.0, "dust": 10.0}[kind] * scale * speed
        self.vy = fall * self.depth
        self.vx = {"snow": 8.0, "rain": -90.0, "dust": 6.0}[kind] * scale * speed * self.depth
        self.sway = {"snow": 6.0, "rain": 0.0, "dust": 10.0}[kind] * scale
        self.freq = {"snow": 0.5, "rain": 0.0, "dust": 0.25}[kind] * speed
        self.opacity = {"snow": 0.9, "rain": 0.5, "dust": 0.6}[kind] * (0.5 + 0.5 * min(1.0, intensity * 2))
        self.color = {"snow": 250.0, "rain": 215.0, "dust": 245.0}[kind]
        # sprite offsets and weights per particle size class
        if kind == "rain":
            length = max(3, int(round(16 * scale)))
            dxr = self.vx.mean() / max(float(self.vy.mean()), 1e-3)
            t = np.linspace(0, 1, length)
            self.offsets = [(np.round(t * length * dxr).astype(np.int32), np.round(t * length).astype(np.int32) - length,
                             np.linspace(0.3, 1.0, length).astype(np.float32))]
            self.size_class = np.zeros(n, np.int32)
        else:
            self.offsets = []
            radii = [0.8, 1.4, 2.2] if kind == "snow" else [0.7, 1.1, 1.6]
            for r in radii:
                r = r * max(scale, 0.5)
                k = int(math.ceil(r * 1.8))
                oy, ox = np.mgrid[-k : k + 1, -k : k + 1]
                wgt = np.exp(-(ox**2 + oy**2) / (2 * (r * 0.7) ** 2)).ravel().astype(np.float32)
                keep = wgt > 0.05
                self.offsets.append((ox.ravel()[keep], oy.ravel()[keep], wgt[keep]))
            self.size_class = np.minimum((self.depth - 0.3) / 0.7 * 3, 2).astype(np.int32)

    def draw(self, out: np.ndarray, tau: float) -> None:
        span = self.h + 2 * self.margin
        y = (self.y0 + self.vy * tau + self.margin) % span - self.margin
        x = (self.x0 + self.vx * tau + self.sway * np.sin(2 * math.pi * self.freq * tau + self.phase)) % self.w
        alpha = np.zeros(self.h * self.w, np.float32)
        xi, yi = np.round(x).astype(np.int32), np.round(y).astype(np.int32)
        op = self.opacity * self.depth
        if self.kind == "dust":
            op = op * (0.6 + 0.4 * np.sin(2 * math.pi * 0.7 * tau + self.phase))
        for c, (ox, oy, wgt) in enumerate(self.offsets):
            sel = self.size_class == c
            if not sel.any():
                continue
            px = xi[sel][:, None] + ox[None, :]
            py = yi[sel][:, None] + oy[None, :]
            val = op[sel][:, None] * wgt[None, :]
            ok = (px >= 0) & (px < self.w) & (py >= 0) & (py < self.h)
            np.add.at(alpha, (py[ok] * self.w + px[ok]), val[ok])
        np.minimum(alpha, 1.0, out=alpha)
        hit = np.flatnonzero(alpha)
        if hit.size:
            a = alpha[hit]
            sub = out[:, hit].astype(np.float32)
            out[:, hit] = (sub + a * (self.color - sub) + 0.5).astype(np.int16)


# --- the backend --------------------------------------------------------------------------------


class PreviewBackend:
    """Backend `preview`: CPU warping renderer; no weights, deterministic, ~1 s for 49 frames at 480p."""

    name = "preview"
    model_id = RENDERER_VERSION

    def __init__(self, *, crf: int = 20, preset: str = "veryfast", max_area: int = MAX_AREA,
                 threads: int | None = None) -> None:
        self.crf = crf
        self.preset = preset
        self.max_area = max_area
        # numpy releases the GIL in the heavy loops, so two render threads use two cores
        self.threads = max(1, threads if threads is not None else min(2, os.cpu_count() or 1))

    def load(self, cfg: Any = None) -> None:
        """Nothing to load."""

    def render(self, plan: MotionPlan, image: Image.Image) -> np.ndarray:
        """All frames as a (T, H, W, 3) uint8 array, without encoding (tests and benchmarks)."""
        scene = Scene(plan, np.asarray(preprocess(image, max_area=self.max_area)))
        return np.stack([scene.frame(i) for i in range(scene.n)])

    def generate(
        self,
        plan: MotionPlan,
        image: Image.Image,
        on_event: EventListener = ignore,
        cancel: CancelToken | None = None,
        *,
        out_dir: str | os.PathLike[str] | None = None,
    ) -> GenerationResult:
        from generation.export import default_out_dir, export_video

        cancel = cancel or CancelToken()
        timings: dict[str, float] = {}
        t_start = time.perf_counter()
        # 1. Check inputs
        if not isinstance(image, Image.Image):
            raise TypeError(f"image must be a PIL image, got {type(image).__name__}")
        if cancel.cancelled:
            raise GenerationCancelled("cancelled before rendering")
        # 2. Preprocess the image
        t = time.perf_counter()
        src = preprocess(image, max_area=self.max_area)
        rgb = np.asarray(src)
        timings["preprocess_s"] = time.perf_counter() - t
        # 3. Build the scene (regions, camera path, particles)
        t = time.perf_counter()
        scene = Scene(plan, rgb)
        timings["setup_s"] = time.perf_counter() - t
        # 4. Render frame by frame, streamed into the encoder (ffmpeg encodes while we warp)
        render_time = [0.0]
        time_lock = threading.Lock()
        total = scene.n

        def frames() -> Iterator[np.ndarray]:
            """Frames in order, rendered `threads` ahead; cancel is checked before each frame starts."""
            from concurrent.futures import Future, ThreadPoolExecutor

            t0 = time.perf_counter()

            def timed(i: int) -> np.ndarray:
                tf = time.perf_counter()
                frame = scene.frame(i)
                with time_lock:
                    render_time[0] += time.perf_counter() - tf
                return frame

            with ThreadPoolExecutor(self.threads, thread_name_prefix="preview-render") as pool:
                pending: deque[Future[np.ndarray]] = deque()
                try:
                    for i in range(total):
                        while len(pending) < self.threads and i + len(pending) < total:
                            if cancel.cancelled:
                                raise GenerationCancelled(f"cancelled at frame {i}/{total}")
                            pending.append(pool.submit(timed, i + len(pending)))
                        frame = pending.popleft().result()
                        elapsed = time.perf_counter() - t0
                        eta = elapsed / (i + 1) * (total - i - 1)
                        on_event(Progress(stage="rendering", step=i + 1, total=total, eta_s=eta, elapsed_s=elapsed))
                        yield frame
                finally:
                    for f in pending:
                        f.cancel()
            on_event(Progress(stage="exporting", step=0, total=1, elapsed_s=time.perf_counter() - t0))

        # 5. Export (H.264 + thumbnail + plan metadata), atomically
        t = time.perf_counter()
        metadata = {
            "plan": plan.to_dict(),
            "seed": plan.seed,
            "backend": self.name,
            "model_id": self.model_id,
            "image_sha256": hashlib.sha256(rgb.tobytes()).hexdigest(),
            "label": "preview",
        }
        video = export_video(
            frames(), out_dir if out_dir is not None else default_out_dir(), fps=plan.fps,
            metadata=metadata, crf=self.crf, preset=self.preset,
        )
        wall = time.perf_counter() - t
        timings["render_s"] = render_time[0]  # summed over render threads
        timings["render_encode_wall_s"] = wall  # rendering streamed into the encoder
        timings["total_s"] = time.perf_counter() - t_start
        on_event(Progress(stage="exporting", step=1, total=1, elapsed_s=wall))
        # 6. Return everything needed to reproduce it
        return GenerationResult(
            video_path=video.video_path, thumbnail_path=video.thumbnail_path,
            width=video.width, height=video.height, num_frames=video.num_frames, fps=video.fps,
            backend=self.name, model_id=self.model_id, timings=timings,
            params={
                "seed": plan.seed, "renderer": RENDERER_VERSION, "crf": self.crf, "preset": self.preset,
                "sha256": video.sha256, "image_sha256": metadata["image_sha256"],
                "motions": [{"subject": f.subject, "kind": f.kind, "region_coverage": round(float(f.mask.mean()), 3)}
                            for f in scene.fields],
                "particles": [layer.kind for layer in scene.layers],
                "camera": {"move": scene.move, "zoom_total": round(scene.zoom_total, 4),
                           "travel": round(scene.travel, 4), "z0": round(scene.z0, 4)},
            },
        )
