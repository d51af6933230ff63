"""``stratascope corpus``: write the built-in treebank, or check any CoNLL-U file.

    stratascope corpus --out DIR [--sentences N] [--seed S] [--grammar default|deep] [--quiet]
    stratascope corpus --check FILE.conllu
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

DEFAULT_SENTENCES = 50_000
# The whole corpus is generated in memory before it is split and written: about 7 GB and a couple
# of minutes per million sentences. The bound stops a mistyped count, not a large corpus.
MAX_SENTENCES = 10_000_000
SENTENCES_HELP = (f"number of sentences in all splits together (default {DEFAULT_SENTENCES:,}; at most "
                  f"{MAX_SENTENCES:,}: the corpus is built in memory, about 7 GB and a couple of minutes per "
                  f"million sentences)")
PROGRESS_DELAY_S = 2.0  # a stage shows its bar on stderr once it has run this long


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "corpus",
        help="generate the built-in treebank (or check a CoNLL-U file)",
        description="Generate the built-in English treebank: train/val/probe.conllu, vocab.json "
                    "and stats.json (entropy floor, label distributions, attractor rate). "
                    "The same --seed gives byte-identical files.",
    )
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--out", type=Path, metavar="DIR", help="directory to write the treebank to")
    mode.add_argument("--check", type=Path, metavar="FILE",
                      help="read a CoNLL-U file (e.g. a UD treebank) and summarise it")
    parser.add_argument("--sentences", type=int, default=DEFAULT_SENTENCES, metavar="N", help=SENTENCES_HELP)
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    parser.add_argument("--grammar", default="default", metavar="NAME",
                        help="built-in grammar: 'default', or 'deep' (center-embedded relatives, coordinated "
                             "subjects, past tenses with auxiliaries; see docs/treebank.md)")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bars on stderr (shown for a stage that runs over a couple of seconds)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.check is not None:
        return _check(args.check)
    from corpus import builtin_grammar, write_treebank

    if args.sentences < 1:
        raise ValueError(f"--sentences must be >= 1, got {args.sentences}")
    if args.sentences > MAX_SENTENCES:
        raise ValueError(f"--sentences must be at most {MAX_SENTENCES:,} (the corpus is built in memory, about "
                         f"7 GB per million sentences), got {args.sentences}")
    grammar = builtin_grammar(args.grammar)
    start = time.perf_counter()
    with _StageBars(enabled=not args.quiet) as bars:
        stats = write_treebank(args.out, args.sentences, args.seed, grammar=grammar, progress=bars.report)
    elapsed = time.perf_counter() - start
    splits = stats["splits"]
    print(f"wrote {stats['n_sentences']} sentences to {args.out} in {elapsed:.1f} s "
          f"(train {splits['train']['sentences']}, val {splits['val']['sentences']}, "
          f"probe {splits['probe']['sentences']})")
    print(f"entropy floor {stats['entropy_floor_nats_per_token']:.4f} nats/token "
          f"(grammar expectation {stats['grammar']['expected_entropy_floor_nats_per_token']:.4f}, "
          f"unigram entropy {stats['unigram_entropy_nats_per_token']:.4f})")
    length = stats["length"]
    agreement = stats["agreement"]
    print(f"length {length['min']}-{length['max']} words (mean {length['mean']:.2f}); "
          f"attractor rate {agreement['attractor_rate']:.3f} of {agreement['finite_verbs']} finite verbs; "
          f"vocabulary {stats['vocab_size']} tokens")
    if "structure" in stats:
        structure = stats["structure"]
        print(f"grammar {args.grammar}: {structure['agreement_events']} agreement events, "
              f"{100 * structure['long_distance_share']:.1f}% at distance >= 12; clause depth "
              + ", ".join(f"{k}: {v}" for k, v in structure["clause_depth"].items()) + " words")
    return 0


class _StageBars:
    """One tqdm bar on stderr per stage of ``write_treebank`` (generating, writing, stats), each
    shown only once its stage has run ``PROGRESS_DELAY_S`` seconds; nothing when disabled."""

    UNITS = {"generating": "sent", "writing": "sent", "stats": "stage"}

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.stage: str | None = None
        self.bar: Any = None

    def __enter__(self) -> "_StageBars":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def report(self, stage: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        if stage != self.stage:
            from tqdm import tqdm

            self.close()
            self.stage = stage
            self.bar = tqdm(total=total, desc=stage, unit=self.UNITS.get(stage, "it"), file=sys.stderr,
                            leave=False, dynamic_ncols=True, delay=PROGRESS_DELAY_S)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _check(path: Path) -> int:
    from corpus import read_conllu

    sentences = read_conllu(path)
    words = sum(len(s.words) for s in sentences)
    upos = Counter(w.upos for s in sentences for w in s.words)
    mwt = sum(len(s.multiword_tokens) for s in sentences)
    empty = sum(len(s.empty_nodes) for s in sentences)
    with_logprob = sum(s.logprob is not None for s in sentences)
    print(f"{path}: {len(sentences)} sentences, {words} words, {mwt} multiword tokens, "
          f"{empty} empty nodes, {with_logprob} with logprob")
    print("UPOS: " + ", ".join(f"{tag} {n}" for tag, n in upos.most_common()))
    return 0
