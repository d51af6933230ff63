"""The shape of results.json (``SCHEMA`` = "stratascope.probes/1"), checked by ``validate``.

Documented field by field in docs/probes.md. ``validate(results)`` raises ValueError naming
the first missing or mistyped field; readers (the dashboard, tests) call it before use.
"""

from __future__ import annotations

from typing import Any

NUM = (int, float)
OPT_NUM = (int, float, type(None))

TOP = {"schema": str, "created": str, "version": str, "data": dict, "config": dict, "tasks": list,
       "main": str, "models": list, "verdict": dict, "comparison": dict}
DATA = {"n_sentences": int, "n_words": int, "split_sentences": dict, "split_words": dict, "n_skipped_too_long": int}
TASK = {"name": str, "level": str, "kind": str, "description": str}
MODEL = {"tag": str, "role": str, "info": dict, "n_layer": int, "d_model": int, "tasks": dict, "verdict": dict,
         "timing_s": dict}
TASK_RESULT = {"name": str, "level": str, "kind": str, "metric": str, "n_words": dict, "baseline": dict,
               "layers": list, "peak_layer": int, "peak_score": OPT_NUM, "layer0_score": OPT_NUM, "lexical": bool,
               "expected_layer": dict}
LAYER = {"layer": int, "score": OPT_NUM, "ci": list, "lambda": NUM}
CONTROL = {"control": OPT_NUM, "control_ci": list, "selectivity": OPT_NUM, "selectivity_ci": list}
MDL = {"codelength_bits": NUM, "uniform_bits": NUM, "compression": OPT_NUM}
VERDICT = {"holds": (bool, type(None)), "levels": dict, "pairs": list, "failing": list, "message": str,
           "threshold": NUM, "expected": str}
ROLES = ("model", "random_init", "compare")


def _check(obj: Any, spec: dict[str, Any], where: str) -> None:
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: expected an object, got {type(obj).__name__}")
    for key, typ in spec.items():
        if key not in obj:
            raise ValueError(f"{where}: missing field {key!r}")
        value = obj[key]
        if isinstance(value, bool) and typ in (NUM, OPT_NUM, int):
            raise ValueError(f"{where}.{key}: expected a number, got a boolean")
        if not isinstance(value, typ):
            raise ValueError(f"{where}.{key}: expected {typ}, got {type(value).__name__}")


def _interval(ci: Any, where: str) -> None:
    if not (isinstance(ci, list) and len(ci) == 2 and all(isinstance(x, OPT_NUM) for x in ci)):
        raise ValueError(f"{where}: expected an interval [low, high], got {ci!r}")


def validate(results: dict[str, Any]) -> None:
    """Raise ValueError if ``results`` does not follow the results.json schema."""
    _check(results, TOP, "results")
    if results["schema"].split("/")[0] != "stratascope.probes":
        raise ValueError(f"results.schema: not a stratascope probing result ({results['schema']!r})")
    _check(results["data"], DATA, "results.data")
    names = []
    for k, t in enumerate(results["tasks"]):
        _check(t, TASK, f"results.tasks[{k}]")
        names.append(t["name"])
    if not results["models"]:
        raise ValueError("results.models: empty")
    tags = [m.get("tag") for m in results["models"]]
    if results["main"] not in tags:
        raise ValueError(f"results.main {results['main']!r} is not one of the models {tags}")
    for m in results["models"]:
        where = f"results.models[{m.get('tag')!r}]"
        _check(m, MODEL, where)
        if m["role"] not in ROLES:
            raise ValueError(f"{where}.role: one of {ROLES}, got {m['role']!r}")
        _check(m["verdict"], VERDICT, f"{where}.verdict")
        for name in names:
            if name not in m["tasks"]:
                raise ValueError(f"{where}.tasks: missing task {name!r}")
            r = m["tasks"][name]
            tw = f"{where}.tasks[{name!r}]"
            if r.get("skipped"):
                continue
            _check(r, TASK_RESULT, tw)
            if len(r["layers"]) != m["n_layer"] + 1:
                raise ValueError(f"{tw}.layers: {len(r['layers'])} entries for {m['n_layer']} layers + embeddings")
            for x in r["layers"]:
                lw = f"{tw}.layers[{x.get('layer')}]"
                _check(x, LAYER, lw)
                _interval(x["ci"], f"{lw}.ci")
                if "control" in x:
                    _check(x, CONTROL, lw)
                    _interval(x["control_ci"], f"{lw}.control_ci")
                    _interval(x["selectivity_ci"], f"{lw}.selectivity_ci")
                if "mdl" in x:
                    _check(x["mdl"], MDL, f"{lw}.mdl")
            if "cumulative" in r:
                if len(r["cumulative"]) != m["n_layer"] + 1:
                    raise ValueError(f"{tw}.cumulative: wrong length")
                for key in ("anchored", "tenney"):
                    if key not in r["expected_layer"]:
                        raise ValueError(f"{tw}.expected_layer: missing {key!r}")
                    _interval(r["expected_layer"][f"{key}_ci"], f"{tw}.expected_layer.{key}_ci")
