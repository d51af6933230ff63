"""`stratascope info`: versions, devices and the model zoo."""

from __future__ import annotations

import argparse

import torch

from app.cli import package_version
from gpt_model import GPT
from gpt_model.presets import MODEL_PRESETS


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("info", help="versions, devices and the model zoo of presets")
    parser.set_defaults(func=run)


def preset_table() -> list[str]:
    header = f"{'preset':<11} {'blocks':>6} {'d_model':>7} {'heads':>5} {'context':>7} {'params':>9}  description"
    rows = [header, "-" * len(header)]
    for preset in MODEL_PRESETS.values():
        cfg = preset.config
        with torch.device("meta"):  # count parameters without allocating them
            n_params = GPT(cfg).num_params()
        rows.append(
            f"{preset.name:<11} {cfg.n_layer:>6} {cfg.d_model:>7} {cfg.n_head:>5} {cfg.context_len:>7} "
            f"{n_params / 1e6:>8.2f}M  {preset.description}"
        )
    return rows


def run(args: argparse.Namespace) -> int:
    print(f"stratascope {package_version()}  (torch {torch.__version__})")
    devices = ["cpu"]
    if torch.cuda.is_available():
        devices += [f"cuda:{i} {torch.cuda.get_device_name(i)}" for i in range(torch.cuda.device_count())]
    print("devices: " + ", ".join(devices))
    print("\nmodel zoo:")
    print("\n".join(preset_table()))
    return 0
