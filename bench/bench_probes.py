"""Probing every (layer, task) pair: our batched torch probes vs scikit-learn per pair.

    .venv/bin/python bench/bench_probes.py                                  # random-init demo shape
    .venv/bin/python bench/bench_probes.py --model runs/demo --data runs/demo/data/probe.conllu

Features: the residual stream at every word, layers 0..n_layer, of --model (default: a
random-init GPT of the demo preset's shape, 6 blocks × 128) over --data (default: 1500 generated
treebank sentences; at most --sentences of a CoNLL-U file). Tasks: the categorical tasks of
``probes.DESIGN_TASKS`` (word, upos, phrase, subject_number, next_upos), split 70/10/20 train/validation/test
by sentence (the suite's default), features standardised on the training words. Both sides fit
the same objective on the same float32 features — multinomial logistic regression with L2 λ
(sklearn C = 1/(λ·n)), lbfgs, tol 1e-4 (sklearn's default), at most --max-iter iterations
(default 1000, so that both sides converge: at sklearn's default of 100 neither does on word
identity at λ ≤ 1e-3) — and are scored on the same test words. Two comparisons:

* **selection** (what the probing suite does for every (layer, task) pair): the λ grid of
  ``probes.ProbeConfig().lambdas``, fitted strong → weak with warm starts, best λ by validation
  accuracy, scored on test. Ours: ``probes.select_logistic`` once per task (all layers in one
  batched fit), with its early stop of the path (default) and without (the whole grid). Peer:
  ``sklearn.linear_model.LogisticRegressionCV`` per (layer, task) with the same grid (``Cs``),
  the validation words as its one fold (``PredefinedSplit``), ``refit=False`` — the same
  procedure, also warm-started along the path.
* **solver** (one λ, cold start): ``probes.fit_logistic`` once per task vs
  ``sklearn.linear_model.LogisticRegression`` per (layer, task), for each λ of --lambdas.

Same thread budget on both sides (torch.set_num_threads and threadpoolctl; default 1). Timings
are medians of alternating runs (bench/common.alternate). Also timed: the whole probing suite of
the CLI on the same features (λ grid, control tasks, MDL, cumulative probes, bootstrap). Writes
bench/results/probes.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import alternate, write_json  # noqa: E402

TASKS = ("word", "upos", "phrase", "subject_number", "next_upos")
TOL = 1e-4  # gradient tolerance of both sides (--tol)


def build(n_sentences: int, model: str | None = None, data: str | None = None, seed: int = 0):
    import hooks
    import probes
    from corpus import DEFAULT_GRAMMAR, WordTokenizer, generate_sentences, read_conllu
    from gpt_model import GPT, model_preset

    if model:
        backend = hooks.load(model)
        label = model
    else:
        tok = WordTokenizer.from_words(DEFAULT_GRAMMAR.vocabulary())
        torch.manual_seed(seed)
        backend = hooks.load(GPT(model_preset("demo", vocab_size=len(tok))).eval(), tokenizer=tok,
                             name="demo-shape-random")
        label = "demo preset shape (6 x 128), random init"
    sentences = read_conllu(data)[:n_sentences] if data else generate_sentences(n_sentences, seed=seed + 1)
    sentences = [s for s in sentences if probes.models.fits_context(backend, s)]
    feats = probes.extract(backend, sentences)  # [n_layer + 1, n_words, d_model]
    split = probes.split_sentences(sentences, (0.7, 0.1, 0.2), seed=seed)
    tasks = {}
    for name in TASKS:
        lab = probes.label_task(probes.get_task(name), sentences)
        where = split[lab.sentence]
        parts = {part: torch.from_numpy(np.nonzero(where == i)[0]) for i, part in enumerate(("tr", "va", "te"))}
        X = feats[:, torch.from_numpy(lab.rows)]
        X = probes.Standardizer.fit(X[:, parts["tr"]]).apply_(X)
        y = torch.from_numpy(lab.y)
        tasks[name] = {"K": lab.n_classes}
        for part, rows in parts.items():
            tasks[name]["X" + part] = X[:, rows].contiguous()
            tasks[name]["y" + part] = y[rows]
    return feats, sentences, tasks, label


def ours(data: dict, lam: float, max_iter: int) -> tuple[dict[str, list[float]], dict[str, int]]:
    import probes

    acc, iters = {}, {}
    for name, d in data.items():
        probe = probes.fit_logistic(d["Xtr"], d["ytr"], d["K"], lam, max_iter=max_iter, tol=TOL,
                                    threads=torch.get_num_threads())
        acc[name] = (probe.predict(d["Xte"]) == d["yte"]).double().mean(dim=1).tolist()
        iters[name] = probe.n_iter
    return acc, iters


def sklearn_per_pair(data: dict, lam: float, max_iter: int) -> tuple[dict[str, list[float]], dict[str, list[int]]]:
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    acc, iters = {}, {}
    for name, d in data.items():
        n = d["Xtr"].shape[1]
        acc[name], iters[name] = [], []
        for layer in range(d["Xtr"].shape[0]):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                clf = LogisticRegression(C=1.0 / (lam * n), max_iter=max_iter, tol=TOL)
                clf.fit(d["Xtr"][layer].numpy(), d["ytr"].numpy())
            acc[name].append(float(clf.score(d["Xte"][layer].numpy(), d["yte"].numpy())))
            iters[name].append(int(np.max(clf.n_iter_)))
    return acc, iters


def ours_selection(data: dict, lambdas: tuple[float, ...], max_iter: int, early_stop: float | None
                   ) -> tuple[dict[str, list[float]], dict[str, list[float]], dict[str, list[list[float]]]]:
    import probes

    acc, chosen, val = {}, {}, {}
    for name, d in data.items():
        probe, val_acc = probes.select_logistic(d["Xtr"], d["ytr"], d["Xva"], d["yva"], d["K"], lambdas,
                                          early_stop=early_stop, max_iter=max_iter, tol=TOL,
                                          threads=torch.get_num_threads())
        acc[name] = (probe.predict(d["Xte"]) == d["yte"]).double().mean(dim=1).tolist()
        chosen[name] = [float(f"{lam:.6g}") for lam in probe.lam.tolist()]
        val[name] = val_acc.tolist()  # [layer][λ strong → weak], NaN where the path stopped early
    return acc, chosen, val


def sklearn_selection(data: dict, lambdas: tuple[float, ...], max_iter: int
                      ) -> tuple[dict[str, list[float]], dict[str, list[float]], dict[str, list[list[float]]]]:
    """LogisticRegressionCV per (layer, task): the λ grid as Cs (weak → strong C = strong → weak
    λ, warm-started along the path), the validation words as the one fold, no refit."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import PredefinedSplit

    acc, chosen, val = {}, {}, {}
    for name, d in data.items():
        n_tr, n_va = d["Xtr"].shape[1], d["Xva"].shape[1]
        lams = sorted(lambdas, reverse=True)
        Cs = [1.0 / (lam * n_tr) for lam in lams]
        fold = PredefinedSplit(np.r_[np.full(n_tr, -1), np.zeros(n_va)])
        y = np.r_[d["ytr"].numpy(), d["yva"].numpy()]
        acc[name], chosen[name], val[name] = [], [], []
        for layer in range(d["Xtr"].shape[0]):
            X = np.concatenate([d["Xtr"][layer].numpy(), d["Xva"][layer].numpy()])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                clf = LogisticRegressionCV(Cs=Cs, cv=fold, refit=False, max_iter=max_iter, tol=TOL,
                                           l1_ratios=(0.0,), scoring="accuracy", use_legacy_attributes=False)
                clf.fit(X, y)
            acc[name].append(float((clf.predict(d["Xte"][layer].numpy()) == d["yte"].numpy()).mean()))
            chosen[name].append(lams[Cs.index(float(np.ravel(clf.C_)[0]))])
            val[name].append(np.ravel(clf.scores_[1] if isinstance(clf.scores_, dict) else clf.scores_).tolist())
    return acc, chosen, val


def _diffs(a: dict[str, list[float]], b: dict[str, list[float]]) -> tuple[dict[str, list[float]], float]:
    diffs = {name: [100 * (x - y) for x, y in zip(a[name], b[name])] for name in a}
    return diffs, max(abs(x) for v in diffs.values() for x in v)


def main(argv: list[str] | None = None) -> int:
    global TOL
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model spec (default: random-init demo-shape GPT)")
    parser.add_argument("--data", help="CoNLL-U file (default: generated treebank sentences)")
    parser.add_argument("--sentences", type=int, default=1500)
    parser.add_argument("--lambdas", type=float, nargs="+", default=[1e-2, 1e-3],
                        help="λ values of the one-λ solver comparison")
    parser.add_argument("--max-iter", type=int, default=1000, help="iteration cap on both sides (default 1000)")
    parser.add_argument("--tol", type=float, default=1e-4, help="largest gradient entry at convergence, both sides "
                        "(default 1e-4, sklearn's default)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="threads for both sides (default 1)")
    parser.add_argument("--no-suite", action="store_true", help="skip timing the whole CLI suite")
    parser.add_argument("--no-solver", action="store_true", help="skip the one-λ solver comparison")
    args = parser.parse_args(argv)
    TOL = args.tol
    from threadpoolctl import threadpool_limits

    import probes

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    feats, sentences, data, label = build(args.sentences, args.model, args.data)
    print(f"features {tuple(feats.shape)} of {label} from {len(sentences)} sentences in "
          f"{time.perf_counter() - t0:.1f} s")
    for name, d in data.items():
        print(f"  {name:<15} K={d['K']:<4} train {d['Xtr'].shape[1]:>6} validation {d['Xva'].shape[1]:>5} "
              f"test {d['Xte'].shape[1]:>5} words")
    n_pairs = sum(d["Xtr"].shape[0] for d in data.values())
    grid = tuple(probes.ProbeConfig().lambdas)

    res: dict[str, tuple] = {}
    with threadpool_limits(limits=args.threads):
        timings = alternate({
            "ours": lambda: res.__setitem__("ours", ours_selection(data, grid, args.max_iter, 1e-3)),
            "ours_whole_grid": lambda: res.__setitem__("ours_whole_grid", ours_selection(data, grid, args.max_iter, None)),
            "sklearn": lambda: res.__setitem__("sklearn", sklearn_selection(data, grid, args.max_iter)),
        }, repeats=args.repeats, warmup=0)
    selection = {"lambdas": list(grid), "seconds": timings, "pairs": n_pairs}
    sk_acc, sk_lam, sk_val = res["sklearn"]
    for key in ("ours", "ours_whole_grid"):
        acc, lam, val = res[key]
        diffs, worst = _diffs(acc, sk_acc)
        same = [abs(diffs[t][i]) for t in acc for i in range(len(acc[t])) if lam[t][i] == sk_lam[t][i]]
        other = [abs(diffs[t][i]) for t in acc for i in range(len(acc[t])) if lam[t][i] != sk_lam[t][i]]
        # validation accuracy at every λ both sides fitted: the solver's agreement, free of the tie rule
        val_diff = max(abs(100 * (a - b)) for t in val for row, sk_row in zip(val[t], sk_val[t])
                       for a, b in zip(row, sk_row) if a == a)
        selection[key] = {"speedup": timings["sklearn"] / timings[key], "accuracy": acc, "chosen_lambda": lam,
                          "validation_accuracy": val, "accuracy_difference_points": diffs,
                          "max_abs_difference_points": worst,
                          "pairs_same_lambda": len(same), "max_abs_difference_same_lambda": max(same, default=0.0),
                          "pairs_other_lambda": len(other), "max_abs_difference_other_lambda": max(other, default=0.0),
                          "max_abs_validation_difference_points": val_diff}
        print(f"λ selection over {list(grid)} ({key}): {n_pairs} (layer, task) pairs: ours {timings[key]:.1f} s, "
              f"sklearn LogisticRegressionCV {timings['sklearn']:.1f} s → {timings['sklearn'] / timings[key]:.2f}× "
              f"faster. Same λ chosen for {len(same)} pairs (largest test-accuracy difference "
              f"{max(same, default=0.0):.2f} points), another λ for {len(other)} (validation ties broken "
              f"differently; {max(other, default=0.0):.2f} points); validation accuracy at every λ fitted by both "
              f"within {val_diff:.2f} points", flush=True)
    selection["sklearn"] = {"accuracy": sk_acc, "chosen_lambda": sk_lam, "validation_accuracy": sk_val}

    runs = []
    for lam in ([] if args.no_solver else args.lambdas):
        results: dict[str, tuple] = {}
        with threadpool_limits(limits=args.threads):
            timings = alternate({"ours": lambda: results.__setitem__("ours", ours(data, lam, args.max_iter)),
                                 "sklearn": lambda: results.__setitem__("sklearn", sklearn_per_pair(data, lam, args.max_iter))},
                                repeats=args.repeats, warmup=0)
        diffs, max_diff = _diffs(results["ours"][0], results["sklearn"][0])
        speedup = timings["sklearn"] / timings["ours"]
        print(f"one λ={lam:g}, cold start: ours {timings['ours']:.1f} s, sklearn LogisticRegression "
              f"{timings['sklearn']:.1f} s → {speedup:.2f}× faster; largest accuracy difference {max_diff:.2f} "
              f"points; iterations ours {results['ours'][1]} sklearn (max per task) "
              f"{ {k: max(v) for k, v in results['sklearn'][1].items()} }", flush=True)
        runs.append({"lambda": lam, "seconds": timings, "speedup": speedup, "pairs": n_pairs,
                     "accuracy": {k: v[0] for k, v in results.items()},
                     "iterations": {k: v[1] for k, v in results.items()},
                     "accuracy_difference_points": diffs, "max_abs_difference_points": max_diff})
    payload = {
        "what": "multinomial logistic probes for every (layer, task) pair: probes (all layers of a task in one "
                "batched fit) vs sklearn per pair, same objective, data and tolerance; 'selection' = the λ grid "
                "chosen on validation (select_logistic vs LogisticRegressionCV), 'runs' = one λ, cold start",
        "features": {"shape": list(feats.shape), "model": label, "sentences": len(sentences),
                     "data": args.data or "generated treebank sentences"},
        "tasks": {name: {"classes": d["K"], "train_words": int(d["Xtr"].shape[1]),
                         "validation_words": int(d["Xva"].shape[1]), "test_words": int(d["Xte"].shape[1])}
                  for name, d in data.items()},
        "threads": args.threads, "repeats": args.repeats, "max_iter": args.max_iter, "tol": args.tol,
        "selection": selection, "runs": runs,
        "target": {"speedup": 5.0, "max_abs_difference_points": 0.5},
    }
    if not args.no_suite:
        t0 = time.perf_counter()
        suite = probes.ProbeSuite(None, probes.ProbeConfig(threads=args.threads))
        res = suite.fit(feats, sentences)
        payload["full_suite_seconds"] = time.perf_counter() - t0
        payload["full_suite_task_seconds"] = dict(res.timing_s)
        print(f"whole suite (7 tasks × {feats.shape[0]} layers: λ grid, controls, MDL, cumulative, bootstrap): "
              f"{payload['full_suite_seconds']:.1f} s")
    path = write_json("probes", payload)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
