"""`stratascope train`: train a GPT from a preset, a JSON config and command-line overrides.

    stratascope train --preset demo --out runs/demo
    stratascope train --preset deep --out runs/deep-post --set model.ln_placement=post --set train.warmup_steps=0
    stratascope train --config my.json --out runs/x --steps 500 --lr 1e-3
    stratascope train --out runs/demo --resume                 # continue from the latest checkpoint
    torchrun --nproc_per_node 2 -m app.cli train --preset demo --out runs/demo-ddp

Precedence, lowest first: preset, --config, the individual flags, --set.

One process writes a run directory at a time: a second `train` on the same --out (or a
--resume during a run) fails at once naming the writer's PID. SIGINT / SIGTERM finish the
step, save a checkpoint and exit with status 130 / 143 (128 + the signal's number); before the
first step finished there is nothing to save, and they stop at once with the same status.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from corpus.textio import read_json
from gpt_model.presets import TRAIN_PRESETS, train_preset
from gpt_model.run_config import RunConfig
from gpt_model.rundir import RunDir


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a GPT (presets: " + ", ".join(TRAIN_PRESETS) + ")",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--preset", choices=list(TRAIN_PRESETS),
                        help="training preset; default 'demo' (or the run's own config with --resume)")
    parser.add_argument("--config", metavar="FILE", help="JSON with 'model' / 'train' / 'data' sections")
    parser.add_argument("--out", metavar="DIR", help="run directory (default runs/PRESET)")
    parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                        help="override any field, e.g. --set model.n_layer=8 --set train.lr=1e-3 (repeatable)")
    g = parser.add_argument_group("shortcuts for common fields")
    g.add_argument("--data", metavar="treebank|FILE",
                   help="'treebank' (the built-in treebank) or a text file, one document per line")
    g.add_argument("--corpus", metavar="DIR",
                   help="treebank directory (generated there when missing; default RUN/data)")
    g.add_argument("--tokenizer", choices=["word", "bpe"])
    g.add_argument("--steps", type=int, help="train.max_steps")
    g.add_argument("--batch-size", type=int, help="train.batch_size (rows per rank and micro-step)")
    g.add_argument("--grad-accum", type=int, help="train.grad_accum_steps")
    g.add_argument("--lr", type=float, help="train.lr (peak)")
    g.add_argument("--seed", type=int, help="train.seed")
    g.add_argument("--device", help="auto | cpu | cuda | cuda:N (default auto)")
    g.add_argument("--threads", type=int, help="train.num_threads (CPU threads per process; 0: default)")
    g.add_argument("--compile", action="store_true", default=None, help="torch.compile the model")
    g.add_argument("--activation-checkpointing", action="store_true", default=None)
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def build_config(args: argparse.Namespace) -> tuple[RunConfig, Path]:
    """The RunConfig and run directory the arguments describe."""
    if args.out is None and args.resume and not args.preset:
        raise ValueError("--resume needs --out (the run directory to continue)")
    preset = args.preset or "demo"
    out = Path(args.out or f"runs/{preset}")
    run = RunDir(out)
    if args.preset:
        config = train_preset(args.preset)
    elif args.resume and run.config_path.is_file():
        config = RunConfig.from_dict(run.read_config())
    else:
        config = train_preset(preset)
    if args.config:
        config = _read_config_file(Path(args.config), config)
    sets: list[str] = []
    if args.data is not None:
        if args.data == "treebank":
            sets.append("data.source=treebank")
        else:
            sets += ["data.source=text", f"data.path={Path(args.data).resolve()}"]
    if args.corpus is not None:
        if (args.data or config.data.source) != "treebank":
            raise ValueError("--corpus names a treebank directory: it goes with --data treebank")
        sets.append(f"data.path={Path(args.corpus).resolve()}")
    for flag, field in (("tokenizer", "data.tokenizer"), ("steps", "train.max_steps"),
                        ("batch_size", "train.batch_size"), ("grad_accum", "train.grad_accum_steps"),
                        ("lr", "train.lr"), ("seed", "train.seed"), ("device", "train.device"),
                        ("threads", "train.num_threads"),
                        ("compile", "train.compile"),
                        ("activation_checkpointing", "train.activation_checkpointing")):
        value = getattr(args, flag)
        if value is not None:
            sets.append(f"{field}={json.dumps(value) if not isinstance(value, str) else value}")
    if args.no_progress:
        sets.append("train.progress=false")
    config = config.override(sets + list(args.sets))
    return config, out


def _read_config_file(path: Path, base: RunConfig) -> RunConfig:
    """--config FILE over `base`; every error names the file (and the line of a syntax error)."""
    if not path.is_file():
        raise FileNotFoundError(f"--config: no config file at {path}")
    data = read_json(path, "a JSON object with 'model', 'train', 'data' sections")
    try:
        return RunConfig.from_dict(data, base=base)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None


def run(args: argparse.Namespace) -> int:
    from gpt_model.distributed import shutdown_distributed
    from gpt_model.signals import StoppedBySignal
    from gpt_model.train import TrainingDiverged, train

    config, out = build_config(args)
    try:
        result = train(config, out, resume=args.resume)
    except TrainingDiverged as err:
        print(f"stratascope train: {err}", flush=True)
        return 1
    except StoppedBySignal as stop:
        return stop.exit_status  # 128 + the signal; the trainer said what was left
    finally:
        shutdown_distributed()
    if result.status != "finished":
        return result.exit_status  # 128 + the signal; the checkpoint was saved (the trainer said where)
    final = result.final
    if final:
        print(format_summary(final, out))
    return 0


def format_summary(final: dict, out: Path) -> str:
    lines = [f"run: {out}", f"validation loss {final['val_loss']:.4f} nats/token"]
    if "entropy_floor" in final:
        lines[-1] += (f"  (entropy floor {final['entropy_floor']:.4f}, "
                      f"{final['pct_above_floor']:+.2f}% above it)")
    if "agreement" in final:
        a = final["agreement"]
        lines.append(f"agreement across attractors: {100 * a['accuracy']:.2f}% of {a['n_pairs']} minimal pairs")
    lines.append(f"trained {final['step']} steps in {final['train_elapsed_s'] / 60:.1f} min, "
                 f"{final['train_tokens_per_s']:,.0f} tokens/s")
    return "\n".join(lines)
