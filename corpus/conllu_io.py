"""Read and write CoNLL-U (https://universaldependencies.org/format.html) with ``conllu``.

``read_conllu(path)`` reads any CoNLL-U file into ``Sentence`` objects:

* comments ``# key = value`` become ``Sentence.metadata`` (in order; ``# key`` maps to "");
  ``# logprob = x`` becomes ``Sentence.logprob`` instead;
* integer-ID lines become ``Sentence.words``; multiword-token ranges (``3-4``) go to
  ``Sentence.multiword_tokens`` and empty nodes (``8.1``) to ``Sentence.empty_nodes``, so word
  positions ignore them but writing the sentence back reproduces them;
* malformed input raises ``CoNLLUError`` (a ``ValueError``) naming the file and line: bytes
  that are not UTF-8, wrong column count, bad IDs or IDs out of sequence, a HEAD outside the
  sentence, a HEAD cycle (with the sentence's ``sent_id``), empty fields, a sentence without
  words.

Field values are parsed by the ``conllu`` package's parsers (``parse_id_value``,
``parse_dict_value``, ...) on top of a line-by-line reader that keeps line numbers; writing uses
``conllu``'s ``TokenList.serialize`` (with a cached fast path giving the same bytes for
sentences without multiword tokens or empty nodes). ``write_conllu(sentences, path)`` is the inverse of
``read_conllu`` (a read/write round trip is byte-identical for files in canonical form).
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Iterator
from functools import lru_cache
from pathlib import Path

from conllu.exceptions import ParseException
from conllu.models import Metadata, Token, TokenList
from conllu.parser import parse_dict_value, parse_id_value, parse_int_value
from conllu.serializer import serialize_field

from corpus._gc import gc_paused
from corpus.labels import head_cycle
from corpus.sentence import EmptyNode, MultiwordToken, Sentence, Word

_FIELDS = ("id", "form", "lemma", "upos", "xpos", "feats", "head", "deprel", "deps", "misc")
LOGPROB_KEY = "logprob"


class CoNLLUError(ValueError):
    """Malformed CoNLL-U. ``path`` and ``line`` (1-based) locate the problem."""

    def __init__(self, message: str, path: str, line: int) -> None:
        super().__init__(f"{path}:{line}: {message}")
        self.path = path
        self.line = line
        self.reason = message


def read_conllu(source: str | os.PathLike[str]) -> list[Sentence]:
    """All sentences of a CoNLL-U file (see module doc). Raises FileNotFoundError, CoNLLUError."""
    with gc_paused():
        return list(iter_conllu(source))


def iter_conllu(source: str | os.PathLike[str]) -> Iterator[Sentence]:
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"no such CoNLL-U file: {path}")
    with open(path, encoding="utf-8-sig", newline="") as handle:
        try:
            yield from _parse_lines(handle, str(path))
        except UnicodeDecodeError as err:
            raise _decode_error(path, err) from None


def _decode_error(path: Path, err: UnicodeDecodeError) -> ValueError:
    """The error for a file that is not UTF-8, naming the first line that does not decode (the
    text reader's own error only knows an offset into its buffer)."""
    with open(path, "rb") as handle:
        for lineno, raw in enumerate(handle, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as bad:
                return CoNLLUError(f"not UTF-8: byte 0x{raw[bad.start]:02x} at byte {bad.start + 1} of "
                                   f"the line ({bad.reason}); CoNLL-U files are UTF-8", str(path), lineno)
    return ValueError(f"{path}: not UTF-8 ({err})")


def parse_conllu_string(text: str, name: str = "<string>") -> list[Sentence]:
    """Sentences of CoNLL-U text; errors name ``name`` as the file."""
    return list(_parse_lines(io.StringIO(text), name))


def _parse_lines(lines: Iterable[str], name: str) -> Iterator[Sentence]:
    block: list[tuple[int, str]] = []
    count = 0
    for lineno, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r\n")
        if line.strip():
            block.append((lineno, line))
        elif block:
            count += 1
            yield _parse_block(block, name, count)
            block = []
    if block:
        yield _parse_block(block, name, count + 1)


@lru_cache(maxsize=8192)
def _parse_dict_cached(value: str) -> tuple[tuple[str, str], ...]:
    # FEATS and MISC strings repeat a lot (in generated treebanks especially): parse each once
    parsed = parse_dict_value(value) or {}
    return tuple((k, "_" if v is None else v) for k, v in parsed.items())


def _dict_field(value: str, column: str, name: str, lineno: int) -> dict[str, str]:
    try:
        return dict(_parse_dict_cached(value))
    except (ParseException, ValueError, IndexError) as err:
        raise CoNLLUError(f"bad {column} {value!r}: {err}", name, lineno) from None


def _parse_int(value: str) -> int | None:
    if value.isascii() and value.isdigit() and (value == "0" or value[0] != "0"):
        return int(value)
    return parse_int_value(value)


def _parse_id(value: str) -> int | tuple | None:
    if value.isascii() and value.isdigit() and value[0] != "0":
        return int(value)
    return parse_id_value(value)


def _parse_block(block: list[tuple[int, str]], name: str, number: int) -> Sentence:
    """The ``number``-th sentence of the file (1-based; it names the sentence in errors when it
    has no ``sent_id``)."""
    metadata: dict[str, str] = {}
    logprob: float | None = None
    words: list[Word] = []
    head_lines: list[int] = []
    mwts: list[tuple[int, MultiwordToken]] = []
    empties: list[EmptyNode] = []
    seen_token = False
    for lineno, line in block:
        if line.startswith("#"):
            if seen_token:
                raise CoNLLUError("comment line inside a sentence", name, lineno)
            key, sep, value = line[1:].partition("=")
            key, value = key.strip(), value.strip() if sep else ""
            if key == LOGPROB_KEY and sep:
                try:
                    logprob = float(value)
                except ValueError:
                    raise CoNLLUError(f"bad logprob {value!r}", name, lineno) from None
            else:
                metadata[key] = value
            continue
        seen_token = True
        cols = line.split("\t")
        if len(cols) != 10:
            raise CoNLLUError(f"expected 10 tab-separated columns, found {len(cols)}", name, lineno)
        for column, value in zip(_FIELDS, cols):
            if value == "":
                raise CoNLLUError(f"empty {column.upper()} field", name, lineno)
        try:
            token_id = _parse_id(cols[0])
        except ParseException:
            raise CoNLLUError(f"bad ID {cols[0]!r}", name, lineno) from None
        if token_id is None:
            raise CoNLLUError("missing ID", name, lineno)
        misc = _dict_field(cols[9], "MISC", name, lineno)
        if isinstance(token_id, tuple) and token_id[1] == "-":
            start, _, end = token_id
            if start != len(words) + 1:
                raise CoNLLUError(f"multiword token {cols[0]} does not start at word {len(words) + 1}",
                                  name, lineno)
            mwts.append((lineno, MultiwordToken(start, end, cols[1], misc)))
            continue
        feats = _dict_field(cols[5], "FEATS", name, lineno)
        if isinstance(token_id, tuple):
            major, _, minor = token_id
            previous = [e.minor for e in empties if e.major == major]
            if major != len(words) or minor != (previous[-1] + 1 if previous else 1):
                raise CoNLLUError(f"empty node {cols[0]} out of sequence", name, lineno)
            empties.append(EmptyNode(major, minor, cols[1], cols[2], cols[3], cols[4], feats,
                                     cols[8], misc))
            continue
        if token_id != len(words) + 1:
            raise CoNLLUError(f"word ID {token_id} out of sequence (expected {len(words) + 1})",
                              name, lineno)
        try:
            head = _parse_int(cols[6])
        except ParseException:
            raise CoNLLUError(f"bad HEAD {cols[6]!r}", name, lineno) from None
        words.append(Word(token_id, cols[1], cols[2], cols[3], feats, head, cols[7], misc,
                          cols[4], cols[8]))
        head_lines.append(lineno)
    if not words:
        raise CoNLLUError("sentence has no words", name, block[-1][0])
    _check_structure(words, head_lines, mwts, name, metadata.get("sent_id") or f"{number} (no sent_id)")
    return Sentence(words, metadata, logprob, [m for _, m in mwts], empties)


def _check_structure(words: list[Word], head_lines: list[int], mwts: list[tuple[int, MultiwordToken]],
                     name: str, sentence: str) -> None:
    """HEADs inside the sentence and forming a tree; multiword tokens inside the sentence."""
    n = len(words)
    for word, lineno in zip(words, head_lines):
        if word.head is not None and not 0 <= word.head <= n:
            raise CoNLLUError(f"HEAD {word.head} outside the sentence (1..{n} or 0)", name, lineno)
        if word.head == word.id:
            raise CoNLLUError(f"word {word.id} is its own HEAD", name, lineno)
    cycle = head_cycle(words)
    if cycle is not None:
        path = " → ".join(str(i) for i in [*cycle, cycle[0]])
        raise CoNLLUError(f"sentence {sentence}: HEAD cycle {path} (the words never reach the root)",
                          name, head_lines[cycle[0] - 1])
    for lineno, mwt in mwts:
        if mwt.end > n:
            raise CoNLLUError(f"multiword token {mwt.start}-{mwt.end} runs past the last word",
                              name, lineno)


# ---------------------------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------------------------

def _token(values: tuple) -> Token:
    return Token(zip(_FIELDS, values))


def sentence_to_tokenlist(sentence: Sentence) -> TokenList:
    """The sentence as a ``conllu.TokenList`` (MWT ranges and empty nodes in place)."""
    metadata = Metadata(sentence.metadata)
    if sentence.logprob is not None:
        metadata[LOGPROB_KEY] = repr(float(sentence.logprob))
    mwt_at = {m.start: m for m in sentence.multiword_tokens}
    empty_after: dict[int, list[EmptyNode]] = {}
    for node in sentence.empty_nodes:
        empty_after.setdefault(node.major, []).append(node)
    tokens: list[Token] = []

    def add_empty(major: int) -> None:
        for e in sorted(empty_after.get(major, ()), key=lambda e: e.minor):
            tokens.append(_token(((e.major, ".", e.minor), e.form, e.lemma, e.upos, e.xpos,
                                  e.feats or None, None, "_", e.deps, e.misc or None)))

    add_empty(0)
    for w in sentence.words:
        m = mwt_at.get(w.id)
        if m is not None:
            tokens.append(_token(((m.start, "-", m.end), m.form, "_", "_", "_", None, None, "_",
                                  "_", m.misc or None)))
        tokens.append(_token((w.id, w.form, w.lemma, w.upos, w.xpos, w.feats or None, w.head,
                              w.deprel, w.deps, w.misc or None)))
        add_empty(w.id)
    return TokenList(tokens, metadata)


@lru_cache(maxsize=8192)
def _serialize_dict_cached(items: tuple[tuple[str, str], ...]) -> str:
    return serialize_field(dict(items))


def serialize_sentence(sentence: Sentence) -> str:
    """One sentence as CoNLL-U text, ending with the blank line."""
    if sentence.multiword_tokens or sentence.empty_nodes:
        return sentence_to_tokenlist(sentence).serialize()
    # Fast path, same output as TokenList.serialize(): plain sentences are most of a treebank
    # and the feature strings repeat, so cache their serialisation.
    lines = [f"# {k} = {v}" if v else f"# {k}" for k, v in sentence.metadata.items()]
    if sentence.logprob is not None:
        lines.append(f"# {LOGPROB_KEY} = {float(sentence.logprob)!r}")
    for w in sentence.words:
        feats = _serialize_dict_cached(tuple(w.feats.items())) if w.feats else "_"
        misc = _serialize_dict_cached(tuple(w.misc.items())) if w.misc else "_"
        head = "_" if w.head is None else str(w.head)
        lines.append(f"{w.id}\t{w.form}\t{w.lemma}\t{w.upos}\t{w.xpos}\t{feats}\t{head}\t"
                     f"{w.deprel}\t{w.deps}\t{misc}")
    return "\n".join(lines) + "\n\n"


def format_conllu(sentences: Iterable[Sentence]) -> str:
    return "".join(serialize_sentence(s) for s in sentences)


def write_conllu(sentences: Iterable[Sentence], path: str | os.PathLike[str]) -> int:
    """Write sentences to ``path`` (UTF-8, ``\\n`` line ends); returns the number written."""
    if isinstance(sentences, (str, os.PathLike)):
        raise TypeError("write_conllu(sentences, path): the sentences come first")
    count = 0
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        for sentence in sentences:
            handle.write(serialize_sentence(sentence))
            count += 1
    return count
