"""How the plan's settings are named in words, shared by the replies and the answers to questions."""

from __future__ import annotations

from agent.plan import MotionPlan

# the two guidance scales as the plan panel, the replies and the answers call them
GUIDANCE_LABELS = {"guidance_scale": "prompt strength (early steps)",
                   "guidance_scale_2": "prompt strength (late steps)"}
_CAMERA_PACE = ((0.4, "very slow"), (0.75, "slow"), (1.35, ""), (2.0, "fast"))


def camera_words(plan: MotionPlan) -> str:
    """The camera as a person would say it: "slow zoom in", "fast pan left", "a still camera"."""
    if plan.camera.move == "static":
        return "a still camera"
    speed = plan.camera.speed
    pace = next((w for limit, w in _CAMERA_PACE if speed <= limit), "very fast")
    return " ".join(x for x in (pace, plan.camera.move.replace("_", " ")) if x)
