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
   theirs from a second bootstrap of the training sentences;
5. repeats 1–4 for every refit (``ProbeConfig.refits``): the test sentences are kept, train /
   validation and the MDL order re-drawn (``redraw_train_val``); points are the mean over the
   refits, resample b is read from refit b mod R (``combine_refits``), so intervals include the
   fits' variance;
6. chooses the peak layer and the lexical flag on validation scores, computes the lexical share,
   the four expected layers (depth, anchored, Tenney, MDL; ``probes.depth``) and the hierarchy
   verdict with the one ``ProbeConfig.expected`` names; the verdicts under the other definitions
   this run has, from the same resamples, go beside it (``ModelFit.verdicts``).

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
    bits_saved_after_embeddings,
    expected_layer_anchored,
    expected_layer_mdl,
    expected_layer_tenney,
    gain_is_defined,
    hierarchy_verdict,
    lexical_share,
    peak_layer,
    score_gained_after_embeddings,
)
from probes.features import FeatureLayers, as_layers, to_tensor
from probes.fit import GramBasis
from probes.mdl import resampled_codelengths
from probes.metrics import Bootstrap, interval
from probes.progress import Progress, Tick
from probes.results import (
    Baseline,
    ControlScore,
    FixedLambdaScore,
    LambdaCurves,
    Measurement,
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
from probes.strategy import LayerFits, TaskSplit, TaskStrategy, WarmStart, split_positions, strategy_for
from probes.tasks import Task, TaskLabels, label_task, resolve_tasks

__all__ = ["ProbeConfig", "ProbeSuite", "split_sentences", "as_layers", "to_tensor", "SPLITS"]

SPLITS = ("train", "val", "test")
# The MDL bootstrap resamples the training sentences with its own stream of the run's seed.
MDL_BOOTSTRAP_SEED_OFFSET = 104_729
# The training words of every task are kept in a seeded random order: the order the MDL online
# code transmits them in.
MDL_ORDER_SEED_OFFSET = 7919
# Refit r > 0 draws its train / validation split and MDL order from the run's seed + r · this.
REFIT_SEED_OFFSET = 15_485_863
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



# ----------------------------------------------------------------------------- refits
def redraw_train_val(sentences: Sequence[Any], split: np.ndarray, fractions: Sequence[float],
                     seed: int) -> np.ndarray:
    """A new split id per sentence with the test sentences (id 2) kept and the others re-drawn
    into train / validation at the ratio fractions[0] : fractions[1], by distinct text (seeded;
    every copy of a text to the same split; with two or more distinct texts each split gets one)."""
    texts = [_text(s) for s in sentences]
    distinct = list(dict.fromkeys(t for t, k in zip(texts, split) if k != 2))
    n = len(distinct)
    order = np.random.default_rng(seed).permutation(n)
    n_train = int(round(fractions[0] / (fractions[0] + fractions[1]) * n))
    if n >= 2:
        n_train = min(max(n_train, 1), n - 1)
    which = np.empty(n, dtype=np.int64)
    which[order[:n_train]] = 0
    which[order[n_train:]] = 1
    index = {t: which[k] for k, t in enumerate(distinct)}
    return np.asarray([2 if k == 2 else index[t] for t, k in zip(texts, split)], dtype=np.int64)


@dataclass
class _Refit:
    """One fit's split: refit 0 is the run's split; each further one re-draws train / validation
    (test kept) and the order the MDL code transmits the training words in."""

    index: int
    seed: int
    split: np.ndarray  # per sentence: 0 train, 1 validation, 2 test
    splits: dict[str, TaskSplit]
    n_resamples: int
    _train_bootstrap: Bootstrap | None = None

    @property
    def train_bootstrap(self) -> Bootstrap:
        """The resamples of the training sentences (for the MDL codes), drawn when first needed."""
        if self._train_bootstrap is None:
            n_train = int((self.split == 0).sum())
            self._train_bootstrap = Bootstrap(max(n_train, 1), self.n_resamples,
                                              seed=self.seed + MDL_BOOTSTRAP_SEED_OFFSET)
        return self._train_bootstrap


# ----------------------------------------------------------------------------- the suite
@dataclass
class _Prepared:
    sentences: Sequence[Any]
    n_words: int
    labels: dict[str, TaskLabels]
    refits: list[_Refit]
    bootstrap: Bootstrap  # of the test sentences (the same in every refit)
    n_resamples: int
    seed: int

    @property
    def split(self) -> np.ndarray:
        """The run's split (refit 0's), per sentence."""
        return self.refits[0].split

    @property
    def splits(self) -> dict[str, TaskSplit]:
        """Every task's words in the run's split (refit 0's)."""
        return self.refits[0].splits


@dataclass
class _Once:
    """One task measured on one refit: (point, resamples [B, ...]) per quantity, values that have
    no resamples, and refit 0's fits (λ, curves)."""

    pairs: dict[str, tuple[np.ndarray, np.ndarray]]
    plain: dict[str, np.ndarray]
    fits: LayerFits
    split: TaskSplit
    group_sizes: dict[str, int]
    baseline: Baseline  # as reported (its name and majority class are refit 0's)


def combine_refits(points: np.ndarray, resamples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """R refits' point values [R, ...] and resamples [R, B, ...] → (the mean of the points,
    resamples [B, ...] where resample b is refit b mod R's resample b). Every refit of a run
    uses the same sentence resample b, so a derived quantity (selectivity, expected layer,
    verdict) computed from resample b reads one refit throughout; the mixture's spread is the
    sentences' spread within a fit plus the spread between refits."""
    points, resamples = np.asarray(points, dtype=np.float64), np.asarray(resamples, dtype=np.float64)
    R, B = resamples.shape[:2]
    b = np.arange(B)
    return points.mean(axis=0), resamples[b % R, b]


class ProbeSuite:
    """Tasks + configuration; ``fit(features, sentences)`` probes one model (see module doc).

    Label extraction, the splits (every refit's) and the bootstrap depend only on the sentences
    and the seed, so fitting several models (a model, its random-init twin, GPT-2) on the same
    sentences uses the same words, splits and resamples for all of them.
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
        labels = {t.name: label_task(t, sentences) for t in self.tasks}
        first = split_sentences(sentences, cfg.split, cfg.seed)
        refits = []
        for r in range(cfg.refits):
            seed = cfg.seed + r * REFIT_SEED_OFFSET
            split = first if r == 0 else redraw_train_val(sentences, first, cfg.split, seed)
            pos = split_positions(split)
            splits = {name: TaskSplit.of(lab, split, pos, seed + MDL_ORDER_SEED_OFFSET) for name, lab in labels.items()}
            refits.append(_Refit(r, seed, split, splits, cfg.n_bootstrap))
        n_words = sum(len(s.words) for s in sentences)
        boot = Bootstrap(max(int((first == 2).sum()), 1), cfg.n_bootstrap, seed=cfg.seed)
        self._prepared = _Prepared(sentences, n_words, labels, refits, boot, cfg.n_bootstrap, cfg.seed)
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
            res, points, boots = self._fit_task(X, prep, prep.labels[t.name], bases, bar.tick)
            timing[t.name] = res.fit_s = time.perf_counter() - t1
            tasks_out[t.name] = res
            if res.skipped is not None:
                log(f"  {t.name}: skipped ({res.skipped})")
                continue
            for k, boot in boots.items():
                boot_expected[k][t.name] = boot
                point_expected[k][t.name] = points[k]
            e = res.expected_layer.get(kind) if res.expected_layer else None
            log(f"  {t.name:<20} peak layer {res.peak_layer} ({res.metric} {res.peak.score:.3f}), "
                f"expected layer ({kind}) {_fmt(e)}  [{timing[t.name]:.1f} s]")
        # the verdict under every definition this run has expected layers for (anchored and tenney
        # need the cumulative probes, mdl the MDL codes, depth either); config.expected names THE verdict
        bar.close()
        verdicts = {k: self._verdict(k, point_expected[k], boot_expected[k], tasks_out)
                    for k in EXPECTED_KINDS if k == kind or point_expected[k]}
        samples = {k: (point_expected[k], boot_expected[k]) for k in verdicts}
        return ModelFit(X.n_layers - 1, X.d, tasks_out, verdicts[kind], timing, verdicts, samples)

    def _units(self, prep: _Prepared, n_problems: int) -> int:
        """Progress units of ``fit``: each task's fits (``TaskStrategy.units``) and its scoring, per refit."""
        total = 0
        for t in self.tasks:
            total += 1 + self._fit_units(t, prep, n_problems)
        return total

    def _fit_units(self, task: Task, prep: _Prepared, n_problems: int) -> int:
        """A task's progress units of fitting, over every refit whose split is large enough."""
        return sum(strategy_for(task, self.config, r.index == 0).units(r.splits[task.name], n_problems)
                   for r in prep.refits if r.splits[task.name].too_small(self.config.min_train_words) is None)

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

    def _skip_reason(self, strategy: TaskStrategy, prep: _Prepared, name: str) -> str | None:
        for refit in prep.refits:
            split = refit.splits[name]
            why = split.too_small(self.config.min_train_words) or strategy.skip_reason(split)
            if why is not None:
                return why if refit.index == 0 else f"refit {refit.index}: {why}"
        return None

    def _fit_task(self, X_all: FeatureLayers, prep: _Prepared, lab: TaskLabels, bases: "_BasisCache",
                  tick: Tick) -> tuple[TaskResult, dict[str, float], dict[str, np.ndarray]]:
        """One task on every layer, in every refit; also its expected layers by kind (point values
        and resamples)."""
        t = lab.task
        cfg = self.config
        strategy = strategy_for(t, cfg)
        split0 = prep.splits[t.name]
        res = TaskResult(TaskInfo(**t.to_dict()), strategy.metric, split0.counts, **strategy.describe(lab))
        res.skipped = self._skip_reason(strategy, prep, t.name)
        if res.skipped is not None:
            tick(1 + self._fit_units(t, prep, X_all.n_layers), f"{t.name}: skipped")
            return res, {}, {}
        stages: dict[str, float] = {}
        onces = []
        warm: WarmStart | None = None  # refit 0's probes: later refits start their solvers there
        for refit in prep.refits:
            once = self._fit_once(X_all, prep, refit, lab, strategy_for(t, cfg, refit.index == 0), bases, tick,
                                  warm)
            if refit.index == 0:
                warm = once.fits.warm
            once.fits.warm = None
            for k, v in once.fits.stages_s.items():
                stages[k] = stages.get(k, 0.0) + v
            onces.append(once)
        t1 = time.perf_counter()
        first = onces[0].fits
        pairs = {key: combine_refits(np.stack([o.pairs[key][0] for o in onces]),
                                     np.stack([o.pairs[key][1] for o in onces])) for key in onces[0].pairs}
        # values without resamples: the mean over the fits that have them (the control's MDL code: the first)
        plain = {key: np.mean(np.stack([np.asarray(o.plain[key], dtype=np.float64) for o in onces if key in o.plain]),
                              axis=0) for key in onces[0].plain}
        res.refits = len(onces)
        mean_of = _RefitMean({key: [o.pairs[key][0] for o in onces] for key in onces[0].pairs})
        s_point, s_boot = pairs["score"]
        res.layers = self._layer_scores(s_point, s_boot, pairs, plain, first)
        reported = onces[0].baseline
        rb_point, rb_boot = pairs["reported_baseline"]
        res.baseline = Baseline(reported.name, number(rb_point), Interval.of(interval(rb_boot, cfg.ci_level)),
                                reported.label)
        base_boot = pairs["baseline"][1]
        if lab.groups is not None:
            for g, n in onces[0].group_sizes.items():
                gp, gb = pairs[f"group:{g}"]
                gci = interval(gb, cfg.ci_level)
                for l, x in enumerate(res.layers):
                    x.groups = x.groups or {}
                    x.groups[g] = GroupScore(number(gp[l]), Interval.of(gci[l]), n)
        # chosen on validation, reported on test
        val, val_base = plain["val_score"], plain["val_baseline"]
        res.peak_layer = peak_layer(val)
        res.peak_score, res.layer0_score = number(s_point[res.peak_layer]), number(s_point[0])
        v_gain = val[res.peak_layer] - val_base
        res.lexical = bool(v_gain > 0 and val[0] - val_base >= cfg.lexical_fraction * v_gain)
        share_ci = interval(lexical_share(s_boot[:, 0], s_boot[:, res.peak_layer], base_boot), cfg.ci_level)
        peak = res.peak_layer
        res.lexical_share = Measurement(number(mean_of(lambda s, b: lexical_share(s[0], s[peak], b), "score",
                                                       "baseline")), Interval.of(share_ci))
        res.curves = _curves(first)
        res.cumulative_features = first.cumulative_features
        points, boots = self._expected_layers(res, pairs, mean_of, base_boot)
        tick(1, f"{t.name}: bootstrap")
        stages["score"] = stages.get("score", 0.0) + time.perf_counter() - t1
        res.stages_s = stages
        return res, points, boots

    def _fit_once(self, X_all: FeatureLayers, prep: _Prepared, refit: _Refit, lab: TaskLabels,
                  strategy: TaskStrategy, bases: "_BasisCache", tick: Tick, warm: WarmStart | None = None) -> _Once:
        """Fit and score one task on one refit's split (``warm``: an earlier refit's probes to start from)."""
        t = lab.task
        split = refit.splits[t.name]
        t0 = time.perf_counter()
        X = split.features(X_all)
        basis = bases.get(split.train_key, partial(GramBasis.of, X.train))
        load_s = time.perf_counter() - t0
        fits = strategy.fit(X, split, lab, basis, tick, warm)
        del X
        fits.stages_s = {"features": load_s, **fits.stages_s}
        boot = prep.bootstrap
        scorer = _Scorer(strategy, boot, split, self.config.ci_level)
        pairs: dict[str, tuple[np.ndarray, np.ndarray]] = {"score": scorer(fits.test)}
        plain: dict[str, np.ndarray] = {}
        if fits.control_test is not None:
            pairs["control"] = scorer(fits.control_test)
        if fits.fixed_test is not None and fits.fixed_control_test is not None:
            pairs["fixed"], pairs["fixed_control"] = scorer(fits.fixed_test), scorer(fits.fixed_control_test)
        if fits.cumulative_test is not None:
            pairs["cumulative"] = scorer(fits.cumulative_test)
        base = strategy.baseline(boot, split, lab)
        pairs["baseline"] = (np.float64(base.point), base.boot)
        pairs["reported_baseline"] = (np.float64(base.reported_point), base.reported_boot)
        rho = strategy.spearman(split, fits)
        if rho is not None:
            plain["spearman"] = rho
        plain["val_score"] = np.asarray(fits.val_score, dtype=np.float64)
        plain["val_baseline"] = np.float64(base.val)
        if fits.mdl is not None:
            uniform_per_word = fits.mdl["uniform_bits"] / split.n_train
            bits_boot, uniform_boot = resampled_codelengths(fits.mdl["word_bits"], uniform_per_word,
                                                            split.train_sentence, refit.train_bootstrap)
            pairs["mdl_bits"] = (np.asarray(fits.mdl["codelength_bits"], dtype=np.float64), bits_boot)
            pairs["mdl_uniform"] = (np.float64(fits.mdl["uniform_bits"]), uniform_boot)
            if fits.mdl_control is not None:
                plain["mdl_control_bits"] = np.asarray(fits.mdl_control["codelength_bits"], dtype=np.float64)
            fits.mdl["word_bits"] = None  # [P, n_train]: not needed again
        sizes: dict[str, int] = {}
        if lab.groups is not None:
            g_te = np.asarray([lab.groups[i] for i in split.test_words], dtype=object)
            for g in sorted({g for g in g_te if g is not None}):
                sel = g_te == g
                pairs[f"group:{g}"] = scorer(fits.test[sel], sel)
                sizes[g] = int(sel.sum())
        return _Once(pairs, plain, fits, split, sizes, base.reported)

    def _layer_scores(self, s_point: np.ndarray, s_boot: np.ndarray, pairs: dict[str, tuple[np.ndarray, np.ndarray]],
                      plain: dict[str, np.ndarray], first: LayerFits) -> list[LayerScore]:
        """Score (with validation score and λ) per layer; control, selectivity at the task's λ and
        at one fixed λ, and the MDL codes where the task has them."""
        ci_level = self.config.ci_level
        s_ci = interval(s_boot, ci_level)
        val = plain["val_score"]
        rho = plain.get("spearman")
        layers = [LayerScore(l, number(s_point[l]), Interval.of(s_ci[l]), float(first.lam[l]),
                             spearman=None if rho is None else number(rho[l]), val_score=number(val[l]))
                  for l in range(len(s_point))]
        if "control" in pairs:
            c_point, c_boot = pairs["control"]
            c_ci, sel_ci = interval(c_boot, ci_level), interval(s_boot - c_boot, ci_level)
            for l, x in enumerate(layers):
                x.control = ControlScore(number(c_point[l]), Interval.of(c_ci[l]), number(s_point[l] - c_point[l]),
                                         Interval.of(sel_ci[l]), float(first.control_lam[l]))
        if "fixed" in pairs:
            f_point, f_boot = pairs["fixed"]
            fc_point, fc_boot = pairs["fixed_control"]
            f_ci = interval(f_boot - fc_boot, ci_level)
            for l, x in enumerate(layers):
                x.fixed = FixedLambdaScore(float(first.fixed_lam), number(f_point[l]), number(fc_point[l]),
                                           number(f_point[l] - fc_point[l]), Interval.of(f_ci[l]))
        if "mdl_bits" in pairs:
            bits = pairs["mdl_bits"][0]
            uniform = float(pairs["mdl_uniform"][0])
            control = plain.get("mdl_control_bits")
            for l, x in enumerate(layers):
                x.mdl = MDLScore(float(bits[l]), uniform, number(uniform / bits[l]) if bits[l] > 0 else None)
                if control is not None:
                    x.mdl.control_codelength_bits = float(control[l])
                    x.mdl.control_compression = number(uniform / control[l]) if control[l] > 0 else None
        return layers

    def _expected_layers(self, res: TaskResult, pairs: dict[str, tuple[np.ndarray, np.ndarray]],
                         mean_of: "_RefitMean", base_boot: np.ndarray) -> tuple[dict[str, float], dict[str, np.ndarray]]:
        """Fill the cumulative scores and the expected layers of ``res`` (those its fits allow;
        none without cumulative probes or MDL codes); return them by kind: (point, resamples).
        The depth axis (kind "depth"): MDL's centre of the bits saved after layer 0 for
        categorical tasks, Tenney's (clipped to [0, L]) for ordinal ones; undefined (NaN) unless
        the post-embedding gain's interval excludes 0."""
        L = len(res.layers) - 1
        ci_level = self.config.ci_level
        boots: dict[str, np.ndarray] = {}
        point: dict[str, float] = {}
        gains: dict[str, tuple[float, np.ndarray]] = {}
        source = None
        if "cumulative" in pairs:
            cu_point, cu_boot = pairs["cumulative"]
            cu_ci = interval(cu_boot, ci_level)
            res.cumulative = [CumulativeScore(l, number(cu_point[l]), Interval.of(cu_ci[l])) for l in range(L + 1)]
            point["anchored"], boots["anchored"] = (mean_of(expected_layer_anchored, "cumulative", "baseline"),
                                                    expected_layer_anchored(cu_boot, base_boot))
            gains["tenney"] = (mean_of(score_gained_after_embeddings, "cumulative"),
                               score_gained_after_embeddings(cu_boot))
            defined = gain_is_defined(gains["tenney"][1], ci_level)
            point["tenney"] = mean_of(expected_layer_tenney, "cumulative") if defined else np.nan
            boots["tenney"] = expected_layer_tenney(cu_boot)
        if "mdl_bits" in pairs:
            bits_boot, u_boot = pairs["mdl_bits"][1], pairs["mdl_uniform"][1]
            point["mdl"] = mean_of(expected_layer_mdl, "mdl_bits", "mdl_uniform")
            boots["mdl"] = expected_layer_mdl(bits_boot, u_boot)
            gains["mdl"] = (mean_of(bits_saved_after_embeddings, "mdl_bits", "mdl_uniform"),
                            bits_saved_after_embeddings(bits_boot, u_boot))
            defined = gain_is_defined(gains["mdl"][1], ci_level)
            lexical_nan = partial(expected_layer_mdl, lexical=np.nan)
            point["depth"] = mean_of(lexical_nan, "mdl_bits", "mdl_uniform") if defined else np.nan
            boots["depth"] = expected_layer_mdl(bits_boot, u_boot, lexical=np.nan)
            source = "mdl"
        elif "cumulative" in pairs:
            point["depth"] = float(np.clip(point["tenney"], 0, L)) if np.isfinite(point["tenney"]) else np.nan
            boots["depth"] = np.clip(boots["tenney"], 0, L)
            source = "tenney"
        if source is None:
            return point, boots

        def value(kind: str) -> tuple[float | None, Interval, float | None]:
            if kind not in boots:
                return None, Interval(None, None), None
            e = point[kind]
            return number(e), Interval.of(interval(boots[kind], ci_level)), number(e / L) if L > 0 else None

        (anchored, a_ci, a_rel), (tenney, t_ci, t_rel), (mdl, m_ci, m_rel), (depth, d_ci, d_rel) = map(
            value, ("anchored", "tenney", "mdl", "depth"))
        g_point, g_boot = gains[source]
        gain = Measurement(number(g_point), Interval.of(interval(g_boot, ci_level)))
        unit = "bits" if source == "mdl" else res.metric
        res.expected_layer = ExpectedLayer(anchored, a_ci, tenney, t_ci, a_rel, t_rel, mdl, m_ci, m_rel, depth, d_ci,
                                           d_rel, source, gain, unit)
        return point, boots


class _RefitMean:
    """The point value of a quantity derived from per-refit points: the mean over the refits of
    its value in each (those where it is defined), so that it lies among the values whose
    resamples make its interval (a quantity of the mean points, e.g. the expected layer of the
    mean codelengths, can fall outside it)."""

    def __init__(self, points: dict[str, list[np.ndarray]]):
        self.points = points

    def __call__(self, fn: Callable[..., Any], *keys: str) -> float:
        n = len(self.points[keys[0]])
        values = np.array([float(fn(*(self.points[k][r] for k in keys))) for r in range(n)])
        values = values[np.isfinite(values)]
        return float(values.mean()) if values.size else float("nan")


def _curves(fits: LayerFits) -> LambdaCurves | None:
    """Refit 0's test score against λ (``LayerFits.curve_*``), where the strategy recorded them."""
    if fits.curve_lambdas is None or fits.curve_test is None:
        return None
    control = fits.control_curve_test
    return LambdaCurves([float(x) for x in fits.curve_lambdas], [[number(x) for x in row] for row in fits.curve_test],
                        fits.curve_layer,
                        None if control is None else [number(x) for x in np.asarray(control)])


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


def _fmt(x: float | None) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.2f}"
