"""Write the built-in treebank: ``write_treebank(out_dir, n_sentences, seed, grammar=...)``.

Files (all deterministic: the same arguments give byte-identical files):

``train.conllu``, ``val.conllu``, ``probe.conllu``
    The sentences, split by *distinct sentence string*: every copy of a sentence goes to the
    same split, chosen by a hash of (seed, text). Short sentences recur in a corpus of this
    size, so a plain split by index would put the same string in train and in probe. Because
    each distinct string is assigned independently with the split probabilities, every split is
    still a sample of the grammar's distribution (its entropy floor matches the corpus's); the
    split sizes are close to, not exactly, the requested fractions.
``vocab.json``
    ``WordTokenizer`` over the grammar's whole vocabulary (alphabetical after the 4 specials),
    so it is the same for every seed and size and no split has unknown words.
``stats.json``
    The entropy floor (overall, per split, and the grammar's exact expectation), unigram
    entropy, length histogram, label distributions, attractor rate and split sizes. Written
    last, so it marks a complete treebank. A grammar other than the default adds its name
    (``grammar.name``) and the agreement / embedding structure (``structure``:
    ``corpus.deep_labels.deep_stats``); the default's file is unchanged.

Every file is written durably (``corpus.durable``): a reader sees the old file or the whole new
one, and stats.json exists only once the others are on disk. ``progress(stage, done, total)``
(optional) hears of each stage: "generating" and "writing" (sentences), then "stats".
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from corpus.conllu_io import serialize_sentence
from corpus.durable import atomic_write_text, atomic_write_with
from corpus.grammar import DEFAULT_GRAMMAR, Grammar
from corpus.pcfg import compile_grammar
from corpus.sampler import generate_sentences
from corpus.sentence import Sentence
from corpus.stats import (
    agreement_stats, entropy_floor, label_distributions, length_stats, split_stats,
    unigram_entropy,
)
from corpus.tokenizers import WordTokenizer

SPLIT_NAMES = ("train", "val", "probe")
VOCAB_FILE = "vocab.json"
STATS_FILE = "stats.json"  # written last: a treebank directory holding it is complete
Progress = Callable[[str, int, int], None]  # (stage, done, total)
WRITE_CHUNK = 1000  # sentences encoded and written at a time


def split_file(split: str) -> str:
    """The file name of a split: ``train.conllu``, ``val.conllu`` or ``probe.conllu``."""
    if split not in SPLIT_NAMES:
        raise ValueError(f"unknown treebank split {split!r} (one of {', '.join(SPLIT_NAMES)})")
    return f"{split}.conllu"


def is_complete_treebank(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` holds a whole treebank written by ``write_treebank``: every split and
    the vocabulary, and the completeness marker stats.json."""
    path = Path(path)
    names = (*(split_file(name) for name in SPLIT_NAMES), VOCAB_FILE, STATS_FILE)
    return all((path / name).is_file() for name in names)


@dataclass(frozen=True)
class SplitConfig:
    """Fractions of distinct sentence strings that go to train / val / probe."""

    train: float = 0.90
    val: float = 0.05
    probe: float = 0.05

    def __post_init__(self) -> None:
        for name in SPLIT_NAMES:
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 < value < 1.0:
                raise ValueError(f"SplitConfig.{name} must be in (0, 1), got {value!r}")
        if not math.isclose(self.train + self.val + self.probe, 1.0, abs_tol=1e-9):
            raise ValueError("SplitConfig: train + val + probe must sum to 1")


def assign_splits(sentences: Sequence[Sentence], seed: int,
                  config: SplitConfig = SplitConfig()) -> dict[str, list[Sentence]]:
    """Split by a hash of (seed, text): identical sentences always land in the same split."""
    splits: dict[str, list[Sentence]] = {name: [] for name in SPLIT_NAMES}
    cut_train = config.train
    cut_val = config.train + config.val
    for s in sentences:
        digest = hashlib.blake2b(f"{seed}\x00{s.text}".encode(), digest_size=8).digest()
        u = int.from_bytes(digest, "big") / 2.0**64
        splits["train" if u < cut_train else "val" if u < cut_val else "probe"].append(s)
    return splits


def write_treebank(out_dir: str | os.PathLike[str], n_sentences: int = 50_000, seed: int = 0,
                   grammar: Grammar = DEFAULT_GRAMMAR, split: SplitConfig = SplitConfig(),
                   progress: Progress | None = None) -> dict:
    """Generate, split and write the treebank to ``out_dir``; returns the stats (= stats.json).
    ``progress``: see the module doc."""
    if not isinstance(n_sentences, int) or isinstance(n_sentences, bool) or n_sentences < 1:
        raise ValueError(f"n_sentences must be an int >= 1, got {n_sentences!r}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a directory")
    report = progress or (lambda stage, done, total: None)
    sentences = generate_sentences(n_sentences, seed, grammar,
                                   progress=lambda done: report("generating", done, n_sentences))
    splits = assign_splits(sentences, seed, split)
    empty = [name for name, sents in splits.items() if not sents]
    if empty:
        raise ValueError(f"{n_sentences} sentences leave split(s) {', '.join(empty)} empty: ask for more")
    out.mkdir(parents=True, exist_ok=True)
    (out / STATS_FILE).unlink(missing_ok=True)  # incomplete until the new one is written
    written = 0
    for name in SPLIT_NAMES:
        written = _write_split(out / split_file(name), splits[name], written, n_sentences, report)
    tokenizer = WordTokenizer.from_words(grammar.vocabulary())
    tokenizer.save(out / VOCAB_FILE)  # durable: WordTokenizer.save writes through corpus.durable
    report("stats", 0, 1)
    stats = treebank_stats(sentences, splits, seed, grammar, len(tokenizer), split)
    atomic_write_text(out / STATS_FILE, json.dumps(stats, indent=2) + "\n")
    report("stats", 1, 1)
    return stats


def _write_split(path: Path, sentences: Sequence[Sentence], written: int, total: int, report: Progress) -> int:
    """One split's CoNLL-U (``format_conllu``'s bytes), written durably a chunk at a time so that
    neither the whole text sits in memory nor the progress stalls; returns ``written`` + its size."""
    def write(tmp: Path) -> None:
        nonlocal written
        with open(tmp, "wb") as handle:
            for start in range(0, len(sentences), WRITE_CHUNK):
                chunk = sentences[start:start + WRITE_CHUNK]
                handle.write("".join(serialize_sentence(s) for s in chunk).encode("utf-8"))
                written += len(chunk)
                report("writing", written, total)

    atomic_write_with(path, write)
    return written


def treebank_stats(sentences: Sequence[Sentence], splits: dict[str, list[Sentence]], seed: int,
                   grammar: Grammar, vocab_size: int, split: SplitConfig = SplitConfig()) -> dict:
    pcfg = compile_grammar(grammar)
    floor = entropy_floor(sentences)
    unigram = unigram_entropy(sentences)
    stats = {
        "seed": seed,
        "n_sentences": len(sentences),
        "entropy_floor_nats_per_token": floor,
        "unigram_entropy_nats_per_token": unigram,
        "tokens": sum(len(s.words) + 1 for s in sentences),
        "grammar": {
            "max_depth": grammar.max_depth,
            "max_words": grammar.max_words,
            "vocab_words": len(grammar.vocabulary()),
            "log_z": pcfg.log_z,
            "expected_entropy_floor_nats_per_token": pcfg.expected_floor,
            "expected_sentence_nats": pcfg.expected_logloss,
            "expected_tokens_per_sentence": pcfg.expected_tokens,
        },
        "vocab_size": vocab_size,
        "split_policy": "by distinct sentence string (hash of seed and text); requested "
                        f"train/val/probe = {split.train}/{split.val}/{split.probe}",
        "splits": split_stats(splits),
        "distinct_texts": len({s.text for s in sentences}),
        "length": length_stats(sentences),
        "agreement": agreement_stats(sentences, grammar),
        "labels": label_distributions(sentences),
    }
    if grammar.name != DEFAULT_GRAMMAR.name:  # a default treebank's stats.json stays as it always was
        from corpus.deep_labels import deep_stats

        stats["grammar"] = {"name": grammar.name, **stats["grammar"]}
        stats["structure"] = deep_stats(sentences)
    return stats


def treebank_grammar(stats: dict) -> str:
    """The name of the grammar a treebank's stats.json was written with (``default`` when it
    names none: the default grammar's stats.json has no name)."""
    return str(stats.get("grammar", {}).get("name", DEFAULT_GRAMMAR.name))
