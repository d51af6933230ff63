"""Compile a template ``Grammar`` into a plain, finite PCFG with exact normalisation.

Compilation instantiates number variables and indexes every phrasal symbol by its embedding
depth (``NP.Sing@1``), dropping alternatives that would exceed ``max_depth`` and renormalising
the rest, so the result is an ordinary acyclic PCFG whose rule probabilities sum to 1 per
left-hand side. Pre-terminals (``N.Sing``) are not depth-indexed.

The sampler rejects sentences longer than ``max_words``. The probability of a sentence under
the corpus distribution is therefore ``P_pcfg(s) / Z`` with ``Z = P_pcfg(len <= max_words)``;
``PCFG.log_z`` is computed exactly by dynamic programming over lengths, and so are the expected
sentence log-loss and length, whose ratio is the grammar's true entropy floor
(``PCFG.expected_floor``); the corpus estimate ``corpus.stats.entropy_floor`` converges to it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate, product
from typing import NamedTuple

from corpus.grammar import HEAD, Grammar


class Node(NamedTuple):
    """A derivation tree node. Pre-terminals have ``rule == -1`` and ``children == (word,)``."""

    symbol: str
    rule: int
    children: tuple


@dataclass(frozen=True, slots=True)
class CompiledRule:
    index: int
    lhs: str
    rhs: tuple[str, ...]
    prob: float
    logprob: float
    head: int                 # index of the head child in rhs
    roles: tuple[str, ...]    # per child: "head" or the UD relation of its head word
    label: str                # constituent label: the left-hand side without number and depth


@dataclass(frozen=True, slots=True)
class Lexical:
    """A compiled pre-terminal: its tags and word distribution."""

    symbol: str
    upos: str
    xpos: str
    feats: dict[str, str]
    words: tuple[str, ...]
    probs: tuple[float, ...]
    logprobs: tuple[float, ...]
    cum: tuple[float, ...]
    lemmas: dict[str, str]    # form -> lemma

    def entropy(self) -> float:
        return -math.fsum(p * lp for p, lp in zip(self.probs, self.logprobs))


def constituent_label(symbol: str) -> str:
    return symbol.split("@", 1)[0].split(".", 1)[0]


class PCFG:
    """A compiled grammar: ``rules``, ``by_lhs`` and ``lexicals``, plus exact normalisers."""

    def __init__(self, grammar: Grammar) -> None:
        self.grammar = grammar
        self.max_words = grammar.max_words
        self.start = f"{grammar.start}@0"
        self.lexicals: dict[str, Lexical] = {}
        for name, wc in grammar.word_classes.items():
            total = math.fsum(wc.words.values())
            words = tuple(wc.words)
            probs = tuple(wc.words[w] / total for w in words)
            self.lexicals[name] = Lexical(
                symbol=name, upos=wc.upos, xpos=wc.xpos, feats=dict(wc.feats), words=words,
                probs=probs, logprobs=tuple(math.log(p) for p in probs),
                cum=tuple(accumulate(probs)), lemmas={w: wc.lemma(w) for w in words},
            )
        self.rules: list[CompiledRule] = []
        self.by_lhs: dict[str, tuple[int, ...]] = {}
        self.cum_by_lhs: dict[str, tuple[float, ...]] = {}
        self._compile()
        self.order = self._topological_order()
        self._length_tables()

    # -- compilation ---------------------------------------------------------------------
    def _compile(self) -> None:
        g = self.grammar
        parsed = g.parsed_rules
        prior_total = math.fsum(g.numbers.values())
        prior = {v: w / prior_total for v, w in g.numbers.items()}
        todo = [self.start]
        seen = {self.start}
        while todo:
            lhs = todo.pop()
            base, value, depth = _split(lhs)
            slot, alternatives = parsed[base]
            bound = {slot[1:-1]: value} if slot else {}
            expansions: list[tuple[float, tuple[str, ...], int, tuple[str, ...]]] = []
            for weight, items in alternatives:
                free = sorted({it.variable for it in items if it.variable and it.variable not in bound})
                for values in product(list(prior), repeat=len(free)):
                    env = {**bound, **dict(zip(free, values))}
                    w = weight * math.prod(prior[v] for v in values)
                    rhs = []
                    for it in items:
                        val = env[it.variable] if it.variable else it.slot
                        name = it.base if val is None else f"{it.base}.{val}"
                        if it.base in parsed:
                            d = depth + (1 if it.base in g.embedding else 0)
                            if d > g.max_depth:
                                break
                            name = f"{name}@{d}"
                        rhs.append(name)
                    else:
                        head = next(i for i, it in enumerate(items) if it.role == HEAD)
                        expansions.append((w, tuple(rhs), head, tuple(it.role for it in items)))
            if not expansions:
                raise ValueError(
                    f"Grammar: {lhs} has no alternative within max_depth={g.max_depth}; "
                    "give it one that uses no embedding symbol"
                )
            total = math.fsum(e[0] for e in expansions)
            ids = []
            for w, rhs, head, roles in expansions:
                p = w / total
                rule = CompiledRule(len(self.rules), lhs, rhs, p, math.log(p), head, roles,
                                    constituent_label(lhs))
                self.rules.append(rule)
                ids.append(rule.index)
                for sym in rhs:
                    if sym not in self.lexicals and sym not in seen:
                        seen.add(sym)
                        todo.append(sym)
            self.by_lhs[lhs] = tuple(ids)
            self.cum_by_lhs[lhs] = tuple(accumulate(self.rules[i].prob for i in ids))

    def _topological_order(self) -> list[str]:
        """Phrasal symbols, children before parents; a cycle is a grammar error."""
        order: list[str] = []
        state: dict[str, int] = {}

        def visit(sym: str, path: tuple[str, ...]) -> None:
            if state.get(sym) == 2:
                return
            if state.get(sym) == 1:
                cycle = " -> ".join(path[path.index(sym):] + (sym,))
                raise ValueError(f"Grammar: rules recurse without an embedding symbol: {cycle}")
            state[sym] = 1
            for i in self.by_lhs[sym]:
                for child in self.rules[i].rhs:
                    if child in self.by_lhs:
                        visit(child, path + (sym,))
            state[sym] = 2
            order.append(sym)

        visit(self.start, ())
        return order

    # -- exact length distribution, normaliser and entropy ------------------------------
    def _length_tables(self) -> None:
        m = self.max_words
        tables: dict[str, tuple[list[float], list[float]]] = {}
        for name, lex in self.lexicals.items():
            p = [0.0] * (m + 1)
            h = [0.0] * (m + 1)
            p[1] = 1.0
            h[1] = lex.entropy()
            tables[name] = (p, h)
        for sym in self.order:
            p_sym = [0.0] * (m + 1)
            h_sym = [0.0] * (m + 1)
            for i in self.by_lhs[sym]:
                rule = self.rules[i]
                p_acc = [1.0] + [0.0] * m
                h_acc = [0.0] * (m + 1)
                for child in rule.rhs:
                    p_acc, h_acc = _convolve(p_acc, h_acc, *tables[child])
                for n in range(m + 1):
                    p_sym[n] += rule.prob * p_acc[n]
                    h_sym[n] += rule.prob * (h_acc[n] - rule.logprob * p_acc[n])
            tables[sym] = (p_sym, h_sym)
        p_start, h_start = tables[self.start]
        z = math.fsum(p_start)
        if z <= 0.0:
            raise ValueError(f"Grammar: no sentence has at most max_words={m} words")
        self.log_z = math.log(z)
        self.length_probs = [p / z for p in p_start]  # P(len = n | len <= max_words)
        self.expected_logloss = math.fsum(h_start) / z + self.log_z  # nats per sentence
        self.expected_tokens = math.fsum((n + 1) * q for n, q in enumerate(self.length_probs))
        self.expected_floor = self.expected_logloss / self.expected_tokens

    def max_length(self) -> int:
        """Length of the longest sentence the depth bound allows (before ``max_words``)."""
        longest: dict[str, int] = {name: 1 for name in self.lexicals}
        for sym in self.order:
            longest[sym] = max(sum(longest[c] for c in self.rules[i].rhs) for i in self.by_lhs[sym])
        return longest[self.start]

    # -- exhaustive enumeration (small grammars only) ------------------------------------
    def enumerate_derivations(self, max_words: int | None = None) -> Iterator[tuple[tuple[str, ...], float, Node]]:
        """Every derivation with at most ``max_words`` words: ``(words, log P_pcfg, tree)``.

        The count grows exponentially with the vocabulary and depth: meant for tiny grammars.
        """
        limit = self.max_words if max_words is None else max_words

        @lru_cache(maxsize=None)
        def derive(sym: str, budget: int) -> tuple[tuple[tuple[str, ...], float, Node], ...]:
            if sym in self.lexicals:
                lex = self.lexicals[sym]
                return tuple(((w,), lp, Node(sym, -1, (w,))) for w, lp in zip(lex.words, lex.logprobs))
            out = []
            for i in self.by_lhs[sym]:
                rule = self.rules[i]
                partial: list[tuple[tuple[str, ...], float, tuple[Node, ...]]] = [((), rule.logprob, ())]
                for k, child in enumerate(rule.rhs):
                    reserve = len(rule.rhs) - k - 1  # each later child needs at least one word
                    grown = []
                    for words, lp, kids in partial:
                        room = budget - len(words) - reserve
                        if room < 1:
                            continue
                        for cw, clp, cnode in derive(child, room):
                            grown.append((words + cw, lp + clp, kids + (cnode,)))
                    partial = grown
                out.extend((w, lp, Node(sym, i, kids)) for w, lp, kids in partial)
            return tuple(out)

        yield from derive(self.start, limit)


def _split(symbol: str) -> tuple[str, str | None, int]:
    name, _, depth = symbol.partition("@")
    base, _, value = name.partition(".")
    return base, (value or None), int(depth)


def _convolve(p1: list[float], h1: list[float], p2: list[float], h2: list[float]) -> tuple[list[float], list[float]]:
    m = len(p1) - 1
    p = [0.0] * (m + 1)
    h = [0.0] * (m + 1)
    for a in range(m + 1):
        pa, ha = p1[a], h1[a]
        if pa == 0.0 and ha == 0.0:
            continue
        for b in range(m + 1 - a):
            pb = p2[b]
            if pb == 0.0 and h2[b] == 0.0:
                continue
            p[a + b] += pa * pb
            h[a + b] += ha * pb + pa * h2[b]
    return p, h


@lru_cache(maxsize=16)
def compile_grammar(grammar: Grammar) -> PCFG:
    """The compiled PCFG of ``grammar``, cached per grammar object."""
    return PCFG(grammar)
