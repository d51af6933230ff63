"""Probing every (layer, task) pair: our batched torch probes vs scikit-learn per pair.

    .venv/bin/python bench/bench_probes.py                                  # random-init demo shape
    .venv/bin/python bench/bench_probes.py --model runs/demo --data runs/demo/data/probe.conllu

Features: the residual stream at every word, layers 0..n_layer, of --model (default: a
random-init GPT of the demo preset's shape, 6 blocks × 128) over --data (default: 1500 generated
treebank sentences; at most --sentences of a CoNLL-U file). Tasks: the categorical tasks of
DESIGN §5 (word, upos, phrase, subject_number, next_upos), 80/20 train/test split by sentence.
Both sides fit the same objective on the same standardised float32 features — multinomial
logistic regression with L2 λ (sklearn C = 1/(λ·n)), lbfgs, tol 1e-4, at most 100 iterations
(sklearn's defaults) — and are scored on the same test words:

* ours: ``probes.fit_logistic`` once per task: all layers in one batched fit;
* peer: ``sklearn.linear_model.LogisticRegression`` once per (layer, task).

Same thread budget on both sides (torch.set_num_threads and threadpoolctl; default 1). Timings
are medians of alternating runs (bench/common.alternate), for each λ of --lambdas. Also timed:
the whole probing suite of the CLI on the same features (λ grid, control tasks, MDL,
cumulative probes, bootstrap). Writes bench/results/probes.json.
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
    split = probes.split_sentences(sentences, (0.8, 0.0001, 0.1999), seed=seed)
    tasks = {}
    for name in TASKS:
        lab = probes.label_task(probes.get_task(name), sentences)
        where = split[lab.sentence]
        tr, te = np.nonzero(where == 0)[0], np.nonzero(where == 2)[0]
        X = feats[:, torch.from_numpy(lab.rows)]
        X = probes.Standardizer.fit(X[:, torch.from_numpy(tr)]).apply_(X)
        tasks[name] = {"Xtr": X[:, torch.from_numpy(tr)].contiguous(), "Xte": X[:, torch.from_numpy(te)].contiguous(),
                       "ytr": torch.from_numpy(lab.y[tr]), "yte": torch.from_numpy(lab.y[te]), "K": lab.n_classes}
    return feats, sentences, tasks, label


def ours(data: dict, lam: float) -> dict[str, list[float]]:
    import probes

    acc = {}
    for name, d in data.items():
        probe = probes.fit_logistic(d["Xtr"], d["ytr"], d["K"], lam, max_iter=100, tol=1e-4,
                                    threads=torch.get_num_threads())
        acc[name] = (probe.predict(d["Xte"]) == d["yte"]).double().mean(dim=1).tolist()
    return acc


def sklearn_per_pair(data: dict, lam: float) -> dict[str, list[float]]:
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    acc = {}
    for name, d in data.items():
        n = d["Xtr"].shape[1]
        acc[name] = []
        for layer in range(d["Xtr"].shape[0]):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                clf = LogisticRegression(C=1.0 / (lam * n), max_iter=100, tol=1e-4)
                clf.fit(d["Xtr"][layer].numpy(), d["ytr"].numpy())
            acc[name].append(float(clf.score(d["Xte"][layer].numpy(), d["yte"].numpy())))
    return acc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model spec (default: random-init demo-shape GPT)")
    parser.add_argument("--data", help="CoNLL-U file (default: generated treebank sentences)")
    parser.add_argument("--sentences", type=int, default=1500)
    parser.add_argument("--lambdas", type=float, nargs="+", default=[1e-2, 1e-3])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="threads for both sides (default 1)")
    parser.add_argument("--no-suite", action="store_true", help="skip timing the whole CLI suite")
    args = parser.parse_args(argv)
    from threadpoolctl import threadpool_limits

    import probes

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    feats, sentences, data, label = build(args.sentences, args.model, args.data)
    print(f"features {tuple(feats.shape)} of {label} from {len(sentences)} sentences in "
          f"{time.perf_counter() - t0:.1f} s")
    for name, d in data.items():
        print(f"  {name:<15} K={d['K']:<4} train {d['Xtr'].shape[1]:>6} test {d['Xte'].shape[1]:>5} words")
    runs = []
    for lam in args.lambdas:
        results: dict[str, dict] = {}
        with threadpool_limits(limits=args.threads):
            timings = alternate({"ours": lambda: results.__setitem__("ours", ours(data, lam)),
                                 "sklearn": lambda: results.__setitem__("sklearn", sklearn_per_pair(data, lam))},
                                repeats=args.repeats, warmup=0)
        diffs = {name: [100 * (a - b) for a, b in zip(results["ours"][name], results["sklearn"][name])]
                 for name in TASKS}
        max_diff = max(abs(x) for v in diffs.values() for x in v)
        speedup = timings["sklearn"] / timings["ours"]
        n_pairs = sum(len(v) for v in diffs.values())
        print(f"λ={lam:g}: {n_pairs} (layer, task) pairs: ours {timings['ours']:.1f} s, sklearn "
              f"{timings['sklearn']:.1f} s → {speedup:.2f}× faster; largest accuracy difference {max_diff:.2f} "
              f"points", flush=True)
        runs.append({"lambda": lam, "seconds": timings, "speedup": speedup, "pairs": n_pairs,
                     "accuracy": results, "accuracy_difference_points": diffs, "max_abs_difference_points": max_diff})
    payload = {
        "what": "multinomial logistic probes for every (layer, task) pair: probes.fit_logistic (all layers of a "
                "task in one batched fit) vs sklearn LogisticRegression per pair, same objective and data",
        "features": {"shape": list(feats.shape), "model": label, "sentences": len(sentences),
                     "data": args.data or "generated treebank sentences"},
        "tasks": {name: {"classes": d["K"], "train_words": int(d["Xtr"].shape[1]), "test_words": int(d["Xte"].shape[1])}
                  for name, d in data.items()},
        "threads": args.threads, "repeats": args.repeats, "runs": runs,
        "target": {"speedup": 5.0, "max_abs_difference_points": 0.5},
    }
    if not args.no_suite:
        t0 = time.perf_counter()
        suite = probes.ProbeSuite(None, probes.ProbeConfig(threads=args.threads))
        res = suite.fit(feats, sentences)
        payload["full_suite_seconds"] = time.perf_counter() - t0
        payload["full_suite_task_seconds"] = {k: v for k, v in res["timing_s"].items()}
        print(f"whole suite (7 tasks × {feats.shape[0]} layers: λ grid, controls, MDL, cumulative, bootstrap): "
              f"{payload['full_suite_seconds']:.1f} s")
    path = write_json("probes", payload)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
