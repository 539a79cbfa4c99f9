"""Constrained vs unconstrained decoding: tokens/s and the constraint's cost per token.

    .venv/bin/python bench/llm_bench.py                # tiny random Qwen2 (600-token vocabulary)
    .venv/bin/python bench/llm_bench.py --vocab smollm2 # the same tiny model over SmolLM2's 49,152-token vocabulary
    .venv/bin/python bench/llm_bench.py --smollm2       # also the real SmolLM2-135M-Instruct (slow on CPU)
    .venv/bin/python bench/llm_bench.py --engines       # mask time per token: llguidance vs xgrammar/outlines-core
                                                        # when importable (e.g. PYTHONPATH=/tmp/engines)

A per-token figure is the median time between consecutive decoding steps (model forward, logits
processors, sampling), so the prompt's prefill is not in it. The unconstrained run makes `--tokens` tokens
(end of sequence blocked); the constrained run samples from the grammar and starts again until it has made
as many. The constraint overhead is (constrained − unconstrained) / unconstrained per step; the time spent
inside the grammar's logits processor per step is printed too.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def build_model(kind: str, folder: Path):
    """(model, tokenizer): the tiny random Qwen2 from the tests, over its own or SmolLM2's vocabulary."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    from devtools.tiny_qwen import build_tiny_qwen

    if kind == "tiny":
        build_tiny_qwen(folder)
        return AutoModelForCausalLM.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)
    from agent.llm.loading import SMOLLM2_FILE, smollm2_folder

    tok = AutoTokenizer.from_pretrained(smollm2_folder(), gguf_file=SMOLLM2_FILE)
    torch.manual_seed(0)
    cfg = Qwen2Config(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, vocab_size=len(tok), eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.eos_token_id, tie_word_embeddings=True)
    return Qwen2ForCausalLM(cfg).eval(), tok


class Clock:
    """A logits processor that only notes the time of each decoding step (it runs last)."""

    def __init__(self) -> None:
        self.stamps: list[float] = []

    def __call__(self, input_ids, scores):
        self.stamps.append(time.perf_counter())
        return scores

    def steps(self) -> list[float]:
        return [b - a for a, b in zip(self.stamps, self.stamps[1:])]


def run(loaded, n_tokens: int, repeats: int, temperature: float) -> dict[str, float]:
    """Median time of one decoding step (model + processors + sampling), without and with the constraint."""
    import torch
    from transformers import LogitsProcessor

    from agent.llm.decoding import eos_ids, grammar_matcher, make_constraint, vocab_size
    from agent.llm.grammar import GrammarSpec, edit_list_pattern
    from agent.llm.prompts import build_messages

    model, tok = loaded.model, loaded.tokenizer
    msgs = build_messages("slower hair, same seed", None)[-1:]  # a short prompt: decoding, not prefill, is measured
    ids = tok(tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True), return_tensors="pt",
              add_special_tokens=False)["input_ids"]
    eos = eos_ids(model, tok)
    vocab = vocab_size(model, tok)
    pattern = edit_list_pattern(GrammarSpec(max_edits=12, max_action_chars=60, max_term_chars=40, max_terms=8))

    class NoEOS(LogitsProcessor):
        def __call__(self, input_ids, scores):
            scores[:, eos] = float("-inf")
            return scores

    def gen(processors, max_new, seed):
        torch.manual_seed(seed)
        clock = Clock()
        with torch.inference_mode():
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new,
                                 do_sample=temperature > 0, temperature=temperature or None, top_p=None, top_k=None,
                                 logits_processor=[*processors, clock], eos_token_id=eos, pad_token_id=eos[0])
        return clock.steps(), out.shape[1] - ids.shape[1]

    gen([NoEOS()], 4, 0)  # warm-up
    plain, constrained, inside, ratios = [], [], [], []
    for r in range(repeats):  # paired runs: machine load drifts, the ratio within a pair is steadier
        steps, _ = gen([NoEOS()], n_tokens, r)
        p_r = statistics.median(steps)
        plain += steps
        made, seed, c_steps = 0, 100 * r, []
        while made < n_tokens:  # constrained answers end early: start again until as many steps are measured
            constraint = make_constraint(grammar_matcher(loaded, pattern), vocab)
            steps, n = gen([constraint], n_tokens, seed)
            c_steps += steps
            inside.append(constraint.seconds / max(1, constraint.masks))
            made += len(steps)
            seed += 1
        constrained += c_steps
        ratios.append(statistics.median(c_steps) / p_r)
    p, c, i = statistics.median(plain), statistics.median(constrained), statistics.median(inside)
    q = statistics.quantiles(ratios, n=4) if len(ratios) >= 4 else [min(ratios), 0, max(ratios)]
    return {"plain_ms": p * 1e3, "constrained_ms": c * 1e3, "inside_ms": i * 1e3,
            "overhead_pct": (statistics.median(ratios) - 1) * 100, "q1_pct": (q[0] - 1) * 100,
            "q3_pct": (q[-1] - 1) * 100, "plain_tps": 1 / p, "constrained_tps": 1 / c}


def engines(tokenizer) -> None:
    """Mask computation per token for the same regex and answer in each importable engine."""
    from agent.llm.grammar import GrammarSpec, edit_list_pattern

    regex = edit_list_pattern(GrammarSpec()).regex
    answer = ('[{"op":"scale_motion","subject":"hair","speed_factor":0.6,"intensity_factor":1},'
              '{"op":"seed","policy":"same","value":null},{"op":"set_camera","move":"zoom_in","speed":null}]')
    ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
    vocab = len(tokenizer)
    print(f"engines: {vocab}-token vocabulary, answer of {len(ids)} tokens")
    import llguidance
    import llguidance.hf

    t = time.perf_counter()
    llt = llguidance.hf.from_tokenizer(tokenizer, n_vocab=vocab)
    m = llguidance.LLMatcher(llt, llguidance.LLMatcher.grammar_from_regex(regex), log_level=0)
    setup = time.perf_counter() - t
    times = []
    for tid in ids:
        t = time.perf_counter()
        m.compute_bitmask()
        times.append(time.perf_counter() - t)
        assert m.consume_token(tid), m.get_error()
    print(f"  llguidance {llguidance.__version__}: setup {setup * 1e3:.0f} ms, mask {statistics.median(times) * 1e6:.0f} µs "
          f"median / {max(times) * 1e6:.0f} µs max per token")
    try:
        import torch
        import xgrammar as xgr

        t = time.perf_counter()
        info = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab)
        compiled = xgr.GrammarCompiler(info).compile_regex(regex)
        matcher = xgr.GrammarMatcher(compiled)
        setup = time.perf_counter() - t
        bitmask = xgr.allocate_token_bitmask(1, vocab)
        times = []
        for tid in ids:
            t = time.perf_counter()
            matcher.fill_next_token_bitmask(bitmask)
            times.append(time.perf_counter() - t)
            assert matcher.accept_token(tid)
        print(f"  xgrammar: setup {setup * 1e3:.0f} ms, mask {statistics.median(times) * 1e6:.0f} µs "
              f"median / {max(times) * 1e6:.0f} µs max per token")
        del torch
    except ImportError:
        print("  xgrammar: not importable")
    try:
        import outlines_core as oc

        t = time.perf_counter()
        eos = tokenizer.eos_token_id
        table: dict[bytes, list[int]] = {}
        for tid in range(vocab):
            if tid == eos or tid in tokenizer.all_special_ids:
                continue
            table.setdefault(tokenizer.decode([tid]).encode("utf-8", "surrogatepass"), []).append(tid)
        vocabulary = oc.Vocabulary(eos, table)
        index = oc.Index(regex, vocabulary)
        guide = oc.Guide(index)
        setup = time.perf_counter() - t
        times = []
        for tid in ids:
            t = time.perf_counter()
            guide.get_tokens()
            times.append(time.perf_counter() - t)
            guide.advance(tid)
        print(f"  outlines-core: setup (index over the whole vocabulary) {setup * 1e3:.0f} ms, allowed-token list "
              f"{statistics.median(times) * 1e6:.0f} µs median / {max(times) * 1e6:.0f} µs max per token")
    except ImportError as e:
        print(f"  outlines-core: not importable ({e})")
    except (ValueError, RuntimeError) as e:
        print(f"  outlines-core: failed: {str(e)[:200]}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=96)
    ap.add_argument("--repeats", type=int, default=12)
    ap.add_argument("--vocab", choices=("tiny", "smollm2"), default="tiny")
    ap.add_argument("--smollm2", action="store_true", help="also measure the real SmolLM2-135M-Instruct")
    ap.add_argument("--engines", action="store_true", help="compare constraint engines on the mask step")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)

    import torch

    from agent.llm import LLMConfig
    from agent.llm.loading import Loaded, load_model_and_tokenizer

    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s); {args.tokens} new tokens x {args.repeats} runs")
    with tempfile.TemporaryDirectory() as tmp:
        model, tok = build_model(args.vocab, Path(tmp))
        loaded = Loaded(("bench",), model, tok, threading.Lock())
        print(f"tiny Qwen2 (2 layers, hidden 64), {len(tok)}-token vocabulary:")
        r = run(loaded, args.tokens, args.repeats, temperature=1.0)
        print(f"  unconstrained {r['plain_tps']:.0f} tokens/s ({r['plain_ms']:.3f} ms/token)")
        print(f"  constrained   {r['constrained_tps']:.0f} tokens/s ({r['constrained_ms']:.3f} ms/token)")
        print(f"  constraint overhead {r['overhead_pct']:+.1f} % per token (median of {args.repeats} paired runs, "
              f"quartiles {r['q1_pct']:+.1f} … {r['q3_pct']:+.1f} %); target < 20 %")
        print(f"  inside the grammar's logits processor: {r['inside_ms']:.3f} ms/token")
        if args.engines:
            engines(tok)
    if args.smollm2:
        t = time.perf_counter()
        model, tok = load_model_and_tokenizer(LLMConfig(model="smollm2"))
        print(f"SmolLM2-135M-Instruct (GGUF, dequantized to float32) loaded in {time.perf_counter() - t:.1f} s")
        loaded = Loaded(("bench-smollm2",), model, tok, threading.Lock())
        r = run(loaded, min(args.tokens, 48), max(1, args.repeats // 2), temperature=1.0)
        print(f"  unconstrained {r['plain_tps']:.1f} tokens/s, constrained {r['constrained_tps']:.1f} tokens/s, "
              f"overhead {r['overhead_pct']:+.1f} % (processor {r['inside_ms']:.3f} ms/token)")
        if args.engines:
            engines(tok)


if __name__ == "__main__":
    from vividflow.boundary import run_cli

    sys.exit(run_cli(main, prog="bench/llm_bench.py"))
