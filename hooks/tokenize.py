"""Words → model tokens, with the word → token alignment every backend returns.

A sentence is fed as `<bos> w1 … wn`:

* word-level runs (our WordTokenizer): one token per word, so word i is token i + 1;
* BPE / any Hugging Face tokenizer: the tokenizer's BOS token (GPT-2's `<|endoftext|>`; the EOS
  token when it has no BOS) is prepended to `" ".join(words)`, aligned to the words by
  `corpus.align_words_to_tokens` (the project's one convention: with GPT-2's byte-level BPE the
  first word has no leading space and every later word has one, as in running text). A word
  may span several tokens; `Encoding.spans[i]` is its [start, end) token range and
  `Encoding.last[i]` its last sub-token, the position read by probes by default.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from corpus.tokenizers import (
    TOKENIZER_KINDS,
    align_words_to_tokens,
    check_usable_tokenizer,
    load_hf_tokenizer,
    load_tokenizer,
)
from gpt_model.rundir import CONFIG_FILE, locate

__all__ = ["Encoding", "TokenizerAdapter", "WordTokenizerAdapter", "HFTokenizerAdapter", "as_adapter",
           "load_hf_tokenizer", "load_run_tokenizer"]


@dataclass(frozen=True)
class Encoding:
    """One sentence as model input: token ids and the token span of every word."""

    words: tuple[str, ...]
    ids: tuple[int, ...]  # [t], ids[0] is the BOS token
    spans: tuple[tuple[int, int], ...]  # per word: [start, end) token positions

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def last(self) -> list[int]:
        """Token position of each word's last sub-token."""
        return [end - 1 for _, end in self.spans]

    @property
    def first(self) -> list[int]:
        return [start for start, _ in self.spans]

    def positions(self, which: str = "last") -> list[int]:
        if which == "last":
            return self.last
        if which == "first":
            return self.first
        raise ValueError(f"word position must be 'last' or 'first', got {which!r}")

    def tensor(self) -> torch.Tensor:
        return torch.tensor(self.ids, dtype=torch.long)


class TokenizerAdapter(ABC):
    """What a backend needs from a tokenizer: encode words with alignment, a padding id."""

    name: str = "tokenizer"

    @abstractmethod
    def encode(self, words: Sequence[str]) -> Encoding: ...

    @property
    @abstractmethod
    def pad_id(self) -> int: ...

    @property
    @abstractmethod
    def vocab_size(self) -> int: ...

    def decode(self, ids: Sequence[int]) -> list[str]:
        """Token strings (for display)."""
        return [str(i) for i in ids]

    def count_tokens(self, sentences: Sequence[Sequence[str]]) -> list[int]:
        """len(self.encode(words)) of each sentence (subclasses may do it faster, in batch)."""
        return [len(self.encode(words)) for words in sentences]


def _check_words(words: Sequence[str]) -> list[str]:
    if isinstance(words, str):
        raise TypeError("encode expects a list of words, not a string: split the sentence first")
    words = list(words)
    if not words:
        raise ValueError("cannot encode an empty sentence")
    for i, word in enumerate(words):
        if not isinstance(word, str) or word.split() != [word]:  # empty, or holds whitespace
            raise ValueError(f"word {i} ({word!r}) must be a non-empty string without whitespace")
    return words


class WordTokenizerAdapter(TokenizerAdapter):
    """Our word-level tokenizer (`corpus.WordTokenizer`): one token per word after `<bos>`."""

    def __init__(self, tokenizer: Any, name: str = "word"):
        self.tokenizer = tokenizer
        self.name = name

    def encode(self, words: Sequence[str]) -> Encoding:
        words = _check_words(words)
        ids = [int(i) for i in self.tokenizer.encode(words)]
        bos = int(self.tokenizer.bos_id)
        if len(ids) != len(words):
            raise ValueError(
                f"word tokenizer returned {len(ids)} ids for {len(words)} words: expected one per word"
            )
        spans = tuple((i + 1, i + 2) for i in range(len(words)))
        return Encoding(tuple(words), (bos, *ids), spans)

    @property
    def pad_id(self) -> int:
        pad = getattr(self.tokenizer, "pad_id", None)
        return int(pad) if pad is not None else int(self.tokenizer.bos_id)

    @property
    def vocab_size(self) -> int:
        return len(self.tokenizer)

    def decode(self, ids: Sequence[int]) -> list[str]:
        return list(self.tokenizer.decode([int(i) for i in ids]))


class HFTokenizerAdapter(TokenizerAdapter):
    """A Hugging Face tokenizer, aligned by `corpus.align_words_to_tokens`: the words are joined
    by single spaces (with GPT-2, every word after the first carries its leading space, as in
    running text) and tokens are mapped back to words through character offsets.

    bos_id: the token prepended to every sentence (default: the tokenizer's BOS, else its EOS;
    GPT-2's `<|endoftext|>`).
    """

    def __init__(self, tokenizer: Any, name: str | None = None, bos_id: int | None = None):
        check_usable_tokenizer(tokenizer, name or "the given tokenizer")
        self.tokenizer = tokenizer
        self.name = name or getattr(tokenizer, "name_or_path", "hf")
        if bos_id is None:
            bos_id = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        if bos_id is None:
            raise ValueError(f"tokenizer {self.name!r} has neither a BOS nor an EOS token: pass bos_id=")
        self.bos_id = int(bos_id)

    def encode(self, words: Sequence[str]) -> Encoding:
        words = _check_words(words)
        alignment = align_words_to_tokens(self.tokenizer, words)
        spans = tuple((start + 1, end + 1) for start, end in alignment.word_spans)
        return Encoding(tuple(words), (self.bos_id, *map(int, alignment.input_ids)), spans)

    def count_tokens(self, sentences: Sequence[Sequence[str]]) -> list[int]:
        if not getattr(self.tokenizer, "is_fast", False):
            return super().count_tokens(sentences)
        # the text align_words_to_tokens tokenizes, in one batched (Rust) call
        texts = [" ".join(_check_words(words)) for words in sentences]
        return [1 + len(ids) for ids in self.tokenizer(texts, add_special_tokens=False)["input_ids"]]

    @property
    def pad_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return int(pad) if pad is not None else self.bos_id

    @property
    def vocab_size(self) -> int:
        return len(self.tokenizer)

    def decode(self, ids: Sequence[int]) -> list[str]:
        return list(self.tokenizer.convert_ids_to_tokens([int(i) for i in ids]))


# ----------------------------------------------------------------------------- loading
def load_run_tokenizer(model_dir: str | Path, config: dict[str, Any]) -> TokenizerAdapter:
    """The tokenizer of a run or checkpoint directory, as its config["tokenizer"] names it
    ({"kind": "word", "path": "tokenizer/vocab.json"} or {"kind": "bpe", "path": "tokenizer"}),
    loaded by ``corpus.tokenizers.load_tokenizer``. The path is relative to the directory, or
    for a checkpoint, to its run directory."""
    model_dir = Path(model_dir)
    spec = config.get("tokenizer")
    if not spec:
        raise ValueError(
            f"{model_dir / CONFIG_FILE} has no 'tokenizer' section: cannot tell how to tokenize words "
            f"(pass tokenizer= to hooks.load)"
        )
    kind = spec.get("kind")
    if kind not in TOKENIZER_KINDS or not spec.get("path"):
        raise ValueError(f"{model_dir / CONFIG_FILE}: tokenizer must be {{'kind': 'word'|'bpe', 'path': …}}, "
                         f"got {spec}")
    run, _ = locate(model_dir)
    path = run.tokenizer_path(config)
    if path is None or not path.exists():
        raise FileNotFoundError(f"tokenizer {spec['path']!r} of {model_dir} not found at {path}")
    tokenizer = load_tokenizer(kind, path)
    if kind == "word":
        return WordTokenizerAdapter(tokenizer, name=str(path))
    return HFTokenizerAdapter(tokenizer, name=str(path))


def as_adapter(tokenizer: Any) -> TokenizerAdapter:
    """Wrap a tokenizer object (ours, or a Hugging Face one) in the matching adapter."""
    if isinstance(tokenizer, TokenizerAdapter):
        return tokenizer
    if hasattr(tokenizer, "bos_id") and hasattr(tokenizer, "encode") and not hasattr(tokenizer, "bos_token_id"):
        return WordTokenizerAdapter(tokenizer)
    return HFTokenizerAdapter(tokenizer)
