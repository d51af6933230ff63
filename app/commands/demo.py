"""`stratascope demo` (`make demo`): the main job on the built-in treebank, stage by stage.

    stratascope demo                      # treebank → train → probe → report → dashboard
    DEMO_SERVE=0 stratascope demo         # stop before serving the dashboard
    stratascope demo --force              # redo every stage
    stratascope demo --gpt2 ~/models/gpt2 # also probe GPT-2 and show it on the Compare page
    stratascope demo --tiny --out /tmp/runs/demo   # seconds: a 2-block model on a small treebank
    stratascope demo --deep               # the same job on the deep treebank, into runs/deep-demo

1. treebank   `stratascope corpus --out RUN/data` (the training preset's size and seed)
2. train      `stratascope train --preset demo --out RUN --corpus RUN/data` (resumes an interrupted run)
3. probe      `stratascope probe --model RUN --data treebank --erase subject_number_next,upos`
              (+ its random-init twin, + GPT-2)
4. report     RUN/report.md: training against the entropy floor, agreement, the probing verdict
5. dashboard  `stratascope dashboard --runs RUN/..` on 127.0.0.1

A stage whose outputs exist is skipped, so a rerun is cheap; --force redoes them all.

--deep runs the same stages on the deep grammar (`corpus --grammar deep`: center-embedded
relatives, coordinated subjects, past tenses with auxiliaries) with the 12-block preset
`deep-demo`, probes the default tasks plus the deep ones (`--tasks deep`, 600 sentences: as
many words as the default's 1,000), and reports agreement per construction, nesting depth and
distance; its run directory is runs/deep-demo. `make demo` stays on the default grammar, so
its numbers do not change.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STAGES = ("treebank", "train", "probe", "report", "dashboard")
REPORT_FILE = "report.md"  # the demo's own summary, next to the run's files


@dataclass(frozen=True)
class DemoPlan:
    """What each stage runs; `tiny` is a seconds-long version for tests and smoke checks."""

    preset: str
    sentences: int
    treebank_seed: int
    train_args: tuple[str, ...]
    probe_args: tuple[str, ...]
    grammar: str = "default"

    @staticmethod
    def make(tiny: bool, seed: int, max_sentences: int | None, bootstrap: int | None,
             deep: bool = False) -> "DemoPlan":
        from gpt_model.presets import train_preset

        grammar = "deep" if deep else "default"
        if tiny:
            tasks = "position,embedding_depth,agreement_held" if deep else "position,upos,subject_number"
            plan = DemoPlan("smoke", 600, 0,
                            ("--steps", "20", "--batch-size", "8", "--set", "train.eval_interval=10",
                             "--set", "train.checkpoint_interval=10", "--set", "train.log_interval=5",
                             "--set", "train.eval_batches=2", *(("--set", "data.grammar=deep") if deep else ()),
                             "--no-progress"),
                            ("--max-sentences", "40", "--bootstrap", "20", "--no-mdl",
                             "--tasks", tasks), grammar)  # one task per level: a verdict
        elif deep:
            data = train_preset("deep-demo").data
            # 600 sentences of 15 words: as many words as the default demo's 1,000 of 9.3
            plan = DemoPlan("deep-demo", data.n_sentences, data.treebank_seed, (),
                            ("--max-sentences", "600", "--tasks", "deep"), grammar)
        else:
            data = train_preset("demo").data
            plan = DemoPlan("demo", data.n_sentences, data.treebank_seed, (),
                            ("--max-sentences", "1000", "--erase", "subject_number_next,upos"))
        probe_args = list(plan.probe_args)
        if max_sentences is not None:
            probe_args = _set_flag(probe_args, "--max-sentences", str(max_sentences))
        if bootstrap is not None:
            probe_args = _set_flag(probe_args, "--bootstrap", str(bootstrap))
        train_args = (*plan.train_args, "--seed", str(seed), "--set", "train.keep_checkpoints=10")
        return DemoPlan(plan.preset, plan.sentences, plan.treebank_seed, train_args, tuple(probe_args), plan.grammar)


def _set_flag(args: list[str], flag: str, value: str) -> list[str]:
    if flag in args:
        i = args.index(flag)
        return args[:i + 1] + [value] + args[i + 2:]
    return args + [flag, value]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="the main job end to end: treebank → train → probe → report → dashboard",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help="the demo's run directory (default runs/demo, with --deep runs/deep-demo; the "
                             "dashboard serves its parent)")
    parser.add_argument("--deep", action="store_true",
                        help="the deep treebank (corpus --grammar deep) and the 12-block preset deep-demo")
    parser.add_argument("--force", action="store_true", help="redo every stage, even those whose outputs exist")
    parser.add_argument("--tiny", action="store_true",
                        help="a seconds-long version (2-block model, small treebank, few probe sentences)")
    parser.add_argument("--gpt2", metavar="DIR",
                        help="a local GPT-2 (directory or cached hub name) to probe and compare; "
                             "default: env STRATASCOPE_GPT2")
    parser.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    parser.add_argument("--max-sentences", type=int, metavar="N", help="probe at most N sentences (default 1000)")
    parser.add_argument("--bootstrap", type=int, metavar="B", help="bootstrap resamples of the probes (default 1000)")
    parser.add_argument("--port", type=int, default=8501, help="dashboard port (default 8501)")
    parser.add_argument("--no-serve", action="store_true",
                        help="stop before serving the dashboard (same as DEMO_SERVE=0)")
    parser.set_defaults(func=run)


# ----------------------------------------------------------------------------- helpers
class Progress:
    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.t0 = self.start

    def stage(self, k: int, name: str, what: str) -> None:
        self.t0 = time.perf_counter()
        print(f"\n== demo {k}/{len(STAGES)}: {name} — {what}", flush=True)

    def skip(self, why: str) -> None:
        print(f"   skipped: {why} (--force redoes it)", flush=True)

    def done(self) -> None:
        now = time.perf_counter()
        print(f"   done in {now - self.t0:.1f} s (total {(now - self.start) / 60:.1f} min)", flush=True)


def _cli(argv: list[str]) -> None:
    """Run a stratascope sub-command in this process; a failure stops the demo."""
    from app.cli import CLIError, main

    print("   $ stratascope " + " ".join(argv), flush=True)
    status = main(argv)
    if status in (128 + signal.SIGINT, 128 + signal.SIGTERM):  # stopped by a signal, checkpoint saved
        print("   stopped by a signal; rerun `stratascope demo` to resume", flush=True)
        raise SystemExit(status)
    if status != 0:
        raise CLIError(f"stage `stratascope {argv[0]}` failed (exit status {status}); fix the error above and "
                       f"rerun `stratascope demo` (finished stages are skipped)")


def gpt2_source(value: str | None) -> tuple[str | None, str]:
    """The GPT-2 to use (or None) and a line saying why."""
    value = value or os.environ.get("STRATASCOPE_GPT2") or None
    if not value:
        return None, "GPT-2: not configured (pass --gpt2 DIR or set STRATASCOPE_GPT2 to add it)"
    path = Path(value).expanduser()
    if path.is_dir():
        return str(path.resolve()), f"GPT-2: {path.resolve()}"
    if "/" in value or value.startswith("."):
        return None, f"GPT-2: {value} is not a directory — left out"
    return value, f"GPT-2: {value} (from the Hugging Face cache)"


def treebank_dir(out: Path) -> Path:
    """Where the demo writes its treebank: the run's default treebank directory."""
    from gpt_model.rundir import DEFAULT_TREEBANK_DIR

    return out / DEFAULT_TREEBANK_DIR


def clean(out: Path) -> None:
    """--force: remove what the stages write (and nothing else) from the run directory."""
    from gpt_model.rundir import TOKENIZER_DIR, RunDir

    run = RunDir(out)
    for path in (treebank_dir(out), out / TOKENIZER_DIR, run.checkpoints_dir, run.probes_dir):
        shutil.rmtree(path, ignore_errors=True)
    for path in (run.config_path, run.weights_path, run.metrics_path, run.results_path, out / REPORT_FILE):
        path.unlink(missing_ok=True)


def probe_dir(out: Path) -> Path:
    from gpt_model.rundir import RunDir
    from probes.models import model_tag

    run = RunDir(out)
    return run.probe_dir(model_tag(run.name))


def probe_results_path(out: Path) -> Path:
    from probes.report import RESULTS_FILE

    return probe_dir(out) / RESULTS_FILE


def has_compare(results_path: Path) -> bool:
    try:
        results = json.loads(results_path.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return any(m.get("role") == "compare" for m in results.get("models", []))


# ----------------------------------------------------------------------------- report
def write_report(out: Path) -> Path:
    """RUN/report.md: the training result against the floor, and the probing verdict."""
    import probes
    from app.commands.train import format_summary
    from gpt_model.rundir import RunDir

    lines = [f"# stratascope demo: `{out.name}`", ""]
    results_path = RunDir(out).results_path
    if results_path.is_file():
        final = json.loads(results_path.read_text())
        lines += ["## Training", "", "```", format_summary(final, out), "```", ""]
        if "entropy_floor" in final:
            lines.append(f"Validation loss {final['val_loss']:.4f} nats/token against the treebank's entropy floor "
                         f"{final['entropy_floor']:.4f} ({final['pct_above_floor']:+.2f}%; the design target is "
                         f"within 1%).")
        if "agreement" in final:
            a = final["agreement"]
            lines.append(f"Agreement across attractors: {100 * a['accuracy']:.2f}% of {a['n_pairs']} minimal pairs "
                         f"(target ≥ 99%).")
        if "agreement_by" in final:
            lines += ["", *agreement_table(final["agreement_by"])]
        lines.append("")
    pdir = probe_dir(out)
    if probe_results_path(out).is_file():
        res = probes.load_results(pdir)
        lines += ["## Probing", "", "```", probes.summary(res), "```", "",
                  f"Full report: [`{pdir.relative_to(out)}/report.md`]({pdir.relative_to(out)}/report.md); "
                  f"figures: [`{pdir.relative_to(out)}/figures.html`]({pdir.relative_to(out)}/figures.html).", ""]
    lines += ["## Dashboard", "", f"`stratascope dashboard --runs {out.parent}` — see docs/dashboard.md.", ""]
    path = out / REPORT_FILE
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


AGREEMENT_GROUPS = (("construction", "construction"), ("nesting", "clause levels crossed"),
                    ("distance", "subject-verb distance (words)"), ("depth", "clause depth of the verb"),
                    ("attractors", "attractors in between"))


def agreement_table(by: dict[str, Any]) -> list[str]:
    """Markdown lines: agreement over every agreeing word of the deep treebank, overall and per
    tag (results.json's ``agreement_by``, from gpt_model.evaluate.agreement_breakdown)."""
    overall = by["overall"]
    lines = [f"Agreement at every agreeing verb and auxiliary: {100 * overall['accuracy']:.2f}% of "
             f"{overall['n_pairs']} minimal pairs (goal ≥ 95%).", "", "| group | value | accuracy | pairs |",
             "|---|---|---|---|"]
    for key, title in AGREEMENT_GROUPS:
        for value, cell in by.get(key, {}).items():
            lines.append(f"| {title} | {value} | {100 * cell['accuracy']:.2f}% | {cell['n_pairs']} |")
    return lines


# ----------------------------------------------------------------------------- the job
def run(args: argparse.Namespace) -> int:
    out: Path = args.out or Path("runs/deep-demo" if args.deep else "runs/demo")
    serve = not args.no_serve and os.environ.get("DEMO_SERVE", "1") not in ("0", "false", "no")
    plan = DemoPlan.make(args.tiny, args.seed, args.max_sentences, args.bootstrap, deep=args.deep)
    gpt2, gpt2_line = gpt2_source(args.gpt2)
    progress = Progress()
    print(f"stratascope demo → {out}" + (" (tiny)" if args.tiny else "") + (" (deep grammar)" if args.deep else "")
          + f"; {gpt2_line}", flush=True)
    if args.force and out.exists():
        print(f"--force: removing the demo's outputs in {out}", flush=True)
        clean(out)
    out.mkdir(parents=True, exist_ok=True)
    tb = treebank_dir(out)
    _treebank_stage(progress, plan, tb)
    _train_stage(progress, plan, out, tb)
    _probe_stage(progress, plan, out, tb, gpt2)

    # 4. report
    progress.stage(4, "report", f"{out / REPORT_FILE}")
    report = write_report(out)
    print(report.read_text(), flush=True)
    progress.done()

    # 5. dashboard
    progress.stage(5, "dashboard", f"runs under {out.parent} on http://127.0.0.1:{args.port}")
    if not serve:
        print("   not serving (DEMO_SERVE=0 / --no-serve); start it with "
              f"`stratascope dashboard --runs {out.parent}`", flush=True)
        return 0
    from app.commands.dashboard import serve as serve_dashboard

    serve_dashboard(out.parent, args.port, gpt2)  # replaces this process
    return 0


def _treebank_stage(progress: Progress, plan: DemoPlan, tb: Path) -> None:
    from corpus.treebank import is_complete_treebank

    progress.stage(1, "treebank", f"{plan.sentences:,} sentences of the built-in {plan.grammar} grammar "
                                  f"(seed {plan.treebank_seed})")
    if is_complete_treebank(tb):
        progress.skip(f"{tb}/ holds a complete treebank")
        return
    grammar = ["--grammar", plan.grammar] if plan.grammar != "default" else []
    _cli(["corpus", "--out", str(tb), "--sentences", str(plan.sentences), "--seed", str(plan.treebank_seed),
          *grammar])
    progress.done()


def _train_stage(progress: Progress, plan: DemoPlan, out: Path, tb: Path) -> None:
    from gpt_model.rundir import RunDir

    run = RunDir(out)
    progress.stage(2, "train", f"preset {plan.preset!r}")
    if run.has_final_weights() and run.results_path.is_file():
        progress.skip(f"{run.weights_path} exists")
        return
    argv = ["train", "--preset", plan.preset, "--out", str(out), "--corpus", str(tb), *plan.train_args]
    if run.latest_checkpoint() is not None:
        print("   resuming from the latest checkpoint", flush=True)
        argv.append("--resume")
    _cli(argv)
    if not run.has_final_weights():
        from app.cli import CLIError

        raise CLIError("training stopped before the end (a checkpoint was kept): rerun `stratascope demo` "
                       "to resume it")
    progress.done()


def _probe_stage(progress: Progress, plan: DemoPlan, out: Path, tb: Path, gpt2: str | None) -> None:
    from hooks.spec import Spec

    pdir, results = probe_dir(out), probe_results_path(out)
    what = "the demo model and its random-init twin" + (" and GPT-2" if gpt2 else "")
    progress.stage(3, "probe", what)
    if results.is_file() and (not gpt2 or has_compare(results)):
        progress.skip(f"{results} exists")
        return
    argv = ["probe", "--model", str(out), "--data", "treebank", "--treebank", str(tb), "--out", str(pdir),
            *plan.probe_args]
    if gpt2:
        argv += ["--compare", str(Spec("gpt2", gpt2))]
    if results.is_file():  # the demo's own results, without GPT-2: replaced by a run that adds it
        print("   replacing the results without GPT-2", flush=True)
        argv.append("--force")
    _cli(argv)
    progress.done()


def summary_numbers(out: Path) -> dict[str, Any]:
    """The headline numbers of a finished demo (for tests and scripts)."""
    from gpt_model.rundir import RunDir

    final = json.loads(RunDir(out).results_path.read_text())
    res = json.loads(probe_results_path(out).read_text())
    return {"val_loss": final.get("val_loss"), "entropy_floor": final.get("entropy_floor"),
            "verdict": res["verdict"].get("message")}
