"""`stratascope demo`: the main job on the built-in treebank, stage by stage."""

from __future__ import annotations

import argparse

import torch

from gpt_model import GPT, model_preset


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="run the main job end to end on the built-in treebank")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(func=run)


def describe_model(model: GPT) -> None:
    cfg = model.cfg
    print(
        f"GPT: {cfg.n_layer} blocks × d_model {cfg.d_model}, {cfg.n_head} heads, MLP {cfg.mlp} "
        f"({cfg.mlp_width}), {cfg.ln_placement}-LN {cfg.norm}, residual {cfg.residual}, "
        f"context {cfg.context_len}, vocab {cfg.vocab_size}"
    )
    print(model)
    print("\nparameters per part:")
    for name, count in model.param_counts().items():
        print(f"  {name:<10} {count:>10,}")
    print(f"  {'total':<10} {model.num_params():>10,}")
    print(f"\nhook points: {len(model.hook_dict)} (e.g. blocks.0.hook_resid_post, blocks.0.attn.hook_pattern)")


def run(args: argparse.Namespace) -> int:
    torch.manual_seed(args.seed)
    print("== stage 1/1: build the demo GPT ==")
    model = GPT(model_preset("demo")).eval()
    describe_model(model)
    prompt = torch.zeros(1, 4, dtype=torch.long)
    out = model.generate(prompt, 12, top_k=20, generator=torch.Generator().manual_seed(args.seed))
    print(f"\ngenerated (untrained, KV cache): {out[0].tolist()}")
    return 0
