"""The in-memory form of a CoNLL-U sentence.

``Word`` is one syntactic word (an integer ID line of CoNLL-U). Multiword-token range lines
(``1-2``) and empty nodes (``8.1``) are not words: they are kept on the sentence in
``Sentence.multiword_tokens`` and ``Sentence.empty_nodes`` so that a file read and written back
keeps them, while ``Sentence.words`` (and every position-based label) ignores them.

String columns keep the CoNLL-U convention that ``"_"`` means "not given"; FEATS and MISC are
dicts (empty when the column is ``_``); HEAD is ``None`` when the column is ``_``.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Word:
    """One syntactic word. ``id`` is 1-based; ``head`` is 0 for the root."""

    id: int
    form: str
    lemma: str = "_"
    upos: str = "_"
    feats: dict[str, str] = field(default_factory=dict)
    head: int | None = None
    deprel: str = "_"
    misc: dict[str, str] = field(default_factory=dict)
    xpos: str = "_"
    deps: str = "_"


@dataclass(slots=True)
class MultiwordToken:
    """A range line such as ``1-2  don't``: a surface token made of words ``start..end``."""

    start: int
    end: int
    form: str
    misc: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class EmptyNode:
    """An enhanced-UD empty node such as ``8.1``: it follows word ``major`` (0 = before word 1)."""

    major: int
    minor: int
    form: str
    lemma: str = "_"
    upos: str = "_"
    xpos: str = "_"
    feats: dict[str, str] = field(default_factory=dict)
    deps: str = "_"
    misc: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.major}.{self.minor}"


@dataclass(slots=True)
class Sentence:
    """A sentence: its words, its comment lines and, for generated ones, its exact log-probability.

    ``metadata`` holds the ``# key = value`` comments in file order (``# key`` alone maps to "").
    ``logprob`` is the natural-log probability of the sentence under the grammar that produced
    it (``# logprob = ...`` in CoNLL-U), or ``None`` for sentences of a real treebank.
    """

    words: list[Word]
    metadata: dict[str, str] = field(default_factory=dict)
    logprob: float | None = None
    multiword_tokens: list[MultiwordToken] = field(default_factory=list)
    empty_nodes: list[EmptyNode] = field(default_factory=list)

    @property
    def forms(self) -> list[str]:
        return [w.form for w in self.words]

    @property
    def text(self) -> str:
        """The ``# text`` comment when present, else the word forms joined by spaces."""
        return self.metadata.get("text") or " ".join(self.forms)

    def __len__(self) -> int:
        return len(self.words)
