"""What moves where in a preview: the motion table (subject → region and kind) and the region heuristics.

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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    from agent.plan import Motion

GRID = 16  # px between the coarse-grid points where displacement fields are computed


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


# --- region heuristics --------------------------------------------------------------------------


class Regions:
    """Soft masks in [0, 1] on the coarse grid of the (preprocessed) source image."""

    FEATURES = ("lum", "sat", "green", "blue", "warm", "texture")

    def __init__(self, rgb: np.ndarray, grid: int = GRID) -> None:
        h, w = rgb.shape[:2]
        self.rgb = rgb
        self.gh, self.gw = h // grid + 1, w // grid + 1
        self.y = np.linspace(0, 1, self.gh, dtype=np.float32)[:, None] * np.ones((1, self.gw), np.float32)
        self.x = np.ones((self.gh, 1), np.float32) * np.linspace(0, 1, self.gw, dtype=np.float32)[None, :]

    def __getattr__(self, name: str) -> Any:
        """The picture's features (FEATURES), measured on first use: a clip where nothing but the camera moves
        never needs them."""
        if name not in Regions.FEATURES:
            raise AttributeError(name)
        self._measure()
        return self.__dict__[name]

    def _measure(self) -> None:
        rgb = self.rgb
        h, w = rgb.shape[:2]
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
