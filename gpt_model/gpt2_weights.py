"""Import and export OpenAI GPT-2 weights in the Hugging Face layout.

    from gpt_model.gpt2_weights import load_gpt2, save_hf_gpt2

    model = load_gpt2("gpt2")                    # hub name, from the HF cache (or the network)
    model = load_gpt2("/models/gpt2-medium")     # config.json + model.safetensors / pytorch_model.bin
    model = load_gpt2(hf_model)                  # a transformers GPT2LMHeadModel or GPT2Model
    save_hf_gpt2(model, "out/")                  # GPT2LMHeadModel.from_pretrained("out/") gives the same logits

GPT-2 is our Pre-LN / LayerNorm / GELU(tanh) / biased / tied variant. Its `Conv1D` layers store
weights as [in, out], the transpose of `nn.Linear`'s [out, in]. Hugging Face's hidden_states[-1]
is the residual stream *after* `ln_f` (our `ln_final.hook_normalized`), not the last block's
`hook_resid_post`; hidden_states[i + 1] for i < n_layer - 1 is `blocks.{i}.hook_resid_post`.
Pickled `pytorch_model.bin` files are read only with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import pickle
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from corpus.durable import atomic_write_text, atomic_write_with
from corpus.textio import read_json
from corpus.tokenizers import HF_CONFIG_SHAPE
from gpt_model.config import GPTConfig
from gpt_model.finite import check_finite_weights
from gpt_model.model import GPT

# Every spelling of GPT-2's tanh GELU in transformers' ACT2FN (same formula, same numbers).
TANH_GELUS = ("gelu_new", "gelu_pytorch_tanh", "gelu_fast")
# Non-parameter buffers of older GPT-2 checkpoints (the causal mask and its fill value).
IGNORED_KEY = re.compile(r"h\.\d+\.attn\.(bias|masked_bias)")
HUB_ID = re.compile(r"[\w.-]+(/[\w.-]+)?")
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json",
                "pytorch_model.bin", "pytorch_model.bin.index.json")
# torch's weights-only unpickler reads pickle protocol 2 (torch.save's default); it warns about
# others before it (usually) refuses them: that warning is kept off the terminal, our refusal says it
PROTOCOL_WARNING = "Detected pickle protocol"


# ------------------------------------------------------------------ config mapping
def config_from_hf(hf_cfg: Any) -> GPTConfig:
    """A transformers GPT2Config (or its dict) → our GPTConfig; unsupported options raise ValueError."""
    c = hf_cfg if isinstance(hf_cfg, dict) else hf_cfg.to_dict()
    model_type = c.get("model_type", "gpt2")
    if model_type != "gpt2":
        raise ValueError(f"not a GPT-2 checkpoint: its config says model_type {model_type!r}, not 'gpt2'")
    act = c.get("activation_function", "gelu_new")
    if act not in TANH_GELUS:
        raise ValueError(
            f"unsupported activation_function {act!r}: our MLP is GPT-2's tanh GELU ({', '.join(TANH_GELUS)})"
        )
    # reorder_and_upcast_attn only changes rounding (scale before QKᵀ, softmax in fp32): same maths.
    for flag, wanted in (("scale_attn_by_inverse_layer_idx", False), ("scale_attn_weights", True),
                         ("add_cross_attention", False)):
        if c.get(flag, wanted) != wanted:
            raise ValueError(f"unsupported GPT-2 option {flag}={c[flag]!r}: our model needs {flag}={wanted}")
    return GPTConfig(
        n_layer=c.get("n_layer", 12),
        d_model=c.get("n_embd", 768),
        n_head=c.get("n_head", 12),
        d_mlp=c.get("n_inner"),
        context_len=c.get("n_positions", 1024),
        vocab_size=c.get("vocab_size", 50257),
        norm="layernorm",
        ln_placement="pre",
        mlp="gelu",
        residual="standard",
        tie_embeddings=bool(c.get("tie_word_embeddings", True)),
        bias=True,
        dropout=0.0,
        init_std=c.get("initializer_range", 0.02),
        norm_eps=c.get("layer_norm_epsilon", 1e-5),
    )


def config_to_hf(cfg: GPTConfig) -> Any:
    """Our GPTConfig → a transformers GPT2Config; a non-GPT-2 variant raises ValueError naming the field."""
    from transformers import GPT2Config

    # scaled_init differs from standard only at initialisation: the forward pass is GPT-2's.
    for field, allowed in (("norm", ("layernorm",)), ("ln_placement", ("pre",)), ("mlp", ("gelu",)),
                           ("residual", ("standard", "scaled_init")), ("bias", (True,))):
        value = getattr(cfg, field)
        if value not in allowed:
            raise ValueError(
                f"GPTConfig.{field}={value!r} has no GPT-2 equivalent (GPT-2 needs {field} in {allowed})"
            )
    special = 50256 if cfg.vocab_size > 50256 else None  # GPT-2's <|endoftext|>, if the vocab has it
    return GPT2Config(
        vocab_size=cfg.vocab_size, n_positions=cfg.context_len, n_embd=cfg.d_model,
        n_layer=cfg.n_layer, n_head=cfg.n_head, n_inner=cfg.d_mlp, activation_function="gelu_new",
        resid_pdrop=cfg.dropout, embd_pdrop=cfg.dropout, attn_pdrop=cfg.dropout,
        layer_norm_epsilon=cfg.norm_eps, initializer_range=cfg.init_std,
        tie_word_embeddings=cfg.tie_embeddings, bos_token_id=special, eos_token_id=special,
        architectures=["GPT2LMHeadModel"],
    )


# ------------------------------------------------------------------ tensor layout
def hf_layout(cfg: GPTConfig) -> dict[str, tuple[str, tuple[int, ...], bool]]:
    """HF key (no "transformer." prefix) → (our key, HF shape, HF stores it transposed)."""
    d, m, V = cfg.d_model, cfg.mlp_width, cfg.vocab_size
    layout: dict[str, tuple[str, tuple[int, ...], bool]] = {
        "wte.weight": ("embed.weight", (V, d), False),
        "wpe.weight": ("pos_embed.weight", (cfg.context_len, d), False),
        "ln_f.weight": ("ln_final.norm.weight", (d,), False),
        "ln_f.bias": ("ln_final.norm.bias", (d,), False),
    }
    for i in range(cfg.n_layer):
        ours, hf = f"blocks.{i}.", f"h.{i}."
        for hf_name, our_name, w_shape, b_len, transposed in (
            ("ln_1", "ln1.norm", (d,), d, False),
            ("attn.c_attn", "attn.qkv", (d, 3 * d), 3 * d, True),
            ("attn.c_proj", "attn.out", (d, d), d, True),
            ("ln_2", "ln2.norm", (d,), d, False),
            ("mlp.c_fc", "mlp.fc_in", (d, m), m, True),
            ("mlp.c_proj", "mlp.fc_out", (m, d), d, True),
        ):
            layout[hf + hf_name + ".weight"] = (ours + our_name + ".weight", w_shape, transposed)
            layout[hf + hf_name + ".bias"] = (ours + our_name + ".bias", (b_len,), False)
    if not cfg.tie_embeddings:
        layout["lm_head.weight"] = ("unembed.weight", (V, d), False)
    return layout


def _strip_prefix(key: str) -> str:
    return key.removeprefix("transformer.")


def convert_from_hf(hf_state: dict[str, Tensor], cfg: GPTConfig) -> dict[str, Tensor]:
    """Check an HF GPT-2 state dict against `cfg` and rename/transpose it into ours."""
    layout = hf_layout(cfg)
    by_key: dict[str, tuple[str, Tensor]] = {}  # stripped key → (key as stored, tensor)
    for key, tensor in hf_state.items():
        short = _strip_prefix(key)
        if IGNORED_KEY.fullmatch(short) or (short == "lm_head.weight" and cfg.tie_embeddings):
            continue  # a tied lm_head is wte itself, as in GPT2LMHeadModel
        if short in by_key:
            raise ValueError(f"tensor {short!r} appears twice: as {by_key[short][0]!r} and {key!r}")
        by_key[short] = (key, tensor)
    missing = [k for k in layout if k not in by_key]
    if missing:
        raise ValueError(f"not a GPT-2 checkpoint of this shape: missing tensor(s) {', '.join(missing[:5])}"
                         + (f" and {len(missing) - 5} more" if len(missing) > 5 else ""))
    unexpected = [by_key[k][0] for k in by_key if k not in layout]
    if unexpected:
        raise ValueError(f"unexpected tensor(s) in a GPT-2 checkpoint: {', '.join(unexpected[:5])}")
    ours: dict[str, Tensor] = {}
    for short, (our_key, shape, transposed) in layout.items():
        key, tensor = by_key[short]
        if tuple(tensor.shape) != shape:
            raise ValueError(f"{key}: expected shape {shape}, got {tuple(tensor.shape)}")
        if not tensor.is_floating_point():
            raise ValueError(f"{key}: expected a floating-point tensor, got {tensor.dtype}")
        ours[our_key] = tensor.t() if transposed else tensor
    return ours


def convert_to_hf(model: GPT) -> dict[str, Tensor]:
    """Our state dict → HF GPT2LMHeadModel's keys and Conv1D layout (contiguous CPU copies)."""
    state = model.state_dict()
    out = {}
    for short, (our_key, _, transposed) in hf_layout(model.cfg).items():
        tensor = state[our_key].detach()
        tensor = tensor.t() if transposed else tensor
        key = short if short == "lm_head.weight" else "transformer." + short
        out[key] = tensor.to("cpu", copy=True).contiguous()
    return out


# ------------------------------------------------------------------ reading checkpoints
def weight_files(directory: Path) -> list[Path]:
    """The files holding an HF directory's weights, in the order transformers prefers them:
    model.safetensors (or its shards), then pytorch_model.bin (or its shards)."""
    for name in WEIGHT_FILES:
        path = directory / name
        if not path.is_file():
            continue
        if name.endswith(".index.json"):
            return [directory / shard for shard in _shards(path)]
        return [path]
    raise FileNotFoundError(f"no weights in {directory}: expected one of {', '.join(WEIGHT_FILES)}")


def _shards(index: Path) -> list[str]:
    data = read_json(index, "a JSON object with a 'weight_map' (a sharded weight index)")
    try:
        return sorted(set(data["weight_map"].values()))
    except (KeyError, TypeError, AttributeError) as err:
        raise ValueError(f"{index}: not a readable weight index ({type(err).__name__}: {err})") from None


def read_weight_file(path: Path) -> dict[str, Tensor]:
    """The tensors of one .safetensors or pickled .bin file. A pickle is read with
    ``torch.load(weights_only=True)`` only, so nothing but tensors is ever unpickled; a file that
    is truncated, garbage or holds other objects raises ValueError naming it, in one line."""
    if not path.is_file():
        raise FileNotFoundError(f"weight file not found: {path}")
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path))
        except (SafetensorError, OSError) as err:
            raise _unreadable(path, "safetensors", err) from None
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=PROTOCOL_WARNING, category=UserWarning)
            # zip-format files are memory-mapped: checking one costs no copy of its tensors
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except pickle.UnpicklingError as err:
        protocol = _pickle_protocol(path)
        note = (f"; it uses pickle protocol {protocol}, which torch's weights-only loader does not read: "
                f"save the weights as model.safetensors" if protocol is not None and protocol > 2 else "")
        raise ValueError(f"{path}: not a readable PyTorch weights file: refusing to unpickle anything but "
                         f"tensors ({_unpickling_reason(err)}){note}") from None
    except (EOFError, OSError, RuntimeError, ValueError) as err:
        raise _unreadable(path, "PyTorch weights", err) from None
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state dict, got {type(state).__name__}")
    return state


def _pickle_protocol(path: Path) -> int | None:
    """The pickle protocol of a torch.save file (zip or legacy format), or None if unknown."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                name = next((n for n in archive.namelist() if n.endswith("data.pkl")), None)
                head = archive.open(name).read(2) if name else b""
        else:
            with open(path, "rb") as handle:
                head = handle.read(2)
    except (OSError, zipfile.BadZipFile):
        return None
    return head[1] if len(head) == 2 and head[0] == pickle.PROTO[0] else None


def _unreadable(path: Path, kind: str, err: Exception) -> ValueError:
    detail = str(err).strip().splitlines()[0] if str(err).strip() else "no data"
    return ValueError(f"{path}: not a readable {kind} file (truncated or corrupt: {type(err).__name__}: {detail})")


def _unpickling_reason(err: Exception) -> str:
    """What torch's weights-only unpickler refused, without its advice to retry with
    weights_only=False (which would run whatever the file holds)."""
    boilerplate = ("Weights only load failed", "Check the documentation of torch.load", "Please file an issue")
    reasons = [line.strip() for line in str(err).splitlines()
               if line.strip() and not line.strip().startswith(boilerplate)]
    return "; ".join(reasons) or "an object the weights-only unpickler refuses"


def check_weight_files(directory: Path) -> None:
    """Check that the weights of an HF directory can be read safely before a library
    (TransformerLens, nnsight) loads them: safetensors headers must cover their files, pickles
    must hold only tensors. One-line ValueError naming the file otherwise."""
    for path in weight_files(directory):
        if path.suffix == ".safetensors":
            try:
                with safe_open(str(path), framework="pt") as f:
                    f.keys()
            except (SafetensorError, OSError) as err:
                raise _unreadable(path, "safetensors", err) from None
        else:
            read_weight_file(path)


def _read_weights(directory: Path) -> dict[str, Tensor]:
    """The tensors of an HF directory: safetensors (single or sharded) first, then .bin."""
    try:
        files = weight_files(directory)
    except FileNotFoundError:
        raise FileNotFoundError(f"no GPT-2 weights in {directory}: expected one of {', '.join(WEIGHT_FILES)}") from None
    state: dict[str, Tensor] = {}
    for path in files:
        state.update(read_weight_file(path))
    return state


def read_hf_config(directory: Path) -> dict[str, Any]:
    """A Hugging Face directory's config.json as a dict; FileNotFoundError when missing, a
    one-line ValueError naming the file (and line) when it is not UTF-8, not JSON or not an object."""
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"no config.json in {directory}: not a Hugging Face model directory")
    return read_json(config_path, HF_CONFIG_SHAPE)


def _read_directory(directory: Path) -> tuple[GPTConfig, dict[str, Tensor]]:
    cfg = config_from_hf(read_hf_config(directory))
    return cfg, _read_weights(directory)


def _resolve_hub(name: str, revision: str | None, local_files_only: bool) -> Path:
    """Download (or find in the HF cache) config.json and the weights of a hub model."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    def fetch(filename: str) -> Path:
        return Path(hf_hub_download(name, filename, revision=revision, local_files_only=local_files_only))

    try:
        directory = fetch("config.json").parent
    except (OSError, EntryNotFoundError, ValueError) as err:
        where = "in the Hugging Face cache" + ("" if local_files_only else " nor on the hub")
        raise FileNotFoundError(
            f"{name!r} is neither a local directory nor a model {where} ({hub_cache_dir()}): "
            f"{type(err).__name__}: {_first_line(err)}"
        ) from err
    for filename in WEIGHT_FILES:
        try:
            path = fetch(filename)
        except EntryNotFoundError:
            continue
        if filename.endswith(".index.json"):
            for shard in _shards(path):
                fetch(shard)
        return directory
    raise FileNotFoundError(f"hub model {name!r} has no weights we read ({', '.join(WEIGHT_FILES)})")


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else "no details"


def hub_cache_dir() -> str:
    """The Hugging Face hub cache directory hub names are looked up in."""
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def is_hub_name(source: str | Path) -> bool:
    """Whether ``source`` is spelled like a hub model name ("gpt2", "org/name")."""
    return isinstance(source, str) and bool(HUB_ID.fullmatch(source)) and not source.startswith(".")


def cached_hub_dir(name: str, revision: str | None = None) -> Path | None:
    """The snapshot directory of hub model ``name`` in the local Hugging Face cache (the one
    holding its config.json), or None when it is not there. Never touches the network."""
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(name, "config.json", revision=revision)
    except ValueError:  # not a valid repo id
        return None
    return Path(found).parent if isinstance(found, str) else None


def _hf_model_parts(hf_model: nn.Module) -> tuple[GPTConfig, dict[str, Tensor]]:
    cfg = config_from_hf(hf_model.config)
    return cfg, {k: v.detach() for k, v in hf_model.state_dict().items()}


def _source_parts(source: Any, revision: str | None, local_files_only: bool
                  ) -> tuple[GPTConfig, dict[str, Tensor], str]:
    """(config, HF state dict, where it came from)."""
    if isinstance(source, nn.Module):
        if not hasattr(source, "config"):
            raise TypeError(f"expected a transformers GPT-2 model, got {type(source).__name__}")
        return (*_hf_model_parts(source), f"the given {type(source).__name__}")
    if not isinstance(source, (str, Path)):
        raise TypeError(f"source must be a directory, a hub name or a GPT-2 model, got {type(source).__name__}")
    directory = local_model_dir(source, revision, local_files_only)
    return (*_read_directory(directory), str(directory))


def local_model_dir(source: str | Path, revision: str | None = None, local_files_only: bool = True) -> Path:
    """The directory holding a model: ``source`` itself, or a hub name's snapshot in the HF cache
    (downloaded first unless ``local_files_only``)."""
    path = Path(source).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise NotADirectoryError(f"{path} is a file: pass the directory holding config.json and the weights")
    if is_hub_name(source):
        return _resolve_hub(str(source), revision, local_files_only)
    raise FileNotFoundError(f"no such directory: {path}")


# ------------------------------------------------------------------ public API
def load_gpt2(
    source: str | Path | nn.Module,
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    revision: str | None = None,
    local_files_only: bool = False,
    allow_nonfinite: bool = False,
) -> GPT:
    """A GPT holding GPT-2 weights, in eval mode.

    source: a directory in Hugging Face layout (config.json + model.safetensors, a sharded
    safetensors index, or pytorch_model.bin), a transformers GPT2LMHeadModel / GPT2Model, or a hub
    name ("gpt2", "openai-community/gpt2-medium") looked up in the HF cache, then on the hub
    unless `local_files_only` (or HF_HUB_OFFLINE=1). dtype defaults to float32, device to CPU.
    Weights holding NaN or inf are refused (NonFiniteWeightsError naming the tensor) unless
    `allow_nonfinite`; unreadable weight files raise ValueError naming the file.
    """
    cfg, hf_state, where = _source_parts(source, revision, local_files_only)
    check_finite_weights(hf_state, where, allow_nonfinite=allow_nonfinite)
    state = convert_from_hf(hf_state, cfg)
    device = torch.device(device) if device is not None else torch.device("cpu")
    dtype = dtype or torch.float32
    if not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating-point dtype, got {dtype}")
    state = {k: v.to(device=device, dtype=dtype, copy=True).contiguous() for k, v in state.items()}
    if cfg.tie_embeddings:
        state["unembed.weight"] = state["embed.weight"]
    with torch.device("meta"):  # skip the random init: every parameter is assigned below
        model = GPT(cfg)
    model.load_state_dict(state, assign=True)
    if cfg.tie_embeddings:  # assign=True replaced the shared Parameter: tie the new one again
        model.unembed.weight = model.embed.weight
    leftover = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if leftover:
        raise RuntimeError(f"load_gpt2 left tensors uninitialised: {', '.join(leftover)}")
    return model.eval()


def save_hf_gpt2(model: GPT, out_dir: str | Path) -> Path:
    """Write `model` as a Hugging Face GPT-2 directory (config.json + model.safetensors).

    Only GPT-2-compatible configs (Pre-LN, LayerNorm, GELU, standard or scaled-init residual, bias)
    are accepted; anything else raises ValueError naming the GPTConfig field.
    """
    if not isinstance(model, GPT):
        raise TypeError(f"save_hf_gpt2 expects a gpt_model.GPT, got {type(model).__name__}")
    hf_cfg = config_to_hf(model.cfg)
    hf_cfg.dtype = str(model.embed.weight.dtype).removeprefix("torch.")
    out = Path(out_dir)
    tensors = convert_to_hf(model)
    atomic_write_with(out / "model.safetensors", lambda tmp: save_file(tensors, str(tmp), metadata={"format": "pt"}))
    atomic_write_text(out / "config.json", hf_cfg.to_json_string(use_diff=True))
    return out
