"""The treebank grammar: validation, exact probabilities, and the proof of unambiguity."""

from __future__ import annotations

import dataclasses
import math
import random
from collections import defaultdict

import pytest

from corpus import DEFAULT_GRAMMAR, ChartParser, Grammar, WordClass, compile_grammar, generate_sentences
from corpus.grammar import NOUNS
from corpus.pcfg import PCFG, Node
from corpus.sampler import sample_derivation


def _wc(upos: str, words: list[str], number: str | None = None, **kw) -> WordClass:
    feats = {"Number": number} if number else {}
    return WordClass(upos, upos[:2], {w: 1.0 for w in words}, feats=feats, **kw)


def tiny_grammar(max_depth: int, max_words: int) -> Grammar:
    """DEFAULT_GRAMMAR's rules with one word per ambiguity class of the default lexicon.

    It keeps every way a word can belong to several classes: "that" (DET / relative PRON /
    SCONJ), "the" (both numbers), noun/verb homographs crossing number ("watch"/"watches" as
    noun and transitive verb, "walk"/"walks" as noun and intransitive verb).
    """
    base = DEFAULT_GRAMMAR.word_classes
    classes = {
        "Det.Sing": _wc("DET", ["the", "that"]), "Det.Plur": _wc("DET", ["the"]),
        "Adj": _wc("ADJ", ["old"]),
        "N.Sing": _wc("NOUN", ["dog", "watch", "walk"], "Sing"),
        "N.Plur": _wc("NOUN", ["dogs", "watches", "walks"], "Plur"),
        "Vi.Sing": _wc("VERB", ["sleeps", "walks"], "Sing"),
        "Vi.Plur": _wc("VERB", ["sleep", "walk"], "Plur"),
        "Vt.Sing": _wc("VERB", ["watches"], "Sing"), "Vt.Plur": _wc("VERB", ["watch"], "Plur"),
        "Vs.Sing": _wc("VERB", ["says"], "Sing"), "Vs.Plur": _wc("VERB", ["say"], "Plur"),
        "P": _wc("ADP", ["near"]),
        "Rel": base["Rel"], "Comp": base["Comp"], "Punct": base["Punct"],
    }
    return dataclasses.replace(DEFAULT_GRAMMAR, word_classes=classes, max_depth=max_depth,
                               max_words=max_words)


def _leaves(node: Node) -> list[str]:
    if node.rule < 0:
        return [node.children[0]]
    return [w for child in node.children for w in _leaves(child)]


# -- the grammar data structure ---------------------------------------------------------------

def test_default_grammar_vocabulary_and_homographs() -> None:
    vocab = DEFAULT_GRAMMAR.vocabulary()
    assert len(vocab) == 127
    classes_of = defaultdict(set)
    for name, wc in DEFAULT_GRAMMAR.word_classes.items():
        for form in wc.words:
            classes_of[form].add(wc.upos)
    assert classes_of["that"] == {"DET", "PRON", "SCONJ"}
    for word in ("watches", "watch", "walks", "walk", "plants", "plant"):
        assert classes_of[word] == {"NOUN", "VERB"}, word
    assert ("child", "children") in NOUNS


def test_compiled_probabilities_sum_to_one_and_depth_is_bounded() -> None:
    pcfg = compile_grammar(DEFAULT_GRAMMAR)
    for lhs, ids in pcfg.by_lhs.items():
        assert math.isclose(sum(pcfg.rules[i].prob for i in ids), 1.0, abs_tol=1e-12), lhs
        assert int(lhs.split("@")[1]) <= DEFAULT_GRAMMAR.max_depth
    for lex in pcfg.lexicals.values():
        assert math.isclose(sum(lex.probs), 1.0, abs_tol=1e-12)
    # at the maximum depth a noun phrase has no post-modifier left
    assert {pcfg.rules[i].rhs[-1] for i in pcfg.by_lhs["NP.Sing@2"]} == {"N.Sing"}
    assert pcfg.max_length() == 33 and pcfg.max_words == 30
    assert -1e-5 < pcfg.log_z < 0.0  # almost no sentence is longer than 30 words


@pytest.mark.parametrize("change, field", [
    (dict(max_depth=-1), "Grammar.max_depth"),
    (dict(max_words=0), "Grammar.max_words"),
    (dict(numbers={"Sing": 0.0, "Plur": 1.0}), "Grammar.numbers"),
    (dict(start="NP.{n}"), "Grammar.start"),
    (dict(rules={**DEFAULT_GRAMMAR.rules, "PP": [(0.0, "P:case NP.{m}:head")]}), "Grammar.rules['PP']"),
    (dict(rules={**DEFAULT_GRAMMAR.rules, "PP": [(1.0, "P:case NP.{m}:obj")]}), "exactly one :head"),
    (dict(rules={**DEFAULT_GRAMMAR.rules, "PP": [(1.0, "Q:case NP.{m}:head")]}), "unknown symbol 'Q'"),
    (dict(rules={**DEFAULT_GRAMMAR.rules, "PP": [(1.0, "P:case NP:head")]}), "wrong number slot"),
    (dict(rules={**DEFAULT_GRAMMAR.rules, "PP": [(1.0, "P case")]}), "expected Symbol:role"),
])
def test_invalid_grammar_raises_naming_the_field(change: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field.replace("[", r"\[").replace("]", r"\]").replace("{", r"\{")):
        dataclasses.replace(DEFAULT_GRAMMAR, **change)


def test_invalid_word_class_and_unbounded_recursion() -> None:
    with pytest.raises(ValueError, match="WordClass.words"):
        WordClass("NOUN", "NN", {"dog": -1.0})
    with pytest.raises(ValueError, match="WordClass.words"):
        WordClass("NOUN", "NN", {"two words": 1.0})
    looping = Grammar(start="S", rules={"S": [(1.0, "A:head")], "A": [(0.5, "B:head"), (0.5, "A:head B:dep")]},
                      word_classes={"B": WordClass("X", "X", {"b": 1.0})})
    with pytest.raises(ValueError, match="recurse without an embedding symbol"):
        PCFG(looping)


# -- exact probabilities ----------------------------------------------------------------------

@pytest.mark.parametrize("max_depth, max_words", [(1, 12), (2, 11)])
def test_tiny_grammar_exhaustively_unambiguous_and_normalised(max_depth: int, max_words: int) -> None:
    """Every string of the tiny grammar has exactly one derivation; the renormalised
    probabilities sum to 1, and the exact entropy floor and the parser's inside probabilities
    agree with the enumeration."""
    pcfg = PCFG(tiny_grammar(max_depth, max_words))
    by_string: dict[tuple[str, ...], list[float]] = defaultdict(list)
    for words, logp, _ in pcfg.enumerate_derivations():
        by_string[words].append(logp)
    assert len(by_string) > 50_000
    assert all(len(lps) == 1 for lps in by_string.values())
    probs = {w: math.exp(lps[0] - pcfg.log_z) for w, lps in by_string.items()}
    assert math.isclose(math.fsum(probs.values()), 1.0, abs_tol=1e-12)
    assert pcfg.log_z < -0.1  # the 11-word cap really truncates: log Z matters
    loss = math.fsum(-p * math.log(p) for p in probs.values())
    tokens = math.fsum(p * (len(w) + 1) for w, p in probs.items())
    assert math.isclose(loss / tokens, pcfg.expected_floor, rel_tol=1e-10)
    parser = ChartParser(pcfg)
    for words in sorted(by_string)[::50]:
        result = parser.parse(words)
        assert result.count == 1
        assert math.isclose(result.logprob, by_string[words][0] - pcfg.log_z, rel_tol=1e-12)


def test_depth_zero_grammar_enumerates_to_one() -> None:
    pcfg = PCFG(tiny_grammar(max_depth=0, max_words=30))
    derivations = list(pcfg.enumerate_derivations())
    assert len(derivations) == len({w for w, _, _ in derivations}) == 360
    assert pcfg.log_z == pytest.approx(0.0, abs=1e-12)
    assert math.fsum(math.exp(lp) for _, lp, _ in derivations) == pytest.approx(1.0, abs=1e-12)


def test_parser_counts_every_derivation_of_an_ambiguous_grammar() -> None:
    """Sanity check of the checker: with VP-attached PPs the parser must see two parses."""
    ambiguous = Grammar(
        start="S",
        rules={
            "S": [(1.0, "NP:nsubj VP:head")],
            "NP": [(0.7, "N:head"), (0.3, "N:head PP:nmod")],
            "VP": [(0.5, "V:head NP:obj"), (0.5, "V:head NP:obj PP:obl")],
            "PP": [(1.0, "P:case NP:head")],
        },
        word_classes={"N": WordClass("NOUN", "NN", {"dog": 1.0, "cat": 1.0}),
                      "V": WordClass("VERB", "VBZ", {"sees": 1.0}),
                      "P": WordClass("ADP", "IN", {"with": 1.0})},
        max_depth=2, max_words=9,
    )
    pcfg = PCFG(ambiguous)
    by_string: dict[tuple[str, ...], list[float]] = defaultdict(list)
    for words, logp, _ in pcfg.enumerate_derivations():
        by_string[words].append(logp)
    parser = ChartParser(pcfg)
    assert parser.parse("dog sees cat with dog".split()).count == 2
    assert max(len(v) for v in by_string.values()) >= 3
    for words, lps in by_string.items():
        result = parser.parse(words)
        assert result.count == len(lps)
        assert math.isclose(result.inside, math.fsum(math.exp(lp) for lp in lps), rel_tol=1e-12)
        assert (result.tree is None) == (len(lps) > 1)


def test_sampled_sentences_have_one_parse_equal_to_the_sample() -> None:
    pcfg = compile_grammar(DEFAULT_GRAMMAR)
    parser = ChartParser(pcfg)
    rng = random.Random(12345)
    longest = 0
    for _ in range(4000):
        tree, logp = sample_derivation(pcfg, rng)
        words = _leaves(tree)
        longest = max(longest, len(words))
        result = parser.parse(words)
        assert result.count == 1, " ".join(words)
        assert result.tree == tree
        assert math.isclose(result.logprob, logp, rel_tol=1e-12)
    assert longest >= 24


@pytest.mark.parametrize("text, count", [
    ("the dog sleeps .", 1),
    ("the dogs sleeps .", 0),                                  # agreement
    ("the dog near the cats sleeps .", 1),
    ("the dog near the cats sleep .", 0),                      # attractor does not license it
    ("the dogs watch the watches .", 1),                       # noun/verb homograph
    ("the watch walks .", 1),
    ("the man says that that dog sleeps .", 1),                # SCONJ then DET "that"
    ("the dog that that cat sees sleeps .", 1),                # relative PRON then DET "that"
    ("the man says the dog sleeps .", 0),                      # complementizer is obligatory
    ("the dog sees the cat near the house .", 1),              # PP attaches to the noun only
    ("the dog near the cat that sleeps walks .", 1),           # RC attaches to the nearest noun
    ("the dog that says that the cat sleeps walks .", 1),
])
def test_hand_picked_sentences(text: str, count: int) -> None:
    parser = ChartParser(compile_grammar(DEFAULT_GRAMMAR))
    assert parser.parse(text.split()).count == count


# -- sampling ---------------------------------------------------------------------------------

def test_generation_is_deterministic_and_within_length_bounds() -> None:
    a = generate_sentences(300, seed=7)
    b = generate_sentences(300, seed=7)
    c = generate_sentences(300, seed=8)
    assert a == b
    assert [s.text for s in a] != [s.text for s in c]
    assert all(4 <= len(s.words) <= 30 for s in a)
    assert all(s.words[-1].form == "." for s in a)
    assert [s.metadata["sent_id"] for s in a[:2]] == ["7-0", "7-1"]
    assert all(s.logprob is not None and s.logprob < 0 for s in a)
    with pytest.raises(ValueError, match="n must be"):
        generate_sentences(-1, seed=0)
    with pytest.raises(ValueError, match="seed must be"):
        generate_sentences(1, seed="x")  # type: ignore[arg-type]


def test_sample_entropy_floor_matches_the_exact_expectation() -> None:
    from corpus import entropy_floor, unigram_entropy

    pcfg = compile_grammar(DEFAULT_GRAMMAR)
    sentences = generate_sentences(4000, seed=3)
    floor = entropy_floor(sentences)
    assert floor == pytest.approx(pcfg.expected_floor, rel=0.02)
    assert 2.2 < pcfg.expected_floor < 2.6
    assert unigram_entropy(sentences) > floor + 1.0
    mean_length = sum(len(s.words) for s in sentences) / len(sentences)
    assert mean_length + 1 == pytest.approx(pcfg.expected_tokens, rel=0.03)
