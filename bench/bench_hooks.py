"""Benchmark of the hooks package; prints ratios and writes bench/results/hooks.json.

1. Caching every block's residual stream vs a plain forward pass, for each backend (our GPT,
   TransformerBridge, nnsight), on treebank sentence batches and on a full 32×128 batch.
2. ActivationStore throughput (words/s, everything included: both corpus passes, tokenizing,
   forward, gathering, writing, fsync) vs a plain forward over the same pre-tokenised batches.
   Goal ≥ 0.8×.
3. Peak RSS of a store extraction at two corpus sizes, each in a fresh process. Goal: flat.

Ratios are medians over repeats that alternate the order of the two sides. Everything is built
locally (no downloads): the built-in treebank, a word-level GPT at the demo preset shape, and a
GPT-2 of the same shape with a byte-level BPE trained on the treebank.

    python bench/bench_hooks.py [--quick] [--out bench/results/hooks.json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

import hooks  # noqa: E402


# ----------------------------------------------------------------------------- fixtures
def build_models(root: Path, n_sentences: int) -> dict[str, Path]:
    """Treebank (train text for the BPE, a probe corpus file), a word-level run at the demo
    shape and a same-shape GPT-2 directory with its tokenizer."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from corpus import WordTokenizer, generate_sentences, train_bpe_tokenizer, write_conllu
    from gpt_model import GPT, model_preset
    from gpt_model.checkpoint import save_model

    sentences = generate_sentences(n_sentences, 0)
    corpus = root / "corpus.conllu"
    write_conllu(sentences, corpus)
    tok = WordTokenizer.from_sentences(sentences)
    run = root / "runs" / "demo-shape"
    (run / "tokenizer").mkdir(parents=True)
    tok.save(run / "tokenizer" / "vocab.json")
    torch.manual_seed(0)
    cfg = model_preset("demo", vocab_size=len(tok))
    save_model(GPT(cfg), run, extra_config={"tokenizer": {"kind": "word", "path": "tokenizer/vocab.json"}})
    gpt2 = root / "gpt2-demo-shape"
    bpe = train_bpe_tokenizer([s.text for s in sentences[:3000]], 512, gpt2)
    bpe.save_pretrained(gpt2)
    GPT2LMHeadModel(GPT2Config(vocab_size=len(bpe), n_positions=cfg.context_len, n_embd=cfg.d_model,
                               n_layer=cfg.n_layer, n_head=cfg.n_head, bos_token_id=bpe.bos_token_id,
                               eos_token_id=bpe.eos_token_id)).save_pretrained(gpt2)
    return {"corpus": corpus, "run": run, "gpt2": gpt2}


def write_corpus(path: Path, n: int, seed: int) -> Path:
    from corpus import generate_sentences, write_conllu

    write_conllu(generate_sentences(n, seed), path)
    return path


def plain_call(backend: hooks.Backend):
    """The backend's model forward with no hook attached (nnsight: the wrapped HF model)."""
    if backend.kind == "nnsight":
        module = backend.model._module
        return lambda ids: module(input_ids=ids, use_cache=False).logits
    if backend.kind == "tl":
        return lambda ids: backend.model(ids, return_type="logits")
    return backend.model


def timed(fn, iters: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) for `iters` calls."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(iters):
        fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def alternating(a, b, pairs: int, iters: int) -> dict:
    """Time a and b in `pairs` back-to-back pairs (order alternating) of `iters` calls each.

    Returns medians of per-call times and of the per-pair ratios b/a, by CPU time (robust to
    other jobs on a shared machine when torch runs one thread) and by wall-clock time.
    """
    a(), b()  # warm up
    rows = []
    for p in range(pairs):
        if p % 2 == 0:
            ta, tb = timed(a, iters), timed(b, iters)
        else:
            tb, ta = timed(b, iters), timed(a, iters)
        rows.append((ta, tb))
    med = statistics.median
    return {
        "a_cpu_s": med(r[0][1] for r in rows) / iters, "b_cpu_s": med(r[1][1] for r in rows) / iters,
        "a_wall_s": med(r[0][0] for r in rows) / iters, "b_wall_s": med(r[1][0] for r in rows) / iters,
        "ratio_cpu": med(r[1][1] / r[0][1] for r in rows), "ratio_wall": med(r[1][0] / r[0][0] for r in rows),
        "pairs": pairs, "iters": iters,
    }


def calibrate(fn, seconds: float) -> int:
    """How many calls of fn take about `seconds`."""
    fn()
    start = time.perf_counter()
    fn()
    return max(1, round(seconds / max(time.perf_counter() - start, 1e-6)))


# ----------------------------------------------------------------------------- 1. caching
def bench_caching(backends: dict[str, hooks.Backend], sentences: list[list[str]], pairs: int) -> dict:
    results = {}
    for kind, backend in backends.items():
        plain = plain_call(backend)
        names = backend.resid_names()
        shapes = {
            "treebank batch of 32": backend.tokens(sentences[:32]),
            "32 x 128 tokens": torch.randint(0, backend.metadata.vocab_size, (32, backend.metadata.context_len),
                                             generator=torch.Generator().manual_seed(0)),
        }
        results[kind] = {}
        for label, ids in shapes.items():
            def run_plain():
                with torch.no_grad():
                    plain(ids)

            def run_cached():
                backend.forward_tokens(ids, names, logits=True)

            r = alternating(run_plain, run_cached, pairs, calibrate(run_plain, 0.15))
            results[kind][label] = {"batch": list(ids.shape), "plain_ms": 1e3 * r["a_cpu_s"],
                                    "cache_all_resid_ms": 1e3 * r["b_cpu_s"], "ratio": r["ratio_cpu"],
                                    "ratio_wall": r["ratio_wall"], "pairs": r["pairs"], "iters": r["iters"]}
            print(f"  {kind:8s} {label:22s} plain {1e3 * r['a_cpu_s']:7.2f} ms  cache every resid "
                  f"{1e3 * r['b_cpu_s']:7.2f} ms  ratio {r['ratio_cpu']:.3f}x (wall {r['ratio_wall']:.3f}x)",
                  flush=True)
    return results


# ----------------------------------------------------------------------------- 2. store throughput
def bench_store(backends: dict[str, hooks.Backend], corpus: Path, pairs: int, batch_size: int, work: Path) -> dict:
    from corpus import read_conllu

    sentences = [s.forms for s in read_conllu(corpus)]
    n_words = sum(map(len, sentences))
    results = {}
    for kind, backend in backends.items():
        plain = plain_call(backend)
        batches = [backend.tokens(sentences[i:i + batch_size]) for i in range(0, len(sentences), batch_size)]
        counter = iter(range(10**6))

        def run_plain():
            with torch.no_grad():
                for ids in batches:
                    plain(ids)

        def run_store():
            out = work / f"{kind}-{next(counter)}"
            hooks.ActivationStore.build(out, backend, corpus, batch_size=batch_size)

        r = alternating(run_plain, run_store, pairs, 1)
        results[kind] = {"sentences": len(sentences), "words": n_words, "batch_size": batch_size,
                         "plain_words_per_s": n_words / r["a_cpu_s"], "store_words_per_s": n_words / r["b_cpu_s"],
                         "throughput_ratio": 1 / r["ratio_cpu"], "throughput_ratio_wall": 1 / r["ratio_wall"],
                         "pairs": pairs}
        print(f"  {kind:8s} plain forward {n_words / r['a_cpu_s']:8.0f} words/s  store {n_words / r['b_cpu_s']:8.0f}"
              f" words/s  store/plain {1 / r['ratio_cpu']:.3f}x (wall {1 / r['ratio_wall']:.3f}x; goal >= 0.8)",
              flush=True)
    return results


# ----------------------------------------------------------------------------- 3. peak RSS
def vm_hwm_mb() -> float:
    """Peak resident set of this process (VmHWM). Unlike getrusage's ru_maxrss, which Linux
    carries across exec (a child would report its parent's peak), it starts fresh at exec."""
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_child(spec: str, corpus: str, out: str) -> None:
    """Run in a fresh process: load, warm up, extract; report the peak RSS before and after."""
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))
    backend = hooks.load(spec)
    backend.run([["the"]])
    before = vm_hwm_mb()
    start = time.perf_counter()
    store = hooks.ActivationStore.build(out, backend, corpus, dtype="float32", batch_size=32)
    seconds = time.perf_counter() - start
    after = vm_hwm_mb()
    size = sum(f.stat().st_size for f in Path(out).iterdir())
    print(json.dumps({"words": store.n_words, "sentences": store.n_sentences, "store_bytes": size,
                      "peak_rss_before_mb": before, "peak_rss_after_mb": after,
                      "growth_mb": after - before, "seconds": seconds}))


def bench_rss(specs: dict[str, str], sizes: list[int], work: Path) -> dict:
    results = {}
    corpora = {n: write_corpus(work / f"rss-{n}.conllu", n, seed=1) for n in sizes}
    for kind, spec in specs.items():
        results[kind] = {}
        for n in sizes:
            out = work / f"rss-{kind}-{n}"
            env = {**os.environ, "BENCH_THREADS": str(torch.get_num_threads())}
            proc = subprocess.run([sys.executable, __file__, "--rss-child", spec, str(corpora[n]), str(out)],
                                  capture_output=True, text=True, check=True, env=env)
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            results[kind][str(n)] = row
            print(f"  {kind:8s} {n:6d} sentences {row['words']:7d} words, store {row['store_bytes'] / 2**20:7.1f} MiB:"
                  f" peak RSS {row['peak_rss_after_mb']:7.1f} MiB (after load {row['peak_rss_before_mb']:7.1f},"
                  f" growth {row['growth_mb']:6.1f})", flush=True)
        small, large = (results[kind][str(n)] for n in sizes)
        results[kind]["peak_rss_ratio_large_over_small"] = large["peak_rss_after_mb"] / small["peak_rss_after_mb"]
        print(f"  {kind:8s} peak RSS {sizes[1]} vs {sizes[0]} sentences: "
              f"{results[kind]['peak_rss_ratio_large_over_small']:.3f}x (goal: flat)", flush=True)
    return results


# ----------------------------------------------------------------------------- main
def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(),
            "load_average_at_start": os.getloadavg(), "date": dt.datetime.now().isoformat(timespec="seconds")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and smaller corpora")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (default 1: CPU-time ratios stay meaningful on a busy machine)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "hooks.json"))
    parser.add_argument("--rss-child", nargs=3, metavar=("SPEC", "CORPUS", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        rss_child(*args.rss_child)
        return
    torch.set_num_threads(args.threads)
    pairs, store_pairs = (5, 3) if args.quick else (11, 5)
    store_sentences, rss_sizes = (300, [300, 1200]) if args.quick else (1000, [1000, 8000])
    info = machine()
    print(f"hooks benchmark on {info['cpu']} ({info['cores']} cores, torch threads {info['torch_threads']}, "
          f"load {tuple(round(x, 2) for x in info['load_average_at_start'])})")
    with tempfile.TemporaryDirectory(prefix="bench_hooks_") as tmp:
        work = Path(tmp)
        paths = build_models(work, 4000)
        specs = {"native": str(paths["run"]), "gpt2": f"gpt2:{paths['gpt2']}", "tl": f"tl:{paths['gpt2']}",
                 "nnsight": f"nnsight:{paths['gpt2']}"}
        backends = {kind: hooks.load(spec) for kind, spec in specs.items()}
        from corpus import read_conllu

        sentences = [s.forms for s in read_conllu(paths["corpus"])[:64]]
        print("1. cache every block's residual stream vs plain forward (CPU time per call)")
        caching = bench_caching(backends, sentences, pairs)
        print("2. activation store throughput vs plain forward (CPU time; everything included)")
        store_corpus = write_corpus(work / "store.conllu", store_sentences, seed=2)
        store = bench_store(backends, store_corpus, store_pairs, 32, work)
        print("3. peak RSS of a store extraction at two corpus sizes (fresh process each)")
        rss = bench_rss({"native": specs["native"], "tl": specs["tl"]}, rss_sizes, work)
    info["load_average_at_end"] = os.getloadavg()
    result = {"machine": info,
              "note": "shared machine: other engineers' jobs ran at the same time; ratios use CPU time "
                      "of this process (wall-clock ratios alongside)",
              "models": {"native": "word-level GPT, demo preset (6 blocks x 128, 4 heads)",
                         "gpt2/tl/nnsight": "random GPT-2 of the same shape, byte-level BPE 512"},
              "caching": caching, "store": store, "rss": rss}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
