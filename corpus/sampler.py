"""Sample sentences from a grammar, each with its exact log-probability and gold labels.

``generate_sentences(n, seed, grammar)`` is deterministic: the same arguments give the same
sentences on any machine (``random.Random`` with an integer seed). Because the compiled grammar
is unambiguous, the probability of a sentence is the product of the probabilities of the rules
and words of its one derivation; summing their logs while sampling costs nothing. Sentences
longer than ``grammar.max_words`` are rejected and the log-probabilities renormalised by the
exact ``PCFG.log_z``, so ``Sentence.logprob`` is ``log P(sentence)`` under the distribution the
corpus is drawn from.
"""

from __future__ import annotations

import random
from bisect import bisect
from collections.abc import Callable

from corpus._gc import gc_paused
from corpus.grammar import DEFAULT_GRAMMAR, Grammar
from corpus.labels import derivation_to_words
from corpus.pcfg import PCFG, Node, compile_grammar
from corpus.sentence import Sentence


PROGRESS_EVERY = 1000  # sentences between two progress reports


class _TooLong(Exception):
    pass


def sample_derivation(pcfg: PCFG, rng: random.Random) -> tuple[Node, float]:
    """One derivation (rejection-sampled to at most ``max_words`` words) and its log P."""
    rules = pcfg.rules
    by_lhs = pcfg.by_lhs
    cum_by_lhs = pcfg.cum_by_lhs
    lexicals = pcfg.lexicals
    max_words = pcfg.max_words
    uniform = rng.random
    n_words = 0

    def expand(symbol: str) -> tuple[Node, float]:
        nonlocal n_words
        lex = lexicals.get(symbol)
        if lex is not None:
            n_words += 1
            if n_words > max_words:
                raise _TooLong
            k = 0 if len(lex.cum) == 1 else min(bisect(lex.cum, uniform()), len(lex.cum) - 1)
            return Node(symbol, -1, (lex.words[k],)), lex.logprobs[k]
        ids = by_lhs[symbol]
        if len(ids) == 1:
            rule = rules[ids[0]]
        else:
            cum = cum_by_lhs[symbol]
            rule = rules[ids[min(bisect(cum, uniform()), len(ids) - 1)]]
        logp = rule.logprob
        children = []
        for child in rule.rhs:
            node, lp = expand(child)
            children.append(node)
            logp += lp
        return Node(symbol, rule.index, tuple(children)), logp

    while True:
        n_words = 0
        try:
            tree, logp = expand(pcfg.start)
        except _TooLong:
            continue
        return tree, logp - pcfg.log_z


def generate_sentences(n: int, seed: int, grammar: Grammar = DEFAULT_GRAMMAR,
                       progress: Callable[[int], None] | None = None) -> list[Sentence]:
    """``n`` labelled sentences drawn from ``grammar``; deterministic in ``seed``.

    Each sentence has ``logprob`` (natural log, exact), ``metadata`` with ``sent_id``
    (``"<seed>-<index>"``) and ``text``, and fully labelled words (see ``corpus.labels``, and
    ``grammar.annotate`` for a grammar's own labels). ``progress(done)`` is called every
    ``PROGRESS_EVERY`` sentences and at the end (it draws nothing from the generator).
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError(f"n must be an int >= 0, got {n!r}")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError(f"seed must be an int, got {seed!r}")
    pcfg = compile_grammar(grammar)
    rng = random.Random(seed)
    annotate = grammar.annotate
    sentences = []
    with gc_paused():
        for i in range(n):
            tree, logp = sample_derivation(pcfg, rng)
            words = derivation_to_words(tree, pcfg)
            if annotate is not None:
                annotate(words)
            text = " ".join(w.form for w in words)
            sentences.append(Sentence(words, {"sent_id": f"{seed}-{i}", "text": text}, logp))
            if progress is not None and (i + 1) % PROGRESS_EVERY == 0:
                progress(i + 1)
    if progress is not None:
        progress(n)
    return sentences
