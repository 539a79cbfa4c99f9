"""The cold-start weight cache: the experts after LoRA fusing and quantization, saved once, loaded next time.

    cache = WeightCache(cache_root())
    experts = cache.load(key, device="cuda")         # {"transformer": module, …} or None (a miss)
    cache.save(key, parts, {"transformer": pipe.transformer, "transformer_2": pipe.transformer_2})

An entry `<home>/cache/wan/<key>/` holds each expert's state dict in safetensors shards and `manifest.json`
(the key, what it was computed from, each expert's class and config, each file's size and sha256). torchao's
quantized tensors are flattened to plain tensors plus JSON metadata by torchao's safetensors support
(`torchao.prototype.safetensors`), so nothing is pickled: int8 `Int8Tensor` (round-trip tested on the CPU) and
FP8 per-row `Float8Tensor` (its stored form tested on the CPU; FP8 matmuls need CUDA ≥ 8.9). A tensor type it
cannot flatten means the entry is not written (logged), never a pickle (`torch.save(weights_only=False)` would
run code from the cache folder on load). The key is a hash of everything the prepared weights depend on: the model's
revision (a local folder: its files' sizes and mtimes), the LoRA files with their scales and experts, the
quantization config, dtype, device type and the library versions.

An entry is written under a temporary name and renamed into place, its manifest written last; an entry whose
manifest, sizes or hashes do not check out is logged, deleted and rebuilt, never used. The newest
`KEEP_ENTRIES` entries are kept. torch, safetensors, torchao, accelerate and diffusers are imported inside
functions.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from vividflow.values import LoraSpec

log = logging.getLogger(__name__)

FORMAT = 1
MANIFEST = "manifest.json"
SHARD_BYTES = 2 << 30
KEEP_ENTRIES = 2
STALE_TEMP_S = 24 * 3600  # a temporary folder this old is left over from a crashed write
_PREFIX = "m."  # torchao's unflatten needs a dot in every name ("scale_shift_table" has none)


class CorruptEntry(ValueError):
    """A cache entry that does not match its manifest."""


def cache_root() -> Path:
    """`<storage.home>/cache/wan` (the settings' data home)."""
    from vividflow.settings import load_settings

    return Path(load_settings().home) / "cache" / "wan"


# --- the key ------------------------------------------------------------------------------------------------


def source_fingerprint(source: str, required_file: str) -> dict[str, Any] | None:
    """A local folder's files (names, sizes, mtimes, hashed) or a hub repo's revision in the local HF cache;
    None when the repo is not in the cache yet (the entry is written on the next load)."""
    path = Path(source).expanduser()
    if path.is_dir():
        digest = hashlib.sha256()
        for p in sorted(q for q in path.rglob("*") if q.is_file()):
            st = p.stat()
            digest.update(f"{p.relative_to(path).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return {"folder": str(path.resolve()), "files": digest.hexdigest()}
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(source, required_file)
    if not isinstance(cached, str):
        return None
    parts = Path(cached).parts
    return {"repo": source, "revision": parts[parts.index("snapshots") + 1] if "snapshots" in parts else None}


def lora_fingerprint(lora: LoraSpec, location: str, kwargs: Mapping[str, Any]) -> dict[str, Any] | None:
    """A LoRA file (size and mtime, or its hub blob name, which is its content hash) with its scale and expert."""
    weight_name = kwargs.get("weight_name")
    path = Path(location).expanduser()
    if path.is_dir():
        path = path / (weight_name or "pytorch_lora_weights.safetensors")
    if path.is_file():
        st = path.stat()
        file: dict[str, Any] = {"file": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    else:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(location, weight_name or "pytorch_lora_weights.safetensors")
        if not isinstance(cached, str):
            return None
        file = {"repo": location, "file": weight_name, "blob": Path(os.path.realpath(cached)).name}
    return {**file, "scale": lora.scale, "expert": lora.expert}


def cache_key(parts: Mapping[str, Any]) -> str:
    """A short stable hash of the key parts (JSON, sorted keys)."""
    return hashlib.sha256(json.dumps({"format": FORMAT, **parts}, sort_keys=True).encode()).hexdigest()[:32]


# --- the entries ---------------------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


class WeightCache:
    """Prepared experts on disk under `root`, one folder per key."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def entry(self, key: str) -> Path:
        return self.root / key

    def load(self, key: str, device: str = "cpu") -> dict[str, Any] | None:
        """The cached experts for `key` on `device`, or None (absent; a corrupt entry is deleted first)."""
        entry = self.entry(key)
        if not (entry / MANIFEST).is_file():
            if entry.is_dir():
                self._discard(entry, "it has no manifest")
            return None
        try:
            manifest = self._verified_manifest(entry, key)
            experts = {c: _build_expert(entry, info, device) for c, info in manifest["experts"].items()}
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as e:  # safetensors errors are these too
            self._discard(entry, f"{type(e).__name__}: {e}")
            return None
        os.utime(entry)  # recently used (pruning keeps the newest)
        log.info("wan: weight cache hit %s: %s loaded, fusing and quantizing skipped", key, ", ".join(experts))
        return experts

    def _verified_manifest(self, entry: Path, key: str) -> dict[str, Any]:
        manifest = json.loads((entry / MANIFEST).read_text())
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or manifest.get("key") != key:
            raise CorruptEntry(f"manifest does not match key {key} (format {FORMAT})")
        files = [f for info in manifest["experts"].values() for f in info["files"]]
        for f in files:
            size = (entry / f["name"]).stat().st_size
            if size != f["size"]:
                raise CorruptEntry(f"{f['name']} has {size} bytes, the manifest says {f['size']}")
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:  # hashlib releases the GIL
            digests = list(pool.map(lambda f: _sha256(entry / f["name"]), files))
        for f, digest in zip(files, digests):
            if digest != f["sha256"]:
                raise CorruptEntry(f"{f['name']} does not match its sha256")
        return manifest

    def _discard(self, entry: Path, why: str) -> None:
        log.warning("wan: weight cache entry %s is unusable (%s): deleted, rebuilding", entry.name, why)
        shutil.rmtree(entry, ignore_errors=True)

    def save(self, key: str, parts: Mapping[str, Any], experts: Mapping[str, Any]) -> Path | None:
        """Write the prepared `experts` ({component: module}) under `key`; None when it could not be written
        (no space, a tensor type torchao cannot flatten, an I/O error): logged, the load goes on."""
        from generation.wan_quant import parameter_bytes

        final = self.entry(key)
        if (final / MANIFEST).is_file():
            return final
        self.root.mkdir(parents=True, exist_ok=True)
        need = sum(parameter_bytes(m) for m in experts.values())
        free = shutil.disk_usage(self.root).free
        if free < need * 1.1 + (1 << 30):
            log.warning("wan: weight cache not written: %.1f GB needed, %.1f GB free under %s",
                        need / 1e9, free / 1e9, self.root)
            return None
        tmp = Path(tempfile.mkdtemp(prefix=f"{key}.tmp-", dir=self.root))
        try:
            manifest: dict[str, Any] = {"format": FORMAT, "key": key, "parts": dict(parts), "created": time.time(),
                                        "experts": {}}
            for component, model in experts.items():
                manifest["experts"][component] = {
                    "class": type(model).__name__, "config": json.loads(model.to_json_string()),
                    "files": _write_expert(tmp, component, model),
                }
            (tmp / (MANIFEST + ".part")).write_text(json.dumps(manifest, indent=1))
            os.replace(tmp / (MANIFEST + ".part"), tmp / MANIFEST)  # the manifest last
            os.rename(tmp, final)
        except (OSError, ValueError, RuntimeError) as e:
            shutil.rmtree(tmp, ignore_errors=True)
            if (final / MANIFEST).is_file():  # another process wrote it first
                return final
            log.warning("wan: weight cache not written (%s: %s)", type(e).__name__, e)
            return None
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        log.info("wan: weight cache entry %s written (%.1f GB)", key, need / 1e9)
        self.prune(keep=KEEP_ENTRIES)
        return final

    def prune(self, keep: int = KEEP_ENTRIES) -> None:
        """Keep the `keep` most recently used entries; drop temporary folders left by crashed writes."""
        now = time.time()
        entries = []
        for p in self.root.iterdir():
            if not p.is_dir():
                continue
            if ".tmp-" in p.name:
                if now - p.stat().st_mtime > STALE_TEMP_S:
                    shutil.rmtree(p, ignore_errors=True)
                continue
            entries.append(p)
        entries.sort(key=lambda p: p.stat().st_mtime, reverse=True)
        for old in entries[keep:]:
            log.info("wan: weight cache entry %s removed (keeping the newest %d)", old.name, keep)
            shutil.rmtree(old, ignore_errors=True)


def _write_expert(folder: Path, component: str, model: Any) -> list[dict[str, Any]]:
    """The expert's state dict as safetensors shards of about SHARD_BYTES, moved to the CPU one shard at a time."""
    from generation.wan_quant import tensor_bytes

    files: list[dict[str, Any]] = []
    group: dict[str, Any] = {}
    size = 0

    def flush() -> None:
        nonlocal group, size
        from safetensors.torch import save_file
        from torchao.prototype.safetensors.safetensors_support import flatten_tensor_state_dict

        data, metadata = flatten_tensor_state_dict({_PREFIX + k: v.detach().to("cpu") for k, v in group.items()})
        path = folder / f"{component}-{len(files):05d}.safetensors"
        save_file({k: v.contiguous() for k, v in data.items()}, str(path), metadata=metadata)
        files.append({"name": path.name, "size": path.stat().st_size, "sha256": _sha256(path)})
        group, size = {}, 0

    for name, tensor in model.state_dict().items():
        group[name] = tensor
        size += tensor_bytes(tensor)
        if size >= SHARD_BYTES:
            flush()
    if group or not files:
        flush()
    return files


def _build_expert(entry: Path, info: Mapping[str, Any], device: str) -> Any:
    """An expert from its class, config and shards: an empty skeleton (no weights allocated), then the
    cached tensors assigned in place."""
    import diffusers
    from accelerate import init_empty_weights
    from safetensors import safe_open
    from torchao.prototype.safetensors.safetensors_support import unflatten_tensor_state_dict

    cls = getattr(diffusers, str(info["class"]), None)
    if not (isinstance(cls, type) and issubclass(cls, diffusers.ModelMixin)):
        raise CorruptEntry(f"unknown model class {info['class']!r}")
    with init_empty_weights():  # parameters on the meta device; buffers (RoPE tables) computed for real
        model = cls.from_config(dict(info["config"]))
    state: dict[str, Any] = {}
    for f in info["files"]:
        with safe_open(str(entry / f["name"]), framework="pt", device=device) as fh:
            metadata = fh.metadata() or {}
            data = {k: fh.get_tensor(k) for k in fh.keys()}
        tensors, left = unflatten_tensor_state_dict(data, metadata)
        if left:
            raise CorruptEntry(f"{f['name']}: tensors outside its metadata: {sorted(left)[:3]}")
        state.update({k.removeprefix(_PREFIX): v for k, v in tensors.items()})
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval().requires_grad_(False)


def own_allocations(model: Any) -> None:
    """Give every parameter and buffer of `model` its own allocation (torch aligns those to 64 bytes).

    CPU BLAS kernels pick their code path by the alignment of the data, so an expert whose tensors sit at
    arbitrary offsets of a file (the model's shards or a cache entry) can differ from another copy in the last
    bits; with its own allocations the frames are the same whichever way the weights arrived.
    """
    import torch

    for module in model.modules():
        for name, p in list(module._parameters.items()):
            if p is not None:
                module._parameters[name] = torch.nn.Parameter(p.detach().clone(), requires_grad=p.requires_grad)
        for name, b in list(module._buffers.items()):
            if b is not None:
                module._buffers[name] = b.clone()
