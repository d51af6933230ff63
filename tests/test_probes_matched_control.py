"""Selectivity at matched complexity (#20): the control task's probe at its task's λ, the task and
its control at one fixed λ, accuracy-versus-λ curves on the test words, and the selected probes'
validation scores (``probes.strategy.LayerFits``)."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from corpus import Sentence, Word
from probes.config import ProbeConfig
from probes.fit import (
    GramBasis,
    fit_logistic,
    r2_score,
    select_logistic,
    select_ridge,
    selected_scores,
)
from probes.mdl import online_codelength
from probes.strategy import (
    CategoricalStrategy,
    OrdinalStrategy,
    TaskSplit,
    most_chosen_lambda,
    split_positions,
)
from probes.tasks import Task, label_task

LAMBDAS = (1.0, 1e-1, 1e-2, 1e-3, 1e-4)
TAG = Task("tag", "middle", "categorical", lambda s: [w.misc["tag"] for w in s.words])
TAG_VALUE = Task("tag_value", "middle", "ordinal", lambda s: [float(w.misc["tag"]) for w in s.words])


def _data(n_sent=260, n_types=120, d=8, seed=0):
    """Word types with a fixed tag of 3; layer 0 holds the word's identity (a random vector per
    type), layer 1 the tag plus noise, layer 2 both. Sentences split about 70/10/20."""
    rng = np.random.default_rng(seed)
    tag_of = rng.integers(3, size=n_types)
    sentences, tags, forms = [], [], []
    for _ in range(n_sent):
        words = []
        for i in range(int(rng.integers(4, 12))):
            t = int(rng.integers(n_types))
            words.append(Word(i + 1, f"w{t}", misc={"tag": str(tag_of[t])}))
            tags.append(tag_of[t])
            forms.append(t)
        sentences.append(Sentence(words))
    tags, forms = np.array(tags), np.array(forms)
    n = len(tags)
    emb = rng.normal(size=(n_types, d))
    onehot = np.eye(d)[tags] * 2.0
    X = np.stack([emb[forms] + 0.3 * rng.normal(size=(n, d)),
                  onehot + 1.5 * rng.normal(size=(n, d)),
                  0.5 * emb[forms] + onehot + rng.normal(size=(n, d))]).astype(np.float32)
    return sentences, torch.from_numpy(X), rng.choice(3, size=n_sent, p=[0.7, 0.1, 0.2])


class _Run:
    """One task's split and features, and its fits in both control_lambda modes (everything on),
    with the progress units each fit reported."""

    def __init__(self):
        sentences, X, sentence_split = _data()
        self.lab = label_task(TAG, sentences)
        self.split = TaskSplit.of(self.lab, sentence_split, split_positions(sentence_split), 7)
        self.X = self.split.features(X)
        self.basis = GramBasis.of(self.X.train)
        self.K = self.lab.n_classes
        self.fits, self.units, self.ticked = {}, {}, {}
        for mode in ("task", "own"):
            strategy = CategoricalStrategy(self.config(mode))
            ticks: list[int] = []
            self.fits[mode] = strategy.fit(self.X, self.split, self.lab, self.basis,
                                           lambda n, _stage, ticks=ticks: ticks.append(n))
            self.units[mode], self.ticked[mode] = strategy.units(self.split, 3), sum(ticks)
        self.control = self.lab.control(0)[self.split.order]

    @staticmethod
    def config(mode: str, **kw) -> ProbeConfig:
        return ProbeConfig(lambdas=LAMBDAS, control_lambda=mode, n_bootstrap=0, **kw)

    def labels(self, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        a, b = self.split.n_train, self.split.n_train + self.split.n_val
        t = torch.as_tensor(y)
        return t[:a], t[a:b], t[b:]

    def kw(self) -> dict:
        cfg = self.config("task")
        return {"max_iter": cfg.max_iter, "tol": cfg.tol, "threads": cfg.threads, "basis": self.basis}


@pytest.fixture(scope="module")
def run() -> _Run:
    torch.manual_seed(0)
    return _Run()


def _correct(probe, X, y) -> np.ndarray:
    return (probe.predict(X) == y).T.numpy()  # [n_test, P]


def test_task_mode_fits_the_control_at_the_tasks_lambda_like_scikit_learn(run):
    fits = run.fits["task"]
    assert np.array_equal(fits.control_lam, fits.lam)
    assert len(set(fits.lam.tolist())) > 1  # the layers chose different λ: one fit with a λ per layer
    ytr, _, yte = run.labels(run.control)
    n = run.split.n_train
    for layer, lam in enumerate(fits.lam):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            sk = LogisticRegression(C=1.0 / (float(lam) * n), tol=1e-8, max_iter=5000)
            sk.fit(run.X.train[layer].numpy(), ytr.numpy())
        sk_correct = sk.predict(run.X.test[layer].numpy()) == yte.numpy()
        ours = fits.control_test[:, layer]
        assert (ours == sk_correct).mean() >= 0.99, layer
        assert abs(ours.mean() - sk_correct.mean()) <= 0.005, layer
    # the control's MDL code uses the task's λ too
    direct = online_codelength(run.X.train, ytr, run.K, torch.as_tensor(fits.lam), max_iter=1000, tol=1e-4,
                               basis=run.basis)
    assert np.allclose(fits.mdl_control["codelength_bits"], direct["codelength_bits"], rtol=1e-9)


def test_own_mode_reproduces_the_controls_own_lambda_path(run):
    own, task = run.fits["own"], run.fits["task"]
    # what the code did before control_lambda: the control task's own λ path, best λ on validation
    ytr, yva, yte = run.labels(run.control)
    probe, _ = select_logistic(run.X.train, ytr, run.X.val, yva, run.K, LAMBDAS, **run.kw())
    assert np.array_equal(own.control_test, _correct(probe, run.X.test, yte))
    assert np.array_equal(own.control_lam, probe.lam.numpy())
    assert not np.array_equal(own.control_lam, own.lam)  # on this data the two modes differ
    direct = online_codelength(run.X.train, ytr, run.K, probe.lam, max_iter=1000, tol=1e-4, basis=run.basis)
    assert np.array_equal(own.mdl_control["codelength_bits"], direct["codelength_bits"])
    # the task's own probes do not depend on the mode
    for name in ("test", "lam", "val_score", "curve_test", "cumulative_test"):
        assert np.array_equal(getattr(own, name), getattr(task, name), equal_nan=name == "curve_test"), name
    assert np.array_equal(own.mdl["codelength_bits"], task.mdl["codelength_bits"])


def test_most_chosen_lambda_takes_the_largest_among_ties():
    assert most_chosen_lambda(np.array([1e-3, 1e-2, 1e-2], dtype=np.float32)) == pytest.approx(1e-2)
    assert most_chosen_lambda(np.array([1e-1, 1e-2, 1e-2, 1e-1])) == pytest.approx(1e-1)
    assert most_chosen_lambda(np.array([1e-4])) == pytest.approx(1e-4)


@pytest.mark.parametrize("mode", ["task", "own"])
def test_fixed_lambda_probes_equal_direct_fits(run, mode):
    fits = run.fits[mode]
    assert fits.fixed_lam == most_chosen_lambda(fits.lam) == pytest.approx(1e-2)
    for labels, got, chosen, reused in ((run.split.y, fits.fixed_test, fits.lam, fits.test),
                                        (run.control, fits.fixed_control_test, fits.control_lam, fits.control_test)):
        ytr, _, yte = run.labels(labels)
        direct = _correct(fit_logistic(run.X.train, ytr, run.K, fits.fixed_lam, **run.kw()), run.X.test, yte)
        assert got.shape == direct.shape == (run.split.n_test, 3)
        assert ((got == direct).mean(axis=0) >= 0.99).all()
        assert np.abs(got.mean(axis=0) - direct.mean(axis=0)).max() <= 0.005
        same = np.isclose(chosen, fits.fixed_lam)
        assert same.any() and not same.all()  # some layers reused, some refitted
        assert np.array_equal(got[:, same], reused[:, same])


def test_curves_agree_with_the_selected_probes(run):
    fits = run.fits["task"]
    G = len(LAMBDAS)
    assert fits.curve_lambdas == LAMBDAS and fits.curve_test.shape == (3, G)
    ytr, yva, _ = run.labels(run.split.y)
    _, val = select_logistic(run.X.train, ytr, run.X.val, yva, run.K, LAMBDAS, **run.kw())
    # NaN exactly where the path stopped early (it does here)
    assert np.isnan(val).any() and np.array_equal(np.isnan(fits.curve_test), np.isnan(val))
    for layer, lam in enumerate(fits.lam):
        g = int(np.argmin(np.abs(np.log(LAMBDAS) - np.log(lam))))
        assert fits.curve_test[layer, g] == pytest.approx(fits.test[:, layer].mean(), abs=1e-12)
    # the control's curve: the whole grid at the layer with the best validation score
    assert fits.curve_layer == int(np.argmax(fits.val_score))
    c = fits.control_curve_test
    assert c.shape == (G,) and not np.isnan(c).any()
    cl = fits.curve_layer
    ctr, _, cte = run.labels(run.control)
    one = slice(cl, cl + 1)
    path = [(fit_logistic(run.X.train[one], ctr, run.K, lam, **{**run.kw(), "basis": run.basis.select([cl])}))
            for lam in LAMBDAS[:2]]  # the first two λ of the path, cold: the same optimum
    for g, probe in enumerate(path):
        assert abs(c[g] - _correct(probe, run.X.test[one], cte).mean()) <= 0.005
    g = int(np.argmin(np.abs(np.log(LAMBDAS) - np.log(fits.control_lam[cl]))))
    assert abs(c[g] - fits.control_test[:, cl].mean()) <= 0.005
    assert run.fits["own"].curve_layer == cl and np.allclose(run.fits["own"].control_curve_test, c)


def test_val_score_is_the_selected_probes_validation_accuracy(run):
    ytr, yva, _ = run.labels(run.split.y)
    probe, val = select_logistic(run.X.train, ytr, run.X.val, yva, run.K, LAMBDAS, **run.kw())
    fits = run.fits["task"]
    assert np.array_equal(fits.val_score, np.nanmax(val, axis=1))
    assert np.array_equal(selected_scores(LAMBDAS, val, probe.lam), fits.val_score)


def test_select_logistic_and_ridge_record_test_scores_only_when_asked(run):
    ytr, yva, yte = run.labels(run.split.y)
    a = select_logistic(run.X.train, ytr, run.X.val, yva, run.K, LAMBDAS[:2], **run.kw())
    b = select_logistic(run.X.train, ytr, run.X.val, yva, run.K, LAMBDAS[:2], X_te=run.X.test, y_te=yte, **run.kw())
    assert len(a) == 2 and len(b) == 3
    assert torch.equal(a[0].W, b[0].W) and np.array_equal(a[1], b[1])
    for g, lam in enumerate(LAMBDAS[:2]):  # each λ's probe on the test words
        probe = fit_logistic(run.X.train, ytr, run.K, lam, **run.kw())
        assert abs(b[2][:, g] - _correct(probe, run.X.test, yte).mean(axis=0)).max() <= 0.005
    yf = [t.double() for t in (ytr, yva, yte)]
    r = select_ridge(run.X.train, yf[0], run.X.val, yf[1], (1.0, 0.1))
    s = select_ridge(run.X.train, yf[0], run.X.val, yf[1], (1.0, 0.1), X_te=run.X.test, y_te=yf[2])
    assert len(r) == 2 and len(s) == 3 and np.array_equal(r[1], s[1])
    assert np.allclose(s[2][:, 1], r2_score(yf[2], select_ridge(run.X.train, yf[0], run.X.val, yf[1], (0.1,))[0]
                                            .predict(run.X.test)).numpy())


def test_ordinal_curves_and_val_score():
    sentences, X, sentence_split = _data(n_sent=120)
    lab = label_task(TAG_VALUE, sentences)
    split = TaskSplit.of(lab, sentence_split, split_positions(sentence_split))
    F = split.features(X)
    config = ProbeConfig(ridge_lambdas=(10.0, 1.0, 0.1), n_bootstrap=0)
    ticks: list[int] = []
    fits = OrdinalStrategy(config).fit(F, split, lab, tick=lambda n, _stage: ticks.append(n))
    assert sum(ticks) == OrdinalStrategy(config).units(split, 3)
    y = torch.as_tensor(split.y)
    a, b = split.n_train, split.n_train + split.n_val
    _, val = select_ridge(F.train, y[:a], F.val, y[a:b], config.ridge_lambdas)
    assert np.array_equal(fits.val_score, val.max(axis=1))
    assert fits.curve_lambdas == (10.0, 1.0, 0.1) and fits.curve_test.shape == (3, 3)
    assert fits.curve_layer is None and fits.control_curve_test is None and fits.fixed_lam is None
    r2 = r2_score(y[b:], torch.as_tensor(fits.test.T)).numpy()
    for layer, lam in enumerate(fits.lam):
        g = int(np.argmin(np.abs(np.log(config.ridge_lambdas) - np.log(lam))))
        assert fits.curve_test[layer, g] == pytest.approx(r2[layer], abs=1e-5)
    assert fits.curve_test[1:].max() > 0.3  # layers 1 and 2 encode the tag


def test_progress_units_are_exact_in_both_modes(run):
    for mode in ("task", "own"):
        assert run.ticked[mode] == run.units[mode] > 0, mode
    assert run.units["own"] - run.units["task"] == len(LAMBDAS) - 1  # a path vs one fit
    # and without the control task (no fixed-λ fits, no control curve)
    config = run.config("task", control=False, mdl=False)
    ticks: list[int] = []
    fits = CategoricalStrategy(config).fit(run.X, run.split, run.lab, run.basis, lambda n, _s: ticks.append(n))
    assert sum(ticks) == CategoricalStrategy(config).units(run.split, 3)
    assert fits.fixed_lam is None and fits.control_curve_test is None and fits.curve_test is not None
    assert set(fits.stages_s) == {"fit", "cumulative"}
    assert set(run.fits["task"].stages_s) == {"fit", "mdl", "control", "mdl_control", "fixed", "curves", "cumulative"}
