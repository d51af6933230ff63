"""Evaluation of a language model: validation loss and targeted syntactic evaluation.

`evaluate_loss` is the mean next-token loss (nats) over the counted targets of a packed
dataset: words and <eos>, the units of the treebank's entropy floor.

`agreement_accuracy` is Marvin & Linzen's (2018) test: for each minimal pair
(prefix words, correct verb, wrong verb), where an attractor noun of the other number stands
between the subject and the verb, the model should give the correct verb form a higher
log-probability after ``<bos> prefix``. A verb of several tokens (BPE) is scored by the sum of
its tokens' log-probabilities.

`agreement_breakdown` scores the deep treebank's tagged pairs (every agreeing verb and
auxiliary, ``corpus.deep_minimal_pairs``) overall and per construction, nesting depth, clause
depth, distance bucket and attractor count; a run on the deep treebank writes it to
results.json as ``agreement_by``.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gpt_model.data import IGNORE_INDEX, PackedDataset, encode_words, unigram_entropy


def autocast_context(device: torch.device, dtype: torch.dtype | None) -> Any:
    """bf16 autocast when `dtype` is bfloat16, else nothing (fp32)."""
    if dtype is None or dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


@contextlib.contextmanager
def eval_mode(model: nn.Module):
    """The block runs with the model in eval mode; its previous mode is restored after."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def _pad_rows(rows: Sequence[Sequence[int]], pad_id: int) -> Tensor:
    """[len(rows), longest row] token ids, right-padded with ``pad_id``."""
    x = torch.full((len(rows), max(len(r) for r in rows)), pad_id, dtype=torch.long)
    for i, r in enumerate(rows):
        x[i, : len(r)] = torch.tensor(r)
    return x


@torch.no_grad()
def loss_sums(
    model: nn.Module,
    data: PackedDataset,
    *,
    batch_size: int = 32,
    max_batches: int | None = None,
    device: torch.device | str = "cpu",
    amp_dtype: torch.dtype | None = None,
    rank: int = 0,
    world_size: int = 1,
) -> tuple[float, int]:
    """(sum of target losses, number of targets) over this rank's share of `data`'s first
    `max_batches`·`batch_size` rows (all rows when None)."""
    device = torch.device(device)
    n_rows = len(data) if not max_batches else min(len(data), max_batches * batch_size)
    rows = torch.arange(rank, n_rows, world_size)
    total, count = torch.zeros((), dtype=torch.float64, device=device), 0
    with eval_mode(model):
        for start in range(0, len(rows), batch_size):
            x, y = data.batch(rows[start : start + batch_size])
            x, y = x.to(device), y.to(device)
            with autocast_context(device, amp_dtype):
                logits = model(x)
            total += F.cross_entropy(logits.float().flatten(0, 1), y.flatten(), ignore_index=IGNORE_INDEX,
                                     reduction="sum").double()
            count += int((y != IGNORE_INDEX).sum())
    return float(total), count


def evaluate_loss(model: nn.Module, data: PackedDataset, **kwargs: Any) -> float:
    """Mean next-token loss (nats) over the counted targets; see `loss_sums` for the options."""
    total, count = loss_sums(model, data, **kwargs)
    return total / max(count, 1)


@dataclass
class AgreementResult:
    accuracy: float
    n_pairs: int
    n_correct: int
    mean_margin: float  # mean log p(correct) − log p(wrong), nats
    n_truncated: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@torch.no_grad()
def continuation_logprobs(
    model: nn.Module,
    contexts: Sequence[Sequence[int]],
    continuations: Sequence[Sequence[int]],
    *,
    batch_size: int = 128,
    device: torch.device | str = "cpu",
    pad_id: int = 0,
) -> tuple[Tensor, int]:
    """log p(continuation | context) for each pair of id lists: ([n] float64, n truncated).

    Sequences longer than the model's context keep their last `context_len` tokens."""
    device = torch.device(device)
    ctx_len = model.cfg.context_len
    seqs, starts, truncated = [], [], 0
    for ctx, cont in zip(contexts, continuations):
        seq = list(ctx) + list(cont)
        start = len(ctx)
        if len(seq) > ctx_len:
            cut = len(seq) - ctx_len
            seq, start, truncated = seq[cut:], start - cut, truncated + 1
        seqs.append(seq)
        starts.append(start)
    out = torch.empty(len(seqs), dtype=torch.float64)
    with eval_mode(model):
        for b0 in range(0, len(seqs), batch_size):
            chunk = seqs[b0 : b0 + batch_size]
            x = _pad_rows(chunk, pad_id)
            y = torch.full_like(x, IGNORE_INDEX)
            for i, s in enumerate(chunk):
                st = starts[b0 + i]
                # position p predicts token p+1: targets of the continuation tokens only
                y[i, st - 1 : len(s) - 1] = torch.tensor(s[st:])
            logp = model(x.to(device)).float().log_softmax(-1)
            yd = y.to(device)
            picked = logp.gather(-1, yd.clamp(min=0).unsqueeze(-1)).squeeze(-1)
            picked = picked.masked_fill(yd == IGNORE_INDEX, 0.0)
            out[b0 : b0 + len(chunk)] = picked.sum(-1).double().cpu()
    return out, truncated


@torch.no_grad()
def next_token_logprobs(
    model: nn.Module,
    contexts: Sequence[Sequence[int]],
    *,
    batch_size: int = 128,
    device: torch.device | str = "cpu",
    pad_id: int = 0,
) -> tuple[Tensor, int]:
    """log p(· | context) after each context: ([n, V] float64, n truncated)."""
    device = torch.device(device)
    ctx_len = model.cfg.context_len
    truncated = sum(len(c) > ctx_len for c in contexts)
    seqs = [list(c)[-ctx_len:] for c in contexts]
    out = []
    with eval_mode(model):
        for b0 in range(0, len(seqs), batch_size):
            chunk = seqs[b0 : b0 + batch_size]
            x = _pad_rows(chunk, pad_id)
            last = torch.tensor([len(s) - 1 for s in chunk], device=device)
            logits = model(x.to(device))[torch.arange(len(chunk), device=device), last]  # [b, V]
            out.append(logits.double().log_softmax(-1).cpu())
    return torch.cat(out), truncated


def agreement_accuracy(
    model: nn.Module,
    tokenizer: Any,
    pairs: Sequence[tuple[Sequence[str], str, str]],
    *,
    batch_size: int = 128,
    device: torch.device | str = "cpu",
) -> AgreementResult:
    """Share of minimal pairs where the correct verb is more probable than the wrong one."""
    margin, truncated = agreement_margins(model, tokenizer, pairs, batch_size=batch_size, device=device)
    n_correct = int((margin > 0).sum())
    return AgreementResult(accuracy=n_correct / len(pairs), n_pairs=len(pairs), n_correct=n_correct,
                           mean_margin=float(margin.mean()), n_truncated=truncated)


def agreement_margins(
    model: nn.Module,
    tokenizer: Any,
    pairs: Sequence[tuple[Sequence[str], str, str]],
    *,
    batch_size: int = 128,
    device: torch.device | str = "cpu",
) -> tuple[Tensor, int]:
    """Per minimal pair, log p(correct) − log p(wrong) after ``<bos> prefix`` ([n] float64, nats),
    and how many contexts were cut to the model's context length."""
    if not pairs:
        raise ValueError("no minimal pairs to evaluate")
    contexts, goods, bads = [], [], []
    for prefix, good, bad in pairs:
        ctx = [tokenizer.bos_id, *encode_words(tokenizer, prefix)]
        contexts.append(ctx)
        goods.append(_continuation(tokenizer, prefix, good, ctx))
        bads.append(_continuation(tokenizer, prefix, bad, ctx))
    kw = dict(batch_size=batch_size, device=device, pad_id=tokenizer.pad_id)
    if all(len(g) == 1 and len(b) == 1 for g, b in zip(goods, bads)):
        # one token each (the word tokenizer): a single pass over the contexts scores both
        lp, t1 = next_token_logprobs(model, contexts, **kw)
        idx = torch.arange(len(contexts))
        margin = lp[idx, [g[0] for g in goods]] - lp[idx, [b[0] for b in bads]]
        t2 = t1
    else:
        lp_good, t1 = continuation_logprobs(model, contexts, goods, **kw)
        lp_bad, t2 = continuation_logprobs(model, contexts, bads, **kw)
        margin = lp_good - lp_bad
    return margin, max(t1, t2)


def agreement_breakdown(model: nn.Module, tokenizer: Any, tagged: Sequence[Any], *, batch_size: int = 128,
                        device: torch.device | str = "cpu") -> dict[str, Any]:
    """Agreement accuracy over tagged minimal pairs (``corpus.TaggedPair``: every agreeing word of
    the deep treebank), overall and per value of each tag (construction, nesting, depth,
    distance bucket, attractors): ``{"overall": {...}, "construction": {"pp": {...}, ...}, ...}``,
    each ``{"accuracy", "n_pairs", "n_correct", "mean_margin"}``."""
    margin, truncated = agreement_margins(model, tokenizer, [t.pair for t in tagged], batch_size=batch_size,
                                          device=device)
    correct = (margin > 0).tolist()
    margins = margin.tolist()

    def cell(idx: Sequence[int]) -> dict[str, Any]:
        n_correct = sum(correct[i] for i in idx)
        return {"accuracy": n_correct / len(idx), "n_pairs": len(idx), "n_correct": n_correct,
                "mean_margin": sum(margins[i] for i in idx) / len(idx)}

    out: dict[str, Any] = {"overall": {**cell(range(len(tagged))), "n_truncated": truncated}}
    groups: dict[str, dict[str, list[int]]] = {}
    for i, t in enumerate(tagged):
        for tag, value in t.tags().items():
            groups.setdefault(tag, {}).setdefault(value, []).append(i)
    for tag, values in groups.items():
        out[tag] = {value: cell(idx) for value, idx in sorted(values.items(), key=lambda kv: _natural(kv[0]))}
    return out


def _continuation(tokenizer: Any, prefix: Sequence[str], word: str, ctx: list[int]) -> list[int]:
    full = [tokenizer.bos_id, *encode_words(tokenizer, [*prefix, word])]
    if full[: len(ctx)] == ctx and len(full) > len(ctx):
        return full[len(ctx) :]
    return encode_words(tokenizer, [word])


def _natural(value: str) -> tuple[int, str]:
    """Sort key: a leading number numerically ("3-5" before "12+"), then the text."""
    digits = len(value) - len(value.lstrip("0123456789"))
    return (int(value[:digits]) if digits else -1, value)


def evaluate_run(run_dir: str, *, device: str = "cpu", batch_size: int = 64,
                 progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Validation loss, entropy floor and agreement accuracy of a finished run directory."""
    from pathlib import Path

    from gpt_model.checkpoint import load_model, read_config
    from gpt_model.data import DataConfig, prepare_data

    run = Path(run_dir)
    config = read_config(run)
    model = load_model(run, device=device)
    data_cfg = DataConfig.from_dict(config.get("data", {}))
    seed = config.get("train", {}).get("seed", 0)
    bundle = prepare_data(data_cfg, run, model.cfg.context_len, seed=seed, reuse_tokenizer=True,
                          is_main=False)
    return summarize(model, bundle, device=device, batch_size=batch_size)


def summarize(model: nn.Module, bundle: Any, *, device: torch.device | str = "cpu",
              batch_size: int = 64, amp_dtype: torch.dtype | None = None) -> dict[str, Any]:
    """The headline numbers of a trained model on its data bundle."""
    val_loss = evaluate_loss(model, bundle.val, batch_size=batch_size, device=device, amp_dtype=amp_dtype)
    result: dict[str, Any] = {"val_loss": val_loss, "val_targets": bundle.val.n_targets()}
    floor = bundle.entropy_floor
    if floor:
        result["entropy_floor"] = floor
        result["pct_above_floor"] = 100.0 * (val_loss - floor) / floor
    if bundle.agreement_pairs:
        result["agreement"] = agreement_accuracy(model, bundle.tokenizer, bundle.agreement_pairs,
                                                 batch_size=128, device=device).to_dict()
    if getattr(bundle, "tagged_pairs", None):  # the deep treebank: every agreeing word, by tag
        result["agreement_by"] = agreement_breakdown(model, bundle.tokenizer, bundle.tagged_pairs,
                                                     batch_size=128, device=device)
    return result


def final_results(model: nn.Module, bundle: Any, result: Any, *, device: torch.device | str = "cpu",
                  batch_size: int = 64, amp_dtype: torch.dtype | None = None) -> dict[str, Any]:
    """results.json of a finished run: `summarize` plus the training run's own numbers
    (`result`: its TrainResult) and the unigram entropy of the training rows."""
    t0 = time.perf_counter()
    final = summarize(model, bundle, device=device, batch_size=batch_size, amp_dtype=amp_dtype)
    final.update(step=result.step, train_elapsed_s=result.elapsed_s, train_tokens_per_s=result.tokens_per_s,
                 n_skipped=result.n_skipped, eval_s=time.perf_counter() - t0,
                 unigram_entropy=unigram_entropy(bundle.train, model.cfg.vocab_size))
    return final
