"""Everything the dashboard reads: runs under the root, models, cached computations.

Rules (the user-facing version is in docs/dashboard.md, "Rules"):

* Only run directories under the root (``--runs``, env ``STRATASCOPE_RUNS``, default ``runs``)
  are read. A run name is one path component the file system can hold (at most 255 bytes, no
  NUL); every path is resolved (symlinks followed) and refused with ``AccessError`` (one line,
  the name cut short) when it leaves the root — ``..``, absolute paths, symlinks out or in a loop.
* Numbers no run writes (NaN, ±inf, out of range) are flagged, never drawn: the Run page's
  ``results.json`` fields by ``_checked_results``, probing results by ``probes.load_results``.
* Each model is loaded once per process (``st.cache_resource``) and every forward pass runs
  under its backend's lock (``hooks.lock_for``): ``Backend.run`` takes it, and so does the
  logit lens here, which calls the model's final norm and unembedding directly.
* Heavy computations (a sentence through a model, a sample of sentences, CKA) are cached with
  ``st.cache_data``, keyed by the model key — which carries the weights' modification times,
  so a retrained run is recomputed.
* Whatever can take more than a few seconds shows a progress indicator while it runs: a spinner
  (model loading, one sentence) or a ``progress_bar`` that advances (the sample, batch by
  batch; checkpoint drift, step by step).

Model keys are strings: ``run|PATH|WEIGHTS|SIG`` (our GPT; WEIGHTS is ``final``, a checkpoint
directory name ``step_XXXXXXX`` or ``init``: the initial weights rebuilt from ``train.seed``),
``twin|…`` (the random-init twin, as in ``probes.random_init_twin(…, seed=0)``) and
``gpt2|SPEC``. Where a run keeps what is ``gpt_model.rundir``'s business: this module asks a
``RunDir`` and never joins run paths itself.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from app.dashboard import ENV_GPT2, ENV_RUNS
from gpt_model.rundir import CONFIG_FILE, WEIGHTS_FILE, RunDir, parse_checkpoint_name

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
    try:
        root = Path(root).resolve()
        real = Path(path).resolve()
    except (OSError, RuntimeError) as err:  # RuntimeError: a symlink loop
        raise AccessError(f"refused: {path} cannot be resolved: {err}") from None
    if real != root and root not in real.parents:
        raise AccessError(f"refused: {path} resolves to {real}, outside {what} {root}")
    return real


NAME_MAX = 255  # bytes in one directory name (Linux, macOS)


def shown(name: str, limit: int = 40) -> str:
    """``name`` for a message: quoted, cut to ``limit`` characters (a URL may carry thousands)."""
    return repr(name) if len(name) <= limit else f"{name[:limit]!r}… ({len(name)} characters)"


def check_name(name: str, what: str = "run") -> str:
    """A single, plain path component (no separators, no '..') that the file system can hold."""
    if not isinstance(name, str) or not name.strip():
        raise AccessError(f"refused: empty {what} name")
    if name in (".", "..") or "/" in name or "\\" in name or "\x00" in name or name.startswith("~"):
        raise AccessError(f"refused: {what} name {shown(name)} is not a directory name under the runs root "
                          f"(no '/', '..', NUL or absolute paths)")
    try:
        size = len(os.fsencode(name))
    except UnicodeError:
        raise AccessError(f"refused: {what} name {shown(name)} is not a valid file name (unencodable characters)") \
            from None
    if size > NAME_MAX:
        raise AccessError(f"refused: {what} name {shown(name)} is {size} bytes long; a directory name has at most "
                          f"{NAME_MAX}")
    return name


def resolve_run(root: Path, name: str) -> Path:
    """The run directory ``root/name``, checked (see module doc). Every failure, the file
    system's included, is an AccessError of one line."""
    check_name(name)
    try:
        path = Path(root) / name
        if not path.exists() and not path.is_symlink():
            raise AccessError(f"no run named {shown(name)} under {root}")
        real = inside(root, path)
        if not real.is_dir():
            raise AccessError(f"{shown(name)} under {root} is not a directory")
        if not RunDir(real).is_run():
            raise AccessError(f"{shown(name)} is not a run directory: it has no {CONFIG_FILE}")
    except (OSError, RuntimeError) as err:  # unreadable, a symlink loop (RuntimeError from resolve), …
        why = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise AccessError(f"refused: run {shown(name)} cannot be read: {why}") from None
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
    rd = RunDir(run)
    paths = (rd.config_path, rd.metrics_path, rd.results_path, rd.weights_path, rd.checkpoints_dir, rd.probes_dir)
    return tuple(_mtime(p) for p in paths)


def _read_json(root: Path, path: Path) -> Any:
    real = inside(root, path)
    return json.loads(real.read_text(encoding="utf-8"))


# ----------------------------------------------------------------------------- run summary
@st.cache_data(show_spinner=False, max_entries=64)
def run_summary(root: str, name: str, sig: tuple[float, ...]) -> dict[str, Any]:
    """What the Run page shows; problems are collected in "errors" (never raised)."""
    root_p = Path(root)
    rd = RunDir(resolve_run(root_p, name))
    out: dict[str, Any] = {"name": name, "path": str(rd.path), "errors": [], "config": None, "results": None,
                           "checkpoints": [], "has_final": False, "probe_tags": [], "treebank": None,
                           "treebank_stats": None}
    errors = out["errors"]
    out["config"] = _valid_config(root_p, rd, errors)
    out.update(_read_metrics(root_p, rd, errors))
    if rd.results_path.is_file():
        try:
            out["results"] = _checked_results(_read_json(root_p, rd.results_path), rd.results_path.name, errors)
        except (ValueError, OSError) as err:
            errors.append(f"{rd.results_path.name}: {err}")
    if rd.has_final_weights():
        try:
            inside(root_p, rd.weights_path)
            out["has_final"] = True
        except AccessError as err:
            errors.append(str(err))
    out["checkpoints"] = _checkpoint_names(root_p, rd)
    out["probe_tags"] = _probe_tags(root_p, rd)
    if out["config"] is not None:
        out["treebank"], out["treebank_stats"] = _treebank(root_p, rd, out["config"])
    return out


def _valid_config(root: Path, rd: RunDir, errors: list[str]) -> dict[str, Any] | None:
    """config.json when it reads and its model section validates; else None and an error."""
    try:
        config = _read_json(root, rd.config_path)
        if not isinstance(config, dict) or not isinstance(config.get("model"), dict):
            raise ValueError("no 'model' section")
        from gpt_model import GPTConfig

        GPTConfig.from_dict(config["model"])  # validates
        return config
    except (ValueError, TypeError, OSError) as err:
        errors.append(f"{CONFIG_FILE} is unreadable or invalid: {err}")
        return None


# The numbers of a training run's results.json the Run page shows, and where they can lie; a
# value outside (NaN, ±inf, 1e308: a damaged or edited file) is reported and not shown.
MAX_LOSS = 1e6  # nats/token
PLAUSIBLE = 1e15  # any other number
RESULT_RANGES: dict[str, tuple[float, float]] = {
    "val_loss": (0.0, MAX_LOSS), "entropy_floor": (0.0, MAX_LOSS), "unigram_entropy": (0.0, MAX_LOSS),
    "pct_above_floor": (-100.0, PLAUSIBLE), "train_tokens_per_s": (0.0, PLAUSIBLE), "agreement.accuracy": (0.0, 1.0),
}


def _checked_results(res: Any, name: str, errors: list[str]) -> dict[str, Any] | None:
    """``res`` with each number of RESULT_RANGES that is not a finite number in its range
    replaced by None, and one error per such field ("results.json: val_loss NaN is …")."""
    if not isinstance(res, dict):
        errors.append(f"{name}: expected a JSON object, got {type(res).__name__}: not shown")
        return None
    for field, (lo, hi) in RESULT_RANGES.items():
        parent, _, key = field.rpartition(".")
        holder = res.get(parent) if parent else res
        if not isinstance(holder, dict) or holder.get(key) is None:
            continue
        why = _implausible(holder[key], lo, hi)
        if why:
            errors.append(f"{name}: {field} {why}: not shown")
            holder[key] = None
    return res


def _implausible(value: Any, lo: float, hi: float) -> str | None:
    """Why ``value`` is not a finite number in [lo, hi], or None when it is."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{str(value)[:40]!r} is not a number"
    if not math.isfinite(value):
        return f"{'NaN' if math.isnan(value) else value} is not a finite number"
    if not lo <= value <= hi:
        return f"{float(value):g} is outside [{lo:g}, {hi:g}]"
    return None


# why a line of metrics.jsonl gives no point on the curves: (one line, several lines)
NOT_JSON = ("is not JSON", "are not JSON")
NOT_OBJECT = ("is not a JSON object", "are not JSON objects")
NO_STEP = ("has no integer step", "have no integer step")
SKIPPED_STEP = ("is a skipped step (non-finite loss or gradient)", "are skipped steps (non-finite loss or gradient)")
NO_LOSS = ("has no finite train_loss or val_loss", "have no finite train_loss or val_loss")


def _read_metrics(root: Path, rd: RunDir, errors: list[str]) -> dict[str, Any]:
    """metrics.jsonl: "metrics", its records (JSON objects); "metric_lines", the line number of
    each; "metric_skipped", (line, why) for each line that is not one (cut by a crash, being
    written, or damaged); "metric_line_count", its non-blank lines."""
    out: dict[str, Any] = {"metrics": [], "metric_lines": [], "metric_skipped": [], "metric_line_count": 0}
    path = rd.metrics_path
    if not (path.is_file() or path.is_symlink()):
        return out
    try:
        for number, line in enumerate(inside(root, path).read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            out["metric_line_count"] += 1
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                out["metric_skipped"].append((number, NOT_JSON))
                continue
            if not isinstance(rec, dict):
                out["metric_skipped"].append((number, NOT_OBJECT))
                continue
            out["metrics"].append(rec)
            out["metric_lines"].append(number)
    except (AccessError, OSError, UnicodeDecodeError) as err:
        errors.append(f"{path.name}: {err}")
    return out


@dataclass
class MetricSeries:
    """metrics.jsonl as the Run page draws it: the records of training steps with a finite
    loss (``train``), of evaluations (``val``), the events, and (line, why) for every line that
    gives no point (``unused``: events, skipped steps, lines without a step or a loss, lines
    that are not records)."""

    train: list[dict[str, Any]]
    val: list[dict[str, Any]]
    events: list[dict[str, Any]]
    unused: list[tuple[int, tuple[str, str]]]


def metric_series(summary: dict[str, Any]) -> MetricSeries:
    """The records of a ``run_summary`` sorted into what the Run page plots and what it cannot."""
    train, val, events = [], [], []
    unused = list(summary.get("metric_skipped", []))
    for number, r in zip(summary.get("metric_lines", []), summary.get("metrics", [])):
        if "event" in r:
            events.append(r)
            name = str(r["event"])[:40]
            unused.append((number, (f"is an event ({name})", f"are events ({name})")))
            continue
        step = r.get("step")
        if not isinstance(step, int) or isinstance(step, bool):
            unused.append((number, NO_STEP))
            continue
        in_train = finite(r.get("train_loss")) is not None and not r.get("skipped")
        in_val = finite(r.get("val_loss")) is not None
        if in_train:
            train.append(r)
        if in_val:
            val.append(r)
        if not (in_train or in_val):
            unused.append((number, SKIPPED_STEP if r.get("skipped") else NO_LOSS))
    return MetricSeries(train, val, events, sorted(unused))


def describe_lines(unused: list[tuple[int, tuple[str, str]]], most: int = 5) -> str:
    """"line 2 is not JSON, lines 3, 5 have no integer step": the lines grouped by why, in the
    order each why first appears (at most ``most`` line numbers each)."""
    groups: dict[tuple[str, str], list[int]] = {}
    for number, why in unused:
        groups.setdefault(why, []).append(number)
    parts = []
    for (one, many), numbers in groups.items():
        shown_numbers = ", ".join(map(str, numbers[:most])) + (f", … ({len(numbers)} in all)"
                                                               if len(numbers) > most else "")
        parts.append(f"line {shown_numbers} {one}" if len(numbers) == 1 else f"lines {shown_numbers} {many}")
    return ", ".join(parts)


def _checkpoint_names(root: Path, rd: RunDir) -> list[str]:
    """The run's complete checkpoints that hold weights and lie inside the root, oldest first."""
    names = []
    for _step, path in rd.checkpoints():
        if not (path / WEIGHTS_FILE).is_file():
            continue
        try:
            inside(root, path)
        except AccessError:
            continue
        names.append(path.name)
    return names


def _probe_tags(root: Path, rd: RunDir) -> list[str]:
    """The model tags under RUN/probes with a results file inside the root."""
    from probes.report import RESULTS_FILE

    tags = []
    if rd.probes_dir.is_dir():
        for p in sorted(rd.probes_dir.iterdir()):
            if (p / RESULTS_FILE).is_file():
                try:
                    inside(root, p / RESULTS_FILE)
                except AccessError:
                    continue
                tags.append(p.name)
    return tags


def _treebank(root: Path, rd: RunDir, config: dict[str, Any]) -> tuple[str | None, Any]:
    """(the run's treebank directory when its probe split is readable, its stats) — both None
    when the treebank lies outside the root: the sample is generated instead."""
    from corpus.treebank import STATS_FILE, split_file

    tb = rd.treebank_dir(config)
    treebank = stats = None
    if tb is not None:
        try:
            real = inside(root, tb)
            if (real / split_file("probe")).is_file():
                treebank = str(real)
            if (real / STATS_FILE).is_file():
                stats = _read_json(root, real / STATS_FILE)
        except (AccessError, ValueError, OSError):
            pass
    return treebank, stats


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
    step = parse_checkpoint_name(which)
    return which if step is None else f"checkpoint step {step}"


def weight_step(which: str, summary: dict[str, Any]) -> int:
    if which == INIT:
        return 0
    step = parse_checkpoint_name(which)
    if step is not None:
        return step
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
        sig = _mtime(RunDir(run).config_path) if which == INIT else _mtime(weights_dir(run, which) / WEIGHTS_FILE)
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
    from hooks.spec import Spec, parse_spec

    spec = parse_spec(value)
    return str(spec if not spec.is_native else Spec("gpt2", str(value).strip()))


def weights_dir(run: Path, which: str) -> Path:
    """The directory ``hooks.load`` reads for weights ``which`` (not ``init``): the run itself for
    the final weights, else the checkpoint directory of that name (AccessError for any other)."""
    if which == FINAL:
        return run
    check_name(which, "checkpoint")
    if parse_checkpoint_name(which) is None:
        raise AccessError(f"refused: {which!r} is not a checkpoint directory name (step_N)")
    return RunDir(run).checkpoints_dir / which


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
    if which == INIT:
        return _init_backend(path)
    return hooks.load(str(weights_dir(path, which)))


def check_model_files(run: Path, which: str) -> None:
    """The files a model load reads (config, weights, tokenizer) must lie inside the run
    directory: a symlink pointing elsewhere is refused (AccessError)."""
    rd = RunDir(run)
    files = [rd.config_path]
    if which == FINAL:
        files.append(rd.weights_path)
    elif which != INIT:
        ckpt = weights_dir(run, which)
        files += [ckpt, ckpt / CONFIG_FILE, ckpt / WEIGHTS_FILE]
    for f in files:
        inside(run, f, "the run directory")
    tok = rd.tokenizer_path(rd.read_config())
    if tok is not None:
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
@contextlib.contextmanager
def progress_bar(text: str) -> Iterator[Callable[[float, str], None]]:
    """An ``st.progress`` bar for a long loop inside a cached computation; yields
    ``report(fraction, text)`` and removes the bar when the block ends.

    The bar is made and removed inside the cached function: Streamlit replays the elements a
    cached function made on every cache hit, so a replay shows nothing, whereas a bar made by the
    caller and updated from inside would break the replay (``CacheReplayClosureError``)."""
    bar = st.progress(0.0, text=text)
    try:
        yield lambda fraction, msg: bar.progress(min(max(float(fraction), 0.0), 1.0), text=msg)
    finally:
        bar.empty()


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

            from corpus.treebank import split_file

            sentences = []
            path = inside(Path(root), Path(summary["treebank"]) / split_file("probe"))
            for s in iter_conllu(path):
                if 0 < len(s.words) < context:
                    sentences.append(s)
                if len(sentences) >= n:
                    break
            source = f"probe split of the run's treebank ({path.parent.name}/{path.name})"
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


@st.cache_data(show_spinner=False, max_entries=32)  # it shows a progress bar instead
def sample_analysis(key: str, sentences: tuple[tuple[str, ...], ...],
                    pairs: tuple[tuple[tuple[int, int], ...], ...], batch_size: int = 16,
                    keep_resid: bool = False) -> dict[str, Any]:
    """A sample through one model: the per-block statistics and CKA matrix of the residual
    stream at every word (``<bos>`` left out), the head summaries and the logit lens means;
    with ``keep_resid`` also the stream itself [n_layer + 1, n_words, d_model] (for drift). A progress
    bar advances batch by batch, then shows the last step (the statistics and CKA)."""
    from app.analysis import cka_matrix, head_summary, stream_stats

    with progress_bar("Loading the model…") as report:
        b = load_backend(key)
        name, n = b.metadata.name, len(sentences)
        steps = -(-n // batch_size) + 1  # the batches, then the statistics and CKA
        resid, patterns, token_pairs = [], [], []
        kl_sum = agree_sum = None
        n_pos = 0
        lens_ok = _has_lens(b)
        for i, start in enumerate(range(0, n, batch_size)):
            end = min(start + batch_size, n)
            report(i / steps, f"Running {name} on the sample: sentences {start + 1}–{end} of {n}…")
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
        report((steps - 1) / steps, f"{name}: head summaries, stream statistics and layer × layer CKA "
                                    f"over {x.shape[1]} words…")
        heads = head_summary(patterns, token_pairs)
        stats, cka = stream_stats(x).to_dict(), cka_matrix(x)
    return {
        "resid": x if keep_resid else None,
        "stats": stats,
        "cka": cka,
        "heads": {"entropy": heads.entropy, "prev_token": heads.prev_token, "subject": heads.subject,
                  "n_queries": heads.n_queries, "n_pairs": heads.n_pairs},
        "lens": None if not lens_ok else {"kl": kl_sum / n_pos, "agree": agree_sum / n_pos, "n_positions": n_pos},
        "n_sentences": len(sentences), "n_words": int(x.shape[1]),
    }


@st.cache_data(show_spinner=False, max_entries=32)  # it shows a progress bar instead
def drift_analysis(key_a: str, key_b: str, sentences: tuple[tuple[str, ...], ...],
                   pairs: tuple[tuple[tuple[int, int], ...], ...]) -> dict[str, Any]:
    """The sample through weights A and B (each with its own progress bar, below this one's three
    steps), then the drift of every layer."""
    from app.analysis import checkpoint_drift

    with progress_bar("Comparing the checkpoints…") as report:
        report(0.0, "Comparing the checkpoints: the sample through A (1/3)…")
        a = sample_analysis(key_a, sentences, pairs, keep_resid=True)
        report(1 / 3, "Comparing the checkpoints: the sample through B (2/3)…")
        b = sample_analysis(key_b, sentences, pairs, keep_resid=True)
        report(2 / 3, "Comparing the checkpoints: change, cosine and CKA per layer (3/3)…")
        d = checkpoint_drift(a["resid"], b["resid"])
    return {"rel_change": d["rel_change"], "cos": d["cos"], "cka": d["cka"], "a": a["stats"], "b": b["stats"],
            "lens_a": a["lens"], "lens_b": b["lens"], "n_words": a["n_words"]}


@st.cache_data(show_spinner=False, max_entries=32)
def probe_results(root: str, name: str, tag: str, sig: tuple[float, ...]) -> Any:
    """runs/NAME/probes/TAG/results.json as typed ``probes.ProbeResults`` (read and checked by
    probes.load_results)."""
    from probes import load_results
    from probes.report import RESULTS_FILE

    check_name(tag, "probe results")
    run = RunDir(resolve_run(Path(root), name))
    return load_results(inside(Path(root), run.probe_dir(tag) / RESULTS_FILE))


def finite(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def as_list(x: Any) -> list[Any]:
    return np.asarray(x).tolist()
