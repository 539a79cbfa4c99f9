"""agent: chat turns become MotionPlan edits. Light to import: no torch, no transformers."""

from agent.plan import MotionPlan, Motion, Camera, PlanError, frames_for

__all__ = ["MotionPlan", "Motion", "Camera", "PlanError", "frames_for"]
