"""Head summaries (entropy, previous-token score, subject at the verb) by hand."""

import math

import numpy as np
import pytest

from app.analysis import head_summary, subject_verb_pairs

# one layer, two heads, three tokens
PATTERN = np.zeros((1, 2, 3, 3))
PATTERN[0, 0] = [[1, 0, 0], [1, 0, 0], [0, 1, 0]]  # a previous-token head
PATTERN[0, 1] = [[1, 0, 0], [0.5, 0.5, 0], [1 / 3, 1 / 3, 1 / 3]]  # uniform over the past


def test_head_summary_by_hand():
    s = head_summary(PATTERN, [(0, 2)])
    assert s.entropy[0] == pytest.approx([0.0, (math.log(2) + math.log(3)) / 2])
    assert s.prev_token[0] == pytest.approx([1.0, (0.5 + 1 / 3) / 2])
    assert s.subject[0] == pytest.approx([0.0, 1 / 3])  # A[verb=2, subject=0]
    assert (s.n_queries, s.n_pairs) == (2, 1)
    rows = s.rows()
    assert rows[1] == {"layer": 0, "head": 1, "entropy": pytest.approx((math.log(2) + math.log(3)) / 2),
                       "prev_token": pytest.approx(5 / 12), "subject_at_verb": pytest.approx(1 / 3)}


def test_head_summary_over_sentences_weights_queries():
    short = np.zeros((1, 2, 2, 2))
    short[0, :, 0, 0] = 1
    short[0, :, 1] = [0.5, 0.5]  # both heads uniform on the one query
    s = head_summary([PATTERN, short], [[(0, 2)], [(1, 0)]])  # (1, 0): verb before subject → ignored
    assert s.n_queries == 3 and s.n_pairs == 1
    assert s.prev_token[0, 0] == pytest.approx((1 + 1 + 0.5) / 3)
    assert s.entropy[0, 0] == pytest.approx(math.log(2) / 3)
    no_pairs = head_summary(PATTERN)
    assert np.isnan(no_pairs.subject).all() and no_pairs.rows()[0]["subject_at_verb"] is None


def test_subject_verb_pairs_from_treebank_and_ud():
    from corpus import generate_sentences, parse_conllu_string

    for s in generate_sentences(30, seed=4):
        for subj, verb in subject_verb_pairs(s):
            assert s.words[verb].upos == "VERB" and s.words[verb].misc["Subj"] == str(s.words[subj].id)
            assert subj < verb
    ud = parse_conllu_string(
        "1\tdogs\tdog\tNOUN\t_\t_\t2\tnsubj\t_\t_\n"
        "2\tbark\tbark\tVERB\t_\t_\t0\troot\t_\t_\n\n")
    assert subject_verb_pairs(ud[0]) == [(0, 1)]
