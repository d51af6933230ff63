"""ActivationStore: a corpus streamed through a backend, hook activations at word positions
kept on disk as memory-mapped arrays.

    store = ActivationStore.build("runs/demo/acts/probe", backend, "treebank/probe.conllu")
    x = store.layer(3)               # np.memmap [n_words, d_model], rows = words in corpus order
    x = store.read("blocks.2.hook_resid_post")      # the same array
    rows = store.sentence_rows(10)   # slice of sentence 10's words

On disk (one directory):

    index.json               model and its fingerprint, hook names, dtype, shapes, segments,
                             progress (see below)
    sentence_offsets.npy     int64 [n_sentences + 1]: sentence i's words are rows [o[i], o[i+1])
    <hook name>.bin          raw little-endian float16/float32, C order, shape in index.json;
                             open with numpy.memmap(path, dtype, mode="r", shape=shape)

The corpus is read twice: a first pass counts the words (and checks every sentence fits the
context), the files are preallocated at full size, and the second pass runs the model batch by
batch, writing each batch's rows with positioned writes (no growing buffers, no big mapping
held open: peak memory depends on the batch, not on the corpus). Progress is committed to
index.json (atomically) only after the batch's data is written and fsync'ed, so an interrupted
extraction resumes from the last committed batch; batches always start at the same sentences,
so the resumed files are byte-identical to an uninterrupted run's. `append` adds another corpus
as a new segment (the files grow; existing rows stay).

A store is only ever resumed, appended to or reused for the model it was built from: index.json
records the model's fingerprint (``hooks.fingerprint``: its weights and its tokenizer), and
``build``/``append`` with a backend whose fingerprint differs raise ``StaleStoreError`` naming
what differs, or, with ``rebuild=True`` (``build`` only), replace the store. A store written
before fingerprints were recorded (version 1) is read as it is but never reused for building.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from corpus.durable import atomic_write_bytes, atomic_write_json
from corpus.textio import read_json
from hooks.backends import Backend
from hooks.fingerprint import fingerprint_diff, model_fingerprint
from hooks.info import upgrade_info
from hooks.names import is_pairwise, resid_name
from hooks.tokenize import Encoding

INDEX = "index.json"
OFFSETS = "sentence_offsets.npy"
FORMAT = "stratascope.activation_store"
VERSION = 2  # 2: the model's fingerprint is recorded
READABLE_VERSIONS = (1, 2)
DTYPES = {"float16": (np.float16, torch.float16), "float32": (np.float32, torch.float32)}
POSITIONS = ("last", "first", "mean")
# what must match between a store and a backend/corpus resuming or appending to it
MODEL_KEYS = ("name", "backend", "n_layer", "n_head", "d_model", "vocab_size")
# what every index.json holds (checked on opening, so a damaged one is named as such)
INDEX_KEYS = ("model", "names", "files", "shapes", "dtype", "position", "batch_size", "n_sentences", "n_words",
              "segments", "done_sentences", "done_words")


class StaleStoreError(ValueError):
    """An existing store was built from another model (weights, tokenizer, shape) or corpus than
    the one asked for: reusing it would probe the wrong activations."""


class DamagedStoreError(ValueError):
    """A store's files are unreadable or shorter than its index says (a crash, a disk error, a
    hand edit): the store must be deleted or rebuilt."""


# ----------------------------------------------------------------------------- corpus sources
class CorpusSource:
    """Sentences as lists of words, iterable more than once: a CoNLL-U path (streamed), or an
    in-memory list of corpus Sentences / word lists."""

    def __init__(self, corpus: Any):
        if isinstance(corpus, CorpusSource):
            self.path, self.items = corpus.path, corpus.items
        elif isinstance(corpus, (str, os.PathLike)):
            self.path, self.items = Path(corpus), None
            if not self.path.is_file():
                raise FileNotFoundError(f"no such CoNLL-U file: {self.path}")
        else:
            self.path, self.items = None, list(corpus)  # a generator is materialised once

    def __iter__(self) -> Iterator[list[str]]:
        """The word forms of every sentence; a file is parsed (and checked) by corpus.iter_conllu."""
        if self.path is not None:
            from corpus.conllu_io import iter_conllu

            for sentence in iter_conllu(self.path):
                yield sentence.forms
            return
        for item in self.items:
            if hasattr(item, "forms"):
                yield list(item.forms)
            elif isinstance(item, str):
                raise TypeError("a corpus is a list of sentences (word lists), not of strings")
            else:
                yield list(item)

    def forms(self) -> Iterator[list[str]]:
        """The same word forms; a file already checked by a full pass is read quickly, taking
        FORM from the lines whose ID is an integer (the syntactic words of Sentence.words;
        multiword-token ranges and empty nodes are skipped)."""
        if self.path is None:
            yield from self
            return
        words: list[str] = []
        with open(self.path, encoding="utf-8-sig") as handle:
            for line in handle:
                if not line.strip():
                    if words:
                        yield words
                        words = []
                elif not line.startswith("#"):
                    token_id, form, _ = line.split("\t", 2)
                    if token_id.isdigit():
                        words.append(form)
        if words:
            yield words

    def describe(self) -> str:
        return str(self.path) if self.path is not None else f"<{len(self.items)} sentences in memory>"


def _add_sentence(digest: Any, words: list[str]) -> None:
    digest.update("\x1f".join(words).encode())
    digest.update(b"\x1e")


def corpus_fingerprint(corpus: Any) -> str:
    """The fingerprint of a corpus's words that a store's segment records (``segments[i].fingerprint``)."""
    digest = hashlib.sha256()
    for words in CorpusSource(corpus):
        _add_sentence(digest, words)
    return digest.hexdigest()


def _scan(backend: Backend, source: CorpusSource, chunk: int = 256) -> tuple[np.ndarray, str]:
    """First pass: words per sentence and a fingerprint of the words; every sentence's token
    count is checked against the context so an over-long one fails before any work is done."""
    counts: list[int] = []
    digest = hashlib.sha256()
    context = backend.metadata.context_len

    def check(start: int, sentences: list[list[str]]) -> None:
        try:
            lengths = backend.tokenizer.count_tokens(sentences)
        except ValueError:  # find the culprit to name it
            lengths = []
            for i, words in enumerate(sentences):
                try:
                    lengths.append(len(backend.encode(words)))
                except ValueError as err:
                    raise ValueError(f"{source.describe()}: sentence {start + i}: {err}") from err
        for i, n in enumerate(lengths):
            if n > context:
                raise ValueError(
                    f"{source.describe()}: sentence {start + i}: {len(sentences[i])} words are {n} tokens with "
                    f"<bos>, more than the context length of {backend.metadata.name} ({context})"
                )

    pending: list[list[str]] = []
    for words in source:
        counts.append(len(words))
        _add_sentence(digest, words)
        pending.append(words)
        if len(pending) == chunk:
            check(len(counts) - len(pending), pending)
            pending = []
    if pending:
        check(len(counts) - len(pending), pending)
    if not counts:
        raise ValueError(f"{source.describe()}: no sentences")
    return np.asarray(counts, dtype=np.int64), digest.hexdigest()


def _batches(words: Iterable[list[str]], skip: int, size: int) -> Iterator[list[list[str]]]:
    batch: list[list[str]] = []
    for i, sentence in enumerate(words):
        if i < skip:
            continue
        batch.append(sentence)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


# Sentences are read a window of this many batches at a time, run in batches of similar token
# length (sorted within the window: little padding), and written back in corpus order.
WINDOW_BATCHES = 8


def _window_rows(backend: Backend, window: list[list[str]], names: list[str], position: str, batch_size: int,
                 dtype: torch.dtype) -> dict[str, np.ndarray]:
    """Each hook's rows for the words of ``window``, in corpus order: {name: [n_words, …]}."""
    encodings = [backend.encode(words) for words in window]
    order = sorted(range(len(window)), key=lambda i: len(encodings[i]))
    parts: dict[str, list[Tensor | None]] = {name: [None] * len(window) for name in names}
    for s0 in range(0, len(order), batch_size):
        batch = order[s0:s0 + batch_size]
        encs = [encodings[i] for i in batch]
        _, acts = backend.forward_tokens(backend.tokens(encs), names, logits=False)
        index = _word_index(encs, position)
        for name in names:
            rows = _gather(acts[name], index).to(dtype).cpu()
            for i, part in zip(batch, rows.split([len(window[i]) for i in batch])):
                parts[name][i] = part
        del acts
    return {name: torch.cat(p).contiguous().numpy() for name, p in parts.items()}  # type: ignore[arg-type]


def _word_index(encodings: Sequence[Encoding], position: str) -> tuple[Tensor, Tensor, Tensor | None, int]:
    """For a batch: (batch row, token position) of every token to read, the word each one
    belongs to (None when there is one token per word), and the number of words."""
    batch_idx: list[int] = []
    token_idx: list[int] = []
    word_idx: list[int] | None = None
    if position in ("last", "first"):
        for b, enc in enumerate(encodings):
            positions = enc.positions(position)
            batch_idx += [b] * len(positions)
            token_idx += positions
        n_words = len(token_idx)
    else:  # mean over each word's sub-tokens
        word_idx, n_words = [], 0
        for b, enc in enumerate(encodings):
            for start, end in enc.spans:
                batch_idx += [b] * (end - start)
                token_idx += range(start, end)
                word_idx += [n_words] * (end - start)
                n_words += 1
    return (torch.tensor(batch_idx), torch.tensor(token_idx),
            None if word_idx is None else torch.tensor(word_idx), n_words)


def _gather(x: Tensor, index: tuple[Tensor, Tensor, Tensor | None, int]) -> Tensor:
    """Rows of x [b, t, …] at the words of `index` (from _word_index) → [n_words, …]."""
    batch_idx, token_idx, word_idx, n_words = index
    rows = x[batch_idx.to(x.device), token_idx.to(x.device)]
    if word_idx is None:
        return rows
    word_idx = word_idx.to(x.device)
    sums = torch.zeros((n_words, *x.shape[2:]), dtype=torch.float32, device=x.device)
    sums.index_add_(0, word_idx, rows.float())
    counts = torch.bincount(word_idx, minlength=n_words).float()
    return (sums / counts.view(-1, *[1] * (x.dim() - 2))).to(x.dtype)


def _file_name(name: str) -> str:
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)
    return f"{safe}.bin"


# ----------------------------------------------------------------------------- the store
class ActivationStore:
    """Read side: `ActivationStore(path)` opens a built store; `build` / `append` write one."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        index_path = self.path / INDEX
        if not index_path.is_file():
            raise FileNotFoundError(f"no activation store at {self.path} (no {INDEX})")
        try:
            self.index: dict[str, Any] = read_json(index_path, "an activation store index (a JSON object)", object)
        except ValueError as err:  # not UTF-8, not JSON: "PATH:LINE:COL: …"
            raise self._damaged(str(err).replace(f"{index_path}:", f"{INDEX}:", 1)) from None
        if not isinstance(self.index, dict) or self.index.get("format") != FORMAT:
            raise ValueError(f"{index_path} is not an activation store index")
        if self.index.get("version") not in READABLE_VERSIONS:
            raise ValueError(f"{index_path}: store version {self.index.get('version')}, this code reads "
                             f"{', '.join(map(str, READABLE_VERSIONS))}")
        missing = [key for key in INDEX_KEYS if key not in self.index]
        if missing:
            raise self._damaged(f"{INDEX} lacks {', '.join(missing)}")

    # -- description ----------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return list(self.index["names"])

    @property
    def model(self) -> dict[str, Any]:
        return upgrade_info(self.index["model"])

    @property
    def n_sentences(self) -> int:
        return int(self.index["n_sentences"])

    @property
    def n_words(self) -> int:
        return int(self.index["n_words"])

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.index["dtype"])

    @property
    def complete(self) -> bool:
        return self.index["done_sentences"] == self.n_sentences

    @property
    def fingerprint(self) -> dict[str, str] | None:
        """The fingerprint of the model the store was built from (``hooks.fingerprint``), or None
        for a store written before fingerprints were recorded."""
        fp = self.index.get("fingerprint")
        return dict(fp) if isinstance(fp, dict) else None

    @property
    def sentence_offsets(self) -> np.ndarray:
        """int64 [n_sentences + 1]: sentence i's words are rows offsets[i]:offsets[i + 1]."""
        return np.asarray(self._offsets()[: self.n_sentences + 1])

    def _offsets(self) -> np.ndarray:
        path = self.path / OFFSETS
        try:
            offsets = np.load(path, mmap_mode="r")
        except FileNotFoundError:
            raise self._damaged(f"{OFFSETS} is missing") from None
        except (ValueError, OSError, EOFError) as err:
            raise self._damaged(f"{OFFSETS} is unreadable ({err})") from None
        if offsets.ndim != 1 or len(offsets) < self.n_sentences + 1:
            raise self._damaged(f"{OFFSETS} holds {len(offsets)} offsets, not {self.n_sentences + 1}")
        return offsets

    def _damaged(self, what: str) -> DamagedStoreError:
        return DamagedStoreError(
            f"activation store {self.path} is damaged: {what}; delete the directory, or rebuild it "
            f"(stratascope probe … --force, or ActivationStore.build(…, rebuild=True))")

    def sentence_rows(self, i: int) -> slice:
        offsets = self._offsets()
        if not 0 <= i < self.n_sentences:
            raise IndexError(f"sentence {i} outside [0, {self.n_sentences})")
        return slice(int(offsets[i]), int(offsets[i + 1]))

    def shape(self, name: str) -> tuple[int, ...]:
        return (self.n_words, *self.index["shapes"][self._name(name)])

    def __repr__(self) -> str:
        done = self.index["done_sentences"]
        return (f"ActivationStore({str(self.path)!r}, model={self.index['model']['name']!r}, "
                f"{len(self.names)} hooks, {self.n_words} words, {done}/{self.n_sentences} sentences done, "
                f"{self.index['dtype']})")

    def _name(self, key: str | int) -> str:
        if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            key = resid_name(int(key), int(self.index["model"]["n_layer"]))
        if key not in self.index["shapes"]:
            raise KeyError(f"{key!r} is not in this store; it holds {', '.join(self.names)}")
        return key

    # -- reading --------------------------------------------------------------
    def read(self, key: str | int, *, partial: bool = False) -> np.memmap:
        """Read-only memmap [n_words, …] of hook `key` (a name, or a residual layer number:
        0 = embeddings, l = after block l-1). Rows are the words in corpus order, so row r goes
        with the r-th word label of the corpus. An unfinished store raises unless `partial`
        (then only the committed rows are returned)."""
        name = self._name(key)
        rows = self.n_words
        if not self.complete:
            if not partial:
                raise RuntimeError(
                    f"store {self.path} is incomplete ({self.index['done_sentences']}/{self.n_sentences} "
                    f"sentences): resume it with ActivationStore.build(…) or read(partial=True)"
                )
            rows = int(self.index["done_words"])
        shape = (rows, *self.index["shapes"][name])
        if rows == 0:
            return np.zeros(shape, dtype=self.dtype)  # np.memmap refuses empty mappings
        path = self.path / self.index["files"][name]
        need = rows * self._row_bytes(name)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise self._damaged(f"{path.name} ({name}) is missing") from None
        if size < need:
            raise self._damaged(f"{path.name} ({name}) has {size:,} bytes, its {rows:,} rows of "
                                f"{self.index['shapes'][name]} {self.index['dtype']} need {need:,} (truncated?)")
        return np.memmap(path, dtype=self.dtype, mode="r", shape=shape)

    def layer(self, layer: int, **kwargs: Any) -> np.memmap:
        """Residual-stream layer `layer` (0 = embeddings)."""
        return self.read(int(layer), **kwargs)

    # -- writing --------------------------------------------------------------
    @classmethod
    def build(
        cls,
        path: str | os.PathLike[str],
        backend: Backend,
        corpus: Any,
        *,
        names: Any = None,
        dtype: str = "float16",
        position: str = "last",
        batch_size: int = 32,
        durable: bool = True,
        commit_interval: float = 1.0,
        progress: Callable[[int, int], None] | None = None,
        window: int = WINDOW_BATCHES,
        rebuild: bool = False,
    ) -> "ActivationStore":
        """Extract `names` (default: the residual stream after every block, embeddings first)
        of `corpus` (a CoNLL-U path or a list of sentences) into a store at `path`; if a store
        for the same model, hooks and corpus is already there, resume it (a finished one is
        returned as is).

        dtype: "float16" or "float32" on disk. position: which token stands for a multi-token
        word ("last" sub-token, "first", or the "mean" of its sub-tokens). Progress is committed
        after the window (`window` batches, run in batches of similar length) that ends
        `commit_interval` seconds after the last commit (0: after every window) and at the end;
        durable: fsync the data before each commit. progress(done, total)
        is called after each commit.

        A store already at `path` that was built from another model (its fingerprint: weights or
        tokenizer; or its shape), hooks, dtype, position or corpus raises ``StaleStoreError``
        naming what differs; with ``rebuild=True`` it is deleted and built anew.
        """
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        if position not in POSITIONS:
            raise ValueError(f"position must be one of {', '.join(POSITIONS)}, got {position!r}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if not isinstance(window, int) or window < 1:
            raise ValueError(f"window must be a positive integer (batches), got {window!r}")
        path = Path(path)
        source = CorpusSource(corpus)
        chosen = backend.resid_names() if names is None else backend.resolve(names)
        pairwise = [n for n in chosen if is_pairwise(n)]
        if pairwise:
            raise ValueError(f"{pairwise[0]} has one row per query and key, not per word: it cannot be stored")
        counts, fingerprint = _scan(backend, source)
        segment = {"source": source.describe(), "fingerprint": fingerprint,
                   "n_sentences": len(counts), "n_words": int(counts.sum())}
        if (path / INDEX).is_file():
            try:
                store = cls(path)
                store._check_compatible(backend, chosen, dtype, position)
                first = store.index["segments"][0]
                if (first["fingerprint"], first["n_sentences"]) != (fingerprint, len(counts)):
                    raise StaleStoreError(
                        f"store {path} was built from another corpus ({first['source']}, {first['n_sentences']} "
                        f"sentences): use another directory, or append() to add sentences"
                    )
            except (StaleStoreError, DamagedStoreError):
                if not rebuild:
                    raise
                cls._remove(path)
            else:
                store._extract(backend, source, 0, durable, commit_interval, progress, window)
                return store
        store = cls._create(path, backend, chosen, counts, segment, dtype, position, batch_size)
        store._extract(backend, source, 0, durable, commit_interval, progress, window)
        return store

    def append(self, backend: Backend, corpus: Any, *, durable: bool = True, commit_interval: float = 1.0,
               progress: Callable[[int, int], None] | None = None, window: int = WINDOW_BATCHES) -> "ActivationStore":
        """Add the sentences of `corpus` after the stored ones (rows continue in order) and extract
        them. Calling it again after an interruption resumes the pending segment."""
        self._check_compatible(backend, self.names, self.index["dtype"], self.index["position"])
        source = CorpusSource(corpus)
        counts, fingerprint = _scan(backend, source)
        segments = self.index["segments"]
        last = segments[-1]
        pending = not self.complete
        if pending:
            if (last["fingerprint"], last["n_sentences"]) != (fingerprint, len(counts)):
                raise RuntimeError(
                    f"store {self.path} has an unfinished segment ({last['source']}): finish it first by "
                    f"calling append/build again with that corpus"
                )
            self._extract(backend, source, len(segments) - 1, durable, commit_interval, progress, window)
            return self
        old_offsets = np.load(self.path / OFFSETS)[: self.n_sentences + 1]
        offsets = np.concatenate([old_offsets, old_offsets[-1] + np.cumsum(counts)])
        segments.append({"source": source.describe(), "fingerprint": fingerprint,
                         "first_sentence": self.n_sentences, "first_word": self.n_words,
                         "n_sentences": len(counts), "n_words": int(counts.sum())})
        self.index["n_sentences"] = len(offsets) - 1
        self.index["n_words"] = int(offsets[-1])
        self._write_offsets(offsets)
        self._size_files(fresh=False)
        self._commit()
        self._extract(backend, source, len(segments) - 1, durable, commit_interval, progress, window)
        return self

    # -- internals ------------------------------------------------------------
    @classmethod
    def _create(cls, path: Path, backend: Backend, names: list[str], counts: np.ndarray, segment: dict[str, Any],
                dtype: str, position: str, batch_size: int) -> "ActivationStore":
        # the per-word shape of every hook, from one short forward pass
        shapes = cls._probe_shapes(backend, names)
        path.mkdir(parents=True, exist_ok=True)
        segment = {"source": segment["source"], "fingerprint": segment["fingerprint"], "first_sentence": 0,
                   "first_word": 0, "n_sentences": segment["n_sentences"], "n_words": segment["n_words"]}
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        store = cls.__new__(cls)
        store.path = path
        store.index = {
            "format": FORMAT,
            "version": VERSION,
            "model": backend.metadata.to_dict(),
            "fingerprint": model_fingerprint(backend),
            "names": names,
            "files": {n: _file_name(n) for n in names},
            "shapes": {n: list(shapes[n]) for n in names},
            "dtype": dtype,
            "position": position,
            "batch_size": batch_size,
            "n_sentences": int(len(counts)),
            "n_words": int(offsets[-1]),
            "offsets_file": OFFSETS,
            "segments": [segment],
            "done_sentences": 0,
            "done_words": 0,
        }
        store._write_offsets(offsets)
        store._size_files(fresh=True)
        store._commit()
        return store

    @staticmethod
    def _probe_shapes(backend: Backend, names: list[str]) -> dict[str, tuple[int, ...]]:
        ids = torch.full((1, 2), backend.tokenizer.pad_id, dtype=torch.long)
        _, acts = backend.forward_tokens(ids, names, logits=False)
        return {n: tuple(acts[n].shape[2:]) for n in names}

    def check_model(self, backend: Backend) -> None:
        """StaleStoreError when this store was not built from ``backend``'s model: another shape
        or backend, other weights or another tokenizer (``hooks.fingerprint``), or no recorded
        fingerprint at all (a store written by an older version)."""
        have = {k: self.model.get(k) for k in MODEL_KEYS}
        want = {k: backend.metadata.to_dict().get(k) for k in MODEL_KEYS}
        if have != want:
            raise StaleStoreError(f"store {self.path} was built with model {have}, not {want}: use another "
                                  f"directory, or rebuild it")
        differs = fingerprint_diff(self.fingerprint, model_fingerprint(backend))
        if differs:
            built_from = self.model.get("source")
            why = ("it records no fingerprint (written by an older stratascope)" if self.fingerprint is None
                   else f"it was built from another model ({'; '.join(differs)}; built from {built_from})")
            raise StaleStoreError(f"store {self.path} cannot be reused for {backend.metadata.source}: {why}; use "
                                  f"another directory, or rebuild it (stratascope probe … --force, or "
                                  f"ActivationStore.build(…, rebuild=True))")

    def _check_compatible(self, backend: Backend, names: list[str], dtype: str, position: str) -> None:
        self.check_model(backend)
        for what, stored, given in (("hooks", self.index["names"], list(names)), ("dtype", self.index["dtype"], dtype),
                                    ("position", self.index["position"], position)):
            if stored != given:
                raise StaleStoreError(f"store {self.path} holds {what} {stored}, not {given}: use another directory")

    @staticmethod
    def _remove(path: Path) -> None:
        """Delete a store's own files (index first, so a crash leaves no index over missing data);
        other files in the directory are left alone."""
        files: list[str] = []
        try:
            index = json.loads((path / INDEX).read_text())
            files = list(index.get("files", {}).values()) if isinstance(index, dict) else []
        except (OSError, ValueError):
            pass
        for name in [INDEX, OFFSETS, *files]:
            if Path(name).name == name and name not in ("", ".", ".."):  # never outside the directory
                (path / name).unlink(missing_ok=True)

    def _row_bytes(self, name: str) -> int:
        return int(np.prod(self.index["shapes"][name], dtype=np.int64)) * self.dtype.itemsize

    def _write_offsets(self, offsets: np.ndarray) -> None:
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(offsets, dtype=np.int64))
        atomic_write_bytes(self.path / OFFSETS, buffer.getvalue())

    def _size_files(self, fresh: bool) -> None:
        """Preallocate every data file at its full size (sparse zeros)."""
        for name in self.names:
            fd = os.open(self.path / self.index["files"][name], os.O_RDWR | os.O_CREAT, 0o644)
            try:
                if fresh:
                    os.ftruncate(fd, 0)
                os.ftruncate(fd, self.n_words * self._row_bytes(name))
            finally:
                os.close(fd)

    def _commit(self) -> None:
        atomic_write_json(self.path / INDEX, self.index)

    def _extract(self, backend: Backend, source: CorpusSource, segment_no: int, durable: bool,
                 commit_interval: float, progress: Callable[[int, int], None] | None,
                 window: int = WINDOW_BATCHES) -> None:
        segment = self.index["segments"][segment_no]
        first, n = segment["first_sentence"], segment["n_sentences"]
        done = self.index["done_sentences"]
        if done >= first + n:
            return
        if done < first:
            raise RuntimeError(f"store {self.path}: segment {segment_no} cannot start before the previous ends")
        batch_size = int(self.index["batch_size"])
        if (done - first) % batch_size:
            raise RuntimeError(f"store {self.path}: committed progress is not at a batch boundary")
        names, position = self.names, self.index["position"]
        torch_dtype = DTYPES[self.index["dtype"]][1]
        offsets = np.load(self.path / OFFSETS, mmap_mode="r")
        fds = {n: os.open(self.path / self.index["files"][n], os.O_RDWR) for n in names}
        last_commit = time.monotonic()
        try:
            for sentences in _batches(source.forms(), done - first, batch_size * window):
                at = self.index["done_sentences"]
                if [len(w) for w in sentences] != np.diff(offsets[at:at + len(sentences) + 1]).tolist():
                    raise RuntimeError(f"{source.describe()} changed since it was counted (sentences {at}…)")
                rows_of = _window_rows(backend, sentences, names, position, batch_size, torch_dtype)
                start_word = int(self.index["done_words"])
                n_words = sum(len(w) for w in sentences)
                for name in names:
                    rows = rows_of[name]
                    if rows.shape[0] != n_words:  # pragma: no cover - a bug, not a user error
                        raise RuntimeError(f"{name}: gathered {rows.shape[0]} rows for {n_words} words")
                    written = os.pwrite(fds[name], rows, start_word * self._row_bytes(name))
                    if written != rows.nbytes:
                        raise OSError(f"short write to {self.index['files'][name]}")
                self.index["done_sentences"] += len(sentences)
                self.index["done_words"] = start_word + n_words
                finished = self.index["done_sentences"] == first + n
                if finished or time.monotonic() - last_commit >= commit_interval:
                    # the data first, then the index that says it is there
                    if durable:
                        for fd in fds.values():
                            os.fsync(fd)
                    self._commit()
                    last_commit = time.monotonic()
                    if progress is not None:
                        progress(self.index["done_sentences"], self.n_sentences)
        except BaseException:
            self.index = json.loads((self.path / INDEX).read_text())  # back to what is committed
            raise
        finally:
            for fd in fds.values():
                os.close(fd)
        expected = segment["first_word"] + segment["n_words"]
        if self.index["done_words"] != expected or self.index["done_sentences"] != first + n:
            raise RuntimeError(
                f"{source.describe()} changed while it was being read: {self.index['done_sentences']} sentences "
                f"extracted, {first + n} expected"
            )
