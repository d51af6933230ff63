"""Hand-made erasure results in the results.json schema (docs/probes.md, `models[i].erasure`), for
the tests of the outputs (typed results, report, figures, dashboard) — the numbers are made up,
the shape is the contract with `probes.erase`.

    erasure_dict(n_layer=2)                       # main model: subject number erased at layer 1 hurts
    erasure_dict(n_layer=2, twin=True)            # a random-init twin: nothing to erase
"""

from __future__ import annotations

from typing import Any


def _m(value: float | None, half: float = 0.02, *, fraction: bool = True) -> dict[str, Any]:
    if value is None:
        return {"value": None, "ci": [None, None]}
    low, high = value - half, value + half
    if fraction:
        low, high = max(0.0, low), min(1.0, high)
    return {"value": round(value, 4), "ci": [round(low, 4), round(high, 4)]}


def _layer(layer: int, agreement: float | None, loss: float, probe: float, control_agreement: float | None,
           control_loss: float, control_probe: float) -> dict[str, Any]:
    return {"layer": layer, "agreement": None if agreement is None else _m(agreement),
            "loss_delta": _m(loss, 0.01, fraction=False), "probe_accuracy": _m(probe),
            "random": {"agreement": None if control_agreement is None else _m(control_agreement, 0.005),
                       "loss_delta": _m(control_loss, 0.001, fraction=False), "probe_accuracy": _m(control_probe)}}


def erasure_dict(n_layer: int = 2, *, twin: bool = False, dip: int = 1) -> dict[str, Any]:
    """Two concepts erased at layers 0..n_layer: ``subject_number_next`` (agreement falls to 0.52
    at layer ``dip`` for the trained model) and ``upos`` (no minimal pairs measured: agreement null)."""
    clean = 0.55 if twin else 1.0
    number_layers, upos_layers = [], []
    for layer in range(n_layer + 1):
        hit = not twin and layer == dip
        agreement = 0.52 if hit else clean - 0.01 * layer
        number_layers.append(_layer(layer, agreement, 0.30 if hit else 0.02 * layer, 0.55, clean - 0.002,
                                    0.001, 0.97 - 0.01 * layer))
        upos_layers.append(_layer(layer, None, 0.8 + 0.1 * layer, 0.31, None, 0.002, 0.95))
    if twin:
        reading = "erasing subject_number_next changes no layer's attractor agreement (55.0% clean)"
    else:
        reading = (f"erasing subject_number_next at layer {dip} drops attractor agreement from 100.0% to 52.0% "
                   f"[50.0, 54.0]; a random rank-1 subspace: 99.8%")
    return {
        "method": "leace", "site": "resid", "n_random": 5, "n_bootstrap": 40, "seed": 0,
        "clean": {"agreement": {"value": clean, "ci": [clean - 0.01, min(1.0, clean + 0.01)], "n_pairs": 120},
                  "loss": {"value": 2.41, "ci": [2.39, 2.43], "n_tokens": 5120}},
        "concepts": {
            "subject_number_next": {"task": "subject_number_next", "n_classes": 2, "rank": 1, "majority": 0.55,
                                    "reading": reading, "layers": number_layers},
            "upos": {"task": "upos", "n_classes": 12, "rank": 11, "majority": 0.31,
                     "reading": "erasing upos at layer 2 raises the next-token loss by 1.000 nats/token "
                                "[0.990, 1.010]; a random rank-11 subspace: +0.002",
                     "layers": upos_layers},
        },
        "timing_s": {"fit": 1.2, "behaviour": 30.5},
    }
