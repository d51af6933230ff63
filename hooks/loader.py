"""hooks.load: a backend from a model spec (parsed by ``hooks.spec.parse_spec``) or a model object.

Every path refuses a model whose weights hold NaN or inf, naming the tensor, unless
``allow_nonfinite=True`` (CLI ``--allow-nonfinite``); weight files that are truncated, garbage or
pickles of anything but tensors are refused in one line naming the file, before any library
reads them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gpt_model.finite import check_finite_weights
from gpt_model.gpt2_weights import check_weight_files, load_gpt2, read_hf_config, weight_files
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
    """gpt2:, tl: and nnsight: specs: a Hugging Face directory or cached hub name. The directory
    is checked (config.json, weight files) before any library reads it, and every library is
    given the directory, so nothing is downloaded."""
    directory = _checked_hf_dir(spec)
    source, label = str(directory), name or f"{spec.kind}:{Path(spec.source).name or spec.source}"
    with _no_transformers_progress_bars():
        tok = tokenizer if tokenizer is not None else load_hf_tokenizer(directory)
        adapter = as_adapter(tok)
        hf_tok = adapter.tokenizer if isinstance(adapter, HFTokenizerAdapter) else tok
        if spec.kind == "gpt2":
            model = load_gpt2(directory, device=device, dtype=dtype, allow_nonfinite=allow_nonfinite)
            return NativeBackend(model, adapter, name=label, source=str(spec))
        check_weight_files(directory)
        if spec.kind == "tl":
            from transformer_lens import TransformerBridge

            _check_bridge_supports(spec, source)
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


def _checked_hf_dir(spec: Spec) -> Path:
    """The spec's directory, holding a readable config.json (a JSON object) and weight files:
    one line naming the spec and what is missing otherwise (the libraries' own errors are
    tracebacks, or several lines of advice about the hub)."""
    directory = spec.hf_dir()
    try:
        read_hf_config(directory)
        weight_files(directory)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"{spec}: {err}") from None
    return directory


_BARS_LOCK = threading.Lock()
_bars = {"loading": 0, "transformers_on": True, "hub_off": False}  # loads under way; settings to restore


@contextmanager
def _no_transformers_progress_bars() -> Iterator[None]:
    """Switch off transformers' own progress bars (its "Loading weights" bar, printed even under
    --quiet) while a model loads, and restore the setting afterwards. Loads may overlap (the
    dashboard loads in threads): the setting is restored when the last one ends."""
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars
    from transformers.utils import logging as hf_logging

    with _BARS_LOCK:
        if _bars["loading"] == 0:
            _bars.update(transformers_on=hf_logging.is_progress_bar_enabled(), hub_off=are_progress_bars_disabled())
            hf_logging.disable_progress_bar()
        _bars["loading"] += 1
    try:
        yield
    finally:
        with _BARS_LOCK:
            _bars["loading"] -= 1
            if _bars["loading"] == 0 and _bars["transformers_on"]:
                hf_logging.enable_progress_bar()  # switches the hub's bars on too: put them back as they were
                if _bars["hub_off"]:
                    disable_progress_bars()


def _check_bridge_supports(spec: Spec, source: str) -> None:
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
        raise ValueError(f"{spec}: TransformerBridge (transformer-lens {tl_version}) does not support the "
                         f"architecture {names}; load it with nnsight:{spec.source} instead") from None


def _bridge_tensors(bridge: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """A bridge's weights under the Hugging Face model's names (the bridge wraps every module
    it adapts as ``._original_component``)."""
    return [(n.replace("._original_component", ""), t)
            for n, t in [*bridge.named_parameters(), *bridge.named_buffers()]]


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
