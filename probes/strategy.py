"""How one task is probed: its words split into train | val | test (``TaskSplit``), and the two
kinds of probe (``CategoricalStrategy``: logistic, accuracy, control task, MDL;
``OrdinalStrategy``: ridge, R², Spearman's ρ).

A strategy fits a probe per layer (λ chosen on validation), the control task's probes (at the λ
its task chose per layer, or on their own λ path), the task and its control at one fixed λ, the
MDL codes and the cumulative probes on layers 0..ℓ, and records test scores at every λ of the
grid (``LayerFits``); it scores predictions on the test words with the suite's sentence
bootstrap; ``probes.suite`` turns that into a ``TaskResult``.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from probes.config import ProbeConfig
from probes.features import FeatureLayers
from probes.fit import (
    GramBasis,
    LogisticProbe,
    RidgePath,
    Standardizer,
    auto_threads,
    fit_logistic,
    num_threads,
    select_logistic,
    select_ridge,
    selected_scores,
)
from probes.mdl import block_ends, online_codelength
from probes.metrics import Bootstrap, interval
from probes.metrics import spearman as spearman_rho
from probes.progress import Tick, no_tick
from probes.results import Baseline, CumulativeFeatures, Interval, number
from probes.tasks import Task, TaskLabels


# ----------------------------------------------------------------------------- the split
def split_positions(sentence_split: np.ndarray) -> np.ndarray:
    """Each sentence's position among the sentences of its split (``TaskSplit.of``'s
    ``split_pos``), from the split id per sentence (0 train, 1 validation, 2 test)."""
    pos = np.zeros(len(sentence_split), dtype=np.int64)
    for k in np.unique(sentence_split):
        ids = np.nonzero(sentence_split == k)[0]
        pos[ids] = np.arange(len(ids))
    return pos


class SplitFeatures(NamedTuple):
    """A task's features [P, n, d] on its train / validation / test words, standardised."""

    train: Tensor
    val: Tensor
    test: Tensor


@dataclass
class TaskSplit:
    """One task's labelled words, ordered train | val | test by the split of their sentences.

    ``order`` indexes the task's labelled words (``TaskLabels`` rows) in that order; ``y`` holds
    their labels in that order; ``test_words`` indexes the test words among the labelled words
    and ``test_sentence`` gives each one's position among the test sentences (the bootstrap's
    unit); ``train_sentence`` gives each training word's position among the training sentences
    (the unit of the MDL codes' bootstrap)."""

    n_train: int
    n_val: int
    n_test: int
    order: np.ndarray
    y: np.ndarray
    test_words: np.ndarray
    test_sentence: np.ndarray
    train_sentence: np.ndarray
    rows: np.ndarray  # each word's feature row, in this order

    @classmethod
    def of(cls, lab: TaskLabels, sentence_split: np.ndarray, split_pos: np.ndarray,
           train_order_seed: int | None = None) -> TaskSplit:
        """``split_pos``: each sentence's position among the sentences of its split
        (``split_positions``). ``train_order_seed``: put the training words in a seeded random
        order (the order the MDL online code transmits them in, so the code reads the training
        features without a permuted copy); None: corpus order."""
        where = sentence_split[lab.sentence] if lab.n else np.zeros(0, dtype=np.int64)
        idx = [np.nonzero(where == k)[0] for k in range(3)]
        if train_order_seed is not None:
            perm = torch.randperm(len(idx[0]), generator=torch.Generator().manual_seed(train_order_seed)).numpy()
            idx[0] = idx[0][perm]
        order = np.concatenate(idx)
        return cls(len(idx[0]), len(idx[1]), len(idx[2]), order, lab.y[order], idx[2],
                   split_pos[lab.sentence[idx[2]]], split_pos[lab.sentence[idx[0]]], lab.rows[order])

    @property
    def counts(self) -> dict[str, int]:
        return {"train": self.n_train, "val": self.n_val, "test": self.n_test}

    @property
    def y_train(self) -> np.ndarray:
        return self.y[:self.n_train]

    @property
    def y_test(self) -> np.ndarray:
        return self.y[self.n_train + self.n_val:]

    def too_small(self, min_train_words: int) -> str | None:
        """Why no probe can be fitted on so few words, or None."""
        if self.n_train < min_train_words or self.n_test == 0 or self.n_val == 0:
            return f"too few labelled words (train {self.n_train}, val {self.n_val}, test {self.n_test})"
        return None

    @property
    def train_key(self) -> str:
        """Identifies the training rows (in order): tasks with the same key have the same
        standardised training features, hence the same ``GramBasis``."""
        return hashlib.sha1(np.ascontiguousarray(self.rows[:self.n_train]).tobytes()).hexdigest()

    def features(self, layers: FeatureLayers | Tensor) -> SplitFeatures:
        """The task's rows of the features (``FeatureLayers``, or a tensor [P, n_words, d]) in
        split order, standardised per layer on the training words."""
        if isinstance(layers, Tensor):
            X = layers[:, torch.as_tensor(self.rows, device=layers.device)]  # a copy
        else:
            X = layers.rows(self.rows)
        X = Standardizer.fit(X[:, :self.n_train]).apply_(X)  # in place
        a, b = self.n_train, self.n_train + self.n_val
        return SplitFeatures(X[:, :a], X[:, a:b], X[:, b:])


# ----------------------------------------------------------------------------- baselines
class BaselineScores(NamedTuple):
    """What a probe that sees nothing scores: as results.json reports it (``reported``, and its
    test score with resamples), as the expected layer's baseline (point, resamples [B]), and on
    the validation words (for the peak layer and the lexical flag)."""

    reported: Baseline
    reported_point: float
    reported_boot: np.ndarray
    point: float
    boot: np.ndarray
    val: float


# ----------------------------------------------------------------------------- fitted probes
@dataclass
class LayerFits:
    """What the probes of one task predict on its test words.

    The control task's probes (categorical, with ``config.control``) are fitted per layer at the
    λ the task chose there (``config.control_lambda`` "task": ``control_lam`` equals ``lam``) or
    on their own λ path ("own"). The fixed-λ fields hold the task and its control at one λ for
    every layer (``fixed_lam``: the λ the task's per-layer probes chose most often, the largest
    among ties; ``most_chosen_lambda``). The curves are test scores at every λ of the grid
    (Pimentel et al. 2020): NaN where the task's λ path stopped early (``select_logistic``'s
    early stop; ridge fits every λ)."""

    test: np.ndarray  # [n_test, P]: correct or not (categorical), the prediction (ordinal)
    lam: np.ndarray  # [P] λ chosen per layer
    val_score: np.ndarray  # [P] validation score (accuracy | R²) of the selected probe per layer
    control_test: np.ndarray | None = None  # [n_test, P] the control task's probe: correct or not
    control_lam: np.ndarray | None = None  # [P] its λ per layer
    fixed_lam: float | None = None  # the one λ of the fixed-λ probes (with the control task only)
    fixed_test: np.ndarray | None = None  # [n_test, P] the task's probe at fixed_lam: correct or not
    fixed_control_test: np.ndarray | None = None  # [n_test, P] the control task's probe at fixed_lam
    curve_lambdas: tuple[float, ...] | None = None  # [G] the λ grid, strong → weak
    curve_test: np.ndarray | None = None  # [P, G] the task's test accuracy (R² for ordinal) per layer and λ
    curve_layer: int | None = None  # the layer of control_curve_test: the best validation score's
    control_curve_test: np.ndarray | None = None  # [G] the control's test accuracy per λ at curve_layer
    mdl: dict[str, Any] | None = None  # probes.mdl.online_codelength of the task (word_bits in split order) …
    mdl_control: dict[str, Any] | None = None  # … and of its control
    cumulative_test: np.ndarray | None = None  # [n_test, P]: the probe on layers 0..ℓ
    cumulative_features: CumulativeFeatures | None = None
    stages_s: dict[str, float] = field(default_factory=dict)  # seconds per stage of the fit
    warm: WarmStart | None = None  # the probes a later refit starts from (categorical; not reported)


@dataclass
class WarmStart:
    """The probes of one fit that a refit of the same task starts its solver from (``probes.suite``):
    its λ path (strong → weak) and its control probes (the control's own λ path, or the one fit at
    the task's λ). A refit re-draws the train / validation split of the same sentences, so these
    sit near its optima and its fits need fewer iterations; each is still solved to ``tol``, so
    only where within that tolerance the solver stops depends on the start."""

    path: list[LogisticProbe]
    control_path: list[LogisticProbe] | None = None
    control: LogisticProbe | None = None


class _Clock:
    """Seconds since the last lap."""

    def __init__(self) -> None:
        self.t = time.perf_counter()

    def lap(self, into: dict[str, float], name: str) -> None:
        now = time.perf_counter()
        into[name] = into.get(name, 0.0) + now - self.t
        self.t = now


def most_chosen_lambda(lam: np.ndarray) -> float:
    """The λ the per-layer probes chose most often (``lam`` [P]), the largest among ties: the
    one λ of the cumulative probes and of the fixed-λ probes."""
    lams, counts = np.unique(np.round(lam, 12), return_counts=True)
    return float(lams[counts == counts.max()].max())


# ----------------------------------------------------------------------------- cumulative helpers
def layers_side_by_side(X: SplitFeatures, cap: int, basis: GramBasis | None = None) -> tuple[SplitFeatures, int, bool]:
    """Every layer's features side by side, [1, n, P·k] per split (layer l in columns l·k to
    (l + 1)·k, so layers 0..l are the first (l + 1)·k columns): k = d, or, when the P·d columns
    would exceed ``cap``, each layer's k = cap // P leading principal components (fitted on the
    training words; ``basis``: the ``GramBasis`` of ``X.train``, when known), re-standardised to
    unit variance on train. Returns (features, k, reduced). Each layer is written straight into
    its columns (no [P, n, k] projection beside the result)."""
    P, _, d = X.train.shape
    reduced = P * d > cap
    k = max(1, cap // P) if reduced else d
    V = (basis if basis is not None else GramBasis.of(X.train)).evecs[:, :, -k:].to(X.train.dtype) if reduced else None
    parts = []
    for part in X:
        Z = part.new_empty(part.shape[1], P, k)  # [n, P, k]
        for l in range(P):
            Z[:, l] = part[l] @ V[l] if V is not None else part[l]
        parts.append(Z.reshape(1, part.shape[1], P * k))
    Z = SplitFeatures(*parts)
    if reduced:
        std = Standardizer.fit(Z.train)
        for z in Z:
            std.apply_(z)
    return Z, k, reduced


def _gram(Z: Tensor, mean: Tensor | None = None) -> Tensor:
    """ZᵀZ/n in float64 for Z [n, m] (of Z − mean, with ``mean`` [1, m] float64), a block of rows
    at a time (no float64 copy of Z)."""
    n, m = Z.shape
    gram = torch.zeros((m, m), dtype=torch.float64, device=Z.device)
    for i in range(0, n, 4096):
        block = Z[i:i + 4096].double()
        if mean is not None:
            block -= mean
        gram.addmm_(block.T, block)
    return gram / max(n, 1)


def _centred_moments(Z: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Z [n, m], y [n]: the column means [1, m], XcᵀXc/n [m, m] and Xcᵀ(y − ȳ)/n [m] of the
    centred Z, in float64, a block of rows at a time (a float64 copy of Z and its centred copy
    were 0.6 GB at 17k words × 2,041 features)."""
    n, m = Z.shape
    mean = torch.zeros((1, m), dtype=torch.float64, device=Z.device)
    for i in range(0, n, 4096):
        mean += Z[i:i + 4096].double().sum(dim=0, keepdim=True)
    mean /= max(n, 1)
    yc = y.double() - y.double().mean()
    xty = torch.zeros(m, dtype=torch.float64, device=Z.device)
    for i in range(0, n, 4096):
        xty.addmv_((Z[i:i + 4096].double() - mean).T, yc[i:i + 4096])
    return mean, _gram(Z, mean), xty / max(n, 1)


# ----------------------------------------------------------------------------- categorical
class CategoricalStrategy:
    """Multinomial logistic probes scored by accuracy, with the control task and MDL."""

    metric = "accuracy"

    def __init__(self, config: ProbeConfig, curves: bool = True):
        self.config = config
        self.curves = curves  # fit the control's λ curve (the first fit only)

    def describe(self, lab: TaskLabels) -> dict[str, Any]:
        return {"n_classes": lab.n_classes, "classes": [str(c) for c in lab.classes[:100]]}

    def skip_reason(self, split: TaskSplit) -> str | None:
        if len(np.unique(split.y_train)) < 2:
            return "fewer than 2 classes among the training words"
        return None

    def score(self, boot: Bootstrap, split: TaskSplit, values: np.ndarray, rows: Any = slice(None)
              ) -> tuple[np.ndarray, np.ndarray]:
        """Accuracy from ``values`` [n_test, P] (correct or not), over the test words ``rows``."""
        return boot.accuracy(split.test_sentence[rows], values)

    def spearman(self, split: TaskSplit, fits: LayerFits) -> np.ndarray | None:
        return None

    def baseline(self, boot: Bootstrap, split: TaskSplit, lab: TaskLabels) -> BaselineScores:
        """The majority class's accuracy: as reported, for the expected layer (the same), and on
        the validation words."""
        majority = int(np.bincount(split.y_train, minlength=lab.n_classes).argmax())
        point, b = boot.accuracy(split.test_sentence, (split.y_test == majority)[:, None])
        reported = Baseline("majority", number(point[0]), Interval.of(interval(b, self.config.ci_level)[0]),
                            str(lab.classes[majority]))
        y_val = split.y[split.n_train:split.n_train + split.n_val]
        val = float(np.mean(y_val == majority)) if len(y_val) else float("nan")
        return BaselineScores(reported, float(point[0]), b[:, 0], float(point[0]), b[:, 0], val)

    def units(self, split: TaskSplit, n_problems: int) -> int:
        """Progress units of ``fit``: one per λ of each path, MDL block and cumulative probe, and
        one per batched fit (the control at the task's λ, the task and its control at the fixed λ)."""
        cfg = self.config
        G = len(cfg.lambdas)
        B = len(block_ends(split.n_train)) - 1 if cfg.mdl else 0
        control = 0
        if cfg.control:
            # its probes (path or one fit), its MDL code, the two fixed-λ fits, its curve's path
            control = (G if cfg.control_lambda == "own" else 1) + (B if cfg.mdl_control else 0) + 2
            control += G if self.curves else 0
        return G + B + control + (n_problems if cfg.cumulative else 0)

    def fit(self, X: SplitFeatures, split: TaskSplit, lab: TaskLabels, basis: GramBasis | None = None,
            tick: Tick = no_tick, warm: WarmStart | None = None) -> LayerFits:
        """``basis``: the ``GramBasis`` of ``X.train`` (computed here when None); ``tick``: progress;
        ``warm``: an earlier fit's probes to start the solver from (the result's ``warm`` holds
        this fit's)."""
        cfg = self.config
        K = lab.n_classes
        basis = basis if basis is not None else GramBasis.of(X.train)
        name = lab.task.name
        clock = _Clock()
        path: list[LogisticProbe] = []
        probe, fits = self._select(X, split, split.y, K, basis, lambda n: tick(n, f"{name}: λ path"),
                                   inits=warm.path if warm else None, path=path)
        fits.warm = WarmStart(path)
        clock.lap(fits.stages_s, "fit")
        if cfg.mdl:
            fits.mdl = self._mdl(X, split.y, split, K, probe, basis, word_bits=True,
                                 tick=lambda n: tick(n, f"{name}: MDL blocks"))
            clock.lap(fits.stages_s, "mdl")
        if cfg.control:
            # Hewitt & Liang: every word type gets one fixed random label
            control = lab.control(cfg.seed)[split.order]
            if cfg.control_lambda == "own":
                control_path: list[LogisticProbe] = []
                cprobe, cfits = self._select(X, split, control, K, basis, lambda n: tick(n, f"{name}: control λ path"),
                                             inits=warm.control_path if warm else None, path=control_path)
                fits.control_test, fits.control_lam = cfits.test, cfits.lam
                fits.warm.control_path = control_path
            else:  # matched complexity: each layer's control probe at the λ its task chose there
                cprobe = self._fit_at(X, split, control, K, probe.lam, basis, init=warm.control if warm else None)
                fits.control_test, fits.control_lam = self._correct(cprobe, X, split, control), fits.lam.copy()
                fits.warm.control = cprobe
                tick(1, f"{name}: control probes at the task's λ")
            clock.lap(fits.stages_s, "control")
            if cfg.mdl and cfg.mdl_control:
                fits.mdl_control = self._mdl(X, control, split, K, cprobe, basis,
                                             tick=lambda n: tick(n, f"{name}: control MDL blocks"))
                clock.lap(fits.stages_s, "mdl_control")
            self._fixed(X, split, control, K, probe, cprobe, fits, basis, lambda n: tick(n, f"{name}: fixed-λ probes"))
            clock.lap(fits.stages_s, "fixed")
            if self.curves:
                fits.curve_layer = int(np.argmax(fits.val_score))
                fits.control_curve_test = self._control_curve(X, split, control, K, fits.curve_layer, basis,
                                                              lambda n: tick(n, f"{name}: control λ curve"))
                clock.lap(fits.stages_s, "curves")
        if cfg.cumulative:
            fits.cumulative_test, fits.cumulative_features = self._cumulative(
                X, split, K, fits, probe, basis, lambda n: tick(n, f"{lab.task.name}: cumulative probes"))
            clock.lap(fits.stages_s, "cumulative")
        return fits

    def _kw(self) -> dict[str, Any]:
        cfg = self.config
        return {"max_iter": cfg.max_iter, "tol": cfg.tol, "threads": cfg.threads}

    def _select(self, X: SplitFeatures, split: TaskSplit, labels: np.ndarray, K: int, basis: GramBasis,
                progress: Any, inits: list[LogisticProbe] | None = None, path: list[LogisticProbe] | None = None
                ) -> tuple[LogisticProbe, LayerFits]:
        """The λ path per layer, best λ on validation; its test correctness, validation accuracy
        and test accuracy per λ (the curve). ``inits`` / ``path``: as ``select_logistic``'s."""
        cfg = self.config
        ytr, yva, yte = self._labels(X, split, labels)
        probe, val, test = select_logistic(X.train, ytr, X.val, yva, K, cfg.lambdas, basis=basis, progress=progress,
                                           inits=inits, path=path, X_te=X.test, y_te=yte, **self._kw())
        fits = LayerFits((probe.predict(X.test) == yte).T.cpu().numpy(), probe.lam.cpu().numpy(),
                         selected_scores(cfg.lambdas, val, probe.lam))
        fits.curve_lambdas, fits.curve_test = tuple(sorted(cfg.lambdas, reverse=True)), test
        return probe, fits

    @staticmethod
    def _labels(X: SplitFeatures, split: TaskSplit, labels: np.ndarray) -> tuple[Tensor, Tensor, Tensor]:
        """``labels`` (split order) on the train / validation / test words, as tensors."""
        yt = torch.as_tensor(labels, device=X.train.device)
        n_tr, n_va = split.n_train, split.n_val
        return yt[:n_tr], yt[n_tr:n_tr + n_va], yt[n_tr + n_va:]

    def _correct(self, probe: LogisticProbe, X: SplitFeatures, split: TaskSplit, labels: np.ndarray) -> np.ndarray:
        """[n_test, P]: whether ``probe`` predicts ``labels`` on each test word, per layer."""
        return (probe.predict(X.test) == self._labels(X, split, labels)[2]).T.cpu().numpy()

    def _fit_at(self, X: SplitFeatures, split: TaskSplit, labels: np.ndarray, K: int, lam: Tensor,
                basis: GramBasis, init: LogisticProbe | None = None) -> LogisticProbe:
        """One batched fit of every layer at its λ (``lam`` [P]), from ``init`` or else the log
        class frequencies (the λ → ∞ solution)."""
        ytr = self._labels(X, split, labels)[0]
        return fit_logistic(X.train, ytr, K, lam, init=init, basis=basis, **self._kw())

    def _fixed(self, X: SplitFeatures, split: TaskSplit, control: np.ndarray, K: int, probe: LogisticProbe,
               cprobe: LogisticProbe, fits: LayerFits, basis: GramBasis, tick: Any) -> None:
        """The task and its control at one λ for every layer (``most_chosen_lambda``): each
        refitted from its selected probe, on the layers whose λ differs (the others are reused)."""
        assert fits.control_test is not None
        fits.fixed_lam = most_chosen_lambda(fits.lam)
        fits.fixed_test = self._refit_at(X, split, split.y, K, probe, fits.fixed_lam, fits.test, basis)
        tick(1)
        fits.fixed_control_test = self._refit_at(X, split, control, K, cprobe, fits.fixed_lam, fits.control_test,
                                                 basis)
        tick(1)

    def _refit_at(self, X: SplitFeatures, split: TaskSplit, labels: np.ndarray, K: int, probe: LogisticProbe,
                  lam: float, correct: np.ndarray, basis: GramBasis) -> np.ndarray:
        """[n_test, P]: correct or not at ``lam`` for every layer: ``correct`` (``probe``'s) where
        ``probe`` already has that λ, else refitted at ``lam`` warm-started from ``probe``."""
        redo = ~np.isclose(probe.lam.cpu().numpy(), lam, rtol=1e-6, atol=0.0)  # [P]
        out = correct.copy()
        if redo.any():
            ytr = self._labels(X, split, labels)[0]
            problems = torch.as_tensor(np.nonzero(redo)[0], device=X.train.device)
            refit = fit_logistic(X.train, ytr, K, lam, init=probe, basis=basis, problems=problems, **self._kw())
            out[:, redo] = self._correct(refit, X, split, labels)[:, redo]
        return out

    def _control_curve(self, X: SplitFeatures, split: TaskSplit, control: np.ndarray, K: int, layer: int,
                       basis: GramBasis, tick: Any) -> np.ndarray:
        """[G]: the control task's test accuracy at every λ of the grid (strong → weak) at one
        layer, on its whole λ path (no early stop)."""
        ytr, yva, yte = self._labels(X, split, control)
        one = slice(layer, layer + 1)
        _, _, test = select_logistic(X.train[one], ytr, X.val[one], yva, K, self.config.lambdas,
                                     basis=basis.select([layer]), early_stop=None, progress=tick,
                                     X_te=X.test[one], y_te=yte, **self._kw())
        return test[0]

    def _mdl(self, X: SplitFeatures, labels: np.ndarray, split: TaskSplit, K: int, probe: LogisticProbe,
             basis: GramBasis, tick: Any, word_bits: bool = False) -> dict[str, Any]:
        """The online code of the training words, in their (seeded random) split order, each
        layer with the λ its probe chose; with ``word_bits`` each word's bits, in split order."""
        cfg = self.config
        ytr = torch.as_tensor(labels[:split.n_train], device=X.train.device)
        return online_codelength(X.train, ytr, K, probe.lam, word_bits=word_bits, basis=basis, progress=tick,
                                 **{**self._kw(), "tol": cfg.mdl_tol})

    def _cumulative(self, X: SplitFeatures, split: TaskSplit, K: int, fits: LayerFits, probe: LogisticProbe,
                    basis: GramBasis, tick: Any) -> tuple[np.ndarray, CumulativeFeatures]:
        yt = torch.as_tensor(split.y, device=X.train.device)
        ytr, yte = yt[:split.n_train], yt[split.n_train + split.n_val:]
        Z, k, reduced = layers_side_by_side(X, self.config.max_cumulative_features, basis)
        P = X.train.shape[0]
        # one λ for every cumulative probe: the one the per-layer probes chose most often
        # (the largest among ties); each probe starts from the previous one's solution
        lam_cum = most_chosen_lambda(fits.lam)
        correct = np.zeros((len(yte), P), dtype=bool)
        prev: LogisticProbe | None = None
        # layers 0..l are the first (l + 1)·k columns, so one Gram matrix serves every
        # cumulative probe's preconditioner (its leading block)
        Z_train, Z_test = Z.train, Z.test
        del Z
        gram = _gram(Z_train[0])
        for l in range(P):
            if l == 0 and not reduced and np.isclose(fits.lam[0], lam_cum):
                correct[:, 0] = fits.test[:, 0]
                prev = probe.select([0])
                tick(1)
                continue
            m = (l + 1) * k
            Ztr, Zte = Z_train[:, :, :m], Z_test[:, :, :m]  # views: the first m columns
            init = None
            if prev is not None:  # the probe on layers 0..l-1, with zero weights for layer l
                pad = Ztr.shape[2] - prev.W.shape[1]
                W = torch.cat([prev.W, prev.W.new_zeros(1, pad, K)], dim=1)
                init = LogisticProbe(W, prev.b.clone(), prev.lam.clone())
            prev = fit_logistic(Ztr, ytr, K, lam_cum, init=init, basis=GramBasis.from_gram(gram[None, :m, :m], len(ytr)),
                                **self._kw())
            correct[:, l] = (prev.predict(Zte)[0] == yte).cpu().numpy()
            tick(1)
        return correct, CumulativeFeatures(k, reduced, lam_cum)


# ----------------------------------------------------------------------------- ordinal
class OrdinalStrategy:
    """Ridge probes scored by R² (and Spearman's ρ). No control task: random per-type values
    make R² meaningless (SS_tot of a few frequent types' values). No MDL code either (so no MDL
    expected layer): coding a real-valued label needs a resolution and a noise model that the
    categorical codes do not, and a ridge probe fitted on the first blocks (a few words) fits
    them almost exactly, so a Gaussian with its in-sample variance would make the next block's
    cost explode — the number would measure those choices more than the layer."""

    metric = "r2"

    def __init__(self, config: ProbeConfig):
        self.config = config

    def describe(self, lab: TaskLabels) -> dict[str, Any]:
        return {}

    def skip_reason(self, split: TaskSplit) -> str | None:
        if np.ptp(split.y_train) == 0:
            return "constant labels among the training words"
        return None

    def score(self, boot: Bootstrap, split: TaskSplit, values: np.ndarray, rows: Any = slice(None)
              ) -> tuple[np.ndarray, np.ndarray]:
        """R² of the predictions ``values`` [n_test, P], over the test words ``rows``."""
        return boot.r2(split.test_sentence[rows], split.y_test[rows], values)

    def spearman(self, split: TaskSplit, fits: LayerFits) -> np.ndarray | None:
        """Spearman's ρ of the predictions per layer."""
        return spearman_rho(split.y_test, fits.test)

    def baseline(self, boot: Bootstrap, split: TaskSplit, lab: TaskLabels) -> BaselineScores:
        """The training mean's R² as reported and on the validation words; for the expected
        layer, the R² of a predictor that knows nothing: 0."""
        mean = split.y_train.mean()
        point, b = boot.r2(split.test_sentence, split.y_test, np.full((split.n_test, 1), mean))
        reported = Baseline("train mean", number(point[0]), Interval.of(interval(b, self.config.ci_level)[0]))
        y_val = split.y[split.n_train:split.n_train + split.n_val]
        ss = float(((y_val - y_val.mean()) ** 2).sum()) if len(y_val) else 0.0
        val = 1.0 - float(((y_val - mean) ** 2).sum()) / ss if ss > 0 else float("nan")
        return BaselineScores(reported, float(point[0]), b[:, 0], 0.0, np.zeros(boot.n_resamples), val)

    def units(self, split: TaskSplit, n_problems: int) -> int:
        """Progress units of ``fit``: the ridge path, and one per cumulative probe."""
        return 1 + (n_problems if self.config.cumulative else 0)

    def fit(self, X: SplitFeatures, split: TaskSplit, lab: TaskLabels, basis: GramBasis | None = None,
            tick: Tick = no_tick, warm: WarmStart | None = None) -> LayerFits:
        """``basis``: the ``GramBasis`` of ``X.train`` (computed here when None); ``tick``: progress;
        ``warm``: unused (ridge probes are solved in closed form)."""
        cfg = self.config
        yt = torch.as_tensor(split.y, dtype=torch.float64, device=X.train.device)
        n_tr, n_va = split.n_train, split.n_val
        basis = basis if basis is not None else GramBasis.of(X.train)
        clock = _Clock()
        path = RidgePath.from_basis(basis, X.train, yt[:n_tr])
        probe, val, test = select_ridge(X.train, yt[:n_tr], X.val, yt[n_tr:n_tr + n_va], cfg.ridge_lambdas,
                                        path=path, threads=cfg.threads, X_te=X.test, y_te=yt[n_tr + n_va:])
        fits = LayerFits(probe.predict(X.test).T.double().cpu().numpy(), probe.lam.cpu().numpy(),
                         selected_scores(cfg.ridge_lambdas, val, probe.lam))
        fits.curve_lambdas, fits.curve_test = tuple(sorted(cfg.ridge_lambdas, reverse=True)), test
        tick(1, f"{lab.task.name}: ridge path")
        clock.lap(fits.stages_s, "fit")
        if cfg.cumulative:
            fits.cumulative_test, fits.cumulative_features = self._cumulative(
                X, split, yt, fits, basis, lambda n: tick(n, f"{lab.task.name}: cumulative probes"))
            clock.lap(fits.stages_s, "cumulative")
        return fits

    def _cumulative(self, X: SplitFeatures, split: TaskSplit, yt: Tensor, fits: LayerFits, basis: GramBasis,
                    tick: Any) -> tuple[np.ndarray, CumulativeFeatures]:
        cfg = self.config
        dev = X.train.device
        (Ztr, Zva, Zte), k, reduced = layers_side_by_side(X, cfg.max_cumulative_features, basis)
        P = X.train.shape[0]
        n_tr, n_va = split.n_train, split.n_val
        pred = np.zeros((X.test.shape[1], P))
        with num_threads(auto_threads(Ztr.shape[1] * Ztr.shape[2] ** 2, dev, cfg.threads)):
            # moments of all layers side by side once; layers 0..l are their leading block
            y_tr = yt[:n_tr]
            x_mean, gram, xty = _centred_moments(Ztr[0], y_tr)
            for l in range(P):
                tick(1)
                if l == 0 and not reduced:
                    pred[:, 0] = fits.test[:, 0]
                    continue
                m = (l + 1) * k
                path = RidgePath.from_moments(gram[None, :m, :m], xty[None, :m], x_mean[None, :, :m],
                                              y_tr.mean(), Ztr.dtype)
                probe, _ = select_ridge(Ztr[:, :, :m], y_tr, Zva[:, :, :m], yt[n_tr:n_tr + n_va],
                                        cfg.ridge_lambdas, path=path, threads=cfg.threads)
                pred[:, l] = probe.predict(Zte[:, :, :m].contiguous())[0].double().cpu().numpy()
        return pred, CumulativeFeatures(k, reduced)


TaskStrategy = CategoricalStrategy | OrdinalStrategy


def strategy_for(task: Task, config: ProbeConfig, first: bool = True) -> TaskStrategy:
    """The task kind's strategy. ``first`` False (a refit after the first fit, ``probes.suite``):
    no control λ curve and no control MDL code — they are reported from the first fit only."""
    if not first:
        config = replace(config, mdl_control=False)
    if not task.control:  # its label is the word type: a control task would be the task relabelled
        config = replace(config, control=False)
    return CategoricalStrategy(config, curves=first) if task.categorical else OrdinalStrategy(config)
