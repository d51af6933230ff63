"""Probing tasks for the deep treebank: open subjects, embedding depth, the number to agree with."""

from __future__ import annotations

import copy
from collections import Counter, defaultdict
from pathlib import Path

import pytest

import probes
from corpus import DEEP_GRAMMAR, ChartParser, Sentence, compile_grammar, generate_sentences, read_conllu
from corpus.deep_labels import annotate_deep
from corpus.labels import derivation_to_words
from probes.tasks import DEEP_TASKS, TASK_SETS

EWT = Path(__file__).resolve().parents[2] / "shared" / "data" / "ud_english_ewt" / "en_ewt-ud-dev.conllu"
if not EWT.is_file():
    EWT = Path("/work/shared/data/ud_english_ewt/en_ewt-ud-dev.conllu")

MISC_KEYS = ("ClauseDepth", "OpenSubj", "AgrNext", "AgrHeld")


@pytest.fixture(scope="module")
def deep():
    return generate_sentences(1500, seed=8, grammar=DEEP_GRAMMAR)


def _without_deep_misc(sentences):
    out = copy.deepcopy(sentences)
    for s in out:
        for w in s.words:
            for key in MISC_KEYS:
                w.misc.pop(key, None)
    return out


def test_deep_tasks_are_registered_with_their_levels():
    assert [(t.name, t.level, t.kind) for t in probes.resolve_tasks(list(DEEP_TASKS))] == [
        ("open_subjects", "middle", "ordinal"), ("embedding_depth", "middle", "ordinal"),
        ("agreement_next", "late", "categorical"), ("agreement_held", "late", "categorical")]
    assert TASK_SETS["deep"] == probes.DEFAULT_TASKS + DEEP_TASKS
    assert [t.name for t in probes.resolve_tasks("deep")] == list(probes.DEFAULT_TASKS + DEEP_TASKS)
    assert TASK_SETS["default"] == probes.DEFAULT_TASKS  # the default set is unchanged


def _parsed(text: str) -> Sentence:
    """The deep grammar's labelled sentence for `text` (its one parse)."""
    pcfg = compile_grammar(DEEP_GRAMMAR)
    result = ChartParser(pcfg).parse(text.split())
    words = derivation_to_words(result.tree, pcfg)
    annotate_deep(words)
    return Sentence(words, {"text": text}, result.logprob)


def test_labels_of_a_sentence():
    s = _parsed("the horse that these walks chased was busy .")
    labels = {t: probes.get_task(t)(s) for t in DEEP_TASKS}
    assert labels["open_subjects"] == [0, 1, 1, 1, 2, 1, 0, 0, 0]
    assert labels["embedding_depth"] == [0, 0, 1, 1, 1, 1, 0, 0, 0]
    assert labels["agreement_next"] == [None, "Sing", "Sing", "Sing", "Sing", "Sing", None, None, None]
    assert labels["agreement_held"] == [None, None, "Sing", "Sing", "Sing", "Sing", None, None, None]


def test_labels_from_misc_equal_labels_from_the_tree(deep):
    plain = _without_deep_misc(deep[:300])
    for t in DEEP_TASKS:
        task = probes.get_task(t)
        assert [task(s) for s in deep[:300]] == [task(s) for s in plain], t
    held = probes.label_task(probes.get_task("agreement_held"), deep)
    nxt = probes.label_task(probes.get_task("agreement_next"), deep)
    assert 0.5 * nxt.n < held.n < nxt.n and set(Counter(nxt.groups)) == {"held", "read"}
    assert probes.label_task(probes.get_task("open_subjects"), deep).y.max() >= 4
    assert probes.label_task(probes.get_task("embedding_depth"), deep).y.max() == 3


def test_deep_tasks_run_on_ud_ewt_unchanged():
    sentences = read_conllu(EWT)
    n_words = sum(len(s.words) for s in sentences)
    for name in DEEP_TASKS:
        lab = probes.label_task(probes.get_task(name), sentences)
        assert lab.rows.max() < n_words
        assert lab.n > 1000, name
    assert probes.label_task(probes.get_task("embedding_depth"), sentences).n == n_words


def _lookup_accuracy(train, test, key) -> tuple[float, float]:
    """Accuracy on `test` of the best lookup table key(word) -> label fitted on `train` (what
    any probe that sees only the word's own embedding can do at most), and of the majority."""
    table: dict = defaultdict(Counter)
    for k, y in train:
        table[k][y] += 1
    majority = Counter(y for _, y in train).most_common(1)[0][0]
    hits = sum((table[k].most_common(1)[0][0] if k in table else majority) == y for k, y in test)
    return hits / len(test), sum(y == majority for _, y in test) / len(test)


@pytest.mark.parametrize("key", ["form", "form+position"])
def test_agreement_held_is_not_lexical(deep, key):
    """By construction every word agreement_held labels is drawn independently of the number it
    asks for: knowing the word (and its position) does no better than the majority class, while
    subject_number, read at a verb that shows number, is the verb's own form."""
    def rows(task, with_position):
        out = []
        for s in deep:
            for w, y in zip(s.words, probes.get_task(task)(s)):
                if y is not None and (task != "subject_number" or "Number" in w.feats):
                    out.append(((w.form, w.id if with_position else 0), y))
        return out

    held, at_verb = rows("agreement_held", key == "form+position"), rows("subject_number", False)
    cut_h, cut_v = len(held) * 2 // 3, len(at_verb) * 2 // 3
    acc, majority = _lookup_accuracy(held[:cut_h], held[cut_h:], key)
    assert majority < 0.6
    assert abs(acc - majority) < 0.05
    acc_verb, majority_verb = _lookup_accuracy(at_verb[:cut_v], at_verb[cut_v:], key)
    assert acc_verb > 0.97 and majority_verb < 0.6
