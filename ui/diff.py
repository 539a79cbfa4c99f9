"""A compact, human-readable difference between two plans: "hair speed 1.0 → 0.6, seed kept 1234"."""

from __future__ import annotations

from agent.plan import MotionPlan


def _n(x: float) -> str:
    return f"{x:.2f}".rstrip("0").rstrip(".") if x != int(x) else f"{x:.1f}"


def plan_diff(old: MotionPlan, new: MotionPlan, *, mention_seed: bool = True) -> str:
    """What changed from `old` to `new`, in one short line ("" when nothing did)."""
    parts: list[str] = []
    if old.template != new.template:
        parts.append(f"template {old.template} → {new.template}")
    old_m = {m.subject: m for m in old.motions}
    new_m = {m.subject: m for m in new.motions}
    for subject, m in new_m.items():
        before = old_m.get(subject)
        if before is None:
            parts.append(f"+{subject} {m.action} ({_n(m.speed)}×)")
            continue
        if before.action != m.action:
            parts.append(f"{subject} {before.action!r} → {m.action!r}")
        if before.speed != m.speed:
            parts.append(f"{subject} speed {_n(before.speed)} → {_n(m.speed)}")
        if before.intensity != m.intensity:
            parts.append(f"{subject} intensity {_n(before.intensity)} → {_n(m.intensity)}")
    for subject in old_m:
        if subject not in new_m:
            parts.append(f"−{subject}")
    if old.camera.move != new.camera.move:
        parts.append(f"camera {old.camera.move} → {new.camera.move}")
    if old.camera.speed != new.camera.speed:
        parts.append(f"camera speed {_n(old.camera.speed)} → {_n(new.camera.speed)}")
    added = [a for a in new.atmosphere if a not in old.atmosphere]
    removed = [a for a in old.atmosphere if a not in new.atmosphere]
    parts += [f"+{a}" for a in added] + [f"−{a}" for a in removed]
    if old.duration_s != new.duration_s:
        parts.append(f"duration {_n(old.duration_s)} → {_n(new.duration_s)} s ({new.num_frames} frames)")
    if old.steps != new.steps:
        parts.append(f"steps {old.steps} → {new.steps}")
    if old.guidance_scale != new.guidance_scale:
        parts.append(f"guidance (high) {_n(old.guidance_scale)} → {_n(new.guidance_scale)}")
    if old.guidance_scale_2 != new.guidance_scale_2:
        parts.append(f"guidance (low) {_n(old.guidance_scale_2)} → {_n(new.guidance_scale_2)}")
    added_neg = [t for t in new.negative_terms if t not in old.negative_terms]
    removed_neg = [t for t in old.negative_terms if t not in new.negative_terms]
    parts += [f"avoid +{t}" for t in added_neg] + [f"avoid −{t}" for t in removed_neg]
    if old.prompt_override != new.prompt_override:
        parts.append("prompt typed by hand" if new.prompt_override else "prompt back to compiled")
    if old.seed != new.seed:
        parts.append(f"seed {old.seed} → {new.seed}")
    elif mention_seed and parts:
        parts.append(f"seed kept {new.seed}")
    return ", ".join(parts)
