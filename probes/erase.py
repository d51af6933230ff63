"""Causal erasure: does the model use what a probe reads? (LEACE or INLP per layer, with a
random-subspace control.)

    from probes.erase import erase
    d = erase(backend, sentences, ["subject_number_next", "upos"])   # a model's "erasure" in results.json
    d["concepts"]["subject_number_next"]["reading"]

For each concept (a categorical probing task) and each residual layer ℓ = 0..n_layer:

1. fit an eraser (``probes.erase_fit``: LEACE by default, INLP as an option) on the concept's
   words of the probes' *training* sentences (``probes.suite.split_sentences`` with the
   ``ProbeConfig``'s fractions and seed), from the residual stream at ℓ;
2. apply it through a hook at ℓ, at every position, on the held-out *test* sentences and
   measure the behaviour (``probes.erase_behaviour``): accuracy on the attractor minimal pairs
   built from those sentences, and the next-token loss as a change from the clean model;
3. refit a logistic probe on the erased training features and score it on the erased test
   features — it must fall to the majority baseline, which checks the eraser;
4. the control: the same three measurements after erasing a random subspace of the same rank
   (``n_random`` draws, averaged).

Every number carries a 95 % interval from one sentence bootstrap of the held-out sentences
(``probes.metrics.Bootstrap``, the probes' own resamples). The result is the ``erasure`` dict of
a model in results.json (schema in docs/probes.md), with a one-line reading per concept. Fewer
than ``MIN_INTERVAL_SENTENCES`` held-out sentences are too few to resample: ``erase`` logs a
warning and the reading says on how many sentences its interval rests.
``erase_concept`` is the engine for one concept with a pluggable behaviour (the planted-model
test uses it).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from probes.config import ProbeConfig
from probes.erase_behaviour import Behaviour, LMBehaviour, Measure, check_erasable, edited_forward
from probes.erase_fit import METHODS, Eraser, fit_inlp, fit_leace, probe_after_erasure, random_eraser
from probes.erase_summary import MIN_INTERVAL_SENTENCES, clean_summary, layer_entries, reading, units_measured
from probes.metrics import Bootstrap
from probes.progress import Progress
from probes.results import number
from probes.strategy import TaskSplit
from probes.suite import split_sentences
from probes.tasks import Task, label_task, resolve_tasks

__all__ = ["erase", "erase_concept", "ErasureSettings", "ConceptData", "concept_tasks", "concept_data",
           "minimal_pairs_for", "AGREEMENT_CONCEPTS", "METHODS", "SITE", "DEFAULT_RANDOM_DRAWS", "MAX_RANDOM_DRAWS"]

SITE = "resid"
# Concepts whose behaviour is agreement: their reading reports the minimal pairs; the others' the loss.
AGREEMENT_CONCEPTS = frozenset({"subject_number", "subject_number_next"})
PAIR_SOURCES = ("auto", "grammar", "corpus")
DEFAULT_RANDOM_DRAWS = 5
# Each draw costs a forward pass over the held-out sentences per layer and concept, and the probes
# refitted after every draw of a layer are fitted (and held in memory) together; past a hundred
# draws the control's mean moves far less than its bootstrap interval.
MAX_RANDOM_DRAWS = 100
Log = Callable[[str], None]


@dataclass
class ErasureSettings:
    """How erasure is run. ``probe_lambda``: the L2 of the probes refitted after erasure and of
    INLP's probes (per-word loss scale, as ``ProbeConfig.lambdas``); ``probe_max_words``: the
    refitted probes learn from at most this many training words; ``inlp_rounds`` /
    ``inlp_tolerance``: INLP stops after that many rounds or when its probe is within the
    tolerance of the majority baseline on the validation words."""

    method: str = "leace"
    n_random: int = DEFAULT_RANDOM_DRAWS
    seed: int = 0
    n_bootstrap: int = 1000
    ci_level: float = 0.95
    probe_lambda: float = 1e-3
    probe_max_words: int = 8192  # training words of the probes refitted after erasure (a seeded sample)
    inlp_rounds: int = 100
    inlp_tolerance: float = 0.01
    max_iter: int = 1000
    tol: float = 1e-4
    threads: int | None = None
    device: str = "cpu"
    progress: bool = False

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"erasure method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.n_random < 1:
            raise ValueError(f"the random-subspace control needs at least 1 draw, got {self.n_random}")
        if self.n_random > MAX_RANDOM_DRAWS:
            raise ValueError(f"the random-subspace control takes at most {MAX_RANDOM_DRAWS} draws, got {self.n_random}")
        if self.inlp_rounds < 1:
            raise ValueError(f"inlp_rounds must be >= 1, got {self.inlp_rounds}")

    @classmethod
    def of(cls, config: ProbeConfig, **kwargs: Any) -> "ErasureSettings":
        return cls(seed=config.seed, n_bootstrap=config.n_bootstrap, ci_level=config.ci_level,
                   max_iter=config.max_iter, threads=config.threads, device=config.device, **kwargs)


@dataclass
class ConceptData:
    """One concept's labelled words: features [n_layer + 1, n, d] and class labels per split;
    ``test_unit``: each test word's held-out sentence (its bootstrap unit)."""

    name: str
    classes: list[Any]
    X_train: Tensor
    y_train: Tensor
    X_val: Tensor
    y_val: Tensor
    X_test: Tensor
    y_test: Tensor
    test_unit: np.ndarray

    @property
    def n_classes(self) -> int:
        return len(self.classes)


# ----------------------------------------------------------------------------- inputs
def concept_tasks(concepts: Sequence[Task | str] | str) -> list[Task]:
    """The tasks named by ``concepts`` (names, Tasks or a comma-separated string); ValueError
    for none, an unknown name or a task that is not categorical."""
    if concepts is None or (isinstance(concepts, str) and not concepts.strip()) or (
            not isinstance(concepts, str) and len(concepts) == 0):
        raise ValueError("no concept to erase given (e.g. --erase subject_number_next,upos)")
    tasks = resolve_tasks(concepts)
    for t in tasks:
        if not t.categorical:
            raise ValueError(f"cannot erase {t.name!r}: erasure needs a categorical task, {t.name!r} is {t.kind}")
    return tasks


def concept_data(task: Task, sentences: Sequence[Any], features: Tensor, split: np.ndarray,
                 test_pos: np.ndarray) -> ConceptData:
    """The concept's words in the probes' split (``probes.strategy.TaskSplit``)."""
    lab = label_task(task, sentences)
    ts = TaskSplit.of(lab, split, test_pos)
    if ts.n_train < 2 or ts.n_test == 0 or len(np.unique(ts.y_train)) < 2:
        raise ValueError(f"cannot erase {task.name!r}: too few labelled words or classes in the training split "
                         f"(train {ts.n_train}, test {ts.n_test} words)")
    X = features[:, torch.as_tensor(lab.rows[ts.order], device=features.device)]
    y = torch.as_tensor(ts.y, device=features.device)
    a, b = ts.n_train, ts.n_train + ts.n_val
    return ConceptData(task.name, list(lab.classes), X[:, :a], y[:a], X[:, a:b], y[a:b], X[:, b:], y[b:],
                       ts.test_sentence)


def minimal_pairs_for(held_out: Sequence[Any], sentences: Sequence[Any], source: str = "auto") -> list[list[Any]]:
    """The attractor minimal pairs of each held-out sentence. "grammar": the built-in treebank's
    (``corpus.agreement_minimal_pairs``, wrong forms from the grammar); "corpus": any CoNLL-U
    with Number features (``corpus.labels.corpus_minimal_pairs``, wrong forms attested in
    ``sentences``); "auto": "grammar" when every word is in the grammar's vocabulary."""
    from corpus import DEFAULT_GRAMMAR, agreement_minimal_pairs
    from corpus.labels import corpus_minimal_pairs, inflection_table

    if source not in PAIR_SOURCES:
        raise ValueError(f"minimal-pair source must be one of {', '.join(PAIR_SOURCES)}, got {source!r}")
    if source == "auto":
        vocab = set(DEFAULT_GRAMMAR.vocabulary())
        source = "grammar" if all(w.form in vocab for s in sentences for w in s.words) else "corpus"
    if source == "grammar":
        return [agreement_minimal_pairs([s]) for s in held_out]
    table = inflection_table(sentences)
    return [corpus_minimal_pairs([s], table) for s in held_out]


# ----------------------------------------------------------------------------- the engine
def erase(model: Any, sentences: Sequence[Any], concepts: Sequence[Task | str] | str,
          config: ProbeConfig | None = None, *, method: str = "leace", n_random: int = DEFAULT_RANDOM_DRAWS,
          features: Any = None, minimal_pairs: str = "auto", behaviour: Behaviour | None = None,
          inlp_rounds: int = 100, batch_size: int = 32, progress: bool = False, log: Log | None = None
          ) -> dict[str, Any]:
    """Erase each concept at every layer of ``model`` (a native or tl backend) and measure what
    that does (see module doc). ``features``: the residual stream at every word of
    ``sentences`` ([n_layer + 1, n_words, d], as ``probes.extract`` returns; extracted when
    None). ``behaviour``: what to measure on the held-out sentences (default ``LMBehaviour``:
    loss and minimal pairs from ``minimal_pairs``, see ``minimal_pairs_for``); ``inlp_rounds``:
    INLP's maximum number of rounds. Returns the ``erasure`` dict of results.json."""
    from probes.features import check_finite, to_tensor
    from probes.models import extract

    log = log or (lambda msg: None)
    check_erasable(model)
    tasks = concept_tasks(concepts)
    config = config or ProbeConfig()
    settings = ErasureSettings.of(config, method=method, n_random=n_random, inlp_rounds=inlp_rounds,
                                  progress=progress)
    timing = {"fit": 0.0, "behaviour": 0.0}
    if not sentences:
        raise ValueError("no sentences to erase on")
    if features is None:
        t0 = time.perf_counter()
        features = extract(model, sentences, batch_size=batch_size, device=config.device)
        timing["extract"] = time.perf_counter() - t0
    X = to_tensor(features, config.device)
    n_words = sum(len(s.words) for s in sentences)
    if X.shape[1] != n_words:
        raise ValueError(f"features have {X.shape[1]} word rows but the sentences have {n_words} words")
    check_finite(X, f"model {model.metadata.name!r}")
    split = split_sentences(sentences, config.split, config.seed)
    test_ids = np.nonzero(split == 2)[0]
    test_pos = np.full(len(sentences), -1, dtype=np.int64)
    test_pos[test_ids] = np.arange(len(test_ids))
    held_out = [sentences[i] for i in test_ids]
    if len(held_out) < MIN_INTERVAL_SENTENCES:
        log(f"warning: erasure is measured on {len(held_out)} held-out sentence(s), too few to resample: its "
            f"intervals need at least {MIN_INTERVAL_SENTENCES} to mean anything; give it more sentences")
    boot = Bootstrap(len(held_out), settings.n_bootstrap, seed=settings.seed)
    t0 = time.perf_counter()
    if behaviour is None:
        behaviour = LMBehaviour(model, held_out, minimal_pairs_for(held_out, sentences, minimal_pairs), batch_size)
    clean = behaviour.measure(edited_forward(model))
    timing["behaviour"] += time.perf_counter() - t0
    out: dict[str, Any] = {"method": settings.method, "site": SITE, "n_random": settings.n_random,
                           "n_bootstrap": settings.n_bootstrap, "seed": settings.seed,
                           "clean": clean_summary(clean, boot, settings.ci_level), "concepts": {},
                           "timing_s": timing}
    for t in tasks:
        data = concept_data(t, sentences, X, split, test_pos)
        entry, t_fit, t_behaviour = erase_concept(model, behaviour, data, clean, boot, settings)
        timing["fit"] += t_fit
        timing["behaviour"] += t_behaviour
        out["concepts"][t.name] = entry
        log(f"erasure: {entry['reading']}  [{t_fit + t_behaviour:.1f} s]")
    return out


def erase_concept(model: Any, behaviour: Behaviour, data: ConceptData, clean: dict[str, Measure | None],
                  boot: Bootstrap, settings: ErasureSettings, *, read_on: str | None = None
                  ) -> tuple[dict[str, Any], float, float]:
    """One concept at every layer: its entry of ``erasure["concepts"]`` and the seconds spent
    fitting (erasers, probes) and measuring the behaviour. ``clean``: the behaviour of the
    unerased model (``behaviour.measure(edited_forward(model))``). ``read_on``: the measure the
    reading reports, "agreement" or "loss" (None: agreement for ``AGREEMENT_CONCEPTS``); the
    behaviour's ``agreement_label`` (default "attractor agreement") names the first."""
    t0 = time.perf_counter()
    draws, n_layers = settings.n_random, int(data.X_train.shape[0])
    with Progress(2 * n_layers * (1 + draws), f"erasing {data.name} (+{draws} random draw"
                  f"{'s' if draws != 1 else ''})", settings.progress, unit="draw") as bar:
        bar.stage("fitting the erasers")
        erasers = _fit_erasers(data, settings)
        conditions = [[e] + [random_eraser(e.mean, e.rank, (settings.seed, l, j)) for j in range(draws)]
                      for l, e in enumerate(erasers)]
        sample = _sample(len(data.y_train), settings.probe_max_words, settings.seed).to(data.y_train.device)
        correct = []
        for l in range(n_layers):
            bar.stage(f"layer {l}: probes after erasure and {draws} random draw(s)")
            correct.append(probe_after_erasure(
                conditions[l], data.X_train[l, sample], data.y_train[sample], data.X_test[l], data.y_test,
                data.n_classes, lam=settings.probe_lambda, max_iter=settings.max_iter, tol=settings.tol,
                threads=settings.threads))
            bar.update(1 + draws)
        probe_correct = np.stack(correct, axis=1)  # [n_test, layers, 1 + n_random]
        t_fit = time.perf_counter() - t0
        t0 = time.perf_counter()
        measured: list[list[dict[str, Measure | None]]] = []
        for l, conds in enumerate(conditions):
            row = []
            for j, e in enumerate(conds):
                bar.stage(f"layer {l}: " + ("behaviour after erasure" if j == 0 else f"random draw {j}/{draws}"))
                row.append(clean if e.rank == 0 else behaviour.measure(edited_forward(model, l, e)))
                bar.update(1)
            measured.append(row)
        t_behaviour = time.perf_counter() - t0
    majority = int(torch.bincount(data.y_train, minlength=data.n_classes).argmax())
    entry = {
        "task": data.name,
        "n_classes": data.n_classes,
        "rank": max(e.rank for e in erasers),
        "majority": number(float((data.y_test == majority).double().mean())),
        "reading": "",
        "layers": layer_entries(measured, clean, probe_correct, data.test_unit, boot, settings.ci_level),
    }
    if read_on is None:
        read_on = "agreement" if data.name in AGREEMENT_CONCEPTS else "loss"
    entry["reading"] = reading(data.name, entry, clean_summary(clean, boot, settings.ci_level),
                               [e.rank for e in erasers], read_on,
                               getattr(behaviour, "agreement_label", "attractor agreement"), units_measured(clean))
    return entry, t_fit, t_behaviour


def _sample(n: int, k: int, seed: int) -> Tensor:
    """All of range(n), or k of them drawn without replacement (seeded), in order."""
    if n <= k:
        return torch.arange(n)
    return torch.as_tensor(np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False)))


def _fit_erasers(data: ConceptData, settings: ErasureSettings) -> list[Eraser]:
    if settings.method == "leace":
        return [fit_leace(data.X_train[l], data.y_train, data.n_classes) for l in range(data.X_train.shape[0])]
    return [e.to("cpu", torch.float32) for e in fit_inlp(
        data.X_train, data.y_train, data.X_val, data.y_val, data.n_classes, max_rounds=settings.inlp_rounds,
        lam=settings.probe_lambda, tolerance=settings.inlp_tolerance, max_iter=settings.max_iter,
        tol=settings.tol, threads=settings.threads)]
