"""Training throughput: our trainer vs Hugging Face `GPT2LMHeadModel` (sdpa) of the same shape.

    .venv/bin/python bench/bench_train.py                 # the demo preset's shape, CPU

Writes bench/results/train.json (with the machine and its load average; --no-save to skip).

Three contestants, each timed on the same batches in the same process, in alternating order
(ours, HF, ours-plain, then the reverse, ...), medians over the repeats:

  ours        `Trainer._train_step`: the real training step (per-token loss sum over counted
              targets, gradient clipping, fused AdamW, NaN guard, lr schedule)
  hf          GPT2LMHeadModel(attn_implementation="sdpa"), the usual loop:
              `model(input_ids, labels).loss.backward()`, clip_grad_norm_, AdamW (default foreach)
  ours-plain  our GPT in HF's loop (model(tokens, targets) loss, same clipping, default AdamW):
              separates what the model contributes from what the trainer does

The throughput target is ours / hf ≥ 1.2 on CPU. Timings on a shared machine are noisy: the
script prints the spread and the machine load next to the medians.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from bench.common import write_json  # noqa: E402
from gpt_model import GPT, GPTConfig  # noqa: E402
from gpt_model.data import PackedDataset, synthetic_documents  # noqa: E402
from gpt_model.presets import train_preset  # noqa: E402
from gpt_model.train import TrainConfig, Trainer  # noqa: E402


def make_data(vocab: int, context: int, n_docs: int = 4000) -> PackedDataset:
    docs = synthetic_documents(n_docs, vocab, seed=0, min_len=4, max_len=30)
    return PackedDataset.from_documents(docs, context, bos_id=0, eos_id=1, pad_id=2)


def hf_model(cfg: GPTConfig) -> torch.nn.Module:
    from transformers import GPT2Config, GPT2LMHeadModel

    hf_cfg = GPT2Config(
        vocab_size=cfg.vocab_size, n_positions=cfg.context_len, n_embd=cfg.d_model, n_layer=cfg.n_layer,
        n_head=cfg.n_head, n_inner=cfg.mlp_width, activation_function="gelu_new", resid_pdrop=0.0,
        embd_pdrop=0.0, attn_pdrop=0.0, layer_norm_epsilon=cfg.norm_eps, tie_word_embeddings=True,
        use_cache=False, bos_token_id=0, eos_token_id=0, attn_implementation="sdpa",
    )
    model = GPT2LMHeadModel(hf_cfg).train()
    assert model.config._attn_implementation == "sdpa"
    return model


def plain_step(model, opt, x, y, *, hf: bool) -> float:
    if hf:
        # HF shifts the labels inside (logits[:, i] predicts labels[:, i+1]): labels[:, i+1] = y[:, i]
        labels = torch.cat([torch.full_like(y[:, :1], -100), y[:, :-1]], dim=1)
        loss = model(input_ids=x, labels=labels).loss
    else:
        loss = model(x, y)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return float(loss)


def main(argv: list[str] | None = None) -> dict:
    preset = train_preset("demo")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layers", type=int, default=preset.model.n_layer)
    p.add_argument("--d-model", type=int, default=preset.model.d_model)
    p.add_argument("--heads", type=int, default=preset.model.n_head)
    p.add_argument("--context", type=int, default=preset.model.context_len)
    p.add_argument("--batch", type=int, default=preset.train.batch_size)
    p.add_argument("--vocab", type=int, default=131, help="the treebank's word vocabulary by default")
    p.add_argument("--steps", type=int, default=10, help="timed steps per repeat")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=preset.train.num_threads or 0,
                   help="torch threads (default: the demo preset's, 1; 0: torch's default)")
    p.add_argument("--no-save", action="store_true", help="do not write bench/results/train.json")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    cfg = GPTConfig(n_layer=args.layers, d_model=args.d_model, n_head=args.heads, context_len=args.context,
                    vocab_size=args.vocab)
    data = make_data(args.vocab, args.context)
    tcfg = TrainConfig(max_steps=10**6, batch_size=args.batch, lr=1e-3, warmup_steps=10, eval_interval=0,
                       checkpoint_interval=0, progress=False, device="cpu")
    import tempfile

    trainer = Trainer(cfg, tcfg, data, None, tempfile.mkdtemp(prefix="bench_train_"))

    torch.manual_seed(0)
    hf = hf_model(cfg)
    hf_opt = torch.optim.AdamW(hf.parameters(), lr=1e-3, weight_decay=0.1, betas=(0.9, 0.95))
    torch.manual_seed(0)
    plain = GPT(cfg).train()
    plain_opt = torch.optim.AdamW(plain.parameters(), lr=1e-3, weight_decay=0.1, betas=(0.9, 0.95))

    step = {"i": 0}

    def batch():
        idx = trainer.sampler.indices(step["i"])
        step["i"] += 1
        return data.batch(idx)

    def run_ours(n):
        for _ in range(n):
            trainer._train_step()
            trainer.step += 1

    def run_hf(n):
        for _ in range(n):
            x, y = batch()
            plain_step(hf, hf_opt, x, y, hf=True)

    def run_plain(n):
        for _ in range(n):
            x, y = batch()
            plain_step(plain, plain_opt, x, y, hf=False)

    contestants = {"ours": run_ours, "hf": run_hf, "ours-plain": run_plain}
    for fn in contestants.values():  # warm-up (allocator, kernels)
        fn(2)
    times: dict[str, list[float]] = {k: [] for k in contestants}
    order = list(contestants)
    tokens = args.steps * args.batch * args.context
    load0 = os.getloadavg()[0]
    for r in range(args.repeats):
        for name in (order if r % 2 == 0 else order[::-1]):
            t0 = time.perf_counter()
            contestants[name](args.steps)
            times[name].append(tokens / (time.perf_counter() - t0))
    load1 = os.getloadavg()[0]

    med = {k: statistics.median(v) for k, v in times.items()}
    result = {
        "shape": {"n_layer": args.layers, "d_model": args.d_model, "n_head": args.heads,
                  "context": args.context, "batch": args.batch, "vocab": args.vocab},
        "threads": torch.get_num_threads(),
        "tokens_per_s_median": med,
        "tokens_per_s_all": times,
        "ratio_ours_vs_hf": med["ours"] / med["hf"],
        "ratio_ours_plain_vs_hf": med["ours-plain"] / med["hf"],
        "loadavg_1min_before_after": [load0, load1],
        "torch": torch.__version__,
    }
    print(f"shape {args.layers}×{args.d_model} (heads {args.heads}), batch {args.batch}×{args.context}, "
          f"vocab {args.vocab}, {torch.get_num_threads()} threads; load {load0:.1f}→{load1:.1f}")
    for k, v in times.items():
        print(f"  {k:<11} median {med[k]:>9,.0f} tok/s   (min {min(v):,.0f}, max {max(v):,.0f})")
    print(f"ours / hf = {result['ratio_ours_vs_hf']:.2f}×   (target ≥ 1.2×);  "
          f"ours-plain / hf = {result['ratio_ours_plain_vs_hf']:.2f}×")
    if not args.no_save:
        print(f"wrote {write_json('train', result)}")
    return result


if __name__ == "__main__":
    main()
