"""NAG (Normalized Attention Guidance, arXiv 2505.21179): the negative prompt at guidance 1.

At guidance ≤ 1 (every Lightning render) diffusers never runs the negative prompt. NAG acts inside each text
cross-attention instead, in the same transformer forward: from one query Q it attends to the positive text
and to the negative text, extrapolates away from the negative, caps the result's L1 norm, and blends it
back into the positive output, before the output projection (the reference's Wan processor does the same):

    z+ = Attn(Q, K+, V+)    z- = Attn(Q, K-, V-)
    zg = z+ · scale − z- · (scale − 1)
    r  = ‖zg‖₁ / ‖z+‖₁                       (per token, over channels)
    zg = zg · min(r, tau) / r
    z  = zg · alpha + z+ · (1 − alpha)

The cost is one more attention per block and the K/V projections of the negative text; no second forward.

    with nag_guidance(pipe, negative_embeds, scale=11.0, tau=2.5, alpha=0.25):
        pipe(...)                        # both experts guided; the original processors are back afterwards

torch is imported inside functions.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import torch

NegativeGuidance = Literal["nag", "cfg", "cfg+nag", "none"]
_INSTALLED = "_vividflow_nag"  # transformer attribute: (state, original processors, hook handle)


def choose_negative_guidance(mode: str, guidance: float, negative_prompt: str) -> NegativeGuidance:
    """How the negative prompt acts: "cfg" above guidance 1 (diffusers' two passes), "nag" at guidance ≤ 1
    when there is a negative prompt (mode auto or on), "cfg+nag" when mode on adds NAG to CFG, else "none"."""
    cfg = guidance > 1.0
    nag = bool(negative_prompt.strip()) and (mode == "on" or (mode == "auto" and not cfg))
    if cfg:
        return "cfg+nag" if nag else "cfg"
    return "nag" if nag else "none"


def nag_combine(z_pos: torch.Tensor, z_neg: torch.Tensor, scale: float, tau: float, alpha: float) -> torch.Tensor:
    """The NAG formula on attention outputs (…, tokens, channels): extrapolate, cap the L1 ratio at tau, blend.

    Norms are taken in float32; a token whose positive output is all zero gets a zero guided output
    (the reference's clamp does the same).
    """
    import torch

    guided = z_pos * scale - z_neg * (scale - 1)
    norm_pos = z_pos.float().abs().sum(dim=-1, keepdim=True)
    norm_guided = guided.float().abs().sum(dim=-1, keepdim=True)
    # min(r, tau) / r without dividing by a zero norm: the factor is tau·‖z+‖ / ‖zg‖ where r > tau, else 1
    clamp = norm_guided > tau * norm_pos
    factor = torch.where(clamp, tau * norm_pos / norm_guided.clamp_min(torch.finfo(torch.float32).tiny), 1.0)
    guided = guided * factor.to(guided.dtype)
    return guided * alpha + z_pos * (1 - alpha)


class _NagState:
    """Shared by one transformer's processors: the negative text, projected once per forward."""

    def __init__(self, negative_embeds: torch.Tensor) -> None:
        self.raw = negative_embeds  # text-encoder output, as the pipeline's prompt_embeds
        self.negative: torch.Tensor | None = None  # after the transformer's text projection; None: pass through

    def on_text_embedder(self, module: Any, args: tuple[Any, ...], output: Any) -> None:
        """Forward hook of `condition_embedder.text_embedder`: project the negative text with the same weights,
        where they are now (offload hooks have moved them). A forward whose text is the negative itself (the
        unconditional pass of CFG) gets no NAG: it would be an identity at the price of one more attention."""
        import torch

        text = args[0]
        raw = self.raw.to(device=text.device, dtype=text.dtype)
        if raw.shape == text.shape and torch.equal(raw, text):
            self.negative = None
        else:
            self.negative = module.forward(raw)  # .forward: no recursion into this hook


class NagAttnProcessor:
    """A Wan text cross-attention (`blocks[i].attn2`) with NAG; falls back to the original processor when
    the forward has no negative text. The attention backend is the original processor's (shared)."""

    def __init__(self, original: Any, state: _NagState, scale: float, tau: float, alpha: float) -> None:
        self.original, self.state = original, state
        self.scale, self.tau, self.alpha = scale, tau, alpha

    # `set_attention_backend` sets `_attention_backend` on every processor: keep it on the original
    @property
    def _attention_backend(self) -> Any:
        return getattr(self.original, "_attention_backend", None)

    @_attention_backend.setter
    def _attention_backend(self, backend: Any) -> None:
        self.original._attention_backend = backend

    @property
    def _parallel_config(self) -> Any:
        return getattr(self.original, "_parallel_config", None)

    def __call__(
        self, attn: Any, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None, rotary_emb: Any = None,
    ) -> torch.Tensor:
        negative = self.state.negative
        if negative is None or encoder_hidden_states is None:
            return self.original(attn, hidden_states, encoder_hidden_states, attention_mask, rotary_emb)
        from diffusers.models.transformers import transformer_wan as tw

        # the positive path is WanAttnProcessor's text cross-attention, step for step
        query, key, value = tw._get_qkv_projections(attn, hidden_states, encoder_hidden_states)
        query = attn.norm_q(query).unflatten(2, (attn.heads, -1))
        key = attn.norm_k(key).unflatten(2, (attn.heads, -1))
        value = value.unflatten(2, (attn.heads, -1))
        z_pos = self._attend(tw, query, key, value, attention_mask)

        # the negative text: its K/V only (Q is shared), one more attention
        negative = negative.expand(query.shape[0], -1, -1)
        if attn.fused_projections:
            key_neg, value_neg = attn.to_kv(negative).chunk(2, dim=-1)
        else:
            key_neg, value_neg = attn.to_k(negative), attn.to_v(negative)
        key_neg = attn.norm_k(key_neg).unflatten(2, (attn.heads, -1))
        z_neg = self._attend(tw, query, key_neg, value_neg.unflatten(2, (attn.heads, -1)), attention_mask)

        hidden_states = nag_combine(z_pos, z_neg, self.scale, self.tau, self.alpha)
        hidden_states = attn.to_out[0](hidden_states)
        return attn.to_out[1](hidden_states)

    def _attend(self, tw: Any, query: Any, key: Any, value: Any, mask: Any) -> torch.Tensor:
        out = tw.dispatch_attention_fn(
            query, key, value, attn_mask=mask, dropout_p=0.0, is_causal=False, backend=self._attention_backend,
            parallel_config=None,  # as WanAttnProcessor for cross-attention
        )
        return out.flatten(2, 3).type_as(query)


def enable_nag(transformer: Any, negative_embeds: torch.Tensor, scale: float, tau: float, alpha: float) -> None:
    """Put NAG on every text cross-attention of a Wan transformer (an enabled one is replaced).

    `negative_embeds` is the text encoder's output for the negative prompt (batch 1, as `encode_prompt`
    returns it). Raises ValueError for a value out of range or a model with image cross-attention (Wan2.1 I2V).
    """
    if scale < 1.0:
        raise ValueError(f"nag scale must be ≥ 1, got {scale}")
    if tau <= 0.0:
        raise ValueError(f"nag tau must be > 0, got {tau}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"nag alpha must be in [0, 1], got {alpha}")
    crosses = [block.attn2 for block in transformer.blocks]
    if any(attn.add_k_proj is not None for attn in crosses):
        raise ValueError("NAG supports the Wan2.2 text cross-attention; this model also attends to image embeddings")
    disable_nag(transformer)
    state = _NagState(negative_embeds)
    originals = [attn.processor for attn in crosses]
    for attn, original in zip(crosses, originals):
        attn.set_processor(NagAttnProcessor(original, state, scale, tau, alpha))
    handle = transformer.condition_embedder.text_embedder.register_forward_hook(state.on_text_embedder)
    setattr(transformer, _INSTALLED, (originals, handle))


def disable_nag(transformer: Any) -> None:
    """Restore the original processors (a transformer without NAG is left as is)."""
    installed = transformer.__dict__.pop(_INSTALLED, None)
    if installed is None:
        return
    originals, handle = installed
    handle.remove()
    for block, original in zip(transformer.blocks, originals):
        block.attn2.set_processor(original)


def experts(pipe: Any) -> list[Any]:
    """The pipeline's transformers: `transformer` and, for two-expert models, `transformer_2`."""
    return [t for t in (pipe.transformer, getattr(pipe, "transformer_2", None)) if t is not None]


@contextmanager
def nag_guidance(pipe: Any, negative_embeds: torch.Tensor, *, scale: float, tau: float, alpha: float) -> Iterator[None]:
    """NAG on both experts for the duration of the block; the original processors are restored after."""
    try:
        for transformer in experts(pipe):
            enable_nag(transformer, negative_embeds, scale, tau, alpha)
        yield
    finally:
        for transformer in experts(pipe):
            disable_nag(transformer)
