"""Where in depth a property appears: lexical share, expected layers, the hierarchy verdict.

Every task gets two axes (issue #20):

* **lexical share** (``lexical_share``) = (S₀ − S_base) / (S_peak − S_base): how much of what the
  probes read the embeddings already hold;
* **depth** (kind ``depth``, the default verdict's) = where the part gained *after* the
  embeddings is gained: MDL's value (below) for categorical tasks, Tenney's (clipped to [0, L])
  for ordinal ones, and undefined unless the post-embedding gain — bits saved after layer 0
  (``bits_saved_after_embeddings``) or cumulative score gained (``score_gained_after_embeddings``)
  — has a 95 % interval excluding 0 (``gain_is_defined``). A lexical task has no depth.

Four expected layers are recorded for every task (``EXPECTED_KINDS``); the verdict uses the one
``ProbeConfig.expected`` names:

**tenney** (Tenney, Das & Pavlick 2019). ``S(ℓ)`` is the test score of a *cumulative* probe
that sees layers 0..ℓ (a linear probe on the concatenation of the standardised layers 0..ℓ, each
reduced to its leading principal components when the concatenation would exceed
``max_cumulative_features``; see ``probes.suite``). With Δ(ℓ) = S(ℓ) − S(ℓ−1)::

    tenney:    E[ℓ] = Σ_{ℓ≥1} ℓ·Δ(ℓ) / Σ_{ℓ≥1} Δ(ℓ)

the centre of mass of the gains after the embeddings (NaN when Σ Δ ≤ 0; the suite reports it
only where the gain is significant, as for the depth axis).

**anchored** (lexical-weighted; the default before #20)::

    anchored:  Δ(0) = max(0, S(0) − S_base), E[ℓ] = Σ_{ℓ≥0} ℓ·Δ(ℓ) / Σ_{ℓ≥0} Δ(ℓ)

= tenney · G / (Δ(0) + G) with G = Σ_{ℓ≥1} Δ(ℓ): Tenney's value shrunk towards 0 by the lexical
share, clipped to [0, L]. It mostly measures how lexical a task is (bench/bench_verdict.py).

**mdl** (from the online codes of ``probes.mdl``; categorical tasks). ``L(ℓ)`` is the online
codelength of the labels (bits) from layer ℓ alone and ``U = N·log₂K`` the uniform code::

    D(ℓ) = min(U, L(0), …, L(ℓ))            Δ(ℓ) = D(ℓ−1) − D(ℓ) ≥ 0   (ℓ ≥ 1)
    mdl:       E[ℓ] = Σ_{ℓ≥1} ℓ·Δ(ℓ) / Σ_{ℓ≥1} Δ(ℓ)

the centre of mass of the bits saved after the embeddings; the running minimum plays the part of
Tenney's cumulative probe. Bits, not compression ratios: bits are additive, while a difference
of ratios U/L weights each bit by 1/(L(ℓ)·L(ℓ−1)), so the last bits of a nearly solved code would
dominate. With no bits saved after layer 0: ``mdl`` gives 0 when layer 0 beats the uniform code
(the pre-#20 convention for a lexical task), NaN when no layer does; ``depth`` gives NaN in both.

Hierarchy verdict (``hierarchy_verdict``): per level, the mean over its tasks in every resample
(test sentences × refits, ``probes.suite``). A level's tasks are fixed before resampling (those
with a defined point value); a resample where one of them is undefined counts against the order.
An early level with no defined task is not compared ("uninformative"); a middle or late one
makes the verdict incomplete. It *holds* when the compared levels are jointly in order in at
least 95 % of the resamples; every pair is reported as an effect size (difference of level means
in layers, with its interval). ``seed_verdict`` gives it across training seeds, the seed as the
unit.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from probes.metrics import interval

LEVEL_ORDER = ("early", "middle", "late")
EXPECTED_KINDS = ("depth", "anchored", "tenney", "mdl")
# The verdict's three outcomes (``holds`` True / False / None), in the words every report uses.
# A gain counts as above 0 only beyond this fraction of its largest resample (float noise).
GAIN_TOL = 1e-9
VERDICT_STATUS: dict[bool | None, str] = {True: "holds", False: "does not hold", None: "incomplete"}


def verdict_status(holds: bool | None) -> str:
    """"holds", "does not hold" or "incomplete"."""
    return VERDICT_STATUS[holds]


def expected_layer_tenney(scores: np.ndarray) -> np.ndarray:
    """Tenney et al.'s E[ℓ] from cumulative scores ``[..., L+1]`` (NaN where Σ Δ ≤ 0)."""
    s = np.asarray(scores, dtype=np.float64)
    delta = np.diff(s, axis=-1)  # Δ(1..L)
    layers = np.arange(1, s.shape[-1])
    total = delta.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 1e-12, (delta * layers).sum(axis=-1) / np.where(total > 1e-12, total, 1.0), np.nan)


def expected_layer_anchored(scores: np.ndarray, baseline: np.ndarray | float) -> np.ndarray:
    """E[ℓ] counting layer 0's gain over ``baseline`` (see module doc), clipped to [0, L];
    NaN when S(L) ≤ baseline."""
    s = np.asarray(scores, dtype=np.float64)
    base = np.asarray(baseline, dtype=np.float64)
    d0 = np.maximum(s[..., 0] - base, 0.0)
    delta = np.diff(s, axis=-1)
    layers = np.arange(1, s.shape[-1])
    total = d0 + delta.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        e = np.where(total > 1e-12, (delta * layers).sum(axis=-1) / np.where(total > 1e-12, total, 1.0), np.nan)
    return np.clip(e, 0.0, s.shape[-1] - 1)


def expected_layer_mdl(codelength: np.ndarray, uniform: np.ndarray | float, lexical: float = 0.0) -> np.ndarray:
    """The MDL expected layer (see module doc) from online codelengths ``[..., L+1]`` (bits, one
    per layer) and the uniform codelength ``[...]``: the centre of the bits saved after layer 0
    by the best code of layers 0..ℓ; ``lexical`` (0, or NaN for the depth axis) when only layer 0
    saves bits, NaN when no layer does."""
    bits = np.asarray(codelength, dtype=np.float64)
    u = np.asarray(uniform, dtype=np.float64)[..., None]
    best = np.minimum.accumulate(np.concatenate([np.broadcast_to(u, bits[..., :1].shape), bits], axis=-1),
                                 axis=-1)  # D(−1) = U, D(0), …, D(L)
    delta = best[..., 1:-1] - best[..., 2:]  # Δ(1..L) ≥ 0
    layers = np.arange(1, bits.shape[-1])
    total = delta.sum(axis=-1)
    tol = 1e-9 * np.maximum(u[..., 0], 1.0)
    lexical = np.where(best[..., 0] - best[..., 1] > tol, lexical, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > tol, (delta * layers).sum(axis=-1) / np.where(total > tol, total, 1.0), lexical)


def bits_saved_after_embeddings(codelength: np.ndarray, uniform: np.ndarray | float) -> np.ndarray:
    """D(0) − D(L) (bits, ≥ 0): what the best code of layers 0..L saves over the best of the
    uniform code and layer 0's, from codelengths ``[..., L+1]`` and the uniform codelength ``[...]``."""
    bits = np.asarray(codelength, dtype=np.float64)
    d0 = np.minimum(np.asarray(uniform, dtype=np.float64), bits[..., 0])
    return np.maximum(d0 - bits.min(axis=-1), 0.0)


def score_gained_after_embeddings(cumulative: np.ndarray) -> np.ndarray:
    """S(L) − S(0) of the cumulative probes ``[..., L+1]``: the score gained after the embeddings
    (Tenney's Σ_{ℓ≥1} Δ(ℓ); may be negative)."""
    s = np.asarray(cumulative, dtype=np.float64)
    return s[..., -1] - s[..., 0]


def gain_is_defined(gain_boot: np.ndarray, level: float = 0.95) -> bool:
    """Whether the post-embedding gain's ``level`` interval excludes 0 (its lower end is above 0):
    only then does the depth axis give the task a value (``depth_of``)."""
    g = np.asarray(gain_boot, dtype=np.float64)
    g = g[np.isfinite(g)]
    if g.size == 0:
        return False
    return bool(np.percentile(g, (1 - level) / 2 * 100) > GAIN_TOL * max(1.0, float(np.abs(g).max())))


def lexical_share(layer0: np.ndarray, peak: np.ndarray, baseline: np.ndarray | float) -> np.ndarray:
    """(S₀ − S_base) / (S_peak − S_base): the share of the gain over the baseline that the
    embeddings already hold (NaN where the peak is not above the baseline). Not clipped: a
    resample whose layer 0 beats its peak layer gives a value above 1."""
    s0, sp = np.asarray(layer0, dtype=np.float64), np.asarray(peak, dtype=np.float64)
    base = np.asarray(baseline, dtype=np.float64)
    gain = sp - base
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(gain > 1e-12, (s0 - base) / np.where(gain > 1e-12, gain, 1.0), np.nan)


def expected_layer(scores: np.ndarray, baseline: np.ndarray | float | None = None,
                   kind: str = "anchored") -> np.ndarray:
    """``kind`` "tenney" (baseline unused), "anchored" (baseline required) or "mdl" (``scores``
    are online codelengths in bits, ``baseline`` the uniform codelength)."""
    if kind == "tenney":
        return expected_layer_tenney(scores)
    if kind in ("anchored", "mdl"):
        if baseline is None:
            raise ValueError(f"the {kind} expected layer needs the baseline "
                             f"{'score' if kind == 'anchored' else 'codelength (the uniform code)'}")
        return expected_layer_anchored(scores, baseline) if kind == "anchored" else expected_layer_mdl(scores, baseline)
    raise ValueError(f"expected-layer kind must be one of {', '.join(EXPECTED_KINDS)}, got {kind!r}")


def peak_layer(scores: np.ndarray) -> int:
    """First layer whose score is the maximum (NaN-safe)."""
    s = np.asarray(scores, dtype=np.float64)
    if np.all(np.isnan(s)):
        return 0
    return int(np.nanargmax(s))


def _level_means(expected: dict[str, np.ndarray], tasks: dict[str, list[str]]) -> dict[str, np.ndarray]:
    """The mean over each level's tasks (``tasks``: level → task names, fixed before resampling);
    NaN wherever one of them is undefined (a resample that loses a task counts against the order,
    instead of comparing another task set)."""
    return {lv: np.mean(np.stack([np.asarray(expected[t], dtype=np.float64) for t in names]), axis=0)
            for lv, names in tasks.items() if names}


def _in_order(lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Resamples where ``lower`` < ``upper`` (False where either is undefined)."""
    with np.errstate(invalid="ignore"):
        return np.isfinite(lower) & np.isfinite(upper) & (lower < upper)


def hierarchy_verdict(expected: dict[str, float], expected_boot: dict[str, np.ndarray],
                      levels: dict[str, str], threshold: float = 0.95,
                      undefined_tasks: list[str] | None = None) -> dict[str, Any]:
    """The verdict from per-task expected layers (point values and resamples [B]).

    A level's tasks are fixed before resampling: those whose point value is defined (finite);
    the others are listed in "undefined" and left out. A level's mean in a resample is NaN when
    one of its tasks is undefined there, and such a resample counts as *out of order*. The
    levels compared are those with a task; an early level without one is left out of the
    comparison ("uninformative": everything its tasks carry is in the embeddings, so it has no
    depth to compare); a middle or late level without one makes the verdict incomplete.

    Returns {"holds": bool | None, "p_order": fraction of resamples with every compared level in
    order, "compared": [levels], "uninformative": [levels], "undefined": [tasks],
    "levels": {level: {"mean", "ci", "tasks"}}, "pairs": [{"lower", "upper", "p_in_order",
    "difference", "difference_ci", "ok"}] (difference = upper − lower: the effect size, in
    layers), "failing": [...], "message": str}. ``undefined_tasks``: the tasks to name as
    undefined instead of the keys of ``expected`` whose value is NaN (``seed_verdict``, whose
    keys are levels).
    """
    present = {t: lv for t, lv in levels.items() if t in expected}
    undefined = [t for t in present if not np.isfinite(float(expected[t]))]
    tasks = {lv: [t for t, x in present.items() if x == lv and t not in undefined] for lv in LEVEL_ORDER}
    point = _level_means({t: np.asarray(v) for t, v in expected.items()}, tasks)
    boot = _level_means(expected_boot, tasks) if expected_boot else {}
    out: dict[str, Any] = {"threshold": threshold, "levels": {}, "pairs": [], "failing": [],
                           "undefined": undefined, "compared": [], "uninformative": []}
    for lv in LEVEL_ORDER:
        if lv not in point:
            continue
        ci = interval(boot[lv]) if lv in boot else np.array([np.nan, np.nan])
        out["levels"][lv] = {"mean": _f(point[lv]), "ci": [_f(ci[0]), _f(ci[1])], "tasks": tasks[lv]}
    with_tasks = [lv for lv in LEVEL_ORDER if lv in point]
    missing = [lv for lv in ("middle", "late") if lv not in point]
    compared = [lv for lv in LEVEL_ORDER if lv in point]
    uninformative = ["early"] if "early" not in point and "early" in present.values() else []
    out.update(compared=compared, uninformative=uninformative)
    n_boot = len(next(iter(boot.values()))) if boot else 0
    for lower, upper in [(a, b) for a, b in (("early", "middle"), ("middle", "late"), ("early", "late"))
                         if a in with_tasks and b in with_tasks]:
        if n_boot == 0:
            continue
        diff = boot[upper] - boot[lower]
        p = float(_in_order(boot[lower], boot[upper]).mean())
        ci = interval(diff)
        pair = {"lower": lower, "upper": upper, "p_in_order": p,
                "difference": _f(point[upper] - point[lower]), "difference_ci": [_f(ci[0]), _f(ci[1])],
                "ok": bool(p >= threshold)}
        out["pairs"].append(pair)
        if not pair["ok"]:
            out["failing"].append(pair)
    if undefined_tasks is not None:
        undefined = out["undefined"] = list(undefined_tasks)
    left = _left_out_note(undefined, uninformative)
    if expected_boot and all(len(np.atleast_1d(b)) == 0 for b in expected_boot.values()):
        out.update(holds=None, p_order=None, message=f"{VERDICT_STATUS[None]}: no bootstrap resample to test the "
                                                     f"order (0 resamples){left}")
        return out
    if missing:
        out.update(holds=None, p_order=None,
                   message=f"{VERDICT_STATUS[None]}: no task with a defined expected layer at level(s) "
                           f"{', '.join(missing)}{left}")
        return out
    if n_boot == 0:
        out.update(holds=None, p_order=None, message=f"{VERDICT_STATUS[None]}: no bootstrap resample to test the "
                                                     f"order (0 resamples){left}")
        return out
    joint = np.ones(n_boot, dtype=bool)
    for a, b in zip(compared[:-1], compared[1:]):
        joint &= _in_order(boot[a], boot[b])
    p_order = float(joint.mean())
    holds = bool(p_order >= threshold)
    out.update(holds=holds, p_order=p_order)
    order = " < ".join(compared)
    effects = "; ".join(f"{p['upper']} − {p['lower']} = {_signed(p['difference'])} layers "
                        f"[{_signed(p['difference_ci'][0])}, {_signed(p['difference_ci'][1])}]"
                        for p in out["pairs"] if p["lower"] != "early" or p["upper"] == "middle")
    if holds:
        out["message"] = f"{VERDICT_STATUS[True]}: {order} in {100 * p_order:.1f}% of resamples ({effects}){left}"
    else:
        fails = "; ".join(f"{p['lower']} < {p['upper']} in only {100 * p['p_in_order']:.1f}% of resamples"
                          for p in out["failing"]) or f"each pair is in order in ≥{100 * threshold:.0f}% of " \
                                                      f"resamples, but all jointly are not"
        out["message"] = (f"{VERDICT_STATUS[False]}: {order} in {100 * p_order:.1f}% of resamples ({effects}); "
                          f"{fails}{left}")
    return out


def seed_verdict(per_seed: list[tuple[dict[str, float], dict[str, np.ndarray]]], levels: dict[str, str],
                 threshold: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """The verdict across training seeds, with the seed as the unit: ``per_seed`` holds each
    seed's per-task expected layers (point values, resamples [B]). A level's tasks are those
    defined (finite point value) in every seed; each seed's level mean is taken over them. Resample
    b draws as many seeds as there are, with replacement, and averages their level means in
    their own resample b (a two-stage bootstrap: seeds, then sentences and refits within a
    seed); the point is the mean over seeds. Between-seed differences therefore widen every
    interval, and with few seeds the fraction in order is bounded by them (3 seeds: each seed
    alone is drawn three times in 1/27 of the resamples)."""
    n = len(per_seed)
    if n == 0:
        raise ValueError("seed_verdict needs at least one seed")
    names = [t for t in levels if all(t in point for point, _ in per_seed)]
    undefined = [t for t in names if not all(np.isfinite(float(point[t])) for point, _ in per_seed)]
    tasks = {lv: [t for t in names if levels[t] == lv and t not in undefined] for lv in LEVEL_ORDER}
    B = min(len(next(iter(boot.values()))) if boot else 0 for _, boot in per_seed)
    draws = np.random.default_rng(seed).integers(n, size=(B, n))  # [B, n] seed indices
    point_lv: dict[str, float] = {}
    boot_lv: dict[str, np.ndarray] = {}
    for lv, ts in tasks.items():
        if not ts and not any(levels[t] == lv for t in names):
            continue
        if not ts:
            point_lv[lv] = float("nan")
            boot_lv[lv] = np.full(B, np.nan)
            continue
        points = np.array([np.mean([float(point[t]) for t in ts]) for point, _ in per_seed])  # [n]
        boots = np.stack([np.mean(np.stack([np.asarray(boot[t][:B], dtype=np.float64) for t in ts]), axis=0)
                          for _, boot in per_seed])  # [n, B]
        point_lv[lv] = float(points.mean())
        boot_lv[lv] = boots[draws, np.arange(B)[:, None]].mean(axis=1) if B else np.zeros(0)
    out = hierarchy_verdict(point_lv, boot_lv, {lv: lv for lv in point_lv}, threshold, undefined_tasks=undefined)
    for lv, x in out["levels"].items():
        x["tasks"] = tasks[lv]
    out["n_seeds"] = n
    return out


def _left_out_note(undefined: list[str], uninformative: list[str]) -> str:
    parts = []
    if uninformative:
        parts.append(f"{', '.join(uninformative)} not compared (no task with a defined depth: what it carries "
                     f"is in the embeddings)")
    if undefined:
        parts.append(f"undefined: {', '.join(undefined)}")
    return "".join(f"; {p}" for p in parts)


def _signed(x: float | None) -> str:
    return "n/a" if x is None else f"{x:+.2f}"


def _f(x: Any) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None
