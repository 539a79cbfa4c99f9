"""`LLMConfig`: how to load and use the LLM planner — the settings' `llm` section (`vividflow.sections.LLMSettings`,
which reads and checks every value) plus what the planner derives from it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import model_validator

from agent import edits as edit_ops
from agent.llm.grammar import GrammarSpec
from vividflow.sections import DTYPES, LLM_MODES, DType, LLMMode, LLMSettings
from vividflow.settings import section_from_env
from vividflow.values import SettingsError

Mode = LLMMode
MODES = LLM_MODES
LLMConfigError = SettingsError  # one error class for every setting
__all__ = ["DTYPES", "DType", "LLMConfig", "LLMConfigError", "MODES", "Mode"]


class LLMConfig(LLMSettings):
    """How to load and use the LLM planner: one frozen value shared by the UI, the CLI and the tests."""

    @model_validator(mode="after")
    def _grammar_bound(self) -> LLMConfig:
        if self.max_edits > edit_ops.MAX_EDITS_PER_TURN:
            raise ValueError(f"max_edits must be an integer in 1–{edit_ops.MAX_EDITS_PER_TURN}, got {self.max_edits}")
        return self

    @classmethod
    def from_settings(cls, llm: LLMSettings) -> LLMConfig:
        return llm if isinstance(llm, cls) else cls(**llm.values())

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> LLMConfig:
        """The environment's VIVIDFLOW_LLM_* settings (no file), then `overrides` (CLI flags; None = not given)."""
        return section_from_env(cls, env, **overrides)

    @property
    def grammar(self) -> GrammarSpec:
        return GrammarSpec(max_edits=self.max_edits)
