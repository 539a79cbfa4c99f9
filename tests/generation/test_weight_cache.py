"""The cold-start weight cache: the second load uses the fused + quantized experts from disk, skips fusing and
quantizing and renders the same frames bit for bit; a changed key misses; a corrupt entry is rebuilt, never used."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from agent.plan import MotionPlan
from generation.config import GenerationConfig, LoraSpec

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from devtools.tiny_wan import TINY_MAX_AREA, build_tiny_pipeline, cached_tiny_pipeline_dir, save_tiny_lora  # noqa: E402
from generation import wan, wan_load, weight_cache  # noqa: E402
from generation.wan_quant import QuantizationChoice, quantize_expert  # noqa: E402

pytestmark = pytest.mark.usefixtures("offline_single_torch_thread")

PLAN = MotionPlan.create(template="portrait_subtle", duration_s=0.5, prompt="the hair in the wind", seed=3,
                         steps=4, guidance_scale=1.0, guidance_scale_2=1.0)


@pytest.fixture(scope="module")
def lora_file(tmp_path_factory) -> Path:
    return save_tiny_lora(tmp_path_factory.mktemp("loras") / "high.safetensors", "lightx2v", seed=3)


def config(lora_file: Path, scale: float = 0.7, **changes) -> GenerationConfig:
    return GenerationConfig(
        model=str(cached_tiny_pipeline_dir()), lightning=False, max_area=TINY_MAX_AREA, max_sequence_length=16,
        quantization="int8", loras=(LoraSpec(str(lora_file), scale=scale, expert="high_noise"),),
    ).replace(**changes)


@pytest.fixture
def calls(monkeypatch) -> dict[str, int]:
    """How often load_pipeline fused LoRAs and quantized an expert."""
    counts = {"apply_loras": 0, "quantize_expert": 0}
    for name in counts:
        real = getattr(wan_load, name)

        def spy(*args, _real=real, _name=name, **kwargs):
            counts[_name] += 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(wan_load, name, spy)
    return counts


def frames(loaded, out_dir: Path, frames_seen) -> np.ndarray:
    picture = Image.fromarray((np.random.RandomState(0).rand(64, 64, 3) * 255).astype("uint8"))
    wan.WanBackend(loaded=loaded).generate(PLAN, picture, out_dir=out_dir)
    return frames_seen[-1]


def entries(home: Path) -> list[Path]:
    root = home / "cache" / "wan"
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def test_second_load_equals_the_first_bit_for_bit_and_skips_fusing_and_quantizing(
        lora_file, calls, frames_seen, tmp_path, _isolated_home):
    first = wan_load.load_pipeline(config(lora_file))
    assert first.weight_cache["status"] == "miss" and first.weight_cache["saved"] is True
    assert calls == {"apply_loras": 2, "quantize_expert": 2}  # once per expert
    [entry] = entries(_isolated_home)
    assert entry.name == first.weight_cache["key"]
    manifest = json.loads((entry / "manifest.json").read_text())
    assert set(manifest["experts"]) == {"transformer", "transformer_2"}
    assert manifest["parts"]["loras"][0]["scale"] == 0.7 and "Int8WeightOnlyConfig" in manifest["parts"]["quantization"]
    a = frames(first, tmp_path / "a", frames_seen)

    second = wan_load.load_pipeline(config(lora_file))
    assert second.weight_cache == {"status": "hit", "key": first.weight_cache["key"]}
    assert calls == {"apply_loras": 2, "quantize_expert": 2}  # nothing fused or quantized the second time
    for name in ("transformer", "transformer_2"):
        before, after = getattr(first.pipe, name).state_dict(), getattr(second.pipe, name).state_dict()
        assert before.keys() == after.keys()
        for key, x in before.items():
            y = after[key]
            assert type(x) is type(y), key
            inner = ("qdata", "scale") if type(x).__name__ == "Int8Tensor" else (None,)
            for attr in inner:
                assert torch.equal(getattr(x, attr) if attr else x, getattr(y, attr) if attr else y), key
    assert type(second.pipe.transformer.blocks[0].ffn.net[2].weight).__name__ == "Int8Tensor"
    assert second.parameter_bytes == first.parameter_bytes
    assert second.describe()["weight_cache"]["status"] == "hit"
    b = frames(second, tmp_path / "b", frames_seen)
    assert np.array_equal(a, b)
    assert frames_seen and len(frames_seen) == 2


def test_a_changed_lora_scale_misses(lora_file, calls, _isolated_home):
    first = wan_load.load_pipeline(config(lora_file, scale=0.7))
    second = wan_load.load_pipeline(config(lora_file, scale=0.8))
    assert second.weight_cache["status"] == "miss" and second.weight_cache["key"] != first.weight_cache["key"]
    assert calls["apply_loras"] == 4
    assert [e.name for e in entries(_isolated_home)] == sorted([first.weight_cache["key"], second.weight_cache["key"]])


def test_a_truncated_file_is_rebuilt_and_the_output_still_equal(lora_file, calls, frames_seen, tmp_path,
                                                                _isolated_home, caplog):
    first = wan_load.load_pipeline(config(lora_file))
    a = frames(first, tmp_path / "a", frames_seen)
    [entry] = entries(_isolated_home)
    shard = sorted(entry.glob("transformer_2-*.safetensors"))[0]
    shard.write_bytes(shard.read_bytes()[:-100])
    with caplog.at_level(logging.WARNING, logger="generation.weight_cache"):
        second = wan_load.load_pipeline(config(lora_file))
    assert "unusable" in caplog.text and "transformer_2-00000.safetensors has" in caplog.text
    assert second.weight_cache["status"] == "miss" and second.weight_cache["saved"] is True
    assert calls["apply_loras"] == 4  # fused again
    assert np.array_equal(a, frames(second, tmp_path / "b", frames_seen))
    assert weight_cache.WeightCache(entry.parent).load(entry.name) is not None  # the rebuilt entry is good


def test_off_and_nothing_to_prepare_use_no_cache(lora_file):
    from generation.wan_quant import select_quantization

    def key(cfg, locations=None):
        locations = locations or [wan_load.lora_location(lo) for lo in cfg.effective_loras()]
        quant = select_quantization(cfg.quantization, "cpu")
        return wan_load._weight_cache_key(cfg, cfg.model_id, None, cfg.effective_loras(), locations, quant,
                                          "float32", "cpu")

    assert key(config(lora_file, weight_cache=False)) == "off"
    assert key(config(lora_file, loras=(), quantization="none")) == "nothing to prepare"
    online = [("nobody/uncached-lora", {"weight_name": "x.safetensors"})]  # online, a hub LoRA before its download
    assert key(config(lora_file), online) == "not in the HF cache yet"
    cache, name, parts = key(config(lora_file, loras=()))  # int8 alone is worth caching
    assert name == weight_cache.cache_key(parts) and parts["loras"] == [] and parts["device"] == "cpu"


# --- the entries themselves (no pipeline load) ------------------------------------------------------------


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> tuple[Path, str, dict]:
    """One int8 expert written to a cache entry, and the expert itself."""
    model = build_tiny_pipeline().transformer
    quantize_expert(model, QuantizationChoice("int8", "test", "Int8WeightOnlyConfig"), "cpu")
    root = tmp_path_factory.mktemp("cache")
    key = weight_cache.cache_key({"test": 1})
    assert weight_cache.WeightCache(root).save(key, {"test": 1}, {"transformer": model}) == root / key
    return root, key, {"transformer": model}


def test_int8_experts_round_trip(pristine):
    root, key, experts = pristine
    loaded = weight_cache.WeightCache(root).load(key)["transformer"]
    model = experts["transformer"]
    assert type(loaded.blocks[1].attn2.to_out[0].weight).__name__ == "Int8Tensor"
    assert type(loaded.proj_out.weight) is torch.nn.Parameter and loaded.proj_out.weight.dtype == torch.float32
    assert not loaded.training
    x = torch.randn(1, 36, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    text = torch.randn(1, 5, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model(x, torch.tensor([500]), text, return_dict=False)[0]
        got = loaded(x, torch.tensor([500]), text, return_dict=False)[0]
    assert torch.equal(expected, got)


def test_fp8_per_row_experts_round_trip(monkeypatch, tmp_path):
    # FP8 quantizes only on CUDA ≥ 8.9; with torchao's hardware check bypassed it quantizes on the CPU, which is
    # enough to test what is stored (the FP8 matmuls themselves need the GPU)
    import torchao.quantization.quant_api as quant_api

    monkeypatch.setattr(quant_api, "_check_hardware_support", lambda granularity: None)
    model = build_tiny_pipeline(attention_head_dim=16).transformer.to(torch.bfloat16)  # per-row FP8 wants bf16
    quantize_expert(model, QuantizationChoice("fp8", "test", "Float8DynamicActivationFloat8WeightConfig"), "cpu")
    fp8 = sorted(n for n, m in model.named_modules() if type(getattr(m, "weight", None)).__name__ == "Float8Tensor")
    assert len(fp8) == 20 and all(n.startswith("blocks.") for n in fp8)  # the blocks' Linear layers only
    cache = weight_cache.WeightCache(tmp_path)
    cache.save("fp8", {}, {"transformer": model})
    loaded = cache.load("fp8")["transformer"]
    for name in fp8:
        a, b = model.get_submodule(name).weight, loaded.get_submodule(name).weight
        assert type(b).__name__ == "Float8Tensor" and a.__tensor_flatten__()[1] == b.__tensor_flatten__()[1]
        assert type(b.__tensor_flatten__()[1]["act_quant_kwargs"].granularity).__name__ == "PerRow"  # activations
        assert b.block_size == [1, a.shape[1]]  # one weight scale per row
        assert torch.equal(a.qdata.view(torch.uint8), b.qdata.view(torch.uint8)) and torch.equal(a.scale, b.scale)


def _flip_a_byte(entry: Path) -> None:
    shard = sorted(entry.glob("*.safetensors"))[0]
    data = bytearray(shard.read_bytes())
    data[-1] ^= 0xFF
    shard.write_bytes(bytes(data))


@pytest.mark.parametrize("corrupt, why", [
    (lambda e: (e / "manifest.json").write_text("{not json"), "JSONDecodeError"),
    (lambda e: (e / "manifest.json").unlink(), "no manifest"),
    (_flip_a_byte, "does not match its sha256"),
    (lambda e: sorted(e.glob("*.safetensors"))[0].unlink(), "FileNotFoundError"),
], ids=["bad-manifest", "no-manifest", "hash-mismatch", "missing-file"])
def test_a_corrupt_entry_is_deleted_never_used(pristine, tmp_path, caplog, corrupt, why):
    src, key, _ = pristine
    shutil.copytree(src / key, tmp_path / key)
    corrupt(tmp_path / key)
    with caplog.at_level(logging.WARNING, logger="generation.weight_cache"):
        assert weight_cache.WeightCache(tmp_path).load(key) is None
    assert why in caplog.text and not (tmp_path / key).exists()


def test_the_newest_entries_are_kept(pristine, tmp_path):
    import os

    src, key, _ = pristine
    for i, name in enumerate(["old", "mid", "new"]):
        shutil.copytree(src / key, tmp_path / name)
        os.utime(tmp_path / name, (1000 + i, 1000 + i))
    (tmp_path / f"{key}.tmp-crashed").mkdir()
    os.utime(tmp_path / f"{key}.tmp-crashed", (1000, 1000))
    weight_cache.WeightCache(tmp_path).prune(keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mid", "new"]


def test_a_stale_key_is_a_miss_and_the_key_covers_what_the_weights_depend_on(pristine, lora_file):
    root, key, _ = pristine
    assert weight_cache.WeightCache(root).load(weight_cache.cache_key({"test": 2})) is None
    assert (root / key).exists()  # another key's entry is left alone
    folder = weight_cache.source_fingerprint(str(cached_tiny_pipeline_dir()), "model_index.json")
    assert folder is not None and len(folder["files"]) == 64
    assert weight_cache.source_fingerprint("nobody/not-cached", "model_index.json") is None
    lora = LoraSpec(str(lora_file), scale=0.7, expert="high_noise")
    fp = weight_cache.lora_fingerprint(lora, str(lora_file), {})
    assert (fp["scale"], fp["expert"], fp["size"]) == (0.7, "high_noise", lora_file.stat().st_size)
    base = {"model": folder, "loras": [fp], "dtype": "float32", "versions": {"torch": "2"}}
    changes = [{"dtype": "bfloat16"}, {"versions": {"torch": "3"}}, {"loras": [{**fp, "expert": "low_noise"}]}]
    assert len({weight_cache.cache_key(base)} | {weight_cache.cache_key({**base, **c}) for c in changes}) == 4
