"""Gold labels of the treebank: dependency/constituency consistency, agreement, minimal pairs."""

from __future__ import annotations

from collections import defaultdict

import pytest

from corpus import (
    DEFAULT_GRAMMAR, ChartParser, Sentence, Word, agreement_minimal_pairs, compile_grammar,
    depth_from_heads, generate_sentences,
)
from corpus.labels import derivation_to_words

DEPRELS = {"det", "amod", "nsubj", "obj", "case", "nmod", "acl:relcl", "ccomp", "mark", "root", "punct"}
CONSTS = {"NP", "VP", "PP", "RC", "CP", "ROOT"}


@pytest.fixture(scope="module")
def sentences() -> list[Sentence]:
    return generate_sentences(3000, seed=11)


def labelled(text: str) -> list[Word]:
    pcfg = compile_grammar(DEFAULT_GRAMMAR)
    result = ChartParser(pcfg).parse(text.split())
    assert result.count == 1, text
    return derivation_to_words(result.tree, pcfg)


def test_trees_are_consistent_on_thousands_of_sentences(sentences: list[Sentence]) -> None:
    max_depth = 0
    for s in sentences:
        words = s.words
        assert [w.id for w in words] == list(range(1, len(words) + 1))
        roots = [w for w in words if w.head == 0]
        assert len(roots) == 1 and roots[0].deprel == "root" and roots[0].upos == "VERB"
        depths = depth_from_heads(words)  # also raises on a cycle
        assert depths == [int(w.misc["Depth"]) for w in words]
        max_depth = max(max_depth, *depths)
        for w in words:
            assert w.deprel in DEPRELS and w.misc["Const"] in CONSTS
            if w.upos in ("NOUN", "VERB"):
                assert w.feats["Number"] in ("Sing", "Plur")
            if w.upos == "DET":
                assert words[w.head - 1].upos == "NOUN" and w.head > w.id  # determiners precede
    assert max_depth >= 6


def test_every_finite_verb_agrees_with_its_controller(sentences: list[Sentence]) -> None:
    n_verbs = n_attractors = 0
    for s in sentences:
        for verb in (w for w in s.words if w.upos == "VERB"):
            n_verbs += 1
            ctrl = s.words[int(verb.misc["Subj"]) - 1]
            assert ctrl.upos == "NOUN"
            assert verb.misc["SubjNumber"] == ctrl.feats["Number"] == verb.feats["Number"]
            between = s.words[min(ctrl.id, verb.id):max(ctrl.id, verb.id) - 1]
            other = any(w.upos == "NOUN" and w.feats["Number"] != ctrl.feats["Number"] for w in between)
            assert verb.misc["Attractor"] == ("Yes" if other else "No")
            n_attractors += other
    assert 0.10 < n_attractors / n_verbs < 0.30


def test_part_of_speech_depends_on_context(sentences: list[Sentence]) -> None:
    tags = defaultdict(set)
    for s in sentences:
        for w in s.words:
            tags[w.form].add(w.upos)
    assert tags["that"] == {"DET", "PRON", "SCONJ"}
    assert tags["watches"] == tags["walks"] == tags["plant"] == {"NOUN", "VERB"}


def test_labels_of_an_attractor_sentence() -> None:
    words = labelled("the dogs near the old cat sleep .")
    assert [w.upos for w in words] == ["DET", "NOUN", "ADP", "DET", "ADJ", "NOUN", "VERB", "PUNCT"]
    assert [w.head for w in words] == [2, 7, 6, 6, 6, 2, 0, 7]
    assert [w.deprel for w in words] == ["det", "nsubj", "case", "det", "amod", "nmod", "root", "punct"]
    assert [w.misc["Depth"] for w in words] == ["2", "1", "3", "3", "3", "2", "0", "1"]
    assert [w.misc["Const"] for w in words] == ["NP", "NP", "PP", "NP", "NP", "NP", "VP", "ROOT"]
    assert [w.lemma for w in words][:2] == ["the", "dog"]
    verb = words[6]
    assert verb.feats["Number"] == "Plur"
    assert verb.misc == {"Const": "VP", "Depth": "0", "SubjNumber": "Plur", "Subj": "2", "Attractor": "Yes"}


def test_labels_of_relative_clauses_and_homographs() -> None:
    words = labelled("the dog that the cats see watches the watches .")
    see, main, obj = words[5], words[6], words[8]
    assert words[2].upos == "PRON" and words[2].deprel == "obj" and words[2].head == 6
    assert see.deprel == "acl:relcl" and see.head == 2 and see.misc["Const"] == "RC"
    assert (see.misc["SubjNumber"], see.misc["Subj"], see.misc["Attractor"]) == ("Plur", "5", "No")
    assert (main.upos, main.feats["Number"], main.misc["Attractor"]) == ("VERB", "Sing", "Yes")
    assert (obj.upos, obj.feats["Number"], obj.deprel) == ("NOUN", "Plur", "obj")

    words = labelled("the dogs that watch the watch sleep .")
    rc_verb = words[3]
    assert (rc_verb.upos, rc_verb.deprel, words[2].deprel) == ("VERB", "acl:relcl", "nsubj")
    # a subject relative agrees with the noun it modifies
    assert (rc_verb.misc["SubjNumber"], rc_verb.misc["Subj"], rc_verb.misc["Attractor"]) == ("Plur", "2", "No")
    assert words[6].misc["Attractor"] == "Yes"  # "watch" (Sing) sits between "dogs" and "sleep"

    words = labelled("the man says that that dog sleeps .")
    assert [w.upos for w in words[3:5]] == ["SCONJ", "DET"]
    assert (words[3].deprel, words[3].head, words[6].deprel, words[6].head) == ("mark", 7, "ccomp", 3)
    assert words[3].misc["Const"] == "CP"


def test_agreement_minimal_pairs(sentences: list[Sentence]) -> None:
    pairs = agreement_minimal_pairs(sentences)
    expected = sum(w.misc.get("Attractor") == "Yes" for s in sentences for w in s.words)
    assert len(pairs) == expected > 300
    vocab = set(DEFAULT_GRAMMAR.vocabulary())
    inflections = DEFAULT_GRAMMAR.inflections()
    number_of = {form: num for (lemma, upos, num), form in inflections.items() if upos == "VERB"}
    for prefix, correct, wrong in pairs:
        assert wrong in vocab and wrong != correct
        assert {number_of[correct], number_of[wrong]} == {"Sing", "Plur"}
        assert prefix and prefix[-1] != "."
    example = Sentence(labelled("the dogs near the cat sleep ."))
    assert agreement_minimal_pairs([example]) == [(["the", "dogs", "near", "the", "cat"], "sleep", "sleeps")]


def test_depth_from_heads_rejects_broken_trees() -> None:
    cyclic = [Word(1, "a", head=2), Word(2, "b", head=1), Word(3, "c", head=0)]
    with pytest.raises(ValueError, match="cycle"):
        depth_from_heads(cyclic)
    with pytest.raises(ValueError, match="invalid HEAD"):
        depth_from_heads([Word(1, "a", head=5)])
    assert depth_from_heads([Word(1, "a", head=2), Word(2, "b", head=0), Word(3, "c", head=1)]) == [1, 0, 2]


def test_head_cycle_names_the_words_on_the_cycle() -> None:
    from corpus import head_cycle

    tree = [Word(1, "a", head=2), Word(2, "b", head=0), Word(3, "c", head=1)]
    assert head_cycle(tree) is None and head_cycle(Sentence(tree)) is None
    two = [Word(1, "a", head=0), Word(2, "b", head=3), Word(3, "c", head=2)]
    assert head_cycle(two) == [2, 3]
    # a chain leading into a cycle: only the cycle is named, from its smallest word
    three = [Word(1, "a", head=4), Word(2, "b", head=0), Word(3, "c", head=5), Word(4, "d", head=3),
             Word(5, "e", head=4)]
    assert head_cycle(Sentence(three)) == [3, 5, 4]
    assert head_cycle([Word(1, "a", head=1)]) == [1]
    # no HEAD ("_") and HEADs outside the sentence end a path: they are not cycles
    assert head_cycle([Word(1, "a", head=None), Word(2, "b", head=9)]) is None
    assert all(head_cycle(s) is None for s in generate_sentences(300, seed=2))


UD_SAMPLE = """\
# text = The keys to the cabinet are here.
1	The	the	DET	DT	Definite=Def|PronType=Art	2	det	_	_
2	keys	key	NOUN	NNS	Number=Plur	6	nsubj	_	_
3	to	to	ADP	IN	_	5	case	_	_
4	the	the	DET	DT	Definite=Def|PronType=Art	5	det	_	_
5	cabinet	cabinet	NOUN	NN	Number=Sing	2	nmod	_	_
6	are	be	AUX	VBP	Mood=Ind|Number=Plur|Person=3|Tense=Pres|VerbForm=Fin	0	root	_	_
7	here	here	ADV	RB	PronType=Dem	6	advmod	_	SpaceAfter=No
8	.	.	PUNCT	.	_	6	punct	_	_

# text = The author of the books is here.
1	The	the	DET	DT	Definite=Def|PronType=Art	2	det	_	_
2	author	author	NOUN	NN	Number=Sing	6	nsubj	_	_
3	of	of	ADP	IN	_	5	case	_	_
4	the	the	DET	DT	Definite=Def|PronType=Art	5	det	_	_
5	books	book	NOUN	NNS	Number=Plur	2	nmod	_	_
6	is	be	AUX	VBZ	Mood=Ind|Number=Sing|Person=3|Tense=Pres|VerbForm=Fin	0	root	_	_
7	here	here	ADV	RB	PronType=Dem	6	advmod	_	SpaceAfter=No
8	.	.	PUNCT	.	_	6	punct	_	_

# text = The dogs of the man was here.
1	The	the	DET	DT	Definite=Def|PronType=Art	2	det	_	_
2	dogs	dog	NOUN	NNS	Number=Plur	6	nsubj	_	_
3	of	of	ADP	IN	_	5	case	_	_
4	the	the	DET	DT	Definite=Def|PronType=Art	5	det	_	_
5	man	man	NOUN	NN	Number=Sing	2	nmod	_	_
6	was	be	AUX	VBD	Mood=Ind|Number=Sing|Person=3|Tense=Past|VerbForm=Fin	0	root	_	_
7	here	here	ADV	RB	PronType=Dem	6	advmod	_	_

# text = The friend of the kids sings.
1	The	the	DET	DT	Definite=Def|PronType=Art	2	det	_	_
2	friend	friend	NOUN	NN	Number=Sing	6	nsubj	_	_
3	of	of	ADP	IN	_	5	case	_	_
4	the	the	DET	DT	Definite=Def|PronType=Art	5	det	_	_
5	kids	kid	NOUN	NNS	Number=Plur	2	nmod	_	_
6	sings	sing	VERB	VBZ	Mood=Ind|Number=Sing|Person=3|Tense=Pres|VerbForm=Fin	0	root	_	_

# text = Is the cat near the dogs asleep ?
1	Is	be	AUX	VBZ	Mood=Ind|Number=Sing|Person=3|Tense=Pres|VerbForm=Fin	7	cop	_	_
2	the	the	DET	DT	Definite=Def|PronType=Art	3	det	_	_
3	cat	cat	NOUN	NN	Number=Sing	7	nsubj	_	_
4	near	near	ADP	IN	_	6	case	_	_
5	the	the	DET	DT	Definite=Def|PronType=Art	6	det	_	_
6	dogs	dog	NOUN	NNS	Number=Plur	3	nmod	_	_
7	asleep	asleep	ADJ	JJ	Degree=Pos	0	root	_	_
8	?	?	PUNCT	.	_	7	punct	_	_

"""


def test_corpus_minimal_pairs_on_a_ud_file(tmp_path) -> None:
    """Pairs from any CoNLL-U file with Number features: the wrong form is the same lemma's
    other-number form with the same other features, where the file attests it."""
    from corpus import read_conllu
    from corpus.labels import corpus_minimal_pairs, inflection_table

    path = tmp_path / "ud.conllu"
    path.write_text(UD_SAMPLE)
    sentences = read_conllu(path)
    table = inflection_table(sentences)
    present = frozenset({("Mood", "Ind"), ("Person", "3"), ("Tense", "Pres"), ("VerbForm", "Fin")})
    assert table[("be", "AUX", present)] == {"Plur": "are", "Sing": "is"}
    pairs = corpus_minimal_pairs(sentences)
    assert pairs == [
        (["The", "keys", "to", "the", "cabinet"], "are", "is"),
        (["The", "author", "of", "the", "books"], "is", "are"),
        # "was" disagrees with its subject ("dogs"): no pair; "sings" has no attested "sing";
        # the copula "Is" has no subject of its own in UD (nsubj hangs on the predicate)
    ]
    # a table from other sentences decides which wrong forms exist
    assert corpus_minimal_pairs(sentences[1:2], table=inflection_table(sentences[1:2])) == []
    assert corpus_minimal_pairs(sentences[1:2], table=table) == [pairs[1]]


def test_corpus_minimal_pairs_match_the_grammar_pairs_on_the_treebank(sentences: list[Sentence]) -> None:
    from corpus.labels import corpus_minimal_pairs

    assert corpus_minimal_pairs(sentences) == agreement_minimal_pairs(sentences)
