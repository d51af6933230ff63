"""Fingerprints of what decides a model's activations: its weights and its tokenizer.

    fp = model_fingerprint(backend)   # {"weights": "sha256:…", "tokenizer": "sha256:…"}

An activation store records the fingerprint of the model it was built from, and a probing
result the fingerprint of every model it probed, so that neither is ever reused for another
model that happens to have the same name, path and shape (weights replaced in place, a store
tag reused by another ``--compare`` model). The rules are in docs/hooks.md ("Fingerprints").

The weights' fingerprint is a SHA-256 over every parameter in ``named_parameters()`` order:
its name, dtype, shape and raw bytes. Buffers (causal masks, rotary tables) are derived from
the config, not learnt, and are left out. The tokenizer's is a SHA-256 over its vocabulary (and,
for a Hugging Face fast tokenizer, its full serialisation: merges, normaliser, pre-tokeniser)
and the token it puts before every sentence. A data file's is a SHA-256 of its bytes. Hashing
reads every weight once: 0.33 s for a GPT-2-small-sized model (124M parameters) on one core of
the development CPU. It is computed once per backend and cached on it.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import torch
from torch import nn

FINGERPRINT_KEYS = ("weights", "tokenizer")
_CACHE_ATTR = "_stratascope_fingerprint"


def weights_fingerprint(module: nn.Module) -> str:
    """``"sha256:<hex>"`` of the parameters of ``module`` (names, dtypes, shapes and bytes)."""
    digest = hashlib.sha256()
    for name, param in module.named_parameters():
        t = param.detach()
        digest.update(f"{name}\x1f{t.dtype}\x1f{tuple(t.shape)}\x1e".encode())
        if t.device.type == "meta":  # offloaded or not materialised: nothing to read
            digest.update(b"meta")
            continue
        data = t.to("cpu").contiguous().reshape(-1).view(torch.uint8)  # any dtype, bf16 included
        digest.update(memoryview(data.numpy()))
    return f"sha256:{digest.hexdigest()}"


def tokenizer_fingerprint(adapter: Any) -> str:
    """``"sha256:<hex>"`` of a ``hooks.tokenize`` adapter's vocabulary and sentence-start token."""
    inner = getattr(adapter, "tokenizer", adapter)
    digest = hashlib.sha256(type(adapter).__name__.encode())
    itos = getattr(inner, "itos", None)
    if isinstance(itos, list):  # corpus.WordTokenizer
        digest.update(json.dumps(itos).encode())
    else:
        backend = getattr(inner, "backend_tokenizer", None)
        serialised = backend.to_str() if backend is not None and hasattr(backend, "to_str") else None
        if serialised is None:
            serialised = json.dumps(sorted(inner.get_vocab().items()))
        digest.update(serialised.encode())
    bos = getattr(adapter, "bos_id", getattr(inner, "bos_id", None))
    digest.update(f"\x1ebos={bos}".encode())
    return f"sha256:{digest.hexdigest()}"


def model_fingerprint(backend: Any) -> dict[str, str]:
    """``{"weights": …, "tokenizer": …}`` of a ``hooks`` backend, computed once and cached on it."""
    cached = getattr(backend, _CACHE_ATTR, None)
    if cached is None:
        cached = {"weights": weights_fingerprint(backend._module()),
                  "tokenizer": tokenizer_fingerprint(backend.tokenizer)}
        setattr(backend, _CACHE_ATTR, cached)
    return dict(cached)


def file_fingerprint(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """``"sha256:<hex>"`` of a file's bytes (a probing run's data file)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return f"sha256:{digest.hexdigest()}"


def short(fingerprint: str | None) -> str:
    """A fingerprint as people compare it: ``sha256:0123456789ab`` (12 hex digits)."""
    if fingerprint is None:
        return "not recorded"
    kind, _, hexdigest = fingerprint.partition(":")
    return f"{kind}:{hexdigest[:12]}" if hexdigest else fingerprint[:19]


def fingerprint_diff(recorded: dict[str, Any] | None, current: dict[str, str]) -> list[str]:
    """What differs between a recorded fingerprint and the current one, e.g.
    ``["weights sha256:0123456789ab → sha256:ba9876543210"]``; a missing record differs in every key."""
    recorded = recorded or {}
    return [f"{key} {short(recorded.get(key))} → {short(current.get(key))}"
            for key in FINGERPRINT_KEYS if recorded.get(key) != current.get(key)]
