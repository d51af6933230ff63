"""Everything the dashboard reads: runs under the root, models, cached computations.

Rules (DESIGN §7):

* Only run directories under the root (``--runs``, env ``STRATASCOPE_RUNS``, default ``runs``)
  are read. A run name is one path component; every path is resolved (symlinks followed) and
  refused with ``AccessError`` when it leaves the root — ``..``, absolute paths, symlinks out.
* Each model is loaded once per process (``st.cache_resource``) and every forward pass runs
  under its backend's lock (``hooks.lock_for``): ``Backend.run`` takes it, and so does the
  logit lens here, which calls the model's final norm and unembedding directly.
* Heavy computations (a sentence through a model, a sample of sentences, CKA) are cached with
  ``st.cache_data``, keyed by the model key — which carries the weights' modification times,
  so a retrained run is recomputed.

Model keys are strings: ``run|PATH|WEIGHTS|SIG`` (our GPT; WEIGHTS is ``final``, a checkpoint
``step_XXXXXXX`` or ``init``: the initial weights rebuilt from ``train.seed``), ``twin|…``
(the random-init twin, as in ``probes.random_init_twin(…, seed=0)``) and ``gpt2|SPEC``.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from app.dashboard import ENV_GPT2, ENV_RUNS

DEFAULT_SAMPLE = 48
SAMPLE_SEED = 1234
TWIN_SEED = 0  # probes.probe's default twin_seed: the twin the probes saw
FINAL, INIT = "final", "init"


class AccessError(ValueError):
    """A path the dashboard refuses to read (outside the runs root) or a missing run."""


# ----------------------------------------------------------------------------- settings, paths
@dataclass(frozen=True)
class Settings:
    root: Path
    gpt2: str | None


def settings() -> Settings:
    root = Path(os.environ.get(ENV_RUNS) or "runs").expanduser().resolve()
    gpt2 = (os.environ.get(ENV_GPT2) or "").strip() or None
    return Settings(root=root, gpt2=gpt2)


def inside(root: Path, path: Path, what: str = "the runs root") -> Path:
    """``path`` resolved (symlinks followed); AccessError unless it lies under ``root``."""
    root = Path(root).resolve()
    real = Path(path).resolve()
    if real != root and root not in real.parents:
        raise AccessError(f"refused: {path} resolves to {real}, outside {what} {root}")
    return real


def check_name(name: str, what: str = "run") -> str:
    """A single, plain path component (no separators, no '..')."""
    if not isinstance(name, str) or not name.strip():
        raise AccessError(f"refused: empty {what} name")
    if name in (".", "..") or "/" in name or "\\" in name or "\x00" in name or name.startswith("~"):
        raise AccessError(f"refused: {what} name {name!r} is not a directory name under the runs root "
                          f"(no '/', '..' or absolute paths)")
    return name


def resolve_run(root: Path, name: str) -> Path:
    """The run directory ``root/name``, checked (see module doc)."""
    check_name(name)
    path = Path(root) / name
    if not path.exists() and not path.is_symlink():
        raise AccessError(f"no run named {name!r} under {root}")
    real = inside(root, path)
    if not real.is_dir():
        raise AccessError(f"{name!r} under {root} is not a directory")
    if not (real / "config.json").is_file():
        raise AccessError(f"{name!r} is not a run directory: it has no config.json")
    return real


def list_runs(root: Path) -> list[str]:
    """Names of the run directories (holding config.json) directly under ``root``."""
    root = Path(root)
    if not root.is_dir():
        return []
    out = []
    for p in sorted(root.iterdir()):
        try:
            resolve_run(root, p.name)
        except (AccessError, OSError):
            continue
        out.append(p.name)
    return out


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def signature(run: Path) -> tuple[float, ...]:
    """Modification times that invalidate the cached view of a run."""
    names = ("config.json", "metrics.jsonl", "results.json", "model.safetensors", "checkpoints", "probes")
    return tuple(_mtime(run / n) for n in names)


def _read_json(root: Path, path: Path) -> Any:
    real = inside(root, path)
    return json.loads(real.read_text(encoding="utf-8"))


# ----------------------------------------------------------------------------- run summary
@st.cache_data(show_spinner=False, max_entries=64)
def run_summary(root: str, name: str, sig: tuple[float, ...]) -> dict[str, Any]:
    """What the Run page shows; problems are collected in "errors" (never raised)."""
    root_p = Path(root)
    run = resolve_run(root_p, name)
    out: dict[str, Any] = {"name": name, "path": str(run), "errors": [], "config": None, "metrics": [],
                           "bad_metric_lines": 0, "results": None, "checkpoints": [], "has_final": False,
                           "probe_tags": [], "treebank": None, "treebank_stats": None}
    try:
        config = _read_json(root_p, run / "config.json")
        if not isinstance(config, dict) or not isinstance(config.get("model"), dict):
            raise ValueError("no 'model' section")
        from gpt_model import GPTConfig

        GPTConfig.from_dict(config["model"])  # validates
        out["config"] = config
    except (ValueError, TypeError, OSError) as err:
        out["errors"].append(f"config.json is unreadable or invalid: {err}")
    metrics = run / "metrics.jsonl"
    if metrics.is_file() or metrics.is_symlink():
        try:
            for line in inside(root_p, metrics).read_text(encoding="utf-8").splitlines():
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    out["bad_metric_lines"] += 1
                    continue
                if isinstance(rec, dict):
                    out["metrics"].append(rec)
        except (AccessError, OSError) as err:
            out["errors"].append(f"metrics.jsonl: {err}")
    results = run / "results.json"
    if results.is_file():
        try:
            out["results"] = _read_json(root_p, results)
        except (ValueError, OSError) as err:
            out["errors"].append(f"results.json: {err}")
    weights = run / "model.safetensors"
    if weights.is_file():
        try:
            inside(root_p, weights)
            out["has_final"] = True
        except AccessError as err:
            out["errors"].append(str(err))
    ckpts = run / "checkpoints"
    if ckpts.is_dir():
        for p in sorted(ckpts.iterdir()):
            if p.is_dir() and p.name.startswith("step_") and p.name[5:].isdigit() and (p / "model.safetensors").is_file():
                try:
                    inside(root_p, p)
                except AccessError:
                    continue
                out["checkpoints"].append(p.name)
    probes_dir = run / "probes"
    if probes_dir.is_dir():
        for p in sorted(probes_dir.iterdir()):
            if (p / "results.json").is_file():
                try:
                    inside(root_p, p / "results.json")
                except AccessError:
                    continue
                out["probe_tags"].append(p.name)
    if out["config"] is not None:
        from gpt_model.data import run_treebank_dir

        tb = run_treebank_dir(out["config"], run)
        if tb is not None:
            try:
                real = inside(root_p, tb)
                if (real / "probe.conllu").is_file():
                    out["treebank"] = str(real)
                if (real / "stats.json").is_file():
                    out["treebank_stats"] = _read_json(root_p, real / "stats.json")
            except (AccessError, ValueError, OSError):
                pass  # a treebank outside the root is not read: the sample is generated instead
    return out


def entropy_floor(summary: dict[str, Any]) -> tuple[float | None, str]:
    """The entropy floor to draw under the loss curves, and where it comes from."""
    res = summary.get("results") or {}
    if isinstance(res.get("entropy_floor"), (int, float)):
        return float(res["entropy_floor"]), "validation sentences (results.json)"
    info = (summary.get("config") or {}).get("data_info") or {}
    if isinstance(info.get("entropy_floor_nats"), (int, float)):
        return float(info["entropy_floor_nats"]), "validation sentences (config.json data_info)"
    stats = summary.get("treebank_stats") or {}
    if isinstance(stats.get("entropy_floor_nats_per_token"), (int, float)):
        return float(stats["entropy_floor_nats_per_token"]), "whole treebank (stats.json)"
    return None, ""


def weight_options(summary: dict[str, Any]) -> list[str]:
    """final (if written), checkpoints newest first, then the rebuilt initialisation."""
    opts = [FINAL] if summary["has_final"] else []
    opts += list(reversed(summary["checkpoints"]))
    if summary["config"] is not None:
        opts.append(INIT)
    return opts


def weight_label(which: str, summary: dict[str, Any] | None = None) -> str:
    if which == FINAL:
        return "final weights"
    if which == INIT:
        seed = ((summary or {}).get("config") or {}).get("train", {}).get("seed", 0)
        return f"initialisation (step 0, rebuilt from train.seed={seed})"
    if which.startswith("step_"):
        return f"checkpoint step {int(which[5:])}"
    return which


def weight_step(which: str, summary: dict[str, Any]) -> int:
    if which == INIT:
        return 0
    if which.startswith("step_"):
        return int(which[5:])
    steps = [r.get("step") for r in summary.get("metrics", []) if isinstance(r.get("step"), int)]
    return max(steps, default=10**9)


# ----------------------------------------------------------------------------- models
@dataclass(frozen=True)
class ModelRef:
    """A model the dashboard can run; ``key`` identifies it in the caches."""

    key: str
    label: str

    @staticmethod
    def run(run: Path, which: str, label: str | None = None) -> "ModelRef":
        w = run / ("model.safetensors" if which == FINAL else f"checkpoints/{which}/model.safetensors")
        sig = _mtime(w) if which != INIT else _mtime(run / "config.json")
        return ModelRef(f"run|{run}|{which}|{sig}", label or f"{run.name} ({weight_label(which)})")

    @staticmethod
    def twin(run: Path, which: str) -> "ModelRef":
        base = ModelRef.run(run, which)
        return ModelRef("twin|" + base.key.partition("|")[2], f"{run.name} random-init twin")

    @staticmethod
    def gpt2(spec: str) -> "ModelRef":
        return ModelRef(f"gpt2|{spec}", f"GPT-2 ({spec})")


def gpt2_spec(value: str) -> str:
    """A hooks spec for the configured GPT-2: our GPT holding its weights unless a backend
    prefix is given (the logit lens needs our GPT's ln_final / unembed)."""
    prefix, sep, _ = value.partition(":")
    if sep and prefix in ("gpt2", "tl", "nnsight"):
        return value
    return f"gpt2:{value}"


@st.cache_resource(show_spinner="Loading the model…", max_entries=8)
def load_backend(key: str) -> Any:
    """The backend of a model key, loaded once per process."""
    import hooks

    kind, _, rest = key.partition("|")
    if kind == "gpt2":
        return hooks.load(gpt2_spec(rest))
    path_s, which, _sig = rest.rsplit("|", 2)
    path = Path(path_s)
    check_model_files(path, which)
    if kind == "twin":
        from probes import random_init_twin

        base = load_backend("run|" + rest)
        return random_init_twin(base, TWIN_SEED, name=f"{path.name}+random-init")
    if kind != "run":
        raise ValueError(f"unknown model key {key!r}")
    if which == FINAL:
        return hooks.load(str(path))
    if which == INIT:
        return _init_backend(path)
    return hooks.load(str(path / "checkpoints" / check_name(which, "checkpoint")))


def check_model_files(run: Path, which: str) -> None:
    """The files a model load reads (config, weights, tokenizer) must lie inside the run
    directory: a symlink pointing elsewhere is refused (AccessError)."""
    files = [run / "config.json"]
    if which == FINAL:
        files.append(run / "model.safetensors")
    elif which != INIT:
        ckpt = run / "checkpoints" / check_name(which, "checkpoint")
        files += [ckpt, ckpt / "config.json", ckpt / "model.safetensors"]
    for f in files:
        inside(run, f, "the run directory")
    config = json.loads((run / "config.json").read_text(encoding="utf-8"))
    rel = (config.get("tokenizer") or {}).get("path")
    if rel:
        tok = run / rel
        inside(run, tok, "the run directory")
        if tok.is_dir():
            for f in tok.iterdir():
                inside(run, f, "the run directory")


def _init_backend(run: Path) -> Any:
    """The run's initial weights: GPT(cfg) right after torch.manual_seed(train.seed), which is
    what the trainer does before its first step."""
    import torch

    import hooks
    from gpt_model import GPT, GPTConfig
    from gpt_model.checkpoint import read_config

    config = read_config(run)
    cfg = GPTConfig.from_dict(config["model"])
    seed = int((config.get("train") or {}).get("seed", 0))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = GPT(cfg).eval()
    tok = hooks.load_run_tokenizer(run, config)
    return hooks.NativeBackend(model, tok, name=f"{run.name}@init", source=f"init({run}, seed={seed})")


def model_info(key: str) -> dict[str, Any]:
    b = load_backend(key)
    info = b.metadata.to_dict()
    info["lens"] = _has_lens(b)
    return info


def _has_lens(backend: Any) -> bool:
    return hasattr(backend.model, "ln_final") and hasattr(backend.model, "unembed")


def unknown_words(backend: Any, words: tuple[str, ...]) -> list[str]:
    """The words a word-level model reads as <unk>, sorted ([] for subword tokenizers)."""
    from probes.models import unknown_words as count_unknown

    report = count_unknown(backend, [words], top=len(words))
    return [] if report is None else sorted(w for w, _ in report["top"])


def _token_labels(backend: Any, ids: tuple[int, ...]) -> list[str]:
    toks = backend.tokenizer.decode(list(ids))
    return [f"{i}·{str(t).replace('Ġ', '␣')}" for i, t in enumerate(toks)]


def _lens_for(backend: Any, resid: Any, logits: Any, k: int = 5) -> Any:
    from app.analysis import logit_lens, native_unembed

    with backend.lock:  # the lens runs the model's own ln_final / unembed
        return logit_lens(resid, native_unembed(backend.model), final_logits=logits, k=k)


# ----------------------------------------------------------------------------- cached computations
@st.cache_data(show_spinner="Running the model on the sentence…", max_entries=128)
def sentence_analysis(key: str, words: tuple[str, ...]) -> dict[str, Any]:
    """One sentence through one model: tokens, attention, stream statistics, logit lens."""
    from app.analysis import stream_stats

    b = load_backend(key)
    run = b.run_one(list(words), patterns=True)  # under the backend's lock
    enc = run.encoding
    tokens = _token_labels(b, enc.ids)
    out: dict[str, Any] = {
        "tokens": tokens, "raw_tokens": [str(t) for t in b.tokenizer.decode(list(enc.ids))],
        "word_pos": list(enc.last), "spans": [list(s) for s in enc.spans],
        "patterns": run.patterns.float().numpy(), "unknown": unknown_words(b, words),
        "stats": stream_stats(run.word_resid()).to_dict(), "lens": None,
    }
    if _has_lens(b):
        lens = _lens_for(b, run.resid, run.logits)
        top = [[[str(t) for t in b.tokenizer.decode(list(map(int, lens.top_ids[l, t])))]
                for t in range(lens.top_ids.shape[1])] for l in range(lens.top_ids.shape[0])]
        out["lens"] = {"kl": lens.kl, "agree": lens.agree, "top_tokens": top, "top_probs": lens.top_probs}
    return out


@st.cache_data(show_spinner=False, max_entries=16)
def corpus_sample(root: str, name: str, sig: tuple[float, ...], n: int) -> dict[str, Any]:
    """Up to ``n`` sentences with gold labels: the probe split of the run's treebank when it
    lies under the root, else sentences generated by the treebank grammar (seed 1234)."""
    from app.analysis import subject_verb_pairs

    summary = run_summary(root, name, sig)
    context = int(((summary.get("config") or {}).get("model") or {}).get("context_len", 64))
    sentences = None
    source = ""
    if summary["treebank"]:
        try:
            from corpus import iter_conllu

            sentences = []
            path = inside(Path(root), Path(summary["treebank"]) / "probe.conllu")
            for s in iter_conllu(path):
                if 0 < len(s.words) < context:
                    sentences.append(s)
                if len(sentences) >= n:
                    break
            source = f"probe split of the run's treebank ({Path(summary['treebank']).name}/probe.conllu)"
        except Exception:  # noqa: BLE001 - fall back to generated sentences
            sentences = None
    if not sentences:
        from corpus import generate_sentences

        sentences = [s for s in generate_sentences(2 * n + 8, seed=SAMPLE_SEED) if len(s.words) < context][:n]
        source = f"generated by the treebank grammar (seed {SAMPLE_SEED}); the run's treebank is not under the root"
    lexicon: dict[str, dict[str, int]] = {}
    for s in sentences:
        for w in s.words:
            lexicon.setdefault(w.form, {}).setdefault(w.upos, 0)
            lexicon[w.form][w.upos] += 1
    return {
        "source": source,
        "sentences": [tuple(s.forms) for s in sentences],
        "pairs": [tuple(subject_verb_pairs(s)) for s in sentences],
        "lexicon": {w: max(c, key=c.get) for w, c in lexicon.items()},
    }


def guess_pair(words: tuple[str, ...], lexicon: dict[str, str]) -> tuple[int, int] | None:
    """(subject, verb) of a typed sentence: the first noun and the first verb after it (by
    the words' most frequent part of speech in the sample)."""
    tags = [lexicon.get(w) for w in words]
    for s, t in enumerate(tags):
        if t in ("NOUN", "PROPN", "PRON"):
            for v in range(s + 1, len(words)):
                if tags[v] in ("VERB", "AUX"):
                    return s, v
            return None
    return None


@st.cache_data(show_spinner=False, max_entries=32)
def fits_context(key: str, sentences: tuple[tuple[str, ...], ...]) -> tuple[bool, ...]:
    """Whether each sentence, as this model tokenizes it, fits the model's context."""
    b = load_backend(key)
    out = []
    for words in sentences:
        try:
            b.encode(list(words))
            out.append(True)
        except ValueError:
            out.append(False)
    return tuple(out)


@st.cache_data(show_spinner="Running the sample of sentences…", max_entries=32)
def sample_analysis(key: str, sentences: tuple[tuple[str, ...], ...],
                    pairs: tuple[tuple[tuple[int, int], ...], ...], batch_size: int = 16,
                    keep_resid: bool = False) -> dict[str, Any]:
    """A sample through one model: the per-block statistics and CKA matrix of the residual
    stream at every word (``<bos>`` left out), the head summaries and the logit lens means;
    with ``keep_resid`` also the stream itself [n_layer + 1, n_words, d_model] (for drift)."""
    from app.analysis import cka_matrix, head_summary, stream_stats

    b = load_backend(key)
    resid, patterns, token_pairs = [], [], []
    kl_sum = agree_sum = None
    n_pos = 0
    lens_ok = _has_lens(b)
    for start in range(0, len(sentences), batch_size):
        batch = [list(s) for s in sentences[start:start + batch_size]]
        runs = b.run(batch, patterns=True, logits=lens_ok)
        for k, r in enumerate(runs):
            resid.append(r.word_resid().float())
            patterns.append(r.patterns.float().numpy())
            last = r.encoding.last
            token_pairs.append([(last[s], last[v]) for s, v in pairs[start + k]])
            if lens_ok:
                lens = _lens_for(b, r.resid, r.logits, k=1)
                kl_sum = lens.kl.sum(1) if kl_sum is None else kl_sum + lens.kl.sum(1)
                agree_sum = lens.agree.sum(1) if agree_sum is None else agree_sum + lens.agree.sum(1)
                n_pos += lens.kl.shape[1]
    import torch

    x = torch.cat(resid, dim=1).numpy()  # [L+1, n_words, d]
    heads = head_summary(patterns, token_pairs)
    return {
        "resid": x if keep_resid else None,
        "stats": stream_stats(x).to_dict(),
        "cka": cka_matrix(x),
        "heads": {"entropy": heads.entropy, "prev_token": heads.prev_token, "subject": heads.subject,
                  "n_queries": heads.n_queries, "n_pairs": heads.n_pairs},
        "lens": None if not lens_ok else {"kl": kl_sum / n_pos, "agree": agree_sum / n_pos, "n_positions": n_pos},
        "n_sentences": len(sentences), "n_words": int(x.shape[1]),
    }


@st.cache_data(show_spinner="Comparing the checkpoints…", max_entries=32)
def drift_analysis(key_a: str, key_b: str, sentences: tuple[tuple[str, ...], ...],
                   pairs: tuple[tuple[tuple[int, int], ...], ...]) -> dict[str, Any]:
    from app.analysis import checkpoint_drift

    a = sample_analysis(key_a, sentences, pairs, keep_resid=True)
    b = sample_analysis(key_b, sentences, pairs, keep_resid=True)
    d = checkpoint_drift(a["resid"], b["resid"])
    return {"rel_change": d["rel_change"], "cos": d["cos"], "cka": d["cka"], "a": a["stats"], "b": b["stats"],
            "lens_a": a["lens"], "lens_b": b["lens"], "n_words": a["n_words"]}


@st.cache_data(show_spinner=False, max_entries=32)
def probe_results(root: str, name: str, tag: str, sig: tuple[float, ...]) -> dict[str, Any]:
    """runs/NAME/probes/TAG/results.json, read with probes.load_results (schema-checked)."""
    from probes import load_results

    check_name(tag, "probe results")
    run = resolve_run(Path(root), name)
    path = inside(Path(root), run / "probes" / tag / "results.json")
    return load_results(path)


def finite(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def as_list(x: Any) -> list[Any]:
    return np.asarray(x).tolist()
