"""Probing tasks: gold labels from CoNLL-U, the task API, control tasks, sentence splits."""

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import probes
from corpus import Sentence, Word, generate_sentences, read_conllu
from corpus.labels import depth_from_heads
from probes.tasks import control_labels

EWT = Path(__file__).resolve().parents[2] / "shared" / "data" / "ud_english_ewt" / "en_ewt-ud-dev.conllu"
if not EWT.is_file():
    EWT = Path("/work/shared/data/ud_english_ewt/en_ewt-ud-dev.conllu")


@pytest.fixture(scope="module")
def treebank():
    return generate_sentences(300, seed=3)


def test_default_tasks_are_the_design_table_plus_agreement_before_the_verb():
    design = [
        ("position", "early", "ordinal"), ("word", "early", "categorical"), ("upos", "middle", "categorical"),
        ("depth", "middle", "ordinal"), ("phrase", "middle", "categorical"),
        ("subject_number", "late", "categorical"), ("next_upos", "late", "categorical")]
    assert [(t.name, t.level, t.kind) for t in probes.resolve_tasks("design")] == design
    assert [(t.name, t.level, t.kind) for t in probes.resolve_tasks(None)] == design + [
        ("subject_number_next", "late", "categorical")]
    assert [t.name for t in probes.resolve_tasks(["default"])] == list(probes.DEFAULT_TASKS)
    assert [t.name for t in probes.resolve_tasks("design,deprel")] == list(probes.DESIGN_TASKS) + ["deprel"]
    with pytest.raises(ValueError, match="given twice"):
        probes.resolve_tasks("design,upos")


def test_builtin_labels_on_the_treebank(treebank):
    for s in treebank[:50]:
        n = len(s.words)
        assert probes.get_task("position").labels(s) == list(range(1, n + 1))
        assert probes.get_task("upos").labels(s) == [w.upos for w in s.words]
        assert probes.get_task("next_upos").labels(s) == [w.upos for w in s.words[1:]] + [None]
        assert probes.get_task("depth").labels(s) == depth_from_heads(s.words) == [int(w.misc["Depth"]) for w in s.words]
        assert probes.get_task("phrase").labels(s) == [w.misc["Const"] for w in s.words]
        subj = probes.get_task("subject_number").labels(s)
        assert subj == [w.misc.get("SubjNumber") for w in s.words]
        # at a finite verb of the grammar, the subject's number is the verb's own number
        for w, lab in zip(s.words, subj):
            if lab is not None:
                assert w.upos == "VERB" and w.feats["Number"] == lab
        assert probes.get_task("subject_number_next").labels(s) == subj[1:] + [None]


def test_subject_number_groups_mark_attractors(treebank):
    lab = probes.label_task(probes.get_task("subject_number"), treebank)
    assert set(lab.groups) == {"attractor", "no_attractor"}
    flat = [w for s in treebank for w in s.words]
    for row, g in zip(lab.rows, lab.groups):
        assert (flat[row].misc["Attractor"] == "Yes") == (g == "attractor")


def test_label_rows_follow_corpus_order(treebank):
    lab = probes.label_task(probes.get_task("upos"), treebank)
    flat = [w for s in treebank for w in s.words]
    assert lab.n == len(flat)
    assert [lab.classes[k] for k in lab.y[:20]] == [w.upos for w in flat[:20]]
    assert list(lab.classes) == [c for c, _ in Counter(w.upos for w in flat).most_common()]
    nxt = probes.label_task(probes.get_task("next_upos"), treebank)
    assert nxt.n == len(flat) - len(treebank)  # the last word of each sentence is unused
    ends = np.cumsum([len(s.words) for s in treebank]) - 1
    assert not set(ends) & set(nxt.rows.tolist())


def test_word_task_keeps_the_most_frequent_forms():
    t = probes.Task("w3", "early", "categorical", lambda s: [w.form for w in s.words], max_classes=3)
    sents = [Sentence([Word(i + 1, f) for i, f in enumerate(text.split())]) for text in
             ["a a a b b c d", "a b c c e"]]
    lab = probes.label_task(t, sents)
    assert lab.classes == ["a", "b", "c"]
    assert lab.n == 10 and sorted(set(lab.types)) == ["a", "b", "c"]


@pytest.mark.skipif(not EWT.is_file(), reason="UD English EWT dev file not available")
def test_all_builtin_tasks_run_on_ud_ewt_unchanged():
    sentences = read_conllu(EWT)
    assert sum(len(s.multiword_tokens) for s in sentences) > 0 and sum(len(s.empty_nodes) for s in sentences) > 0
    n_words = sum(len(s.words) for s in sentences)
    counts = {}
    for name in probes.DEFAULT_TASKS + ("deprel",):
        lab = probes.label_task(probes.get_task(name), sentences)
        assert lab.rows.max() < n_words
        counts[name] = lab.n
    assert counts["position"] == counts["depth"] == n_words
    assert counts["upos"] == n_words
    assert counts["next_upos"] == n_words - len(sentences)
    assert 500 < counts["subject_number"] < 2000  # finite verbs with a Sing/Plur controller
    phrase = probes.label_task(probes.get_task("phrase"), sentences)
    assert "nsubj" in phrase.classes and "nmod" in phrase.classes and not any(":" in c for c in phrase.classes)
    assert phrase.n == n_words
    # there is no constituency annotation in UD: the constituent task has no labels
    assert probes.label_task(probes.get_task("constituent"), sentences).n == 0


def test_depth_refuses_a_head_cycle_naming_the_sentence():
    """A sentence whose HEADs form a cycle is no tree: the depth task says which sentence
    instead of silently leaving it out."""
    ok = Sentence([Word(1, "dogs", head=2), Word(2, "bark", head=0)], metadata={"sent_id": "fine"})
    cyclic = Sentence([Word(1, "the", head=2), Word(2, "dog", head=3), Word(3, "barks", head=2)],
                      metadata={"sent_id": "loop-7"})
    assert probes.label_task(probes.get_task("depth"), [ok]).y.tolist() == [1.0, 0.0]
    with pytest.raises(ValueError, match=r"task 'depth' .* on sentence 2 \('loop-7'\): .*HEAD cycle 2 → 3 → 2"):
        probes.label_task(probes.get_task("depth"), [ok, cyclic])


def test_a_task_that_raises_is_named_with_its_line():
    def fn(sentence):
        return [w.misc["missing"] for w in sentence.words]  # KeyError

    line = fn.__code__.co_firstlineno + 1
    t = probes.Task("broken", "late", "categorical", fn)
    s = Sentence([Word(1, "a"), Word(2, "b")])
    with pytest.raises(probes.tasks.TaskError, match=rf"task 'broken' raised KeyError at {__file__}:{line} on "
                                                       rf"sentence 1 \('a b'\)"):
        probes.label_task(t, [s])


def test_custom_task_in_a_few_lines(treebank):
    @probes.task("noun_number_test", level="middle", kind="categorical")
    def noun_number(sentence):
        """Number of nouns."""
        return [w.feats.get("Number") if w.upos == "NOUN" else None for w in sentence.words]

    try:
        assert isinstance(noun_number, probes.Task) and probes.get_task("noun_number_test") is noun_number
        assert noun_number.description == "Number of nouns."
        lab = probes.label_task(noun_number, treebank)
        assert set(lab.classes) == {"Sing", "Plur"}
        assert lab.n == sum(w.upos == "NOUN" for s in treebank for w in s.words)
    finally:
        probes.TASKS.pop("noun_number_test", None)


def test_task_validation():
    with pytest.raises(ValueError, match="level"):
        probes.Task("x", "deep", "categorical", lambda s: [])
    with pytest.raises(ValueError, match="kind"):
        probes.Task("x", "early", "nominal", lambda s: [])
    with pytest.raises(ValueError, match="unknown task"):
        probes.resolve_tasks(["upos", "nope"])
    with pytest.raises(ValueError, match="twice"):
        probes.resolve_tasks("upos,upos")
    bad = probes.Task("short", "early", "categorical", lambda s: ["x"])
    with pytest.raises(ValueError, match="1 labels for a sentence of 3 words"):
        bad.labels(Sentence([Word(1, "a"), Word(2, "b"), Word(3, "c")]))
    with pytest.raises(ValueError, match="non-number"):
        probes.Task("o", "early", "ordinal", lambda s: ["x"]).labels(Sentence([Word(1, "a")]))


def test_control_labels_fixed_per_type_and_distribution_matched():
    rng = np.random.default_rng(0)
    n_types = 4000
    types = [f"w{rng.integers(n_types)}" for _ in range(60_000)]
    probs = np.array([0.5, 0.3, 0.15, 0.05])
    y = rng.choice(4, size=len(types), p=probs)
    c = control_labels(types, y, seed=1, salt="t")
    by_type: dict[str, set] = {}
    for t, lab in zip(types, c):
        by_type.setdefault(t, set()).add(int(lab))
    assert all(len(v) == 1 for v in by_type.values())  # one fixed label per word type
    per_type = np.bincount([next(iter(v)) for v in by_type.values()], minlength=4) / len(by_type)
    assert np.abs(per_type - probs).max() < 0.03  # types draw from the task's label distribution
    # deterministic by seed, different for another seed, independent of word order
    assert np.array_equal(c, control_labels(types, y, seed=1, salt="t"))
    assert not np.array_equal(c, control_labels(types, y, seed=2, salt="t"))
    order = rng.permutation(len(types))
    again = control_labels([types[i] for i in order], y[order], seed=1, salt="t")
    assert np.array_equal(again, c[order])


def test_taskl_labels_control_is_per_type(treebank):
    lab = probes.label_task(probes.get_task("upos"), treebank)
    c = lab.control(seed=0)
    seen = {}
    for t, v in zip(lab.types, c):
        assert seen.setdefault(t, v) == v
    assert set(np.unique(c)) <= set(range(lab.n_classes))


def test_split_by_distinct_sentence_text():
    sents = [Sentence([Word(1, w)]) for w in "a b c d e f g h i j".split()] * 3
    split = probes.split_sentences(sents, (0.6, 0.2, 0.2), seed=0)
    by_text: dict[str, set] = {}
    for s, k in zip(sents, split):
        by_text.setdefault(s.text, set()).add(int(k))
    assert all(len(v) == 1 for v in by_text.values())  # duplicates never straddle splits
    assert sorted(Counter(next(iter(v)) for v in by_text.values()).values()) == [2, 2, 6]
    assert np.array_equal(split, probes.split_sentences(sents, (0.6, 0.2, 0.2), seed=0))
    tiny = probes.split_sentences(sents[:3], (0.7, 0.1, 0.2), seed=0)
    assert sorted(tiny.tolist()) == [0, 1, 2]


def test_unhashable_categorical_labels_are_one_line_naming_task_and_value():
    t = probes.Task("lists", "late", "categorical", lambda s: [[w.form] for w in s.words])
    s = Sentence([Word(1, "a"), Word(2, "b")], metadata={"sent_id": "s-1"})
    with pytest.raises(probes.tasks.TaskError,
                       match=r"task 'lists' returned an unhashable label \['a'\] \(list; .*\) on sentence 1 \('s-1'\)"):
        probes.label_task(t, [s])
    # hashable labels of any type are fine (a tuple, an int)
    pairs = probes.Task("pairs", "late", "categorical", lambda s: [(w.form, 1) for w in s.words])
    assert probes.label_task(pairs, [s]).classes == [("a", 1), ("b", 1)]
