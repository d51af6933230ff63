"""Models for probing: residual-stream features of a corpus, and random-init twins.

``extract(backend, sentences)`` returns the residual stream at every word, ``[n_layer + 1,
n_words, d_model]`` (0 = embeddings; a word is read at its last sub-token, the hooks
convention), either in memory (batches through ``backend.run``) or through a
``hooks.ActivationStore`` on disk when ``store=DIR`` (memmaps; an interrupted extraction
resumes, a finished one is reused).

``random_init_twin(backend, seed)`` is the same architecture with random weights (Zhang &
Bowman 2018): for our GPT (native runs and ``gpt2:`` specs) ``GPT(model.cfg)`` built under
``torch.manual_seed(seed)``; for a Hugging Face model behind TransformerLens or nnsight a deep copy
re-initialised with the model's own ``_init_weights`` under the same seed, probed through nnsight.
The twin keeps the tokenizer, so it reads exactly the same tokens.
"""

from __future__ import annotations

import copy
import re
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor


def load_backend(spec: Any, *, device: str = "cpu", allow_nonfinite: bool = False) -> Any:
    """``hooks.load`` (a spec string, a run directory, a model object or a backend).
    ``allow_nonfinite``: load weights holding NaN/inf instead of refusing them."""
    import hooks

    return hooks.load(spec, device=device, allow_nonfinite=allow_nonfinite)


def model_tag(name: str) -> str:
    """A file-name-safe tag for a model name ("gpt2:/m/gpt2" → "gpt2-gpt2")."""
    tag = re.sub(r"[^A-Za-z0-9._@+-]+", "-", str(name)).strip("-.")
    return tag or "model"


def check_device(device: str) -> None:
    """ValueError (one line) when ``device`` is not a torch device this machine has: a CUDA
    device on a CPU-only build, a GPU index past the last one, MPS off Apple silicon."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device {device!r} is not a torch device ({err})") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
            raise ValueError(f"device {device!r}: no CUDA device available (torch {torch.__version__}, {build}); "
                             f"use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {device!r}: MPS is not available on this machine; use --device cpu")


def fits_context(backend: Any, sentence: Any) -> bool:
    """Whether the sentence can be encoded within the model's context."""
    try:
        backend.encode(sentence)
    except ValueError:
        return False
    return True


def unknown_words(backend: Any, sentences: Sequence[Any], top: int = 10) -> dict[str, Any] | None:
    """For a word-level tokenizer (ours): how many words of ``sentences`` are not in its
    vocabulary, and so are read as ``<unk>`` — ``{"tokens", "words", "rate", "types", "top"}``.
    None for subword tokenizers, which have no unknown words."""
    inner = getattr(getattr(backend, "tokenizer", None), "tokenizer", None)
    stoi = getattr(inner, "stoi", None)
    if not isinstance(stoi, dict):
        return None
    missing: Counter[str] = Counter()
    total = 0
    for s in sentences:
        words = s.forms if hasattr(s, "forms") else s
        total += len(words)
        missing.update(w for w in words if w not in stoi)
    n = sum(missing.values())
    return {"tokens": n, "words": total, "rate": n / total if total else 0.0, "types": len(missing),
            "top": [[w, c] for w, c in missing.most_common(top)]}


def extract(backend: Any, sentences: Sequence[Any], *, batch_size: int = 32, store: str | Path | None = None,
            store_dtype: str = "float32", device: str | torch.device = "cpu",
            progress: Callable[[int, int], None] | None = None) -> Tensor:
    """Residual stream at every word of ``sentences``: float32 [n_layer + 1, n_words, d_model]."""
    if store is not None:
        from hooks import ActivationStore

        st = ActivationStore.build(store, backend, list(sentences), dtype=store_dtype, batch_size=batch_size,
                                   progress=progress)
        from probes.features import to_tensor

        return to_tensor(st, device)
    chunks: list[Tensor] = []
    total = len(sentences)
    for start in range(0, total, batch_size):
        batch = list(sentences[start:start + batch_size])
        runs = backend.run(batch, logits=False, device="cpu", dtype=torch.float32)
        chunks.extend(r.word_resid() for r in runs)
        if progress is not None:
            progress(min(start + batch_size, total), total)
    if not chunks:
        raise ValueError("no sentences to extract")
    return torch.cat(chunks, dim=1).to(device)


def random_init_twin(backend: Any, seed: int = 0, name: str | None = None) -> Any:
    """The backend's architecture with freshly initialised weights (see module doc)."""
    import hooks
    from gpt_model.model import GPT

    info = backend.metadata
    label = name or f"{info.name}+random-init"
    model = backend.model
    if isinstance(model, GPT):
        device = next(model.parameters()).device
        dtype = next(model.parameters()).dtype
        for s in range(seed, seed + 10):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(s)
                twin = GPT(model.cfg)
            twin = twin.to(device=device, dtype=dtype).eval()
            # a model that is itself a fresh GPT built with the same seed would be its own twin
            if not _same_weights(model, twin):
                break
            seed = s + 1
        return hooks.NativeBackend(twin, backend.tokenizer, name=label, source=f"random-init({info.source}, seed={seed})")
    hf = _hf_module(backend)
    if hf is None:
        raise ValueError(f"cannot build a random-init twin of {info.name} ({type(model).__name__})")
    twin = copy.deepcopy(hf)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if hasattr(twin, "_init_weights"):
            twin.apply(twin._init_weights)
        else:  # pragma: no cover - every transformers PreTrainedModel has it
            for module in twin.modules():
                if hasattr(module, "reset_parameters"):
                    module.reset_parameters()
    twin.eval()
    return hooks.NNsightBackend(twin, backend.tokenizer, name=label, source=f"random-init({info.source}, seed={seed})")


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    pa, pb = dict(a.named_parameters()), dict(b.named_parameters())
    return pa.keys() == pb.keys() and all(torch.equal(pa[k], pb[k]) for k in pa)


def _hf_module(backend: Any) -> Any:
    model = backend.model
    original = getattr(model, "__dict__", {}).get("original_model")  # TransformerBridge
    if original is not None:
        return original
    inner = getattr(model, "_module", None)  # nnsight
    if inner is not None:
        return inner
    if isinstance(model, torch.nn.Module) and hasattr(model, "config"):
        return model
    return None
