"""The deep grammar: exact and unambiguous (the proofs), its labels, minimal pairs and treebank."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import random
import re
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from app.cli import main
from corpus import (
    DEEP_GRAMMAR, DEFAULT_GRAMMAR, ChartParser, Grammar, WordClass, builtin_grammar, compile_grammar,
    deep_minimal_pairs, entropy_floor, generate_sentences, read_conllu, write_treebank,
)
from corpus.conllu_io import format_conllu, parse_conllu_string
from corpus.deep_labels import (
    CONSTRUCTIONS, LONG_DISTANCE, agreement_events, annotate_deep, clause_depths, distance_bucket,
    next_agreement, open_subjects,
)
from corpus.labels import derivation_to_words
from corpus.pcfg import PCFG, Node
from corpus.sampler import sample_derivation

# Every word of the deep lexicon onto one token whose classes include all of the word's: a
# derivation of a real sentence is a derivation of its image, so if no image up to n words has
# two derivations, no real sentence up to n words has. Merging words makes the check stronger
# (more chances for two derivations to meet) and the enumeration far smaller.
def _token(form: str, classes: set[str]) -> str:
    if form in ("that", "was", "were", "has", "have", "and", "."):
        return form
    kind = {c.split(".")[0] for c in classes}
    if kind <= {"Det"}:
        return "the"
    if kind <= {"Adj"}:
        return "old"
    if kind <= {"P"}:
        return "near"
    if kind <= {"Vpi", "Vpt", "Vps", "Vni", "Vnt"}:
        return "found"
    if classes <= {"N.Sing", "Vi.Plur", "Vt.Plur", "Vs.Plur"}:
        return "walk"
    if classes <= {"N.Plur", "Vi.Sing", "Vt.Sing", "Vs.Sing"}:
        return "walks"
    raise AssertionError(f"no token for {form!r} {classes}")


def image_grammar(grammar: Grammar, max_depth: int, max_words: int) -> tuple[Grammar, dict[str, str]]:
    classes_of: dict[str, set[str]] = defaultdict(set)
    for name, wc in grammar.word_classes.items():
        for form in wc.words:
            classes_of[form].add(name)
    h = {form: _token(form, classes) for form, classes in classes_of.items()}
    merged = {}
    for name, wc in grammar.word_classes.items():
        words: dict[str, float] = defaultdict(float)
        for form, weight in wc.words.items():
            words[h[form]] += weight
        merged[name] = WordClass(wc.upos, wc.xpos, dict(words), feats=dict(wc.feats))
    return dataclasses.replace(grammar, word_classes=merged, max_depth=max_depth, max_words=max_words), h


def _leaves(node: Node) -> list[str]:
    if node.rule < 0:
        return [node.children[0]]
    return [w for child in node.children for w in _leaves(child)]


def _sentence(text: str):
    """The labelled words of a sentence of the deep grammar (parsed: it must have one parse)."""
    pcfg = compile_grammar(DEEP_GRAMMAR)
    result = ChartParser(pcfg).parse(text.split())
    assert result.count == 1, text
    words = derivation_to_words(result.tree, pcfg)
    annotate_deep(words)
    return words


@pytest.fixture(scope="module")
def deep_sentences():
    return generate_sentences(3000, seed=21, grammar=DEEP_GRAMMAR)


# -- the grammar ------------------------------------------------------------------------------

def test_deep_grammar_lexicon_and_registry() -> None:
    assert builtin_grammar("deep") is DEEP_GRAMMAR and builtin_grammar("default") is DEFAULT_GRAMMAR
    with pytest.raises(ValueError, match="unknown grammar 'deeper'"):
        builtin_grammar("deeper")
    assert DEEP_GRAMMAR.name == "deep" and DEFAULT_GRAMMAR.name == "default"
    assert DEFAULT_GRAMMAR.annotate is None
    vocab = DEEP_GRAMMAR.vocabulary()
    assert set(DEFAULT_GRAMMAR.vocabulary()) < set(vocab) and len(vocab) == 160
    classes_of = defaultdict(set)
    for name, wc in DEEP_GRAMMAR.word_classes.items():
        for form in wc.words:
            classes_of[form].add(name)
    assert classes_of["slept"] == {"Vpi", "Vni"} and classes_of["found"] == {"Vpt", "Vnt"}
    assert classes_of["saw"] == {"Vpt"} and classes_of["seen"] == {"Vnt"}
    assert "Number" not in DEEP_GRAMMAR.word_classes["Vpt"].feats  # the past tense hides number
    inflections = DEEP_GRAMMAR.inflections()
    assert inflections[("be", "AUX", "Plur")] == "were" and inflections[("have", "AUX", "Sing")] == "has"
    with pytest.raises(ValueError, match="Grammar.name"):
        dataclasses.replace(DEEP_GRAMMAR, name="Deep Grammar")


def test_compiled_deep_grammar_is_normalised_and_bounded() -> None:
    pcfg = compile_grammar(DEEP_GRAMMAR)
    for lhs, ids in pcfg.by_lhs.items():
        assert math.isclose(sum(pcfg.rules[i].prob for i in ids), 1.0, abs_tol=1e-12), lhs
        assert int(lhs.split("@")[1]) <= 3
    # a noun phrase three clauses deep takes no relative clause; a verb there takes no clause
    assert not any("RC" in pcfg.rules[i].rhs[-1] for i in pcfg.by_lhs["NP.Sing@3"])
    assert all("CP" not in " ".join(pcfg.rules[i].rhs) for i in pcfg.by_lhs["VP.Plur@3"])
    assert pcfg.max_words == 40 and pcfg.max_length() > 100
    assert -0.03 < pcfg.log_z < -0.02  # 2.5% of derivations are longer than 40 words: renormalised
    assert pcfg.expected_floor == pytest.approx(2.5083, abs=5e-4)


# -- the proofs -------------------------------------------------------------------------------

# The bound of the exhaustive proof: 13 words by default (a few seconds);
# STRATASCOPE_DEEP_PROOF_WORDS=16 runs the documented 16-word proof (about a minute, 3.3 GB).
PROOF_WORDS = int(os.environ.get("STRATASCOPE_DEEP_PROOF_WORDS", "13"))
SENTENCES_UP_TO = {12: 38_358, 13: 109_737, 14: 314_091, 15: 898_866, 16: 2_562_210}


def test_exhaustively_unambiguous_at_depth_3() -> None:
    """Every sentence of up to PROOF_WORDS words (all three embedding levels) has one derivation:
    checked on the image of the lexicon (see ``image_grammar``); the exact probabilities of all
    of them sum to 1, their entropy equals the dynamic programme's floor, and the chart parser
    agrees."""
    grammar, h = image_grammar(DEEP_GRAMMAR, max_depth=3, max_words=PROOF_WORDS)
    assert len(set(h.values())) == 13
    pcfg = PCFG(grammar)
    by_string: dict[tuple[str, ...], list[float]] = defaultdict(list)
    for words, logp, _ in pcfg.enumerate_derivations():
        by_string[words].append(logp)
    if PROOF_WORDS in SENTENCES_UP_TO:
        assert len(by_string) == SENTENCES_UP_TO[PROOF_WORDS]
    assert all(len(lps) == 1 for lps in by_string.values())
    probs = {w: math.exp(lps[0] - pcfg.log_z) for w, lps in by_string.items()}
    assert math.isclose(math.fsum(probs.values()), 1.0, abs_tol=1e-11)
    assert pcfg.log_z < -0.1
    loss = math.fsum(-p * math.log(p) for p in probs.values())
    tokens = math.fsum(p * (len(w) + 1) for w, p in probs.items())
    assert math.isclose(loss / tokens, pcfg.expected_floor, rel_tol=1e-10)
    # every construction is in the proof: coordinated subjects and predicates, nesting to depth 3
    texts = [" ".join(w) for w in by_string]
    assert any("and the" in t for t in texts) and any("and was" in t for t in texts)
    assert any(t.count("that") >= 3 and "that the" in t for t in texts)
    parser = ChartParser(pcfg)
    for words in sorted(by_string)[::1000]:
        result = parser.parse(words)
        assert result.count == 1
        assert math.isclose(result.logprob, by_string[words][0] - pcfg.log_z, rel_tol=1e-12)


def test_sampled_sentences_have_one_parse_equal_to_the_sample() -> None:
    pcfg = compile_grammar(DEEP_GRAMMAR)
    parser = ChartParser(pcfg)
    rng = random.Random(2024)
    longest = 0
    for _ in range(2000):
        tree, logp = sample_derivation(pcfg, rng)
        words = _leaves(tree)
        longest = max(longest, len(words))
        result = parser.parse(words)
        assert result.count == 1, " ".join(words)
        assert result.tree == tree
        assert math.isclose(result.logprob, logp, rel_tol=1e-12)
    assert longest >= 38


def test_sampled_probabilities_count_the_sentences_of_four_words(deep_sentences) -> None:
    """Horvitz-Thompson: the mean of 1{4 words} / P(s) over samples estimates the number of
    4-word sentences, known exactly by enumeration; wrong probabilities would bias it."""
    pcfg = compile_grammar(DEEP_GRAMMAR)
    exact = len({w for w, _, _ in pcfg.enumerate_derivations(max_words=4) if len(w) == 4})
    assert exact == 4176
    sentences = generate_sentences(8000, seed=5, grammar=DEEP_GRAMMAR)
    estimate = math.fsum(math.exp(-s.logprob) for s in sentences if len(s.words) == 4) / len(sentences)
    assert estimate == pytest.approx(exact, rel=0.12)
    floor = entropy_floor(deep_sentences)
    assert floor == pytest.approx(pcfg.expected_floor, rel=0.02)


@pytest.mark.parametrize("text, count", [
    ("the dogs that the cat that the men like sees sleep .", 1),            # center embedding, depth 2
    ("the dogs that the cat that the men like see sleep .", 0),             # the middle verb must agree with cat
    ("the dogs that the cat that the men that the child sees like sees sleep .", 1),  # depth 3
    ("the dog and the cat sleep .", 1),                                   # coordinated: plural
    ("the dog and the cat sleeps .", 0),
    ("the dog near the cat and the bird sleep .", 1),                     # only subjects coordinate
    ("the dog sees the cat and the bird .", 0),                           # objects never do
    ("the dog chased the cats and was happy .", 1),                       # past, then the auxiliary agrees
    ("the dog chased the cats and were happy .", 0),
    ("the dogs that the cat saw were happy .", 1),
    ("the dogs that the cat saw was happy .", 0),
    ("the dog chased the cat that saw the bird and was happy .", 1),      # `and was` joins the main predicate
    ("the dogs chased the cat that saw the bird and was happy .", 0),     # ... never a relative clause's
    ("the man said that the dog slept and was happy .", 1),
    ("the men said that the dog slept and was happy .", 0),               # ... nor a complement clause's
    ("the dog has slept .", 1),
    ("the dog slept the cat .", 0),
    ("the dogs have found the cat that the men found .", 1),              # found: participle, then past
    ("the dog that the cat and the bird like sleeps .", 1),               # coordination inside a relative
])
def test_hand_picked_sentences(text: str, count: int) -> None:
    parser = ChartParser(compile_grammar(DEEP_GRAMMAR))
    assert parser.parse(text.split()).count == count


def test_the_parser_sees_the_ambiguity_the_design_avoids() -> None:
    """Let relative clauses coordinate predicates too, and `and was` has two attachments."""
    rules = dict(DEEP_GRAMMAR.rules)
    rules["RC.{n}"] = [*rules["RC.{n}"], (0.1, "Rel:nsubj PastVP:head ConjVP.{n}:conj")]
    ambiguous = dataclasses.replace(DEEP_GRAMMAR, rules=rules)
    parser = ChartParser(compile_grammar(ambiguous))
    assert parser.parse("the dog chased the cat that saw the bird and was happy .".split()).count == 2


# -- labels -----------------------------------------------------------------------------------

def test_labels_of_a_center_embedded_sentence() -> None:
    words = _sentence("the dogs that the cat that the men like sees sleep .")
    misc = lambda key: [w.misc.get(key) for w in words]  # noqa: E731
    assert [int(v) for v in misc("ClauseDepth")] == [0, 0, 1, 1, 1, 2, 2, 2, 2, 1, 0, 0]
    assert [int(v) for v in misc("OpenSubj")] == [0, 1, 1, 1, 2, 2, 2, 3, 2, 1, 0, 0]
    assert misc("AgrNext") == [None, "Plur", "Plur", "Plur", "Sing", "Sing", "Sing", "Plur", "Sing", "Plur",
                               None, None]
    assert misc("AgrHeld") == [None, "No", "Yes", "Yes", "No", "Yes", "Yes", "No", "Yes", "Yes", None, None]
    run, sees, like = words[10], words[9], words[8]
    assert (run.misc["SubjNumber"], run.misc["Subj"], run.misc["AgrDist"], run.misc["Attractors"]) == \
        ("Plur", "2", "9", "1")
    assert (sees.misc["SubjNumber"], sees.misc["Subj"], sees.misc["Attractor"]) == ("Sing", "5", "Yes")
    assert (like.misc["SubjNumber"], like.misc["Attractor"]) == ("Plur", "No")


def test_labels_of_coordination_and_auxiliaries() -> None:
    words = _sentence("the dog and the cat sleep .")
    assert words[5].misc["SubjNumber"] == "Plur" and words[5].misc["Subj"] == "2"  # neither noun is plural
    assert words[5].misc["Attractor"] == "Yes"  # the singular conjunct just before the verb
    assert [w.misc.get("AgrHeld") for w in words] == [None, "No", "No", "No", "No", None, None]
    words = _sentence("the dog chased the cats and was happy .")
    was = words[6]
    assert (was.upos, was.deprel, was.misc["SubjNumber"], was.misc["Attractor"]) == ("AUX", "cop", "Sing", "Yes")
    assert words[2].misc["SubjNumber"] == "Sing"  # chased: the number it would show, were it present tense
    assert [e.verb for e in agreement_events(words)] == [7]  # ... but only `was` agrees
    assert [w.misc.get("AgrHeld") for w in words][1:6] == ["No", "Yes", "Yes", "Yes", "Yes"]
    assert [w.misc["OpenSubj"] for w in words] == ["0", "1", "0", "0", "0", "0", "0", "0", "0"]
    words = _sentence("the dogs that have seen the cat were happy .")
    assert words[3].misc["SubjNumber"] == "Plur" and words[3].misc["Subj"] == "2"  # have: via the relative
    assert words[7].misc["SubjNumber"] == "Plur" and words[7].misc["AgrDist"] == "6"
    assert words[3].misc["AgrHeld"] == "No"  # `have` agrees with dogs itself: readable, not held


def test_labels_agree_with_the_derivation_on_thousands_of_sentences(deep_sentences) -> None:
    pcfg = compile_grammar(DEEP_GRAMMAR)
    rng = random.Random(9)
    for _ in range(1500):  # ClauseDepth from the tree = embedding level of the rule that made the word
        tree, _ = sample_derivation(pcfg, rng)
        levels: list[int] = []

        def visit(node: Node) -> None:
            for child in node.children:
                if child.rule < 0:
                    levels.append(int(node.symbol.split("@")[1]))
                else:
                    visit(child)

        visit(tree)
        assert clause_depths(derivation_to_words(tree, pcfg)) == levels
    verbs = 0
    for s in deep_sentences:
        words = s.words
        nxt = [w.misc.get("AgrNext") for w in words]
        assert words[-1].misc["OpenSubj"] == "0" and min(int(w.misc["OpenSubj"]) for w in words) == 0
        for w in words:
            if w.upos in ("VERB", "AUX") and "Number" in w.feats:
                verbs += 1
                assert w.misc["SubjNumber"] == w.feats["Number"], s.text  # every agreeing word agrees
                assert nxt[w.id - 2] == w.feats["Number"]  # the word before knows what it must be
    assert verbs > 4000


def test_long_distances_and_mixed_attractors(deep_sentences) -> None:
    events = [(e, s) for s in deep_sentences for e in agreement_events(s.words)]
    distances = [e.verb - e.controller for e, _ in events]
    assert sum(d >= LONG_DISTANCE for d in distances) / len(distances) > 0.15
    mixed = 0
    for e, s in events:
        if e.verb - e.controller >= LONG_DISTANCE:
            numbers = {w.feats["Number"] for w in s.words[e.controller:e.verb - 1] if w.upos == "NOUN"}
            mixed += numbers == {"Sing", "Plur"}
    assert mixed > 100  # several attractors of both numbers between subject and verb
    assert Counter(e.coordinated for e, _ in events)[True] > 300
    assert [distance_bucket(d) for d in (1, 2, 3, 5, 6, 11, 12, 40)] == \
        ["1-2", "1-2", "3-5", "3-5", "6-11", "6-11", "12+", "12+"]


def test_tree_labels_on_a_ud_tree_and_the_default_grammar() -> None:
    ud = parse_conllu_string(
        "1\tThe\tthe\tDET\tDT\t_\t2\tdet\t_\t_\n"
        "2\tkeys\tkey\tNOUN\tNNS\tNumber=Plur\t7\tnsubj\t_\t_\n"
        "3\tthat\tthat\tPRON\tWDT\tPronType=Rel\t5\tobj\t_\t_\n"
        "4\tI\tI\tPRON\tPRP\tNumber=Sing\t5\tnsubj\t_\t_\n"
        "5\tlost\tlose\tVERB\tVBD\tTense=Past|VerbForm=Fin\t2\tacl:relcl\t_\t_\n"
        "6\thave\thave\tAUX\tVBP\tNumber=Plur|VerbForm=Fin\t7\taux\t_\t_\n"
        "7\tturned\tturn\tVERB\tVBN\tVerbForm=Part\t0\troot\t_\t_\n"
        "8\tup\tup\tADP\tRP\t_\t7\tcompound:prt\t_\t_\n\n")[0].words
    assert clause_depths(ud) == [0, 0, 1, 1, 1, 0, 0, 0]
    assert open_subjects(ud) == [0, 1, 1, 2, 1, 0, 0, 0]
    assert [e[:4] for e in agreement_events(ud)] == [(2, 2, 6, "Plur")]
    assert next_agreement(ud)[1:5] == [("Plur", False), ("Plur", True), ("Plur", True), ("Plur", True)]
    default = generate_sentences(200, seed=1)  # plain default sentences: no deep labels, same tree functions
    assert all("OpenSubj" not in w.misc for s in default for w in s.words)
    assert all(max(clause_depths(s.words)) <= 2 for s in default)


# -- minimal pairs ----------------------------------------------------------------------------

def test_tagged_minimal_pairs(deep_sentences) -> None:
    pairs = deep_minimal_pairs(deep_sentences)
    vocab = set(DEEP_GRAMMAR.vocabulary())
    assert len(pairs) == sum(len(agreement_events(s.words)) for s in deep_sentences)
    assert {p.construction for p in pairs} == set(CONSTRUCTIONS)
    assert {p.nesting for p in pairs} == {0, 1, 2, 3} and {p.depth for p in pairs} == {0, 1, 2, 3}
    assert {p.bucket for p in pairs} == {"1-2", "3-5", "6-11", "12+"}
    assert {(p.pair.correct, p.pair.wrong) for p in pairs if p.auxiliary} == \
        {("was", "were"), ("were", "was"), ("has", "have"), ("have", "has")}
    for p in pairs:
        assert p.pair.wrong in vocab and p.pair.wrong != p.pair.correct
        assert set(p.tags()) == {"construction", "nesting", "depth", "distance", "attractors"}
    [example] = deep_minimal_pairs([read_back(_sentence("the dog chased the cats and was happy ."))])
    assert example.pair == (["the", "dog", "chased", "the", "cats", "and"], "was", "were")
    assert (example.construction, example.distance, example.attractors, example.nesting) == ("past_aux", 5, 1, 0)


def read_back(words):
    """A Sentence built from labelled words, through CoNLL-U and back."""
    from corpus.sentence import Sentence

    text = format_conllu([Sentence(words, {"text": " ".join(w.form for w in words)}, -1.0)])
    return parse_conllu_string(text)[0]


# -- the treebank -----------------------------------------------------------------------------

# Digests of a 400-sentence default treebank (seed 3) written by the code before the deep grammar
# existed, in a canonical form (floats to 10 significant digits) so that a libm differing in the
# last bit of a logarithm does not matter: the default treebank must not change.
DEFAULT_DIGESTS = {
    "probe.conllu": "b87396ade55eb478", "stats.json": "565eb119e410d9e3", "train.conllu": "8980b021388ab5cd",
    "val.conllu": "ee88812d392d5ad0", "vocab.json": "8f773cac985ed0fb",
}


def _round(x):
    if isinstance(x, float):
        return float(f"{x:.10g}")
    if isinstance(x, dict):
        return {k: _round(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_round(v) for v in x]
    return x


def canonical_digest(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        text = json.dumps(_round(json.loads(text)), indent=1)
    else:
        text = re.sub(r"^# logprob = (\S+)$", lambda m: f"# logprob = {float(m.group(1)):.10g}", text, flags=re.M)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def test_default_treebank_is_unchanged(tmp_path: Path) -> None:
    write_treebank(tmp_path / "tb", 400, seed=3)
    assert {p.name: canonical_digest(p) for p in sorted((tmp_path / "tb").iterdir())} == DEFAULT_DIGESTS


def test_cli_writes_the_deep_treebank(tmp_path: Path, capsys) -> None:
    out = tmp_path / "deep"
    assert main(["corpus", "--out", str(out), "--sentences", "500", "--seed", "2", "--grammar", "deep"]) == 0
    assert "grammar deep:" in capsys.readouterr().out
    stats = json.loads((out / "stats.json").read_text())
    assert stats["grammar"]["name"] == "deep" and stats["grammar"]["max_depth"] == 3
    assert stats["grammar"]["expected_entropy_floor_nats_per_token"] == pytest.approx(2.5083, abs=5e-4)
    structure = stats["structure"]
    assert set(structure["by_construction"]) == set(CONSTRUCTIONS)
    assert 0.1 < structure["long_distance_share"] < 0.3
    # every finite verb has agreement labels; past tenses, which show no number, make no minimal pair
    assert 0 < stats["agreement"]["minimal_pairs"] < stats["agreement"]["verbs_with_attractor"]
    probe = read_conllu(out / "probe.conllu")
    assert all("ClauseDepth" in w.misc and "OpenSubj" in w.misc for s in probe for w in s.words)
    assert (out / "probe.conllu").read_text() == format_conllu(probe)  # CoNLL-U round trip
    again = tmp_path / "again"
    write_treebank(again, 500, seed=2, grammar=DEEP_GRAMMAR)
    for name in ("train.conllu", "stats.json", "vocab.json"):
        assert (again / name).read_bytes() == (out / name).read_bytes()
    assert main(["corpus", "--out", str(tmp_path / "x"), "--grammar", "deeper"]) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith("unknown grammar 'deeper'; choose one of default, deep")


# -- training on it ---------------------------------------------------------------------------

def test_data_config_grammar_is_validated_and_must_match_the_treebank(tmp_path: Path) -> None:
    from gpt_model.data import DataConfig, prepare_data
    from gpt_model.presets import train_preset

    assert DataConfig().grammar == "default" and train_preset("deep-demo").data.grammar == "deep"
    assert train_preset("deep-demo").model.n_layer >= 12
    with pytest.raises(ValueError, match=r"DataConfig\.grammar must be one of \('default', 'deep'\)"):
        DataConfig(grammar="deeper")
    write_treebank(tmp_path / "tb", 300, seed=1, grammar=DEEP_GRAMMAR)
    with pytest.raises(ValueError, match="written with grammar 'deep', but data.grammar is 'default'"):
        prepare_data(DataConfig(path=str(tmp_path / "tb")), tmp_path / "run", 64)
    bundle = prepare_data(DataConfig(path=str(tmp_path / "tb"), grammar="deep"), tmp_path / "run", 64)
    assert bundle.data_info["grammar"] == "deep" and bundle.data_info["tagged_pairs"] == len(bundle.tagged_pairs) > 0
    assert {p.correct for p in bundle.agreement_pairs} & {"was", "were", "has", "have"}  # auxiliaries count


def test_demo_deep_tiny_reports_agreement_per_construction(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("STRATASCOPE_GPT2", raising=False)
    out = tmp_path / "runs" / "deep-demo"
    assert main(["demo", "--deep", "--tiny", "--no-serve", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "(deep grammar)" in printed and "--grammar deep" in printed
    assert json.loads((out / "data" / "stats.json").read_text())["grammar"]["name"] == "deep"
    final = json.loads((out / "results.json").read_text())
    by = final["agreement_by"]
    assert by["overall"]["n_pairs"] == sum(c["n_pairs"] for c in by["construction"].values())
    assert list(by["distance"]) == [b for b in ("1-2", "3-5", "6-11", "12+") if b in by["distance"]]
    report = (out / "report.md").read_text()
    assert "Agreement at every agreeing verb and auxiliary" in report and "| construction | past_aux |" in report
    results = json.loads(next((out / "probes").glob("*/results.json")).read_text())
    assert {t["name"] for t in results["tasks"]} >= {"embedding_depth", "agreement_held"}
