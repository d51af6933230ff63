"""Refits start their solvers from the first fit's probes (``probes.strategy.WarmStart``), and a
task whose label is the word type has no control task (``Task.control``)."""

import numpy as np
import pytest
import torch

import probes
from probes.config import ProbeConfig
from probes.fit import GramBasis, select_logistic
from probes.results import TaskInfo, _Fields
from probes.strategy import (
    CategoricalStrategy,
    TaskSplit,
    split_positions,
    strategy_for,
)
from probes.tasks import TASKS, Task, label_task
from tests.test_probes_matched_control import LAMBDAS, TAG, _data


def _redrawn_split(sentence_split: np.ndarray, seed: int) -> np.ndarray:
    """The test sentences kept, train / validation re-drawn among the others (as a refit does)."""
    rng = np.random.default_rng(seed)
    out = sentence_split.copy()
    rest = np.nonzero(sentence_split != 2)[0]
    out[rest] = np.where(rng.random(len(rest)) < 0.875, 0, 1)
    return out


class _Refits:
    """One task fitted on its first split, then on a re-drawn split cold and warm-started."""

    def __init__(self, mode: str = "task"):
        sentences, X, split0 = _data(seed=3)
        self.lab = label_task(TAG, sentences)
        self.config = ProbeConfig(lambdas=LAMBDAS, control_lambda=mode, n_bootstrap=0)
        first = self._fit(X, split0, None)
        self.warm = first.warm
        self.n_fitted = int(np.isfinite(first.curve_test).any(axis=0).sum())  # λ before the early stop
        split1 = _redrawn_split(split0, 1)
        self.cold, self.warmed = self._fit(X, split1, None), self._fit(X, split1, self.warm)

    def _fit(self, X, sentence_split, warm):
        split = TaskSplit.of(self.lab, sentence_split, split_positions(sentence_split), 7)
        F = split.features(X)
        self.n_test = split.n_test
        return CategoricalStrategy(self.config).fit(F, split, self.lab, GramBasis.of(F.train), warm=warm)


@pytest.fixture(scope="module", params=["task", "own"])
def refits(request) -> _Refits:
    torch.manual_seed(0)
    return _Refits(request.param)


def _iterations(path) -> int:
    return sum(p.n_iter for p in path)


def test_the_first_fit_keeps_its_path_and_control_probes(refits):
    warm = refits.warm
    assert warm is not None and 2 <= len(warm.path) == refits.n_fitted
    assert [float(p.lam[0]) for p in warm.path] == pytest.approx(sorted(LAMBDAS, reverse=True)[:refits.n_fitted],
                                                                 rel=1e-6)
    if refits.config.control_lambda == "task":
        assert warm.control is not None and warm.control_path is None
    else:
        assert warm.control is None and len(warm.control_path) >= 2


def test_a_warm_started_refit_reaches_the_cold_refits_optimum_in_fewer_iterations(refits):
    cold, warm = refits.cold, refits.warmed
    np.testing.assert_allclose(warm.lam, cold.lam)  # the same λ chosen per layer
    for a, b in [(cold.test, warm.test), (cold.control_test, warm.control_test),
                 (cold.fixed_test, warm.fixed_test), (cold.fixed_control_test, warm.fixed_control_test)]:
        # the same strictly convex objectives, each solved to tol: at most one test word in a
        # hundred predicted differently
        assert np.mean(a != b) <= 0.01
    np.testing.assert_allclose(warm.val_score, cold.val_score, atol=0.01)
    assert _iterations(warm.warm.path) < 0.8 * _iterations(cold.warm.path)
    if refits.config.control_lambda == "task":
        assert warm.warm.control.n_iter < cold.warm.control.n_iter
    else:
        assert _iterations(warm.warm.control_path) < _iterations(cold.warm.control_path)


def test_select_logistic_starts_each_lambda_from_its_init():
    """``inits[g]`` replaces the previous λ's solution as the g-th start; a path shorter than the
    grid leaves the remaining λ to the usual warm start; ``path`` receives every fitted λ."""
    torch.manual_seed(0)
    X = torch.randn(2, 300, 5)
    y = (X[0, :, 0] + 0.5 * torch.randn(300) > 0).long() + (X[0, :, 1] > 1).long()
    Xtr, Xva, ytr, yva = X[:, :200], X[:, 200:], y[:200], y[200:]
    path: list = []
    best, val = select_logistic(Xtr, ytr, Xva, yva, 3, LAMBDAS, early_stop=None, path=path, tol=1e-6, max_iter=500)
    assert len(path) == len(LAMBDAS)
    again: list = []
    best2, val2 = select_logistic(Xtr, ytr, Xva, yva, 3, LAMBDAS, early_stop=None, inits=path[:3], path=again,
                                  tol=1e-6, max_iter=500)
    np.testing.assert_array_equal(val2, val)
    torch.testing.assert_close(best2.W, best.W, atol=1e-3, rtol=0)
    # started at their own optima, the first three λ stop at once; the rest are solved as usual
    assert [p.n_iter for p in again[:3]] == [0, 0, 0]
    assert all(p.n_iter > 0 for p in again[3:])


def test_the_suite_hands_refit_0s_probes_to_the_later_refits(monkeypatch):
    sentences, X, _ = _data(n_sent=120, seed=5)
    seen: list = []
    fit = CategoricalStrategy.fit

    def spy(self, X, split, lab, basis=None, tick=lambda n, s="": None, warm=None):
        seen.append(warm)
        return fit(self, X, split, lab, basis, tick, warm)

    monkeypatch.setattr(CategoricalStrategy, "fit", spy)
    cfg = ProbeConfig(lambdas=LAMBDAS, n_bootstrap=10, refits=3, mdl=False, cumulative=False)
    res = probes.ProbeSuite([TAG], cfg).fit(X, sentences)
    assert res.tasks["tag"].refits == 3
    assert seen[0] is None and seen[1] is not None and seen[2] is seen[1]


# ----------------------------------------------------------------------------- Task.control
def test_word_identity_has_no_control_task():
    assert TASKS["word"].control is False
    assert all(t.control for name, t in TASKS.items() if name != "word")
    cfg = ProbeConfig()
    assert strategy_for(TASKS["word"], cfg).config.control is False
    assert strategy_for(TASKS["upos"], cfg).config.control is True


def test_a_task_without_control_is_fitted_and_reported_without_one():
    sentences, X, _ = _data(n_sent=120, seed=5)
    same_as_type = Task("form_tag", "early", "categorical", TAG.fn, control=False)
    cfg = ProbeConfig(lambdas=LAMBDAS, n_bootstrap=10, refits=2, mdl=False, cumulative=False)
    res = probes.ProbeSuite([same_as_type, TAG], cfg).fit(X, sentences)
    without, with_ = res.tasks["form_tag"], res.tasks["tag"]
    assert all(x.control is None and x.fixed is None for x in without.layers)
    assert all(x.control is not None for x in with_.layers)
    # the same labels: the task's own scores do not depend on whether a control was fitted
    assert [x.score for x in without.layers] == [x.score for x in with_.layers]
    assert without.info.control is False and with_.info.control is True


def test_task_control_must_be_a_bool():
    with pytest.raises(ValueError, match="control"):
        Task("x", "early", "categorical", TAG.fn, control="no")


def test_task_info_reads_files_written_before_the_control_field():
    old = TaskInfo.from_fields(_Fields({"name": "upos", "level": "middle", "kind": "categorical",
                                        "description": ""}, "t"))
    assert old.control is True
    new = TaskInfo("word", "early", "categorical", "", control=False)
    assert TaskInfo.from_fields(_Fields(new.to_dict(), "t")) == new


def test_report_says_which_tasks_have_no_control_task():
    import dataclasses

    from probes.report import task_table
    from tests.test_probes_report_axes import planted_results

    results = planted_results()
    first = next(t for t in results.tasks if t.categorical)
    assert not any("No control task" in line for line in task_table(results, results.models[0]))
    results.tasks = [dataclasses.replace(t, control=False) if t is first else t for t in results.tasks]
    lines = task_table(results, results.models[0])
    assert f"No control task for {first.name}: its label is the word type" in lines[-1]
