"""Outputs of a probing run: results.json, results.csv, figures.html, report.md.

    paths = write_outputs(results, "runs/demo/probes/demo")
    print(summary(results))

Every function reads the typed ``probes.results.ProbeResults`` (a results.json dict is accepted
and read first). ``figures(results)`` returns the plotly figures (the dashboard reuses them);
``figures.html`` holds them all in one page with plotly.js embedded, so it opens offline. Files
are written whole or not at all (``corpus.durable``).
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from corpus.durable import atomic_write_json, atomic_write_text
from probes.results import (
    Interval,
    ModelResult,
    ProbeResults,
    TaskInfo,
    TaskResult,
    Verdict,
    settings_diff,
)

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
MODEL_SYMBOL = {"model": "circle", "random_init": "x", "compare": "diamond"}
PALETTE = ("#1f77b4", "#7f7f7f", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
_NO_INTERVAL = Interval(None, None)

Results = ProbeResults | dict[str, Any]


# ----------------------------------------------------------------------------- I/O
def save_results(results: Results, path: str | Path) -> Path:
    """results.json (strict JSON: undefined numbers are null)."""
    return atomic_write_json(path, ProbeResults.coerce(results).to_dict(), indent=1, allow_nan=False)


def load_results(path: str | Path) -> ProbeResults:
    """Read and check a results.json (a directory holding one, or the file); ValueError naming
    the file and the first bad field."""
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no probing results at {path}")
    try:
        return ProbeResults.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except ValueError as err:  # json.JSONDecodeError is one
        raise ValueError(f"{path}: {err}") from None


def write_outputs(results: Results, out_dir: str | Path, *, figures_html: bool = True) -> dict[str, Path]:
    """Write results.json, results.csv, figures.html and report.md into ``out_dir``."""
    results = ProbeResults.coerce(results)
    out = Path(out_dir)
    paths = {"results": save_results(results, out / RESULTS_FILE),
             "csv": atomic_write_text(out / CSV_FILE, to_csv(results))}
    if figures_html:
        paths["figures"] = atomic_write_text(out / FIGURES_FILE, figures_page(results))
    report = markdown_report(results, files=[p.name for p in paths.values()] + [REPORT_FILE])
    paths["report"] = atomic_write_text(out / REPORT_FILE, report)
    return paths


class ResultsExistError(ValueError):
    """The output directory holds results made with other settings."""


def check_overwrite(out_dir: str | Path, settings: dict[str, Any]) -> None:
    """Refuse to replace ``out_dir``'s results.json when it was made with other ``settings``
    (``ProbeResults.settings()``), naming what differs; a rerun with the same settings may
    replace it."""
    path = Path(out_dir) / RESULTS_FILE
    if not path.is_file():
        return
    try:
        old = load_results(path).settings()
    except ValueError as err:
        raise ResultsExistError(f"{path} exists and cannot be read ({err}); pass --force to replace it, or choose "
                                f"another --out") from None
    diff = settings_diff(old, settings)
    if diff:
        raise ResultsExistError(f"{path} holds results made with other settings ({'; '.join(diff)}); pass --force "
                                f"to replace them, or choose another --out")


# ----------------------------------------------------------------------------- CSV
def _pair(ci: Interval | None) -> Interval:
    return ci or _NO_INTERVAL


def _csv_row(m: ModelResult, t: TaskResult, layer: int) -> dict[str, Any]:
    x = t.layers[layer]
    cu = t.cumulative[layer] if t.cumulative is not None and layer < len(t.cumulative) else None
    ctrl = x.control
    return {
        "model": m.tag, "role": m.role, "task": t.name, "level": t.info.level, "kind": t.info.kind,
        "metric": t.metric, "layer": x.layer, "score": x.score, "ci_low": x.ci.low, "ci_high": x.ci.high,
        "control": ctrl and ctrl.score, "control_ci_low": _pair(ctrl and ctrl.ci).low,
        "control_ci_high": _pair(ctrl and ctrl.ci).high, "selectivity": x.selectivity,
        "selectivity_ci_low": _pair(x.selectivity_ci).low, "selectivity_ci_high": _pair(x.selectivity_ci).high,
        "baseline": t.baseline.score if t.baseline else None, "cumulative": cu and cu.score,
        "cumulative_ci_low": _pair(cu and cu.ci).low, "cumulative_ci_high": _pair(cu and cu.ci).high,
        "mdl_codelength_bits": x.mdl and x.mdl.codelength_bits, "mdl_compression": x.mdl and x.mdl.compression,
        "mdl_control_compression": x.mdl and x.mdl.control_compression, "spearman": x.spearman, "lambda": x.lam,
    }


def csv_rows(results: Results) -> list[dict[str, Any]]:
    """One row per model × task × layer (skipped tasks have none)."""
    results = ProbeResults.coerce(results)
    return [_csv_row(m, t, l) for m in results.models for t in m.tasks.values() if t.skipped is None
            for l in range(len(t.layers))]


def to_csv(results: Results) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in csv_rows(results):
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return buf.getvalue()


# ----------------------------------------------------------------------------- figures
def _grid(title: str, tasks: list[TaskInfo]) -> tuple[Any, dict[str, tuple[int, int]]]:
    """A figure with a subplot per task, and each task's (row, col)."""
    from plotly.subplots import make_subplots

    n = max(1, len(tasks))
    cols = min(4, n)
    rows = math.ceil(n / cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[f"{t.name} ({t.level})" for t in tasks],
                        horizontal_spacing=0.06, vertical_spacing=min(0.14, 0.5 / rows) if rows > 1 else 0.1)
    fig.update_layout(title=title, height=280 * rows + 80, template="plotly_white",
                      legend={"orientation": "h", "y": -0.08})
    fig.update_xaxes(dtick=1)
    for c in range(1, cols + 1):  # the axis title on the bottom row only
        fig.update_xaxes(title_text="layer (0 = embeddings)", row=rows, col=c)
    return fig, {t.name: (k // cols + 1, k % cols + 1) for k, t in enumerate(tasks)}


def _band(fig: Any, where: tuple[int, int], xs: list[int], cis: list[Interval], color: str, tag: str) -> None:
    import plotly.graph_objects as go

    lo, hi = [c.low for c in cis], [c.high for c in cis]
    fig.add_trace(go.Scatter(x=xs + xs[::-1], y=hi + lo[::-1], mode="lines", fill="toself", line={"width": 0},
                             fillcolor=_alpha(color, 0.15), hoverinfo="skip", showlegend=False,
                             legendgroup=tag), row=where[0], col=where[1])


class _Grids:
    """The three per-task figures (score curves, selectivity, MDL) and which legends they show."""

    def __init__(self, tasks: list[TaskInfo]):
        categorical = [t for t in tasks if t.categorical]
        self.curves, self.at = _grid("Probe score by layer (95% bootstrap intervals); dotted: control task; "
                                     "grey line: majority / mean baseline", tasks)
        self.sel, self.at_sel = _grid("Selectivity (task − control accuracy) by layer, categorical tasks",
                                      categorical)
        self.mdl, self.at_mdl = _grid("MDL compression (uniform codelength / online codelength) by layer; "
                                      "dotted: control task", categorical)
        self.shown: dict[str, set[str]] = {"curves": set(), "sel": set(), "mdl": set()}

    def legend(self, which: str, tag: str) -> bool:
        """Show ``tag`` in the legend of ``which`` the first time only."""
        first = tag not in self.shown[which]
        self.shown[which].add(tag)
        return first

    def add(self, m: ModelResult, res: TaskResult, color: str) -> None:
        import plotly.graph_objects as go

        tag, layers, name = m.tag, res.layers, res.name
        line = {"color": color, "dash": MODEL_DASH.get(m.role, "solid")}
        ctrl_line = {"color": color, "dash": "dot", "width": 1}
        xs = [x.layer for x in layers]
        r, c = self.at[name]
        _band(self.curves, (r, c), xs, [x.ci for x in layers], color, tag)
        self.curves.add_trace(go.Scatter(x=xs, y=[x.score for x in layers], mode="lines+markers", name=tag,
                                         legendgroup=tag, showlegend=self.legend("curves", tag), line=line),
                              row=r, col=c)
        if m.role == "model" and res.baseline is not None:
            self.curves.add_hline(y=res.baseline.score, line={"color": "#999", "width": 1}, row=r, col=c)
        if layers[0].control is not None:
            self.curves.add_trace(go.Scatter(x=xs, y=[x.control.score for x in layers], mode="lines",
                                             name=f"{tag} control", legendgroup=tag, showlegend=False,
                                             line=ctrl_line), row=r, col=c)
            w = self.at_sel[name]
            _band(self.sel, w, xs, [x.control.selectivity_ci for x in layers], color, tag)
            self.sel.add_trace(go.Scatter(x=xs, y=[x.selectivity for x in layers], mode="lines+markers", name=tag,
                                          legendgroup=tag, showlegend=self.legend("sel", tag), line=line),
                               row=w[0], col=w[1])
        if layers[0].mdl is not None:
            w = self.at_mdl[name]
            self.mdl.add_trace(go.Scatter(x=xs, y=[x.mdl.compression for x in layers], mode="lines+markers",
                                          name=tag, legendgroup=tag, showlegend=self.legend("mdl", tag), line=line),
                               row=w[0], col=w[1])
            if layers[0].mdl.control_codelength_bits is not None:
                self.mdl.add_trace(go.Scatter(x=xs, y=[x.mdl.control_compression for x in layers], mode="lines",
                                              name=f"{tag} control", legendgroup=tag, showlegend=False,
                                              line=ctrl_line), row=w[0], col=w[1])


def _expected_figure(results: ProbeResults, colors: dict[str, str]) -> Any:
    import plotly.graph_objects as go

    exp = go.Figure()
    for m in results.models:
        xs, ys, lo, hi, cs = [], [], [], [], []
        for t in results.tasks:
            res = m.tasks.get(t.name)
            e = res.expected_layer if res is not None and res.skipped is None else None
            if e is None or e.anchored is None:
                continue
            xs.append(t.name)
            ys.append(e.anchored)
            lo.append(e.anchored - e.anchored_ci.low if e.anchored_ci.low is not None else 0)
            hi.append(e.anchored_ci.high - e.anchored if e.anchored_ci.high is not None else 0)
            cs.append(LEVEL_COLORS.get(t.level, "#333"))
        exp.add_trace(go.Scatter(x=xs, y=ys, mode="markers", name=m.tag,
                                 marker={"size": 11, "color": cs, "symbol": MODEL_SYMBOL.get(m.role, "circle"),
                                         "line": {"color": colors[m.tag], "width": 2}},
                                 error_y={"type": "data", "symmetric": False, "array": hi, "arrayminus": lo}))
        if m.role != "model":
            continue
        for level, v in m.verdict.levels.items():
            if v.mean is not None:
                exp.add_hline(y=v.mean, line={"color": LEVEL_COLORS.get(level, "#333"), "dash": "dash", "width": 1},
                              annotation_text=f"{level} mean {v.mean:.2f}", annotation_position="right")
    exp.update_layout(title="Expected layer per task (anchored, 95% CI); colour = expected level; dashed = level "
                            "means of the main model",
                      yaxis_title="expected layer", template="plotly_white", height=460)
    return exp


def figures(results: Results) -> dict[str, Any]:
    """Plotly figures: "curves" (score by layer per task and model, with intervals, control and
    baseline), "selectivity", "expected_layers" and "mdl" (compression by layer)."""
    results = ProbeResults.coerce(results)
    colors = {m.tag: PALETTE[k % len(PALETTE)] for k, m in enumerate(results.models)}
    grids = _Grids(results.tasks)
    for t in results.tasks:
        for m in results.models:
            res = m.tasks.get(t.name)
            if res is not None and res.skipped is None:
                grids.add(m, res, colors[m.tag])
    return {"curves": grids.curves, "selectivity": grids.sel, "expected_layers": _expected_figure(results, colors),
            "mdl": grids.mdl}


def _alpha(hex_color: str, a: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{a})"


def figures_page(results: Results) -> str:
    """One standalone HTML page with every figure; plotly.js embedded once (works offline)."""
    results = ProbeResults.coerce(results)
    figs = figures(results)
    parts = []
    for k, (name, fig) in enumerate(figs.items()):
        parts.append(f'<section id="{name}">' + fig.to_html(full_html=False, include_plotlyjs=(k == 0)) + "</section>")
    title = html.escape(f"stratascope probes — {results.main.tag}")
    verdict = html.escape(results.verdict.message)
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>" + title + "</title></head>"
            "<body style=\"font-family: sans-serif; margin: 1em 2em\"><h1>" + title + "</h1><p><b>Hierarchy verdict:</b> "
            + verdict + "</p>" + "\n".join(parts) + "</body></html>\n")


# ----------------------------------------------------------------------------- text
def _num(x: Any, digits: int = 3) -> str:
    if x is None:
        return "–"
    return f"{x:.{digits}f}"


def _ci(ci: Interval | None, digits: int = 3) -> str:
    if ci is None or ci.low is None or ci.high is None:
        return ""
    return f" [{ci.low:.{digits}f}, {ci.high:.{digits}f}]"


def _task_row(t: TaskInfo, r: TaskResult, n_cells: int) -> str:
    if r.skipped is not None:
        cells = ["skipped: " + r.skipped] + ["–"] * (n_cells - 1)
        return f"| {t.name} | {t.level} | " + " | ".join(cells) + " |"
    x = r.peak
    e = r.expected_layer
    mdl_s = "–" if x.mdl is None else f"{_num(x.mdl.compression, 2)} ({_num(x.mdl.control_compression, 2)})"
    lex = " (lexical)" if r.lexical else ""
    return (f"| {t.name} | {t.level} | {r.metric} | {r.peak_layer} | {_num(x.score)}{_ci(x.ci)} | "
            f"{_num(r.layer0_score)}{lex} | {_num(r.baseline.score if r.baseline else None)} | "
            f"{_num(x.selectivity)}{_ci(x.selectivity_ci)} | "
            f"{_num(e and e.anchored, 2)}{_ci(e and e.anchored_ci, 2)} | {_num(e and e.tenney, 2)} | {mdl_s} |")


def task_table(results: Results, model: ModelResult) -> list[str]:
    """The markdown table of one model's tasks (and the twin's peaks beside the main model's)."""
    results = ProbeResults.coerce(results)
    twin = results.model("random_init") if model.role == "model" else None
    head = ("| task | level | metric | peak layer | peak score [95% CI] | layer 0 | baseline | "
            "selectivity at peak [95% CI] | E[ℓ] [95% CI] | E[ℓ] Tenney | MDL compression (control) |")
    sep = "|---|---|---|---|---|---|---|---|---|---|---|"
    if twin is not None:
        head += " random-init peak (selectivity) |"
        sep += "---|"
    lines = [head, sep]
    for t in results.tasks:
        r = model.tasks.get(t.name)
        if r is None:
            continue
        row = _task_row(t, r, sep.count("|") - 4)
        if twin is not None and r.skipped is None:
            tr = twin.tasks.get(t.name)
            if tr is not None and tr.skipped is None:
                row += f" {_num(tr.peak_score)} @ {tr.peak_layer} ({_num(tr.peak.selectivity)}) |"
            else:
                row += " – |"
        lines.append(row)
    return lines


def verdict_lines(model: ModelResult) -> list[str]:
    v: Verdict = model.verdict
    lines = [f"**{model.tag}: hierarchy {v.status.upper()}** — {v.message}", "",
             "| level | tasks | mean expected layer [95% CI] |", "|---|---|---|"]
    for level, x in v.levels.items():
        lines.append(f"| {level} | {', '.join(x.tasks)} | {_num(x.mean, 2)}{_ci(x.ci, 2)} |")
    if v.pairs:
        lines += ["", "| pair | in order in | difference [95% CI] |", "|---|---|---|"]
        for p in v.pairs:
            lines.append(f"| {p.lower} < {p.upper} | {100 * p.p_in_order:.1f}% of resamples | "
                         f"{_num(p.difference, 2)}{_ci(p.difference_ci, 2)} |")
    return lines


def _data_lines(results: ProbeResults) -> list[str]:
    data, cfg = results.data, results.config
    split = data.split_sentences
    src = data.path or data.extra.get("source") or "?"
    lines = [f"Data: `{src}` — {data.n_sentences} sentences, {data.n_words} words; split by sentence "
             f"train/val/test {split.get('train')}/{split.get('val')}/{split.get('test')}"
             + (f"; {data.n_skipped_too_long} sentences skipped (longer than a model's context)"
                if data.n_skipped_too_long else "") + "."]
    for tag, unk in data.unknown_words.items():
        if unk.tokens:
            top = ", ".join(f"`{w}`×{c}" for w, c in unk.top[:5])
            lines.append(f"**Warning:** {unk.tokens} of {unk.words} words ({100 * unk.rate:.1f}%) are not in "
                         f"`{tag}`'s vocabulary and were read as `<unk>` (most frequent: {top}); word-level "
                         f"probes on them measure the `<unk>` embedding.")
    lines.append("Models: " + "; ".join(
        f"`{m.tag}` ({m.role.replace('_', '-')}, {m.n_layer} layers, d_model {m.d_model})"
        for m in results.models) + ".")
    lines.append(f"Probes: linear (logistic / ridge), L2 from {list(cfg.lambdas)} chosen per layer on validation; "
                 f"{cfg.n_bootstrap} bootstrap resamples of the test sentences; expected layer: {cfg.expected}.")
    return lines


def _side_by_side(results: ProbeResults) -> list[str]:
    if all(m.role == "model" for m in results.models):
        return []
    lines = ["## Side by side", "", "Peak score @ layer / expected layer (relative to depth) per model.", "",
             "| task | level | " + " | ".join(f"`{m.tag}`" for m in results.models) + " |",
             "|---|---|" + "---|" * len(results.models)]
    for t in results.tasks:
        cells = []
        for m in results.models:
            r = m.tasks.get(t.name)
            if r is None or r.skipped is not None:
                cells.append("–")
                continue
            e = r.expected_layer
            cells.append(f"{_num(r.peak_score)} @ {r.peak_layer} / {_num(e and e.anchored, 2)} "
                         f"({_num(e and e.relative, 2)})")
        lines.append(f"| {t.name} | {t.level} | " + " | ".join(cells) + " |")
    return lines + [""]


def _subsets(results: ProbeResults) -> list[str]:
    groups = []
    for t in results.tasks:
        r = results.main.tasks.get(t.name)
        if r is not None and r.skipped is None and r.peak.groups:
            groups.append(f"- `{t.name}` at layer {r.peak_layer}: " + "; ".join(
                f"{name} {_num(x.score)}{_ci(x.ci)} (n={x.n})" for name, x in r.peak.groups.items()))
    return ["## Subsets", ""] + groups + [""] if groups else []


def _how_to_read(lexical: list[str]) -> list[str]:
    return ["## How to read this", "",
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


def markdown_report(results: Results, files: Sequence[str] = ()) -> str:
    results = ProbeResults.coerce(results)
    main = results.main
    lines = [f"# Probing report: {main.tag}", "", *_data_lines(results), "", "## Verdict", ""]
    for m in results.models:
        lines += verdict_lines(m) + [""]
    lines += [f"## Tasks: {main.tag}", ""] + task_table(results, main) + [""]
    lines += _side_by_side(results) + _subsets(results)
    lexical = [t.name for t in results.tasks if (r := main.tasks.get(t.name)) is not None and r.lexical]
    lines += _how_to_read(lexical)
    if files:
        lines.append("Files: " + ", ".join(f"`{f}`" for f in files) + ".")
    return "\n".join(lines) + "\n"


def summary(results: Results) -> str:
    """A few lines for the terminal: verdict per model and the main model's peaks."""
    results = ProbeResults.coerce(results)
    lines = [f"{m.tag} ({m.role.replace('_', '-')}): hierarchy {m.verdict.status} — {m.verdict.message}"
             for m in results.models]
    lines.append(f"{'task':<20} {'level':<7} {'peak':>4} {'score':>7} {'sel':>7} {'E[l]':>6}")
    for t in results.tasks:
        r = results.main.tasks.get(t.name)
        if r is None or r.skipped is not None:
            continue
        e = r.expected_layer.anchored if r.expected_layer else None
        lines.append(f"{t.name:<20} {t.level:<7} {r.peak_layer:>4} {_num(r.peak.score):>7} "
                     f"{_num(r.peak.selectivity):>7} {_num(e, 2):>6}")
    return "\n".join(lines)


__all__ = ["RESULTS_FILE", "CSV_FILE", "FIGURES_FILE", "REPORT_FILE", "save_results", "load_results",
           "write_outputs", "check_overwrite", "ResultsExistError", "csv_rows", "to_csv", "figures", "figures_page",
           "markdown_report", "task_table", "verdict_lines", "summary"]
