"""hooks.load: a backend from a model spec (parsed by ``hooks.spec.parse_spec``) or a model object.

Every path refuses a model whose weights hold NaN or inf, naming the tensor, unless
``allow_nonfinite=True`` (CLI ``--allow-nonfinite``); weight files that are truncated, garbage or
pickles of anything but tensors are refused in one line naming the file, before any library
reads them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from gpt_model.finite import check_finite_weights
from gpt_model.rundir import locate
from hooks.backends import Backend, BridgeBackend, NativeBackend, NNsightBackend
from hooks.spec import SPEC_HELP, Spec, parse_spec
from hooks.tokenize import HFTokenizerAdapter, as_adapter, load_hf_tokenizer, load_run_tokenizer


def load(spec: Any, *, tokenizer: Any = None, device: str | torch.device = "cpu",
         dtype: torch.dtype | None = None, name: str | None = None, allow_nonfinite: bool = False) -> Backend:
    """A backend from a spec or a model object.

    Specs (see hooks/spec.py): `runs/NAME` or any run/checkpoint directory (also `native:PATH`) →
    our GPT with the run's tokenizer; `gpt2:SOURCE` → our GPT holding GPT-2 weights
    (gpt_model.load_gpt2); `tl:SOURCE` → TransformerBridge.boot_transformers; `nnsight:SOURCE` →
    nnsight.TransformersModel. SOURCE is a Hugging Face directory (with its tokenizer) or a hub
    name (from the local cache).
    Objects: a Backend (returned as is), a gpt_model.GPT (tokenizer= required), a
    TransformerBridge, an nnsight model, or a Hugging Face causal LM (wrapped with NNsight).
    allow_nonfinite: load weights holding NaN/inf instead of raising NonFiniteWeightsError.
    """
    if isinstance(spec, Backend):
        return spec
    if not isinstance(spec, (str, Path, Spec)):
        return _from_object(spec, tokenizer, name, allow_nonfinite)
    parsed = parse_spec(spec)
    if parsed.is_native:
        return _load_native(parsed, tokenizer, device, dtype, name, allow_nonfinite)
    return _load_hf(parsed, tokenizer, device, dtype, name, allow_nonfinite)


def _load_native(spec: Spec, tokenizer: Any, device: Any, dtype: torch.dtype | None, name: str | None,
                 allow_nonfinite: bool) -> Backend:
    from gpt_model.checkpoint import load_model, read_config

    path = spec.model_dir()
    if path is None:
        raise FileNotFoundError(f"no run or checkpoint directory at {spec.source!r} (specs: {SPEC_HELP})")
    config = read_config(path)
    model = load_model(path, device=device, allow_nonfinite=allow_nonfinite)
    if dtype is not None:
        model = model.to(dtype)
    tok = tokenizer if tokenizer is not None else load_run_tokenizer(path, config)
    run, checkpoint = locate(path)
    label = f"{run.name}@{checkpoint.name}" if checkpoint is not None else run.name
    return NativeBackend(model, tok, name=name or label, source=str(path))


def _load_hf(spec: Spec, tokenizer: Any, device: Any, dtype: torch.dtype | None, name: str | None,
             allow_nonfinite: bool) -> Backend:
    """gpt2:, tl: and nnsight: specs: a Hugging Face directory or cached hub name."""
    source, label = spec.source, name or f"{spec.kind}:{Path(spec.source).name or spec.source}"
    tok = tokenizer if tokenizer is not None else load_hf_tokenizer(source)
    adapter = as_adapter(tok)
    hf_tok = adapter.tokenizer if isinstance(adapter, HFTokenizerAdapter) else tok
    if spec.kind == "gpt2":
        from gpt_model.gpt2_weights import load_gpt2

        model = load_gpt2(source, device=device, dtype=dtype, allow_nonfinite=allow_nonfinite)
        return NativeBackend(model, adapter, name=label, source=str(spec))
    _check_weight_files(source)
    if spec.kind == "tl":
        from transformer_lens import TransformerBridge

        _check_bridge_supports(source)
        bridge = TransformerBridge.boot_transformers(source, tokenizer=hf_tok, device=device,
                                                     dtype=dtype or torch.float32)
        check_finite_weights(_bridge_tensors(bridge), str(spec), allow_nonfinite=allow_nonfinite)
        return BridgeBackend(bridge, adapter, name=label, source=str(spec))
    import nnsight

    model = nnsight.TransformersModel(source, dispatch=True, tokenizer=hf_tok, task="text-generation",
                                      attn_implementation="eager", dtype=dtype or torch.float32)
    check_finite_weights(model._module, str(spec), allow_nonfinite=allow_nonfinite)
    model._module.to(device)
    return NNsightBackend(model, adapter, name=label, source=str(spec))


def _check_bridge_supports(source: str) -> None:
    """Refuse, in one line naming the architecture, a model TransformerBridge has no adapter for
    (its own error lists all ~160 architectures it knows and does not say what to do)."""
    from importlib.metadata import PackageNotFoundError, version

    from transformers import AutoConfig

    try:  # the function boot_transformers itself asks (a private module: skip the check if it moves)
        from transformer_lens.model_bridge.sources._hf_format import determine_architecture_from_hf_config
    except ImportError:  # pragma: no cover
        return
    try:
        config = AutoConfig.from_pretrained(source, local_files_only=True)
    except Exception:  # noqa: BLE001 - not readable here: boot_transformers reports it
        return
    try:
        determine_architecture_from_hf_config(config)
    except ValueError:
        names = ", ".join(getattr(config, "architectures", None) or []) or f"model type {config.model_type!r}"
        try:
            tl_version = version("transformer-lens")
        except PackageNotFoundError:  # pragma: no cover
            tl_version = "?"
        raise ValueError(f"tl:{source}: TransformerBridge (transformer-lens {tl_version}) does not support the "
                         f"architecture {names}; load it with nnsight:{source} instead") from None


def _bridge_tensors(bridge: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """A bridge's weights under the Hugging Face model's names (the bridge wraps every module
    it adapts as ``._original_component``)."""
    return [(n.replace("._original_component", ""), t)
            for n, t in [*bridge.named_parameters(), *bridge.named_buffers()]]


def _check_weight_files(source: str) -> None:
    """Refuse unreadable or unsafe weight files before TransformerLens or nnsight reads them
    (their own errors are tracebacks that advise weights_only=False)."""
    from gpt_model.gpt2_weights import check_weight_files, local_model_dir

    try:
        directory = local_model_dir(source, local_files_only=True)
    except (FileNotFoundError, NotADirectoryError):
        return  # not on disk: the library reports it
    check_weight_files(directory)


def _from_object(obj: Any, tokenizer: Any, name: str | None, allow_nonfinite: bool) -> Backend:
    module = obj if isinstance(obj, nn.Module) else getattr(obj, "_module", None)  # an nnsight Envoy
    if isinstance(module, nn.Module):
        what = f"the given {type(obj).__name__}" + (f" {name!r}" if name else "")
        check_finite_weights(module, what, allow_nonfinite=allow_nonfinite)
    return _wrap_object(obj, tokenizer, name)


def _wrap_object(obj: Any, tokenizer: Any, name: str | None) -> Backend:
    from gpt_model.model import GPT

    if isinstance(obj, GPT):
        if tokenizer is None:
            raise ValueError("hooks.load(GPT model) needs tokenizer= (a WordTokenizer or HF tokenizer)")
        return NativeBackend(obj, tokenizer, name=name or "gpt")
    try:
        from transformer_lens import TransformerBridge
    except ImportError:  # pragma: no cover
        TransformerBridge = ()  # type: ignore[assignment]
    if isinstance(obj, TransformerBridge):
        tok = tokenizer if tokenizer is not None else obj.tokenizer
        return BridgeBackend(obj, tok, name=name or "")
    import nnsight

    if isinstance(obj, nnsight.Envoy):
        tok = tokenizer if tokenizer is not None else getattr(obj, "tokenizer", None)
        if tok is None:
            raise ValueError("this nnsight model has no tokenizer: pass tokenizer=")
        return NNsightBackend(obj, tok, name=name or "")
    if isinstance(obj, nn.Module) and hasattr(obj, "config"):
        if tokenizer is None:
            raise ValueError("hooks.load(Hugging Face model) needs tokenizer=")
        return NNsightBackend(obj, tokenizer, name=name or "")
    raise TypeError(f"cannot make a backend from {type(obj).__name__}")
