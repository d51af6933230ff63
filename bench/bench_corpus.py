"""Benchmark of the corpus package: treebank generation, CoNLL-U I/O, and the chart parser.

    .venv/bin/python bench/bench_corpus.py [--sentences 100000] [--seed 0]

Prints the numbers and writes them to bench/results/corpus.json. Peers, measured in the same
run: reading with ``corpus.read_conllu`` (validating, line numbers) against the ``conllu``
package's own ``parse_incr``, and our cached writer against ``conllu``'s ``TokenList.serialize``.
Times are wall-clock (``time.perf_counter``), best of ``--repeat`` runs for the short ones.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # running from a source tree that was not pip-installed
    sys.path.insert(0, str(ROOT))

import conllu  # noqa: E402

from corpus import (  # noqa: E402
    DEFAULT_GRAMMAR, ChartParser, compile_grammar, generate_sentences, read_conllu, write_treebank,
)
from corpus.conllu_io import format_conllu, sentence_to_tokenlist  # noqa: E402
from corpus.sampler import sample_derivation  # noqa: E402


def timed(fn, repeat: int = 1):
    """Best wall-clock seconds over ``repeat`` runs, and the result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def timed_cpu(fn):
    """(wall seconds, CPU seconds of this process, result): on a shared machine the CPU time
    is the figure that does not depend on what the neighbours run."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sentences", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "corpus.json")
    args = ap.parse_args()
    n = args.sentences
    load = os.getloadavg()[0]
    print(f"load average at start: {load:.2f} on {os.cpu_count()} CPUs")

    gen_s, gen_cpu, sentences = timed_cpu(lambda: generate_sentences(n, args.seed))
    print(f"generate_sentences({n}): {gen_s:.2f} s wall, {gen_cpu:.2f} s CPU "
          f"({n / gen_cpu:,.0f} sentences per CPU second)")

    with tempfile.TemporaryDirectory() as tmp:
        tb_s, tb_cpu, stats = timed_cpu(lambda: write_treebank(tmp, n, args.seed))
        print(f"write_treebank({n}) incl. generation, splits, CoNLL-U, stats: {tb_s:.2f} s wall, "
              f"{tb_cpu:.2f} s CPU")
        train = Path(tmp) / "train.conllu"
        size_mb = train.stat().st_size / 1e6
        read_s, train_sents = timed(lambda: read_conllu(train), args.repeat)

        def peer_read():
            with open(train, encoding="utf-8") as handle:
                return sum(1 for _ in conllu.parse_incr(handle))

        peer_read_s, peer_count = timed(peer_read, args.repeat)
        assert peer_count == len(train_sents)
    print(f"read train.conllu ({len(train_sents)} sentences, {size_mb:.1f} MB): {read_s:.2f} s; "
          f"conllu.parse_incr: {peer_read_s:.2f} s; ratio ours/peer = {read_s / peer_read_s:.2f}")

    sample = sentences[: min(20_000, n)]
    write_s, _ = timed(lambda: format_conllu(sample), args.repeat)
    peer_write_s, _ = timed(lambda: "".join(sentence_to_tokenlist(s).serialize() for s in sample), args.repeat)
    print(f"serialise {len(sample)} sentences: {write_s:.2f} s; conllu TokenList.serialize: "
          f"{peer_write_s:.2f} s; speed-up {peer_write_s / write_s:.1f}x")

    pcfg = compile_grammar(DEFAULT_GRAMMAR)
    parser = ChartParser(pcfg)
    rng = random.Random(args.seed)
    trees = [sample_derivation(pcfg, rng)[0] for _ in range(2000)]

    def leaves(node):
        return [node.children[0]] if node.rule < 0 else [w for c in node.children for w in leaves(c)]

    word_lists = [leaves(t) for t in trees]
    parse_s, results = timed(lambda: [parser.parse(w) for w in word_lists])
    assert all(r.count == 1 for r in results)
    print(f"chart parser: {1000 * parse_s / len(word_lists):.3f} ms/sentence "
          f"(mean {sum(map(len, word_lists)) / len(word_lists):.1f} words), all with exactly one parse")

    length = stats["length"]
    agreement = stats["agreement"]
    print(f"entropy floor {stats['entropy_floor_nats_per_token']:.4f} nats/token "
          f"(exact expectation {pcfg.expected_floor:.4f}); unigram entropy "
          f"{stats['unigram_entropy_nats_per_token']:.4f}; length {length['min']}-{length['max']} "
          f"mean {length['mean']:.2f}; attractor rate {agreement['attractor_rate']:.4f}; "
          f"distinct sentences {stats['distinct_texts']}/{n}")

    result = {
        "date": dt.date.today().isoformat(),
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpus": os.cpu_count()},
        "sentences": n,
        "seed": args.seed,
        "load_average_at_start": load,
        "generate_seconds": gen_s,
        "generate_cpu_seconds": gen_cpu,
        "generate_sentences_per_cpu_second": n / gen_cpu,
        "write_treebank_seconds": tb_s,
        "write_treebank_cpu_seconds": tb_cpu,
        "read_train_seconds": read_s,
        "read_peer_conllu_parse_incr_seconds": peer_read_s,
        "read_ratio_ours_over_peer": read_s / peer_read_s,
        "serialize_sentences": len(sample),
        "serialize_seconds": write_s,
        "serialize_peer_tokenlist_seconds": peer_write_s,
        "serialize_speedup_over_peer": peer_write_s / write_s,
        "parser_ms_per_sentence": 1000 * parse_s / len(word_lists),
        "entropy_floor_nats_per_token": stats["entropy_floor_nats_per_token"],
        "expected_entropy_floor_nats_per_token": pcfg.expected_floor,
        "unigram_entropy_nats_per_token": stats["unigram_entropy_nats_per_token"],
        "length": {k: length[k] for k in ("min", "max", "mean")},
        "attractor_rate": agreement["attractor_rate"],
        "sentences_with_attractor": agreement["sentences_with_attractor"],
        "distinct_texts": stats["distinct_texts"],
        "splits": {k: v["sentences"] for k, v in stats["splits"].items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
