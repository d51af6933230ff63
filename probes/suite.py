"""The probe suite: every task × every layer, with its controls, on one model's activations.

    suite = ProbeSuite(["upos", "depth"], ProbeConfig(seed=0))
    result = suite.fit(features, sentences)       # features [n_layer + 1, n_words, d_model]

``features`` holds the residual stream at every word of ``sentences`` (rows in corpus order,
layer 0 = embeddings): a numpy array or memmap, a torch tensor, a list of per-layer arrays, or a
``hooks.ActivationStore``. For each task the suite

1. splits the sentences into train / validation / test (``ProbeConfig.split``; by distinct
   sentence text, so a sentence repeated in the corpus never straddles two splits);
2. standardises each layer's features on the task's training words and fits a linear probe for
   every layer at once (``probes.fit``), choosing L2 per layer on the validation words;
3. fits the same probes on the Hewitt & Liang control task (``TaskLabels.control``), gets the
   majority-class baseline, the online MDL codelength of task and control (categorical tasks),
   and the cumulative probes on layers 0..ℓ used for the expected layer (``probes.depth``);
4. scores everything on the test words, with 95 % intervals from one sentence bootstrap shared by
   all tasks and layers (``probes.metrics``), and gives the hierarchy verdict.

The result is a plain dict (one model's part of results.json; schema in docs/probes.md).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from probes.depth import EXPECTED_KINDS, expected_layer_anchored, expected_layer_tenney, hierarchy_verdict, peak_layer
from probes.fit import (
    DEFAULT_LAMBDAS,
    DEFAULT_RIDGE_LAMBDAS,
    LogisticProbe,
    RidgePath,
    Standardizer,
    auto_threads,
    fit_logistic,
    num_threads,
    select_logistic,
    select_ridge,
)
from probes.mdl import BLOCKS, online_codelength
from probes.metrics import Bootstrap, interval, spearman
from probes.tasks import Task, TaskLabels, label_task, resolve_tasks

SPLITS = ("train", "val", "test")


@dataclass
class ProbeConfig:
    """Settings of a probing run (all recorded in results.json)."""

    seed: int = 0
    split: tuple[float, float, float] = (0.7, 0.1, 0.2)  # train / val / test sentence fractions
    lambdas: tuple[float, ...] = DEFAULT_LAMBDAS  # logistic L2 grid (per-word loss scale)
    ridge_lambdas: tuple[float, ...] = DEFAULT_RIDGE_LAMBDAS
    n_bootstrap: int = 1000
    ci_level: float = 0.95
    control: bool = True
    mdl: bool = True
    mdl_control: bool = True
    cumulative: bool = True
    max_cumulative_features: int = 2048
    expected: str = "anchored"  # which expected layer the verdict uses: anchored | tenney
    verdict_threshold: float = 0.95
    lexical_fraction: float = 0.95  # "lexical" flag: layer 0 reaches this share of the peak gain
    # Probes stop at max |gradient| ≤ tol: 1e-5, ten times tighter than scikit-learn's default,
    # because at 1e-4 weakly regularised word-identity probes still sit up to ~1 point of test
    # accuracy from the optimum (both ours and scikit-learn's). MDL's many block fits use mdl_tol.
    max_iter: int = 1000
    tol: float = 1e-5
    mdl_tol: float = 1e-4
    device: str = "cpu"
    threads: int | None = None  # torch threads for the fits (None: 1 for small fits, else torch's)
    min_train_words: int = 10

    def __post_init__(self) -> None:
        split = tuple(float(x) for x in self.split)
        if len(split) != 3 or any(x <= 0 for x in split) or not math.isclose(sum(split), 1.0, abs_tol=1e-6):
            raise ValueError(f"ProbeConfig.split must be three positive fractions summing to 1, got {self.split}")
        self.split = split  # type: ignore[assignment]
        if self.expected not in EXPECTED_KINDS:
            raise ValueError(f"ProbeConfig.expected must be one of {', '.join(EXPECTED_KINDS)}, got {self.expected!r}")
        if not self.lambdas or any(x <= 0 for x in self.lambdas):
            raise ValueError("ProbeConfig.lambdas must be positive")
        if not self.ridge_lambdas or any(x <= 0 for x in self.ridge_lambdas):
            raise ValueError("ProbeConfig.ridge_lambdas must be positive")
        if self.n_bootstrap < 0:
            raise ValueError("ProbeConfig.n_bootstrap must be >= 0")
        for name in ("tol", "mdl_tol"):
            if not getattr(self, name) > 0:
                raise ValueError(f"ProbeConfig.{name} must be > 0, got {getattr(self, name)}")
        if self.max_iter < 1:
            raise ValueError(f"ProbeConfig.max_iter must be >= 1, got {self.max_iter}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["split"] = list(self.split)
        d["lambdas"] = list(self.lambdas)
        d["ridge_lambdas"] = list(self.ridge_lambdas)
        d["mdl_blocks"] = list(BLOCKS)
        return d


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


# ----------------------------------------------------------------------------- features
def as_layers(features: Any) -> tuple[int, Callable[[int], np.ndarray | Tensor]]:
    """(number of layers, layer(l) → [n_words, d]) for any supported feature container."""
    if hasattr(features, "layer") and hasattr(features, "index"):  # hooks.ActivationStore
        n = int(features.index["model"]["n_layer"]) + 1
        return n, features.layer
    if isinstance(features, (list, tuple)):
        return len(features), lambda l: features[l]
    if isinstance(features, (np.ndarray, Tensor)):
        if features.ndim != 3:
            raise ValueError(f"features must be [n_layer + 1, n_words, d_model], got shape {tuple(features.shape)}")
        return int(features.shape[0]), lambda l: features[l]
    raise TypeError(f"cannot read features from {type(features).__name__}")


def to_tensor(features: Any, device: str | torch.device = "cpu") -> Tensor:
    """All layers as one float32 tensor [n_layer + 1, n_words, d] on ``device``."""
    if isinstance(features, Tensor) and features.ndim == 3:
        return features.to(device=device, dtype=torch.float32)
    n, layer = as_layers(features)
    first = layer(0)
    out = torch.empty((n, *first.shape), dtype=torch.float32)
    view = out.numpy()
    for l in range(n):
        x = layer(l)
        if isinstance(x, Tensor):
            out[l] = x.detach().to("cpu", torch.float32)
        else:
            view[l] = x  # numpy casts (e.g. a float16 memmap) while copying
    return out.to(device)


# ----------------------------------------------------------------------------- the suite
@dataclass
class _Prepared:
    sentences: Sequence[Any]
    n_words: int
    split: np.ndarray  # per sentence
    test_pos: np.ndarray  # per sentence: index among test sentences (−1 elsewhere)
    labels: dict[str, TaskLabels]
    bootstrap: Bootstrap


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
        test_ids = np.nonzero(split == 2)[0]
        test_pos = np.full(len(sentences), -1, dtype=np.int64)
        test_pos[test_ids] = np.arange(len(test_ids))
        labels = {t.name: label_task(t, sentences) for t in self.tasks}
        n_words = sum(len(s.words) for s in sentences)
        boot = Bootstrap(max(len(test_ids), 1), cfg.n_bootstrap, seed=cfg.seed)
        self._prepared = _Prepared(sentences, n_words, split, test_pos, labels, boot)
        return self._prepared

    def data_summary(self, sentences: Sequence[Any]) -> dict[str, Any]:
        p = self.prepare(sentences)
        words_per_split = {sp: int(sum(len(s.words) for s, k in zip(sentences, p.split) if k == i))
                           for i, sp in enumerate(SPLITS)}
        return {"n_sentences": len(sentences), "n_words": p.n_words,
                "split_sentences": {sp: int((p.split == i).sum()) for i, sp in enumerate(SPLITS)},
                "split_words": words_per_split}

    # -- fitting -----------------------------------------------------------------------
    def fit(self, features: Any, sentences: Sequence[Any], *, log: Callable[[str], None] | None = None
            ) -> dict[str, Any]:
        """Probe one model: {"n_layer", "tasks": {name: task result}, "verdict", "timing_s"}."""
        log = log or (lambda msg: None)
        prep = self.prepare(sentences)
        t0 = time.perf_counter()
        X = to_tensor(features, self.config.device)
        if X.shape[1] != prep.n_words:
            raise ValueError(f"features have {X.shape[1]} word rows but the sentences have {prep.n_words} words")
        n_layers = X.shape[0]
        tasks_out: dict[str, Any] = {}
        boot_expected: dict[str, np.ndarray] = {}
        point_expected: dict[str, float] = {}
        timing: dict[str, float] = {"load": time.perf_counter() - t0}
        for t in self.tasks:
            t1 = time.perf_counter()
            res, e_boot = self._fit_task(X, prep, prep.labels[t.name])
            timing[t.name] = time.perf_counter() - t1
            res["fit_s"] = timing[t.name]
            tasks_out[t.name] = res
            if res.get("skipped"):
                log(f"  {t.name}: skipped ({res['skipped']})")
                continue
            e = res["expected_layer"].get(self.config.expected)
            if e_boot is not None:
                boot_expected[t.name] = e_boot
                point_expected[t.name] = np.nan if e is None else e
            peak = res["peak_layer"]
            log(f"  {t.name:<20} peak layer {peak} ({res['metric']} {res['layers'][peak]['score']:.3f}), "
                f"expected layer {_fmt(e)}  [{timing[t.name]:.1f} s]")
        levels = {t.name: t.level for t in self.tasks if t.name in point_expected}
        verdict = hierarchy_verdict(point_expected, boot_expected, levels, self.config.verdict_threshold)
        verdict["expected"] = self.config.expected
        return {"n_layer": n_layers - 1, "d_model": int(X.shape[2]), "tasks": tasks_out, "verdict": verdict,
                "timing_s": timing}

    def _fit_task(self, X_all: Tensor, prep: _Prepared, lab: TaskLabels) -> tuple[dict[str, Any], np.ndarray | None]:
        cfg = self.config
        t = lab.task
        device = X_all.device
        n_layers = X_all.shape[0]
        L = n_layers - 1
        where = prep.split[lab.sentence] if lab.n else np.zeros(0, dtype=np.int64)
        idx = [np.nonzero(where == k)[0] for k in range(3)]
        n_tr, n_va, n_te = (len(i) for i in idx)
        base = {**t.to_dict(), "metric": "accuracy" if t.categorical else "r2",
                "n_words": {"train": n_tr, "val": n_va, "test": n_te}}
        if t.categorical:
            base["n_classes"] = lab.n_classes
            base["classes"] = [str(c) for c in lab.classes[:100]]
        reason = None
        if n_tr < cfg.min_train_words or n_te == 0 or n_va == 0:
            reason = f"too few labelled words (train {n_tr}, val {n_va}, test {n_te})"
        elif t.categorical and len(np.unique(lab.y[idx[0]])) < 2:
            reason = "fewer than 2 classes among the training words"
        elif not t.categorical and np.ptp(lab.y[idx[0]]) == 0:
            reason = "constant labels among the training words"
        if reason:
            return {**base, "skipped": reason}, None

        order = np.concatenate(idx)
        X = X_all[:, torch.as_tensor(lab.rows[order], device=device)]  # [P, n, d]: train | val | test
        X = Standardizer.fit(X[:, :n_tr]).apply_(X)  # in place: X is already a copy
        Xtr, Xva, Xte = X[:, :n_tr], X[:, n_tr:n_tr + n_va], X[:, n_tr + n_va:]
        y_np = lab.y[order]
        sent_te = prep.test_pos[lab.sentence[idx[2]]]
        boot = prep.bootstrap

        # control task: categorical tasks only (Hewitt & Liang); for an ordinal task random
        # per-type values make R² meaningless (SS_tot of a few frequent types' values)
        ctrl_np = lab.control(cfg.seed)[order] if cfg.control and t.categorical else None
        if t.categorical:
            fit = self._categorical(Xtr, Xva, Xte, y_np, ctrl_np, lab.n_classes, n_tr, n_va)
        else:
            fit = self._ordinal(Xtr, Xva, Xte, y_np, ctrl_np, n_tr, n_va)

        # scores with bootstrap
        def score(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            if t.categorical:
                return boot.accuracy(sent_te, values)
            return boot.r2(sent_te, y_np[n_tr + n_va:], values)

        s_point, s_boot = score(fit["test"])
        s_ci = interval(s_boot, cfg.ci_level)
        layers = []
        for l in range(n_layers):
            layers.append({"layer": l, "score": _f(s_point[l]), "ci": _ci(s_ci[l]), "lambda": float(fit["lam"][l])})
        if ctrl_np is not None:
            c_point, c_boot = score(fit["control_test"])
            c_ci = interval(c_boot, cfg.ci_level)
            sel_ci = interval(s_boot - c_boot, cfg.ci_level)
            for l in range(n_layers):
                layers[l].update(control=_f(c_point[l]), control_ci=_ci(c_ci[l]),
                                 selectivity=_f(s_point[l] - c_point[l]), selectivity_ci=_ci(sel_ci[l]),
                                 control_lambda=float(fit["control_lam"][l]))
        if not t.categorical:
            rho = spearman(y_np[n_tr + n_va:], fit["test"])
            for l in range(n_layers):
                layers[l]["spearman"] = _f(rho[l])
        # majority / mean baseline
        if t.categorical:
            majority_class = int(np.bincount(y_np[:n_tr], minlength=lab.n_classes).argmax())
            b_point, b_boot = boot.accuracy(sent_te, (y_np[n_tr + n_va:] == majority_class)[:, None])
            baseline = {"name": "majority", "class": str(lab.classes[majority_class]), "score": _f(b_point[0]),
                        "ci": _ci(interval(b_boot, cfg.ci_level)[0])}
            base_boot = b_boot[:, 0]
            base_point = float(b_point[0])
        else:
            mean_pred = np.full((n_te, 1), y_np[:n_tr].mean())
            b_point, b_boot = boot.r2(sent_te, y_np[n_tr + n_va:], mean_pred)
            baseline = {"name": "train mean", "score": _f(b_point[0]), "ci": _ci(interval(b_boot, cfg.ci_level)[0])}
            base_boot = np.zeros(boot.n_resamples)  # R² of a predictor that knows nothing
            base_point = 0.0
        # MDL
        if "mdl" in fit:
            for l in range(n_layers):
                m = {"codelength_bits": float(fit["mdl"]["codelength_bits"][l]),
                     "uniform_bits": fit["mdl"]["uniform_bits"],
                     "compression": _f(fit["mdl"]["compression"][l])}
                if "mdl_control" in fit:
                    m["control_codelength_bits"] = float(fit["mdl_control"]["codelength_bits"][l])
                    m["control_compression"] = _f(fit["mdl_control"]["compression"][l])
                layers[l]["mdl"] = m
        # groups (e.g. attractor / no attractor)
        if lab.groups is not None:
            g_te = np.asarray([lab.groups[i] for i in idx[2]], dtype=object)
            names = sorted({g for g in g_te if g is not None})
            for g in names:
                sel = g_te == g
                if t.categorical:
                    gp, gb = boot.accuracy(sent_te[sel], fit["test"][sel])
                else:
                    gp, gb = boot.r2(sent_te[sel], y_np[n_tr + n_va:][sel], fit["test"][sel])
                gci = interval(gb, cfg.ci_level)
                for l in range(n_layers):
                    layers[l].setdefault("groups", {})[g] = {"score": _f(gp[l]), "ci": _ci(gci[l]), "n": int(sel.sum())}
        # depth analysis
        peak = peak_layer(s_point)
        res: dict[str, Any] = {**base, "baseline": baseline, "layers": layers, "peak_layer": peak,
                               "peak_score": _f(s_point[peak]), "layer0_score": _f(s_point[0])}
        gain = s_point[peak] - base_point
        res["lexical"] = bool(gain > 0 and s_point[0] - base_point >= cfg.lexical_fraction * gain)
        e_boot = None
        if "cumulative_test" in fit:
            cu_point, cu_boot = score(fit["cumulative_test"])
            cu_ci = interval(cu_boot, cfg.ci_level)
            res["cumulative"] = [{"layer": l, "score": _f(cu_point[l]), "ci": _ci(cu_ci[l])} for l in range(n_layers)]
            res["cumulative_features"] = fit["cumulative_features"]
            anchored = expected_layer_anchored(cu_point, base_point)
            tenney = expected_layer_tenney(cu_point)
            a_boot = expected_layer_anchored(cu_boot, base_boot)
            t_boot = expected_layer_tenney(cu_boot)
            res["expected_layer"] = {
                "anchored": _f(anchored), "anchored_ci": _ci(interval(a_boot, cfg.ci_level)),
                "tenney": _f(tenney), "tenney_ci": _ci(interval(t_boot, cfg.ci_level)),
                "relative": _f(anchored / L) if L > 0 else None,
                "tenney_relative": _f(tenney / L) if L > 0 else None,
            }
            e_boot = a_boot if cfg.expected == "anchored" else t_boot
        else:
            res["expected_layer"] = {}
        return res, e_boot

    # -- categorical -------------------------------------------------------------------
    def _categorical(self, Xtr: Tensor, Xva: Tensor, Xte: Tensor, y: np.ndarray, ctrl: np.ndarray | None,
                     K: int, n_tr: int, n_va: int) -> dict[str, Any]:
        cfg = self.config
        dev = Xtr.device
        kw = {"max_iter": cfg.max_iter, "tol": cfg.tol, "threads": cfg.threads}
        out: dict[str, Any] = {}

        def run(labels: np.ndarray, prefix: str) -> LogisticProbe:
            yt = torch.as_tensor(labels, device=dev)
            ytr, yva, yte = yt[:n_tr], yt[n_tr:n_tr + n_va], yt[n_tr + n_va:]
            probe, _ = select_logistic(Xtr, ytr, Xva, yva, K, cfg.lambdas, **kw)
            out[prefix + "test"] = (probe.predict(Xte) == yte).T.cpu().numpy()
            out[prefix + "lam"] = probe.lam.cpu().numpy()
            if cfg.mdl and (prefix == "" or cfg.mdl_control):
                perm = self._mdl_order(n_tr)
                key = "mdl" if prefix == "" else "mdl_control"
                out[key] = online_codelength(Xtr[:, perm], ytr[perm], K, probe.lam, **{**kw, "tol": cfg.mdl_tol})
            return probe

        probe = run(y, "")
        if ctrl is not None:
            run(ctrl, "control_")
        if cfg.cumulative:
            yt = torch.as_tensor(y, device=dev)
            ytr, yva, yte = yt[:n_tr], yt[n_tr:n_tr + n_va], yt[n_tr + n_va:]
            R, k = self._reduce(Xtr, Xva, Xte)
            P = Xtr.shape[0]
            # one λ for every cumulative probe: the one the per-layer probes chose most often
            # (the largest among ties); each probe starts from the previous one's solution
            lams, counts = np.unique(np.round(out["lam"], 12), return_counts=True)
            lam_cum = float(lams[counts == counts.max()].max())
            correct = np.zeros((len(yte), P), dtype=bool)
            prev: LogisticProbe | None = None
            for l in range(P):
                if l == 0 and R is None and np.isclose(out["lam"][0], lam_cum):
                    correct[:, 0] = out["test"][:, 0]
                    prev = probe.select([0])
                    continue
                parts = R or (Xtr, Xva, Xte)
                Ztr, Zte = self._concat(parts[0], l), self._concat(parts[2], l)
                init = None
                if prev is not None:  # the probe on layers 0..l-1, with zero weights for layer l
                    pad = Ztr.shape[2] - prev.W.shape[1]
                    W = torch.cat([prev.W, prev.W.new_zeros(1, pad, K)], dim=1)
                    init = LogisticProbe(W, prev.b.clone(), prev.lam.clone())
                prev = fit_logistic(Ztr, ytr, K, lam_cum, init=init, **kw)
                correct[:, l] = (prev.predict(Zte)[0] == yte).cpu().numpy()
            out["cumulative_test"] = correct
            out["cumulative_features"] = {"per_layer": k, "reduced": R is not None, "lambda": lam_cum}
        return out

    # -- ordinal -----------------------------------------------------------------------
    def _ordinal(self, Xtr: Tensor, Xva: Tensor, Xte: Tensor, y: np.ndarray, ctrl: np.ndarray | None,
                 n_tr: int, n_va: int) -> dict[str, Any]:
        cfg = self.config
        dev = Xtr.device
        out: dict[str, Any] = {}

        def run(labels: np.ndarray, prefix: str) -> None:
            yt = torch.as_tensor(labels, dtype=torch.float64, device=dev)
            probe, _ = select_ridge(Xtr, yt[:n_tr], Xva, yt[n_tr:n_tr + n_va], cfg.ridge_lambdas,
                                    threads=cfg.threads)
            out[prefix + "test"] = probe.predict(Xte).T.double().cpu().numpy()
            out[prefix + "lam"] = probe.lam.cpu().numpy()

        run(y, "")
        if ctrl is not None:
            run(ctrl, "control_")
        if cfg.cumulative:
            yt = torch.as_tensor(y, dtype=torch.float64, device=dev)
            R, k = self._reduce(Xtr, Xva, Xte)
            P = Xtr.shape[0]
            Ztr, Zva, Zte = (self._concat(part, P - 1) for part in (R or (Xtr, Xva, Xte)))
            pred = np.zeros((Xte.shape[1], P))
            with num_threads(auto_threads(Ztr.shape[1] * Ztr.shape[2] ** 2, dev, cfg.threads)):
                # moments of all layers side by side once; layers 0..l are their leading block
                Zd = Ztr[0].double()
                x_mean = Zd.mean(dim=0, keepdim=True)
                Zc = Zd - x_mean
                y_tr = yt[:n_tr]
                gram = Zc.T @ Zc / n_tr
                xty = Zc.T @ (y_tr - y_tr.mean()) / n_tr
                for l in range(P):
                    if l == 0 and R is None:
                        pred[:, 0] = out["test"][:, 0]
                        continue
                    m = (l + 1) * k
                    path = RidgePath.from_moments(gram[None, :m, :m], xty[None, :m], x_mean[None, :, :m],
                                                  y_tr.mean(), Ztr.dtype)
                    probe, _ = select_ridge(Ztr[:, :, :m], y_tr, Zva[:, :, :m], yt[n_tr:n_tr + n_va],
                                            cfg.ridge_lambdas, path=path, threads=cfg.threads)
                    pred[:, l] = probe.predict(Zte[:, :, :m].contiguous())[0].double().cpu().numpy()
            out["cumulative_test"] = pred
            out["cumulative_features"] = {"per_layer": k, "reduced": R is not None}
        return out

    # -- helpers -----------------------------------------------------------------------
    def _reduce(self, Xtr: Tensor, Xva: Tensor, Xte: Tensor) -> tuple[tuple[Tensor, Tensor, Tensor] | None, int]:
        """Per-layer PCA (fitted on the training words) when the concatenation of all layers
        would exceed ``max_cumulative_features``; None when no reduction is needed."""
        P, _, d = Xtr.shape
        cap = self.config.max_cumulative_features
        if P * d <= cap:
            return None, d
        k = max(1, cap // P)
        cov = Xtr.transpose(1, 2).double() @ Xtr.double() / Xtr.shape[1]  # [P, d, d] (standardised: mean 0)
        _, vecs = torch.linalg.eigh(cov)
        V = vecs[:, :, -k:].to(Xtr.dtype)  # leading components
        # re-standardise the projections so every component has unit variance on train
        parts = [torch.bmm(part, V) for part in (Xtr, Xva, Xte)]
        std = Standardizer.fit(parts[0])
        return tuple(std(p) for p in parts), k  # type: ignore[return-value]

    @staticmethod
    def _concat(X: Tensor, l: int) -> Tensor:
        """Layers 0..l side by side: [1, n, (l + 1)·d]."""
        return X[: l + 1].permute(1, 0, 2).reshape(1, X.shape[1], -1).contiguous()

    def _mdl_order(self, n_tr: int) -> Tensor:
        # the order in which the online code transmits the training words: a seeded permutation
        g = torch.Generator().manual_seed(self.config.seed + 7919)
        return torch.randperm(n_tr, generator=g)


def _f(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _ci(x: np.ndarray) -> list[float | None]:
    return [_f(x[0]), _f(x[1])]


def _fmt(x: float | None) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.2f}"
