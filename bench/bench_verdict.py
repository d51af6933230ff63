"""Does the hierarchy verdict recover a planted order, and how often does it call an unordered
model ordered? For every expected-layer definition (``DEFINITIONS``).

    .venv/bin/python bench/bench_verdict.py             # 20 draws per scenario + 20 random-init GPTs
    .venv/bin/python bench/bench_verdict.py --quick     # 3 + 3 on small data: checks the script

Planted (``probes.planted``, L = --layers): three properties (early, middle, late) written into a
synthetic residual stream at known layers, in three scenarios —

* ``ordered``: early at 0 (purely lexical, 8 classes), middle at ⌊L/2⌋, late at L−1 with half of
  its words labelled by their form (the lexical confound): the verdict should hold;
* ``reversed``: middle written at L−1 but 80 % lexical, late at ⌊L/2⌋ (10 % lexical): early <
  late < middle in depth, so a verdict that holds is a false positive;
* ``flat``: all three at ⌊L/2⌋, lexical shares 0.5 / 0.25 / 0: no order in depth.

Each draw (seed = draw index, for the data and the probe run alike) is one
``probes.ProbeSuite(tasks, ProbeConfig(...)).fit`` with --refits fits (default: the probe
command's); its ``verdicts`` hold the verdict under every definition (``depth``, the default,
and anchored, Tenney, MDL) from the same fits (cumulative probes and MDL codes on). Recorded per
draw and definition: each property's expected layer, the verdict (holds, p_order, the pairs with
their effect sizes, the levels compared); per draw each property's lexical share.

Null: --null-models random-init GPTs (``gpt_model.GPT``, --null-shape, seed = draw index),
each probed with ``probes.DEFAULT_TASKS`` on --null-sentences sentences of the built-in treebank
grammar (``corpus.generate_sentences``, seed 1000 + draw): no order was planted, so a verdict
that holds is a false positive.

Goals (issue 20): recover the planted order (``holds`` True on ``ordered``) in ≥ 95 % of draws;
call an unordered model ordered in ≤ 5 % (``reversed``, ``flat``, random-init). A verdict that
is "incomplete" (``holds`` None: a middle or late level without a defined expected layer) counts
as neither: it is not a claim that the order holds.

Control tasks are off (``control=False, mdl_control=False``): they enter no expected layer and
no verdict, and would double the time. Everything runs on one thread (--threads). Progress on
stderr; the table on stdout; the JSON (settings, machine, every draw) in
bench/results/verdict.json (verdict_quick.json with --quick).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from bench.common import write_json  # noqa: E402

RECOVERY_GOAL = 0.95  # fraction of ordered draws whose verdict holds
FALSE_POSITIVE_GOAL = 0.05  # fraction of unordered draws whose verdict holds
NULL = "random-init"


@dataclass(frozen=True)
class Definition:
    """An expected-layer definition as the benchmark reads it: a task's expected layer and the
    model's verdict under it. Adding a definition is one entry in ``DEFINITIONS``."""

    name: str
    expected: Callable[[Any], float | None] | None = None  # TaskResult → value; default: getattr
    verdict: Callable[[Any], Any] | None = None  # ModelFit → Verdict | None; default: fit.verdicts[name]

    def expected_of(self, task: Any) -> float | None:
        if self.expected is not None:
            return self.expected(task)
        e = task.expected_layer
        return None if e is None else getattr(e, self.name, None)

    def verdict_of(self, fit: Any) -> Any:
        return self.verdict(fit) if self.verdict is not None else fit.verdicts.get(self.name)


DEFINITIONS: list[Definition] = [Definition("depth"), Definition("anchored"), Definition("tenney"), Definition("mdl")]


# ----------------------------------------------------------------------------- one fit
def _config(seed: int, args: argparse.Namespace) -> Any:
    import probes

    return probes.ProbeConfig(seed=seed, n_bootstrap=args.bootstrap, control=False, mdl_control=False,
                              cumulative=True, mdl=True, threads=args.threads, refits=args.refits)


def _record(fit: Any) -> dict[str, Any]:
    """Per definition: every task's expected layer and the verdict (holds, p_order, pairs)."""
    out: dict[str, Any] = {}
    for d in DEFINITIONS:
        v = d.verdict_of(fit)
        out[d.name] = {
            "expected": {name: d.expected_of(r) for name, r in fit.tasks.items() if r.skipped is None},
            "holds": None if v is None else v.holds,
            "p_order": None if v is None else v.p_order,
            "levels": {} if v is None else {lv: x.mean for lv, x in v.levels.items()},
            "pairs": [] if v is None else [{"lower": p.lower, "upper": p.upper, "p_in_order": p.p_in_order,
                                            "difference": p.difference, "difference_ci": list(p.difference_ci),
                                            "ok": p.ok} for p in v.pairs],
            "compared": [] if v is None else list(v.compared),
        }
    out["lexical_share"] = {name: r.lexical_share.value if r.lexical_share else None
                            for name, r in fit.tasks.items() if r.skipped is None}
    return out


def planted_draw(scenario: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    import probes
    from probes import planted

    build, _ = planted.SCENARIOS[scenario]
    spec = build(args.layers, n_sentences=args.sentences, words_per_sentence=args.words)
    sentences, features, tasks = planted.make_planted(spec, seed)
    t0 = time.perf_counter()
    fit = probes.ProbeSuite(tasks, _config(seed, args)).fit(features, sentences)
    return {"seed": seed, "fit_s": time.perf_counter() - t0, **_record(fit)}


def null_draw(seed: int, args: argparse.Namespace) -> dict[str, Any]:
    import hooks
    import probes
    from corpus import DEFAULT_GRAMMAR, WordTokenizer, generate_sentences
    from gpt_model import GPT, GPTConfig

    n_layer, d_model, n_head = args.null_shape
    tok = WordTokenizer.from_words(DEFAULT_GRAMMAR.vocabulary())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = GPT(GPTConfig(n_layer=n_layer, d_model=d_model, n_head=n_head, vocab_size=len(tok),
                              context_len=64)).eval()
    backend = hooks.load(model, tokenizer=tok, name=f"random-init-{seed}")
    sentences = [s for s in generate_sentences(args.null_sentences, seed=1000 + seed)
                 if probes.models.fits_context(backend, s)]
    t0 = time.perf_counter()
    features = probes.extract(backend, sentences)
    fit = probes.ProbeSuite(None, _config(seed, args)).fit(features, sentences)
    return {"seed": seed, "n_sentences": len(sentences), "fit_s": time.perf_counter() - t0, **_record(fit)}


# ----------------------------------------------------------------------------- summary
def _rate(draws: list[dict[str, Any]], name: str, value: Any) -> float:
    return sum(d[name]["holds"] is value for d in draws) / len(draws)


def _pair_ok(draws: list[dict[str, Any]], name: str, lower: str, upper: str) -> float:
    """Fraction of draws where ``lower < upper`` is in order in ≥ threshold of the resamples."""
    ok = [any(p["ok"] for p in d[name]["pairs"] if (p["lower"], p["upper"]) == (lower, upper)) for d in draws]
    return sum(ok) / len(draws)


def _spread(values: list[float | None]) -> dict[str, Any]:
    defined = [v for v in values if v is not None]
    return {"mean": statistics.fmean(defined) if defined else None,
            "sd": statistics.stdev(defined) if len(defined) > 1 else None,
            "n_defined": len(defined), "n": len(values)}


def summarise(results: dict[str, list[dict[str, Any]]], specs: dict[str, Any]) -> dict[str, Any]:
    """Per definition: the verdict rates per scenario, the goals met; per scenario and property:
    the recovered expected layer (mean, SD over draws) against the planted one."""
    from probes import planted

    out: dict[str, Any] = {"definitions": {}, "expected_layers": {}}
    for d in DEFINITIONS:
        rates = {sc: {"holds": _rate(draws, d.name, True), "does_not_hold": _rate(draws, d.name, False),
                      "incomplete": _rate(draws, d.name, None),
                      "middle_lt_late_ok": _pair_ok(draws, d.name, "middle", "late")}
                 for sc, draws in results.items()}
        goals = {}
        for sc, r in rates.items():
            ordered = sc != NULL and planted.SCENARIOS[sc][1]
            goals[sc] = r["holds"] >= RECOVERY_GOAL if ordered else r["holds"] <= FALSE_POSITIVE_GOAL
        out["definitions"][d.name] = {"rates": rates, "meets": goals, "meets_all": all(goals.values())}
    for sc, spec in specs.items():
        out["expected_layers"][sc] = {
            p.name: {"level": p.level, "planted_layer": p.layer, "lexical": p.lexical,
                     **{d.name: _spread([x[d.name]["expected"].get(p.name) for x in results[sc]])
                        for d in DEFINITIONS}}
            for p in spec.properties}
    return out


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def table(summary: dict[str, Any], scenarios: list[str]) -> str:
    """Markdown: the verdict rates with the goals; the recovered expected layers."""
    from probes import planted

    head = ["definition"]
    for sc in scenarios:
        goal = (f"≥ {_pct(RECOVERY_GOAL)}" if sc != NULL and planted.SCENARIOS[sc][1]
                else f"≤ {_pct(FALSE_POSITIVE_GOAL)}")
        head.append(f"{sc}: holds (goal {goal})")
    head += ["middle < late ok, per scenario", "meets all goals"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, d in summary["definitions"].items():
        cells = [name]
        for sc in scenarios:
            r = d["rates"][sc]
            inc = f" ({_pct(r['incomplete'])} incomplete)" if r["incomplete"] else ""
            cells.append(f"{_pct(r['holds'])}{inc} {'✓' if d['meets'][sc] else '✗'}")
        cells.append(" / ".join(_pct(d["rates"][sc]["middle_lt_late_ok"]) for sc in scenarios))
        cells.append("yes" if d["meets_all"] else "no")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "| scenario | property | planted layer | lexical | "
              + " | ".join(f"{d.name} mean ± SD" for d in DEFINITIONS) + " |",
              "|" + "---|" * (4 + len(DEFINITIONS))]
    for sc, props in summary["expected_layers"].items():
        for name, p in props.items():
            cells = [sc, name, str(p["planted_layer"]), f"{p['lexical']:g}"]
            for d in DEFINITIONS:
                s = p[d.name]
                if s["mean"] is None:
                    cells.append("– (undefined)")
                    continue
                sd = "" if s["sd"] is None else f" ± {s['sd']:.2f}"
                undef = "" if s["n_defined"] == s["n"] else f" ({s['n'] - s['n_defined']}/{s['n']} undefined)"
                cells.append(f"{s['mean']:.2f}{sd}{undef}")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- main
def _shape(text: str) -> tuple[int, int, int]:
    try:
        n_layer, d_model, n_head = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LAYERSxWIDTHxHEADS, got {text!r}") from None
    if d_model % n_head:
        raise argparse.ArgumentTypeError(f"width {d_model} is not divisible by {n_head} heads")
    return n_layer, d_model, n_head


def _progress(what: str, i: int, n: int, draw: dict[str, Any], t0: float) -> None:
    holds = " ".join(f"{d.name}={draw[d.name]['holds']}" for d in DEFINITIONS)
    print(f"[{time.perf_counter() - t0:7.1f} s] {what} {i + 1}/{n} (seed {draw['seed']}): {holds} "
          f"({draw['fit_s']:.1f} s)", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    from probes import planted

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--draws", type=int, default=20, help="draws per planted scenario (default 20)")
    ap.add_argument("--null-models", type=int, default=20, help="random-init GPTs (default 20)")
    ap.add_argument("--scenarios", default=",".join(planted.SCENARIOS),
                    help=f"comma-separated subset of {','.join(planted.SCENARIOS)}")
    ap.add_argument("--layers", type=int, default=6, help="blocks of the planted models (default 6)")
    ap.add_argument("--sentences", type=int, default=300, help="sentences per planted draw (default 300)")
    ap.add_argument("--words", type=int, default=10, help="words per planted sentence (default 10)")
    ap.add_argument("--null-shape", type=_shape, default=(6, 64, 4),
                    help="random-init GPT shape LAYERSxWIDTHxHEADS (default 6x64x4)")
    ap.add_argument("--null-sentences", type=int, default=300,
                    help="treebank sentences per random-init model (default 300)")
    ap.add_argument("--bootstrap", type=int, default=1000, help="resamples per fit (default 1000, as probe's)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--refits", type=int, default=None,
                    help="fits per draw (default: ProbeConfig's, as probe's --refits)")
    ap.add_argument("--quick", action="store_true",
                    help="3 draws, 3 random-init models, 100 sentences each, 200 resamples: checks the script")
    args = ap.parse_args(argv)
    if args.refits is None:
        import probes

        args.refits = probes.ProbeConfig().refits
    if args.quick:
        args.draws, args.null_models, args.sentences, args.null_sentences, args.bootstrap = 3, 3, 100, 100, 200
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = sorted(set(scenarios) - set(planted.SCENARIOS))
    if unknown:
        raise SystemExit(f"unknown scenario(s) {unknown}; choose from {', '.join(planted.SCENARIOS)}")
    torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    specs = {sc: planted.SCENARIOS[sc][0](args.layers, n_sentences=args.sentences, words_per_sentence=args.words)
             for sc in scenarios}
    results: dict[str, list[dict[str, Any]]] = {}
    for sc in scenarios:
        results[sc] = []
        for i in range(args.draws):
            results[sc].append(planted_draw(sc, i, args))
            _progress(sc, i, args.draws, results[sc][-1], t0)
    if args.null_models:
        results[NULL] = []
        for i in range(args.null_models):
            results[NULL].append(null_draw(i, args))
            _progress(NULL, i, args.null_models, results[NULL][-1], t0)
    wall = time.perf_counter() - t0
    summary = summarise(results, specs)
    columns = scenarios + ([NULL] if args.null_models else [])
    text = table(summary, columns)
    print(text)
    print(f"\n{wall / 60:.1f} min on {args.threads} thread(s)")
    payload = {
        "what": "hierarchy verdict on planted hierarchies (probes.planted) and random-init GPTs, per expected-layer "
                "definition: the fraction of draws whose verdict holds (goal ≥ 95% on 'ordered', ≤ 5% elsewhere) "
                "and the recovered expected layer of each planted property",
        "settings": {"draws": args.draws, "null_models": args.null_models, "layers": args.layers,
                     "sentences": args.sentences, "words_per_sentence": args.words,
                     "null_shape": list(args.null_shape), "null_sentences": args.null_sentences,
                     "null_tasks": "probes.DEFAULT_TASKS", "bootstrap": args.bootstrap, "threads": args.threads,
                     "probe_config": _config(0, args).to_dict() | {"seed": "draw index"},
                     "definitions": [d.name for d in DEFINITIONS], "quick": args.quick},
        "specs": {sc: _spec_dict(spec) for sc, spec in specs.items()},
        "goals": {"recovery": RECOVERY_GOAL, "false_positive": FALSE_POSITIVE_GOAL},
        "summary": summary, "table": text, "wall_s": wall, "draws": results,
    }
    path = write_json("verdict_quick" if args.quick else "verdict", payload)
    print(f"wrote {path}")
    return 0


def _spec_dict(spec: Any) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(spec)


if __name__ == "__main__":
    sys.exit(main())
