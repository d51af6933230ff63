"""Probe models end to end: data → activations → suite → one results dict (results.json).

    results = probes.probe("runs/demo", probes.load_data("treebank", "runs/demo")[0])
    probes.write_outputs(results, "runs/demo/probes/demo")

``probe`` fits the suite on the main model, its random-init twin (``twin=True``) and any
``compare`` models, all on the same sentences (those that fit every model's context), the same
split and the same bootstrap resamples, so their numbers are directly comparable.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from probes.models import extract, fits_context, load_backend, model_tag, random_init_twin, unknown_words
from probes.suite import ProbeConfig, ProbeSuite
from probes.tasks import Task

SCHEMA = "stratascope.probes/1"
DEFAULT_TREEBANK_DIR = Path("data/treebank")
DEFAULT_TREEBANK_SENTENCES = 20_000
DEFAULT_TREEBANK_SEED = 0


# ----------------------------------------------------------------------------- data
def run_dir_of(spec: Any) -> Path | None:
    """The run directory behind a model spec (``runs/NAME``, ``native:PATH``, a checkpoint
    directory → its run), or None for other specs."""
    if not isinstance(spec, (str, Path)):
        return None
    s = str(spec)
    prefix, sep, rest = s.partition(":")
    if sep and prefix in ("native", "run"):
        s = rest
    elif sep and prefix in ("gpt2", "tl", "nnsight"):
        return None
    path = Path(s).expanduser()
    if not path.is_dir() and not path.is_absolute() and (Path("runs") / s).is_dir():
        path = Path("runs") / s
    if not (path / "config.json").is_file():
        return None
    if path.parent.name == "checkpoints":
        return path.parent.parent
    return path


def treebank_of_run(run_dir: Path) -> Path | None:
    """The treebank directory a run was trained on (config.json "data"), if it has one."""
    try:
        config = json.loads((run_dir / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    from gpt_model.data import run_treebank_dir

    return run_treebank_dir(config, run_dir)


def load_data(data: str | Path, model: Any = None, *, treebank_dir: str | Path | None = None,
              max_sentences: int | None = None, log: Callable[[str], None] | None = None
              ) -> tuple[list[Any], dict[str, Any]]:
    """Sentences to probe and a description of where they came from.

    ``data`` "treebank": the probe split (``probe.conllu``) of the built-in treebank, looked up
    in this order: ``treebank_dir``; the treebank the model's run was trained on (its
    config.json "data" section, default ``RUN/data``); ``data/treebank/`` under the current
    directory, generated there (20,000 sentences, seed 0) when missing. Anything else: a
    CoNLL-U file (any UD treebank).
    """
    from corpus import read_conllu

    log = log or (lambda msg: None)
    if str(data) == "treebank":
        candidates: list[Path] = []
        if treebank_dir is not None:
            candidates.append(Path(treebank_dir))
        run = run_dir_of(model)
        if run is not None:
            tb = treebank_of_run(run)
            if tb is not None:
                candidates.append(tb)
        found = next((c for c in candidates if (c / "probe.conllu").is_file()), None)
        if found is None:
            if treebank_dir is not None:
                raise FileNotFoundError(f"no probe.conllu in the treebank directory {treebank_dir}")
            found = DEFAULT_TREEBANK_DIR
            if not (found / "probe.conllu").is_file():
                from corpus import write_treebank

                log(f"generating the built-in treebank in {found} ({DEFAULT_TREEBANK_SENTENCES} sentences, "
                    f"seed {DEFAULT_TREEBANK_SEED})")
                write_treebank(found, DEFAULT_TREEBANK_SENTENCES, DEFAULT_TREEBANK_SEED)
        path = found / "probe.conllu"
        source = {"kind": "treebank", "path": str(path)}
    else:
        path = Path(data)
        if not path.is_file():
            raise FileNotFoundError(f"no CoNLL-U file at {path} (--data takes 'treebank' or a .conllu file)")
        source = {"kind": "conllu", "path": str(path)}
    sentences = read_conllu(path)
    if max_sentences is not None and len(sentences) > max_sentences:
        sentences = sentences[:max_sentences]
        source["max_sentences"] = max_sentences
    if not sentences:
        raise ValueError(f"{path}: no sentences")
    return sentences, source


# ----------------------------------------------------------------------------- probing
def probe(model: Any, sentences: Sequence[Any], tasks: Sequence[Task | str] | str | None = None,
          config: ProbeConfig | None = None, *, compare: Sequence[Any] = (), twin: bool = True,
          twin_seed: int = 0, store_dir: str | Path | None = None, batch_size: int = 32,
          data_info: dict[str, Any] | None = None, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Probe ``model`` (a spec or backend), its random-init twin and ``compare`` models.

    Returns the results dict (schema in docs/probes.md). ``store_dir``: keep each model's
    activations in a ``hooks.ActivationStore`` under ``store_dir/<tag>`` (reused on a rerun).
    """
    log = log or (lambda msg: None)
    config = config or ProbeConfig()
    suite = ProbeSuite(tasks, config)
    main = load_backend(model, device=config.device)
    entries: list[tuple[str, Any, Any]] = [("model", main, model)]
    if twin:
        entries.append(("random_init", random_init_twin(main, twin_seed), None))
    for spec in compare:
        entries.append(("compare", load_backend(spec, device=config.device), spec))
    # the sentences every model can read
    kept = [s for s in sentences if all(fits_context(b, s) for _, b, _ in entries)]
    skipped = len(sentences) - len(kept)
    if skipped:
        log(f"skipping {skipped} of {len(sentences)} sentences longer than a model's context")
    if not kept:
        raise ValueError("no sentence fits the models' context")
    summary = suite.data_summary(kept)
    log(f"{summary['n_sentences']} sentences, {summary['n_words']} words "
        f"(train/val/test sentences {summary['split_sentences']['train']}/{summary['split_sentences']['val']}/"
        f"{summary['split_sentences']['test']})")
    models = []
    tags: set[str] = set()
    unknown: dict[str, dict[str, Any]] = {}
    for role, backend, spec in entries:
        info = backend.metadata
        tag = model_tag(info.name)
        while tag in tags:
            tag += "_"
        tags.add(tag)
        unk = unknown_words(backend, kept) if role != "random_init" else None
        if unk is not None:
            unknown[tag] = unk
            if unk["tokens"]:
                top = ", ".join(f"{w!r}×{c}" for w, c in unk["top"][:5])
                log(f"warning: [{tag}] {unk['tokens']} of {unk['words']} words ({100 * unk['rate']:.1f}%, "
                    f"{unk['types']} types) are not in the model's vocabulary and are read as <unk>: {top}")
        log(f"[{tag}] extracting activations ({info.n_layer} layers, d_model {info.d_model})")
        t0 = time.perf_counter()
        feats = extract(backend, kept, batch_size=batch_size,
                        store=None if store_dir is None else Path(store_dir) / tag, device=config.device)
        t_extract = time.perf_counter() - t0
        log(f"[{tag}] probing {len(suite.tasks)} tasks × {feats.shape[0]} layers")
        res = suite.fit(feats, kept, log=log)
        del feats
        res["timing_s"]["extract"] = t_extract
        models.append({"tag": tag, "role": role, "spec": None if spec is None else str(spec) if isinstance(spec, (str, Path)) else info.source,
                       "info": info.to_dict(), **res})
        log(f"[{tag}] verdict: {res['verdict']['message']}")
    results = {
        "schema": SCHEMA,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "version": _version(),
        "data": {**(data_info or {}), **summary, "n_skipped_too_long": skipped, "unknown_words": unknown},
        "config": config.to_dict(),
        "tasks": [t.to_dict() for t in suite.tasks],
        "main": models[0]["tag"],
        "models": models,
        "verdict": models[0]["verdict"],
        "comparison": comparison(models),
        "torch": torch.__version__,
    }
    return results


def comparison(models: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per task and model: peak layer and score, selectivity at the peak, expected layers."""
    out: dict[str, dict[str, Any]] = {}
    for m in models:
        for name, t in m["tasks"].items():
            if t.get("skipped"):
                continue
            peak = t["peak_layer"]
            layer = t["layers"][peak]
            e = t.get("expected_layer", {})
            out.setdefault(name, {})[m["tag"]] = {
                "role": m["role"], "n_layer": m["n_layer"], "peak_layer": peak, "peak_score": t["peak_score"],
                "layer0_score": t["layer0_score"], "selectivity_at_peak": layer.get("selectivity"),
                "max_selectivity": max((x["selectivity"] for x in t["layers"] if x.get("selectivity") is not None),
                                       default=None),
                "expected_layer": e.get("anchored"), "expected_layer_tenney": e.get("tenney"),
                "relative_expected_layer": e.get("relative"),
            }
    return out


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("stratascope")
    except Exception:  # noqa: BLE001 - a source tree that was not installed
        return "0+unknown"
