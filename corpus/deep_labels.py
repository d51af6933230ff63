"""Gold labels for structure that one word does not show, on any dependency tree.

Written by the deep grammar into MISC of every sentence (``annotate_deep``) and computed the
same way from HEAD / DEPREL / FEATS for any UD tree:

``ClauseDepth``
    How many clauses the word is embedded in: the clausal relations (``acl`` incl.
    ``acl:relcl``, ``advcl``, ``ccomp``, ``csubj``, ``xcomp``) on its path to the root, its own
    edge included. Main clause 0; ``the dogs that the cat sees run``: ``that the cat sees`` is 1.
``OpenSubj``
    How many subjects are still waiting for their verb after this word (a stack depth): a
    subject is open from its own word up to the word before the first verb of its predicate
    (the predicate itself or its first ``aux`` / ``cop``).
``SubjNumber``, ``Subj``, ``Attractor``, ``AgrDist``, ``Attractors`` (at finite verbs)
    Agreement as ``corpus.labels.annotate_agreement`` writes it, at every finite verb with a
    subject (past tenses too, whose form does not show the number), extended to auxiliaries and
    copulas (``was``/``has``: the subject of the word they depend on), to coordinated
    predicates (the second conjunct's subject is the first's), and to coordinated subjects
    (``the dog and the cat``: plural, though each conjunct is singular; a relative clause on the
    first conjunct, ``the dog that sleeps and the cat``, still agrees with that noun alone). ``AgrDist`` is the
    verb's ID minus the controller's, ``Attractors`` the number of nouns of the other number
    between them. An *agreeing word* is a finite VERB/AUX with a Number feature: only those
    make agreement events, minimal pairs and ``AgrNext``.
``AgrNext``, ``AgrHeld``
    At each word with an agreement still to come whose controller has been read: the Number
    the next such agreeing word must take (of the open agreements, the one that closes first).
    ``AgrHeld=Yes`` where that number cannot be read off the word itself: the word comes after
    the controller (after its last conjunct) and does not itself agree with that controller.

``deep_minimal_pairs`` tags every agreement test item with its construction, nesting depth and
subject-verb distance bucket.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from corpus.labels import MinimalPair
from corpus.sentence import Sentence, Word

if TYPE_CHECKING:
    from corpus.grammar import Grammar

CLAUSAL_RELATIONS = frozenset({"acl", "advcl", "ccomp", "csubj", "xcomp"})
_SUBJECT_RELATIONS = frozenset({"nsubj", "nsubj:pass"})
_AUX_RELATIONS = frozenset({"aux", "aux:pass", "cop"})
_NOMINAL = frozenset({"NOUN", "PROPN"})
_AGREEMENT_KEYS = ("SubjNumber", "Subj", "Attractor")

# (lowest distance, highest distance or None, name): subject-verb distance buckets, in words
DISTANCE_BUCKETS: tuple[tuple[int, int | None, str], ...] = (
    (1, 2, "1-2"), (3, 5, "3-5"), (6, 11, "6-11"), (12, None, "12+"),
)
LONG_DISTANCE = 12
CONSTRUCTIONS = ("coordination", "past_aux", "object_relative", "subject_relative", "relative_verb", "pp",
                 "simple")


def distance_bucket(distance: int) -> str:
    for low, high, name in DISTANCE_BUCKETS:
        if distance >= low and (high is None or distance <= high):
            return name
    raise ValueError(f"subject-verb distance must be >= 1, got {distance}")


# ------------------------------------------------------------------------------ tree helpers
def _children(words: Sequence[Word]) -> dict[int, list[Word]]:
    out: dict[int, list[Word]] = {}
    for w in words:
        if w.head is not None:
            out.setdefault(w.head, []).append(w)
    return out


def _word(words: Sequence[Word], word_id: int | None) -> Word | None:
    return words[word_id - 1] if word_id is not None and 1 <= word_id <= len(words) else None


def clause_depths(words: Sequence[Word]) -> list[int]:
    """``ClauseDepth`` of every word (see module doc); ValueError on a HEAD cycle or a HEAD
    outside the sentence."""
    n = len(words)
    depth: list[int | None] = [None] * n
    for start in range(n):
        path: list[int] = []
        i = start
        while True:
            known = depth[i]
            if known is not None:
                base = known
                break
            if i in path:
                raise ValueError(f"HEAD cycle through word {i + 1}")
            path.append(i)
            head = words[i].head
            if head is None or not 0 <= head <= n:
                raise ValueError(f"word {i + 1} ({words[i].form!r}) has invalid HEAD {head!r}")
            if head == 0:
                base = 0
                break
            i = head - 1
        for j in reversed(path):  # from the top down: each edge adds 1 if it is clausal
            base += words[j].deprel.split(":")[0] in CLAUSAL_RELATIONS
            depth[j] = base
    return depth  # type: ignore[return-value]


def _verb_position(predicate: Word, children: Mapping[int, list[Word]]) -> int:
    """Where a predicate's verb is: its first aux / cop, or the predicate itself."""
    aux = [c.id for c in children.get(predicate.id, ()) if c.deprel in _AUX_RELATIONS]
    return min([predicate.id, *aux])


def open_subjects(words: Sequence[Word]) -> list[int]:
    """``OpenSubj`` of every word: subjects read and still waiting for their verb."""
    children = _children(words)
    counts = [0] * len(words)
    for s in words:
        if s.deprel not in _SUBJECT_RELATIONS:
            continue
        predicate = _word(words, s.head)
        if predicate is None:
            continue
        for i in range(s.id, _verb_position(predicate, children)):
            counts[i - 1] += 1
    return counts


def is_finite(w: Word) -> bool:
    """A finite VERB/AUX (VerbForm=Fin, or no VerbForm but a Number)."""
    if w.upos not in ("VERB", "AUX"):
        return False
    form = w.feats.get("VerbForm")
    return form == "Fin" or (form is None and "Number" in w.feats)


def is_agreeing(w: Word) -> bool:
    """A finite VERB/AUX that shows Number."""
    return is_finite(w) and "Number" in w.feats


class AgreementEvent(NamedTuple):
    """An agreeing word and its controller: ``number`` is what the verb must show."""

    controller: int    # ID of the controller (the first conjunct of a coordinated subject)
    last: int          # ID of the controller's last conjunct (= controller when not coordinated)
    verb: int          # ID of the agreeing word
    number: str
    coordinated: bool


def _controller(words: Sequence[Word], verb: Word, children: Mapping[int, list[Word]]) -> tuple[Word | None, bool]:
    """The controller of an agreeing word, and whether it is the subject itself (True) or the
    noun a relative clause with a relative-pronoun subject modifies (False)."""
    predicate = _word(words, verb.head) if verb.deprel in _AUX_RELATIONS else verb
    seen: set[int] = set()
    while predicate is not None and predicate.id not in seen:
        seen.add(predicate.id)
        subj = next((c for c in children.get(predicate.id, ()) if c.deprel in _SUBJECT_RELATIONS), None)
        if subj is not None:
            if (subj.upos == "PRON" and subj.feats.get("PronType") == "Rel"
                    and predicate.deprel.startswith("acl")):
                return _word(words, predicate.head), False
            return subj, True
        # a coordinated predicate shares the subject of its first conjunct
        predicate = _word(words, predicate.head) if predicate.deprel == "conj" else None
    return None, False


def _conjuncts(word: Word, children: Mapping[int, list[Word]]) -> list[Word]:
    """The conjuncts joined to ``word`` by ``and`` (UD: conj children with an ``and`` cc)."""
    return [c for c in children.get(word.id, ())
            if c.deprel == "conj" and any(cc.deprel == "cc" and cc.form.lower() == "and"
                                          for cc in children.get(c.id, ()))]


def subject_events(words: Sequence[Word]) -> list[AgreementEvent]:
    """Every finite verb with a Sing/Plur controller (the number it agrees with, or would if it
    showed number), in word order."""
    children = _children(words)
    events = []
    for verb in words:
        if not is_finite(verb):
            continue
        ctrl, is_subject = _controller(words, verb, children)
        if ctrl is None:
            continue
        # `the dog and the cat sleep`: the coordination is the subject, plural; but in `the dog
        # that sleeps and the cat` the relative clause modifies the first conjunct alone (UD
        # hangs both on that noun)
        conjuncts = _conjuncts(ctrl, children) if is_subject else []
        number = "Plur" if conjuncts else ctrl.feats.get("Number")
        if number not in ("Sing", "Plur"):
            continue
        last = max([ctrl.id, *(c.id for c in conjuncts)])
        events.append(AgreementEvent(ctrl.id, last, verb.id, number, bool(conjuncts)))
    return events


def agreement_events(words: Sequence[Word]) -> list[AgreementEvent]:
    """Every agreeing word (a finite verb showing Number) with its controller, in word order."""
    return [e for e in subject_events(words) if is_agreeing(words[e.verb - 1])]


def attractor_count(words: Sequence[Word], e: AgreementEvent) -> int:
    """Nouns of the other number between an event's controller and its verb."""
    return sum(x.upos in _NOMINAL and x.feats.get("Number", e.number) != e.number
               for x in words[e.controller:e.verb - 1])


def nesting(depths: Sequence[int], e: AgreementEvent) -> int:
    """Clause levels an agreement crosses: how much deeper than its verb the words between go."""
    between = depths[e.controller:e.verb - 1]
    return max(0, max(between, default=0) - depths[e.verb - 1])


def next_agreement(words: Sequence[Word], events: Sequence[AgreementEvent] | None = None
                   ) -> list[tuple[str, bool] | None]:
    """Per word: (``AgrNext``, ``AgrHeld``) or None where no agreement with a read controller is
    still to come (see module doc)."""
    events = agreement_events(words) if events is None else events
    out: list[tuple[str, bool] | None] = [None] * len(words)
    for i in range(1, len(words) + 1):
        open_ = [e for e in events if e.controller <= i < e.verb]
        if not open_:
            continue
        e = min(open_, key=lambda ev: ev.verb)
        agrees_itself = any(o.verb == i and o.controller == e.controller for o in events)
        out[i - 1] = (e.number, i > e.last and not agrees_itself)
    return out


def annotate_deep(words: list[Word]) -> None:
    """Write the labels of the module doc into MISC (replacing the plain agreement labels)."""
    for w in words:
        for key in _AGREEMENT_KEYS:
            w.misc.pop(key, None)
    finite = subject_events(words)
    events = [e for e in finite if is_agreeing(words[e.verb - 1])]
    for w, depth, n_open, nxt in zip(words, clause_depths(words), open_subjects(words),
                                     next_agreement(words, events)):
        w.misc["ClauseDepth"] = str(depth)
        w.misc["OpenSubj"] = str(n_open)
        if nxt is not None:
            w.misc["AgrNext"] = nxt[0]
            w.misc["AgrHeld"] = "Yes" if nxt[1] else "No"
    for e in finite:
        verb = words[e.verb - 1]
        attractors = attractor_count(words, e)
        verb.misc["SubjNumber"] = e.number
        verb.misc["Subj"] = str(e.controller)
        verb.misc["Attractor"] = "Yes" if attractors else "No"
        verb.misc["AgrDist"] = str(e.verb - e.controller)
        verb.misc["Attractors"] = str(attractors)


# ------------------------------------------------------------------------------ minimal pairs
@dataclass(frozen=True)
class TaggedPair:
    """A minimal pair (``pair``: prefix, correct, wrong) and what kind of agreement it tests."""

    pair: MinimalPair
    construction: str   # one of CONSTRUCTIONS (the first that applies, in that order)
    nesting: int        # clause levels the dependency crosses (0: none)
    depth: int          # ClauseDepth of the agreeing word
    distance: int       # verb ID - controller ID
    attractors: int     # nouns of the other number in between
    auxiliary: bool     # the agreeing word is an auxiliary (was/were, has/have)

    @property
    def bucket(self) -> str:
        return distance_bucket(self.distance)

    def tags(self) -> dict[str, str]:
        """The groups this pair is reported in: construction, nesting, depth, distance bucket
        and attractors (0, 1, 2, 3+)."""
        attractors = "3+" if self.attractors >= 3 else str(self.attractors)
        return {"construction": self.construction, "nesting": str(self.nesting), "depth": str(self.depth),
                "distance": self.bucket, "attractors": attractors}


def _construction(words: Sequence[Word], e: AgreementEvent) -> str:
    verb = words[e.verb - 1]
    between = words[e.controller:e.verb - 1]
    if e.coordinated:
        return "coordination"
    if verb.deprel in _AUX_RELATIONS and (_word(words, verb.head) or verb).deprel == "conj":
        return "past_aux"
    rel = [w for w in between if w.upos == "PRON" and w.feats.get("PronType") == "Rel"]
    if any(w.deprel == "obj" for w in rel):
        return "object_relative"
    if any(w.deprel in _SUBJECT_RELATIONS for w in rel):
        predicate = _word(words, verb.head) if verb.deprel in _AUX_RELATIONS else verb
        inside = predicate is not None and predicate.deprel.startswith("acl") and predicate.head == e.controller
        return "relative_verb" if inside and len(rel) == 1 else "subject_relative"
    if any(w.upos == "ADP" for w in between):
        return "pp"
    return "simple"


def deep_minimal_pairs(sentences: Iterable[Sentence], grammar: "Grammar | None" = None) -> list[TaggedPair]:
    """A tagged minimal pair for every agreeing word whose other-number form exists in
    ``grammar`` (default: ``DEEP_GRAMMAR``): the prefix is the words before it."""
    if grammar is None:
        from corpus.deep_grammar import DEEP_GRAMMAR

        grammar = DEEP_GRAMMAR
    inflections = grammar.inflections()
    out = []
    for sentence in sentences:
        words = sentence.words
        forms = sentence.forms
        depths = clause_depths(words)
        for e in agreement_events(words):
            verb = words[e.verb - 1]
            other = "Plur" if e.number == "Sing" else "Sing"
            wrong = inflections.get((verb.lemma, verb.upos, other))
            if wrong is None or wrong == verb.form:
                continue
            out.append(TaggedPair(MinimalPair(forms[: e.verb - 1], verb.form, wrong), _construction(words, e),
                                  nesting(depths, e), depths[e.verb - 1], e.verb - e.controller,
                                  attractor_count(words, e), verb.upos == "AUX"))
    return out


def deep_stats(sentences: Sequence[Sentence]) -> dict[str, object]:
    """What the deep labels look like over a corpus (for stats.json): agreement events by
    distance bucket and construction, the share at distance >= 12, clause depth and open
    subjects."""
    n_events = long = 0
    bucket_counts: Counter[str] = Counter()
    construction_counts: Counter[str] = Counter()
    nesting_counts: Counter[int] = Counter()
    depth_counts: Counter[int] = Counter()
    open_counts: Counter[int] = Counter()
    held = 0
    for s in sentences:
        words = s.words
        depths = clause_depths(words)
        depth_counts.update(depths)
        open_counts.update(open_subjects(words))
        held += sum(1 for x in next_agreement(words) if x is not None and x[1])
        for e in agreement_events(words):
            n_events += 1
            d = e.verb - e.controller
            long += d >= LONG_DISTANCE
            bucket_counts[distance_bucket(d)] += 1
            construction_counts[_construction(words, e)] += 1
            nesting_counts[nesting(depths, e)] += 1
    return {
        "agreement_events": n_events,
        "long_distance_share": long / n_events if n_events else 0.0,
        "by_distance": {name: bucket_counts[name] for _, _, name in DISTANCE_BUCKETS},
        "by_construction": {name: construction_counts[name] for name in CONSTRUCTIONS},
        "by_nesting": {str(k): nesting_counts[k] for k in sorted(nesting_counts)},
        "clause_depth": {str(k): depth_counts[k] for k in sorted(depth_counts)},
        "open_subjects": {str(k): open_counts[k] for k in sorted(open_counts)},
        "held_number_words": held,
    }
