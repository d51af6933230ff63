"""Tokenizers: a word-level one for the treebank, byte-level BPE, and word-to-token alignment.

``WordTokenizer``
    One id per word. Special tokens have fixed ids: ``<bos>`` 0, ``<eos>`` 1, ``<pad>`` 2,
    ``<unk>`` 3; words follow from id 4 in the order given (``from_sentences`` sorts them by
    decreasing count, ties alphabetically). ``save(path)`` writes ``vocab.json`` (a JSON object
    ``token -> id``, the format of Hugging Face vocab files); ``load(path)`` checks it. Unknown
    words encode to ``<unk>`` and are counted in ``unknown_counts`` (see ``unknown_report()``);
    ``encode(..., strict=True)`` raises ``ValueError`` instead.

``train_bpe_tokenizer(texts, vocab_size, out_dir)``
    Trains a byte-level BPE (``tokenizers.ByteLevelBPETokenizer``, GPT-2's scheme, with
    ``<|endoftext|>`` as special token), saves ``vocab.json`` and ``merges.txt`` in ``out_dir``
    (each written whole) and returns them loaded by ``load_bpe``.

Loading: the one loader of every tokenizer stratascope reads, used by training data
(``gpt_model.data``) and by the hooks adapters (``hooks.tokenize``):

``load_tokenizer(kind, path)``
    A run's tokenizer, as its config.json section ``"tokenizer"`` names it: ``"word"`` →
    ``WordTokenizer.load(path)``, ``"bpe"`` → ``load_bpe(path)``.
``load_bpe(directory)``
    ``vocab.json`` + ``merges.txt`` as a ``GPT2TokenizerFast``.
``load_hf_tokenizer(source)``
    Any Hugging Face tokenizer from a model directory or a cached hub name, refusing the
    almost empty tokenizer transformers builds from a directory without tokenizer files.

``align_words_to_tokens(hf_tokenizer, words)``
    Tokenizes ``" ".join(words)`` with any Hugging Face tokenizer (so, with GPT-2, every word
    after the first carries its leading space) and maps tokens back to words through character
    offsets. ``Alignment.last_token[i]`` is the token at which word ``i``'s label is read.
"""

from __future__ import annotations

import bisect
import json
import os
import re
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from corpus.durable import atomic_write_bytes, atomic_write_text
from corpus.textio import decode_utf8, read_json
from corpus.sentence import Sentence

BOS, EOS, PAD, UNK = "<bos>", "<eos>", "<pad>", "<unk>"
SPECIALS = (BOS, EOS, PAD, UNK)


class WordTokenizer:
    """Word-level vocabulary with fixed special ids (see module doc)."""

    bos_id, eos_id, pad_id, unk_id = 0, 1, 2, 3

    def __init__(self, words: Iterable[str]) -> None:
        self.itos: list[str] = list(SPECIALS)
        for word in words:
            if word in SPECIALS:
                raise ValueError(f"word {word!r} clashes with a special token")
            if word in self.itos[len(SPECIALS):]:
                continue
            self.itos.append(word)
        self.stoi: dict[str, int] = {w: i for i, w in enumerate(self.itos)}
        self.unknown_counts: Counter[str] = Counter()

    @classmethod
    def from_sentences(cls, sentences: Iterable[Sentence], min_count: int = 1) -> WordTokenizer:
        """Vocabulary of the words in ``sentences`` seen at least ``min_count`` times."""
        if min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {min_count}")
        counts = Counter(w.form for s in sentences for w in s.words)
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        return cls(w for w, c in ranked if c >= min_count)

    @classmethod
    def from_words(cls, words: Iterable[str]) -> WordTokenizer:
        return cls(words)

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, word: str) -> bool:
        return word in self.stoi

    def encode(self, words: Sequence[str], add_bos: bool = False, add_eos: bool = False,
               strict: bool = False) -> list[int]:
        """Ids of ``words`` (optionally framed by ``<bos>`` / ``<eos>``)."""
        unk = self.unk_id
        ids = [self.stoi.get(w, unk) for w in words]
        if unk in ids:
            missing = [w for w, i in zip(words, ids) if i == unk and w != UNK]
            if strict and missing:
                raise ValueError(f"unknown words: {sorted(set(missing))}")
            self.unknown_counts.update(missing)
        if add_bos:
            ids.insert(0, self.bos_id)
        if add_eos:
            ids.append(self.eos_id)
        return ids

    def decode(self, ids: Iterable[int], skip_special: bool = False) -> list[str]:
        """Words of ``ids``; raises ValueError on an id outside the vocabulary."""
        out = []
        for i in ids:
            i = int(i)
            if not 0 <= i < len(self.itos):
                raise ValueError(f"token id {i} outside the vocabulary (size {len(self.itos)})")
            if skip_special and i < len(SPECIALS):
                continue
            out.append(self.itos[i])
        return out

    def unknown_report(self) -> str:
        """One line: how many unknown word tokens/types were encoded, most frequent first."""
        total = sum(self.unknown_counts.values())
        if not total:
            return "no unknown words"
        top = ", ".join(f"{w!r}×{c}" for w, c in self.unknown_counts.most_common(10))
        return f"{total} unknown word tokens ({len(self.unknown_counts)} types) mapped to {UNK}: {top}"

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``vocab.json``; ``path`` may be the file or a directory to put it in."""
        target = Path(path)
        if target.is_dir():
            target = target / "vocab.json"
        atomic_write_text(target, json.dumps(self.stoi, ensure_ascii=False, indent=0) + "\n")
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> WordTokenizer:
        """Read a ``vocab.json`` written by ``save`` (file or directory holding it); a file that is
        not UTF-8, not JSON or not such a vocabulary raises ValueError naming it (and its line)."""
        source = Path(path)
        if source.is_dir():
            source = source / "vocab.json"
        if not source.is_file():
            raise FileNotFoundError(f"no vocabulary file: {source}")
        mapping = read_vocab_json(source)
        itos = sorted(mapping, key=mapping.__getitem__)
        for before, token in zip(itos, itos[1:]):
            if mapping[before] == mapping[token]:
                raise ValueError(f"{_where(source, token)}: id {mapping[token]} is given to both {before!r} and "
                                 f"{token!r}: ids must be 0..{len(itos) - 1} without gaps or repeats")
        if [mapping[t] for t in itos] != list(range(len(itos))):
            raise ValueError(f"{source}: ids must be 0..{len(itos) - 1} without gaps or repeats "
                             f"(got {mapping[itos[0]]}..{mapping[itos[-1]]})")
        if tuple(itos[: len(SPECIALS)]) != SPECIALS:
            raise ValueError(f"{source}: ids 0..3 must be {', '.join(SPECIALS)}")
        return cls(itos[len(SPECIALS):])


# ----------------------------------------------------------------------------- reading JSON files
VOCAB_SHAPE = "a JSON object mapping tokens to integer ids"
HF_CONFIG_SHAPE = "a JSON object (a Hugging Face model config)"


def read_vocab_json(path: Path) -> dict[str, int]:
    """A ``vocab.json`` (ours or a Hugging Face BPE's): token → integer id; ValueError naming the
    file, and the line of the first entry whose id is not an integer."""
    mapping = read_json(path, VOCAB_SHAPE)
    for token, value in mapping.items():
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"{_where(path, token)}: token {token!r} has id {value!r}: expected {VOCAB_SHAPE}")
    return mapping


def _where(path: Path, key: str) -> str:
    """``PATH:LINE`` of the first line holding ``"key":`` (``PATH`` when it cannot be found)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return str(path)
    for spelling in {json.dumps(key, ensure_ascii=False), json.dumps(key)}:
        found = re.search(re.escape(spelling) + r"\s*:", text)
        if found:
            return f"{path}:{text.count(chr(10), 0, found.start()) + 1}"
    return str(path)


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int, out_dir: str | os.PathLike[str]) -> Any:
    """Train byte-level BPE on ``texts``; save and return it as a ``GPT2TokenizerFast``."""
    from tokenizers import ByteLevelBPETokenizer

    if not isinstance(vocab_size, int) or vocab_size < MIN_BPE_SIZE:
        raise ValueError(f"vocab_size must be an int >= 257 (256 bytes + <|endoftext|>), got {vocab_size!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(iter(texts), vocab_size=vocab_size, min_frequency=2,
                            show_progress=False, special_tokens=["<|endoftext|>"])
    with tempfile.TemporaryDirectory(prefix="stratascope-bpe.") as tmp:  # each file whole, or not there
        bpe.save_model(tmp)
        for name in BPE_FILES:
            atomic_write_bytes(out / name, (Path(tmp) / name).read_bytes())
    return load_bpe(out)


# ----------------------------------------------------------------------------- loading
TOKENIZER_KINDS = ("word", "bpe")
BPE_FILES = ("vocab.json", "merges.txt")
# files whose presence means a directory holds a Hugging Face tokenizer
HF_TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "tokenizer.model", "spiece.model", "vocab.txt")
MIN_BPE_SIZE = 257  # 256 bytes + <|endoftext|>


def load_bpe(directory: str | os.PathLike[str]) -> Any:
    """The byte-level BPE in ``directory`` (``vocab.json`` + ``merges.txt``, as
    ``train_bpe_tokenizer`` and ``tokenizers``' ``save_model`` write them) as a GPT2TokenizerFast."""
    path = Path(directory)
    if not all((path / name).is_file() for name in BPE_FILES):
        raise FileNotFoundError(f"no BPE tokenizer in {path} (needs {' and '.join(BPE_FILES)})")
    tok = _gpt2_bpe(path)
    if len(tok) < MIN_BPE_SIZE:
        raise ValueError(f"BPE tokenizer in {path} loaded with only {len(tok)} tokens")
    return tok


def check_usable_tokenizer(tokenizer: Any, where: str) -> None:
    """transformers silently builds an (almost) empty tokenizer from a directory without
    tokenizer files: refuse it with a message that says what to do."""
    size = len(tokenizer) if tokenizer is not None else 0
    if size <= 1:
        raise ValueError(
            f"no usable tokenizer for {where}: got a tokenizer with {size} token(s). Save one next to "
            f"the model (tokenizer.save_pretrained(dir): tokenizer.json, or vocab.json + merges.txt) "
            f"or pass tokenizer= explicitly"
        )


def load_hf_tokenizer(source: str | os.PathLike[str]) -> Any:
    """A Hugging Face tokenizer from a model directory or a hub name (from the local cache); a
    clear error when the directory holds no tokenizer (instead of the empty one transformers
    would build). A bare BPE directory (``vocab.json`` + ``merges.txt``, no
    ``tokenizer_config.json``) is read by ``load_bpe``."""
    from transformers import AutoTokenizer

    path = Path(source).expanduser()
    if path.is_dir():
        present = [f for f in HF_TOKENIZER_FILES if (path / f).is_file()]
        if not present:
            raise ValueError(
                f"no usable tokenizer in {path}: none of {', '.join(HF_TOKENIZER_FILES)} is there. Save "
                f"one next to the model (tokenizer.save_pretrained(dir)) or pass tokenizer= explicitly"
            )
        bare_bpe = ("tokenizer.json" not in present and all((path / f).is_file() for f in BPE_FILES)
                    and not (path / "tokenizer_config.json").is_file())
        if bare_bpe:
            tok = _gpt2_bpe(path)
        else:
            try:
                tok = AutoTokenizer.from_pretrained(str(path))
            except Exception as err:  # noqa: BLE001 - a damaged file is named, else re-raised in one line
                _check_hf_tokenizer_files(path)
                raise ValueError(f"cannot load the tokenizer in {path}: {type(err).__name__}: "
                                 f"{_first_line(err)}") from err
    else:
        try:
            tok = AutoTokenizer.from_pretrained(str(source))
        except Exception as err:  # noqa: BLE001 - re-raised with the source named
            raise ValueError(f"cannot load a tokenizer for {str(source)!r}: {type(err).__name__}: "
                             f"{_first_line(err)}") from err
    check_usable_tokenizer(tok, str(source))
    return tok


# JSON files transformers may read when it loads a tokenizer from a directory, and what each holds
HF_TOKENIZER_JSON = {
    "config.json": HF_CONFIG_SHAPE,
    "tokenizer_config.json": "a JSON object (a Hugging Face tokenizer config)",
    "special_tokens_map.json": "a JSON object (special token names → tokens)",
    "added_tokens.json": "a JSON object (added tokens → ids)",
    "tokenizer.json": "a JSON object (a tokenizers library tokenizer)",
    "vocab.json": VOCAB_SHAPE,
}


def _check_hf_tokenizer_files(path: Path) -> None:
    """ValueError naming the first tokenizer file in ``path`` that is not UTF-8, not JSON or not
    a JSON object (called once transformers has failed, to say which file is at fault)."""
    for name, expected in HF_TOKENIZER_JSON.items():
        if (path / name).is_file():
            read_json(path / name, expected)
    if (path / "merges.txt").is_file():
        _check_utf8(path / "merges.txt", "BPE merges (one pair of tokens a line)")


def _gpt2_bpe(path: Path) -> Any:
    """vocab.json + merges.txt in ``path`` as a GPT2TokenizerFast. transformers 5 needs
    ``vocab=`` / ``merges=``: the old ``vocab_file=`` / ``merges_file=`` keywords are silently
    ignored and give an empty tokenizer. Files the tokenizers library refuses raise ValueError
    naming the file and line where we can tell, else the directory."""
    from transformers import GPT2TokenizerFast

    try:
        return GPT2TokenizerFast(vocab=str(path / "vocab.json"), merges=str(path / "merges.txt"))
    except Exception as err:  # noqa: BLE001 - the tokenizers library raises a bare Exception
        reason = _first_line(err)
    read_vocab_json(path / "vocab.json")
    _check_utf8(path / "merges.txt", "BPE merges (one pair of tokens a line)")
    raise ValueError(f"{path}: not a readable BPE tokenizer ({' and '.join(BPE_FILES)}): {reason}")


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _check_utf8(path: Path, expected: str) -> None:
    decode_utf8(path, path.read_bytes(), expected)


def load_tokenizer(kind: str, path: str | os.PathLike[str]) -> Any:
    """The tokenizer a run's config.json section ``"tokenizer"`` names: ``kind`` ``"word"`` → a
    ``WordTokenizer`` from ``vocab.json`` at ``path``; ``"bpe"`` → ``load_bpe(path)``."""
    if kind == "word":
        return WordTokenizer.load(path)
    if kind == "bpe":
        return load_bpe(path)
    raise ValueError(f"unknown tokenizer kind {kind!r} (expected one of {', '.join(map(repr, TOKENIZER_KINDS))})")


@dataclass(frozen=True)
class Alignment:
    """Tokens of a word sequence and where each word lies among them.

    ``word_spans[i] = (start, end)``: word ``i`` is ``input_ids[start:end]``; ``last_token[i]``
    is ``end - 1``; ``token_word[t]`` is the word of token ``t`` (None for special tokens).
    """

    input_ids: list[int]
    tokens: list[str]
    word_spans: list[tuple[int, int]]
    token_word: list[int | None]

    @property
    def last_token(self) -> list[int]:
        return [end - 1 for _, end in self.word_spans]

    @property
    def first_token(self) -> list[int]:
        return [start for start, _ in self.word_spans]


def align_words_to_tokens(hf_tokenizer: Any, words: Sequence[str],
                          add_special_tokens: bool = False) -> Alignment:
    """Align ``words`` to the tokens ``hf_tokenizer`` makes of ``" ".join(words)``."""
    if not words:
        raise ValueError("align_words_to_tokens needs at least one word")
    for w in words:
        if not w or any(c.isspace() for c in w):
            raise ValueError(f"word {w!r} is empty or contains whitespace")
    starts = []
    pos = 0
    for w in words:
        starts.append(pos)
        pos += len(w) + 1
    text = " ".join(words)
    if getattr(hf_tokenizer, "is_fast", False):
        enc = hf_tokenizer(text, add_special_tokens=add_special_tokens, return_offsets_mapping=True)
        ids = list(enc["input_ids"])
        token_word: list[int | None] = []
        for start, end in enc["offset_mapping"]:
            if end <= start:
                token_word.append(None)  # special tokens have empty offsets
                continue
            covered = text[start:end].rstrip(" ")
            if covered.strip(" "):
                # the last non-space character a token covers decides its word
                token_word.append(bisect.bisect_right(starts, start + len(covered) - 1) - 1)
            else:
                # a token of spaces only (GPT-2's lone "Ġ") belongs to the word after it
                token_word.append(bisect.bisect_right(starts, end) - 1)
    else:
        # slow tokenizers have no offsets: tokenize word by word (" word" after the first)
        ids, token_word = [], []
        if add_special_tokens and getattr(hf_tokenizer, "bos_token_id", None) is not None:
            ids.append(hf_tokenizer.bos_token_id)
            token_word.append(None)
        for i, w in enumerate(words):
            piece = hf_tokenizer.encode(w if i == 0 else " " + w, add_special_tokens=False)
            ids.extend(piece)
            token_word.extend([i] * len(piece))
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for t, wi in enumerate(token_word):
        if wi is None:
            continue
        if wi in last and last[wi] != t - 1:
            raise ValueError(f"tokens of word {wi} ({words[wi]!r}) are not contiguous")
        first.setdefault(wi, t)
        last[wi] = t
    spans: list[tuple[int, int]] = []
    for i, w in enumerate(words):
        if i not in first:
            raise ValueError(f"word {i} ({w!r}) got no token of its own")
        spans.append((first[i], last[i] + 1))
    tokens = hf_tokenizer.convert_ids_to_tokens(ids)
    return Alignment(ids, list(tokens), spans, token_word)
