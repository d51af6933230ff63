"""Corpus statistics: the entropy floor and the label distributions written to ``stats.json``.

``entropy_floor(sentences)`` is ``sum(-logprob) / sum(len + 1)`` in nats per token: the
average loss a model that knew the grammar exactly would reach on these sentences, counting one
end-of-sentence prediction per sentence. No model can beat it in expectation.
``unigram_entropy(sentences)`` is the entropy of the word (+ end-of-sentence) frequencies, the
loss of a model that ignores context: the gap between the two is what context buys.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from corpus.grammar import DEFAULT_GRAMMAR, Grammar
from corpus.labels import agreement_minimal_pairs
from corpus.sentence import Sentence


def entropy_floor(sentences: Iterable[Sentence]) -> float:
    """Nats per token (words + one end-of-sentence token per sentence)."""
    losses = []
    tokens = 0
    for s in sentences:
        if s.logprob is None:
            raise ValueError(f"sentence {s.metadata.get('sent_id', '?')} has no logprob")
        losses.append(-s.logprob)
        tokens += len(s.words) + 1
    if not tokens:
        raise ValueError("entropy_floor of an empty corpus")
    return math.fsum(losses) / tokens


def unigram_entropy(sentences: Iterable[Sentence]) -> float:
    """Entropy (nats) of the unigram distribution of words and end-of-sentence tokens."""
    counts: Counter[str] = Counter()
    n_sent = 0
    for s in sentences:
        counts.update(w.form for w in s.words)
        n_sent += 1
    counts["<eos>"] += n_sent
    total = sum(counts.values())
    if not total:
        raise ValueError("unigram_entropy of an empty corpus")
    return -math.fsum(c / total * math.log(c / total) for c in counts.values())


def _ranked(counter: Counter) -> dict[str, int]:
    return {str(k): v for k, v in sorted(counter.items(), key=lambda kv: (-kv[1], str(kv[0])))}


def label_distributions(sentences: Sequence[Sentence]) -> dict[str, dict[str, int]]:
    upos: Counter[str] = Counter()
    deprel: Counter[str] = Counter()
    const: Counter[str] = Counter()
    number: Counter[str] = Counter()
    depth: Counter[int] = Counter()
    for s in sentences:
        for w in s.words:
            upos[w.upos] += 1
            deprel[w.deprel] += 1
            if "Const" in w.misc:
                const[w.misc["Const"]] += 1
            if "Number" in w.feats:
                number[f"{w.upos}:{w.feats['Number']}"] += 1
            if "Depth" in w.misc:
                depth[int(w.misc["Depth"])] += 1
    return {
        "upos": _ranked(upos),
        "deprel": _ranked(deprel),
        "const": _ranked(const),
        "number": _ranked(number),
        "depth": {str(k): depth[k] for k in sorted(depth)},
    }


def agreement_stats(sentences: Sequence[Sentence], grammar: Grammar = DEFAULT_GRAMMAR) -> dict[str, float | int]:
    verbs = attractors = sentences_with = 0
    for s in sentences:
        found = False
        for w in s.words:
            if "Attractor" in w.misc:
                verbs += 1
                if w.misc["Attractor"] == "Yes":
                    attractors += 1
                    found = True
        sentences_with += found
    return {
        "finite_verbs": verbs,
        "verbs_with_attractor": attractors,
        "attractor_rate": attractors / verbs if verbs else 0.0,
        "sentences_with_attractor": sentences_with,
        "minimal_pairs": len(agreement_minimal_pairs(sentences, grammar)),
    }


def length_stats(sentences: Sequence[Sentence]) -> dict[str, object]:
    lengths = [len(s.words) for s in sentences]
    if not lengths:
        return {"min": 0, "max": 0, "mean": 0.0, "histogram": {}}
    hist = Counter(lengths)
    return {
        "min": min(lengths),
        "max": max(lengths),
        "mean": sum(lengths) / len(lengths),
        "histogram": {str(k): hist[k] for k in sorted(hist)},
    }


def split_stats(splits: Mapping[str, Sequence[Sentence]]) -> dict[str, dict[str, object]]:
    out = {}
    for name, sents in splits.items():
        words = sum(len(s.words) for s in sents)
        out[name] = {
            "sentences": len(sents),
            "words": words,
            "tokens": words + len(sents),
            "distinct_texts": len({s.text for s in sents}),
            "entropy_floor": entropy_floor(sents) if sents else None,
        }
    return out
