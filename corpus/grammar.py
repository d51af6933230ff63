"""The treebank grammar as one readable, editable data structure: ``DEFAULT_GRAMMAR``.

A ``Grammar`` is a head-annotated probabilistic context-free grammar written with templates:

* ``rules`` maps a left-hand side to its alternatives ``(weight, "Sym:role Sym:role ...")``.
  Each right-hand item is a symbol and its role: ``head`` marks the head child (exactly one per
  rule); any other role is the UD relation by which that child's head word depends on the head
  child's head word (``det``, ``nsubj``, ``acl:relcl`` ...). The top symbol's head is the root.
* A symbol may carry one number slot: ``NP.{n}`` is a template over the values of ``numbers``
  (``Sing``, ``Plur``). A variable bound on the left (``VP.{n} -> Vi.{n}:head``) is how
  agreement is threaded; a variable free on the left (``S -> NP.{n}:nsubj VP.{n}:head``) is
  drawn from the ``numbers`` prior, multiplying the rule's weight.
* Weights are normalised per (concrete) left-hand side, so they need not sum to 1.
* Symbols in ``embedding`` (PP, RC, CP) open a deeper level of embedding; no derivation goes
  deeper than ``max_depth`` levels: alternatives that would are dropped and the remaining ones
  renormalised. Sentences longer than ``max_words`` are rejected, and the log-probabilities
  are renormalised exactly for it (see ``corpus.pcfg``).
* ``word_classes`` are the pre-terminals: each has a UPOS, XPOS, FEATS and a weighted word list.
  A word may belong to several classes; that is where part of speech depends on context.
* ``name`` says which built-in grammar it is (``builtin_grammar(name)``); ``annotate``, when
  given, writes further gold labels into the words of every generated sentence after the
  standard ones (the deep grammar's agreement, open-subject and clause-depth labels).

How the default grammar stays unambiguous (proved by ``tests/test_corpus_grammar.py`` with an
exhaustive chart parser): every noun phrase starts with a determiner, so a noun/verb homograph
("watches", "walk", "plants") is a noun exactly when it follows a determiner or adjective; a noun
takes at most one post-modifier (PP or relative clause) and prepositional phrases attach only to
nouns, so there is no PP-attachment choice; complementizer "that" is obligatory after a
sentential verb, relative "that" follows a noun and determiner "that" precedes a noun.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

HEAD = "head"
_SYMBOL = re.compile(r"^([A-Za-z][A-Za-z0-9_]*)(?:\.(\{[a-z]\}|[A-Za-z]+))?$")


@dataclass(frozen=True, eq=False)
class WordClass:
    """A pre-terminal: every word in it gets this UPOS, XPOS and FEATS."""

    upos: str
    xpos: str
    words: Mapping[str, float]
    feats: Mapping[str, str] = field(default_factory=dict)
    lemmas: Mapping[str, str] = field(default_factory=dict)  # form -> lemma where they differ

    def __post_init__(self) -> None:
        if not self.upos or not self.xpos:
            raise ValueError("WordClass.upos and WordClass.xpos must be non-empty")
        if not self.words:
            raise ValueError("WordClass.words must not be empty")
        for form, weight in self.words.items():
            if not form or any(c.isspace() for c in form):
                raise ValueError(f"WordClass.words: {form!r} is not a single word")
            if not weight > 0:
                raise ValueError(f"WordClass.words: weight of {form!r} must be > 0, got {weight}")
        unknown = set(self.lemmas) - set(self.words)
        if unknown:
            raise ValueError(f"WordClass.lemmas: forms not in words: {sorted(unknown)}")
        object.__setattr__(self, "words", MappingProxyType(dict(self.words)))
        # UD orders features alphabetically, case-insensitively
        feats = dict(sorted(self.feats.items(), key=lambda kv: kv[0].lower()))
        object.__setattr__(self, "feats", MappingProxyType(feats))
        object.__setattr__(self, "lemmas", MappingProxyType(dict(self.lemmas)))

    def lemma(self, form: str) -> str:
        return self.lemmas.get(form, form)


@dataclass(frozen=True)
class RuleItem:
    """One parsed right-hand-side item: ``base``, optional number ``slot`` and ``role``."""

    base: str
    slot: str | None  # "{n}" (a variable), "Sing" (a value) or None
    role: str

    @property
    def variable(self) -> str | None:
        return self.slot[1:-1] if self.slot and self.slot.startswith("{") else None


def parse_symbol(text: str) -> tuple[str, str | None]:
    match = _SYMBOL.match(text)
    if not match:
        raise ValueError(f"bad symbol {text!r}: expected Name, Name.{{v}} or Name.Value")
    return match.group(1), match.group(2)


def parse_rhs(text: str) -> tuple[RuleItem, ...]:
    items = []
    for chunk in text.split():
        symbol, sep, role = chunk.partition(":")
        if not sep or not role:
            raise ValueError(f"bad rule item {chunk!r}: expected Symbol:role")
        base, slot = parse_symbol(symbol)
        items.append(RuleItem(base, slot, role))
    if not items:
        raise ValueError("empty right-hand side")
    return tuple(items)


@dataclass(frozen=True, eq=False)
class Grammar:
    """A head-annotated PCFG with number agreement and bounded embedding (see module doc)."""

    start: str
    rules: Mapping[str, Sequence[tuple[float, str]]]
    word_classes: Mapping[str, WordClass]
    numbers: Mapping[str, float] = field(default_factory=lambda: {"Sing": 0.5, "Plur": 0.5})
    embedding: frozenset[str] = frozenset({"PP", "RC", "CP"})
    max_depth: int = 2
    max_words: int = 30
    name: str = "default"
    annotate: Callable[[list], None] | None = None  # words of a sentence -> None (writes MISC)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not re.fullmatch(r"[a-z][a-z0-9_-]*", self.name):
            raise ValueError(f"Grammar.name must be a lower-case identifier, got {self.name!r}")
        if self.annotate is not None and not callable(self.annotate):
            raise ValueError("Grammar.annotate must be callable or None")
        if not isinstance(self.max_depth, int) or self.max_depth < 0:
            raise ValueError(f"Grammar.max_depth must be an int >= 0, got {self.max_depth!r}")
        if not isinstance(self.max_words, int) or self.max_words < 1:
            raise ValueError(f"Grammar.max_words must be an int >= 1, got {self.max_words!r}")
        if not self.numbers or any(not w > 0 for w in self.numbers.values()):
            raise ValueError("Grammar.numbers must be a non-empty map of values to weights > 0")
        for value in self.numbers:
            if not re.fullmatch(r"[A-Za-z]+", value):
                raise ValueError(f"Grammar.numbers: bad value name {value!r}")
        object.__setattr__(self, "numbers", MappingProxyType(dict(self.numbers)))
        object.__setattr__(self, "embedding", frozenset(self.embedding))
        object.__setattr__(self, "word_classes", MappingProxyType(dict(self.word_classes)))
        parsed: dict[str, tuple[str | None, tuple[tuple[float, tuple[RuleItem, ...]], ...]]] = {}
        for lhs, alternatives in self.rules.items():
            base, slot = parse_symbol(lhs)
            if slot is not None and not slot.startswith("{"):
                raise ValueError(f"Grammar.rules: left-hand side {lhs!r} must use a variable slot")
            if base in parsed:
                raise ValueError(f"Grammar.rules: {base!r} is defined twice")
            if base in self.word_classes or any(k.split(".")[0] == base for k in self.word_classes):
                raise ValueError(f"Grammar.rules: {base!r} is also a word class")
            if not alternatives:
                raise ValueError(f"Grammar.rules[{lhs!r}] has no alternatives")
            alts = []
            for weight, rhs in alternatives:
                if not weight > 0:
                    raise ValueError(f"Grammar.rules[{lhs!r}]: weight must be > 0, got {weight}")
                try:
                    items = parse_rhs(rhs)
                except ValueError as err:
                    raise ValueError(f"Grammar.rules[{lhs!r}]: {err}") from None
                if sum(item.role == HEAD for item in items) != 1:
                    raise ValueError(f"Grammar.rules[{lhs!r}]: {rhs!r} needs exactly one :head")
                alts.append((float(weight), items))
            parsed[base] = (slot, tuple(alts))
        object.__setattr__(self, "_parsed", MappingProxyType(parsed))
        object.__setattr__(self, "rules", MappingProxyType({k: tuple(v) for k, v in self.rules.items()}))
        start_base, start_slot = parse_symbol(self.start)
        if start_base not in parsed or start_slot is not None or parsed[start_base][0] is not None:
            raise ValueError(f"Grammar.start {self.start!r} must be a rule without number slot")
        self._check_symbols(parsed)

    def _check_symbols(self, parsed: Mapping) -> None:
        for lhs_base, (_, alts) in parsed.items():
            for _, items in alts:
                for item in items:
                    if item.slot and not item.variable and item.slot not in self.numbers:
                        raise ValueError(f"Grammar.rules[{lhs_base!r}]: unknown number {item.slot!r}")
                    if item.base in parsed:
                        if (parsed[item.base][0] is not None) != (item.slot is not None):
                            raise ValueError(
                                f"Grammar.rules[{lhs_base!r}]: {item.base!r} used with a wrong number slot"
                            )
                        continue
                    values = list(self.numbers) if item.variable else [item.slot]
                    for value in values:
                        name = item.base if value is None else f"{item.base}.{value}"
                        if name not in self.word_classes:
                            raise ValueError(
                                f"Grammar.rules[{lhs_base!r}]: unknown symbol {name!r} "
                                "(neither a rule nor a word class)"
                            )

    @property
    def parsed_rules(self) -> Mapping[str, tuple[str | None, tuple[tuple[float, tuple[RuleItem, ...]], ...]]]:
        """``base -> (slot, ((weight, items), ...))``: the rules with their right sides parsed."""
        return self._parsed  # type: ignore[attr-defined]

    def vocabulary(self) -> list[str]:
        """Every word form the grammar can emit, sorted."""
        return sorted({form for wc in self.word_classes.values() for form in wc.words})

    def inflections(self) -> dict[tuple[str, str, str], str]:
        """``(lemma, upos, Number) -> form`` over all classes whose FEATS carry a Number."""
        table: dict[tuple[str, str, str], str] = {}
        for name, wc in self.word_classes.items():
            number = wc.feats.get("Number")
            if number is None:
                continue
            for form in wc.words:
                key = (wc.lemma(form), wc.upos, number)
                if table.setdefault(key, form) != form:
                    raise ValueError(
                        f"Grammar.word_classes[{name!r}]: {key} has two forms: {table[key]!r}, {form!r}"
                    )
        return table


# --------------------------------------------------------------------------------------------
# The default English grammar. Edit the word lists or the weights here; everything else (the
# sampler, the exact log-probabilities, the parser, the tests) follows.
# --------------------------------------------------------------------------------------------

NOUNS: list[tuple[str, str]] = [  # (singular, plural); the lemma is the singular
    ("dog", "dogs"), ("cat", "cats"), ("bird", "birds"), ("horse", "horses"),
    ("farmer", "farmers"), ("teacher", "teachers"), ("doctor", "doctors"),
    ("student", "students"), ("pilot", "pilots"), ("lawyer", "lawyers"), ("author", "authors"),
    ("senator", "senators"), ("painter", "painters"), ("neighbor", "neighbors"),
    ("friend", "friends"), ("king", "kings"), ("queen", "queens"), ("child", "children"),
    ("man", "men"), ("woman", "women"), ("house", "houses"), ("car", "cars"),
    ("book", "books"), ("garden", "gardens"), ("river", "rivers"), ("table", "tables"),
    # noun/verb homographs: the plural noun is a singular verb and vice versa
    ("watch", "watches"), ("walk", "walks"), ("plant", "plants"),
]
INTRANSITIVE: list[tuple[str, str]] = [  # (3rd-person singular, plural); the lemma is the plural
    ("sleeps", "sleep"), ("smiles", "smile"), ("laughs", "laugh"), ("arrives", "arrive"),
    ("waits", "wait"), ("swims", "swim"), ("sings", "sing"), ("falls", "fall"),
    ("walks", "walk"),
]
TRANSITIVE: list[tuple[str, str]] = [
    ("sees", "see"), ("likes", "like"), ("chases", "chase"), ("follows", "follow"),
    ("helps", "help"), ("visits", "visit"), ("admires", "admire"), ("finds", "find"),
    ("watches", "watch"), ("plants", "plant"),
]
SENTENTIAL: list[tuple[str, str]] = [
    ("says", "say"), ("thinks", "think"), ("knows", "know"), ("believes", "believe"),
    ("hopes", "hope"),
]
ADJECTIVES = ["old", "young", "big", "small", "happy", "tall", "quiet", "famous", "clever",
              "angry", "brave", "lazy", "busy"]
PREPOSITIONS = ["near", "behind", "beside", "with", "above", "under"]

_VERB_FEATS = {"Mood": "Ind", "Person": "3", "Tense": "Pres", "VerbForm": "Fin"}


def _inflected(pairs: list[tuple[str, str]], name: str, upos: str, xpos: tuple[str, str],
               feats: Mapping[str, str], lemma_index: int) -> dict[str, WordClass]:
    """Two classes ``name.Sing`` / ``name.Plur`` from (singular, plural) pairs."""
    out = {}
    for i, number in enumerate(("Sing", "Plur")):
        out[f"{name}.{number}"] = WordClass(
            upos=upos, xpos=xpos[i],
            words={pair[i]: 1.0 for pair in pairs},
            feats={**feats, "Number": number},
            lemmas={pair[i]: pair[lemma_index] for pair in pairs if pair[i] != pair[lemma_index]},
        )
    return out


DEFAULT_GRAMMAR = Grammar(
    start="ROOT",
    max_depth=2,
    max_words=30,
    numbers={"Sing": 0.5, "Plur": 0.5},
    embedding=frozenset({"PP", "RC", "CP"}),
    rules={
        "ROOT": [(1.0, "S:head Punct:punct")],
        "S": [(1.0, "NP.{n}:nsubj VP.{n}:head")],
        # noun phrase: optional adjective (0.3), then nothing (0.6), a PP (0.25) or a relative
        # clause (0.15) after the noun; PP and RC put an attractor noun before the verb
        "NP.{n}": [
            (0.7 * 0.60, "Det.{n}:det N.{n}:head"),
            (0.3 * 0.60, "Det.{n}:det Adj:amod N.{n}:head"),
            (0.7 * 0.25, "Det.{n}:det N.{n}:head PP:nmod"),
            (0.3 * 0.25, "Det.{n}:det Adj:amod N.{n}:head PP:nmod"),
            (0.7 * 0.15, "Det.{n}:det N.{n}:head RC.{n}:acl:relcl"),
            (0.3 * 0.15, "Det.{n}:det Adj:amod N.{n}:head RC.{n}:acl:relcl"),
        ],
        "PP": [(1.0, "P:case NP.{m}:head")],
        "RC.{n}": [
            (0.6, "Rel:nsubj VP.{n}:head"),                 # the dog that sees the cats
            (0.4, "Rel:obj NP.{m}:nsubj Vt.{m}:head"),      # the dog that the cats see
        ],
        "VP.{n}": [
            (0.40, "Vi.{n}:head"),
            (0.45, "Vt.{n}:head NP.{m}:obj"),
            (0.15, "Vs.{n}:head CP:ccomp"),
        ],
        "CP": [(1.0, "Comp:mark S:head")],
    },
    word_classes={
        "Det.Sing": WordClass("DET", "DT", {"the": 0.5, "every": 0.2, "this": 0.15, "that": 0.15}),
        "Det.Plur": WordClass("DET", "DT", {"the": 0.5, "some": 0.2, "these": 0.15, "those": 0.15}),
        "Adj": WordClass("ADJ", "JJ", {w: 1.0 for w in ADJECTIVES}),
        **_inflected(NOUNS, "N", "NOUN", ("NN", "NNS"), {}, lemma_index=0),
        **_inflected(INTRANSITIVE, "Vi", "VERB", ("VBZ", "VBP"), _VERB_FEATS, lemma_index=1),
        **_inflected(TRANSITIVE, "Vt", "VERB", ("VBZ", "VBP"), _VERB_FEATS, lemma_index=1),
        **_inflected(SENTENTIAL, "Vs", "VERB", ("VBZ", "VBP"), _VERB_FEATS, lemma_index=1),
        "P": WordClass("ADP", "IN", {w: 1.0 for w in PREPOSITIONS}),
        "Rel": WordClass("PRON", "WDT", {"that": 1.0}, feats={"PronType": "Rel"}),
        "Comp": WordClass("SCONJ", "IN", {"that": 1.0}),
        "Punct": WordClass("PUNCT", ".", {".": 1.0}),
    },
)


GRAMMAR_NAMES: tuple[str, ...] = ("default", "deep")


def builtin_grammar(name: str) -> Grammar:
    """The built-in grammar called ``name``: ``default`` (``DEFAULT_GRAMMAR``) or ``deep``
    (``corpus.deep_grammar.DEEP_GRAMMAR``)."""
    if name == "default":
        return DEFAULT_GRAMMAR
    if name == "deep":
        from corpus.deep_grammar import DEEP_GRAMMAR  # imported here: it builds on this module

        return DEEP_GRAMMAR
    raise ValueError(f"unknown grammar {name!r}; choose one of {', '.join(GRAMMAR_NAMES)}")
