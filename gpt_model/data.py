"""Training data: documents (sentences) packed into fixed-length rows, and a stateless sampler.

Packing. Every document becomes ``<bos> w1 … wn <eos>``; documents are laid greedily, in a
seeded order, into rows of ``seq_len + 1`` tokens without splitting any document that fits in
a row (longer ones are cut into row-sized pieces); the tail of a row is ``<pad>``. A row gives
inputs ``row[:-1]`` and targets ``row[1:]``; targets that are ``<pad>`` or a ``<bos>`` (the
certain start of the next document) are -100, ignored by the loss. The loss thus averages over
exactly the tokens the treebank's entropy floor counts: words and ``<eos>``.

Sampling. Global position ``p = (step·A + micro)·B·W + rank·B + i`` (A accumulation steps,
B rows per rank, W ranks) maps to row ``perm_e[p mod N]`` of epoch ``e = p div N``, where
``perm_e`` is a permutation seeded by (seed, e). The batch of any step is a pure function of
the step, so resuming needs no sampler state, every rank draws its own disjoint slice, and
one process with batch B·W sees the same rows as W processes with batch B.

`prepare_data` builds the datasets from the built-in treebank or from a text file, with a
word-level or a BPE tokenizer (both from the `corpus` package), and records what it used in
the run directory.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import Tensor

from corpus import tokenizers
from corpus.tokenizers import TOKENIZER_KINDS
from gpt_model.rundir import TOKENIZER_DIR, RunDir, treebank_dir_of
from corpus.textio import read_text_utf8

IGNORE_INDEX = -100
DATA_SOURCES = ("treebank", "text")


# --------------------------------------------------------------------------- packing
def pack_documents(
    docs: Sequence[Sequence[int]],
    seq_len: int,
    *,
    bos_id: int,
    eos_id: int,
    pad_id: int,
    seed: int | None = 0,
) -> tuple[Tensor, Tensor]:
    """Pack token-id documents into (inputs, targets), both [n_rows, seq_len] int64.

    `seed` shuffles the document order before packing (None keeps the given order). When
    `bos_id == eos_id` (GPT-2's single ``<|endoftext|>``), documents are separated by one such
    token, which ends one document (a counted target) and starts the next.
    """
    if seq_len < 2:
        raise ValueError(f"seq_len must be at least 2, got {seq_len}")
    order = list(range(len(docs)))
    if seed is not None:
        g = torch.Generator().manual_seed(int(seed))
        order = torch.randperm(len(docs), generator=g).tolist()
    shared = bos_id == eos_id
    row_len = seq_len + 1
    rows: list[tuple[list[int], list[bool]]] = []  # tokens, "counted as a target"
    head: tuple[list[int], list[bool]] = ([bos_id], [False]) if shared else ([], [])
    cur_tok, cur_cnt = list(head[0]), list(head[1])

    def close() -> None:
        nonlocal cur_tok, cur_cnt
        if len(cur_tok) > 1 and any(cur_cnt[1:]):
            rows.append((cur_tok, cur_cnt))
        cur_tok, cur_cnt = list(head[0]), list(head[1])

    for i in order:
        if shared:
            tok, cnt = [*docs[i], eos_id], [True] * (len(docs[i]) + 1)
        else:
            tok, cnt = [bos_id, *docs[i], eos_id], [False] + [True] * (len(docs[i]) + 1)
        if len(cur_tok) + len(tok) > row_len:
            close()
        if len(cur_tok) + len(tok) > row_len:  # longer than a row: cut into row-sized pieces
            tok, cnt = cur_tok + tok, cur_cnt + cnt
            for start in range(0, len(tok) - 1, row_len - 1):  # overlap 1: every token a target once
                cur_tok, cur_cnt = tok[start : start + row_len], cnt[start : start + row_len]
                close()
            continue
        cur_tok.extend(tok)
        cur_cnt.extend(cnt)
    close()
    if not rows:
        raise ValueError("no documents to pack")
    table = torch.full((len(rows), row_len), pad_id, dtype=torch.long)
    counted = torch.zeros((len(rows), row_len), dtype=torch.bool)
    for r, (tok, cnt) in enumerate(rows):
        table[r, : len(tok)] = torch.tensor(tok, dtype=torch.long)
        counted[r, : len(cnt)] = torch.tensor(cnt, dtype=torch.bool)
    inputs = table[:, :-1].contiguous()
    targets = table[:, 1:].masked_fill(~counted[:, 1:], IGNORE_INDEX)
    return inputs, targets


class PackedDataset:
    """Rows of packed documents: `inputs`, `targets` [n_rows, seq_len] (targets -100 = ignore)."""

    def __init__(self, inputs: Tensor, targets: Tensor):
        if inputs.shape != targets.shape or inputs.dim() != 2:
            raise ValueError(
                f"inputs and targets must both be [rows, seq_len], got {tuple(inputs.shape)} "
                f"and {tuple(targets.shape)}"
            )
        self.inputs = inputs.long().contiguous()
        self.targets = targets.long().contiguous()

    @classmethod
    def from_documents(cls, docs: Sequence[Sequence[int]], seq_len: int, *, bos_id: int, eos_id: int,
                       pad_id: int, seed: int | None = 0) -> "PackedDataset":
        return cls(*pack_documents(docs, seq_len, bos_id=bos_id, eos_id=eos_id, pad_id=pad_id, seed=seed))

    def __len__(self) -> int:
        return self.inputs.shape[0]

    @property
    def seq_len(self) -> int:
        return self.inputs.shape[1]

    def batch(self, idx: Tensor) -> tuple[Tensor, Tensor]:
        return self.inputs[idx], self.targets[idx]

    def n_targets(self, idx: Tensor | None = None) -> int:
        """Number of counted (non-ignored) targets in rows `idx` (all rows by default)."""
        t = self.targets if idx is None else self.targets[idx]
        return int((t != IGNORE_INDEX).sum())

    def fingerprint(self) -> str:
        """A short hash of the rows: resuming checks the data did not change."""
        h = hashlib.sha256()
        h.update(str(tuple(self.inputs.shape)).encode())
        h.update(self.inputs.numpy().tobytes())
        h.update(self.targets.numpy().tobytes())
        return h.hexdigest()[:16]


# --------------------------------------------------------------------------- sampling
class BatchSampler:
    """Row indices of every (step, micro-step, rank): a pure function of its arguments."""

    def __init__(self, n_rows: int, batch_size: int, *, seed: int = 0, world_size: int = 1,
                 rank: int = 0, grad_accum_steps: int = 1):
        if n_rows < 1:
            raise ValueError("the dataset has no rows")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} not in [0, {world_size})")
        self.n_rows, self.batch_size = n_rows, batch_size
        self.seed, self.world_size, self.rank = seed, world_size, rank
        self.grad_accum_steps = grad_accum_steps
        self._perms: dict[int, Tensor] = {}

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.world_size

    def _perm(self, epoch: int) -> Tensor:
        if epoch not in self._perms:
            if len(self._perms) > 2:
                self._perms.clear()
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perms[epoch] = torch.randperm(self.n_rows, generator=g)
        return self._perms[epoch]

    def _rows(self, start: int, count: int) -> Tensor:
        pos = torch.arange(start, start + count)
        epochs = pos // self.n_rows
        out = torch.empty(count, dtype=torch.long)
        for e in epochs.unique().tolist():
            sel = epochs == e
            out[sel] = self._perm(e)[pos[sel] % self.n_rows]
        return out

    def global_indices(self, step: int, micro: int = 0) -> Tensor:
        """Rows of all ranks for (step, micro), rank-major: [global_batch]."""
        start = (step * self.grad_accum_steps + micro) * self.global_batch
        return self._rows(start, self.global_batch)

    def indices(self, step: int, micro: int = 0) -> Tensor:
        """This rank's rows for (step, micro): [batch_size]."""
        start = (step * self.grad_accum_steps + micro) * self.global_batch + self.rank * self.batch_size
        return self._rows(start, self.batch_size)

    def epoch(self, step: int) -> float:
        return step * self.grad_accum_steps * self.global_batch / self.n_rows


# --------------------------------------------------------------------------- synthetic data
def synthetic_documents(n_docs: int, vocab_size: int, *, seed: int = 0, min_len: int = 4,
                        max_len: int = 12, branching: int = 3, n_special: int = 4) -> list[list[int]]:
    """Documents from a random sparse Markov chain over ids [n_special, vocab_size): a stand-in
    for real text in tests and benchmarks (learnable: each token has `branching` successors)."""
    if vocab_size <= n_special + branching:
        raise ValueError("vocab_size too small for synthetic documents")
    g = torch.Generator().manual_seed(seed)
    n = vocab_size - n_special
    successors = torch.randint(0, n, (n, branching), generator=g)
    docs = []
    lengths = torch.randint(min_len, max_len + 1, (n_docs,), generator=g).tolist()
    for length in lengths:
        tok = int(torch.randint(0, n, (1,), generator=g))
        doc = [tok]
        choices = torch.randint(0, branching, (length - 1,), generator=g).tolist()
        for c in choices:
            tok = int(successors[tok, c])
            doc.append(tok)
        docs.append([t + n_special for t in doc])
    return docs


# --------------------------------------------------------------------------- configuration
@dataclass(frozen=True)
class DataConfig:
    """Where the tokens come from.

    source "treebank": the built-in treebank in `path` (a directory with train/val/probe.conllu),
    generated there from the built-in grammar `grammar` (``default`` or ``deep``) with
    `n_sentences` and `treebank_seed` when missing; `path` None means ``<run dir>/data``. An
    existing treebank must have been written with `grammar` (its stats.json says which).
    source "text": a UTF-8 file at `path`, one document per non-empty line, the last
    `val_fraction` of the (seeded, shuffled) lines held out.
    """

    source: str = "treebank"
    path: str | None = None
    tokenizer: str = "word"
    bpe_vocab_size: int = 512
    n_sentences: int = 20_000
    treebank_seed: int = 0
    val_fraction: float = 0.05
    grammar: str = "default"

    def __post_init__(self) -> None:
        from corpus.grammar import GRAMMAR_NAMES

        if self.grammar not in GRAMMAR_NAMES:
            raise ValueError(f"DataConfig.grammar must be one of {GRAMMAR_NAMES}, got {self.grammar!r}")
        if self.source not in DATA_SOURCES:
            raise ValueError(f"DataConfig.source must be one of {DATA_SOURCES}, got {self.source!r}")
        if self.tokenizer not in TOKENIZER_KINDS:
            raise ValueError(f"DataConfig.tokenizer must be one of {TOKENIZER_KINDS}, got {self.tokenizer!r}")
        if self.path is not None and not isinstance(self.path, str):
            raise ValueError(f"DataConfig.path must be a string or None, got {self.path!r}")
        if self.source == "text" and not self.path:
            raise ValueError("DataConfig.path must name a text file when DataConfig.source is 'text'")
        for name, low in (("bpe_vocab_size", 64), ("n_sentences", 10)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"DataConfig.{name} must be an integer ≥ {low}, got {value!r}")
        if not isinstance(self.treebank_seed, int) or isinstance(self.treebank_seed, bool):
            raise ValueError(f"DataConfig.treebank_seed must be an integer, got {self.treebank_seed!r}")
        if not isinstance(self.val_fraction, (int, float)) or not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"DataConfig.val_fraction must be in (0, 1), got {self.val_fraction!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DataConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown DataConfig field(s): {', '.join(unknown)}")
        return cls(**data)


@dataclass
class DataBundle:
    """What the trainer and the evaluation need from the data."""

    train: PackedDataset
    val: PackedDataset
    tokenizer: Any
    tokenizer_info: dict[str, str]  # the run config's "tokenizer" section
    data_info: dict[str, Any] = field(default_factory=dict)  # corpus dir, floor, sizes
    agreement_pairs: list = field(default_factory=list)  # (prefix words, good verb, bad verb)
    val_sentences: list = field(default_factory=list)
    # every agreeing word of the held-out splits, tagged (corpus.TaggedPair); deep grammar only
    tagged_pairs: list = field(default_factory=list)

    @property
    def entropy_floor(self) -> float | None:
        return self.data_info.get("entropy_floor_nats")


# --------------------------------------------------------------------------- tokenizer glue
class BPETokenizer:
    """The byte-level BPE of `corpus.train_bpe_tokenizer` (a GPT2TokenizerFast) behind the
    word tokenizer's interface: ``encode(words)``, ``bos_id`` / ``eos_id`` / ``pad_id``,
    ``len()``. GPT-2 has one special token, ``<|endoftext|>``: it is bos, eos and pad."""

    SPECIAL = "<|endoftext|>"

    def __init__(self, hf_tokenizer: Any):
        self.hf = hf_tokenizer
        vocab = hf_tokenizer.get_vocab()
        if self.SPECIAL not in vocab:
            raise ValueError(f"BPE tokenizer has no {self.SPECIAL} token")
        self.bos_id = self.eos_id = self.pad_id = int(vocab[self.SPECIAL])

    def __len__(self) -> int:
        return len(self.hf)

    def encode(self, words: Sequence[str]) -> list[int]:
        if not words:
            return []
        return list(self.hf(" ".join(words), add_special_tokens=False)["input_ids"])

    @classmethod
    def train(cls, texts: Sequence[str], vocab_size: int, out_dir: str | Path) -> "BPETokenizer":
        import corpus

        return cls(corpus.train_bpe_tokenizer(texts, vocab_size, out_dir))

    @classmethod
    def load(cls, path: str | Path) -> "BPETokenizer":
        return cls(tokenizers.load_bpe(path))


def encode_words(tokenizer: Any, words: Sequence[str]) -> list[int]:
    """Token ids of `words` without <bos>/<eos>, for either tokenizer kind."""
    return list(tokenizer.encode(list(words)))


def tokenizer_ids(tokenizer: Any) -> dict[str, int]:
    return {"bos_id": tokenizer.bos_id, "eos_id": tokenizer.eos_id, "pad_id": tokenizer.pad_id}


def load_tokenizer(run_dir: str | Path, info: dict[str, str]) -> Any:
    """The tokenizer a run directory's config.json section "tokenizer" (`info`) names, loaded by
    ``corpus.tokenizers.load_tokenizer``; a BPE one wrapped in `BPETokenizer`."""
    path = RunDir(run_dir).tokenizer_path({"tokenizer": info}) or Path(run_dir)
    tokenizer = tokenizers.load_tokenizer(info.get("kind", ""), path)
    return tokenizer if info.get("kind") == "word" else BPETokenizer(tokenizer)


def _relative_to(path: Path, root: Path) -> str:
    """`path` relative to `root` when inside it (a portable run dir), else absolute."""
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path.resolve())


# --------------------------------------------------------------------------- building
def ensure_treebank(cfg: DataConfig, corpus_dir: Path, *, generate: bool = True) -> dict[str, Any]:
    """Generate the treebank into `corpus_dir` unless it is complete (`corpus.is_complete_treebank`:
    stats.json, written last, marks a complete one); return its stats."""
    import corpus
    from corpus.treebank import STATS_FILE, is_complete_treebank

    if not is_complete_treebank(corpus_dir):
        if not generate:
            raise FileNotFoundError(f"no complete treebank at {corpus_dir} (missing {STATS_FILE} or a split)")
        corpus_dir.mkdir(parents=True, exist_ok=True)
        return dict(corpus.write_treebank(corpus_dir, cfg.n_sentences, cfg.treebank_seed,
                                          grammar=corpus.builtin_grammar(cfg.grammar)))
    return json.loads((corpus_dir / STATS_FILE).read_text())


def _check_grammar(cfg: DataConfig, corpus_dir: Path) -> str:
    """The grammar the treebank in `corpus_dir` was written with; it must be `cfg.grammar`."""
    from corpus.treebank import STATS_FILE, treebank_grammar

    name = treebank_grammar(json.loads((corpus_dir / STATS_FILE).read_text()))
    if name != cfg.grammar:
        raise ValueError(f"the treebank at {corpus_dir} was written with grammar {name!r}, but data.grammar is "
                         f"{cfg.grammar!r} (pass --set data.grammar={name}, or another --corpus)")
    return name


def _build_word_tokenizer(corpus_dir: Path | None, train_sents: list) -> Any:
    import corpus

    vocab = corpus_dir / "vocab.json" if corpus_dir is not None else None
    if vocab is not None and vocab.is_file():  # the grammar's whole vocabulary
        return corpus.WordTokenizer.load(vocab)
    return corpus.WordTokenizer.from_sentences(train_sents)


@dataclass
class _Texts:
    """The word sequences of a corpus's train and validation splits, and what to record of them."""

    train: list[list[str]]
    val: list[list[str]]
    info: dict[str, Any]
    train_sents: list = field(default_factory=list)
    val_sents: list = field(default_factory=list)
    corpus_dir: Path | None = None
    grammar: str = "default"


def _treebank_texts(cfg: DataConfig, run_dir: Path, is_main: bool, wait: Callable[[], None]) -> _Texts:
    import corpus

    corpus_dir = treebank_dir_of(cfg.to_dict(), run_dir)
    if is_main:
        ensure_treebank(cfg, corpus_dir)
    wait()
    grammar = _check_grammar(cfg, corpus_dir)
    train_sents = corpus.read_conllu(corpus_dir / "train.conllu")
    val_sents = corpus.read_conllu(corpus_dir / "val.conllu")
    info: dict[str, Any] = {"source": cfg.source, "corpus_dir": _relative_to(corpus_dir, run_dir)}
    if grammar != "default":  # the default run's config.json stays as it was
        info["grammar"] = grammar
    if val_sents and all(s.logprob is not None for s in val_sents):
        # the floor of exactly the sentences the validation loss averages over
        info["entropy_floor_nats"] = corpus.entropy_floor(val_sents)
    if train_sents and all(s.logprob is not None for s in train_sents):
        info["train_entropy_floor_nats"] = corpus.entropy_floor(train_sents)
    return _Texts([s.forms for s in train_sents], [s.forms for s in val_sents], info,
                  train_sents, val_sents, corpus_dir, grammar)


def _text_file_texts(cfg: DataConfig, seed: int) -> _Texts:
    path = Path(cfg.path)  # validated non-empty
    if not path.is_file():
        raise FileNotFoundError(f"no text file at {path}")
    lines = [ln.split() for ln in read_text_utf8(path).splitlines() if ln.strip()]
    if len(lines) < 2:
        raise ValueError(f"{path}: need at least 2 non-empty lines (train and validation)")
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(lines), generator=g).tolist()
    n_val = max(1, int(round(len(lines) * cfg.val_fraction)))
    info = {"source": cfg.source, "text_file": str(path.resolve()), "n_lines": len(lines)}
    return _Texts([lines[i] for i in order[n_val:]], [lines[i] for i in order[:n_val]], info)


def _run_tokenizer(cfg: DataConfig, run_dir: Path, texts: _Texts, *, reuse: bool, is_main: bool,
                   wait: Callable[[], None]) -> tuple[Any, dict[str, str]]:
    """The run's tokenizer (built, saved by the main rank, or reloaded) and its config section."""
    import corpus

    tok_dir = run_dir / TOKENIZER_DIR
    if cfg.tokenizer == "word":
        info = {"kind": "word", "path": f"{TOKENIZER_DIR}/vocab.json"}
        if reuse and (run_dir / info["path"]).is_file():
            return load_tokenizer(run_dir, info), info
        if texts.train_sents:
            tokenizer = _build_word_tokenizer(texts.corpus_dir, texts.train_sents)
        else:
            counts: dict[str, int] = {}
            for words in texts.train:
                for w in words:
                    counts[w] = counts.get(w, 0) + 1
            ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
            tokenizer = corpus.WordTokenizer.from_words(w for w, _ in ranked)
        if is_main:
            tok_dir.mkdir(parents=True, exist_ok=True)
            tokenizer.save(run_dir / info["path"])
        return tokenizer, info
    info = {"kind": "bpe", "path": TOKENIZER_DIR}
    if reuse and (tok_dir / "merges.txt").is_file():
        return load_tokenizer(run_dir, info), info
    tokenizer = None
    if is_main:
        tokenizer = BPETokenizer.train([" ".join(t) for t in texts.train], cfg.bpe_vocab_size, tok_dir)
    wait()
    if not is_main:
        tokenizer = load_tokenizer(run_dir, info)
    return tokenizer, info


def prepare_data(cfg: DataConfig, run_dir: str | Path, seq_len: int, *, seed: int = 0,
                 reuse_tokenizer: bool = False, is_main: bool = True,
                 wait: Any = None) -> DataBundle:
    """Read (generating if needed) the corpus, build or reload the tokenizer, pack the splits.

    Only the main rank writes files (treebank, tokenizer); `wait()` is a barrier the other
    ranks pass after it did. `reuse_tokenizer` loads the run's saved tokenizer (resume).
    """
    import corpus

    run_dir = Path(run_dir)
    wait = wait or (lambda: None)
    if cfg.source == "treebank":
        texts = _treebank_texts(cfg, run_dir, is_main, wait)
    else:
        texts = _text_file_texts(cfg, seed)
    tokenizer, info = _run_tokenizer(cfg, run_dir, texts, reuse=reuse_tokenizer, is_main=is_main, wait=wait)
    wait()

    ids = tokenizer_ids(tokenizer)
    train_docs = [encode_words(tokenizer, words) for words in texts.train]
    val_docs = [encode_words(tokenizer, words) for words in texts.val]
    train = PackedDataset.from_documents(train_docs, seq_len, seed=seed, **ids)
    val = PackedDataset.from_documents(val_docs, seq_len, seed=None, **ids)
    # Agreement pairs from every held-out split: validation and probing sentences.
    held_out = list(texts.val_sents)
    if texts.corpus_dir is not None and (texts.corpus_dir / "probe.conllu").is_file():
        held_out += corpus.read_conllu(texts.corpus_dir / "probe.conllu")
    grammar = corpus.builtin_grammar(texts.grammar)
    pairs = list(corpus.agreement_minimal_pairs(held_out, grammar)) if held_out else []
    tagged = corpus.deep_minimal_pairs(held_out, grammar) if held_out and texts.grammar == "deep" else []
    data_info = dict(texts.info)
    data_info.update(train_rows=len(train), val_rows=len(val), train_targets=train.n_targets(),
                     val_targets=val.n_targets(), train_documents=len(train_docs),
                     val_documents=len(val_docs), agreement_pairs=len(pairs))
    if tagged:
        data_info["tagged_pairs"] = len(tagged)
    return DataBundle(train=train, val=val, tokenizer=tokenizer, tokenizer_info=info,
                      data_info=data_info, agreement_pairs=pairs, val_sentences=texts.val_sents,
                      tagged_pairs=tagged)


def unigram_entropy(dataset: PackedDataset, vocab_size: int) -> float:
    """Entropy (nats) of the unigram distribution of the counted targets: the loss of a model
    that ignores context."""
    t = dataset.targets[dataset.targets != IGNORE_INDEX]
    counts = torch.bincount(t, minlength=vocab_size).double()
    p = counts[counts > 0] / counts.sum()
    return float(-(p * p.log()).sum())


def tokens_per_second(tokens: int, seconds: float) -> float:
    return tokens / seconds if seconds > 0 else math.nan
