"""One prepared GPU check: model-FLOPs utilisation of our trainer at GPT-2-small shape.

    python bench/gpu_check.py [--out bench/results/gpu_check.json] [--steps 30] [--batch 16]

Needs CUDA (exits with status 2 and a clear message otherwise). It trains our GPT at
GPT-2-small shape (12 blocks, d_model 768, 12 heads, context 1024, vocab 50304 = 50257 padded
to a multiple of 64) on random tokens with the real trainer step (`Trainer._train_step`: bf16
autocast, fused AdamW, clipping, NaN guard), with and without `torch.compile`, and reports

    MFU = tokens/s × FLOPs per token / peak bf16 FLOP/s of the device

with FLOPs per token = 6·N + 12·L·d·T (PaLM appendix B) and the peak from
`gpt_model.flops.PEAK_BF16_FLOPS` (H100 SXM 989 TFLOP/s dense). Target: ≥ 50% MFU on one
H100. Writes one JSON file and prints a summary; budget about 3–5 minutes on an H100 (most of
it torch.compile).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402


def fail(msg: str) -> None:
    print(f"gpu_check: {msg}", file=sys.stderr)
    sys.exit(2)


def measure(compile_model: bool, args: argparse.Namespace) -> dict:
    from gpt_model import GPTConfig
    from gpt_model.data import PackedDataset
    from gpt_model.flops import peak_bf16_flops
    from gpt_model.train import TrainConfig, Trainer

    cfg = GPTConfig(n_layer=12, d_model=768, n_head=12, context_len=1024, vocab_size=50304)
    g = torch.Generator().manual_seed(0)
    rows = torch.randint(0, 50257, (max(64, args.batch * 4), 1025), generator=g)
    data = PackedDataset(rows[:, :-1], rows[:, 1:])
    tcfg = TrainConfig(max_steps=10**6, batch_size=args.batch, grad_accum_steps=1, lr=6e-4, warmup_steps=10,
                       eval_interval=0, checkpoint_interval=0, progress=False, device="cuda", dtype="bfloat16",
                       compile=compile_model, activation_checkpointing=args.activation_checkpointing)
    trainer = Trainer(cfg, tcfg, data, None, tempfile.mkdtemp(prefix="gpu_check_"))
    if compile_model:  # what Trainer.fit does with TrainConfig.compile
        trainer._train_model = torch.compile(trainer._train_model)
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(args.warmup):
        trainer._train_step()
        trainer.step += 1
    torch.cuda.synchronize()
    warmup_s = time.perf_counter() - t0
    times = []
    for _ in range(args.steps):
        t = time.perf_counter()
        rec = trainer._train_step()  # ends in .item() calls: synchronised
        trainer.step += 1
        times.append(time.perf_counter() - t)
    step_s = statistics.median(times)
    tokens_per_s = args.batch * cfg.context_len / step_s
    peak = peak_bf16_flops(trainer.device)
    fpt = trainer.flops_per_token
    return {
        "compile": compile_model,
        "batch": args.batch,
        "context": cfg.context_len,
        "params": trainer.model.num_params(),
        "flops_per_token": fpt,
        "warmup_s": warmup_s,
        "step_s_median": step_s,
        "step_s_min": min(times),
        "tokens_per_s": tokens_per_s,
        "achieved_tflops": tokens_per_s * fpt / 1e12,
        "peak_tflops": peak / 1e12 if peak else None,
        "mfu": tokens_per_s * fpt / peak if peak else None,
        "max_memory_gib": torch.cuda.max_memory_allocated() / 2**30,
        "final_loss": rec["train_loss"],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("bench/results/gpu_check.json"))
    p.add_argument("--batch", type=int, default=16, help="rows of 1024 tokens per step")
    p.add_argument("--steps", type=int, default=30, help="timed steps per variant")
    p.add_argument("--warmup", type=int, default=8, help="untimed steps first (compilation happens here)")
    p.add_argument("--activation-checkpointing", action="store_true")
    p.add_argument("--skip-eager", action="store_true", help="only the compiled variant")
    args = p.parse_args(argv)

    if not torch.cuda.is_available():
        fail("CUDA is not available on this machine (torch "
             f"{torch.__version__}, built for CUDA {torch.version.cuda}); this check needs an NVIDIA GPU. "
             "Nothing was measured.")
    from gpt_model.flops import peak_bf16_flops

    device_name = torch.cuda.get_device_name(0)
    peak = peak_bf16_flops(torch.device("cuda", 0))
    print(f"device: {device_name}; peak bf16 {peak / 1e12:.0f} TFLOP/s" if peak else
          f"device: {device_name}; peak bf16 unknown (no MFU, tokens/s only)", flush=True)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True

    results = {"device": device_name, "torch": torch.__version__, "cuda": torch.version.cuda, "runs": []}
    variants = [True] if args.skip_eager else [True, False]
    for compiled in variants:
        try:
            r = measure(compiled, args)
        except torch.cuda.OutOfMemoryError as err:
            r = {"compile": compiled, "error": f"out of memory at batch {args.batch}: {err}"}
        results["runs"].append(r)
        if "error" in r:
            print(f"compile={compiled}: {r['error']}", flush=True)
        else:
            mfu = f"{100 * r['mfu']:.1f}%" if r["mfu"] is not None else "n/a"
            print(f"compile={compiled}: {r['tokens_per_s']:,.0f} tok/s, {r['achieved_tflops']:.0f} TFLOP/s, "
                  f"MFU {mfu}, step {1e3 * r['step_s_median']:.1f} ms, warm-up {r['warmup_s']:.0f} s, "
                  f"peak mem {r['max_memory_gib']:.1f} GiB", flush=True)
        torch.cuda.empty_cache()
    best = max((r.get("mfu") or 0.0) for r in results["runs"])
    results["best_mfu"] = best
    results["target_mfu"] = 0.5
    results["meets_target"] = best >= 0.5
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"best MFU {100 * best:.1f}% (target ≥ 50%); wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
