"""``DEEP_GRAMMAR``: a second built-in grammar whose agreement cannot be read off one word.

It is written in the same ``Grammar`` framework as ``DEFAULT_GRAMMAR`` (so the compiler, the
sampler, the exact log-probabilities and entropy floor, the chart parser and the CoNLL-U
output all apply unchanged), over the default lexicon plus past tenses, participles, the
auxiliaries ``was/were`` and ``has/have`` and the conjunction ``and``. It adds:

* center-embedded object relatives, nested up to three clauses deep (relative clauses and
  complement clauses are the embedding symbols; ``max_depth = 3``):
  ``the dogs that the cat that the boys like sees run .``
* long subject-verb distances with several attractors of mixed number: every noun phrase may
  carry a prepositional phrase whose noun may carry a relative clause, and a relative clause's
  subject is drawn afresh (18% of the agreement events span 12 words or more);
* coordinated subjects, plural whatever their conjuncts: ``the dog and the cat run .``;
* past-tense verbs that show no number, and auxiliaries that do: ``the dogs that the cat saw
  were happy .``; and in the main clause a past-tense predicate coordinated with an
  auxiliary one, so that the subject's number must be held across the first conjunct:
  ``the dog chased the cats and was happy .``

How it stays unambiguous (proved by ``tests/test_corpus_deep.py``, see docs/treebank.md):
the default grammar's devices (every noun phrase starts with a determiner; a noun takes at most
one post-modifier; prepositional phrases attach only to nouns and their noun phrase takes no
prepositional phrase itself; the complementizer is obligatory), plus: only subjects are
coordinated (never objects or the noun of a prepositional phrase), so an ``and`` followed by a
determiner always joins two subjects; only the main clause coordinates predicates, and the
second predicate always starts with an auxiliary, so an ``and`` followed by ``was/were/has/have``
joins the main predicate and nothing else; and a participle follows ``has/have`` and nothing
else, which tells the homographs ``slept``/``found``/``liked`` (past or participle) apart.

The extra gold labels (agreement through auxiliaries and coordination, open subjects, clause
depth, the number the next agreeing word must take) are written by
``corpus.deep_labels.annotate_deep``, the grammar's ``annotate`` hook.
"""

from __future__ import annotations

from corpus.deep_labels import annotate_deep
from corpus.grammar import (
    _VERB_FEATS, ADJECTIVES, INTRANSITIVE, NOUNS, PREPOSITIONS, SENTENTIAL, TRANSITIVE, Grammar,
    WordClass, _inflected,
)

# (lemma, past tense, past participle); the lemma is the plural present form of the default lexicon
PAST_INTRANSITIVE: list[tuple[str, str, str]] = [
    ("sleep", "slept", "slept"), ("smile", "smiled", "smiled"), ("laugh", "laughed", "laughed"),
    ("arrive", "arrived", "arrived"), ("wait", "waited", "waited"), ("swim", "swam", "swum"),
    ("sing", "sang", "sung"), ("fall", "fell", "fallen"), ("walk", "walked", "walked"),
]
PAST_TRANSITIVE: list[tuple[str, str, str]] = [
    ("see", "saw", "seen"), ("like", "liked", "liked"), ("chase", "chased", "chased"),
    ("follow", "followed", "followed"), ("help", "helped", "helped"), ("visit", "visited", "visited"),
    ("admire", "admired", "admired"), ("find", "found", "found"), ("watch", "watched", "watched"),
    ("plant", "planted", "planted"),
]
PAST_SENTENTIAL: list[tuple[str, str]] = [
    ("say", "said"), ("think", "thought"), ("know", "knew"), ("believe", "believed"), ("hope", "hoped"),
]

_PAST_FEATS = {"Mood": "Ind", "Tense": "Past", "VerbForm": "Fin"}  # no Number: past tense hides it
_PART_FEATS = {"Tense": "Past", "VerbForm": "Part"}


def _forms(pairs: list[tuple[str, str]], upos: str, xpos: str, feats: dict[str, str]) -> WordClass:
    """A class from (lemma, form) pairs."""
    return WordClass(upos, xpos, {form: 1.0 for _, form in pairs}, feats=feats,
                     lemmas={form: lemma for lemma, form in pairs if form != lemma})


def _aux(form: str, lemma: str, number: str, tense: str, xpos: str) -> WordClass:
    feats = {"Mood": "Ind", "Number": number, "Person": "3", "Tense": tense, "VerbForm": "Fin"}
    return WordClass("AUX", xpos, {form: 1.0}, feats=feats, lemmas={form: lemma} if form != lemma else {})


# Weights, per left-hand side (normalised there). The comments give what they are meant to do.
_BARE, _PP, _RC = 0.40, 0.30, 0.30          # noun post-modifier: none / prepositional phrase / relative clause
_ADJ = 0.3                                  # an adjective before the noun
_PP_RC = 0.3                                # a relative clause on the noun of a prepositional phrase
_SRC, _ORC = 0.40, 0.60                     # subject / object relative clause
_COORD = 0.2                                # a coordinated subject (main and complement clauses)
_ORC_COORD = 0.15                           # a coordinated subject inside an object relative


def _np(post: str | None, weight: float) -> list[tuple[float, str]]:
    tail = f" {post}" if post else ""
    return [((1 - _ADJ) * weight, f"Det.{{n}}:det N.{{n}}:head{tail}"),
            (_ADJ * weight, f"Det.{{n}}:det Adj:amod N.{{n}}:head{tail}")]


def _orc(weight: float) -> list[tuple[float, str]]:
    """Object relatives: the relative pronoun is the object of the clause's verb, whose subject
    (a noun phrase of its own number, or two coordinated ones: plural) comes first."""
    out = []
    for subject, number, w in (("NP.{m}", "{m}", 1 - _ORC_COORD), ("CoordNP", "Plur", _ORC_COORD)):
        out += [
            (weight * w * 0.45, f"Rel:obj {subject}:nsubj Vt.{number}:head"),             # that the cat sees
            (weight * w * 0.30, f"Rel:obj {subject}:nsubj Vpt:head"),                     # that the cat saw
            (weight * w * 0.25, f"Rel:obj {subject}:nsubj Have.{number}:aux Vnt:head"),   # that the cat has seen
        ]
    return out


DEEP_GRAMMAR = Grammar(
    start="ROOT",
    name="deep",
    annotate=annotate_deep,
    max_depth=3,
    max_words=40,
    numbers={"Sing": 0.5, "Plur": 0.5},
    embedding=frozenset({"RC", "CP"}),
    rules={
        "ROOT": [(1.0, "Main:head Punct:punct")],
        # the main clause: the only one whose predicate may be coordinated
        "Main": [
            (1 - _COORD, "NP.{n}:nsubj MVP.{n}:head"),
            (_COORD, "CoordNP:nsubj MVP.Plur:head"),
        ],
        "S": [
            (1 - _COORD, "NP.{n}:nsubj VP.{n}:head"),
            (_COORD, "CoordNP:nsubj VP.Plur:head"),
        ],
        "CoordNP": [(1.0, "NP.{a}:head ConjNP:conj")],       # the dog and the cats: plural
        "ConjNP": [(1.0, "Cc:cc NP.{b}:head")],
        "NP.{n}": _np(None, _BARE) + _np("PP:nmod", _PP) + _np("RC.{n}:acl:relcl", _RC),
        # the noun phrase of a prepositional phrase: no PP of its own, sometimes a relative clause
        "NPp.{n}": _np(None, 1 - _PP_RC) + _np("RC.{n}:acl:relcl", _PP_RC),
        "PP": [(1.0, "P:case NPp.{m}:head")],
        "RC.{n}": [(_SRC, "Rel:nsubj VP.{n}:head")] + _orc(_ORC),
        "CP": [(1.0, "Comp:mark S:head")],
        # main predicate: a plain one, or a past-tense one and an auxiliary one that agrees
        "MVP.{n}": [
            (0.72, "VP.{n}:head"),
            (0.28, "PastVP:head ConjVP.{n}:conj"),           # chased the cats and was happy
        ],
        "ConjVP.{n}": [(1.0, "Cc:cc AuxVP.{n}:head")],
        "VP.{n}": [
            (0.14, "Vi.{n}:head"),
            (0.17, "Vt.{n}:head NP.{m}:obj"),
            (0.05, "Vs.{n}:head CP:ccomp"),
            (0.30, "PastVP:head"),
            (0.34, "AuxVP.{n}:head"),
        ],
        "PastVP": [
            (0.35, "Vpi:head"),
            (0.50, "Vpt:head NP.{m}:obj"),
            (0.15, "Vps:head CP:ccomp"),
        ],
        "AuxVP.{n}": [
            (0.45, "Be.{n}:cop Adj:head"),                   # were happy
            (0.25, "Have.{n}:aux Vni:head"),                 # has slept
            (0.30, "Have.{n}:aux Vnt:head NP.{m}:obj"),      # have seen the cat
        ],
    },
    word_classes={
        "Det.Sing": WordClass("DET", "DT", {"the": 0.5, "every": 0.2, "this": 0.15, "that": 0.15}),
        "Det.Plur": WordClass("DET", "DT", {"the": 0.5, "some": 0.2, "these": 0.15, "those": 0.15}),
        "Adj": WordClass("ADJ", "JJ", {w: 1.0 for w in ADJECTIVES}),
        **_inflected(NOUNS, "N", "NOUN", ("NN", "NNS"), {}, lemma_index=0),
        **_inflected(INTRANSITIVE, "Vi", "VERB", ("VBZ", "VBP"), _VERB_FEATS, lemma_index=1),
        **_inflected(TRANSITIVE, "Vt", "VERB", ("VBZ", "VBP"), _VERB_FEATS, lemma_index=1),
        **_inflected(SENTENTIAL, "Vs", "VERB", ("VBZ", "VBP"), _VERB_FEATS, lemma_index=1),
        "Vpi": _forms([(lemma, past) for lemma, past, _ in PAST_INTRANSITIVE], "VERB", "VBD", _PAST_FEATS),
        "Vpt": _forms([(lemma, past) for lemma, past, _ in PAST_TRANSITIVE], "VERB", "VBD", _PAST_FEATS),
        "Vps": _forms(PAST_SENTENTIAL, "VERB", "VBD", _PAST_FEATS),
        "Vni": _forms([(lemma, part) for lemma, _, part in PAST_INTRANSITIVE], "VERB", "VBN", _PART_FEATS),
        "Vnt": _forms([(lemma, part) for lemma, _, part in PAST_TRANSITIVE], "VERB", "VBN", _PART_FEATS),
        "Be.Sing": _aux("was", "be", "Sing", "Past", "VBD"),
        "Be.Plur": _aux("were", "be", "Plur", "Past", "VBD"),
        "Have.Sing": _aux("has", "have", "Sing", "Pres", "VBZ"),
        "Have.Plur": _aux("have", "have", "Plur", "Pres", "VBP"),
        "P": WordClass("ADP", "IN", {w: 1.0 for w in PREPOSITIONS}),
        "Rel": WordClass("PRON", "WDT", {"that": 1.0}, feats={"PronType": "Rel"}),
        "Comp": WordClass("SCONJ", "IN", {"that": 1.0}),
        "Cc": WordClass("CCONJ", "CC", {"and": 1.0}),
        "Punct": WordClass("PUNCT", ".", {".": 1.0}),
    },
)
