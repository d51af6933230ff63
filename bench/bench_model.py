"""Cost of hook points and caching, and training-step throughput against HF GPT-2.

    python bench/bench_model.py [--repeats 15]

(a) forward with hook points but no hooks vs the same model with its hook points removed
(b) run_with_cache of every blocks.{i}.hook_resid_post vs plain forward
(c) one training step (forward + backward + AdamW) of our GPT vs transformers.GPT2LMHeadModel
    (attn_implementation="sdpa") at the same shape: 6 layers, d=256, 8 heads, vocab 512,
    32 × 128 tokens. Ratio = our tokens/s ÷ HF tokens/s.
Targets (bench/RESULTS.md): (a) ≤ 1.03×, (b) ≤ 1.10×, (c) ≥ 1.2×. Writes bench/results/model.json.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import alternate, write_json  # noqa: E402
from gpt_model import GPT, GPTConfig  # noqa: E402

SHAPE = dict(n_layer=6, d_model=256, n_head=8, vocab_size=512, context_len=128)
BATCH, SEQ = 32, 128


def without_hook_points(model: GPT) -> GPT:
    """A copy whose HookPoint modules are replaced by plain identity functions (no Module call)."""
    from transformer_lens.hook_points import HookPoint

    stripped = copy.deepcopy(model)
    for module in list(stripped.modules()):
        for name, child in list(module._modules.items()):
            if isinstance(child, HookPoint):
                del module._modules[name]
                object.__setattr__(module, name, _PlainIdentity())
    return stripped


class _PlainIdentity:
    """Stands in for a HookPoint without nn.Module's call machinery; never has hooks."""

    fwd_hooks: list = []
    bwd_hooks: list = []

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x


def bench_forward(repeats: int) -> dict:
    model = GPT(GPTConfig(**SHAPE)).eval()
    plain = without_hook_points(model)
    tokens = torch.randint(0, SHAPE["vocab_size"], (BATCH, SEQ))
    names = [f"blocks.{i}.hook_resid_post" for i in range(SHAPE["n_layer"])]
    with torch.inference_mode():
        times = alternate(
            {
                "no_hook_points": lambda: plain(tokens),
                "hook_points_no_hooks": lambda: model(tokens),
                "cache_resid_post": lambda: model.run_with_cache(tokens, names_filter=names),
            },
            repeats,
        )
    return {
        "seconds": times,
        "hook_points_ratio": times["hook_points_no_hooks"] / times["no_hook_points"],
        "cache_resid_post_ratio": times["cache_resid_post"] / times["hook_points_no_hooks"],
    }


def hf_gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(
        vocab_size=SHAPE["vocab_size"], n_positions=SHAPE["context_len"], n_embd=SHAPE["d_model"],
        n_layer=SHAPE["n_layer"], n_head=SHAPE["n_head"], resid_pdrop=0.0, embd_pdrop=0.0,
        attn_pdrop=0.0, use_cache=False, bos_token_id=0, eos_token_id=0, attn_implementation="sdpa",
    )
    return GPT2LMHeadModel(cfg)


def bench_train_step(repeats: int) -> dict:
    ours = GPT(GPTConfig(**SHAPE)).train()
    theirs = hf_gpt2().train()
    assert theirs.config._attn_implementation == "sdpa"
    tokens = torch.randint(0, SHAPE["vocab_size"], (BATCH, SEQ))
    opt_ours = torch.optim.AdamW(ours.parameters(), lr=1e-4)
    opt_theirs = torch.optim.AdamW(theirs.parameters(), lr=1e-4)

    def step_ours():
        loss = ours(tokens, return_type="loss")
        loss.backward()
        opt_ours.step()
        opt_ours.zero_grad(set_to_none=True)

    def step_theirs():
        loss = theirs(input_ids=tokens, labels=tokens).loss
        loss.backward()
        opt_theirs.step()
        opt_theirs.zero_grad(set_to_none=True)

    times = alternate({"ours": step_ours, "hf_gpt2_sdpa": step_theirs}, repeats)
    tokens_per_step = BATCH * SEQ
    tps = {name: tokens_per_step / t for name, t in times.items()}
    return {
        "seconds_per_step": times,
        "tokens_per_s": tps,
        "ratio_ours_over_hf": tps["ours"] / tps["hf_gpt2_sdpa"],
        "params": {"ours": ours.num_params(), "hf": sum(p.numel() for p in theirs.parameters())},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    torch.manual_seed(0)
    forward = bench_forward(args.repeats)
    print(f"(a) hook points, no hooks / no hook points : {forward['hook_points_ratio']:.3f}×  (target ≤ 1.03)")
    print(f"(b) cache every resid_post / plain forward : {forward['cache_resid_post_ratio']:.3f}×  (target ≤ 1.10)")
    train = bench_train_step(max(5, args.repeats // 2))
    print(
        f"(c) train step tokens/s, ours / HF GPT-2 sdpa: {train['ratio_ours_over_hf']:.3f}×  (target ≥ 1.2)"
        f"  [{train['tokens_per_s']['ours']:.0f} vs {train['tokens_per_s']['hf_gpt2_sdpa']:.0f} tokens/s]"
    )
    path = write_json("model", {"shape": SHAPE, "batch": [BATCH, SEQ], "forward": forward, "train_step": train})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
