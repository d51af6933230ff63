"""Models for probing: residual-stream features of a corpus, and random-init twins.

``extract(backend, sentences)`` returns the residual stream at every word, ``[n_layer + 1,
n_words, d_model]`` (0 = embeddings; a word is read at its last sub-token, the hooks
convention), either in memory (batches through ``backend.run``) or through a
``hooks.ActivationStore`` on disk when ``store=DIR`` (memmaps; an interrupted extraction
resumes, a finished one is reused).

``random_init_twin(backend, seed)`` is the same architecture with random weights (Zhang &
Bowman 2018): for our GPT (native runs and ``gpt2:`` specs) ``GPT(model.cfg)`` built under
``torch.manual_seed(seed)``; for a Hugging Face model behind TransformerLens or nnsight a deep copy
(a bridge's components unwrapped back to the Hugging Face modules, so both backends give the same
twin) re-initialised with the model's own ``_init_weights`` under the same seed, probed through nnsight.
The twin keeps the tokenizer, so it reads exactly the same tokens.
"""

from __future__ import annotations

import copy
import re
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
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
    """Residual stream at every word of ``sentences``: float32 [n_layer + 1, n_words, d_model].

    In memory, sentences are run in batches of similar token length (sorted by length, so a
    batch is padded to little more than its sentences), and each batch's words are written into
    one preallocated tensor at their corpus rows. ``progress(done, total)`` after each batch."""
    if store is not None:
        from probes.features import to_tensor

        return to_tensor(extract_to_store(backend, sentences, store, dtype=store_dtype, batch_size=batch_size,
                                          progress=progress), device)
    total = len(sentences)
    if not total:
        raise ValueError("no sentences to extract")
    encodings = [backend.encode(s) for s in sentences]
    n_words = [len(e.words) for e in encodings]
    first_row = np.concatenate([[0], np.cumsum(n_words)])
    order = np.argsort([len(e) for e in encodings], kind="stable")
    out: Tensor | None = None
    done = 0
    for start in range(0, total, batch_size):
        batch = order[start:start + batch_size]
        runs = backend.run([encodings[i] for i in batch], logits=False, device="cpu", dtype=torch.float32)
        for i, r in zip(batch, runs):
            x = r.word_resid()  # [n_layer + 1, words, d]
            if out is None:
                out = torch.empty((x.shape[0], int(first_row[-1]), x.shape[2]), dtype=torch.float32)
            out[:, first_row[i]:first_row[i + 1]] = x
        done += len(batch)
        if progress is not None:
            progress(done, total)
    assert out is not None
    return out.to(device)


def extract_to_store(backend: Any, sentences: Sequence[Any], store: str | Path, *, dtype: str = "float16",
                     batch_size: int = 32, progress: Callable[[int, int], None] | None = None,
                     rebuild: bool = False) -> Any:
    """The residual stream at every word, in a ``hooks.ActivationStore`` at ``store`` (memmaps
    in ``dtype``; an interrupted extraction resumes, a finished one is reused; one built from
    another model or corpus raises ``StaleStoreError``, or is rebuilt with ``rebuild``)."""
    from hooks import ActivationStore

    return ActivationStore.build(store, backend, list(sentences), dtype=dtype, batch_size=batch_size,
                                 progress=progress, rebuild=rebuild)


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
    twin = _plain_copy(hf)
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


def _plain_copy(hf: torch.nn.Module) -> torch.nn.Module:
    """A deep copy of a Hugging Face model as Hugging Face built it.

    TransformerBridge adapts the model it boots in place: every submodule it adapts is replaced
    by a bridge component holding the original as ``._original_component``. Such a copy run
    through nnsight loses the eager attention weights (``output_attentions`` gives an empty
    tuple) and its parameter names differ from the model's, so the bridge components are
    swapped back for the modules they wrap: the twin of ``tl:DIR`` is then the same module tree
    as the twin of ``nnsight:DIR`` (and, for the same seed, the same weights)."""
    twin = copy.deepcopy(hf)

    def unwrap(module: torch.nn.Module) -> None:
        for key, child in list(module._modules.items()):
            inner = child
            while isinstance(inner, torch.nn.Module) and "_original_component" in inner._modules:
                inner = inner._modules["_original_component"]
            if inner is not child:
                module._modules[key] = inner
            if isinstance(inner, torch.nn.Module):
                unwrap(inner)

    unwrap(twin)
    left = sorted({type(m).__name__ for m in twin.modules() if type(m).__module__.startswith("transformer_lens")})
    if left:
        raise ValueError(f"cannot build a random-init twin of {type(hf).__name__}: TransformerBridge components "
                         f"{', '.join(left)} wrap no Hugging Face module (load it with nnsight: instead)")
    return twin


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
