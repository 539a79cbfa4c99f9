"""Reuse between renders of the same picture and prompt: small LRUs of the prompt embeddings and of the VAE's
encoding of the conditioning picture, so "slower hair, same seed" runs neither the text encoder nor the VAE
encoder again (a changed prompt encodes only the text that changed).

A backend holds one `EmbeddingCache` per loaded pipeline (a new load starts an empty one). The cached tensors
are the ones the first render used, so a re-render is bit-identical. On a GPU each entry stays on the device
(a 512-token prompt: ~4 MB in bf16; the picture's latents at 81 frames 480p: ~17 MB). `size=0` turns reuse off
(every call encodes). torch is imported inside functions.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL import Image

DEFAULT_SIZE = 8


class _LRU:
    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[Any, Any] = OrderedDict()

    def get(self, key: Any) -> Any:
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        return None

    def put(self, key: Any, value: Any) -> None:
        if self.size <= 0:
            return
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


def picture_key(picture: Image.Image) -> str:
    """A content hash of a (preprocessed) picture: mode, size and pixels."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{picture.mode}:{picture.size}".encode())
    h.update(picture.tobytes())
    return h.hexdigest()


class EmbeddingCache:
    """Prompt embeddings keyed by (model, text, max length, device, dtype); VAE encodings keyed by (picture hash,
    input shape, dtype, device, tiling, checksum). `stats()` counts hits and misses since the last call."""

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        self.size = size
        self._text = _LRU(size)
        self._image = _LRU(size)
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(("text_hits", "text_misses", "image_hits", "image_misses"), 0)

    def prompt_embeds(self, pipe: Any, text: str, *, max_len: int, device: Any, model_id: str) -> Any:
        """The text encoder's embeddings of `text` (diffusers' `encode_prompt` for one text, no guidance)."""
        import torch

        key = (model_id, text, max_len, str(device), str(pipe.text_encoder.dtype))
        with self._lock:
            hit = self._text.get(key)
            self._counts["text_hits" if hit is not None else "text_misses"] += 1
        if hit is not None:
            return hit
        with torch.no_grad():
            embeds = pipe.encode_prompt(
                prompt=text, negative_prompt=None, do_classifier_free_guidance=False, num_videos_per_prompt=1,
                max_sequence_length=max_len, device=device,
            )[0]
        with self._lock:
            self._text.put(key, embeds)
        return embeds

    @contextlib.contextmanager
    def vae_encodes(self, vae: Any, picture: str) -> Iterator[None]:
        """While inside, `vae.encode` of a conditioning clip made from `picture` (a `picture_key`) answers from
        the cache when it has seen the same input (same shape, dtype, device, tiling and checksum)."""
        import torch

        real = vae.encode
        shadowed = vae.__dict__.get("encode")

        def encode(x: Any, return_dict: bool = True) -> Any:
            key = (picture, tuple(x.shape), str(x.dtype), str(x.device), bool(vae.use_tiling),
                   float(x.sum(dtype=torch.float64)), return_dict)
            with self._lock:
                hit = self._image.get(key)
                self._counts["image_hits" if hit is not None else "image_misses"] += 1
            if hit is not None:
                return hit
            out = real(x, return_dict=return_dict)
            with self._lock:
                self._image.put(key, out)
            return out

        vae.encode = encode
        try:
            yield
        finally:
            if shadowed is None:
                del vae.encode
            else:
                vae.encode = shadowed

    def stats(self) -> dict[str, int]:
        """Hits and misses since the last `stats()` (one generation's), and the size."""
        with self._lock:
            out = {"size": self.size, **self._counts}
            self._counts = dict.fromkeys(self._counts, 0)
        return out
