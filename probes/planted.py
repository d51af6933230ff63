"""Planted hierarchies: synthetic residual streams with properties written at known layers, to
validate the hierarchy verdict (``bench/bench_verdict.py``).

    spec = planted.ordered(n_layer=6)
    sentences, features, tasks = planted.make_planted(spec, seed=0)
    fit = probes.ProbeSuite(tasks, probes.ProbeConfig()).fit(features, sentences)

Sentences are ``corpus.Sentence`` of random word forms ``w00 … w{V−1}`` (uniform), each word
labelled with every property in MISC (``misc[name]``: the class as a string). A property's label
is, for a fraction ``lexical`` of the words, a fixed function of the word form (one random
class per form), and otherwise drawn uniformly, independently of everything else.

The features ``[n_layer + 1, n_words, d_model]`` (float32) behave like a residual stream, in a
random orthonormal basis of ``d_model`` split into disjoint subspaces — one for word forms,
one of ``n_classes`` dimensions per property, the rest noise only:

* layer 0 (the embeddings) = ``word_snr·σ·e_form`` (orthonormal per form, so layer 0 tells
  the word and hence the lexical part of every label) + ``σ·ε`` (isotropic, ε ~ N(0, I));
* at its ``layer`` a property writes ``snr·σ·√2·u_y`` (one orthonormal vector per class of its
  subspace) plus fresh noise ``σ·η`` in that subspace; every later layer keeps everything the
  earlier ones hold (x_ℓ = x_{ℓ−1} + the writes of layer ℓ);
* every block also adds isotropic noise of SD ``drift·σ`` (default 0.25σ), so that no two layers
  are identical (as no block of a real model writes nothing) and a layer's reading of an earlier
  property slowly degrades while a cumulative probe, which can subtract it, keeps it.

So from its layer on, a property's subspace holds its class mean at distance ``snr`` noise SDs
(noise σ√2: the layer-0 noise plus the write's own): a linear probe on one layer reads the
non-lexical part with the Bayes accuracy of K orthonormal means at that SNR
(``written_accuracy``), and layer 0 predicts the lexical part (``layer0_accuracy``). The write
carries its own noise so that a cumulative probe of layers 0..ℓ, which can subtract layer ℓ−1,
does not read it noise-free; what it reads still appears at the property's layer and nowhere
else, so the gains of Tenney's and the MDL expected layer after the embeddings belong there.

Scenarios (``SCENARIOS``, at ``n_layer`` L): ``ordered`` (the planted order early < middle <
late), ``reversed`` (function ``reversed_``; middle written after late, but mostly lexical: the
issue-20 failing case) and ``flat`` (all written at one layer, lexicality decreasing with the
level as in real tasks).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from corpus import Sentence, Word
from probes.tasks import LEVELS, Task


def _number(owner: str, name: str, value: object, *, lo: float | None = None, hi: float | None = None,
            integer: bool = False) -> None:
    """ValueError naming ``owner.name`` unless ``value`` is a (finite, integer) number in [lo, hi]."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and integer:
        ok = isinstance(value, int)
    if ok and lo is not None:
        ok = value >= lo
    if ok and hi is not None:
        ok = value <= hi
    if not ok:
        kind = "an integer" if integer else "a finite number"
        bounds = (f" >= {lo}" if hi is None else f" in [{lo}, {hi}]") if lo is not None else ""
        raise ValueError(f"{owner}.{name} must be {kind}{bounds}, got {value!r}")


@dataclass(frozen=True)
class PlantedProperty:
    """One property: ``layer`` is the first layer holding its non-lexical part (0 = the
    embeddings), ``snr`` the distance of its class means in noise SDs from that layer on,
    ``lexical`` the fraction of words whose label is a fixed function of the word form."""

    name: str
    level: str
    layer: int
    n_classes: int = 4
    snr: float = 3.0
    lexical: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or any(c.isspace() or c == "," for c in self.name):
            raise ValueError(f"PlantedProperty.name must be a non-empty string without spaces or commas, "
                             f"got {self.name!r}")
        if self.level not in LEVELS:
            raise ValueError(f"PlantedProperty.level must be one of {', '.join(LEVELS)}, got {self.level!r}")
        _number("PlantedProperty", "layer", self.layer, lo=0, integer=True)
        _number("PlantedProperty", "n_classes", self.n_classes, lo=2, integer=True)
        _number("PlantedProperty", "snr", self.snr, lo=0)
        _number("PlantedProperty", "lexical", self.lexical, lo=0, hi=1)


@dataclass(frozen=True)
class PlantedHierarchy:
    """A synthetic model and corpus: ``n_layer`` blocks of width ``d_model``, ``n_sentences`` of
    ``words_per_sentence`` words over ``vocab_size`` forms, ``properties`` written as the module
    doc says, isotropic noise of SD ``noise``, word forms at ``word_snr`` noise SDs, and
    isotropic noise of SD ``drift``·``noise`` added by every block."""

    n_layer: int = 6
    d_model: int = 64
    n_sentences: int = 300
    words_per_sentence: int = 10
    vocab_size: int = 32
    properties: tuple[PlantedProperty, ...] = field(default_factory=tuple)
    noise: float = 1.0
    # large because a linear probe reads a form's class as a sum over the forms of that class,
    # whose noise adds up (V/K forms per class)
    word_snr: float = 12.0
    drift: float = 0.25

    def __post_init__(self) -> None:
        owner = "PlantedHierarchy"
        for name in ("n_layer", "d_model", "n_sentences", "words_per_sentence"):
            _number(owner, name, getattr(self, name), lo=1, integer=True)
        _number(owner, "vocab_size", self.vocab_size, lo=2, integer=True)
        _number(owner, "noise", self.noise, lo=0)
        if self.noise == 0:
            raise ValueError(f"{owner}.noise must be > 0, got {self.noise!r}")
        _number(owner, "word_snr", self.word_snr, lo=0)
        _number(owner, "drift", self.drift, lo=0)
        props = tuple(self.properties)
        object.__setattr__(self, "properties", props)
        if not props or not all(isinstance(p, PlantedProperty) for p in props):
            raise ValueError(f"{owner}.properties must be a non-empty sequence of PlantedProperty")
        names = [p.name for p in props]
        if len(set(names)) != len(names):
            raise ValueError(f"{owner}.properties: names must be distinct, got {names}")
        for p in props:
            if p.layer > self.n_layer:
                raise ValueError(f"{owner}.properties: {p.name!r} has layer {p.layer} > n_layer {self.n_layer}")
            if p.n_classes > self.vocab_size and p.lexical > 0:
                raise ValueError(f"{owner}.vocab_size {self.vocab_size} is below {p.name!r}'s n_classes "
                                 f"{p.n_classes}: its lexical part could not reach every class")
        need = self.vocab_size + sum(p.n_classes for p in props)
        if self.d_model < need:
            raise ValueError(f"{owner}.d_model must be >= vocab_size + the properties' n_classes = {need}, "
                             f"got {self.d_model}")

    @property
    def n_words(self) -> int:
        return self.n_sentences * self.words_per_sentence


# ------------------------------------------------------------------------------- accuracies
def written_accuracy(n_classes: int, snr: float) -> float:
    """Bayes accuracy of K equiprobable classes with orthonormal means ``snr`` noise SDs from
    the origin under isotropic noise: ∫ φ(z) Φ(z + snr)^(K−1) dz."""
    from scipy.stats import norm

    z = np.linspace(-10, 10, 20001)
    return float(np.trapezoid(norm.pdf(z) * norm.cdf(z + snr) ** (n_classes - 1), z))


def layer0_accuracy(prop: PlantedProperty, word_acc: float = 1.0) -> float:
    """Accuracy at layer 0 of a property written later, when the word form is read with
    accuracy ``word_acc``: the lexical words, plus chance on the rest."""
    chance = 1.0 / prop.n_classes
    return word_acc * (prop.lexical + (1 - prop.lexical) * chance) + (1 - word_acc) * chance


# ------------------------------------------------------------------------------- generation
def _label(name: str, sentence: Sentence) -> list[str]:
    return [w.misc[name] for w in sentence.words]


def planted_task(prop: PlantedProperty) -> Task:
    """The categorical ``probes.Task`` reading ``prop``'s label from MISC."""
    return Task(prop.name, prop.level, "categorical", partial(_label, prop.name),
                description=f"planted at layer {prop.layer} (SNR {prop.snr:g}, lexical {prop.lexical:g})")


def _labels(spec: PlantedHierarchy, forms: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    out = {}
    for p in spec.properties:
        by_form = rng.integers(p.n_classes, size=spec.vocab_size)
        free = rng.integers(p.n_classes, size=forms.size)
        out[p.name] = np.where(rng.random(forms.size) < p.lexical, by_form[forms], free)
    return out


def _sentences(spec: PlantedHierarchy, forms: np.ndarray, labels: dict[str, np.ndarray]) -> list[Sentence]:
    width = len(str(spec.vocab_size - 1))
    sentences = []
    for s in range(spec.n_sentences):
        words = []
        for i in range(spec.words_per_sentence):
            row = s * spec.words_per_sentence + i
            misc = {name: str(int(y[row])) for name, y in labels.items()}
            words.append(Word(i + 1, f"w{int(forms[row]):0{width}d}", misc=misc))
        sentences.append(Sentence(words, metadata={"sent_id": f"planted-{s}"}))
    return sentences


def _features(spec: PlantedHierarchy, forms: np.ndarray, labels: dict[str, np.ndarray],
              rng: np.random.Generator) -> np.ndarray:
    n, d, sigma = forms.size, spec.d_model, spec.noise
    basis = np.linalg.qr(rng.normal(size=(d, d)))[0]  # columns: a random orthonormal basis
    x = spec.word_snr * sigma * basis[:, forms].T + sigma * rng.normal(size=(n, d))  # layer 0
    writes: list[list[np.ndarray]] = [[] for _ in range(spec.n_layer + 1)]
    start = spec.vocab_size
    for p in spec.properties:
        sub = basis[:, start:start + p.n_classes]  # [d, K]
        start += p.n_classes
        coef = math.sqrt(2.0) * p.snr * sigma * np.eye(p.n_classes)[labels[p.name]] + sigma * rng.normal(
            size=(n, p.n_classes))
        writes[p.layer].append(coef @ sub.T)
    out = np.empty((spec.n_layer + 1, n, d), dtype=np.float32)
    for layer in range(spec.n_layer + 1):
        if layer > 0 and spec.drift > 0:
            x = x + spec.drift * sigma * rng.normal(size=(n, d))
        for w in writes[layer]:
            x = x + w
        out[layer] = x
    return out


def make_planted(spec: PlantedHierarchy, seed: int) -> tuple[list[Sentence], np.ndarray, list[Task]]:
    """(sentences, features [n_layer + 1, n_words, d_model] float32, one categorical task per
    property): one draw of ``spec``, deterministic in ``seed`` (see module doc)."""
    rng = np.random.default_rng(seed)
    forms = rng.integers(spec.vocab_size, size=spec.n_words)
    labels = _labels(spec, forms, rng)
    return _sentences(spec, forms, labels), _features(spec, forms, labels, rng), [
        planted_task(p) for p in spec.properties]


# ------------------------------------------------------------------------------- scenarios
def _spec(n_layer: int, props: list[PlantedProperty], **sizes: int | float) -> PlantedHierarchy:
    return PlantedHierarchy(n_layer=n_layer, properties=tuple(props), **sizes)  # type: ignore[arg-type]


def ordered(n_layer: int = 6, **sizes: int | float) -> PlantedHierarchy:
    """early < middle < late in depth: early purely lexical (a function of the word, like word
    identity; layer 0), middle written at ⌊L/2⌋, late at L−1 and half lexical (the confound)."""
    return _spec(n_layer, [PlantedProperty("early", "early", 0, n_classes=8, lexical=1.0),
                           PlantedProperty("middle", "middle", n_layer // 2),
                           PlantedProperty("late", "late", n_layer - 1, lexical=0.5)], **sizes)


def reversed_(n_layer: int = 6, **sizes: int | float) -> PlantedHierarchy:
    """Issue 20's failing case: middle's non-lexical part written at L−1 but middle mostly
    lexical (0.8), late's written at ⌊L/2⌋ with little lexical share (0.1). In depth the
    planted order is early < late < middle, not early < middle < late."""
    return _spec(n_layer, [PlantedProperty("early", "early", 0, n_classes=8, lexical=1.0),
                           PlantedProperty("middle", "middle", n_layer - 1, lexical=0.8),
                           PlantedProperty("late", "late", n_layer // 2, lexical=0.1)], **sizes)


def flat(n_layer: int = 6, **sizes: int | float) -> PlantedHierarchy:
    """No order in depth: all three written at ⌊L/2⌋, with lexical shares 0.5 / 0.25 / 0
    decreasing from early to late (as lexicality follows the level in real task lists)."""
    layer = n_layer // 2
    return _spec(n_layer, [PlantedProperty("early", "early", layer, lexical=0.5),
                           PlantedProperty("middle", "middle", layer, lexical=0.25),
                           PlantedProperty("late", "late", layer, lexical=0.0)], **sizes)


# name → (spec builder, whether early < middle < late holds in depth)
SCENARIOS: dict[str, tuple[Callable[..., PlantedHierarchy], bool]] = {
    "ordered": (ordered, True),
    "reversed": (reversed_, False),
    "flat": (flat, False),
}
