"""An exhaustive chart parser (CKY with the inside algorithm) over the compiled grammar.

``ChartParser(pcfg).parse(words)`` returns the number of distinct derivations of ``words``,
their total probability (the inside probability of the start symbol, before the length
renormalisation) and, when there is exactly one, that derivation as a ``Node`` tree in the
sampler's format. It is how the tests prove that the grammar is unambiguous: every sampled
sentence must have exactly one parse, the parse must be the sampled derivation, and its inside
probability must equal the log-probability the sampler reported.

Rules longer than two are binarised with fresh intermediate symbols (probability 1), which
preserves both the number of derivations and their probabilities. The depth bound needs no
special handling: the compiled grammar already indexes every phrase by its depth.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

from corpus.pcfg import PCFG, Node

_Key = tuple[int, int, str]  # (start, end, symbol)


@dataclass(frozen=True)
class ParseResult:
    count: int               # number of derivations
    inside: float            # sum of their probabilities under the (untruncated) PCFG
    tree: Node | None        # the derivation when count == 1
    logprob: float           # log P(words) under the corpus distribution (-inf if impossible)


class ChartParser:
    def __init__(self, pcfg: PCFG) -> None:
        self.pcfg = pcfg
        self.lexicon: dict[str, list[tuple[str, float]]] = defaultdict(list)
        for lex in pcfg.lexicals.values():
            for word, p in zip(lex.words, lex.probs):
                self.lexicon[word].append((lex.symbol, p))
        # binary[left] -> (parent, right, prob, rule index, position of `right` in the rule)
        self.binary: dict[str, list[tuple[str, str, float, int, int]]] = defaultdict(list)
        self.unary: dict[str, list[tuple[str, float, int]]] = defaultdict(list)
        for rule in pcfg.rules:
            rhs = rule.rhs
            if len(rhs) == 1:
                self.unary[rhs[0]].append((rule.lhs, rule.prob, rule.index))
                continue
            # A -> X1 X2 ... Xk  becomes  A -> X1 @r.1, @r.1 -> X2 @r.2, ..., @r.k-2 -> Xk-1 Xk
            parent, prob = rule.lhs, rule.prob
            for pos in range(len(rhs) - 2):
                inter = f"@{rule.index}.{pos + 1}"
                self.binary[rhs[pos]].append((parent, inter, prob, rule.index, pos))
                parent, prob = inter, 1.0
            self.binary[rhs[-2]].append((parent, rhs[-1], prob, rule.index, len(rhs) - 2))
        self.unary_order = self._unary_order()

    def _unary_order(self) -> list[str]:
        """Children before parents, so one pass applies every unary chain."""
        order: list[str] = []
        seen: set[str] = set()

        def visit(sym: str) -> None:
            if sym in seen:
                return
            seen.add(sym)
            for parent, _, _ in self.unary.get(sym, ()):
                visit(parent)
            order.append(sym)

        for sym in list(self.unary):
            visit(sym)
        return order[::-1]

    def parse(self, words: list[str] | tuple[str, ...]) -> ParseResult:
        n = len(words)
        # chart[(i, j)][symbol] = [count, inside, backpointer]
        chart: dict[tuple[int, int], dict[str, list]] = {}
        for i, word in enumerate(words):
            cell: dict[str, list] = {}
            for sym, p in self.lexicon.get(word, ()):
                cell[sym] = [1, p, ("word", word)]
            self._close_unary(cell)
            chart[(i, i + 1)] = cell
        for length in range(2, n + 1):
            for i in range(n - length + 1):
                k = i + length
                cell = {}
                for j in range(i + 1, k):
                    left_cell = chart[(i, j)]
                    right_cell = chart[(j, k)]
                    if not left_cell or not right_cell:
                        continue
                    for left, (lc, lp, _) in left_cell.items():
                        for parent, right, prob, rule_index, pos in self.binary.get(left, ()):
                            entry = right_cell.get(right)
                            if entry is None:
                                continue
                            rc, rp, _ = entry
                            bp = ("bin", j, left, right)
                            slot = cell.get(parent)
                            if slot is None:
                                cell[parent] = [lc * rc, prob * lp * rp, bp]
                            else:
                                slot[0] += lc * rc
                                slot[1] += prob * lp * rp
                self._close_unary(cell)
                chart[(i, k)] = cell
        top = chart.get((0, n), {}).get(self.pcfg.start) if n else None
        if top is None:
            return ParseResult(0, 0.0, None, -math.inf)
        count, inside, _ = top
        tree = self._build(chart, 0, n, self.pcfg.start) if count == 1 else None
        logprob = math.log(inside) - self.pcfg.log_z if n <= self.pcfg.max_words else -math.inf
        return ParseResult(count, inside, tree, logprob)

    def _close_unary(self, cell: dict[str, list]) -> None:
        for child in self.unary_order:
            entry = cell.get(child)
            if entry is None:
                continue
            for parent, prob, _ in self.unary.get(child, ()):
                slot = cell.setdefault(parent, [0, 0.0, ("un", child)])
                slot[0] += entry[0]
                slot[1] += prob * entry[1]

    def _build(self, chart: dict, i: int, k: int, sym: str) -> Node:
        _, _, bp = chart[(i, k)][sym]
        if bp[0] == "word":
            return Node(sym, -1, (bp[1],))
        if bp[0] == "un":
            child = self._build(chart, i, k, bp[1])
            rule = next(r for p, _, r in self.unary[bp[1]] if p == sym)
            return Node(sym, rule, (child,))
        children = self._flatten(chart, i, k, sym)
        rule_index = next(r for p, right, _, r, _ in self.binary[bp[2]] if p == sym and right == bp[3])
        return Node(sym, rule_index, tuple(children))

    def _flatten(self, chart: dict, i: int, k: int, sym: str) -> list[Node]:
        """Children of an n-ary rule: undo the binarisation along the right spine."""
        _, j, left, right = chart[(i, k)][sym][2]
        head = [self._build(chart, i, j, left)]
        if right.startswith("@"):
            return head + self._flatten(chart, j, k, right)
        return head + [self._build(chart, j, k, right)]
