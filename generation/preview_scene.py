"""A plan applied to one photo: camera path, subject displacement fields and particles, frame by frame.

How a frame is made (all numpy, float32):
1. Camera: every output pixel maps to a source position (zoom, pan, tilt, dolly with parallax,
   orbit with a slight perspective), eased in and out; pans and orbits zoom in just enough that no
   border ever shows. `camera.speed` scales the total displacement.
2. Subjects: each motion adds a smooth, local displacement field (sway, flutter, ripple, flow, drift,
   rise, breathe, bob, wag, twitch, flap, pulse) or a brightness flicker, weighted by a soft region
   mask (`generation.preview_regions`). `speed` scales the temporal frequency, `intensity` the
   amplitude. Fields are computed on a coarse grid (every 16 px) and upsampled, so they cost almost nothing.
3. One bilinear resample of the photo at the summed source positions.
4. Particles (snow, rain, dust) are drawn on top; a fog layer drifts over the frame if asked.

Everything is deterministic for a given plan, image and seed.
"""

from __future__ import annotations

import logging
import math
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from generation.preview_regions import (
    FOG_WORDS,
    KINDS,
    PARTICLE_WORDS,
    SUBJECTS,
    WIND_WORDS,
    Regions,
    ease,
    motion_kind,
)

if TYPE_CHECKING:
    from agent.plan import MotionPlan

log = logging.getLogger(__name__)

REF_SIDE = 480.0  # the motion table's amplitudes (KINDS) are in px at a 480-px short side and scale with it

# --- camera: rates per second at speed 1.0 -----------------------------------------------------
ZOOM_PER_S = 0.045  # scale change per second
PAN_PER_S = 0.035  # fraction of the frame width (height for tilt) per second
ORBIT_PER_S = 0.03
DOLLY_PARALLAX = 0.6  # edges scale up to 1.6× as fast as the centre
ORBIT_KEYSTONE = 0.06  # vertical scale difference between the near and far side
MAX_TRAVEL = 0.35  # cap on the total pan/tilt/orbit travel (fraction of the frame)
MAX_ZOOM = 1.8


def _rng(seed: int, *key: str) -> np.random.Generator:
    """A generator that depends on the seed and a stable key (Python's hash() is salted per process)."""
    return np.random.default_rng([seed, *(zlib.crc32(k.encode()) for k in key)])



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


    def separable(self, sx: np.ndarray, sy: np.ndarray) -> np.ndarray:
        """The same colours as ``self(sx, sy)`` when the source column depends on the output column only and the
        source row on the output row only (zoom, pan, tilt, a still camera, no subject motion): ``sx`` (W,),
        ``sy`` (H,). Each source row is interpolated along x once, then the rows are blended along y: half the
        work of the general path, on contiguous rows, with the same integer arithmetic (bit-identical)."""
        w, h, one, bits = self.w, self.h, self.ONE, self.FRAC_BITS
        if sx.size != w or sy.size != h:
            raise ValueError(f"separable sampling takes a row of {w} x and a column of {h} y positions, "
                             f"got shapes {sx.shape} and {sy.shape}")
        qx = (np.clip(sx, 0.0, w - 1.01) * one).astype(np.int32).ravel()
        qy = (np.clip(sy, 0.0, h - 1.01) * one).astype(np.int32).ravel()
        fx = (qx & (one - 1)).astype(np.int16)
        fy = (qy & (one - 1)).astype(np.int16)[:, None]
        x0 = qx >> bits
        y0 = qy >> bits
        lo, hi = int(y0.min()), int(y0.max()) + 2  # the source rows any output row reads
        rows = self.planar.reshape(3, h, w)[:, lo:hi]
        half = one // 2
        along_x = rows.take(x0, axis=2)  # (3, rows, W out)
        _lerp(along_x, rows.take(x0 + 1, axis=2), fx, half, bits)
        y0 -= lo
        top = along_x.take(y0, axis=1)  # (3, H out, W out)
        _lerp(top, along_x.take(y0 + 1, axis=1), fy, half, bits)
        return top.reshape(3, -1)


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

    def __init__(self, plan: MotionPlan, rgb: np.ndarray, end_rgb: np.ndarray | None = None, *,
                 rest_start: bool = False) -> None:
        """`end_rgb`: the end picture at the clip's size (#12 §1). `rest_start`: frame 0 is `rgb` itself (a chained
        segment continuing from the previous one's last frame): the camera path and the subject fields are taken
        relative to their start."""
        self.plan = plan
        self.rest_start = rest_start
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
        # end frame and loop (#12 §1): a loop plays periodic motion paths (the last frame is the first);
        # an end picture is dissolved in along the same camera and motion path, arriving unmoved at the end
        self.loop = plan.loop
        if end_rgb is not None and end_rgb.shape != rgb.shape:
            raise ValueError(f"end picture is {end_rgb.shape[1]}×{end_rgb.shape[0]}, the clip {self.w}×{self.h}: "
                             "size it with generation.end_frame.fit_to first")
        self.end_sampler = Sampler(end_rgb) if end_rgb is not None and not plan.loop else None
        self._rest: tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None] = (None, None, None)
        if rest_start:
            self.xs, self.ys = self._undo_start(self.xs, self.ys)
            self.gx, self.gy = self._undo_start(self.gx, self.gy)
            self._rest = self._fields_at(0.0, 0.0)

    def _undo_start(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Positions whose camera mapping at p = 0 is (x, y) itself, so frame 0 shows the picture unmoved (the
        affine part of the camera; dolly parallax and orbit keystone are 0 or small there)."""
        mv, cx, cy = self.move, self.cx, self.cy
        if mv in ("zoom_in", "zoom_out", "dolly_in", "dolly_out"):
            z = 1.0 + (self.zoom_total if mv.endswith("_out") else 0.0)
            return cx + (x - cx) * z, cy + (y - cy) * z
        off = -0.5 * self.travel
        z0 = self.z0
        if mv in ("pan_left", "pan_right", "orbit_left", "orbit_right"):
            sign = 1.0 if mv.endswith("right") else -1.0
            return cx + (x - cx - sign * off * (self.w - 1)) * z0, cy + (y - cy) * z0
        if mv in ("tilt_up", "tilt_down"):
            sign = -1.0 if mv == "tilt_up" else 1.0
            return cx + (x - cx) * z0, cy + (y - cy - sign * off * (self.h - 1)) * z0
        return x, y

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
        return x + 0.0, y + 0.0  # static (a row of x and a column of y stay separable)

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
        s = float(ease(p)) if self.loop else 0.0  # loop: how far the motion has blended into its next period
        pc = 0.5 - 0.5 * math.cos(2 * math.pi * p) if self.loop else p  # loop: the camera goes out and back
        sx, sy = self.camera(self.xs, self.ys, pc)
        dx, dy, gain = self._fields_at(tau, pc)
        if self.loop and dx is not None:
            dx, dy, gain = _blend_fields((dx, dy, gain), self._fields_at(tau - self.duration, pc), s)
        dx0, dy0, gain0 = self._rest  # a chained segment: the fields relative to their start
        if dx is not None and dx0 is not None:
            dx, dy = dx - dx0, dy - dy0
        if gain is not None and gain0 is not None:
            gain = gain / gain0
        if dx is None and sx.shape == (1, self.w) and sy.shape == (self.h, 1):  # a separable camera, nothing moves
            out = self.sampler.separable(sx, sy)  # (3, H*W) int16 in 0..255
        else:
            if dx is not None:
                sx = sx + self._up(dx)
                sy = sy + self._up(dy)
            sx = np.broadcast_to(sx, (self.h, self.w))
            sy = np.broadcast_to(sy, (self.h, self.w))
            out = self.sampler(sx, sy)  # (3, H*W) int16 in 0..255
        if self.end_sampler is not None:
            out = self._toward_end(out, p, dx, dy)
        if gain is not None:
            # brightness in 1/64 fixed point: 255 × 2.0 × 64 still fits in int16
            g = (np.clip(self._up(gain), 0.25, 1.95) * 64.0 + 0.5).astype(np.int16).ravel()
            out *= g
            out >>= 6
            np.minimum(out, 255, out=out)
        if self.fog:
            self._fog(out, tau, s)
        for layer in self.layers:
            if s < 1.0:
                layer.draw(out, tau, 1.0 - s)
            if s > 0.0:  # loop: the particles of the next period fade in where the first ones were
                layer.draw(out, tau - self.duration, s)
        frame = np.empty((self.h, self.w, 3), np.uint8)
        np.copyto(frame, out.reshape(3, self.h, self.w).transpose(1, 2, 0), casting="unsafe")
        return frame

    def _toward_end(self, out: np.ndarray, p: float, dx: np.ndarray | None, dy: np.ndarray | None) -> np.ndarray:
        """Dissolve toward the end picture along the motion path: the end picture moves with the same camera
        (offset so it is unmoved at p = 1) and the same subject motion (fading out by the end), and its weight
        rises smoothly from 0 to 1, so the last frame is the end picture."""
        cx, cy = self.camera(self.xs, self.ys, p)
        ex, ey = self.camera(self.xs, self.ys, 1.0)
        sx, sy = cx - (ex - self.xs), cy - (ey - self.ys)
        if dx is not None and p < 1.0:
            sx = sx + (1.0 - p) * self._up(dx)
            sy = sy + (1.0 - p) * self._up(dy)
        end = self.end_sampler(np.broadcast_to(sx, (self.h, self.w)), np.broadcast_to(sy, (self.h, self.w)))
        weight = int(round(float(ease(p)) * 128))
        _lerp(out, end, np.int16(weight), 64, 7)
        return out

    def _fog(self, out: np.ndarray, tau: float, blend: float = 0.0) -> None:
        xr = np.linspace(0, 1, self.regions.gw, dtype=np.float32)[None, :]
        yr = np.linspace(0, 1, self.regions.gh, dtype=np.float32)[:, None]

        def haze_at(t: float) -> np.ndarray:
            s = 0.06 * t
            return (
                0.5 + 0.25 * np.sin(2 * math.pi * (1.3 * xr - s) + 1.7 * np.sin(2 * math.pi * yr))
                + 0.25 * np.sin(2 * math.pi * (2.1 * xr + 0.8 * yr - 1.6 * s))
            ) * (0.4 + 0.6 * yr)

        haze = haze_at(tau) if blend == 0.0 else (1 - blend) * haze_at(tau) + blend * haze_at(tau - self.duration)
        alpha = (0.28 * haze).astype(np.float32)
        a = (self._up(alpha) * 128.0 + 0.5).astype(np.int16).ravel()  # ≤ 0.3 × 128; × 255 fits int16
        d = 235 - out
        d *= a
        d >>= 7
        out += d


def _blend_fields(a: tuple[np.ndarray, np.ndarray, np.ndarray | None], b: tuple[Any, Any, Any],
                  s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(1 - s)·a + s·b for the coarse (dx, dy, gain) of two times: a loop's motion at t and one period earlier,
    equal at both ends of the clip (s = 0 at the start, 1 at the end)."""
    dx = (1.0 - s) * a[0] + s * b[0]
    dy = (1.0 - s) * a[1] + s * b[1]
    gain = None if a[2] is None else (1.0 - s) * a[2] + s * b[2]
    return dx, dy, gain


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

    def draw(self, out: np.ndarray, tau: float, weight: float = 1.0) -> None:
        span = self.h + 2 * self.margin
        y = (self.y0 + self.vy * tau + self.margin) % span - self.margin
        x = (self.x0 + self.vx * tau + self.sway * np.sin(2 * math.pi * self.freq * tau + self.phase)) % self.w
        alpha = np.zeros(self.h * self.w, np.float32)
        xi, yi = np.round(x).astype(np.int32), np.round(y).astype(np.int32)
        op = self.opacity * self.depth * weight
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
