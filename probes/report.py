"""Outputs of a probing run: results.json, results.csv, figures.html, report.md.

    paths = write_outputs(results, "runs/demo/probes/demo")
    print(summary(results))

``figures(results)`` returns the plotly figures (the dashboard can reuse them);
``figures.html`` holds them all in one page with plotly.js embedded, so it opens offline.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

RESULTS_FILE = "results.json"
CSV_FILE = "results.csv"
FIGURES_FILE = "figures.html"
REPORT_FILE = "report.md"

CSV_COLUMNS = (
    "model", "role", "task", "level", "kind", "metric", "layer", "score", "ci_low", "ci_high",
    "control", "control_ci_low", "control_ci_high", "selectivity", "selectivity_ci_low", "selectivity_ci_high",
    "baseline", "cumulative", "cumulative_ci_low", "cumulative_ci_high", "mdl_codelength_bits",
    "mdl_compression", "mdl_control_compression", "spearman", "lambda",
)
LEVEL_COLORS = {"early": "#1f77b4", "middle": "#2ca02c", "late": "#d62728"}
MODEL_DASH = {"model": "solid", "random_init": "dash", "compare": "dot"}


# ----------------------------------------------------------------------------- I/O
def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def save_results(results: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    _atomic_write(path, json.dumps(results, indent=1, allow_nan=False) + "\n")
    return path


def load_results(path: str | Path) -> dict[str, Any]:
    """Read a results.json (a directory holding one, or the file)."""
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no probing results at {path}")
    data = json.loads(path.read_text())
    if data.get("schema", "").split("/")[0] != "stratascope.probes":
        raise ValueError(f"{path} is not a stratascope probing results file")
    return data


def write_outputs(results: dict[str, Any], out_dir: str | Path, *, figures_html: bool = True) -> dict[str, Path]:
    """Write results.json, results.csv, figures.html and report.md into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"results": save_results(results, out / RESULTS_FILE)}
    _atomic_write(out / CSV_FILE, to_csv(results))
    paths["csv"] = out / CSV_FILE
    if figures_html:
        _atomic_write(out / FIGURES_FILE, figures_page(results))
        paths["figures"] = out / FIGURES_FILE
    _atomic_write(out / REPORT_FILE, markdown_report(results, files=[p.name for p in paths.values()] + [REPORT_FILE]))
    paths["report"] = out / REPORT_FILE
    return paths


# ----------------------------------------------------------------------------- CSV
def csv_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for m in results["models"]:
        for name, t in m["tasks"].items():
            if t.get("skipped"):
                continue
            cumulative = t.get("cumulative") or []
            for x in t["layers"]:
                l = x["layer"]
                cu = cumulative[l] if l < len(cumulative) else {}
                mdl = x.get("mdl") or {}
                rows.append({
                    "model": m["tag"], "role": m["role"], "task": name, "level": t["level"], "kind": t["kind"],
                    "metric": t["metric"], "layer": l, "score": x["score"], "ci_low": x["ci"][0], "ci_high": x["ci"][1],
                    "control": x.get("control"), "control_ci_low": (x.get("control_ci") or [None, None])[0],
                    "control_ci_high": (x.get("control_ci") or [None, None])[1], "selectivity": x.get("selectivity"),
                    "selectivity_ci_low": (x.get("selectivity_ci") or [None, None])[0],
                    "selectivity_ci_high": (x.get("selectivity_ci") or [None, None])[1],
                    "baseline": t["baseline"]["score"], "cumulative": cu.get("score"),
                    "cumulative_ci_low": (cu.get("ci") or [None, None])[0],
                    "cumulative_ci_high": (cu.get("ci") or [None, None])[1],
                    "mdl_codelength_bits": mdl.get("codelength_bits"), "mdl_compression": mdl.get("compression"),
                    "mdl_control_compression": mdl.get("control_compression"), "spearman": x.get("spearman"),
                    "lambda": x.get("lambda"),
                })
    return rows


def to_csv(results: dict[str, Any]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in csv_rows(results):
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return buf.getvalue()


# ----------------------------------------------------------------------------- figures
def _tasks(results: dict[str, Any]) -> list[dict[str, Any]]:
    return list(results["tasks"])


def figures(results: dict[str, Any]) -> dict[str, Any]:
    """Plotly figures: "curves" (score by layer per task and model, with intervals, control and
    baseline), "selectivity", "expected_layers" and "mdl" (compression by layer)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    tasks = _tasks(results)
    models = results["models"]
    palette = ["#1f77b4", "#7f7f7f", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]
    colors = {m["tag"]: palette[k % len(palette)] for k, m in enumerate(models)}

    def grid(title: str, names: list[dict[str, Any]]):
        """A subplot per task; returns the figure and each task's (row, col)."""
        n = max(1, len(names))
        cols = min(4, n)
        rows = math.ceil(n / cols)
        fig = make_subplots(rows=rows, cols=cols, subplot_titles=[f"{t['name']} ({t['level']})" for t in names],
                            horizontal_spacing=0.06, vertical_spacing=min(0.14, 0.5 / rows) if rows > 1 else 0.1)
        fig.update_layout(title=title, height=280 * rows + 80, template="plotly_white",
                          legend={"orientation": "h", "y": -0.08})
        fig.update_xaxes(dtick=1)
        for c in range(1, cols + 1):  # the axis title on the bottom row only
            fig.update_xaxes(title_text="layer (0 = embeddings)", row=rows, col=c)
        return fig, {t["name"]: (k // cols + 1, k % cols + 1) for k, t in enumerate(names)}

    def band(fig, where, xs, lo, hi, color, tag):
        fig.add_trace(go.Scatter(x=xs + xs[::-1], y=hi + lo[::-1], mode="lines", fill="toself", line={"width": 0},
                                 fillcolor=_alpha(color, 0.15), hoverinfo="skip", showlegend=False,
                                 legendgroup=tag), row=where[0], col=where[1])

    categorical = [t for t in tasks if t["kind"] == "categorical"]
    curves, at = grid("Probe score by layer (95% bootstrap intervals); dotted: control task; "
                      "grey line: majority / mean baseline", tasks)
    sel, at_sel = grid("Selectivity (task − control accuracy) by layer, categorical tasks", categorical)
    mdl, at_mdl = grid("MDL compression (uniform codelength / online codelength) by layer; dotted: control task",
                       categorical)
    shown: dict[str, set[str]] = {"curves": set(), "sel": set(), "mdl": set()}
    for t in tasks:
        for m in models:
            res = m["tasks"].get(t["name"])
            if not res or res.get("skipped"):
                continue
            tag = m["tag"]
            color = colors[tag]
            dash = MODEL_DASH.get(m["role"], "solid")
            line = {"color": color, "dash": dash}
            ctrl_line = {"color": color, "dash": "dot", "width": 1}
            layers = res["layers"]
            xs = [x["layer"] for x in layers]
            where = at[t["name"]]
            band(curves, where, xs, [x["ci"][0] for x in layers], [x["ci"][1] for x in layers], color, tag)
            curves.add_trace(go.Scatter(x=xs, y=[x["score"] for x in layers], mode="lines+markers", name=tag,
                                        legendgroup=tag, showlegend=tag not in shown["curves"], line=line),
                             row=where[0], col=where[1])
            shown["curves"].add(tag)
            if m["role"] == "model":
                curves.add_hline(y=res["baseline"]["score"], line={"color": "#999", "width": 1},
                                 row=where[0], col=where[1])
            if "control" in layers[0]:
                curves.add_trace(go.Scatter(x=xs, y=[x["control"] for x in layers], mode="lines",
                                            name=f"{tag} control", legendgroup=tag, showlegend=False,
                                            line=ctrl_line), row=where[0], col=where[1])
                w = at_sel[t["name"]]
                band(sel, w, xs, [x["selectivity_ci"][0] for x in layers], [x["selectivity_ci"][1] for x in layers],
                     color, tag)
                sel.add_trace(go.Scatter(x=xs, y=[x["selectivity"] for x in layers], mode="lines+markers", name=tag,
                                         legendgroup=tag, showlegend=tag not in shown["sel"], line=line),
                              row=w[0], col=w[1])
                shown["sel"].add(tag)
            if "mdl" in layers[0]:
                w = at_mdl[t["name"]]
                mdl.add_trace(go.Scatter(x=xs, y=[x["mdl"]["compression"] for x in layers], mode="lines+markers",
                                         name=tag, legendgroup=tag, showlegend=tag not in shown["mdl"], line=line),
                              row=w[0], col=w[1])
                shown["mdl"].add(tag)
                if "control_compression" in layers[0]["mdl"]:
                    mdl.add_trace(go.Scatter(x=xs, y=[x["mdl"]["control_compression"] for x in layers],
                                             mode="lines", name=f"{tag} control", legendgroup=tag, showlegend=False,
                                             line=ctrl_line), row=w[0], col=w[1])

    # expected layers
    exp = go.Figure()
    for m in models:
        xs, ys, lo, hi, cs = [], [], [], [], []
        for t in tasks:
            res = m["tasks"].get(t["name"])
            if not res or res.get("skipped") or not res.get("expected_layer"):
                continue
            e = res["expected_layer"]
            if e.get("anchored") is None:
                continue
            xs.append(t["name"])
            ys.append(e["anchored"])
            ci = e.get("anchored_ci") or [None, None]
            lo.append(e["anchored"] - ci[0] if ci[0] is not None else 0)
            hi.append(ci[1] - e["anchored"] if ci[1] is not None else 0)
            cs.append(LEVEL_COLORS.get(t["level"], "#333"))
        exp.add_trace(go.Scatter(x=xs, y=ys, mode="markers", name=m["tag"],
                                 marker={"size": 11, "color": cs, "symbol": _symbol(m["role"]),
                                         "line": {"color": colors[m["tag"]], "width": 2}},
                                 error_y={"type": "data", "symmetric": False, "array": hi, "arrayminus": lo}))
        verdict = m.get("verdict", {})
        for level, v in verdict.get("levels", {}).items():
            if v.get("mean") is not None and m["role"] == "model":
                exp.add_hline(y=v["mean"], line={"color": LEVEL_COLORS.get(level, "#333"), "dash": "dash", "width": 1},
                              annotation_text=f"{level} mean {v['mean']:.2f}", annotation_position="right")
    exp.update_layout(title="Expected layer per task (anchored, 95% CI); colour = expected level; dashed = level means of the main model",
                      yaxis_title="expected layer", template="plotly_white", height=460)
    return {"curves": curves, "selectivity": sel, "expected_layers": exp, "mdl": mdl}


def _alpha(hex_color: str, a: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{a})"


def _symbol(role: str) -> str:
    return {"model": "circle", "random_init": "x", "compare": "diamond"}.get(role, "circle")


def figures_page(results: dict[str, Any]) -> str:
    """One standalone HTML page with every figure; plotly.js embedded once (works offline)."""
    figs = figures(results)
    parts = []
    for k, (name, fig) in enumerate(figs.items()):
        parts.append(f'<section id="{name}">' + fig.to_html(full_html=False, include_plotlyjs=(k == 0)) + "</section>")
    title = html.escape(f"stratascope probes — {results.get('main', '')}")
    verdict = html.escape(results.get("verdict", {}).get("message", ""))
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>" + title + "</title></head>"
            "<body style=\"font-family: sans-serif; margin: 1em 2em\"><h1>" + title + "</h1><p><b>Hierarchy verdict:</b> "
            + verdict + "</p>" + "\n".join(parts) + "</body></html>\n")


# ----------------------------------------------------------------------------- text
def _num(x: Any, digits: int = 3) -> str:
    if x is None:
        return "–"
    return f"{x:.{digits}f}"


def _ci(ci: Sequence[Any] | None, digits: int = 3) -> str:
    if not ci or ci[0] is None or ci[1] is None:
        return ""
    return f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


def _model(results: dict[str, Any], role: str) -> dict[str, Any] | None:
    return next((m for m in results["models"] if m["role"] == role), None)


def task_table(results: dict[str, Any], model: dict[str, Any]) -> list[str]:
    twin = _model(results, "random_init") if model["role"] == "model" else None
    head = ("| task | level | metric | peak layer | peak score [95% CI] | layer 0 | baseline | "
            "selectivity at peak [95% CI] | E[ℓ] [95% CI] | E[ℓ] Tenney | MDL compression (control) |")
    sep = "|---|---|---|---|---|---|---|---|---|---|---|"
    if twin is not None:
        head += " random-init peak (selectivity) |"
        sep += "---|"
    lines = [head, sep]
    for t in results["tasks"]:
        r = model["tasks"].get(t["name"])
        if r is None:
            continue
        if r.get("skipped"):
            cells = ["skipped: " + r["skipped"]] + ["–"] * (sep.count("|") - 5)
            lines.append(f"| {t['name']} | {t['level']} | " + " | ".join(cells) + " |")
            continue
        peak = r["peak_layer"]
        x = r["layers"][peak]
        e = r.get("expected_layer") or {}
        mdl = x.get("mdl") or {}
        mdl_s = "–" if not mdl else f"{_num(mdl.get('compression'), 2)} ({_num(mdl.get('control_compression'), 2)})"
        lex = " (lexical)" if r.get("lexical") else ""
        row = (f"| {t['name']} | {t['level']} | {r['metric']} | {peak} | {_num(x['score'])}{_ci(x['ci'])} | "
               f"{_num(r['layer0_score'])}{lex} | {_num(r['baseline']['score'])} | "
               f"{_num(x.get('selectivity'))}{_ci(x.get('selectivity_ci'))} | "
               f"{_num(e.get('anchored'), 2)}{_ci(e.get('anchored_ci'), 2)} | {_num(e.get('tenney'), 2)} | {mdl_s} |")
        if twin is not None:
            tr = twin["tasks"].get(t["name"])
            if tr and not tr.get("skipped"):
                tx = tr["layers"][tr["peak_layer"]]
                row += f" {_num(tr['peak_score'])} @ {tr['peak_layer']} ({_num(tx.get('selectivity'))}) |"
            else:
                row += " – |"
        lines.append(row)
    return lines


def verdict_lines(model: dict[str, Any]) -> list[str]:
    v = model["verdict"]
    status = {True: "HOLDS", False: "DOES NOT HOLD", None: "INCOMPLETE"}[v.get("holds")]
    lines = [f"**{model['tag']}: hierarchy {status}** — {v.get('message', '')}", "",
             "| level | tasks | mean expected layer [95% CI] |", "|---|---|---|"]
    for level, x in v.get("levels", {}).items():
        lines.append(f"| {level} | {', '.join(x['tasks'])} | {_num(x['mean'], 2)}{_ci(x['ci'], 2)} |")
    if v.get("pairs"):
        lines += ["", "| pair | in order in | difference [95% CI] |", "|---|---|---|"]
        for p in v["pairs"]:
            lines.append(f"| {p['lower']} < {p['upper']} | {100 * p['p_in_order']:.1f}% of resamples | "
                         f"{_num(p['difference'], 2)}{_ci(p['difference_ci'], 2)} |")
    return lines


def markdown_report(results: dict[str, Any], files: Sequence[str] = ()) -> str:
    main = results["models"][0]
    data = results["data"]
    cfg = results["config"]
    split = data.get("split_sentences", {})
    lines = [f"# Probing report: {main['tag']}", ""]
    src = data.get("path") or data.get("source") or "?"
    lines.append(f"Data: `{src}` — {data['n_sentences']} sentences, {data['n_words']} words; split by sentence "
                 f"train/val/test {split.get('train')}/{split.get('val')}/{split.get('test')}"
                 + (f"; {data['n_skipped_too_long']} sentences skipped (longer than a model's context)"
                    if data.get("n_skipped_too_long") else "") + ".")
    for tag, unk in (data.get("unknown_words") or {}).items():
        if unk.get("tokens"):
            top = ", ".join(f"`{w}`×{c}" for w, c in unk.get("top", [])[:5])
            lines.append(f"**Warning:** {unk['tokens']} of {unk['words']} words ({100 * unk['rate']:.1f}%) are not in "
                         f"`{tag}`'s vocabulary and were read as `<unk>` (most frequent: {top}); word-level "
                         f"probes on them measure the `<unk>` embedding.")
    lines.append("Models: " + "; ".join(
        f"`{m['tag']}` ({m['role'].replace('_', '-')}, {m['n_layer']} layers, d_model {m['d_model']})"
        for m in results["models"]) + ".")
    lines.append(f"Probes: linear (logistic / ridge), L2 from {cfg['lambdas']} chosen per layer on validation; "
                 f"{cfg['n_bootstrap']} bootstrap resamples of the test sentences; expected layer: {cfg['expected']}.")
    lines += ["", "## Verdict", ""]
    for m in results["models"]:
        lines += verdict_lines(m) + [""]
    lines += [f"## Tasks: {main['tag']}", ""] + task_table(results, main) + [""]
    others = [m for m in results["models"] if m["role"] != "model"]
    if others:
        lines += ["## Side by side", "",
                  "Peak score @ layer / expected layer (relative to depth) per model.", ""]
        head = "| task | level | " + " | ".join(f"`{m['tag']}`" for m in results["models"]) + " |"
        lines += [head, "|---|---|" + "---|" * len(results["models"])]
        for t in results["tasks"]:
            cells = []
            for m in results["models"]:
                r = m["tasks"].get(t["name"])
                if not r or r.get("skipped"):
                    cells.append("–")
                    continue
                e = r.get("expected_layer") or {}
                cells.append(f"{_num(r['peak_score'])} @ {r['peak_layer']} / {_num(e.get('anchored'), 2)} "
                             f"({_num(e.get('relative'), 2)})")
            lines.append(f"| {t['name']} | {t['level']} | " + " | ".join(cells) + " |")
        lines.append("")
    groups = []
    for t in results["tasks"]:
        r = main["tasks"].get(t["name"])
        if r and not r.get("skipped") and r["layers"][r["peak_layer"]].get("groups"):
            g = r["layers"][r["peak_layer"]]["groups"]
            groups.append(f"- `{t['name']}` at layer {r['peak_layer']}: " + "; ".join(
                f"{name} {_num(x['score'])}{_ci(x['ci'])} (n={x['n']})" for name, x in g.items()))
    if groups:
        lines += ["## Subsets", ""] + groups + [""]
    lexical = [t["name"] for t in results["tasks"]
               if main["tasks"].get(t["name"], {}).get("lexical")]
    lines += ["## How to read this", "",
              "- **score**: test accuracy (categorical) or R² (ordinal) of a linear probe on one layer's residual "
              "stream (layer 0 = embeddings). Intervals resample test sentences.",
              "- **selectivity** = task − control accuracy (Hewitt & Liang): the control task gives every word type "
              "a fixed random label, so high selectivity means the probe reads structure, not memorised words.",
              "- **layer 0 / lexical**: a curve that is already at its peak at layer 0 means the property is "
              "carried by the word itself" + (f" (here: {', '.join(lexical)})" if lexical else "") + ".",
              "- **E[ℓ]**: expected layer from cumulative probes on layers 0..ℓ (Tenney et al. 2019); the anchored "
              "value counts what layer 0 already holds as layer 0 and is what the verdict uses; Tenney's value is "
              "the centre of the gains after layer 0 (– when there are none).",
              "- **MDL compression** = uniform codelength / online codelength (Voita & Titov); ≈1 means the labels "
              "are no easier to transmit with the probe than without.",
              "- **random-init twin**: the same architecture with random weights; structure it also shows comes "
              "from the architecture and the words, not from training.", ""]
    if files:
        lines.append("Files: " + ", ".join(f"`{f}`" for f in files) + ".")
    return "\n".join(lines) + "\n"


def summary(results: dict[str, Any]) -> str:
    """A few lines for the terminal: verdict per model and the main model's peaks."""
    lines = []
    for m in results["models"]:
        v = m["verdict"]
        status = {True: "holds", False: "does not hold", None: "incomplete"}[v.get("holds")]
        lines.append(f"{m['tag']} ({m['role'].replace('_', '-')}): hierarchy {status} — {v.get('message', '')}")
    main = results["models"][0]
    lines.append(f"{'task':<20} {'level':<7} {'peak':>4} {'score':>7} {'sel':>7} {'E[l]':>6}")
    for t in results["tasks"]:
        r = main["tasks"].get(t["name"])
        if not r or r.get("skipped"):
            continue
        x = r["layers"][r["peak_layer"]]
        e = (r.get("expected_layer") or {}).get("anchored")
        lines.append(f"{t['name']:<20} {t['level']:<7} {r['peak_layer']:>4} {_num(x['score']):>7} "
                     f"{_num(x.get('selectivity')):>7} {_num(e, 2):>6}")
    return "\n".join(lines)
