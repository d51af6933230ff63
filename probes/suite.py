"""The probe suite: every task × every layer, with its controls, on one model's activations.

    suite = ProbeSuite(["upos", "depth"], ProbeConfig(seed=0))
    fit = suite.fit(features, sentences)          # features [n_layer + 1, n_words, d_model]
    fit.tasks["upos"].peak_layer

``features`` holds the residual stream at every word of ``sentences`` (rows in corpus order,
layer 0 = embeddings): a numpy array or memmap, a torch tensor, a list of per-layer arrays, or a
``hooks.ActivationStore`` (``probes.features``); NaN or inf in it is an error naming the layer.
For each task the suite

1. splits the sentences into train / validation / test (``ProbeConfig.split``; by distinct
   sentence text, so a sentence repeated in the corpus never straddles two splits);
2. standardises each layer's features on the task's training words and fits a linear probe for
   every layer at once (``probes.fit``), choosing L2 per layer on the validation words;
3. fits the same probes on the Hewitt & Liang control task (``TaskLabels.control``), gets the
   majority-class baseline, the online MDL codelength of task and control (categorical tasks),
   and the cumulative probes on layers 0..ℓ used for the expected layers (``probes.depth``) —
   steps 2 and 3 are the task kind's ``probes.strategy``;
4. scores everything on the test words, with 95 % intervals from one sentence bootstrap shared by
   all tasks and layers (``probes.metrics``); the MDL codes, sums over the training words, get
   theirs from a second bootstrap of the training sentences, also shared;
5. computes the three expected layers (anchored and Tenney from the cumulative probes, MDL from
   the codes) and gives the hierarchy verdict with the one ``ProbeConfig.expected`` names; the
   verdicts under the other definitions this run has, from the same resamples, go beside it
   (``ModelFit.verdicts``).

The result is a ``probes.results.ModelFit`` (one model's part of results.json; schema in
docs/probes.md).
"""

from __future__ import annotations

import math
import time
from functools import partial
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from probes.config import ProbeConfig
from probes.depth import (
    EXPECTED_KINDS,
    expected_layer_anchored,
    expected_layer_mdl,
    expected_layer_tenney,
    hierarchy_verdict,
    peak_layer,
)
from probes.features import FeatureLayers, as_layers, to_tensor
from probes.fit import GramBasis
from probes.mdl import resampled_codelengths
from probes.metrics import Bootstrap, interval
from probes.progress import Progress, Tick
from probes.results import (
    ControlScore,
    CumulativeScore,
    ExpectedLayer,
    GroupScore,
    Interval,
    LayerScore,
    MDLScore,
    ModelFit,
    TaskInfo,
    TaskResult,
    Verdict,
    number,
)
from probes.strategy import LayerFits, TaskSplit, TaskStrategy, split_positions, strategy_for
from probes.tasks import Task, TaskLabels, label_task, resolve_tasks

__all__ = ["ProbeConfig", "ProbeSuite", "split_sentences", "as_layers", "to_tensor", "SPLITS"]

SPLITS = ("train", "val", "test")
# The MDL bootstrap resamples the training sentences with its own stream of the run's seed.
MDL_BOOTSTRAP_SEED_OFFSET = 104_729
# The training words of every task are kept in a seeded random order: the order the MDL online
# code transmits them in.
MDL_ORDER_SEED_OFFSET = 7919
# How many Gram eigenbases one model's fit keeps (tasks over the same training words share one).
BASIS_CACHE_SIZE = 3


def split_sentences(sentences: Sequence[Any], fractions: Sequence[float] = (0.7, 0.1, 0.2),
                    seed: int = 0) -> np.ndarray:
    """Split id per sentence (0 train, 1 validation, 2 test). Distinct texts are shuffled
    (seeded) and cut at the fractions; every copy of a text goes to the same split. With at
    least three distinct texts every split gets one."""
    texts = [_text(s) for s in sentences]
    distinct = list(dict.fromkeys(texts))
    order = np.random.default_rng(seed).permutation(len(distinct))
    n = len(distinct)
    n_train = int(round(fractions[0] * n))
    n_val = int(round(fractions[1] * n))
    if n >= 3:
        n_train = min(max(n_train, 1), n - 2)
        n_val = min(max(n_val, 1), n - n_train - 1)
    which = np.empty(n, dtype=np.int64)
    which[order[:n_train]] = 0
    which[order[n_train:n_train + n_val]] = 1
    which[order[n_train + n_val:]] = 2
    index = {t: which[k] for k, t in enumerate(distinct)}
    return np.asarray([index[t] for t in texts], dtype=np.int64)


def _text(s: Any) -> str:
    if hasattr(s, "forms"):
        return " ".join(s.forms)
    return " ".join(s)



# ----------------------------------------------------------------------------- the suite
@dataclass
class _Prepared:
    sentences: Sequence[Any]
    n_words: int
    split: np.ndarray  # per sentence
    split_pos: np.ndarray  # per sentence: index among the sentences of its split
    labels: dict[str, TaskLabels]
    splits: dict[str, TaskSplit]
    bootstrap: Bootstrap  # of the test sentences
    n_resamples: int
    seed: int
    _train_bootstrap: Bootstrap | None = None

    @property
    def train_bootstrap(self) -> Bootstrap:
        """The resamples of the training sentences (for the MDL codes), drawn when first needed."""
        if self._train_bootstrap is None:
            n_train = int((self.split == 0).sum())
            self._train_bootstrap = Bootstrap(max(n_train, 1), self.n_resamples,
                                              seed=self.seed + MDL_BOOTSTRAP_SEED_OFFSET)
        return self._train_bootstrap


class ProbeSuite:
    """Tasks + configuration; ``fit(features, sentences)`` probes one model (see module doc).

    Label extraction, the split and the bootstrap depend only on the sentences and the seed,
    so fitting several models (a model, its random-init twin, GPT-2) on the same sentences uses
    the same words, the same split and the same resamples for all of them.
    """

    def __init__(self, tasks: Sequence[Task | str] | str | None = None, config: ProbeConfig | None = None):
        self.tasks = resolve_tasks(tasks)
        self.config = config or ProbeConfig()
        self._prepared: _Prepared | None = None

    # -- data --------------------------------------------------------------------------
    def prepare(self, sentences: Sequence[Any]) -> _Prepared:
        if self._prepared is not None and self._prepared.sentences is sentences:
            return self._prepared
        cfg = self.config
        if not sentences:
            raise ValueError("no sentences to probe")
        split = split_sentences(sentences, cfg.split, cfg.seed)
        split_pos = split_positions(split)
        labels = {t.name: label_task(t, sentences) for t in self.tasks}
        splits = {name: TaskSplit.of(lab, split, split_pos, cfg.seed + MDL_ORDER_SEED_OFFSET)
                  for name, lab in labels.items()}
        n_words = sum(len(s.words) for s in sentences)
        boot = Bootstrap(max(int((split == 2).sum()), 1), cfg.n_bootstrap, seed=cfg.seed)
        self._prepared = _Prepared(sentences, n_words, split, split_pos, labels, splits, boot, cfg.n_bootstrap,
                                   cfg.seed)
        return self._prepared

    def data_summary(self, sentences: Sequence[Any]) -> dict[str, Any]:
        p = self.prepare(sentences)
        words_per_split = {sp: int(sum(len(s.words) for s, k in zip(sentences, p.split) if k == i))
                           for i, sp in enumerate(SPLITS)}
        return {"n_sentences": len(sentences), "n_words": p.n_words,
                "split_sentences": {sp: int((p.split == i).sum()) for i, sp in enumerate(SPLITS)},
                "split_words": words_per_split}

    # -- fitting -----------------------------------------------------------------------
    def fit(self, features: Any, sentences: Sequence[Any], *, log: Callable[[str], None] | None = None,
            source: str = "features", progress: bool = False) -> ModelFit:
        """Probe one model: its result per task and its hierarchy verdict. ``source`` names the
        model in errors (non-finite activations) and on the progress bar (``progress``: a tqdm
        bar on stderr through every task's fits)."""
        log = log or (lambda msg: None)
        prep = self.prepare(sentences)
        t0 = time.perf_counter()
        X = FeatureLayers(features, self.config.device)
        if X.n_words != prep.n_words:
            raise ValueError(f"features have {X.n_words} word rows but the sentences have {prep.n_words} words")
        X.check_finite(source)
        bases = _BasisCache(BASIS_CACHE_SIZE)
        tasks_out: dict[str, TaskResult] = {}
        # per definition (probes.depth.EXPECTED_KINDS), per task: the expected layer and its resamples
        boot_expected: dict[str, dict[str, np.ndarray]] = {k: {} for k in EXPECTED_KINDS}
        point_expected: dict[str, dict[str, float]] = {k: {} for k in EXPECTED_KINDS}
        kind = self.config.expected
        timing: dict[str, float] = {"load": time.perf_counter() - t0}
        bar = Progress(self._units(prep, X.n_layers), f"probing {source}", progress, unit="fit")
        for t in self.tasks:
            t1 = time.perf_counter()
            res, e_boot = self._fit_task(X, prep, prep.labels[t.name], bases, bar.tick)
            timing[t.name] = res.fit_s = time.perf_counter() - t1
            tasks_out[t.name] = res
            if res.skipped is not None:
                log(f"  {t.name}: skipped ({res.skipped})")
                continue
            for k, boot in e_boot.items():
                e_k = res.expected_layer.get(k) if res.expected_layer else None
                boot_expected[k][t.name] = boot
                point_expected[k][t.name] = np.nan if e_k is None else e_k
            e = res.expected_layer.get(kind) if res.expected_layer else None
            log(f"  {t.name:<20} peak layer {res.peak_layer} ({res.metric} {res.peak.score:.3f}), "
                f"expected layer {_fmt(e)}  [{timing[t.name]:.1f} s]")
        # the verdict under every definition this run has expected layers for (anchored and tenney
        # need the cumulative probes, mdl the MDL codes); the one config.expected names is THE verdict
        bar.close()
        verdicts = {k: self._verdict(k, point_expected[k], boot_expected[k], tasks_out)
                    for k in EXPECTED_KINDS if k == kind or point_expected[k]}
        return ModelFit(X.n_layers - 1, X.d, tasks_out, verdicts[kind], timing, verdicts)

    def _units(self, prep: _Prepared, n_problems: int) -> int:
        """Progress units of ``fit``: each task's fits (``TaskStrategy.units``) and its scoring."""
        total = 0
        for t in self.tasks:
            split = prep.splits[t.name]
            if split.too_small(self.config.min_train_words) is None:
                total += strategy_for(t, self.config).units(split, n_problems)
            total += 1
        return total

    def _verdict(self, kind: str, point_expected: dict[str, float], boot_expected: dict[str, np.ndarray],
                 tasks_out: dict[str, TaskResult]) -> Verdict:
        """The hierarchy verdict with the expected layers of ``kind``; fitted tasks without one
        (ordinal tasks for mdl) are left out, and the message says so."""
        levels = {t.name: t.level for t in self.tasks if t.name in point_expected}
        verdict = hierarchy_verdict(point_expected, boot_expected, levels, self.config.verdict_threshold)
        verdict["expected"] = kind
        if point_expected:  # fitted tasks that have no expected layer of this kind (ordinal ones for mdl)
            left_out = [name for name, r in tasks_out.items() if r.skipped is None and name not in point_expected]
            if left_out:
                verdict["left_out"] = left_out
                why = "ordinal: no MDL code" if kind == "mdl" else f"no {kind} expected layer"
                verdict["message"] += f"; left out: {', '.join(left_out)} ({why})"
        return Verdict.from_dict(verdict)

    def _fit_task(self, X_all: FeatureLayers, prep: _Prepared, lab: TaskLabels, bases: "_BasisCache",
                  tick: Tick) -> tuple[TaskResult, dict[str, np.ndarray]]:
        """One task on every layer; also the bootstrap samples of its expected layers by kind
        ("anchored" and "tenney" with cumulative probes, "mdl" with MDL codes)."""
        t = lab.task
        strategy = strategy_for(t, self.config)
        split = prep.splits[t.name]
        res = TaskResult(TaskInfo(**t.to_dict()), strategy.metric, split.counts, **strategy.describe(lab))
        res.skipped = split.too_small(self.config.min_train_words) or strategy.skip_reason(split)
        if res.skipped is not None:
            tick(1 + (0 if split.too_small(self.config.min_train_words) else strategy.units(split, X_all.n_layers)),
                 f"{t.name}: skipped")
            return res, {}
        t0 = time.perf_counter()
        X = split.features(X_all)
        basis = bases.get(split.train_key, partial(GramBasis.of, X.train))
        load_s = time.perf_counter() - t0
        fits = strategy.fit(X, split, lab, basis, tick)
        del X
        t1 = time.perf_counter()
        scorer = _Scorer(strategy, prep.bootstrap, split, self.config.ci_level)
        s_point, s_boot = scorer(fits.test)
        res.layers = _layer_scores(scorer, s_point, s_boot, fits)
        rho = strategy.spearman(split, fits)
        if rho is not None:
            for l, x in enumerate(res.layers):
                x.spearman = number(rho[l])
        res.baseline, base_point, base_boot = strategy.baseline(prep.bootstrap, split, lab)
        _add_mdl(res.layers, fits)
        if lab.groups is not None:
            _add_groups(res.layers, scorer, fits, [lab.groups[i] for i in split.test_words])
        res.peak_layer = peak_layer(s_point)
        res.peak_score, res.layer0_score = number(s_point[res.peak_layer]), number(s_point[0])
        gain = s_point[res.peak_layer] - base_point
        res.lexical = bool(gain > 0 and s_point[0] - base_point >= self.config.lexical_fraction * gain)
        expected = self._expected_layers(res, scorer, fits, split, prep, base_point, base_boot)
        tick(1, f"{t.name}: bootstrap")
        res.stages_s = {"features": load_s, **fits.stages_s, "score": time.perf_counter() - t1}
        return res, expected

    def _expected_layers(self, res: TaskResult, scorer: "_Scorer", fits: LayerFits, split: TaskSplit,
                         prep: _Prepared, base_point: float, base_boot: np.ndarray) -> dict[str, np.ndarray]:
        """Fill the cumulative scores and the expected layers of ``res`` (those its fits allow;
        none without cumulative probes or MDL codes); return their bootstrap samples by kind."""
        L = len(res.layers) - 1
        boots: dict[str, np.ndarray] = {}
        point: dict[str, float] = {}
        if fits.cumulative_test is not None:
            cu_point, cu_boot = scorer(fits.cumulative_test)
            cu_ci = interval(cu_boot, scorer.ci_level)
            res.cumulative = [CumulativeScore(l, number(cu_point[l]), Interval.of(cu_ci[l])) for l in range(L + 1)]
            res.cumulative_features = fits.cumulative_features
            point["anchored"], boots["anchored"] = (expected_layer_anchored(cu_point, base_point),
                                                    expected_layer_anchored(cu_boot, base_boot))
            point["tenney"], boots["tenney"] = expected_layer_tenney(cu_point), expected_layer_tenney(cu_boot)
        if fits.mdl is not None:
            uniform_per_word = fits.mdl["uniform_bits"] / split.n_train
            bits_boot, uniform_boot = resampled_codelengths(fits.mdl["word_bits"], uniform_per_word,
                                                            split.train_sentence, prep.train_bootstrap)
            point["mdl"] = expected_layer_mdl(fits.mdl["codelength_bits"], fits.mdl["uniform_bits"])
            boots["mdl"] = expected_layer_mdl(bits_boot, uniform_boot)
        if not boots:
            return boots

        def value(kind: str) -> tuple[float | None, Interval, float | None]:
            if kind not in boots:
                return None, Interval(None, None), None
            e = point[kind]
            return number(e), Interval.of(interval(boots[kind], scorer.ci_level)), number(e / L) if L > 0 else None

        (anchored, a_ci, a_rel), (tenney, t_ci, t_rel), (mdl, m_ci, m_rel) = map(value, ("anchored", "tenney", "mdl"))
        res.expected_layer = ExpectedLayer(anchored, a_ci, tenney, t_ci, a_rel, t_rel, mdl, m_ci, m_rel)
        return boots


class _BasisCache:
    """The last few ``GramBasis`` of one model's fit, by ``TaskSplit.train_key``."""

    def __init__(self, size: int):
        self.size = size
        self.items: dict[str, GramBasis] = {}

    def get(self, key: str, compute: Callable[[], GramBasis]) -> GramBasis:
        if key in self.items:
            self.items[key] = self.items.pop(key)  # most recently used last
        else:
            self.items[key] = compute()
            while len(self.items) > self.size:
                del self.items[next(iter(self.items))]
        return self.items[key]


@dataclass
class _Scorer:
    """Scores of test-word predictions with the suite's bootstrap: (point [P], resamples [B, P])."""

    strategy: TaskStrategy
    bootstrap: Bootstrap
    split: TaskSplit
    ci_level: float

    def __call__(self, values: np.ndarray, rows: Any = slice(None)) -> tuple[np.ndarray, np.ndarray]:
        return self.strategy.score(self.bootstrap, self.split, values, rows)


def _layer_scores(scorer: _Scorer, s_point: np.ndarray, s_boot: np.ndarray, fits: LayerFits) -> list[LayerScore]:
    """Score and λ per layer; the control score and selectivity where there is a control task."""
    s_ci = interval(s_boot, scorer.ci_level)
    layers = [LayerScore(l, number(s_point[l]), Interval.of(s_ci[l]), float(fits.lam[l])) for l in range(len(s_point))]
    if fits.control_test is not None:
        c_point, c_boot = scorer(fits.control_test)
        c_ci = interval(c_boot, scorer.ci_level)
        sel_ci = interval(s_boot - c_boot, scorer.ci_level)
        for l, x in enumerate(layers):
            x.control = ControlScore(number(c_point[l]), Interval.of(c_ci[l]), number(s_point[l] - c_point[l]),
                                     Interval.of(sel_ci[l]), float(fits.control_lam[l]))
    return layers


def _add_mdl(layers: list[LayerScore], fits: LayerFits) -> None:
    if fits.mdl is None:
        return
    for l, x in enumerate(layers):
        x.mdl = MDLScore(float(fits.mdl["codelength_bits"][l]), fits.mdl["uniform_bits"],
                         number(fits.mdl["compression"][l]))
        if fits.mdl_control is not None:
            x.mdl.control_codelength_bits = float(fits.mdl_control["codelength_bits"][l])
            x.mdl.control_compression = number(fits.mdl_control["compression"][l])


def _add_groups(layers: list[LayerScore], scorer: _Scorer, fits: LayerFits, test_groups: list[str | None]) -> None:
    """Scores per subset of the test words (e.g. attractor / no attractor)."""
    g_te = np.asarray(test_groups, dtype=object)
    for g in sorted({g for g in g_te if g is not None}):
        sel = g_te == g
        gp, gb = scorer(fits.test[sel], sel)
        gci = interval(gb, scorer.ci_level)
        for l, x in enumerate(layers):
            x.groups = x.groups or {}
            x.groups[g] = GroupScore(number(gp[l]), Interval.of(gci[l]), int(sel.sum()))


def _fmt(x: float | None) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.2f}"
