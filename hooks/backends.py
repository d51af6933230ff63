"""Backends: one interface over our GPT, TransformerLens's bridge and nnsight.

    backend = hooks.load("runs/demo")           # our GPT + the run's tokenizer (hooks/loader.py)
    [out] = backend.run([["The", "dogs", "bark"]], patterns=True)
    out.resid      # [n_layer + 1, tokens, d_model], 0 = embeddings
    out.patterns   # [n_layer, n_head, tokens, tokens]
    out.logits     # [tokens, vocab]
    out.encoding.last  # token position of each word's last sub-token

Every forward pass on a model runs under that model's lock (`lock_for(model)`), shared by
every backend and intervention that wraps the same model object: TransformerLens and nnsight
attach hooks to the shared module, so two concurrent passes would see each other's hooks.
"""

from __future__ import annotations

import threading
import weakref
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from hooks.info import ModelInfo
from hooks.names import NameSelector, is_pairwise, layer_of, pattern_name, resid_names, select_hooks
from hooks.tokenize import Encoding, TokenizerAdapter, as_adapter

# ----------------------------------------------------------------------------- locks
_LOCKS: weakref.WeakKeyDictionary[Any, threading.RLock] = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def lock_for(model: Any) -> threading.RLock:
    """The re-entrant lock that serialises forward passes on `model` (one per model object)."""
    with _LOCKS_GUARD:
        lock = _LOCKS.get(model)
        if lock is None:
            lock = _LOCKS[model] = threading.RLock()
        return lock


# ----------------------------------------------------------------------------- results
@dataclass
class SentenceRun:
    """One sentence's activations; the token axis is the second-to-last of resid/logits."""

    encoding: Encoding
    resid: Tensor | None = None  # [n_layer + 1, t, d], 0 = embeddings
    patterns: Tensor | None = None  # [n_layer, n_head, t_query, t_key]
    logits: Tensor | None = None  # [t, vocab]
    activations: dict[str, Tensor] = field(default_factory=dict)  # name → [t, …] ([h, t, t] if pairwise)

    def at_words(self, x: Tensor, which: str = "last") -> Tensor:
        """Rows of `x` (token axis -2, or 0 for per-head hooks such as hook_z) at word positions."""
        return x[..., self.encoding.positions(which), :]

    def word_resid(self, which: str = "last") -> Tensor:
        """[n_layer + 1, n_words, d]."""
        if self.resid is None:
            raise ValueError("this run did not keep the residual stream (resid=False)")
        return self.at_words(self.resid, which)


class _StopForward(Exception):
    """Raised from the last needed hook to skip the rest of a forward pass."""


def _stack_rows(encodings: Sequence[Encoding], pad_id: int, device: torch.device | str) -> Tensor:
    """Right-padded ids [b, t_max]. Attention is causal, so padding after a sentence never
    changes its activations: no attention mask is needed."""
    t_max = max(len(e) for e in encodings)
    ids = torch.full((len(encodings), t_max), pad_id, dtype=torch.long)
    for row, enc in enumerate(encodings):
        ids[row, : len(enc)] = torch.tensor(enc.ids, dtype=torch.long)
    return ids.to(device)


# ----------------------------------------------------------------------------- the interface
class Backend(ABC):
    """One model behind a uniform interface: words in; residual stream, attention patterns,
    logits and any named hook out, per sentence."""

    kind: str = "?"

    def __init__(self, model: Any, tokenizer: Any, info: ModelInfo, lock_key: Any = None):
        self.model = model
        self.tokenizer: TokenizerAdapter = as_adapter(tokenizer)
        self._info = info
        # one lock per underlying torch module, whatever wraps it
        self.lock = lock_for(model if lock_key is None else lock_key)

    # -- description ----------------------------------------------------------
    @property
    def metadata(self) -> ModelInfo:
        return self._info

    @property
    def n_layer(self) -> int:
        return self._info.n_layer

    def resid_names(self) -> list[str]:
        return resid_names(self.n_layer)

    @abstractmethod
    def hook_names(self) -> list[str]:
        """Every hook name `run(names=…)` accepts."""

    def resolve(self, selector: NameSelector) -> list[str]:
        """Hook names picked by a name, glob, regex, predicate or list (see select_hooks)."""
        return select_hooks(self.hook_names(), selector)

    @property
    def device(self) -> torch.device:
        return next(self._module().parameters()).device

    @abstractmethod
    def _module(self) -> nn.Module: ...

    def __repr__(self) -> str:
        i = self._info
        return f"{type(self).__name__}({i.name!r}, {i.n_layer} layers, {i.n_head} heads, d_model={i.d_model})"

    # -- tokens ---------------------------------------------------------------
    def encode(self, words: Sequence[str] | Any) -> Encoding:
        """`<bos> w1 … wn` as token ids with each word's token span; too long raises."""
        if isinstance(words, Encoding):
            return words
        if hasattr(words, "forms"):  # a corpus.Sentence
            words = words.forms
        enc = self.tokenizer.encode(words)
        if len(enc) > self._info.context_len:
            raise ValueError(
                f"sentence of {len(enc.words)} words is {len(enc)} tokens with <bos>, more than the "
                f"context length of {self._info.name} ({self._info.context_len})"
            )
        return enc

    def tokens(self, sentences: Sequence[Sequence[str] | Encoding | Any]) -> Tensor:
        """Right-padded token ids [batch, positions] of a batch of sentences (for interventions)."""
        return _stack_rows([self.encode(s) for s in sentences], self.tokenizer.pad_id, self.device)

    # -- running --------------------------------------------------------------
    @abstractmethod
    def _forward(self, ids: Tensor, names: list[str], want_logits: bool) -> tuple[Tensor | None, dict[str, Tensor]]:
        """ids [b, t] on the model's device → (logits [b, t, V] or None, {name: [b, …]})."""

    def forward_tokens(self, ids: Tensor, names: Sequence[str] = (), logits: bool = True
                       ) -> tuple[Tensor | None, dict[str, Tensor]]:
        """One locked, gradient-free forward pass keeping the hooks `names` (exact names)."""
        names = list(dict.fromkeys(names))
        unknown = sorted(set(names) - set(self.hook_names()))
        if unknown:
            raise ValueError(f"{self._info.name} ({self.kind}) has no hook {unknown[0]!r}")
        if not names and not logits:
            return None, {}
        with self.lock, torch.no_grad():
            return self._forward(ids.to(self.device), names, logits)

    def run(
        self,
        sentences: Sequence[Sequence[str] | Encoding | Any],
        *,
        resid: bool = True,
        patterns: bool = False,
        logits: bool = True,
        names: NameSelector | Sequence[str] = (),
        device: str | torch.device | None = "cpu",
        dtype: torch.dtype | None = None,
    ) -> list[SentenceRun]:
        """Run a batch of sentences (lists of words, corpus Sentences or Encodings) in one
        forward pass; return one SentenceRun per sentence, padding removed.

        names: extra hooks to keep (a name, glob, regex or list), in `activations`.
        device/dtype: where and in which float dtype to return tensors (None: as computed).
        """
        if isinstance(sentences, (str, Encoding)) or (
            isinstance(sentences, Sequence) and sentences and isinstance(sentences[0], str)
        ):
            raise TypeError("run expects a batch: a list of sentences (each a list of words); use run_one")
        encodings = [self.encode(s) for s in sentences]
        if not encodings:
            return []
        extra = self.resolve(names) if names not in ((), [], None) else []
        keep = (self.resid_names() if resid else []) + (
            [pattern_name(i) for i in range(self.n_layer)] if patterns else []) + extra
        ids = _stack_rows(encodings, self.tokenizer.pad_id, self.device)
        out_logits, acts = self.forward_tokens(ids, keep, logits)

        def cut(name: str, row: int, t: int) -> Tensor:
            x = acts[name][row]
            x = x[:, :t, :t] if is_pairwise(name) else x[:t]
            return _to(x, device, dtype)

        runs = []
        for row, enc in enumerate(encodings):
            t = len(enc)
            runs.append(SentenceRun(
                encoding=enc,
                resid=torch.stack([cut(n, row, t) for n in self.resid_names()]) if resid else None,
                patterns=torch.stack([cut(pattern_name(i), row, t) for i in range(self.n_layer)]) if patterns else None,
                logits=_to(out_logits[row, :t], device, dtype) if logits else None,
                activations={n: cut(n, row, t) for n in extra},
            ))
        return runs

    def run_one(self, words: Sequence[str] | Any, **kwargs: Any) -> SentenceRun:
        return self.run([words], **kwargs)[0]


def _to(x: Tensor, device: str | torch.device | None, dtype: torch.dtype | None) -> Tensor:
    if dtype is not None and x.is_floating_point():
        x = x.to(dtype)
    return x.to(device) if device is not None else x


# ----------------------------------------------------------------------------- TransformerLens-style
class HookedBackend(Backend):
    """A model with TransformerLens hook points and `model.hooks(fwd_hooks=…)`: our GPT
    (a HookedRootModule) or a TransformerBridge."""

    def hook_names(self) -> list[str]:
        return list(self.model.hook_dict)

    def _module(self) -> nn.Module:
        return self.model

    def _call(self, ids: Tensor) -> Tensor:
        return self.model(ids)

    def _forward(self, ids: Tensor, names: list[str], want_logits: bool) -> tuple[Tensor | None, dict[str, Tensor]]:
        acts: dict[str, Tensor] = {}
        remaining = set(names)

        def keeper(name: str):
            def hook(x: Tensor, hook: Any = None) -> None:
                acts[name] = x.detach()
                remaining.discard(name)
                if not remaining and not want_logits:
                    raise _StopForward  # nothing after this point is needed
            return hook

        try:
            with self.model.hooks(fwd_hooks=[(n, keeper(n)) for n in names]):
                logits = self._call(ids)
        except _StopForward:
            logits = None
        silent = [n for n in names if n not in acts]
        if silent:  # e.g. a bridge alias of a component whose output is not a tensor
            raise ValueError(f"hook {silent[0]!r} of {self._info.name} ({self.kind}) exists but never fires in a "
                             f"forward pass of this architecture: pick another hook")
        return (logits if want_logits else None), acts


class NativeBackend(HookedBackend):
    """Our GPT (gpt_model.GPT); the run's tokenizer."""

    kind = "native"

    def __init__(self, model: Any, tokenizer: Any, name: str = "gpt", source: str = ""):
        cfg = model.cfg
        info = ModelInfo(name=name, backend=self.kind, source=source or name, n_layer=cfg.n_layer,
                         n_head=cfg.n_head, d_model=cfg.d_model, vocab_size=cfg.vocab_size,
                         context_len=cfg.context_len)
        model.eval()
        super().__init__(model, tokenizer, info)


class BridgeBackend(HookedBackend):
    """A Hugging Face model through TransformerLens's TransformerBridge (raw HF weights: no
    folding/centering, so activations equal the HF model's)."""

    kind = "tl"

    def __init__(self, bridge: Any, tokenizer: Any, name: str = "", source: str = ""):
        cfg = bridge.cfg
        name = name or str(getattr(cfg, "model_name", "bridge"))
        info = ModelInfo(name=name, backend=self.kind, source=source or name, n_layer=cfg.n_layers,
                         n_head=cfg.n_heads, d_model=cfg.d_model, vocab_size=cfg.d_vocab, context_len=cfg.n_ctx)
        bridge.eval()
        super().__init__(bridge, tokenizer, info)

    def hook_names(self) -> list[str]:
        # Rotary models (Llama, NeoX, Qwen2, …) have no position-embedding stream: the bridge
        # aliases hook_pos_embed to rotary_emb.hook_out, whose (cos, sin) output is never hooked.
        return [n for n, h in self.model.hook_dict.items()
                if not (n == "hook_pos_embed" and str(getattr(h, "name", "")).startswith("rotary_emb."))]

    def _call(self, ids: Tensor) -> Tensor:
        return self.model(ids, return_type="logits")


# ----------------------------------------------------------------------------- nnsight
_LAYER_LISTS = ("transformer.h", "model.layers", "gpt_neox.layers", "model.decoder.layers",
                "transformer.layers", "transformer.blocks", "layers", "h")
_ATTN = ("attn", "self_attn", "attention", "self_attention")
_MLP = ("mlp", "feed_forward", "ffn")


def _hf_dims(config: Any) -> tuple[int, int, int, int, int]:
    def get(*names: str) -> int:
        for n in names:
            v = getattr(config, n, None)
            if isinstance(v, int):
                return v
        raise ValueError(f"cannot read {names[0]} from the model config {type(config).__name__}")

    return (get("num_hidden_layers", "n_layer"), get("num_attention_heads", "n_head"),
            get("hidden_size", "n_embd", "d_model"), get("vocab_size"),
            get("max_position_embeddings", "n_positions", "n_ctx"))


class NNsightBackend(Backend):
    """Any Hugging Face causal LM through nnsight (TransformersModel, or NNsight(module)).

    Hooks (TransformerLens names): blocks.{i}.hook_resid_pre / hook_resid_post (the decoder
    layer's input / output), blocks.{i}.hook_attn_out / hook_mlp_out (its attention / MLP
    module outputs) and blocks.{i}.attn.hook_pattern (the model's eager attention weights).
    """

    kind = "nnsight"

    def __init__(self, model: Any, tokenizer: Any, name: str = "", source: str = ""):
        import nnsight

        if isinstance(model, nn.Module):  # a bare HF model: wrap it
            model = nnsight.NNsight(model)
        module = model._module
        if hasattr(module, "set_attn_implementation"):
            try:  # eager attention returns its weights (sdpa returns None)
                module.set_attn_implementation("eager")
            except Exception:  # noqa: BLE001 - keep the model's own; patterns will say so
                pass
        module.eval()
        n_layer, n_head, d_model, vocab_size, n_ctx = _hf_dims(module.config)
        self._layers_path = self._find_layers(module, n_layer)
        layers = self._get(module, self._layers_path)
        self._attn = next((a for a in _ATTN if hasattr(layers[0], a)), None)
        self._mlp = next((a for a in _MLP if hasattr(layers[0], a)), None)
        name = name or str(getattr(module.config, "name_or_path", "") or type(module).__name__)
        info = ModelInfo(name=name, backend=self.kind, source=source or name, n_layer=n_layer, n_head=n_head,
                         d_model=d_model, vocab_size=vocab_size, context_len=n_ctx)
        super().__init__(model, tokenizer, info, lock_key=module)
        names = []
        for i in range(n_layer):
            names.append(f"blocks.{i}.hook_resid_pre")
            if self._attn:
                names += [f"blocks.{i}.attn.hook_pattern", f"blocks.{i}.hook_attn_out"]
            if self._mlp:
                names.append(f"blocks.{i}.hook_mlp_out")
            names.append(f"blocks.{i}.hook_resid_post")
        self._names = names

    @staticmethod
    def _get(root: Any, path: str) -> Any:
        for part in path.split("."):
            root = getattr(root, part)
        return root

    @classmethod
    def _find_layers(cls, module: nn.Module, n_layer: int) -> str:
        for path in _LAYER_LISTS:
            try:
                layers = cls._get(module, path)
            except AttributeError:
                continue
            if isinstance(layers, nn.ModuleList) and len(layers) == n_layer:
                return path
        for path, sub in module.named_modules():
            if isinstance(sub, nn.ModuleList) and len(sub) == n_layer:
                return path
        raise ValueError(f"nnsight: cannot find the {n_layer} decoder layers of the {type(module).__name__} "
                         f"architecture; try the tl: backend (TransformerBridge) instead")

    def hook_names(self) -> list[str]:
        return self._names

    def _module(self) -> nn.Module:
        return self.model._module

    def _forward(self, ids: Tensor, names: list[str], want_logits: bool) -> tuple[Tensor | None, dict[str, Tensor]]:
        import nnsight

        wanted = set(names)
        want_patterns = any(n.endswith("attn.hook_pattern") for n in names)
        n_layer = self.n_layer
        # the last layer whose activations are needed: the trace can stop after it
        last = max((layer_of(n) for n in names), default=n_layer - 1)
        run_to_end = want_logits or want_patterns
        envoy = self.model
        layers = self._get(envoy, self._layers_path)
        attn_name, mlp_name = self._attn, self._mlp
        kwargs = {"use_cache": False}
        if want_patterns:
            kwargs["output_attentions"] = True
        # what to read, in execution order (nnsight needs modules accessed in the order they run)
        plan = []
        for i in range(last + 1):
            for key, where in ((f"blocks.{i}.hook_resid_pre", "input"), (f"blocks.{i}.hook_attn_out", attn_name),
                               (f"blocks.{i}.hook_mlp_out", mlp_name), (f"blocks.{i}.hook_resid_post", "output")):
                if key in wanted:
                    plan.append((key, i, where))
        keys = [key for key, _, _ in plan]
        # Only values passed to nnsight.save survive the trace block: build the list inside it.
        with envoy.trace(ids, **kwargs) as tracer:
            values = []
            for _, i, where in plan:
                layer = layers[i]
                if where == "input":
                    x = layer.input
                elif where == "output":
                    x = layer.output
                else:
                    x = getattr(layer, where).output
                values.append(x[0] if isinstance(x, tuple) else x)
            saved = nnsight.save(values)
            if run_to_end:
                output = envoy.output.save()
            else:
                tracer.stop()
        acts = {k: v.detach() for k, v in zip(keys, saved)}
        logits = None
        if run_to_end:
            logits = output.logits if hasattr(output, "logits") else output[0]
            if want_patterns:
                attentions = output.attentions if hasattr(output, "attentions") else None
                if attentions is None or len(attentions) < n_layer or any(a is None for a in attentions):
                    raise ValueError(
                        f"{self._info.name} returned no attention weights: load it with "
                        f"attn_implementation='eager' to get attention patterns"
                    )
                for n in names:
                    if n.endswith("attn.hook_pattern"):
                        acts[n] = attentions[layer_of(n)].detach()
        return (logits if want_logits else None), acts
