"""`stratascope probe`: layer-wise probes with controls, expected layers and the hierarchy verdict.

    stratascope probe --model runs/demo --data treebank
    stratascope probe --model runs/demo --data ../shared/data/ud_english_ewt/en_ewt-ud-dev.conllu
    stratascope probe --model runs/demo --data treebank --compare gpt2:/models/gpt2 --tasks upos,depth
    stratascope probe --model runs/demo --data treebank --erase subject_number_next,upos
    stratascope probe --list-tasks

--data treebank is the probe split (probe.conllu) of the built-in treebank: --treebank DIR if
given (an error when DIR has none), else the treebank the run was trained on (its config.json
"data" section, by default RUN/data), else data/treebank/ (generated there, 20,000 sentences,
seed 0, when missing).

--erase CONCEPTS also runs causal erasure on the model and its random-init twin: each concept (a
categorical task) is erased at every layer (LEACE, or --erase-method inlp) on the held-out
sentences, against a random subspace of the same rank (--erase-random draws); see docs/probes.md.

Writes results.json, results.csv, figures.html (standalone, works offline) and report.md to
--out (default: runs/NAME/probes/MODEL-TAG/, with "@DATA" appended to the tag for a CoNLL-U file).
Results already there that were made with other settings (tasks, data and its contents,
configuration, models and their weights) are not replaced without --force: the command stops
before probing and names what differs. A rerun with the same settings replaces them. A --store
built from another model or other sentences is refused before any work (rebuilt with --force).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    from hooks.spec import SPEC_HELP

    parser = subparsers.add_parser(
        "probe", help="fit layer-wise probes (with controls) and report the early/middle/late verdict",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", metavar="SPEC", help=SPEC_HELP)
    parser.add_argument("--data", default="treebank", metavar="treebank|FILE.conllu",
                        help="'treebank' (probe split of the built-in treebank) or a CoNLL-U file (default treebank)")
    parser.add_argument("--tasks", nargs="+", metavar="TASK",
                        help="tasks to probe (names or comma-separated; 'design' = the seven of the design's task "
                             "table; default: those and subject_number_next)")
    parser.add_argument("--task-file", action="append", default=[], metavar="FILE.py",
                        help="a Python file that defines extra tasks with @probes.task (repeatable)")
    parser.add_argument("--compare", nargs="+", default=[], metavar="SPEC", help="more models probed side by side")
    parser.add_argument("--seeds", nargs="+", default=[], metavar="SPEC",
                        help="other training seeds of --model (the same preset): each is probed, and the verdict is "
                             "also given across all of them with the seed as the unit")
    parser.add_argument("--out", metavar="DIR", help="output directory (default runs/NAME/probes/MODEL-TAG/)")
    parser.add_argument("--force", action="store_true",
                        help="replace results in --out that were made with other settings (data, models' "
                             "weights, tasks, configuration), and rebuild --store activation stores built from "
                             "another model or other sentences")
    parser.add_argument("--no-twin", action="store_true", help="skip the random-init twin of --model")
    parser.add_argument("--twin-seed", type=int, default=0, help="seed of the random-init twin (default 0)")
    parser.add_argument("--treebank", metavar="DIR", help="treebank directory for --data treebank")
    parser.add_argument("--max-sentences", type=int, metavar="N", help="probe at most the first N sentences")
    parser.add_argument("--seed", type=int, default=0, help="split, control task and bootstrap seed (default 0)")
    parser.add_argument("--bootstrap", type=int, default=1000, metavar="B", help="bootstrap resamples (default 1000)")
    parser.add_argument("--expected", choices=["depth", "anchored", "tenney", "mdl"], default="depth",
                        help="expected layer the verdict compares (default depth: the depth of what is gained after "
                             "the embeddings; anchored is lexical-weighted; see docs/probes.md)")
    parser.add_argument("--refits", type=int, default=3, metavar="R",
                        help="fits per model: each further one re-draws the train/validation split and the MDL "
                             "block order; every interval and the verdict include the spread between them "
                             "(default 3; 1 = intervals from the test sentences alone)")
    parser.add_argument("--control-lambda", choices=["task", "own"], default="task",
                        help="λ of the control task's probe: 'task' (the λ its task chose at that layer: matched "
                             "complexity, the default) or 'own' (its own λ path: a conservative bound)")
    parser.add_argument("--no-mdl", action="store_true", help="skip the MDL online codes")
    parser.add_argument("--no-control", action="store_true", help="skip the control tasks")
    parser.add_argument("--no-cumulative", action="store_true",
                        help="skip the cumulative probes (no anchored or Tenney expected layers; the depth and "
                             "mdl verdicts remain, from the categorical tasks' MDL codes)")
    parser.add_argument("--erase", nargs="+", metavar="CONCEPT",
                        help="erase these categorical tasks (names or comma-separated) at every layer of the model "
                             "and its twin, and measure agreement and loss against a random-subspace control")
    parser.add_argument("--erase-method", choices=["leace", "inlp"],
                        help="eraser for --erase (default leace)")
    parser.add_argument("--erase-random", type=int, metavar="N",
                        help="random-subspace draws of the erasure control, with --erase (default 5, at most 100: "
                             "each draw costs a forward pass over the held-out sentences per layer and concept, and "
                             "the probes refitted after every draw are held in memory together)")
    parser.add_argument("--device", default="cpu", help="torch device for the model and the probes (default cpu)")
    parser.add_argument("--threads", type=int, metavar="N", help="torch threads for the probe fits (default: auto)")
    parser.add_argument("--batch-size", type=int, default=32, help="sentences per forward pass (default 32)")
    parser.add_argument("--store", metavar="DIR",
                        help="keep activations in hooks.ActivationStore directories under DIR (float16 memmaps, "
                             "streamed a task at a time; reused on a rerun)")
    parser.add_argument("--max-memory", type=float, metavar="GB",
                        help="most GiB one model's float32 features may take in memory; above it they are streamed "
                             "as float16 memmaps from a temporary activation store (default: no limit)")
    parser.add_argument("--allow-nonfinite", action="store_true",
                        help="load models whose weights hold NaN/inf (activations must still be finite)")
    parser.add_argument("--list-tasks", action="store_true", help="list the known tasks and exit")
    parser.add_argument("--quiet", action="store_true", help="print only the summary")
    parser.set_defaults(func=run)


def _load_task_files(paths: list[str]) -> None:
    """Run each task file; a syntax error or an exception in it → ValueError naming the file
    and the line. A file may not replace a built-in task, nor a task another of the files
    defines (a file given twice runs once)."""
    import runpy
    import traceback

    from probes.tasks import TASKS, BuiltinTaskError

    defined: dict[str, str] = {}  # task name → FILE:LINE of its definition
    done: set[Path] = set()
    for p in paths:
        path = Path(p)
        if not path.is_file():
            raise FileNotFoundError(f"no task file at {path}")
        if path.resolve() in done:
            continue
        done.add(path.resolve())
        before = dict(TASKS)
        try:
            runpy.run_path(str(path), run_name="stratascope_tasks")
        except SyntaxError as err:
            raise ValueError(f"{path}:{err.lineno}: syntax error in the task file: {err.msg}") from None
        except Exception as err:  # noqa: BLE001 - any error of user code, reported in one line
            here = [f for f in traceback.extract_tb(err.__traceback__) if Path(f.filename) == path.resolve()
                    or f.filename == str(path)]
            line = here[-1].lineno if here else "?"
            if isinstance(err, BuiltinTaskError):
                raise ValueError(f"{path}:{line}: {err}") from None
            raise ValueError(f"{path}:{line}: the task file raised {type(err).__name__}: {err}") from None
        for name, t in TASKS.items():
            if before.get(name) is t:
                continue
            code = getattr(t.fn, "__code__", None)
            where = f"{path}:{code.co_firstlineno if code is not None else '?'}"
            if name in defined:
                raise ValueError(f"{where}: task {name!r} is already defined by {defined[name]}: two --task-file "
                                 f"files cannot define one task; rename one of them")
            defined[name] = where


def _check_dir_option(path: str | Path | None, flag: str) -> None:
    """A directory option must not name a file, nor lie under one, and must be writable
    (checked before any work, creating nothing)."""
    if path is None:
        return
    path = Path(path)
    existing = path
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        where = "is a file" if existing == path else f"is under the file {existing}"
        raise ValueError(f"{flag} {path} {where}, not a directory")
    if existing.is_dir():
        _check_writable(path, existing, flag)


def _check_writable(path: Path, existing: Path, flag: str) -> None:
    """Create and remove a file in ``existing`` (``path``, or the nearest directory above it,
    where its directories would be made): the one sure test (modes, ACLs, read-only mounts)."""
    import os
    import tempfile

    try:
        fd, name = tempfile.mkstemp(prefix=".stratascope-write-check-", dir=existing)
    except OSError as err:
        where = "" if existing == path else f" (cannot create it in {existing})"
        raise ValueError(f"{flag} {path} is not writable{where}: {err.strerror or err}; "
                         f"choose a writable {flag}") from None
    os.close(fd)
    os.unlink(name)


def default_out(model: str, data: str, tag: str) -> Path:
    """runs/NAME/probes/TAG for a run (TAG@STEM for a CoNLL-U file), else runs/TAG/probes/TAG."""
    from gpt_model.rundir import RUNS_ROOT, RunDir
    from hooks.spec import parse_spec

    if str(data) != "treebank":
        tag = f"{tag}@{Path(data).stem}"
    run = parse_spec(model).run_dir()
    return (run or RunDir(RUNS_ROOT / tag)).probe_dir(tag)


def _check_numbers(args: argparse.Namespace) -> None:
    if args.max_memory is not None and not args.max_memory > 0:
        raise ValueError(f"--max-memory must be > 0 (GiB), got {args.max_memory}")
    from probes.config import MAX_REFITS

    if not 1 <= args.refits <= MAX_REFITS:
        raise ValueError(f"--refits must be in [1, {MAX_REFITS}] (each refit fits every task again), got {args.refits}")
    for flag in ("bootstrap", "batch_size", "max_sentences", "threads", "erase_random"):
        value = getattr(args, flag)
        if value is not None and value < (0 if flag == "bootstrap" else 1):
            raise ValueError(f"--{flag.replace('_', '-')} must be {'>= 0' if flag == 'bootstrap' else '>= 1'}, got {value}")
    for flag, what in (("erase_method", "the eraser"), ("erase_random", "the random draws of the erasure control")):
        if getattr(args, flag) is not None and not args.erase:
            raise ValueError(f"--{flag.replace('_', '-')} {getattr(args, flag)} given without --erase: it sets {what}; "
                             f"add --erase CONCEPT or leave it out")
    if args.erase_random is not None:
        from probes.erase import MAX_RANDOM_DRAWS

        if args.erase_random > MAX_RANDOM_DRAWS:
            raise ValueError(f"--erase-random must be at most {MAX_RANDOM_DRAWS} (each draw costs a forward pass over "
                             f"the held-out sentences per layer and concept), got {args.erase_random}")


def run(args: argparse.Namespace) -> int:
    import probes
    from probes.models import check_device

    _load_task_files(args.task_file)
    if args.list_tasks:
        for t in probes.TASKS.values():
            default = "*" if t.name in probes.DEFAULT_TASKS else " "
            print(f"{default} {t.name:<22} {t.level:<7} {t.kind:<12} {t.description}")
        print("(* = default)")
        return 0
    if not args.model:
        raise ValueError("--model is required (e.g. --model runs/demo)")
    _check_numbers(args)
    tasks = None
    if args.tasks:
        tasks = [name.strip() for item in args.tasks for name in item.split(",") if name.strip()]
    tasks = probes.resolve_tasks(tasks)  # unknown names fail here, before any model is loaded
    erasure = None
    if args.erase:
        from probes.erase import DEFAULT_RANDOM_DRAWS
        from probes.run import Erasure

        concepts = [name.strip() for item in args.erase for name in item.split(",") if name.strip()]
        n_random = DEFAULT_RANDOM_DRAWS if args.erase_random is None else args.erase_random
        erasure = Erasure.of(concepts, args.erase_method or "leace", n_random)
    check_device(args.device)
    _check_dir_option(args.out, "--out")
    _check_dir_option(args.store, "--store")
    log = (lambda msg: None) if args.quiet else (lambda msg: print(msg, flush=True))
    config = probes.ProbeConfig(seed=args.seed, n_bootstrap=args.bootstrap, expected=args.expected,
                                mdl=not args.no_mdl, control=not args.no_control,
                                cumulative=not args.no_cumulative, device=args.device, threads=args.threads,
                                refits=args.refits, control_lambda=args.control_lambda)
    # the models first: a missing one fails before any treebank is read or generated
    models = probes.load_models(args.model, args.compare, twin=not args.no_twin, twin_seed=args.twin_seed,
                                device=args.device, allow_nonfinite=args.allow_nonfinite, seeds=args.seeds)
    if erasure is not None:
        from probes.run import check_erasure_models

        check_erasure_models(models)
    out = Path(args.out) if args.out else default_out(args.model, args.data,
                                                      probes.model_tag(models[0].backend.metadata.name))
    _check_dir_option(out, "--out")
    sentences, source = probes.load_data(args.data, args.model, treebank_dir=args.treebank,
                                         max_sentences=args.max_sentences, log=log)
    log(f"data: {source['path']} ({len(sentences)} sentences)")
    if not args.force:
        probes.check_overwrite(out, probes.planned_settings(models, tasks, source, config, erasure))
    results = probes.probe_models(models, sentences, tasks, config, store_dir=args.store,
                                  batch_size=args.batch_size, data_info=source, log=log, erasure=erasure,
                                  progress=not args.quiet,
                                  max_memory=None if args.max_memory is None else args.max_memory * 2**30,
                                  rebuild_stores=args.force)
    paths = probes.write_outputs(results, out)
    print(probes.summary(results))
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    sys.stdout.flush()
    return 0
