"""A tiny offline chat model for the LLM planner's tests and benches (no download, a few seconds to build), and
the varied chat messages they send it.

`build_tiny_qwen(folder)` trains a byte-level BPE tokenizer with the `tokenizers` library on a small
corpus (all 256 bytes are in the vocabulary, so any text encodes), wraps it as a `Qwen2Tokenizer` with a
ChatML chat template, builds a random 2-layer `Qwen2ForCausalLM` and saves both with `save_pretrained`,
so the production loader reads them back like real Qwen2.5 weights.
"""

from __future__ import annotations

import json
from pathlib import Path

CHATML_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

CORPUS = [
    "make her hair flow in the wind, slow zoom in",
    "slower hair, same seed, make it 4 seconds, pan to the right",
    "the dog wags its tail, the clouds drift, golden hour light, no hand movement",
    '[{"op":"add_motion","subject":"hair","action":"flow","speed":0.6,"intensity":0.5}]',
    '{"op":"set_camera","move":"zoom_in","speed":null},{"op":"seed","policy":"same","value":null}',
    '{"op":"scale_motion","subject":"water","speed_factor":1.5,"intensity_factor":1}',
    "Plan: Message: template motions camera atmosphere duration_s steps guidance_scale seed",
]


def build_tokenizer(vocab_size: int = 600):
    """A Qwen2Tokenizer over a freshly trained byte-level BPE, with ChatML special tokens and template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=[], show_progress=False)
    bpe.train_from_iterator(CORPUS * 4, trainer)
    data = json.loads(bpe.to_str())
    vocab = data["model"]["vocab"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in data["model"]["merges"]]
    tok = Qwen2Tokenizer(vocab=vocab, merges=merges, eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token=None)
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tok.chat_template = CHATML_TEMPLATE
    return tok


def build_tiny_qwen(folder: str | Path, *, seed: int = 0, hidden_size: int = 64, layers: int = 2):
    """Save a random tiny Qwen2ForCausalLM and its tokenizer to `folder`; returns the folder."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    folder = Path(folder)
    tok = build_tokenizer()
    config = Qwen2Config(
        hidden_size=hidden_size, intermediate_size=2 * hidden_size, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, vocab_size=len(tok), max_position_embeddings=4096,
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, bos_token_id=None, tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    tok.save_pretrained(folder)
    model.save_pretrained(folder)
    return folder


# Varied chat messages: refinements, camera, durations, seeds, negations, templates, noise and gibberish.
MESSAGES = [
    "make her hair flow in the wind, slow zoom in",
    "slower hair, same seed",
    "much faster camera",
    "make it 4 seconds",
    "half a second please",
    "higher quality, 10 steps",
    "new seed",
    "seed 1234",
    "no hand movement",
    "the dog wags its tail",
    "clouds drifting over the mountains",
    "pan across to the right",
    "circle around her slowly",
    "add some fog and golden hour light",
    "remove the fog",
    "make the waves crash harder",
    "let the candle flame flicker",
    "snow falling gently",
    "a subtle smile and a blink",
    "undo",
    "start over",
    "same as #12",
    "rerun the second one with 8 steps",
    "like the last one but slower",
    "guidance 3.5 and 3",
    "anime style, sparkles everywhere",
    "sneaker rotating on a turntable",
    "kaleidoscope swirl of particles",
    "asdf qwerty zxcv",
    "",
    "🙂🙂🙂",
    "make it dramatic!!!",
    "stop the water",
    "keep the trees still",
    "tilt up towards the sky",
    "pull back slowly to reveal the city",
    "the smoke should drift lazily to the left",
    "make everything twice as fast",
    "subtler motion overall",
    "stronger wind in the grass",
    "she waves hello, hands in view",
    "headshot, she smiles and blinks",
    "the horse gallops across the field",
    "bird flapping its wings",
    "rain on the window, static camera",
    "dolly in on the perfume bottle",
    "Make It 12 Seconds",
    "ÜBER schnell!! \"quotes\" and \\backslashes\\ {json: true}",
    "x" * 300,
    "draft render, 4 steps, zoom out",
]
