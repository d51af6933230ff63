"""The results of a probing run as typed objects, and their JSON form (results.json).

    results = probes.probe(...)                      # ProbeResults
    results.models[0].tasks["upos"].layers[3].score  # test accuracy at layer 3
    results.to_dict()                                # what results.json holds
    ProbeResults.from_dict(data)                     # checked: ValueError naming the bad field

``ProbeResults`` → ``ModelResult`` per model (the main model, its random-init twin, compared
models) → ``TaskResult`` per task → ``LayerScore`` per layer 0..n_layer, with its interval
(``Interval``), control task and selectivity (``ControlScore``), MDL codelength (``MDLScore``)
and subset scores (``GroupScore``); per task also the baseline, the cumulative scores and the
expected layer; per model the hierarchy ``Verdict`` and, when erasure was run, the
``ErasureResult`` (per concept and layer: behaviour after erasure against a random subspace of
equal rank). ``to_dict`` writes the keys documented in docs/probes.md (schema ``SCHEMA``);
``from_dict`` reads them back (``SCHEMA`` or an older one of ``READABLE_SCHEMAS``) and refuses
another schema, a missing field, a mistyped one, or a number that is NaN, infinite or outside
its range (a score outside [0, 1], a layer outside the model, a negative count).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

from hooks.fingerprint import fingerprint_diff
from probes.config import EXECUTION_SETTINGS, ProbeConfig
from probes.depth import EXPECTED_KINDS, verdict_status

SCHEMA = "stratascope.probes/3"
SCHEMA_V1 = "stratascope.probes/1"  # no erasure, no MDL expected layer
SCHEMA_V2 = "stratascope.probes/2"  # one fit (no refits), the control on its own λ, peak chosen on test
READABLE_SCHEMAS = (SCHEMA_V1, SCHEMA_V2, SCHEMA)
ROLES = ("model", "random_init", "compare", "seed")  # seed: another training seed of the main model

_NUM = (int, float)
_OPT_NUM = (int, float, type(None))
_OPT_STR = (str, type(None))
_OPT_INT = (int, type(None))


# ----------------------------------------------------------------------------- reading JSON
class _Fields:
    """A JSON object being read, with its place in the file for error messages."""

    def __init__(self, data: Any, where: str):
        if not isinstance(data, dict):
            raise ValueError(f"{where}: expected an object, got {type(data).__name__}")
        self.data, self.where = data, where

    def has(self, key: str) -> bool:
        return key in self.data

    def at(self, key: str) -> str:
        """Where the field ``key`` is: ``where.key`` (or ``where['odd key']``)."""
        return f"{self.where}.{key}" if key.isidentifier() else f"{self.where}[{key!r}]"

    def get(self, key: str, typ: type | tuple[type, ...], *, required: bool = True, default: Any = None,
            lo: float | None = None, hi: float | None = None) -> Any:
        """The field ``key`` of type ``typ``; a number must be finite, of a plausible size and,
        with ``lo``/``hi``, in [lo, hi] (``_check_number``)."""
        if key not in self.data:
            if required:
                raise ValueError(f"{self.where}: missing field {key!r}")
            return default
        value = self.data[key]
        types = typ if isinstance(typ, tuple) else (typ,)
        if isinstance(value, bool) and bool not in types:
            raise ValueError(f"{self.at(key)}: expected {_type_name(types)}, got a boolean")
        if not isinstance(value, types):
            raise ValueError(f"{self.at(key)}: expected {_type_name(types)}, got {type(value).__name__}")
        _check_number(value, self.at(key), lo, hi)
        return value

    def sub(self, key: str) -> "_Fields":
        return _Fields(self.get(key, dict), self.at(key))

    def interval(self, key: str, lo: float | None = None, hi: float | None = None) -> "Interval":
        return Interval.from_list(self.get(key, list), self.at(key), lo, hi)

    def numbers(self, key: str, typ: type | tuple[type, ...] = (int, float), *, lo: float | None = None,
                hi: float | None = None, required: bool = True, default: Any = None) -> Any:
        """An object of numbers (counts per split, seconds per stage), each checked as ``get`` does."""
        if key not in self.data and not required:
            return default
        sub = self.sub(key)
        for name in sub.data:
            sub.get(name, typ, lo=lo, hi=hi)
        return sub.data


# What a run can write: no number in results.json is larger (scores, layers, bits, seconds, counts);
# a larger one, like NaN or ±inf (written as null), is a damaged or hand-edited file.
_MAX_FLOAT = 1e15
_MAX_INT = 2 ** 64  # seeds included
_TOL = 1e-9  # rounding at the ends of a range (a correlation of 1.0000000000000002)
UNIT = (0.0, 1.0)  # accuracies, probabilities, fractions of resamples
SIGNED_UNIT = (-1.0, 1.0)  # differences of accuracies, correlations
AT_LEAST_0 = (0, None)  # counts, seconds, codelengths, λ


def _check_number(value: Any, where: str, lo: float | None = None, hi: float | None = None) -> None:
    """ValueError naming ``where`` unless ``value`` (when a number) is finite, at most
    ``_MAX_FLOAT`` (``_MAX_INT`` for an integer) in size, and in [lo, hi]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where}: {_shown_number(value)} is not a finite number (an undefined value is null)")
    if (lo is not None and value < lo - _TOL) or (hi is not None and value > hi + _TOL):
        raise ValueError(f"{where}: {_shown_number(value)} is outside {_range_text(value, lo, hi)}")
    if abs(value) > (_MAX_INT if isinstance(value, int) else _MAX_FLOAT):
        raise ValueError(f"{where}: {_shown_number(value)} is not a plausible value (a damaged or edited file?)")


def _shown_number(value: int | float) -> str:
    if isinstance(value, int):
        return str(value) if abs(value) < 10 ** 15 else f"a {len(str(abs(value)))}-digit integer"
    return "NaN" if math.isnan(value) else f"{value:g}"


def _range_text(value: int | float, lo: float | None, hi: float | None) -> str:
    def end(x: float | None, inf: str) -> str:
        return inf if x is None else f"{x:g}"

    if isinstance(value, int) and lo is not None and hi is not None and float(lo).is_integer() \
            and float(hi).is_integer():
        return f"{lo:g}..{hi:g}"
    return f"{'(' if lo is None else '['}{end(lo, '-∞')}, {end(hi, '∞')}{')' if hi is None else ']'}"


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def _type_name(types: tuple[type, ...]) -> str:
    names = {int: "a number", float: "a number", str: "a string", list: "a list", dict: "an object",
             bool: "a boolean", type(None): "null"}
    return " or ".join(dict.fromkeys(names.get(t, t.__name__) for t in types))


def number(x: Any) -> float | None:
    """A score as results.json holds it: a float, or None (null) where undefined (NaN, ±inf)."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _put(out: dict[str, Any], key: str, value: Any) -> None:
    """Add an optional key (absent when None)."""
    if value is not None:
        out[key] = value


# ----------------------------------------------------------------------------- layer scores
class Interval(NamedTuple):
    """A percentile bootstrap interval; None where undefined. JSON: [low, high]."""

    low: float | None
    high: float | None

    @classmethod
    def of(cls, pair: Any) -> "Interval":
        """From a computed [low, high] (numpy), non-finite ends as None."""
        return cls(number(pair[0]), number(pair[1]))

    @classmethod
    def from_list(cls, value: Any, where: str, lo: float | None = None, hi: float | None = None) -> "Interval":
        """From JSON [low, high]: numbers (checked as ``_check_number``, in [lo, hi]) or null."""
        if not (isinstance(value, list) and len(value) == 2
                and all(isinstance(x, _OPT_NUM) and not isinstance(x, bool) for x in value)):
            raise ValueError(f"{where}: expected an interval [low, high], got {_short(value)}")
        for x in value:
            _check_number(x, where, lo, hi)
        return cls(value[0], value[1])

    def to_list(self) -> list[float | None]:
        return [self.low, self.high]


@dataclass
class ControlScore:
    """The Hewitt & Liang control task at one layer (categorical tasks)."""

    score: float | None
    ci: Interval
    selectivity: float | None  # task score − control score
    selectivity_ci: Interval
    lam: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"control": self.score, "control_ci": self.ci.to_list(), "selectivity": self.selectivity,
               "selectivity_ci": self.selectivity_ci.to_list()}
        _put(out, "control_lambda", self.lam)
        return out

    @classmethod
    def from_fields(cls, f: _Fields, score: tuple[float | None, float | None] = (None, None)) -> "ControlScore":
        """``score``: the range of the task's scores, the control's too; selectivity, their
        difference, lies within ± its width."""
        lo, hi = score
        width = None if lo is None or hi is None else hi - lo
        diff = (None, None) if width is None else (-width, width)
        return cls(f.get("control", _OPT_NUM, lo=lo, hi=hi), f.interval("control_ci", lo, hi),
                   f.get("selectivity", _OPT_NUM, lo=diff[0], hi=diff[1]), f.interval("selectivity_ci", *diff),
                   f.get("control_lambda", _OPT_NUM, required=False, lo=0))


@dataclass
class MDLScore:
    """Online codelength of the labels at one layer (categorical tasks), and of the control's."""

    codelength_bits: float
    uniform_bits: float
    compression: float | None
    control_codelength_bits: float | None = None
    control_compression: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"codelength_bits": self.codelength_bits, "uniform_bits": self.uniform_bits,
               "compression": self.compression}
        if self.control_codelength_bits is not None:
            out.update(control_codelength_bits=self.control_codelength_bits,
                       control_compression=self.control_compression)
        return out

    @classmethod
    def from_fields(cls, f: _Fields) -> "MDLScore":
        return cls(f.get("codelength_bits", _NUM, lo=0), f.get("uniform_bits", _NUM, lo=0),
                   f.get("compression", _OPT_NUM, lo=0),
                   f.get("control_codelength_bits", _OPT_NUM, required=False, lo=0),
                   f.get("control_compression", _OPT_NUM, required=False, lo=0))


@dataclass
class GroupScore:
    """The score on a subset of the test words (e.g. verbs with an attractor)."""

    score: float | None
    ci: Interval
    n: int

    def to_dict(self) -> dict[str, Any]:
        return {"score": self.score, "ci": self.ci.to_list(), "n": self.n}

    @classmethod
    def from_fields(cls, f: _Fields, score: tuple[float | None, float | None] = (None, None)) -> "GroupScore":
        return cls(f.get("score", _OPT_NUM, lo=score[0], hi=score[1]), f.interval("ci", *score),
                   f.get("n", int, lo=0))


@dataclass
class FixedLambdaScore:
    """Task and control probes at one λ for every layer (the λ the task chose most often):
    selectivity with the probe family's complexity held fixed across layers."""

    lam: float
    score: float | None
    control: float | None
    selectivity: float | None
    selectivity_ci: Interval

    def to_dict(self) -> dict[str, Any]:
        return {"lambda": self.lam, "score": self.score, "control": self.control, "selectivity": self.selectivity,
                "selectivity_ci": self.selectivity_ci.to_list()}

    @classmethod
    def from_fields(cls, f: _Fields) -> "FixedLambdaScore":
        return cls(f.get("lambda", _NUM, lo=0), f.get("score", _OPT_NUM, lo=UNIT[0], hi=UNIT[1]),
                   f.get("control", _OPT_NUM, lo=UNIT[0], hi=UNIT[1]),
                   f.get("selectivity", _OPT_NUM, lo=SIGNED_UNIT[0], hi=SIGNED_UNIT[1]),
                   f.interval("selectivity_ci", *SIGNED_UNIT))


@dataclass
class LayerScore:
    """One layer's probe: test score with its interval and the λ chosen on validation."""

    layer: int
    score: float | None
    ci: Interval
    lam: float
    control: ControlScore | None = None
    spearman: float | None = None  # ordinal tasks
    mdl: MDLScore | None = None
    groups: dict[str, GroupScore] | None = None
    val_score: float | None = None  # the validation score (mean over refits); None in older files
    fixed: FixedLambdaScore | None = None  # categorical tasks with a control

    @property
    def selectivity(self) -> float | None:
        return None if self.control is None else self.control.selectivity

    @property
    def selectivity_ci(self) -> Interval | None:
        return None if self.control is None else self.control.selectivity_ci

    def to_dict(self, *, ordinal: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"layer": self.layer, "score": self.score, "ci": self.ci.to_list(), "lambda": self.lam}
        if self.control is not None:
            out.update(self.control.to_dict())
        if ordinal:
            out["spearman"] = self.spearman
        if self.mdl is not None:
            out["mdl"] = self.mdl.to_dict()
        if self.groups is not None:
            out["groups"] = {name: g.to_dict() for name, g in self.groups.items()}
        _put(out, "val_score", self.val_score)
        if self.fixed is not None:
            out["fixed_lambda"] = self.fixed.to_dict()
        return out

    @classmethod
    def from_fields(cls, f: _Fields, n_layer: int | None = None,
                    score: tuple[float | None, float | None] = (None, None)) -> "LayerScore":
        """``n_layer``: the model's blocks (layers 0..n_layer); ``score``: the range of the
        task's metric (``_score_range``)."""
        groups = None
        if f.has("groups"):
            g = f.sub("groups")
            groups = {name: GroupScore.from_fields(g.sub(name), score) for name in g.data}
        return cls(f.get("layer", int, lo=0, hi=n_layer), f.get("score", _OPT_NUM, lo=score[0], hi=score[1]),
                   f.interval("ci", *score), f.get("lambda", _NUM, lo=0),
                   ControlScore.from_fields(f, score) if f.has("control") else None,
                   f.get("spearman", _OPT_NUM, required=False, lo=SIGNED_UNIT[0], hi=SIGNED_UNIT[1]),
                   MDLScore.from_fields(f.sub("mdl")) if f.has("mdl") else None, groups,
                   f.get("val_score", _OPT_NUM, required=False, lo=score[0], hi=score[1]),
                   FixedLambdaScore.from_fields(f.sub("fixed_lambda")) if f.has("fixed_lambda") else None)


def _score_range(metric: str) -> tuple[float | None, float | None]:
    """Where a task's scores lie: accuracy in [0, 1], R² at most 1."""
    return {"accuracy": UNIT, "r2": (None, 1.0)}.get(metric, (None, None))


# ----------------------------------------------------------------------------- task results
@dataclass(frozen=True)
class TaskInfo:
    """A task as results.json records it."""

    name: str
    level: str
    kind: str
    description: str
    control: bool = True  # False: probed without a control task (its label is the word type; probes.tasks.Task)

    @property
    def categorical(self) -> bool:
        return self.kind == "categorical"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "level": self.level, "kind": self.kind, "description": self.description,
                "control": self.control}

    @classmethod
    def from_fields(cls, f: _Fields) -> "TaskInfo":
        return cls(f.get("name", str), f.get("level", str), f.get("kind", str), f.get("description", str),
                   f.get("control", bool, required=False, default=True))


@dataclass
class Baseline:
    """What a probe that sees nothing scores: the majority class, or the training mean (R²)."""

    name: str  # "majority" | "train mean"
    score: float | None
    ci: Interval
    label: str | None = None  # the majority class

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        _put(out, "class", self.label)
        out.update(score=self.score, ci=self.ci.to_list())
        return out

    @classmethod
    def from_fields(cls, f: _Fields, score: tuple[float | None, float | None] = (None, None)) -> "Baseline":
        return cls(f.get("name", str), f.get("score", _OPT_NUM, lo=score[0], hi=score[1]), f.interval("ci", *score),
                   f.get("class", _OPT_STR, required=False))


@dataclass
class CumulativeScore:
    """The test score of the probe on layers 0..layer side by side."""

    layer: int
    score: float | None
    ci: Interval

    def to_dict(self) -> dict[str, Any]:
        return {"layer": self.layer, "score": self.score, "ci": self.ci.to_list()}

    @classmethod
    def from_fields(cls, f: _Fields, n_layer: int | None = None,
                    score: tuple[float | None, float | None] = (None, None)) -> "CumulativeScore":
        return cls(f.get("layer", int, lo=0, hi=n_layer), f.get("score", _OPT_NUM, lo=score[0], hi=score[1]),
                   f.interval("ci", *score))


@dataclass
class CumulativeFeatures:
    """What the cumulative probes saw: ``per_layer`` features of each layer (PCA-``reduced`` or
    all of them), and the one λ of the logistic ones."""

    per_layer: int
    reduced: bool
    lam: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"per_layer": self.per_layer, "reduced": self.reduced}
        _put(out, "lambda", self.lam)
        return out

    @classmethod
    def from_fields(cls, f: _Fields) -> "CumulativeFeatures":
        return cls(f.get("per_layer", int, lo=0), f.get("reduced", bool),
                   f.get("lambda", _OPT_NUM, required=False, lo=0))


@dataclass
class ExpectedLayer:
    """The three expected layers (probes.depth), absolute and relative to depth: anchored and
    Tenney's from the cumulative scores, MDL's from the online codes (None where a task has no
    cumulative probes / no MDL code, or the value is undefined)."""

    anchored: float | None
    anchored_ci: Interval
    tenney: float | None
    tenney_ci: Interval
    relative: float | None = None
    tenney_relative: float | None = None
    mdl: float | None = None
    mdl_ci: Interval = Interval(None, None)
    mdl_relative: float | None = None
    # the depth axis (the default verdict's): MDL's value for categorical tasks, Tenney's for
    # ordinal ones, None unless the post-embedding gain's interval excludes 0; absent in older files
    depth: float | None = None
    depth_ci: Interval = Interval(None, None)
    depth_relative: float | None = None
    depth_source: str | None = None  # "mdl" | "tenney"
    gain: Measurement | None = None  # the post-embedding gain behind ``depth`` (bits, or score points)
    gain_unit: str | None = None  # "bits" | "accuracy" | "r2"

    def to_dict(self) -> dict[str, Any]:
        out = {"anchored": self.anchored, "anchored_ci": self.anchored_ci.to_list(), "tenney": self.tenney,
               "tenney_ci": self.tenney_ci.to_list(), "relative": self.relative,
               "tenney_relative": self.tenney_relative, "mdl": self.mdl, "mdl_ci": self.mdl_ci.to_list(),
               "mdl_relative": self.mdl_relative}
        if self.depth_source is not None:
            out.update(depth=self.depth, depth_ci=self.depth_ci.to_list(), depth_relative=self.depth_relative,
                       depth_source=self.depth_source, gain=self.gain.to_dict() if self.gain else None,
                       gain_unit=self.gain_unit)
        return out

    @classmethod
    def from_fields(cls, f: _Fields, n_layer: int | None = None) -> "ExpectedLayer":
        """Anchored and MDL values lie in [0, n_layer] (relative: [0, 1]); Tenney's may not."""
        depth = (0, n_layer)
        return cls(f.get("anchored", _OPT_NUM, lo=0, hi=n_layer), f.interval("anchored_ci", *depth),
                   f.get("tenney", _OPT_NUM), f.interval("tenney_ci"),
                   f.get("relative", _OPT_NUM, required=False, lo=UNIT[0], hi=UNIT[1]),
                   f.get("tenney_relative", _OPT_NUM, required=False),
                   f.get("mdl", _OPT_NUM, required=False, lo=0, hi=n_layer),
                   f.interval("mdl_ci", *depth) if f.has("mdl_ci") else Interval(None, None),
                   f.get("mdl_relative", _OPT_NUM, required=False, lo=UNIT[0], hi=UNIT[1]),
                   f.get("depth", _OPT_NUM, required=False, lo=0, hi=n_layer),
                   f.interval("depth_ci", *depth) if f.has("depth_ci") else Interval(None, None),
                   f.get("depth_relative", _OPT_NUM, required=False, lo=UNIT[0], hi=UNIT[1]),
                   f.get("depth_source", _OPT_STR, required=False),
                   _measurement(f, "gain", nullable=True) if f.has("gain") else None,
                   f.get("gain_unit", _OPT_STR, required=False))

    def get(self, kind: str) -> float | None:
        """The expected layer of ``kind`` ("depth", "anchored", "tenney" or "mdl")."""
        return {"depth": self.depth, "anchored": self.anchored, "tenney": self.tenney, "mdl": self.mdl}[kind]


@dataclass
class TaskResult:
    """One task on one model: a score per layer with its controls, or the reason it was skipped."""

    info: TaskInfo
    metric: str  # "accuracy" | "r2"
    n_words: dict[str, int]  # train / val / test
    n_classes: int | None = None
    classes: list[str] | None = None
    skipped: str | None = None
    baseline: Baseline | None = None
    layers: list[LayerScore] = field(default_factory=list)
    peak_layer: int = 0
    peak_score: float | None = None
    layer0_score: float | None = None
    lexical: bool = False
    cumulative: list[CumulativeScore] | None = None
    cumulative_features: CumulativeFeatures | None = None
    expected_layer: ExpectedLayer | None = None
    lexical_share: Measurement | None = None  # (S₀ − base) / (S_peak − base), test scores; older files: None
    curves: LambdaCurves | None = None  # test score against λ (task; control at one layer)
    refits: int = 1  # fits behind every number (probes.suite)
    fit_s: float | None = None
    stages_s: dict[str, float] | None = None  # fit_s by stage: fit, control, mdl, mdl_control, cumulative, score

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def peak(self) -> LayerScore:
        return self.layers[self.peak_layer]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {**self.info.to_dict(), "metric": self.metric, "n_words": dict(self.n_words)}
        if self.n_classes is not None:
            out.update(n_classes=self.n_classes, classes=list(self.classes or []))
        if self.skipped is not None:
            out["skipped"] = self.skipped
        else:
            ordinal = not self.info.categorical
            out.update(baseline=self.baseline.to_dict() if self.baseline else None,
                       layers=[x.to_dict(ordinal=ordinal) for x in self.layers], peak_layer=self.peak_layer,
                       peak_score=self.peak_score, layer0_score=self.layer0_score, lexical=self.lexical)
            if self.cumulative is not None:
                out["cumulative"] = [c.to_dict() for c in self.cumulative]
                out["cumulative_features"] = self.cumulative_features.to_dict() if self.cumulative_features else None
            out["expected_layer"] = self.expected_layer.to_dict() if self.expected_layer else {}
            if self.lexical_share is not None:
                out["lexical_share"] = self.lexical_share.to_dict()
            if self.curves is not None:
                out["curves"] = self.curves.to_dict()
            out["refits"] = self.refits
        _put(out, "fit_s", self.fit_s)
        if self.stages_s:
            out["stages_s"] = dict(self.stages_s)
        return out

    @classmethod
    def from_fields(cls, f: _Fields, n_layer: int) -> "TaskResult":
        head = dict(info=TaskInfo.from_fields(f), metric=f.get("metric", str, required=False, default=""),
                    n_words=f.numbers("n_words", int, lo=0, required=False, default={}),
                    n_classes=f.get("n_classes", _OPT_INT, required=False, lo=0),
                    classes=f.get("classes", list, required=False),
                    fit_s=f.get("fit_s", _OPT_NUM, required=False, lo=0), stages_s=_stage_times(f))
        skipped = f.get("skipped", _OPT_STR, required=False)
        if skipped:
            return cls(**head, skipped=skipped)
        head["metric"] = f.get("metric", str)
        head["n_words"] = f.numbers("n_words", int, lo=0)
        score = _score_range(head["metric"])
        layers = [LayerScore.from_fields(_Fields(x, f"{f.at('layers')}[{k}]"), n_layer, score) for k, x in
                  enumerate(f.get("layers", list))]
        if len(layers) != n_layer + 1:
            raise ValueError(f"{f.at('layers')}: {len(layers)} entries for {n_layer} layers + embeddings")
        cumulative, features = None, None
        if f.has("cumulative"):
            cumulative = [CumulativeScore.from_fields(_Fields(x, f"{f.at('cumulative')}[{k}]"), n_layer, score)
                          for k, x in enumerate(f.get("cumulative", list))]
            if len(cumulative) != n_layer + 1:
                raise ValueError(f"{f.at('cumulative')}: wrong length")
            features = CumulativeFeatures.from_fields(f.sub("cumulative_features"))
        expected = f.sub("expected_layer")
        return cls(**head, baseline=Baseline.from_fields(f.sub("baseline"), score), layers=layers,
                   peak_layer=f.get("peak_layer", int, lo=0, hi=n_layer),
                   peak_score=f.get("peak_score", _OPT_NUM, lo=score[0], hi=score[1]),
                   layer0_score=f.get("layer0_score", _OPT_NUM, lo=score[0], hi=score[1]),
                   lexical=f.get("lexical", bool), cumulative=cumulative, cumulative_features=features,
                   expected_layer=ExpectedLayer.from_fields(expected, n_layer) if expected.data or cumulative
                   else None,
                   lexical_share=_measurement(f, "lexical_share") if f.has("lexical_share") else None,
                   curves=LambdaCurves.from_fields(f.sub("curves"), n_layer, score) if f.has("curves") else None,
                   refits=f.get("refits", int, required=False, default=1, lo=1))


@dataclass
class LambdaCurves:
    """Test score against the probe's L2 strength λ (Pimentel et al. 2020): the task's at every
    layer (``task[layer][g]``, None where the λ path stopped before λ_g), the control task's at
    ``layer`` (categorical tasks with a control). From the first fit."""

    lambdas: list[float]  # strong → weak
    task: list[list[float | None]]
    layer: int | None = None
    control: list[float | None] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"lambdas": list(self.lambdas), "task": [list(x) for x in self.task], "layer": self.layer,
                "control": None if self.control is None else list(self.control)}

    @classmethod
    def from_fields(cls, f: _Fields, n_layer: int, score: tuple[float | None, float | None]) -> "LambdaCurves":
        lambdas = f.get("lambdas", list)
        for k, x in enumerate(lambdas):
            _check_number(x, f"{f.at('lambdas')}[{k}]", 0, None)
        task = f.get("task", list)
        if len(task) != n_layer + 1 or any(not isinstance(row, list) or len(row) != len(lambdas) for row in task):
            raise ValueError(f"{f.at('task')}: expected {n_layer + 1} rows of {len(lambdas)} scores")
        for row in task:
            for x in row:
                if x is not None:
                    _check_number(x, f.at("task"), *score)
        control = f.get("control", (list, type(None)), required=False)
        if control is not None:
            if len(control) != len(lambdas):
                raise ValueError(f"{f.at('control')}: expected {len(lambdas)} scores")
            for x in control:
                if x is not None:
                    _check_number(x, f.at("control"), *score)
        return cls(lambdas, task, f.get("layer", _OPT_INT, required=False, lo=0, hi=n_layer), control)


# ----------------------------------------------------------------------------- verdict
@dataclass
class LevelMean:
    """The mean expected layer of one level's tasks."""

    mean: float | None
    ci: Interval
    tasks: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "ci": self.ci.to_list(), "tasks": list(self.tasks)}

    @classmethod
    def from_fields(cls, f: _Fields, depth: tuple[float | None, float | None] = (None, None)) -> "LevelMean":
        """``depth``: the range of the expected layers averaged (see ``Verdict.from_dict``)."""
        return cls(f.get("mean", _OPT_NUM, lo=depth[0], hi=depth[1]), f.interval("ci", *depth),
                   f.get("tasks", list))


@dataclass
class PairOrder:
    """How often level ``lower`` comes before level ``upper`` across the resamples."""

    lower: str
    upper: str
    p_in_order: float
    difference: float | None
    difference_ci: Interval
    ok: bool

    def to_dict(self) -> dict[str, Any]:
        return {"lower": self.lower, "upper": self.upper, "p_in_order": self.p_in_order,
                "difference": self.difference, "difference_ci": self.difference_ci.to_list(), "ok": self.ok}

    @classmethod
    def from_fields(cls, f: _Fields, depth: tuple[float | None, float | None] = (None, None)) -> "PairOrder":
        """``depth`` as for LevelMean: a difference of two level means lies within ± its width."""
        diff = (None, None) if None in depth else (depth[0] - depth[1], depth[1] - depth[0])
        return cls(f.get("lower", str), f.get("upper", str), f.get("p_in_order", _NUM, lo=UNIT[0], hi=UNIT[1]),
                   f.get("difference", _OPT_NUM, lo=diff[0], hi=diff[1]), f.interval("difference_ci", *diff),
                   f.get("ok", bool))


@dataclass
class Verdict:
    """The early < middle < late verdict of one model (``probes.depth.hierarchy_verdict``)."""

    holds: bool | None  # None: a level has no task with a defined expected layer
    message: str
    threshold: float
    expected: str  # which expected layer it used: "anchored" | "tenney" | "mdl"
    levels: dict[str, LevelMean] = field(default_factory=dict)
    pairs: list[PairOrder] = field(default_factory=list)
    failing: list[PairOrder] = field(default_factory=list)
    p_order: float | None = None
    left_out: list[str] = field(default_factory=list)  # fitted tasks without that expected layer (mdl: ordinal)
    compared: list[str] = field(default_factory=list)  # the levels compared (older files: empty)
    uninformative: list[str] = field(default_factory=list)  # levels without a task with a defined value
    undefined: list[str] = field(default_factory=list)  # tasks whose value is undefined (left out of their level)
    n_seeds: int | None = None  # the verdict across seeds: how many

    @property
    def status(self) -> str:
        """"holds", "does not hold" or "incomplete"."""
        return verdict_status(self.holds)

    def to_dict(self) -> dict[str, Any]:
        out = {"threshold": self.threshold, "levels": {lv: x.to_dict() for lv, x in self.levels.items()},
               "pairs": [p.to_dict() for p in self.pairs], "failing": [p.to_dict() for p in self.failing],
               "holds": self.holds, "p_order": self.p_order, "message": self.message, "expected": self.expected}
        if self.left_out:
            out["left_out"] = list(self.left_out)
        out.update(compared=list(self.compared), uninformative=list(self.uninformative),
                   undefined=list(self.undefined))
        _put(out, "n_seeds", self.n_seeds)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "verdict", n_layer: int | None = None) -> "Verdict":
        """With ``n_layer``, level means of anchored or MDL expected layers must lie in [0, n_layer]."""
        f = _Fields(data, where)
        expected = f.get("expected", str)
        depth = (0, n_layer) if n_layer is not None and expected in ("anchored", "mdl", "depth") else (None, None)
        levels = f.sub("levels")
        pairs = [PairOrder.from_fields(_Fields(p, f"{f.at('pairs')}[{k}]"), depth)
                 for k, p in enumerate(f.get("pairs", list))]
        failing = [PairOrder.from_fields(_Fields(p, f"{f.at('failing')}[{k}]"), depth)
                   for k, p in enumerate(f.get("failing", list))]
        return cls(f.get("holds", (bool, type(None))), f.get("message", str),
                   f.get("threshold", _NUM), expected,
                   {lv: LevelMean.from_fields(levels.sub(lv), depth) for lv in levels.data},
                   pairs, failing, f.get("p_order", _OPT_NUM, required=False, lo=UNIT[0], hi=UNIT[1]),
                   list(f.get("left_out", list, required=False, default=[])),
                   list(f.get("compared", list, required=False, default=[])),
                   list(f.get("uninformative", list, required=False, default=[])),
                   list(f.get("undefined", list, required=False, default=[])),
                   f.get("n_seeds", _OPT_INT, required=False, lo=1))


# ----------------------------------------------------------------------------- erasure
@dataclass
class Measurement:
    """A measured value with its sentence-bootstrap interval; members None where undefined.
    JSON: {"value", "ci": [low, high]}."""

    value: float | None
    ci: Interval

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "ci": self.ci.to_list()}

    @classmethod
    def from_fields(cls, f: _Fields, lo: float | None = None, hi: float | None = None) -> "Measurement":
        return cls(f.get("value", _OPT_NUM, lo=lo, hi=hi), f.interval("ci", lo, hi))


def _measurement(f: _Fields, key: str, *, nullable: bool = False,
                 bounds: tuple[float | None, float | None] = (None, None)) -> Measurement | None:
    """The measurement at ``key`` (value and interval in ``bounds``); None where ``nullable``
    and the field is null."""
    if nullable and f.get(key, (dict, type(None))) is None:
        return None
    return Measurement.from_fields(f.sub(key), *bounds)


def _opt_dict(m: Measurement | None) -> dict[str, Any] | None:
    return None if m is None else m.to_dict()


@dataclass
class CleanScores:
    """The unerased model on the held-out data erasure is measured on: attractor agreement on
    minimal pairs and mean next-token loss (nats/token), each None when nothing could be measured
    (no minimal pairs, no tokens)."""

    agreement: Measurement | None
    n_pairs: int | None
    loss: Measurement | None
    n_tokens: int | None

    def to_dict(self) -> dict[str, Any]:
        agreement = None if self.agreement is None else {**self.agreement.to_dict(), "n_pairs": self.n_pairs}
        loss = None if self.loss is None else {**self.loss.to_dict(), "n_tokens": self.n_tokens}
        return {"agreement": agreement, "loss": loss}

    @classmethod
    def from_fields(cls, f: _Fields) -> "CleanScores":
        agreement = _measurement(f, "agreement", nullable=True, bounds=UNIT)
        loss = _measurement(f, "loss", nullable=True, bounds=AT_LEAST_0)
        return cls(agreement, None if agreement is None else f.sub("agreement").get("n_pairs", int, lo=0),
                   loss, None if loss is None else f.sub("loss").get("n_tokens", int, lo=0))


@dataclass
class ErasureScores:
    """The behaviour after an erasure: attractor agreement (None without minimal pairs), loss
    after erasure minus the clean loss (nats/token), and a fresh probe's accuracy on the erased
    features (the eraser works when it falls to the majority baseline)."""

    agreement: Measurement | None
    loss_delta: Measurement
    probe_accuracy: Measurement

    def to_dict(self) -> dict[str, Any]:
        return {"agreement": _opt_dict(self.agreement), "loss_delta": self.loss_delta.to_dict(),
                "probe_accuracy": self.probe_accuracy.to_dict()}

    @classmethod
    def from_fields(cls, f: _Fields) -> "ErasureScores":
        return cls(_measurement(f, "agreement", nullable=True, bounds=UNIT), _measurement(f, "loss_delta"),
                   _measurement(f, "probe_accuracy", bounds=UNIT))


@dataclass
class ErasureLayer:
    """Erasure at one layer (0 = embeddings): the concept's subspace (``erased``) and the
    control, a random subspace of the same rank (``random``: means over the draws, intervals
    over sentence resamples of that mean)."""

    layer: int
    erased: ErasureScores
    random: ErasureScores

    def to_dict(self) -> dict[str, Any]:
        return {"layer": self.layer, **self.erased.to_dict(), "random": self.random.to_dict()}

    @classmethod
    def from_fields(cls, f: _Fields) -> "ErasureLayer":
        return cls(f.get("layer", int), ErasureScores.from_fields(f), ErasureScores.from_fields(f.sub("random")))


@dataclass
class ConceptErasure:
    """One concept (a categorical task) erased at every layer: the rank of the erased subspace,
    the concept's majority-class accuracy, the one-line reading and a result per layer."""

    task: str
    n_classes: int
    rank: int
    majority: float | None
    reading: str
    layers: list[ErasureLayer]

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "n_classes": self.n_classes, "rank": self.rank, "majority": self.majority,
                "reading": self.reading, "layers": [x.to_dict() for x in self.layers]}

    @classmethod
    def from_fields(cls, f: _Fields, n_layer: int | None = None) -> "ConceptErasure":
        layers = [ErasureLayer.from_fields(_Fields(x, f"{f.at('layers')}[{k}]"))
                  for k, x in enumerate(f.get("layers", list))]
        numbers = [x.layer for x in layers]
        top = n_layer if n_layer is not None else max(numbers, default=0)
        if not layers or numbers != sorted(set(numbers)) or numbers[0] < 0 or numbers[-1] > top:
            raise ValueError(f"{f.at('layers')}: layers {numbers} are not increasing layers of 0..{top}")
        return cls(f.get("task", str), f.get("n_classes", int, lo=0), f.get("rank", int, lo=0),
                   f.get("majority", _OPT_NUM, lo=UNIT[0], hi=UNIT[1]), f.get("reading", str), layers)


@dataclass
class ErasureResult:
    """Causal erasure on one model (``probes.erase``): per concept and layer, the behaviour after
    erasing the concept (LEACE or INLP) against a random subspace of equal rank, beside the
    clean model's numbers on the same data."""

    method: str  # "leace" | "inlp"
    site: str  # "resid": layer 0 = embeddings, layer l >= 1 = after block l-1
    n_random: int
    n_bootstrap: int
    seed: int
    clean: CleanScores
    concepts: dict[str, ConceptErasure]
    timing_s: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "site": self.site, "n_random": self.n_random,
                "n_bootstrap": self.n_bootstrap, "seed": self.seed, "clean": self.clean.to_dict(),
                "concepts": {name: c.to_dict() for name, c in self.concepts.items()},
                "timing_s": dict(self.timing_s)}

    @classmethod
    def from_dict(cls, data: Any, where: str = "erasure", n_layer: int | None = None) -> "ErasureResult":
        """Read and check the dict; with ``n_layer``, layers must lie in 0..n_layer."""
        f = _Fields(data, where)
        concepts = f.sub("concepts")
        timing = f.numbers("timing_s", _NUM, lo=0)
        return cls(f.get("method", str), f.get("site", str), f.get("n_random", int, lo=0),
                   f.get("n_bootstrap", int, lo=0), f.get("seed", int), CleanScores.from_fields(f.sub("clean")),
                   {name: ConceptErasure.from_fields(concepts.sub(name), n_layer) for name in concepts.data},
                   dict(timing))


def _stage_times(f: _Fields) -> dict[str, float] | None:
    if "stages_s" not in f.data:
        return None
    stages = f.sub("stages_s")
    return {key: float(stages.get(key, _NUM, lo=0)) for key in stages.data}


# ----------------------------------------------------------------------------- models
@dataclass
class ModelFit:
    """What ``ProbeSuite.fit`` finds on one model's activations."""

    n_layer: int
    d_model: int
    tasks: dict[str, TaskResult]
    verdict: Verdict
    timing_s: dict[str, float]
    verdicts: dict[str, Verdict] = field(default_factory=dict)  # by definition; ``verdict`` is one of them
    # per definition: each task's expected layer and its resamples [B] (not in results.json; for
    # the verdict across seeds, probes.depth.seed_verdict)
    samples: dict[str, tuple[dict[str, float], dict[str, Any]]] = field(default_factory=dict, repr=False,
                                                                        compare=False)


@dataclass
class ModelResult:
    """One probed model: who it is (``tag``, ``role``, ``spec``, hooks' ``info``), its fit and,
    when erasure was run, its ``erasure``."""

    tag: str
    role: str  # one of ROLES
    spec: str | None
    info: dict[str, Any]
    fit: ModelFit
    erasure: ErasureResult | None = None
    fingerprint: dict[str, str] | None = None  # hooks.fingerprint: weights and tokenizer; None in older files

    @property
    def n_layer(self) -> int:
        return self.fit.n_layer

    @property
    def d_model(self) -> int:
        return self.fit.d_model

    @property
    def tasks(self) -> dict[str, TaskResult]:
        return self.fit.tasks

    @property
    def verdict(self) -> Verdict:
        return self.fit.verdict

    @property
    def verdicts(self) -> dict[str, Verdict]:
        """The verdict under every expected-layer definition the run had (``probes.depth.EXPECTED_KINDS``:
        anchored and tenney with cumulative probes, mdl with MDL codes), by name; ``verdict`` is
        the one of ``verdict.expected``. Empty for files written before it existed."""
        return self.fit.verdicts

    @property
    def timing_s(self) -> dict[str, float]:
        return self.fit.timing_s

    def to_dict(self) -> dict[str, Any]:
        out = {"tag": self.tag, "role": self.role, "spec": self.spec, "info": self.info, "n_layer": self.n_layer,
               "d_model": self.d_model, "tasks": {name: t.to_dict() for name, t in self.tasks.items()},
               "verdict": self.verdict.to_dict()}
        if self.verdicts:
            out["verdicts"] = {kind: v.to_dict() for kind, v in self.verdicts.items()}
        out["timing_s"] = dict(self.timing_s)
        _put(out, "fingerprint", self.fingerprint)
        _put(out, "erasure", None if self.erasure is None else self.erasure.to_dict())
        return out

    @classmethod
    def from_dict(cls, data: Any, where: str, task_names: list[str]) -> "ModelResult":
        f = _Fields(data, where)
        role = f.get("role", str)
        if role not in ROLES:
            raise ValueError(f"{f.at('role')}: one of {ROLES}, got {role!r}")
        n_layer = f.get("n_layer", int, lo=0)
        tasks_f = f.sub("tasks")
        tasks = {}
        for name in task_names:
            if name not in tasks_f.data:
                raise ValueError(f"{tasks_f.where}: missing task {name!r}")
            tasks[name] = TaskResult.from_fields(tasks_f.sub(name), n_layer)
        verdict = Verdict.from_dict(f.get("verdict", dict), f.at("verdict"), n_layer)
        fit = ModelFit(n_layer, f.get("d_model", int, lo=1), tasks, verdict, f.numbers("timing_s", _NUM, lo=0),
                       _verdicts(f, verdict, n_layer))
        erasure = f.get("erasure", (dict, type(None)), required=False)
        if erasure is not None:
            erasure = ErasureResult.from_dict(erasure, f.at("erasure"), n_layer)
        fingerprint = f.get("fingerprint", (dict, type(None)), required=False)
        if fingerprint is not None and not all(isinstance(v, str) for v in fingerprint.values()):
            raise ValueError(f"{f.at('fingerprint')}: an object of strings, got {fingerprint!r}")
        return cls(f.get("tag", str), role, f.get("spec", _OPT_STR, required=False), f.get("info", dict), fit,
                   erasure, fingerprint)


def _verdicts(f: _Fields, verdict: Verdict, n_layer: int | None = None) -> dict[str, Verdict]:
    """A model's optional "verdicts": one per definition, each saying it is that definition's,
    the one of the main ``verdict`` equal to it."""
    if not f.has("verdicts"):
        return {}
    by_kind = f.sub("verdicts")
    out = {}
    for kind in by_kind.data:
        where = by_kind.at(kind)
        if kind not in EXPECTED_KINDS:
            raise ValueError(f"{where}: not an expected-layer definition (one of {', '.join(EXPECTED_KINDS)})")
        raw = by_kind.get(kind, dict)
        if isinstance(raw.get("expected"), str) and raw["expected"] != kind:  # before its values' ranges
            raise ValueError(f"{where}.expected: {raw['expected']!r} under the key {kind!r}")
        out[kind] = Verdict.from_dict(raw, where, n_layer)
    same = verdict.expected not in out or json.dumps(out[verdict.expected].to_dict()) == json.dumps(verdict.to_dict())
    if not same:  # compared as JSON writes them: NaN reads equal to NaN
        raise ValueError(f"{by_kind.at(verdict.expected)}: differs from the verdict it names ({f.at('verdict')})")
    return out


@dataclass
class ComparisonEntry:
    """One model's line for one task in the side-by-side comparison."""

    role: str
    n_layer: int
    peak_layer: int
    peak_score: float | None
    layer0_score: float | None
    selectivity_at_peak: float | None
    max_selectivity: float | None
    expected_layer: float | None  # anchored (lexical-weighted)
    expected_layer_tenney: float | None
    relative_expected_layer: float | None
    depth: float | None = None  # the depth axis; absent in older files
    relative_depth: float | None = None
    lexical_share: float | None = None

    @classmethod
    def of(cls, model: ModelResult, task: TaskResult) -> "ComparisonEntry":
        e = task.expected_layer
        selectivities = [x.selectivity for x in task.layers if x.selectivity is not None]
        return cls(model.role, model.n_layer, task.peak_layer, task.peak_score, task.layer0_score,
                   task.peak.selectivity, max(selectivities, default=None), e.anchored if e else None,
                   e.tenney if e else None, e.relative if e else None, e.depth if e else None,
                   e.depth_relative if e else None, task.lexical_share.value if task.lexical_share else None)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("depth", "relative_depth", "lexical_share"):
            if out[key] is None:
                del out[key]
        return out

    @classmethod
    def from_fields(cls, f: _Fields) -> "ComparisonEntry":
        n_layer = f.get("n_layer", int, lo=0)
        score = {"hi": 1.0}  # accuracy or R²
        selectivity = {"lo": SIGNED_UNIT[0], "hi": SIGNED_UNIT[1]}
        return cls(f.get("role", str), n_layer, f.get("peak_layer", int, lo=0, hi=n_layer),
                   f.get("peak_score", _OPT_NUM, **score), f.get("layer0_score", _OPT_NUM, **score),
                   f.get("selectivity_at_peak", _OPT_NUM, **selectivity),
                   f.get("max_selectivity", _OPT_NUM, **selectivity),
                   f.get("expected_layer", _OPT_NUM, lo=0, hi=n_layer), f.get("expected_layer_tenney", _OPT_NUM),
                   f.get("relative_expected_layer", _OPT_NUM, lo=UNIT[0], hi=UNIT[1]),
                   f.get("depth", _OPT_NUM, required=False, lo=0, hi=n_layer),
                   f.get("relative_depth", _OPT_NUM, required=False, lo=UNIT[0], hi=UNIT[1]),
                   f.get("lexical_share", _OPT_NUM, required=False))


def comparison_of(models: list[ModelResult]) -> dict[str, dict[str, ComparisonEntry]]:
    """Per task and model: peak layer and score, selectivity at the peak, expected layers."""
    out: dict[str, dict[str, ComparisonEntry]] = {}
    for m in models:
        for name, t in m.tasks.items():
            if t.skipped is None:
                out.setdefault(name, {})[m.tag] = ComparisonEntry.of(m, t)
    return out


# ----------------------------------------------------------------------------- data
@dataclass
class UnknownWords:
    """Words a word-level tokenizer reads as <unk> (``probes.models.unknown_words``)."""

    tokens: int
    words: int
    rate: float
    types: int
    top: list[tuple[str, int]]

    def to_dict(self) -> dict[str, Any]:
        return {"tokens": self.tokens, "words": self.words, "rate": self.rate, "types": self.types,
                "top": [[w, c] for w, c in self.top]}

    @classmethod
    def from_dict(cls, data: Any, where: str) -> "UnknownWords":
        f = _Fields(data, where)
        return cls(f.get("tokens", int, lo=0), f.get("words", int, lo=0), f.get("rate", _NUM, lo=UNIT[0], hi=UNIT[1]),
                   f.get("types", int, lo=0), [(w, c) for w, c in f.get("top", list)])


_DATA_KEYS = ("kind", "path", "max_sentences", "sha256", "n_sentences", "n_words", "split_sentences", "split_words",
              "n_skipped_too_long", "unknown_words")


@dataclass
class DataInfo:
    """Where the sentences came from and how they were split. ``extra``: any other keys the
    caller's ``data_info`` held."""

    n_sentences: int
    n_words: int
    split_sentences: dict[str, int]
    split_words: dict[str, int]
    n_skipped_too_long: int = 0
    kind: str | None = None  # "treebank" | "conllu"
    path: str | None = None
    max_sentences: int | None = None  # set when the data was cut to its first N sentences
    sha256: str | None = None  # hooks.fingerprint.file_fingerprint of the file at ``path`` when it was read
    unknown_words: dict[str, UnknownWords] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def source(self) -> dict[str, Any]:
        """kind, path, max_sentences and sha256 (as ``probes.load_data`` describes them), then ``extra``."""
        out: dict[str, Any] = {}
        _put(out, "kind", self.kind)
        _put(out, "path", self.path)
        _put(out, "max_sentences", self.max_sentences)
        _put(out, "sha256", self.sha256)
        return {**out, **self.extra}

    def to_dict(self) -> dict[str, Any]:
        return {**self.source(), "n_sentences": self.n_sentences, "n_words": self.n_words,
                "split_sentences": dict(self.split_sentences), "split_words": dict(self.split_words),
                "n_skipped_too_long": self.n_skipped_too_long,
                "unknown_words": {tag: u.to_dict() for tag, u in self.unknown_words.items()}}

    @classmethod
    def from_dict(cls, data: Any, where: str = "data") -> "DataInfo":
        f = _Fields(data, where)
        unknown = f.get("unknown_words", dict, required=False, default={})
        return cls(f.get("n_sentences", int), f.get("n_words", int), f.get("split_sentences", dict),
                   f.get("split_words", dict), f.get("n_skipped_too_long", int),
                   f.get("kind", _OPT_STR, required=False), f.get("path", _OPT_STR, required=False),
                   f.get("max_sentences", _OPT_INT, required=False), f.get("sha256", _OPT_STR, required=False),
                   {tag: UnknownWords.from_dict(u, f"{where}.unknown_words[{tag!r}]") for tag, u in unknown.items()},
                   {k: v for k, v in f.data.items() if k not in _DATA_KEYS})


# ----------------------------------------------------------------------------- the whole run
@dataclass
class ProbeResults:
    """Everything a probing run found (results.json)."""

    created: str
    version: str
    data: DataInfo
    config: ProbeConfig
    tasks: list[TaskInfo]
    models: list[ModelResult]
    comparison: dict[str, dict[str, ComparisonEntry]]
    torch_version: str | None = None
    schema: str = SCHEMA  # the schema it was read from; to_dict writes SCHEMA
    seeds: Verdict | None = None  # the verdict across the main model and its "seed" models (seed as the unit)

    @property
    def main(self) -> ModelResult:
        return self.models[0]

    @property
    def verdict(self) -> Verdict:
        """The main model's verdict."""
        return self.main.verdict

    def model(self, role: str) -> ModelResult | None:
        """The first model with this role (e.g. "random_init"), or None."""
        return next((m for m in self.models if m.role == role), None)

    def settings(self) -> dict[str, Any]:
        """What the run measured: tasks, data, configuration (not device or threads), models and
        erasure; two runs with equal settings give equal results."""
        erased = self.main.erasure
        erasure = None if erased is None else erasure_settings(list(erased.concepts), erased.method, erased.n_random)
        return run_settings([t.name for t in self.tasks], self.data.source(), self.config,
                            [(m.role, m.spec) for m in self.models], erasure, [m.fingerprint for m in self.models])

    def to_dict(self) -> dict[str, Any]:
        out = {"schema": SCHEMA, "created": self.created, "version": self.version, "data": self.data.to_dict(),
               "config": self.config.to_dict(), "tasks": [t.to_dict() for t in self.tasks], "main": self.main.tag,
               "models": [m.to_dict() for m in self.models], "verdict": self.verdict.to_dict(),
               "comparison": {task: {tag: c.to_dict() for tag, c in by_model.items()}
                              for task, by_model in self.comparison.items()}}
        _put(out, "torch", self.torch_version)
        if self.seeds is not None:
            out["seeds"] = {"models": [m.tag for m in self.models if m.role in ("model", "seed")],
                            "verdict": self.seeds.to_dict()}
        return out

    @classmethod
    def from_dict(cls, data: Any) -> "ProbeResults":
        """Read a results.json dict; ValueError naming the first missing or mistyped field, or a
        schema not in ``READABLE_SCHEMAS``."""
        f = _Fields(data, "results")
        schema = f.get("schema", str)
        if schema not in READABLE_SCHEMAS:
            raise ValueError(f"results.schema: {schema!r} is not one of {', '.join(map(repr, READABLE_SCHEMAS))} "
                             f"(not a probing result this version of stratascope reads)")
        for key in ("created", "version", "main"):
            f.get(key, str)
        f.get("verdict", dict)
        tasks = [TaskInfo.from_fields(_Fields(t, f"results.tasks[{k}]")) for k, t in enumerate(f.get("tasks", list))]
        names = [t.name for t in tasks]
        raw_models = f.get("models", list)
        if not raw_models:
            raise ValueError("results.models: empty")
        tags = [m.get("tag") if isinstance(m, dict) else None for m in raw_models]
        if f.data["main"] != tags[0]:
            raise ValueError(f"results.main {f.data['main']!r} is not the first of the models {tags}")
        models = [ModelResult.from_dict(m, f"results.models[{tag!r}]", names) for m, tag in zip(raw_models, tags)]
        if schema == SCHEMA_V1 and any(m.erasure is not None for m in models):
            raise ValueError(f"results.models: erasure results in a {SCHEMA_V1!r} file (erasure came with {SCHEMA_V2!r})")
        comp = f.sub("comparison")
        comparison = {task: {tag: ComparisonEntry.from_fields(_Fields(c, f"results.comparison[{task!r}][{tag!r}]"))
                             for tag, c in _Fields(by_model, f"results.comparison[{task!r}]").data.items()}
                      for task, by_model in comp.data.items()}
        return cls(f.data["created"], f.data["version"], DataInfo.from_dict(f.get("data", dict), "results.data"),
                   ProbeConfig.from_dict(f.get("config", dict), "results.config"), tasks, models, comparison,
                   f.get("torch", _OPT_STR, required=False), schema,
                   Verdict.from_dict(f.sub("seeds").get("verdict", dict), "results.seeds.verdict",
                                     models[0].n_layer) if f.has("seeds") else None)

    @classmethod
    def coerce(cls, results: "ProbeResults | dict[str, Any]") -> "ProbeResults":
        """``results`` itself, or read from its dict form."""
        return results if isinstance(results, ProbeResults) else cls.from_dict(results)


def validate(results: ProbeResults | dict[str, Any]) -> None:
    """Raise ValueError if ``results`` (a results.json dict) does not follow the schema."""
    ProbeResults.from_dict(results.to_dict() if isinstance(results, ProbeResults) else results)


# ----------------------------------------------------------------------------- settings
def erasure_settings(concepts: list[str], method: str, n_random: int) -> dict[str, Any]:
    """The erasure part of ``run_settings``: which concepts, which eraser, how many random draws."""
    return {"concepts": sorted(concepts), "method": method, "n_random": n_random}


def run_settings(tasks: list[str], data_source: dict[str, Any], config: ProbeConfig,
                 models: list[tuple[str, str | None]], erasure: dict[str, Any] | None = None,
                 fingerprints: list[dict[str, str] | None] | None = None) -> dict[str, Any]:
    """The settings that decide a run's numbers (see ``ProbeResults.settings``); ``erasure``
    from ``erasure_settings`` or None when the run erases nothing; ``fingerprints``: each
    model's ``hooks.fingerprint.model_fingerprint`` (None where not recorded), in ``models`` order."""
    cfg = {k: v for k, v in config.to_dict().items() if k not in EXECUTION_SETTINGS}
    fps = [None if fp is None else dict(fp) for fp in (fingerprints or [None] * len(models))]
    return {"tasks": list(tasks), "data": dict(data_source), "config": cfg, "models": [list(m) for m in models],
            "erasure": erasure, "fingerprints": fps}


def settings_diff(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What differs between two ``run_settings``, one "what: old → new" per difference."""
    out = []
    for section in ("tasks", "models"):
        if old.get(section) != new.get(section):
            out.append(f"{section} {_show(old.get(section))} → {_show(new.get(section))}")
    for section in ("data", "config", "erasure"):
        a, b = old.get(section) or {}, new.get(section) or {}
        for key in dict.fromkeys([*a, *b]):
            if a.get(key) != b.get(key):
                out.append(f"{section}.{key} {_show(a.get(key))} → {_show(b.get(key))}")
    if old.get("models") == new.get("models"):  # the same specs: did the models behind them change?
        models = new.get("models") or []
        for (role, spec), a, b in zip(models, old.get("fingerprints") or [None] * len(models),
                                      new.get("fingerprints") or [None] * len(models)):
            who = "the random-init twin" if role == "random_init" else spec or role
            out += [f"{who}: {d}" for d in fingerprint_diff(a, b or {})]
    return out


def _show(value: Any) -> str:
    if isinstance(value, list) and all(isinstance(x, str) for x in value):
        return ",".join(value) or "none"
    if isinstance(value, list) and all(isinstance(x, list) for x in value):  # models: [role, spec]
        return ",".join("random-init twin" if role == "random_init" else spec or role for role, spec in value)
    return "unset" if value is None else str(value)
