"""Probe models end to end: models → data → activations → suite → ``ProbeResults``.

    results = probes.probe("runs/demo", probes.load_data("treebank", "runs/demo")[0])
    probes.write_outputs(results, "runs/demo/probes/demo")

``probe`` fits the suite on the main model, its random-init twin (``twin=True``) and any
``compare`` models, all on the same sentences (those that fit every model's context), the same
split and the same bootstrap resamples, so their numbers are directly comparable. It is
``load_models`` followed by ``probe_models``; the CLI calls the two itself, so that a missing
model fails before any data is read or generated.

``erase=["subject_number_next", "upos"]`` also runs causal erasure (``probes.erase``) on the main
model and its twin, with the same sentences, split and resamples: each model's result gets an
``erasure`` (``probes.results.ErasureResult``).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from gpt_model.rundir import RunDir
from hooks.fingerprint import file_fingerprint, model_fingerprint
from hooks.spec import parse_spec
from probes.config import ProbeConfig
from probes.erase import ErasureSettings, check_erasable, concept_tasks
from probes.erase import erase as erase_concepts
from probes.models import (
    extract,
    extract_to_store,
    fits_context,
    load_backend,
    model_tag,
    random_init_twin,
    unknown_words,
)
from probes.progress import Progress
from probes.results import (
    SCHEMA,
    DataInfo,
    ErasureResult,
    ModelResult,
    ProbeResults,
    TaskInfo,
    Verdict,
    comparison_of,
    erasure_settings,
    run_settings,
)
from probes.suite import ProbeSuite
from probes.tasks import Task, resolve_tasks

__all__ = ["SCHEMA", "load_data", "load_models", "probe", "probe_models", "planned_settings", "run_of",
           "ModelToProbe", "Erasure", "ERASED_ROLES", "check_erasure_models"]

DEFAULT_TREEBANK_DIR = Path("data/treebank")
DEFAULT_TREEBANK_SENTENCES = 20_000
DEFAULT_TREEBANK_SEED = 0

Log = Callable[[str], None]


# ----------------------------------------------------------------------------- data
def run_of(model: Any) -> RunDir | None:
    """The run directory behind a native model spec (``runs/NAME``, ``native:PATH``, a
    checkpoint directory → its run), or None for other specs and for model objects."""
    if not isinstance(model, (str, Path)):
        return None
    return parse_spec(model).run_dir()


def load_data(data: str | Path, model: Any = None, *, treebank_dir: str | Path | None = None,
              max_sentences: int | None = None, log: Log | None = None) -> tuple[list[Any], dict[str, Any]]:
    """Sentences to probe and a description of where they came from.

    ``data`` "treebank": the probe split (``probe.conllu``) of the built-in treebank: the one
    in ``treebank_dir`` when given (an error when it has none); else the treebank the model's
    run was trained on (``RunDir.treebank_dir``: its config.json "data" section, default
    ``RUN/data``); else ``data/treebank/`` under the current directory, generated there (20,000
    sentences, seed 0) when missing. Anything else: a CoNLL-U file (any UD treebank).
    """
    from corpus import read_conllu

    if str(data) == "treebank":
        path = treebank_probe_file(model, treebank_dir, log or (lambda msg: None))
        source: dict[str, Any] = {"kind": "treebank", "path": str(path)}
    else:
        path = Path(data)
        if not path.is_file():
            raise FileNotFoundError(f"no CoNLL-U file at {path} (--data takes 'treebank' or a .conllu file)")
        source = {"kind": "conllu", "path": str(path)}
    source["sha256"] = file_fingerprint(path)  # results made from other contents are never replaced silently
    sentences = read_conllu(path)
    if max_sentences is not None and len(sentences) > max_sentences:
        sentences = sentences[:max_sentences]
        source["max_sentences"] = max_sentences
    if not sentences:
        raise ValueError(f"{path}: no sentences")
    return sentences, source


def treebank_probe_file(model: Any, treebank_dir: str | Path | None, log: Log) -> Path:
    """The probe split of the built-in treebank (see ``load_data``)."""
    from corpus.treebank import split_file

    name = split_file("probe")
    if treebank_dir is not None:
        tb = Path(treebank_dir)
        if not tb.is_dir():
            raise FileNotFoundError(f"no treebank directory {tb} (--treebank)")
        if not (tb / name).is_file():
            raise FileNotFoundError(f"no {name} in the treebank directory {tb}")
        return tb / name
    run = run_of(model)
    tb = run.treebank_dir() if run is not None else None
    if tb is not None and (tb / name).is_file():
        return tb / name
    if not (DEFAULT_TREEBANK_DIR / name).is_file():
        from corpus import write_treebank

        log(f"generating the built-in treebank in {DEFAULT_TREEBANK_DIR} ({DEFAULT_TREEBANK_SENTENCES} sentences, "
            f"seed {DEFAULT_TREEBANK_SEED})")
        write_treebank(DEFAULT_TREEBANK_DIR, DEFAULT_TREEBANK_SENTENCES, DEFAULT_TREEBANK_SEED)
    return DEFAULT_TREEBANK_DIR / name


# ----------------------------------------------------------------------------- models
@dataclass
class ModelToProbe:
    """A loaded model with its role ("model", "random_init", "compare") and the spec that
    results.json records for it (None for the twin)."""

    role: str
    backend: Any
    spec: str | None


def _spec_label(spec: Any, backend: Any) -> str:
    return str(spec) if isinstance(spec, (str, Path)) else backend.metadata.source


def load_models(model: Any, compare: Sequence[Any] = (), *, twin: bool = True, twin_seed: int = 0,
                device: str = "cpu", allow_nonfinite: bool = False, seeds: Sequence[Any] = ()) -> list[ModelToProbe]:
    """The main model (a spec or backend), its random-init twin, the ``seeds`` (other training
    seeds of the main model: its verdict is also given across them, ``probes.depth.seed_verdict``)
    and the ``compare`` models. ``allow_nonfinite``: load weights holding NaN/inf (their
    activations are still checked)."""
    main = load_backend(model, device=device, allow_nonfinite=allow_nonfinite)
    models = [ModelToProbe("model", main, _spec_label(model, main))]
    if twin:
        models.append(ModelToProbe("random_init", random_init_twin(main, twin_seed), None))
    for spec in seeds:
        backend = load_backend(spec, device=device, allow_nonfinite=allow_nonfinite)
        if backend.metadata.n_layer != main.metadata.n_layer:
            raise ValueError(f"--seeds {spec}: {backend.metadata.n_layer} blocks, but the model has "
                             f"{main.metadata.n_layer}: seeds of one preset have the same shape")
        models.append(ModelToProbe("seed", backend, _spec_label(spec, backend)))
    for spec in compare:
        backend = load_backend(spec, device=device, allow_nonfinite=allow_nonfinite)
        models.append(ModelToProbe("compare", backend, _spec_label(spec, backend)))
    return models


def planned_settings(models: Sequence[ModelToProbe], tasks: Sequence[Task | str] | str | None,
                     source: dict[str, Any], config: ProbeConfig, erasure: "Erasure | None" = None) -> dict[str, Any]:
    """The ``ProbeResults.settings()`` that probing these models (and erasing ``erasure``) would record."""
    erased = None if erasure is None else erasure_settings(erasure.concepts, erasure.method, erasure.n_random)
    return run_settings([t.name for t in resolve_tasks(tasks)], source, config, [(m.role, m.spec) for m in models],
                        erased, [model_fingerprint(m.backend) for m in models])


# ----------------------------------------------------------------------------- erasure
ERASED_ROLES = ("model", "random_init")  # erasure runs on the main model and its twin


@dataclass
class Erasure:
    """What causal erasure to run beside the probes: the concepts (categorical task names),
    LEACE or INLP, and the number of random-subspace draws of the control."""

    concepts: list[str]
    method: str = "leace"
    n_random: int = 5

    @classmethod
    def of(cls, concepts: Sequence[Task | str] | str | None, method: str = "leace", n_random: int = 5
           ) -> "Erasure | None":
        """None for no concepts; ValueError (before any work) for a bad concept, method or count."""
        if concepts is None:
            return None
        ErasureSettings(method=method, n_random=n_random)  # checks both
        return cls([t.name for t in concept_tasks(concepts)], method, n_random)


def check_erasure_models(models: Sequence[ModelToProbe]) -> None:
    """ValueError (one line) when the main model or its twin cannot be erased (an nnsight backend)."""
    for m in models:
        if m.role not in ERASED_ROLES:
            continue
        try:
            check_erasable(m.backend)
        except ValueError as err:
            hint = (" (the random-init twin of a Hugging Face model is probed through nnsight: add --no-twin, "
                    "twin=False)") if m.role == "random_init" else ""
            raise ValueError(f"{err}{hint}") from None


# ----------------------------------------------------------------------------- probing
def probe(model: Any, sentences: Sequence[Any], tasks: Sequence[Task | str] | str | None = None,
          config: ProbeConfig | None = None, *, compare: Sequence[Any] = (), twin: bool = True,
          twin_seed: int = 0, store_dir: str | Path | None = None, batch_size: int = 32,
          data_info: dict[str, Any] | None = None, log: Log | None = None,
          allow_nonfinite: bool = False, erase: Sequence[Task | str] | str | None = None,
          erase_method: str = "leace", erase_random: int = 5, progress: bool = False,
          max_memory: float | None = None, rebuild_stores: bool = False, seeds: Sequence[Any] = ()) -> ProbeResults:
    """Probe ``model`` (a spec or backend), its random-init twin, ``seeds`` (other training seeds
    of the same preset: the verdict across seeds, ``ProbeResults.seeds``) and ``compare`` models.

    Returns the typed results (``.to_dict()``: results.json, schema in docs/probes.md).
    ``store_dir``: keep each model's activations in a ``hooks.ActivationStore`` under
    ``store_dir/<tag>`` (reused on a rerun). ``erase``: concepts to erase at every layer of the
    main model and its twin (``probes.erase``; ``erase_method`` "leace" or "inlp",
    ``erase_random`` random-subspace draws); ``progress``: progress bars on stderr (extraction,
    fits, erasure). ``max_memory``: bytes one model's float32 features may take in memory; above
    it they are streamed as float16 memmaps from a temporary activation store (as with
    ``store_dir``, which always streams). A store under ``store_dir`` built from another model
    (weights, tokenizer, shape) or other sentences raises ``hooks.store.StaleStoreError`` before
    any work, naming what differs; ``rebuild_stores=True`` rebuilds it instead.
    """
    config = config or ProbeConfig()
    tasks = resolve_tasks(tasks)  # unknown task names fail before any model is loaded
    erasure = Erasure.of(erase, erase_method, erase_random)
    models = load_models(model, compare, twin=twin, twin_seed=twin_seed, device=config.device,
                         allow_nonfinite=allow_nonfinite, seeds=seeds)
    return probe_models(models, sentences, tasks, config, store_dir=store_dir, batch_size=batch_size,
                        data_info=data_info, log=log, erasure=erasure, progress=progress, max_memory=max_memory,
                        rebuild_stores=rebuild_stores)


def probe_models(models: Sequence[ModelToProbe], sentences: Sequence[Any],
                 tasks: Sequence[Task | str] | str | None = None, config: ProbeConfig | None = None, *,
                 store_dir: str | Path | None = None, batch_size: int = 32,
                 data_info: dict[str, Any] | None = None, log: Log | None = None,
                 erasure: Erasure | None = None, progress: bool = False,
                 max_memory: float | None = None, rebuild_stores: bool = False) -> ProbeResults:
    """``probe`` on models already loaded (``load_models``); ``erasure``: see ``Erasure``;
    ``rebuild_stores``: see ``probe``. One model's features are in memory at a time."""
    log = log or (lambda msg: None)
    config = config or ProbeConfig()
    suite = ProbeSuite(tasks, config)
    if erasure is not None:
        check_erasure_models(models)
    kept = [s for s in sentences if all(fits_context(m.backend, s) for m in models)]
    skipped = len(sentences) - len(kept)
    if skipped:
        log(f"skipping {skipped} of {len(sentences)} sentences longer than a model's context")
    if not kept:
        raise ValueError("no sentence fits the models' context")
    summary = suite.data_summary(kept)
    split = summary["split_sentences"]
    log(f"{summary['n_sentences']} sentences, {summary['n_words']} words "
        f"(train/val/test sentences {split['train']}/{split['val']}/{split['test']})")
    tags = model_tags(models)
    if store_dir is not None and not rebuild_stores:
        check_stores(models, tags, kept, store_dir)
    results: list[ModelResult] = []
    unknown: dict[str, dict[str, Any]] = {}
    for m, tag in zip(models, tags):
        if m.role != "random_init":
            _note_unknown_words(m.backend, kept, tag, unknown, log)
        results.append(_probe_one(m, tag, suite, kept, store_dir, batch_size, log,
                                  erasure if m.role in ERASED_ROLES else None, progress, max_memory, rebuild_stores))
    data = DataInfo.from_dict({**(data_info or {}), **summary, "n_skipped_too_long": skipped,
                               "unknown_words": unknown})
    return ProbeResults(datetime.now(timezone.utc).isoformat(timespec="seconds"), _version(), data, config,
                        [TaskInfo(**t.to_dict()) for t in suite.tasks], results, comparison_of(results),
                        torch.__version__, seeds=across_seeds(results, suite, config))


def across_seeds(results: Sequence[ModelResult], suite: ProbeSuite, config: ProbeConfig) -> Verdict | None:
    """The verdict (``config.expected``) across the main model and its "seed" models, the seed
    as the unit (``probes.depth.seed_verdict``); None without seed models."""
    from probes.depth import seed_verdict

    members = [m for m in results if m.role in ("model", "seed")]
    if len(members) < 2:
        return None
    kind = config.expected
    levels = {t.name: t.level for t in suite.tasks}
    verdict = seed_verdict([m.fit.samples.get(kind, ({}, {})) for m in members], levels,
                           config.verdict_threshold, config.seed)
    verdict["expected"] = kind
    verdict["message"] = f"across {len(members)} seeds ({', '.join(m.tag for m in members)}): {verdict['message']}"
    return Verdict.from_dict(verdict)


def model_tags(models: Sequence[ModelToProbe]) -> list[str]:
    """Each model's tag (``model_tag`` of its name; a repeated one gets "_" appended): the name
    of its results entry and of its activation store under ``store_dir``."""
    tags: list[str] = []
    for m in models:
        tag = model_tag(m.backend.metadata.name)
        while tag in tags:
            tag += "_"
        tags.append(tag)
    return tags


def check_stores(models: Sequence[ModelToProbe], tags: Sequence[str], sentences: Sequence[Any],
                 store_dir: str | Path) -> None:
    """``hooks.store.StaleStoreError`` (before any work) when an activation store under
    ``store_dir`` exists but was built from another model than the one its tag now names, or
    from other sentences: the tags follow model names, so a replaced model, or another
    ``--compare`` model taking a freed tag, would otherwise be probed on stale activations."""
    from hooks.store import INDEX, ActivationStore, StaleStoreError, corpus_fingerprint

    digest = None
    for m, tag in zip(models, tags):
        path = Path(store_dir) / tag
        if not (path / INDEX).is_file():
            continue
        store = ActivationStore(path)
        store.check_model(m.backend)
        first = store.index["segments"][0]
        digest = digest or corpus_fingerprint(list(sentences))
        if (first["fingerprint"], first["n_sentences"]) != (digest, len(sentences)):
            raise StaleStoreError(f"store {path} was built from other sentences ({first['source']}, "
                                  f"{first['n_sentences']} sentences, not these {len(sentences)}): use another "
                                  f"--store directory, or rebuild it (--force)")


def _note_unknown_words(backend: Any, sentences: Sequence[Any], tag: str, unknown: dict[str, dict[str, Any]],
                        log: Log) -> None:
    unk = unknown_words(backend, sentences)
    if unk is None:
        return
    unknown[tag] = unk
    if unk["tokens"]:
        top = ", ".join(f"{w!r}×{c}" for w, c in unk["top"][:5])
        log(f"warning: [{tag}] {unk['tokens']} of {unk['words']} words ({100 * unk['rate']:.1f}%, "
            f"{unk['types']} types) are not in the model's vocabulary and are read as <unk>: {top}")


def _probe_one(m: ModelToProbe, tag: str, suite: ProbeSuite, sentences: Sequence[Any],
               store_dir: str | Path | None, batch_size: int, log: Log, erasure: Erasure | None = None,
               progress: bool = False, max_memory: float | None = None, rebuild_store: bool = False) -> ModelResult:
    info = m.backend.metadata
    t0 = time.perf_counter()
    with _feature_store(info, tag, sentences, store_dir, max_memory, log) as store:
        log(f"[{tag}] extracting activations ({info.n_layer} layers, d_model {info.d_model})"
            + ("" if store is None else f" into {store}"))
        with Progress(len(sentences), f"[{tag}] extracting", progress, unit="sent") as bar:
            if store is None:
                feats = extract(m.backend, sentences, batch_size=batch_size, device=suite.config.device,
                                progress=bar.counter())
            else:
                feats = extract_to_store(m.backend, sentences, store, dtype=_store_dtype(store, rebuild_store),
                                         batch_size=batch_size, progress=bar.counter(), rebuild=rebuild_store)
        t_extract = time.perf_counter() - t0
        log(f"[{tag}] probing {len(suite.tasks)} tasks × {info.n_layer + 1} layers")
        fit = suite.fit(feats, sentences, log=log, source=f"model {tag!r}", progress=progress)
        fit.timing_s["extract"] = t_extract
        log(f"[{tag}] verdict: {fit.verdict.message}")
        erased = None
        if erasure is not None:
            log(f"[{tag}] erasing {', '.join(erasure.concepts)} ({erasure.method}, {erasure.n_random} random draws) "
                f"at every layer")
            d = erase_concepts(m.backend, sentences, erasure.concepts, suite.config, method=erasure.method,
                               n_random=erasure.n_random, features=feats, batch_size=batch_size, progress=progress,
                               log=lambda msg: log(f"[{tag}] {msg}"))
            erased = ErasureResult.from_dict(d, f"model {tag!r}: erasure", info.n_layer)
        del feats
    return ModelResult(tag, m.role, m.spec, info.to_dict(), fit, erased, model_fingerprint(m.backend))


def feature_bytes(info: Any, sentences: Sequence[Any]) -> int:
    """Bytes of one model's features in memory: float32 [n_layer + 1, n_words, d_model]."""
    n_words = sum(len(s.words) for s in sentences)
    return 4 * (info.n_layer + 1) * n_words * info.d_model


@contextmanager
def _feature_store(info: Any, tag: str, sentences: Sequence[Any], store_dir: str | Path | None,
                   max_memory: float | None, log: Log) -> Iterator[Path | None]:
    """Where one model's features go: ``store_dir/<tag>`` (kept), a temporary store when they
    would exceed ``max_memory`` bytes in memory (deleted afterwards), or None (in memory)."""
    if store_dir is not None:
        yield Path(store_dir) / tag
        return
    need = feature_bytes(info, sentences)
    if max_memory is None or need <= max_memory:
        yield None
        return
    log(f"[{tag}] features take {need / 2**30:.2f} GiB as float32, more than --max-memory "
        f"({max_memory / 2**30:.2f} GiB): streaming float16 memmaps from a temporary activation store")
    with tempfile.TemporaryDirectory(prefix="stratascope-features-") as tmp:
        yield Path(tmp) / tag


def _store_dtype(store: Path, rebuild: bool = False) -> str:
    """float16 for a new (or rebuilt) store; an existing one keeps its own dtype (so it is reused)."""
    from hooks.store import INDEX, ActivationStore

    return str(ActivationStore(store).index["dtype"]) if (store / INDEX).is_file() and not rebuild else "float16"


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("stratascope")
    except Exception:  # noqa: BLE001 - a source tree that was not installed
        return "0+unknown"
