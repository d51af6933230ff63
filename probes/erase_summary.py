"""From erasure measurements to the ``erasure`` dict of results.json: ratios over held-out
sentences with their sentence-bootstrap intervals, per layer for the erased and the random
condition, and the one-line reading of a concept.

A measure is a pair of per-sentence totals (numerator, denominator): its value is Σ num / Σ den
and each bootstrap resample recomputes both sums with the resample's sentence counts
(``probes.metrics.Bootstrap``). The control's value is the mean over its random draws (the draws
share the denominator, so that is the ratio of the mean numerator).

A sentence bootstrap over fewer than ``MIN_INTERVAL_SENTENCES`` held-out sentences (one: every
resample is the same sentence) gives intervals that mean little; the reading then says on how
many sentences its measure rests (``units_measured``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from probes.erase_behaviour import Measure
from probes.metrics import Bootstrap, interval
from probes.results import number

__all__ = ["clean_summary", "layer_entries", "reading", "units_measured", "MIN_INTERVAL_SENTENCES"]

MIN_INTERVAL_SENTENCES = 10


# ----------------------------------------------------------------------------- numbers
def _ratio(boot: Bootstrap, num: np.ndarray, den: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Σ num / Σ den over the units: (point [C], resamples [B, C]) for num [S, C], den [S]."""
    with np.errstate(invalid="ignore", divide="ignore"):
        point = num.sum(axis=0) / den.sum()
        samples = (boot.counts @ num) / (boot.counts @ den)[:, None]
    return point, samples


def _value(point: float, samples: np.ndarray, level: float) -> dict[str, Any]:
    lo, hi = interval(samples, level)
    return {"value": number(point), "ci": [number(lo), number(hi)]}


def units_measured(clean: dict[str, Measure | None]) -> dict[str, int]:
    """Per measure, the held-out sentences it was measured on (those with a pair, a token)."""
    return {key: int((m[1] > 0).sum()) for key, m in clean.items() if m is not None}


def _few_units_note(measure: str, units: dict[str, int] | None) -> str:
    n = (units or {}).get(measure)
    if n is None or n >= MIN_INTERVAL_SENTENCES:
        return ""
    return (f" [warning: measured on {n} held-out sentence{'' if n == 1 else 's'}, too few to resample: the "
            f"interval means little]")


def clean_summary(clean: dict[str, Measure | None], boot: Bootstrap, level: float) -> dict[str, Any]:
    out: dict[str, Any] = {"agreement": None, "loss": None}
    for key, count in (("agreement", "n_pairs"), ("loss", "n_tokens")):
        m = clean.get(key)
        if m is None or m[1].sum() == 0:
            continue
        p, s = _ratio(boot, m[0][:, None], m[1])
        out[key] = {**_value(p[0], s[:, 0], level), count: int(m[1].sum())}
    return out


def layer_entries(measured: list[list[dict[str, Measure | None]]], clean: dict[str, Measure | None],
                   probe_correct: np.ndarray, test_unit: np.ndarray, boot: Bootstrap, level: float
                   ) -> list[dict[str, Any]]:
    """Per layer: the erased condition and the mean of the random draws, with intervals."""
    n_layers = len(measured)
    none = {"value": None, "ci": [None, None]}
    stats: dict[str, list[tuple[dict[str, Any], dict[str, Any]]] | None] = {}
    for key in ("agreement", "loss"):
        ref = clean.get(key)
        if ref is None or ref[1].sum() == 0:
            stats[key] = None
            continue
        # columns: per layer, the eraser then the mean over the random draws
        cols = []
        for row in measured:
            cols.append(row[0][key][0])
            cols.append(np.mean([m[key][0] for m in row[1:]], axis=0))
        p, s = _ratio(boot, np.stack(cols, axis=1), ref[1])
        if key == "loss":
            cp, cs = _ratio(boot, ref[0][:, None], ref[1])
            p, s = p - cp[0], s - cs[:, :1]
        stats[key] = [(_value(p[2 * l], s[:, 2 * l], level), _value(p[2 * l + 1], s[:, 2 * l + 1], level))
                      for l in range(n_layers)]
    correct = np.concatenate([probe_correct[:, :, :1], probe_correct[:, :, 1:].mean(axis=2, keepdims=True)], axis=2)
    pa, pa_boot = boot.accuracy(test_unit, correct.reshape(len(correct), -1).astype(np.float64))
    layers = []
    for l in range(n_layers):
        agreement, loss = stats["agreement"], stats["loss"]
        probe = (_value(pa[2 * l], pa_boot[:, 2 * l], level), _value(pa[2 * l + 1], pa_boot[:, 2 * l + 1], level))
        layers.append({
            "layer": l,
            "agreement": agreement[l][0] if agreement else None,
            "loss_delta": loss[l][0] if loss else dict(none),
            "probe_accuracy": probe[0],
            "random": {"agreement": agreement[l][1] if agreement else None,
                       "loss_delta": loss[l][1] if loss else dict(none),
                       "probe_accuracy": probe[1]},
        })
    return layers


# ----------------------------------------------------------------------------- the reading
def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _ci_pct(ci: list[float | None]) -> str:
    return "[n/a]" if None in ci else f"[{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"


def reading(name: str, entry: dict[str, Any], clean: dict[str, Any], ranks: Sequence[int], read_on: str = "loss",
            agreement_label: str = "attractor agreement", units: dict[str, int] | None = None) -> str:
    """One line: the layer where erasing ``name`` hurts the behaviour most, against the control,
    read on the agreement (when it was measured) or on the next-token loss. ``units``: the
    held-out sentences of each measure (``units_measured``); too few add a warning."""
    layers = entry["layers"]
    if read_on == "agreement" and clean.get("agreement") and any(
            x["agreement"] and x["agreement"]["value"] is not None for x in layers):
        scored = [x for x in layers if x["agreement"] and x["agreement"]["value"] is not None]
        worst = min(scored, key=lambda x: x["agreement"]["value"])
        base, after = clean["agreement"]["value"], worst["agreement"]
        verb = "drops" if after["value"] < base else "leaves"
        change = (f"from {_pct(base)} to {_pct(after['value'])} {_ci_pct(after['ci'])}" if verb == "drops"
                  else f"at {_pct(after['value'])} {_ci_pct(after['ci'])} (clean {_pct(base)})")
        return (f"erasing {name} at layer {worst['layer']} {verb} {agreement_label} {change}; "
                f"a random rank-{ranks[worst['layer']]} subspace: {_pct(worst['random']['agreement']['value'])}"
                + _few_units_note("agreement", units))
    scored = [x for x in layers if x["loss_delta"]["value"] is not None]
    if not scored or clean.get("loss") is None:
        return f"erasing {name}: no behaviour could be measured"
    worst = max(scored, key=lambda x: x["loss_delta"]["value"])
    d, ci, rnd = worst["loss_delta"]["value"], worst["loss_delta"]["ci"], worst["random"]["loss_delta"]["value"]
    ci_text = "[n/a]" if None in ci else f"[{ci[0]:+.3f}, {ci[1]:+.3f}]"
    rnd_text = "n/a" if rnd is None or not math.isfinite(rnd) else f"{rnd:+.3f}"
    return (f"erasing {name} at layer {worst['layer']} changes next-token loss by {d:+.3f} nats/token {ci_text} "
            f"(clean {clean['loss']['value']:.3f}); a random rank-{ranks[worst['layer']]} subspace: {rnd_text}"
            + _few_units_note("loss", units))
