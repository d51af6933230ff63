"""Gold labels: from a derivation tree to labelled words, and checks on any dependency tree.

``derivation_to_words`` reads everything off a derivation of the compiled grammar: FORM, LEMMA,
UPOS, XPOS, FEATS, HEAD and DEPREL from the head annotation of the rules, and in MISC
``Const`` (label of the constituent whose rule introduced the word: NP, VP, PP, RC, CP, S,
ROOT) and ``Depth`` (edges to the root, counted in the constituency tree as the number of
non-head branches on the way up). ``depth_from_heads`` computes the same depth from HEAD alone;
the tests check that both agree. ``head_cycle`` finds a HEAD cycle (which makes a dependency
"tree" no tree): ``read_conllu`` refuses files with one, and the depth task uses it.

``annotate_agreement`` works on any dependency tree (a UD treebank too). For every finite verb
(a VERB/AUX with a Number feature) it finds the agreement controller (the nsubj, or, when the
nsubj is a relative pronoun, the noun the relative clause modifies) and writes to MISC
``SubjNumber`` (the controller's Number), ``Subj`` (its ID) and ``Attractor`` (``Yes`` when a
noun of the other number stands between controller and verb).

``agreement_minimal_pairs`` turns those into Marvin & Linzen-style test items (the wrong
verb form from the grammar); ``corpus_minimal_pairs`` does the same for any treebank with Number
features, taking the wrong form from the verb forms the treebank itself attests
(``inflection_table``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

from corpus.grammar import DEFAULT_GRAMMAR, Grammar
from corpus.pcfg import PCFG, Node
from corpus.sentence import Sentence, Word

_NOMINAL = frozenset({"NOUN", "PROPN"})
_SUBJECT_RELATIONS = frozenset({"nsubj", "nsubj:pass"})


def derivation_to_words(tree: Node, pcfg: PCFG) -> list[Word]:
    """Labelled words (HEAD, DEPREL, MISC Const/Depth, agreement) of one derivation."""
    words: list[Word] = []
    rules = pcfg.rules
    lexicals = pcfg.lexicals

    def visit(node: Node, depth: int) -> int:
        """Create the words under ``node``; return the id of its lexical head."""
        rule = rules[node.rule]
        heads = []
        for k, child in enumerate(node.children):
            # the head child's head word is this node's head word; any other child's head word
            # hangs one edge below it
            child_depth = depth if k == rule.head else depth + 1
            if child.rule >= 0:
                heads.append(visit(child, child_depth))
                continue
            lex = lexicals[child.symbol]
            form = child.children[0]
            word_id = len(words) + 1
            words.append(Word(word_id, form, lex.lemmas[form], lex.upos, dict(lex.feats), None, "_",
                              {"Const": rule.label, "Depth": str(child_depth)}, lex.xpos))
            heads.append(word_id)
        head_id = heads[rule.head]
        for k, dep_id in enumerate(heads):
            if k != rule.head:
                dep = words[dep_id - 1]
                dep.head = head_id
                dep.deprel = rule.roles[k]
        return head_id

    root = words[visit(tree, 0) - 1]
    root.head = 0
    root.deprel = "root"
    annotate_agreement(words)
    return words


def depth_from_heads(words: list[Word]) -> list[int]:
    """Edges from each word to the root following HEAD; raises ValueError on a broken tree."""
    n = len(words)
    depth: list[int | None] = [None] * n
    for start in range(n):
        path = []
        i = start
        while depth[i] is None:
            path.append(i)
            head = words[i].head
            if head is None or not 0 <= head <= n:
                raise ValueError(f"word {i + 1} ({words[i].form!r}) has invalid HEAD {head!r}")
            if head == 0:
                depth[i] = 0
                path.pop()
                break
            i = head - 1
            if i in path:
                raise ValueError(f"HEAD cycle through word {i + 1}")
        base = depth[i]
        for k, j in enumerate(reversed(path), start=1):
            depth[j] = base + k  # type: ignore[operator]
    return depth  # type: ignore[return-value]


def head_cycle(sentence: Sentence | Sequence[Word]) -> list[int] | None:
    """The word IDs of a HEAD cycle, in HEAD order from its smallest ID (``[2, 3]``: word 2's
    HEAD is 3 and 3's is 2; ``[1]``: a word that is its own HEAD), or None when following HEAD
    from every word ends at the root. A missing HEAD or one outside the sentence ends a path
    (those are other errors, reported as such by ``read_conllu`` and ``depth_from_heads``)."""
    words = sentence.words if isinstance(sentence, Sentence) else sentence
    n = len(words)
    state = [0] * (n + 1)  # 0 not visited, 1 on the current path, 2 known to end outside a cycle
    for start in range(1, n + 1):
        path: list[int] = []
        i = start
        while 1 <= i <= n and state[i] == 0:
            state[i] = 1
            path.append(i)
            head = words[i - 1].head
            i = head if head is not None else 0
        if 1 <= i <= n and state[i] == 1:  # came back to a word on this path
            cycle = path[path.index(i):]
            k = cycle.index(min(cycle))
            return cycle[k:] + cycle[:k]
        for j in path:
            state[j] = 2
    return None


def agreement_controller(words: list[Word], verb: Word) -> Word | None:
    """The word whose Number a finite verb agrees with, or None when it has no subject."""
    subj = next((w for w in words if w.head == verb.id and w.deprel in _SUBJECT_RELATIONS), None)
    if subj is None:
        return None
    if subj.upos == "PRON" and subj.feats.get("PronType") == "Rel" and verb.deprel.startswith("acl"):
        if verb.head:
            return words[verb.head - 1]
    return subj


def verb_agreement(words: list[Word], verb: Word) -> tuple[Word, bool] | None:
    """For a finite verb (a VERB/AUX with a Number feature): its agreement controller and whether
    a noun of the other number stands between the two; None for other words and for verbs
    without a controller that has a Number."""
    if verb.upos not in ("VERB", "AUX") or "Number" not in verb.feats:
        return None
    ctrl = agreement_controller(words, verb)
    if ctrl is None or "Number" not in ctrl.feats:
        return None
    number = ctrl.feats["Number"]
    lo, hi = sorted((ctrl.id, verb.id))
    attractor = any(w.upos in _NOMINAL and w.feats.get("Number", number) != number for w in words[lo:hi - 1])
    return ctrl, attractor


def annotate_agreement(words: list[Word]) -> None:
    """Write SubjNumber / Subj / Attractor into MISC of every finite verb (see module doc)."""
    for verb in words:
        found = verb_agreement(words, verb)
        if found is None:
            continue
        ctrl, attractor = found
        verb.misc["SubjNumber"] = ctrl.feats["Number"]
        verb.misc["Subj"] = str(ctrl.id)
        verb.misc["Attractor"] = "Yes" if attractor else "No"


class MinimalPair(NamedTuple):
    """A targeted agreement test: after ``prefix``, ``correct`` should beat ``wrong``."""

    prefix: list[str]
    correct: str
    wrong: str


def agreement_minimal_pairs(
    sentences: Iterable[Sentence], grammar: Grammar = DEFAULT_GRAMMAR
) -> list[MinimalPair]:
    """One pair per finite verb with ``Attractor=Yes`` in MISC whose other-number form exists.

    The prefix is the words before the verb; the wrong form is the verb's lemma inflected for
    the other number, looked up in ``grammar`` (so it is always an in-vocabulary word).
    """
    inflections: Mapping[tuple[str, str, str], str] = grammar.inflections()
    numbers = list(grammar.numbers)
    pairs = []
    for sentence in sentences:
        forms = sentence.forms
        for word in sentence.words:
            if word.misc.get("Attractor") != "Yes":
                continue
            number = word.feats.get("Number")
            others = [v for v in numbers if v != number]
            if number not in numbers or len(others) != 1:
                continue
            wrong = inflections.get((word.lemma, word.upos, others[0]))
            if wrong is None or wrong == word.form:
                continue
            pairs.append(MinimalPair(forms[: word.id - 1], word.form, wrong))
    return pairs


InflectionKey = tuple[str, str, frozenset[tuple[str, str]]]


def inflection_table(sentences: Iterable[Sentence]) -> dict[InflectionKey, dict[str, str]]:
    """The verb forms a corpus attests: ``(lemma, UPOS, FEATS other than Number) -> {Number:
    form}`` over its VERB/AUX words with a Number feature (lower-cased; the most frequent form
    where several share a key, the first seen among equals)."""
    counts: dict[InflectionKey, dict[str, Counter[str]]] = {}
    for sentence in sentences:
        for w in sentence.words:
            number = w.feats.get("Number")
            if w.upos not in ("VERB", "AUX") or number is None:
                continue
            key = _inflection_key(w)
            counts.setdefault(key, {}).setdefault(number, Counter())[w.form.lower()] += 1
    return {key: {number: c.most_common(1)[0][0] for number, c in by_number.items()}
            for key, by_number in counts.items()}


def _inflection_key(w: Word) -> InflectionKey:
    rest = frozenset((k, v) for k, v in w.feats.items() if k != "Number")
    return (w.lemma.lower(), w.upos, rest)


def corpus_minimal_pairs(sentences: Iterable[Sentence],
                         table: Mapping[InflectionKey, Mapping[str, str]] | None = None) -> list[MinimalPair]:
    """Minimal pairs from any dependency treebank with Number features (a UD file): one per
    finite verb that agrees in Number with its controller across an attractor (as
    ``annotate_agreement`` finds them) and whose other-number form — same lemma, UPOS and other
    features — is attested in ``table`` (``inflection_table``; default: built from
    ``sentences`` themselves)."""
    sentences = list(sentences)
    if table is None:
        table = inflection_table(sentences)
    pairs = []
    for sentence in sentences:
        words = sentence.words
        for verb in words:
            number = verb.feats.get("Number")
            if number not in ("Sing", "Plur"):
                continue
            try:
                found = verb_agreement(words, verb)
            except (IndexError, TypeError):  # a HEAD outside the sentence
                continue
            if found is None or not found[1] or found[0].feats["Number"] != number:
                continue
            other = "Plur" if number == "Sing" else "Sing"
            wrong = table.get(_inflection_key(verb), {}).get(other)
            if wrong is None or wrong == verb.form.lower():
                continue
            pairs.append(MinimalPair([w.form for w in words[: verb.id - 1]], verb.form, wrong))
    return pairs
