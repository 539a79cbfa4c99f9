"""NAG (generation/nag.py): the formula, the processor against a direct computation, install/uninstall, and the
Wan backend's choice of mechanism on the tiny random two-expert pipeline (devtools/tiny_wan.py)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PIL import Image

from agent.plan import MotionPlan
from generation.config import GenerationConfig
from generation.nag import choose_negative_guidance

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from devtools.tiny_wan import TINY_MAX_AREA, TINY_NUM_LAYERS, cached_tiny_pipeline_dir  # noqa: E402
from generation import nag, specs, wan, wan_load  # noqa: E402
from generation.image import preprocess  # noqa: E402

MAX_LEN = 16
NAG = {"scale": 11.0, "tau": 2.5, "alpha": 0.25}

pytestmark = pytest.mark.usefixtures("offline_single_torch_thread")


@pytest.fixture(scope="module")
def loaded():
    cfg = GenerationConfig(
        model=str(cached_tiny_pipeline_dir()), lightning=False, max_area=TINY_MAX_AREA, max_sequence_length=MAX_LEN
    )
    return wan_load.load_pipeline(cfg)


def backend_with(loaded, **changes) -> wan.WanBackend:
    """A backend on the same loaded pipeline with other settings (no reload)."""
    return wan.WanBackend(loaded=dataclasses.replace(loaded, cfg=loaded.cfg.replace(**changes)))


def picture() -> Image.Image:
    return Image.fromarray((np.random.RandomState(0).rand(64, 64, 3) * 255).astype("uint8"))


def make_plan(**changes) -> MotionPlan:
    fields = dict(
        template="portrait_subtle", duration_s=0.5, prompt="the hair in the wind, slowly",
        negative_prompt="blur, water", guidance_scale=1.0, guidance_scale_2=1.0, seed=7,
    )
    return MotionPlan.create(**{**fields, **changes})


def plain_diffusers(pipe, plan: MotionPlan) -> np.ndarray:
    """The frames of diffusers' own pipeline call for `plan` (no NAG anywhere)."""
    return pipe(
        image=preprocess(picture(), max_area=TINY_MAX_AREA), prompt=plan.prompt, negative_prompt=plan.negative_prompt,
        height=64, width=64, num_frames=plan.num_frames, num_inference_steps=plan.steps,
        guidance_scale=plan.guidance_scale, guidance_scale_2=plan.guidance_scale_2,
        generator=torch.Generator("cpu").manual_seed(plan.seed), max_sequence_length=MAX_LEN, output_type="np",
    ).frames[0]


class Counter:
    """Counts transformer forwards (per expert) and attention computations while installed."""

    def __init__(self, pipe, monkeypatch):
        from diffusers.models.transformers import transformer_wan

        self.forwards = {"transformer": 0, "transformer_2": 0}
        self.attentions = 0
        real = transformer_wan.dispatch_attention_fn

        def counted(*args, **kwargs):
            self.attentions += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(transformer_wan, "dispatch_attention_fn", counted)
        self.handles = [
            getattr(pipe, name).register_forward_pre_hook(lambda *_, name=name: self._forward(name))
            for name in self.forwards
        ]

    def _forward(self, name):
        self.forwards[name] += 1

    def remove(self):
        for h in self.handles:
            h.remove()


# --- the formula and the processor --------------------------------------------------------------


def reference_nag(z_pos, z_neg, scale, tau, alpha):
    """The paper's formula written out directly."""
    guided = z_pos * scale - z_neg * (scale - 1)
    ratio = guided.abs().sum(-1, keepdim=True) / z_pos.abs().sum(-1, keepdim=True)
    guided = guided * torch.minimum(ratio, torch.tensor(tau)) / ratio
    return guided * alpha + z_pos * (1 - alpha)


def test_nag_combine_matches_the_formula_clamps_and_blends():
    g = torch.Generator().manual_seed(0)
    z_pos = torch.randn(2, 8, 24, generator=g)
    z_neg = torch.randn(2, 8, 24, generator=g)
    z_neg[:, :4] = z_pos[:, :4] + 0.01 * torch.randn(2, 4, 24, generator=g)  # near the positive: ratio < tau
    ratio = (z_pos * 11 - z_neg * 10).abs().sum(-1) / z_pos.abs().sum(-1)
    assert (ratio[:, :4] < 2.5).all() and (ratio[:, 4:] > 2.5).all()  # the clamp engages on half the tokens

    out = nag.nag_combine(z_pos, z_neg, 11.0, 2.5, 0.25)
    torch.testing.assert_close(out, reference_nag(z_pos, z_neg, 11.0, 2.5, 0.25))
    guided = nag.nag_combine(z_pos, z_neg, 11.0, 2.5, 1.0)  # alpha 1: the clamped guided output alone
    torch.testing.assert_close(guided[:, 4:].abs().sum(-1), 2.5 * z_pos[:, 4:].abs().sum(-1))
    torch.testing.assert_close(guided[:, :4], (z_pos * 11 - z_neg * 10)[:, :4])  # below tau: untouched
    assert torch.equal(nag.nag_combine(z_pos, z_neg, 11.0, 2.5, 0.0), z_pos)  # alpha 0: the positive output
    zero = nag.nag_combine(torch.zeros(1, 1, 24), torch.ones(1, 1, 24), 11.0, 2.5, 1.0)
    assert torch.equal(zero, torch.zeros(1, 1, 24))  # a zero positive output: no NaN, zero guided


def test_processor_equals_a_direct_computation(loaded):
    import torch.nn.functional as F

    transformer = loaded.pipe.transformer
    attn = transformer.blocks[0].attn2
    text_embedder = transformer.condition_embedder.text_embedder
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 10, attn.inner_dim, generator=g)
    pos_raw, neg_raw = torch.randn(2, 1, MAX_LEN, text_embedder.linear_1.in_features, generator=g)

    def attend(context):
        heads = lambda t: t.unflatten(2, (attn.heads, -1)).transpose(1, 2)  # noqa: E731
        q, k, v = attn.norm_q(attn.to_q(x)), attn.norm_k(attn.to_k(context)), attn.to_v(context)
        return F.scaled_dot_product_attention(heads(q), heads(k), heads(v)).transpose(1, 2).flatten(2)

    with torch.no_grad():
        pos, neg = text_embedder(pos_raw), text_embedder(neg_raw)
        expected = attn.to_out[0](reference_nag(attend(pos), attend(neg), **NAG))
        nag.enable_nag(transformer, neg_raw, **NAG)
        try:
            assert text_embedder(pos_raw).equal(pos)  # the hook projects the negative, the output is untouched
            got = attn(x, pos)
            attn.fuse_projections()  # one K/V matmul (fuse_projections): the same result
            got_fused = attn(x, pos)
        finally:
            attn.unfuse_projections()
            nag.disable_nag(transformer)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got_fused, expected, rtol=1e-5, atol=1e-6)


def test_enable_disable_restores_processors_and_output(loaded):
    transformer = loaded.pipe.transformer
    originals = [b.attn2.processor for b in transformer.blocks]
    self_attn = [b.attn1.processor for b in transformer.blocks]
    g = torch.Generator().manual_seed(2)
    inputs = dict(
        hidden_states=torch.randn(1, 36, 3, 8, 8, generator=g), timestep=torch.tensor([900]),
        encoder_hidden_states=torch.randn(1, MAX_LEN, transformer.config.text_dim, generator=g), return_dict=False,
    )
    negative = torch.randn(1, MAX_LEN, transformer.config.text_dim, generator=g)
    with torch.no_grad():
        before = transformer(**inputs)[0]
        nag.enable_nag(transformer, negative, **NAG)
        nag.enable_nag(transformer, negative, **NAG)  # again: replaces, never wraps twice
        assert all(isinstance(b.attn2.processor, nag.NagAttnProcessor) for b in transformer.blocks)
        assert all(b.attn2.processor.original is o for b, o in zip(transformer.blocks, originals))
        assert [b.attn1.processor for b in transformer.blocks] == self_attn  # self-attention untouched
        guided = transformer(**inputs)[0]
        nag.disable_nag(transformer)
        nag.disable_nag(transformer)  # idempotent
        after = transformer(**inputs)[0]
    assert [b.attn2.processor for b in transformer.blocks] == originals
    assert not transformer.condition_embedder.text_embedder._forward_hooks
    assert torch.equal(before, after) and not torch.equal(before, guided)


@pytest.mark.parametrize(
    "change, message", [({"scale": 0.5}, "scale"), ({"tau": 0.0}, "tau"), ({"alpha": 1.5}, "alpha")]
)
def test_enable_rejects_values_out_of_range(loaded, change, message):
    with pytest.raises(ValueError, match=message):
        nag.enable_nag(loaded.pipe.transformer, torch.zeros(1, MAX_LEN, 32), **{**NAG, **change})
    assert not any(isinstance(b.attn2.processor, nag.NagAttnProcessor) for b in loaded.pipe.transformer.blocks)


@pytest.mark.parametrize(
    "mode, guidance, negative, expected",
    [
        ("auto", 1.0, "blur", "nag"), ("auto", 1.0, " ", "none"), ("auto", 3.5, "blur", "cfg"),
        ("auto", 3.5, "", "cfg"), ("off", 1.0, "blur", "none"), ("on", 1.0, "blur", "nag"),
        ("on", 1.0, "", "none"), ("on", 3.5, "blur", "cfg+nag"), ("off", 3.5, "blur", "cfg"),
    ],
)
def test_choose_negative_guidance(mode, guidance, negative, expected):
    assert choose_negative_guidance(mode, guidance, negative) == expected


def test_recipes_carry_the_reference_values():
    for spec in specs.MODELS.values():
        for recipe in filter(None, (spec.base, spec.lightning)):
            assert (recipe.nag_scale, recipe.nag_tau, recipe.nag_alpha) == (11.0, 2.5, 0.25)


# --- the Wan backend --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "setting, negative", [("off", "blur, water"), ("auto", ""), ("on", "")],
    ids=["nag-off", "empty-negative", "on-empty"],
)
def test_without_nag_frames_equal_plain_diffusers(loaded, tmp_path, frames_seen, setting, negative):
    plan = make_plan(negative_prompt=negative)
    result = backend_with(loaded, nag=setting).generate(plan, picture(), out_dir=tmp_path)
    np.testing.assert_array_equal(frames_seen[0], plain_diffusers(loaded.pipe, plan))
    assert result.negative_guidance == result.params["negative_guidance"] == "none"
    assert result.params["nag"] is None


def test_nag_at_guidance_1_changes_frames_with_one_more_attention_per_block(loaded, tmp_path, frames_seen, monkeypatch):
    plan = make_plan()
    plain = plain_diffusers(loaded.pipe, plan)
    counter = Counter(loaded.pipe, monkeypatch)
    try:
        result = backend_with(loaded, nag="auto").generate(plan, picture(), out_dir=tmp_path)
    finally:
        counter.remove()
    assert np.abs(frames_seen[0] - plain).max() > 1e-3
    assert result.negative_guidance == result.params["negative_guidance"] == "nag"
    assert result.params["nag"] == NAG and result.params["classifier_free_guidance"] is False
    # one forward per step (no second pass); per forward: self + cross + the negative cross per block
    forwards = sum(counter.forwards.values())
    assert forwards == plan.steps and all(counter.forwards.values())  # both experts ran, both guided
    assert counter.attentions == forwards * TINY_NUM_LAYERS * 3
    assert not any(isinstance(b.attn2.processor, nag.NagAttnProcessor) for b in loaded.pipe.transformer.blocks)
    assert not any(isinstance(b.attn2.processor, nag.NagAttnProcessor) for b in loaded.pipe.transformer_2.blocks)


@pytest.mark.parametrize("setting, expected", [("auto", "cfg"), ("on", "cfg+nag")])
def test_above_guidance_1_cfg_runs_and_nag_only_when_forced(
    loaded, tmp_path, frames_seen, monkeypatch, setting, expected
):
    plan = make_plan(guidance_scale=3.5, guidance_scale_2=3.0)
    counter = Counter(loaded.pipe, monkeypatch)
    try:
        result = backend_with(loaded, nag=setting).generate(plan, picture(), out_dir=tmp_path)
    finally:
        counter.remove()
    assert result.negative_guidance == result.params["negative_guidance"] == expected
    assert result.params["classifier_free_guidance"] is True
    forwards = sum(counter.forwards.values())
    assert forwards == 2 * plan.steps  # CFG: conditional + unconditional
    if setting == "auto":
        assert result.params["nag"] is None and counter.attentions == forwards * TINY_NUM_LAYERS * 2
        np.testing.assert_array_equal(frames_seen[0], plain_diffusers(loaded.pipe, plan))
    else:
        # NAG on the conditional pass only: the unconditional one attends to the negative text already
        assert result.params["nag"] == NAG
        assert counter.attentions == plan.steps * TINY_NUM_LAYERS * (3 + 2)
