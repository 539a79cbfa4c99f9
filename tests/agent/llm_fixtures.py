"""Stand-ins for a chat model for the LLM planner tests (they go through the same LLMPlanner code via its
`loader`); the tiny real model and the test messages live in devtools.tiny_qwen (bench/ uses them too)."""

from __future__ import annotations

from devtools.tiny_qwen import MESSAGES, build_tiny_qwen, build_tokenizer

__all__ = ["MESSAGES", "HangingModel", "RaisingModel", "ScriptedModel", "StuckModel", "build_tiny_qwen",
           "build_tokenizer"]


# --- stand-ins for a model: they go through the same LLMPlanner code via its `loader` ----------------------


class ScriptedModel:
    """Wants to write `answer(prompt)` token by token, like a model with strong preferences.

    The logits processors (the grammar constraint) run on every step exactly as in `generate`, so an
    off-grammar script is overruled. No `forward`: the planner skips its prefix cache for it.
    """

    def __init__(self, tokenizer, answer):
        from types import SimpleNamespace

        self.tokenizer = tokenizer
        self.answer = answer if callable(answer) else (lambda prompt, text=answer: text)
        self.config = SimpleNamespace(vocab_size=len(tokenizer))
        self.generation_config = SimpleNamespace(eos_token_id=tokenizer.eos_token_id)
        self.prompts: list[str] = []

    def generate(self, input_ids, *, max_new_tokens, logits_processor=(), stopping_criteria=(), eos_token_id=None,
                 **_ignored):
        import torch

        eos = eos_token_id if isinstance(eos_token_id, list) else [eos_token_id]
        prompt = self.tokenizer.decode(input_ids[0])
        self.prompts.append(prompt)
        want = self.tokenizer(self.answer(prompt), add_special_tokens=False)["input_ids"] + [eos[0]]
        ids = input_ids
        for step in range(max_new_tokens):
            scores = torch.zeros(1, self.config.vocab_size)
            scores[0, want[step] if step < len(want) else eos[0]] = 10.0
            for processor in logits_processor:
                scores = processor(ids, scores)
            token = int(scores[0].argmax())
            ids = torch.cat([ids, torch.tensor([[token]])], dim=1)
            if token in eos or any(bool(c(ids, scores).any()) for c in stopping_criteria):
                break
        return ids


class RaisingModel:
    """generate() fails the way a real model can (out of memory, a bug)."""

    def __init__(self, tokenizer, error: Exception | None = None):
        from types import SimpleNamespace

        self.config = SimpleNamespace(vocab_size=len(tokenizer))
        self.error = error or RuntimeError("CUDA out of memory (stub)")
        self.calls = 0

    def generate(self, *args, **kwargs):
        self.calls += 1
        raise self.error


class StuckModel:
    """generate() ignores every stopping criterion and blocks until `release()` (a stuck model)."""

    def __init__(self, tokenizer, max_seconds: float = 30.0):
        import threading
        from types import SimpleNamespace

        self.config = SimpleNamespace(vocab_size=len(tokenizer))
        self.max_seconds = max_seconds
        self.released = threading.Event()
        self.calls = 0

    def generate(self, input_ids, **kwargs):
        self.calls += 1
        self.released.wait(self.max_seconds)
        return input_ids

    def release(self) -> None:
        self.released.set()


class HangingModel:
    """generate() never finishes an answer: each step takes `step_s` and writes nothing, and it stops only when a
    stopping criterion says so (the deadline or a cancel), like a real model far too slow for its deadline.
    `finished` is set when generate() returns."""

    def __init__(self, tokenizer, step_s: float = 0.05):
        import threading
        from types import SimpleNamespace

        self.config = SimpleNamespace(vocab_size=len(tokenizer))
        self.generation_config = SimpleNamespace(eos_token_id=tokenizer.eos_token_id)
        self.step_s = step_s
        self.finished = threading.Event()

    def generate(self, input_ids, *, stopping_criteria=(), **_ignored):
        import time

        try:
            while not any(bool(c(input_ids, None).any()) for c in stopping_criteria):
                time.sleep(self.step_s)
            return input_ids
        finally:
            self.finished.set()
