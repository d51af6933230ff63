"""Where in depth a property appears: peak layer, expected layer, hierarchy verdict.

Three expected layers, all recorded for every task (``EXPECTED_KINDS``); the verdict uses the
one ``ProbeConfig.expected`` names (default ``anchored``).

**tenney** (Tenney, Das & Pavlick 2019). ``S(ℓ)`` is the test score of a *cumulative* probe
that sees layers 0..ℓ (here: a linear probe on the concatenation of the standardised layers
0..ℓ — each layer first reduced to its leading principal components when the concatenation
would exceed ``max_cumulative_features``; see ``probes.suite``). With Δ(ℓ) = S(ℓ) − S(ℓ−1)::

    tenney:    E[ℓ] = Σ_{ℓ≥1} ℓ·Δ(ℓ) / Σ_{ℓ≥1} Δ(ℓ)

It is the centre of mass of the gains *after* the embeddings, and undefined (0/0, reported as
NaN) for a lexical property that layer 0 already holds.

**anchored** (the default). The hierarchy verdict needs every task, lexical ones included::

    anchored:  Δ(0) = max(0, S(0) − S_base), E[ℓ] = Σ_{ℓ≥0} ℓ·Δ(ℓ) / Σ_{ℓ≥0} Δ(ℓ)

with S_base the score of a probe that sees nothing (majority-class accuracy; R² = 0). It counts
what the embeddings already hold at layer 0; equivalently ``anchored = tenney · G / (Δ(0) + G)``
with G = Σ_{ℓ≥1} Δ(ℓ): Tenney's value shrunk towards 0 by the share of the information that is
lexical. Where S(0) is at the baseline both are equal. Score drops after layer 0 (estimation
noise: a cumulative probe sees everything the previous one saw) can push the sum below 0 or
above L; the anchored value is clipped to [0, L]. Tenney's is reported as the formula gives it.
Accuracy saturates: a property that is 96 % decodable from the embeddings leaves at most 4
points to gain, so its anchored value sits near 0 whatever the layers do with the rest.

**mdl** (from the online codes of ``probes.mdl``; categorical tasks). ``L(ℓ)`` is the online
codelength of the labels (bits) from layer ℓ alone and ``U = N·log₂K`` the uniform code. The
best code available from layers 0..ℓ — the uniform code needs no layer — is::

    D(ℓ) = min(U, L(0), …, L(ℓ))            Δ(ℓ) = D(ℓ−1) − D(ℓ) ≥ 0   (ℓ ≥ 1)
    mdl:       E[ℓ] = Σ_{ℓ≥1} ℓ·Δ(ℓ) / Σ_{ℓ≥1} Δ(ℓ)

the centre of mass of the bits saved *after* the embeddings, as Tenney's formula is of the
accuracy gained. The running minimum plays the part of Tenney's cumulative probe (the best of
the codes of layers 0..ℓ stands in for a code of all of them, which would need the online code
refitted on concatenated layers). It does not saturate: bits keep measuring progress where
accuracy is at 0.96–1.00 (on the demo model UPOS accuracy is 0.96 at layer 0, while its
codelength keeps falling until layer 4). Gains are counted in **bits, not compression ratios**:
bits are additive, while a difference of compression ratios U/L weights each bit saved by
1/(L(ℓ)·L(ℓ−1)), so the last few bits of a nearly solved code dominate (on the demo,
``subject_number_next``'s last 6–7 of 1035 bits saved would carry about 30 % of the weight and
move the expected layer from 2.9 to 5.2). With no bits saved after layer 0 the formula is 0/0; then
E = 0 when layer 0 codes better than the uniform code (a lexical property: everything the layers
make extractable is in the embeddings — the value the anchored definition gives it too; NaN, as
in Tenney's formula, would drop exactly the lexical tasks from their level and flatter the
verdict) and NaN when no layer does (nothing to locate). A few bits saved by a later layer move the value there:
read it with its interval. Ordinal tasks have no online code and no MDL expected layer.

Hierarchy verdict: the mean expected layer per level (early, middle, late) over that level's
tasks, in every bootstrap resample; it *holds* when early < middle < late in at least 95 % of
the resamples. Otherwise it names each failing pair (fraction of resamples in order, and the
difference of the level means with its interval). The resamples are those of the test sentences
for ``anchored`` and ``tenney``; for ``mdl``, whose codes are sums over the training words, those
of the training sentences (``probes.mdl.resampled_codelengths``: each word's codelength is kept
and summed per resample; no probe is refitted).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from probes.metrics import interval

LEVEL_ORDER = ("early", "middle", "late")
EXPECTED_KINDS = ("anchored", "tenney", "mdl")
# The verdict's three outcomes (``holds`` True / False / None), in the words every report uses.
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


def expected_layer_mdl(codelength: np.ndarray, uniform: np.ndarray | float) -> np.ndarray:
    """The MDL expected layer (see module doc) from online codelengths ``[..., L+1]`` (bits, one
    per layer) and the uniform codelength ``[...]``: the centre of the bits saved after layer 0
    by the best code of layers 0..ℓ; 0 when only layer 0 saves bits, NaN when no layer does."""
    bits = np.asarray(codelength, dtype=np.float64)
    u = np.asarray(uniform, dtype=np.float64)[..., None]
    best = np.minimum.accumulate(np.concatenate([np.broadcast_to(u, bits[..., :1].shape), bits], axis=-1),
                                 axis=-1)  # D(−1) = U, D(0), …, D(L)
    delta = best[..., 1:-1] - best[..., 2:]  # Δ(1..L) ≥ 0
    layers = np.arange(1, bits.shape[-1])
    total = delta.sum(axis=-1)
    tol = 1e-9 * np.maximum(u[..., 0], 1.0)
    lexical = np.where(best[..., 0] - best[..., 1] > tol, 0.0, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > tol, (delta * layers).sum(axis=-1) / np.where(total > tol, total, 1.0), lexical)


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


def _level_means(expected: dict[str, np.ndarray], levels: dict[str, str]) -> dict[str, np.ndarray]:
    out = {}
    for level in LEVEL_ORDER:
        names = [t for t, lv in levels.items() if lv == level and t in expected]
        if not names:
            continue
        stack = np.stack([np.asarray(expected[t], dtype=np.float64) for t in names])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN resamples give NaN
            out[level] = np.nanmean(stack, axis=0)
    return out


def hierarchy_verdict(expected: dict[str, float], expected_boot: dict[str, np.ndarray],
                      levels: dict[str, str], threshold: float = 0.95) -> dict[str, Any]:
    """The verdict from per-task expected layers (point values and bootstrap samples [B]).

    Returns {"holds": bool | None, "p_order": fraction of resamples with early < middle < late,
    "levels": {level: {"mean", "ci", "tasks"}}, "pairs": [{"lower", "upper", "p_in_order",
    "difference", "difference_ci", "ok"}], "failing": [...], "message": str}. ``holds`` is None
    when a level has no task with a defined expected layer, or when no resample gives every
    level one (no fraction can be computed, e.g. with no resamples at all); a pair is reported
    only when some resample defines both of its levels.
    """
    point = _level_means({t: np.asarray(v) for t, v in expected.items()}, levels)
    boot = _level_means(expected_boot, levels)
    present = [lv for lv in LEVEL_ORDER if lv in point and np.isfinite(point[lv])]
    out: dict[str, Any] = {"threshold": threshold, "levels": {}, "pairs": [], "failing": []}
    for lv in LEVEL_ORDER:
        if lv not in point:
            continue
        tasks = [t for t, x in levels.items() if x == lv and t in expected]
        ci = interval(boot[lv]) if lv in boot else np.array([np.nan, np.nan])
        out["levels"][lv] = {"mean": _f(point[lv]), "ci": [_f(ci[0]), _f(ci[1])], "tasks": tasks}
    pairs = [(a, b) for a, b in (("early", "middle"), ("middle", "late"), ("early", "late"))
             if a in present and b in present]
    for lower, upper in pairs:
        diff = boot[upper] - boot[lower]
        valid = np.isfinite(diff)
        if not valid.any():
            continue
        p = float((diff[valid] > 0).mean())
        ci = interval(diff)
        pair = {"lower": lower, "upper": upper, "p_in_order": p,
                "difference": _f(point[upper] - point[lower]), "difference_ci": [_f(ci[0]), _f(ci[1])],
                "ok": bool(p >= threshold)}
        out["pairs"].append(pair)
        if not pair["ok"]:
            out["failing"].append(pair)
    if len(present) < 3:
        missing = [lv for lv in LEVEL_ORDER if lv not in present]
        out.update(holds=None, p_order=None,
                   message=f"{VERDICT_STATUS[None]}: no task with a defined expected layer at level(s) "
                           f"{', '.join(missing)}")
        return out
    e, m, l_ = boot["early"], boot["middle"], boot["late"]
    valid = np.isfinite(e) & np.isfinite(m) & np.isfinite(l_)
    if not valid.any():
        out.update(holds=None, p_order=None, message=f"{VERDICT_STATUS[None]}: no bootstrap resample to test the "
                                                     f"order ({len(valid)} resamples)")
        return out
    p_order = float(((e < m) & (m < l_))[valid].mean())
    holds = bool(p_order >= threshold)
    out.update(holds=holds, p_order=p_order)
    means = ", ".join(f"{lv} {point[lv]:.2f}" for lv in LEVEL_ORDER)
    if holds:
        out["message"] = (f"{VERDICT_STATUS[True]}: early < middle < late in {100 * p_order:.1f}% of resamples "
                          f"(mean expected layer {means})")
    else:
        fails = "; ".join(
            f"{p['lower']} < {p['upper']} in only {100 * p['p_in_order']:.1f}% of resamples "
            f"({p['upper']} − {p['lower']} = {p['difference']:+.2f} [{p['difference_ci'][0]:+.2f}, "
            f"{p['difference_ci'][1]:+.2f}])"
            for p in out["failing"]
        ) or "each pair is in order in ≥95% of resamples, but all three jointly are not"
        out["message"] = (f"{VERDICT_STATUS[False]}: early < middle < late in {100 * p_order:.1f}% of resamples "
                          f"(mean expected layer {means}); {fails}")
    return out


def _f(x: Any) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None
