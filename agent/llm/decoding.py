"""Constrained generation: the model writes only what a grammar `Pattern` allows, within a deadline.

- `make_constraint`: a logits processor that masks every token llguidance says would leave the grammar.
- `generate_constrained`: one chat answer, greedy unless a temperature is given; the key/value cache of the
  prompt's fixed part (system prompt, examples) is computed once per model and copied into each call.
- `run_with_deadline`: the generation in a worker thread holding the model's lock; `GenerationTimeout`
  when the deadline passes or another request still holds the model.

torch, transformers and llguidance are imported inside the functions that need them.
"""

from __future__ import annotations

import atexit
import copy
import importlib
import inspect
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from agent.llm.grammar import Pattern
from agent.llm.loading import Loaded, LLMUnavailable

log = logging.getLogger(__name__)

TIMEOUT_GRACE_S = 0.25  # how long past the deadline we wait for the generation thread to notice it
MAX_PREFIX_CACHES = 4


class GenerationTimeout(Exception):
    """No answer in time: the message is "timeout", or "busy" when another request held the model."""


def eos_ids(model: Any, tokenizer: Any) -> list[int]:
    """The end-of-sequence token ids of the model's generation config and of the tokenizer."""
    ids: list[int] = []
    gen = getattr(model, "generation_config", None)
    for value in (getattr(gen, "eos_token_id", None), getattr(tokenizer, "eos_token_id", None)):
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(v, int) and v not in ids:
                ids.append(v)
    if not ids:
        raise LLMUnavailable("the tokenizer has no end-of-sequence token")
    return ids


def vocab_size(model: Any, tokenizer: Any) -> int:
    size = getattr(getattr(model, "config", None), "vocab_size", None)
    return max(int(size or 0), len(tokenizer))


def _constraint_tokenizer(loaded: Loaded) -> Any:
    """llguidance's view of the tokenizer (built once per model: ~1 s for a 150K vocabulary)."""
    if "llg_tokenizer" not in loaded.cache:
        import llguidance.hf

        loaded.cache["llg_tokenizer"] = llguidance.hf.from_tokenizer(
            loaded.tokenizer, n_vocab=vocab_size(loaded.model, loaded.tokenizer),
            eos_token=eos_ids(loaded.model, loaded.tokenizer))
    return loaded.cache["llg_tokenizer"]


def grammar_matcher(loaded: Loaded, pattern: Pattern) -> Any:
    """A fresh matcher for `pattern` (the compiled one is cached and copied)."""
    import llguidance

    key = ("matcher", pattern.regex)
    if key not in loaded.cache:
        grammar = llguidance.LLMatcher.grammar_from_regex(pattern.regex)
        matcher = llguidance.LLMatcher(_constraint_tokenizer(loaded), grammar, log_level=0)
        if matcher.is_error():
            raise RuntimeError(f"the LLM grammar does not compile: {matcher.get_error()}")
        loaded.cache[key] = matcher
    return loaded.cache[key].deep_copy()


def make_constraint(matcher: Any, n_vocab: int) -> Any:
    """A transformers logits processor that lets through only the tokens `matcher` allows.

    Per step: the engine consumes the token chosen last step, writes its allowed-token bitmask into a
    preallocated buffer, and the blocked logits are set to -inf in place (one unpack, one masked fill).
    (Computing the mask in a worker thread during the forward pass was measured too: on CPU it was slower,
    the worker and the decoding loop contend for the GIL.)
    """
    import numpy as np
    import torch
    from transformers import LogitsProcessor

    words = np.full((n_vocab + 31) // 32, -1, dtype=np.int32)

    class GrammarConstraint(LogitsProcessor):
        def __init__(self) -> None:
            self.matcher = matcher
            self.masks = 0
            self.consumed = 0
            self.seconds = 0.0  # time spent in here (the bench reads it)

        def __call__(self, input_ids: Any, scores: Any) -> Any:
            started = time.perf_counter()
            if input_ids.shape[0] != 1:
                raise ValueError(f"constrained decoding runs one sequence at a time, got a batch of {input_ids.shape[0]}")
            if self.masks:
                self.consume(int(input_ids[0, -1]))
            self.matcher.unsafe_compute_mask_ptr(words.ctypes.data, words.nbytes)
            self.masks += 1
            n = min(scores.shape[-1], n_vocab)
            blocked = np.unpackbits(words.view(np.uint8), bitorder="little")[:n] == 0
            scores[:, :n].masked_fill_(torch.from_numpy(blocked).to(scores.device, non_blocking=True), float("-inf"))
            if scores.shape[-1] > n:
                scores[:, n:] = float("-inf")
            self.seconds += time.perf_counter() - started
            return scores

        def consume(self, token: int) -> None:
            if not self.matcher.consume_token(token):
                log.warning("LLM constraint: token %d rejected: %s", token, self.matcher.get_error())
            self.consumed += 1

        def catch_up(self, generated: Sequence[int]) -> None:
            """Feed the matcher the generated tokens it has not seen (the processor sees each one a step late)."""
            for token in list(generated)[self.consumed:]:
                self.consume(token)

    # transformers inspects the processor's signature on every step; a precomputed one makes that cheap
    GrammarConstraint.__call__.__signature__ = inspect.signature(GrammarConstraint.__call__)  # type: ignore[attr-defined]
    return GrammarConstraint()


def make_deadline(deadline: float, cancel: threading.Event) -> Any:
    """A stopping criterion: stop at `deadline` (time.monotonic) or when `cancel` is set."""
    import torch
    from transformers import StoppingCriteria

    class Deadline(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            stop = cancel.is_set() or time.monotonic() >= deadline
            return torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device)

    return Deadline()


def generate_constrained(
    loaded: Loaded,
    messages: list[dict[str, str]],
    pattern: Pattern | None,
    *,
    max_new_tokens: int,
    deadline: float,
    cancel: threading.Event,
    seed: int = 0,
    temperature: float = 0.0,
) -> tuple[str, int, bool]:
    """Generation under `pattern` (None: unconstrained), greedy unless `temperature` > 0.

    Returns (text, new tokens, whether the answer is complete under the grammar).
    """
    import torch

    model, tokenizer = loaded.model, loaded.tokenizer
    device = next(model.parameters()).device if hasattr(model, "parameters") else "cpu"
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    # Everything before the last user message is the same on every call: its key/value cache is computed
    # once and copied (the prompt of a small model on CPU is most of a call's time).
    prefix = tokenizer.apply_chat_template(messages[:-1], tokenize=False) if len(messages) > 1 else ""
    cache = None
    if prefix and prompt.startswith(prefix) and callable(getattr(model, "forward", None)):
        prefix_ids = tokenizer(prefix, add_special_tokens=False)["input_ids"]
        rest_ids = tokenizer(prompt[len(prefix):], add_special_tokens=False)["input_ids"]
        input_ids = torch.tensor([prefix_ids + rest_ids], device=device)
        cache = _prefix_cache(loaded, prefix_ids, device)
    else:
        input_ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"].to(device)
    eos = eos_ids(model, tokenizer)
    processors: list[Any] = []
    constraint = None
    if pattern is not None:
        constraint = make_constraint(grammar_matcher(loaded, pattern), vocab_size(model, tokenizer))
        processors.append(constraint)
        max_new_tokens = min(max_new_tokens, pattern.max_chars + 1)  # every token is at least one character
    torch.manual_seed(seed)
    with torch.inference_mode():
        out = model.generate(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            max_new_tokens=max_new_tokens,
            do_sample=temperature > 0,
            temperature=temperature if temperature > 0 else None, top_p=None, top_k=None,
            logits_processor=processors,
            stopping_criteria=[make_deadline(deadline, cancel)],
            eos_token_id=eos,
            pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos[0],
            **({"cache": cache} if cache is not None else {}),
        )
    new = out[0, input_ids.shape[1]:].tolist()
    if constraint is not None:
        constraint.catch_up(new)  # the last token (an end-of-sequence token is taken as the grammar's end)
    while new and new[-1] in eos:
        new.pop()
    text = tokenizer.decode(new, skip_special_tokens=True)
    complete = constraint is None or constraint.matcher.is_accepting()
    return text, len(new), complete


def prefill(loaded: Loaded, messages: list[dict[str, str]], pattern: Pattern | None) -> None:
    """Build, before any deadline, what every call reuses: the grammar's matcher and the key/value cache of the
    chat's fixed part (system prompt and examples, ~1.5K tokens). Skipped while a generation holds the model."""
    importlib.import_module("transformers.generation")  # the decoding loop's imports: seconds on a busy machine

    if pattern is not None:
        grammar_matcher(loaded, pattern)
    model, tokenizer = loaded.model, loaded.tokenizer
    if len(messages) < 2 or not callable(getattr(model, "forward", None)):
        return
    if not loaded.lock.acquire(blocking=False):
        return  # a timed-out generation still runs: this call will be told "busy"
    try:
        prefix = tokenizer.apply_chat_template(messages[:-1], tokenize=False)
        device = next(model.parameters()).device if hasattr(model, "parameters") else "cpu"
        _prefix_cache(loaded, tokenizer(prefix, add_special_tokens=False)["input_ids"], device, copy_it=False)
    finally:
        loaded.lock.release()


def _prefix_cache(loaded: Loaded, prefix_ids: list[int], device: Any, *, copy_it: bool = True) -> Any:
    """A copy of the key/value cache (a transformers `Cache`) of `prefix_ids`, computed on first use (or by
    `prefill`) and kept with the model; `generate` extends the copy, so the kept one stays the prefix's."""
    import torch

    key = ("prefix", tuple(prefix_ids))
    if key not in loaded.cache:
        stale = [k for k in loaded.cache if isinstance(k, tuple) and k and k[0] == "prefix"]
        for k in stale[: max(0, len(stale) - MAX_PREFIX_CACHES + 1)]:
            del loaded.cache[k]
        with torch.inference_mode():
            out = loaded.model(input_ids=torch.tensor([prefix_ids], device=device), use_cache=True)
        loaded.cache[key] = out.cache
    return copy.deepcopy(loaded.cache[key]) if copy_it else None


# Generation threads that outlived their deadline (cancelled, finishing their step). A thread still inside torch
# when the interpreter exits aborts the process ("terminate called without an active exception", exit 134), so
# `finish_generations` waits for them; it runs at exit, and the CLI calls it before it returns its exit code.
_LIVE: dict[threading.Thread, threading.Event] = {}
_LIVE_LOCK = threading.Lock()
EXIT_WAIT_S = 30.0


def finish_generations(timeout_s: float = EXIT_WAIT_S) -> bool:
    """Cancel every generation still running and wait up to `timeout_s` for them; True when none is left."""
    with _LIVE_LOCK:
        live = list(_LIVE.items())
    end = time.monotonic() + timeout_s
    for worker, cancel in live:
        cancel.set()
        worker.join(max(0.0, end - time.monotonic()))
    with _LIVE_LOCK:
        for worker in [w for w in _LIVE if not w.is_alive()]:
            del _LIVE[worker]
        left = len(_LIVE)
    if left:
        log.warning("%d LLM generation thread(s) did not stop within %.0f s", left, timeout_s)
    return left == 0


atexit.register(finish_generations)


def run_with_deadline(fn: Callable[[], Any], loaded: Loaded, deadline: float, cancel: threading.Event) -> Any:
    """Run `fn` in a worker thread holding the model's lock; raise GenerationTimeout when the deadline passes
    (the thread is cancelled and finishes its step on its own; `finish_generations` waits for it)."""
    box: dict[str, Any] = {}
    if not loaded.lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
        raise GenerationTimeout("busy")

    def work() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # handed to the caller's thread below, not swallowed
            box["error"] = e
        finally:
            loaded.lock.release()
            with _LIVE_LOCK:
                _LIVE.pop(threading.current_thread(), None)

    worker = threading.Thread(target=work, name="vividflow-llm", daemon=True)
    with _LIVE_LOCK:
        _LIVE[worker] = cancel
    worker.start()
    worker.join(max(0.0, deadline - time.monotonic()) + TIMEOUT_GRACE_S)
    if worker.is_alive():
        cancel.set()
        raise GenerationTimeout("timeout")
    if "error" in box:
        raise box["error"]
    return box["value"]
