"""Outputs of a probing run: results.json, results.csv, figures.html, report.md (and erasure.csv
when the run includes erasure).

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
from probes.depth import EXPECTED_KINDS
from probes.results import (
    ConceptErasure,
    ErasureResult,
    ExpectedLayer,
    Interval,
    Measurement,
    ModelResult,
    ProbeResults,
    TaskInfo,
    TaskResult,
    Verdict,
    settings_diff,
)

RESULTS_FILE = "results.json"
CSV_FILE = "results.csv"
ERASURE_CSV_FILE = "erasure.csv"
FIGURES_FILE = "figures.html"
REPORT_FILE = "report.md"

CSV_COLUMNS = (
    "model", "role", "task", "level", "kind", "metric", "layer", "score", "ci_low", "ci_high",
    "control", "control_ci_low", "control_ci_high", "selectivity", "selectivity_ci_low", "selectivity_ci_high",
    "baseline", "cumulative", "cumulative_ci_low", "cumulative_ci_high", "mdl_codelength_bits",
    "mdl_compression", "mdl_control_compression", "spearman", "lambda",
)
ERASURE_MEASURES = ("agreement", "loss_delta", "probe_accuracy")
ERASURE_CSV_COLUMNS = (
    "model", "role", "concept", "method", "rank", "majority", "layer",
    *(f"{prefix}{m}{end}" for prefix in ("", "random_") for m in ERASURE_MEASURES
      for end in ("", "_ci_low", "_ci_high")),
    "clean_agreement", "clean_loss",
)
EXPECTED_NAMES = {"anchored": "anchored", "tenney": "Tenney", "mdl": "MDL"}
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
    if any(m.erasure is not None for m in results.models):
        paths["erasure_csv"] = atomic_write_text(out / ERASURE_CSV_FILE, erasure_csv(results))
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


def _write_csv(columns: Sequence[str], rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return buf.getvalue()


def to_csv(results: Results) -> str:
    return _write_csv(CSV_COLUMNS, csv_rows(results))


def _measure_cells(prefix: str, name: str, m: Measurement | None) -> dict[str, Any]:
    ci = m.ci if m is not None else _NO_INTERVAL
    return {f"{prefix}{name}": m and m.value, f"{prefix}{name}_ci_low": ci.low, f"{prefix}{name}_ci_high": ci.high}


def erasure_csv_rows(results: Results) -> list[dict[str, Any]]:
    """One row per model × erased concept × layer (models without erasure have none)."""
    results = ProbeResults.coerce(results)
    rows = []
    for m in results.models:
        e = m.erasure
        if e is None:
            continue
        clean_agreement = e.clean.agreement and e.clean.agreement.value
        clean_loss = e.clean.loss and e.clean.loss.value
        for c in e.concepts.values():
            for x in c.layers:
                row = {"model": m.tag, "role": m.role, "concept": c.task, "method": e.method, "rank": c.rank,
                       "majority": c.majority, "layer": x.layer}
                for prefix, scores in (("", x.erased), ("random_", x.random)):
                    for name in ERASURE_MEASURES:
                        row.update(_measure_cells(prefix, name, getattr(scores, name)))
                rows.append({**row, "clean_agreement": clean_agreement, "clean_loss": clean_loss})
    return rows


def erasure_csv(results: Results) -> str:
    """erasure.csv: ``ERASURE_CSV_COLUMNS``, one row per model × concept × layer."""
    return _write_csv(ERASURE_CSV_COLUMNS, erasure_csv_rows(results))


# ----------------------------------------------------------------------------- figures
def _grid(title: str, tasks: list[TaskInfo]) -> tuple[Any, dict[str, tuple[int, int]]]:
    """A figure with a subplot per task, and each task's (row, col)."""
    from plotly.subplots import make_subplots

    n = max(1, len(tasks))
    cols = min(4, n)
    rows = math.ceil(n / cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[f"{t.name} ({t.level})" for t in tasks],
                        horizontal_spacing=0.06, vertical_spacing=min(0.14, 0.5 / rows) if rows > 1 else 0.1)
    fig.update_layout(title=title, template="plotly_white")
    _legend_below(fig, 280 * rows + 80)
    fig.update_xaxes(dtick=1)
    for c in range(1, cols + 1):  # the axis title on the bottom row only
        fig.update_xaxes(title_text="layer (0 = embeddings)", row=rows, col=c)
    return fig, {t.name: (k // cols + 1, k % cols + 1) for k, t in enumerate(tasks)}


def _legend_below(fig: Any, height: int, gap: int = 64, top: int = 100) -> None:
    """Set the height and put a horizontal legend ``gap`` px below the plotting area, clear of the
    x-axis titles (a legend placed in paper units would overlap them on short figures)."""
    bottom = gap + 40
    fig.update_layout(height=height, margin={"t": top, "b": bottom},
                      legend={"orientation": "h", "yanchor": "top", "x": 0, "y": -gap / (height - top - bottom)})


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
    kind = results.verdict.expected
    for m in results.models:
        xs, ys, lo, hi, cs = [], [], [], [], []
        for t in results.tasks:
            res = m.tasks.get(t.name)
            value, ci = _expected_value(res.expected_layer if res is not None and res.skipped is None else None, kind)
            if value is None:
                continue
            ci = ci or _NO_INTERVAL
            xs.append(t.name)
            ys.append(value)
            lo.append(value - ci.low if ci.low is not None else 0)
            hi.append(ci.high - value if ci.high is not None else 0)
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
    exp.update_layout(title=f"Expected layer per task ({EXPECTED_NAMES.get(kind, kind)}: the verdict's definition; "
                            f"95% CI)<br><sup>colour = expected level; dashed = level means of the main model</sup>",
                      yaxis_title="expected layer", template="plotly_white", height=460)
    return exp


ERASURE_TITLE = ("Causal erasure by layer<br><sup>after erasing the concept at that layer (95% bands); dotted: a "
                 "random subspace of equal rank; dash-dot: clean model</sup>")
# the rows of the erasure figure: (measure, y-axis title)
ERASURE_ROWS = (("agreement", "attractor agreement"), ("loss_delta", "Δ next-token loss (nats)"),
                ("probe_accuracy", "probe accuracy after erasure"))


def _erasure_figure(results: ProbeResults, colors: dict[str, str]) -> Any:
    """Per erased concept (columns): attractor agreement, loss change and the probe's accuracy after
    erasure (rows) by layer, for every model with erasure, against the random control and the
    clean level (agreement: the clean model's; loss change: 0; probe accuracy: the majority)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    erased = [m for m in results.models if m.erasure is not None]
    names = list(dict.fromkeys(name for m in erased for name in m.erasure.concepts))
    fig = make_subplots(rows=len(ERASURE_ROWS), cols=len(names), shared_xaxes=True, horizontal_spacing=0.08,
                        vertical_spacing=0.07, subplot_titles=names + [""] * (len(names) * (len(ERASURE_ROWS) - 1)))
    shown: set[str] = set()

    def add(trace: Any, row: int, col: int, legend: str | None = None) -> None:
        trace.showlegend = legend is not None and legend not in shown
        if legend is not None:
            shown.add(legend)
        fig.add_trace(trace, row=row, col=col)

    for col, name in enumerate(names, start=1):
        for m in erased:
            concept = m.erasure.concepts.get(name)
            if concept is None:
                continue
            color, tag = colors[m.tag], m.tag
            xs = [x.layer for x in concept.layers]
            line = {"color": color, "dash": MODEL_DASH.get(m.role, "solid")}
            for row, (measure, _) in enumerate(ERASURE_ROWS, start=1):
                own = [getattr(x.erased, measure) for x in concept.layers]
                if all(v is None for v in own):
                    continue
                _band(fig, (row, col), xs, [v.ci if v else _NO_INTERVAL for v in own], color, tag)
                add(go.Scatter(x=xs, y=[v and v.value for v in own], mode="lines+markers", name=f"{tag}: erased",
                               legendgroup=tag, line=line), row, col, f"{tag}: erased")
                rand = [getattr(x.random, measure) for x in concept.layers]
                add(go.Scatter(x=xs, y=[v and v.value for v in rand], mode="lines",
                               name=f"{tag}: random subspace", legendgroup=tag,
                               line={"color": color, "dash": "dot", "width": 1.5}), row, col, f"{tag}: random subspace")
            level = m.erasure.clean.agreement and m.erasure.clean.agreement.value
            if level is not None and any(x.erased.agreement for x in concept.layers):
                add(go.Scatter(x=[xs[0], xs[-1]], y=[level, level], mode="lines", name=f"{tag}: clean",
                               legendgroup=tag, line={"color": color, "dash": "dashdot", "width": 1}),
                    1, col, f"{tag}: clean")
            if m.role == "model":
                fig.add_hline(y=0, line={"color": "#999", "width": 1}, row=2, col=col)
                if concept.majority is not None:
                    fig.add_hline(y=concept.majority, line={"color": "#999", "width": 1}, row=3, col=col,
                                  annotation_text="majority", annotation_position="bottom right")
        if not any(x.erased.agreement for m in erased if name in m.erasure.concepts
                   for x in m.erasure.concepts[name].layers):
            cell = fig.get_subplot(1, col)  # paper units: plotly.js misplaces "domain" refs of an empty cell
            fig.add_annotation(text="no minimal pairs measured", showarrow=False, xref="paper", yref="paper",
                               x=sum(cell.xaxis.domain) / 2, y=sum(cell.yaxis.domain) / 2, font={"color": "#999"})
    for row, (_, title) in enumerate(ERASURE_ROWS, start=1):
        fig.update_yaxes(title_text=title, row=row, col=1)
    for col in range(1, len(names) + 1):
        fig.update_xaxes(title_text="layer erased (0 = embeddings)", row=len(ERASURE_ROWS), col=col)
    fig.update_xaxes(dtick=1)
    fig.update_layout(title=ERASURE_TITLE, template="plotly_white")
    _legend_below(fig, 260 * len(ERASURE_ROWS) + 140)
    return fig


def figures(results: Results) -> dict[str, Any]:
    """Plotly figures: "curves" (score by layer per task and model, with intervals, control and
    baseline), "erasure" (when a model has erasure results: behaviour after erasure by layer
    against the random control), "selectivity", "expected_layers" and "mdl" (compression by
    layer)."""
    results = ProbeResults.coerce(results)
    colors = {m.tag: PALETTE[k % len(PALETTE)] for k, m in enumerate(results.models)}
    grids = _Grids(results.tasks)
    for t in results.tasks:
        for m in results.models:
            res = m.tasks.get(t.name)
            if res is not None and res.skipped is None:
                grids.add(m, res, colors[m.tag])
    out = {"curves": grids.curves}
    if any(m.erasure is not None for m in results.models):
        out["erasure"] = _erasure_figure(results, colors)
    return {**out, "selectivity": grids.sel, "expected_layers": _expected_figure(results, colors), "mdl": grids.mdl}


def _alpha(hex_color: str, a: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{a})"


def figures_page(results: Results) -> str:
    """One standalone HTML page with every figure; plotly.js embedded once (works offline)."""
    results = ProbeResults.coerce(results)
    figs = figures(results)
    readings = "".join(f"<li>{html.escape(m.tag)}: {html.escape(c.reading)}</li>" for m in results.models
                       if m.erasure is not None for c in m.erasure.concepts.values())
    parts = []
    for k, (name, fig) in enumerate(figs.items()):
        head = f"<p><b>Erasure, one line per concept:</b></p><ul>{readings}</ul>" if name == "erasure" else ""
        parts.append(f'<section id="{name}">' + head + fig.to_html(full_html=False, include_plotlyjs=(k == 0))
                     + "</section>")
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


def _expected_value(e: ExpectedLayer | None, kind: str) -> tuple[float | None, Interval | None]:
    """The expected layer of one definition and its interval (None when the run lacks it)."""
    if e is None:
        return None, None
    return getattr(e, kind, None), getattr(e, f"{kind}_ci", None)


def expected_by_kind(task: TaskResult) -> dict[str, tuple[float | None, Interval | None]]:
    """The task's expected layer and interval under every definition (``probes.depth.EXPECTED_KINDS``)."""
    e = task.expected_layer if task.skipped is None else None
    return {kind: _expected_value(e, kind) for kind in EXPECTED_KINDS}


def expected_table(results: Results, model: ModelResult) -> list[str]:
    """Per task, the expected layer under every definition side by side; the verdict's marked."""
    results = ProbeResults.coerce(results)
    used = model.verdict.expected
    heads = [EXPECTED_NAMES.get(k, k) + (" (verdict)" if k == used else "") + " [95% CI]" for k in EXPECTED_KINDS]
    lines = [f"**`{model.tag}`** ({model.role.replace('_', '-')}): the verdict uses the "
             f"**{EXPECTED_NAMES.get(used, used)}** expected layer (`--expected {used}`).", "",
             "| task | level | " + " | ".join(heads) + " |", "|---|---|" + "---|" * len(heads)]
    for t in results.tasks:
        r = model.tasks.get(t.name)
        if r is None or r.skipped is not None:
            continue
        cells = [f"{_num(value, 2)}{_ci(ci, 2)}" for value, ci in expected_by_kind(r).values()]
        lines.append(f"| {t.name} | {t.level} | " + " | ".join(cells) + " |")
    return lines + [""] + verdicts_by_kind(model)


def verdicts_by_kind(model: ModelResult) -> list[str]:
    """One line per definition the run has: the hierarchy verdict with its expected layers, the
    one the run's verdict uses marked (files without ``verdicts``: that one alone)."""
    used = model.verdict.expected
    verdicts = model.verdicts or {used: model.verdict}
    return [f"- Verdict with **{EXPECTED_NAMES.get(kind, kind)}**" + (" (the run's verdict)" if kind == used else "")
            + f": {v.message}" for kind, v in verdicts.items()]


def other_verdicts_line(model: ModelResult) -> str | None:
    """The status of the verdict under each definition other than the run's, on one line (None
    without any)."""
    others = [(kind, v) for kind, v in model.verdicts.items() if kind != model.verdict.expected]
    if not others:
        return None
    parts = [f"{EXPECTED_NAMES.get(kind, kind)} {v.status}"
             + ("" if v.p_order is None else f" ({100 * v.p_order:.0f}% in order)") for kind, v in others]
    return "  other expected-layer definitions: " + ", ".join(parts)


def _expected_section(results: ProbeResults) -> list[str]:
    lines = ["## Expected layer by definition", ""]
    for m in results.models:
        lines += expected_table(results, m) + [""]
    return lines


def _pct(m: Measurement | None, unit: str = "") -> str:
    """A fraction as a percentage with its interval: 52.1 [49.0, 55.2] (52.1% [49.0, 55.2] with unit "%")."""
    if m is None or m.value is None:
        return "–"
    ci = "" if m.ci.low is None or m.ci.high is None else f" [{100 * m.ci.low:.1f}, {100 * m.ci.high:.1f}]"
    return f"{100 * m.value:.1f}{unit}{ci}"


def _signed(m: Measurement | None) -> str:
    """A loss change with its interval: +0.310 [+0.290, +0.330]."""
    if m is None or m.value is None:
        return "–"
    ci = "" if m.ci.low is None or m.ci.high is None else f" [{m.ci.low:+.3f}, {m.ci.high:+.3f}]"
    return f"{m.value:+.3f}{ci}"


def concept_table(concept: ConceptErasure) -> list[str]:
    """One erased concept: per layer, the behaviour after erasure beside the random control (the
    agreement columns only when minimal pairs were measured)."""
    with_pairs = any(x.erased.agreement is not None for x in concept.layers)
    rank = f"random rank-{concept.rank}"
    heads = ["layer"]
    if with_pairs:
        heads += ["agreement after erasure % [95% CI]", f"{rank}: agreement %"]
    majority = "–" if concept.majority is None else f"{100 * concept.majority:.1f}"
    heads += ["loss change (nats/token) [95% CI]", f"{rank}: loss change",
              f"probe accuracy after erasure % (majority {majority})", f"{rank}: probe accuracy %"]
    lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    for x in concept.layers:
        cells = [str(x.layer)]
        if with_pairs:
            cells += [_pct(x.erased.agreement), _pct(x.random.agreement)]
        cells += [_signed(x.erased.loss_delta), _signed(x.random.loss_delta), _pct(x.erased.probe_accuracy),
                  _pct(x.random.probe_accuracy)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def erasure_lines(model: ModelResult) -> list[str]:
    """The erasure section of one model: method and controls, the clean numbers, and per concept
    the reading and the table (empty when the model has no erasure results)."""
    e: ErasureResult | None = model.erasure
    if e is None:
        return []
    lines = [f"### Erasure: `{model.tag}` ({model.role.replace('_', '-')})", "",
             f"{e.method.upper()} erasure of each concept in the residual stream at one layer at a time, at every "
             f"position (layer 0 = embeddings, layer ℓ = after block ℓ−1), on held-out sentences. Control: a random "
             f"subspace of the same rank ({e.n_random} draws, their mean). 95% intervals from {e.n_bootstrap} "
             f"bootstrap resamples of the sentences.", ""]
    clean = e.clean
    agreement = ("no attractor minimal pairs" if clean.agreement is None
                 else f"attractor agreement {_pct(clean.agreement, '%')} on {clean.n_pairs} minimal pairs")
    loss = ("no next-token loss" if clean.loss is None else
            f"next-token loss {_num(clean.loss.value)}{_ci(clean.loss.ci)} nats/token ({clean.n_tokens} tokens)")
    lines += [f"Clean model: {agreement}; {loss}.", ""]
    for c in e.concepts.values():
        lines += [f"**{c.task}** ({c.n_classes} classes, erased rank {c.rank}): {c.reading}", ""]
        lines += concept_table(c) + [""]
    return lines


def _erasure_section(results: ProbeResults) -> list[str]:
    lines = [line for m in results.models for line in erasure_lines(m)]
    return ["## Erasure", ""] + lines if lines else []


def _how_to_read(lexical: list[str]) -> list[str]:
    return ["## How to read this", "",
            "- **score**: test accuracy (categorical) or R² (ordinal) of a linear probe on one layer's residual "
            "stream (layer 0 = embeddings). Intervals resample test sentences.",
            "- **selectivity** = task − control accuracy (Hewitt & Liang): the control task gives every word type "
            "a fixed random label, so high selectivity means the probe reads structure, not memorised words.",
            "- **layer 0 / lexical**: a curve that is already at its peak at layer 0 means the property is "
            "carried by the word itself" + (f" (here: {', '.join(lexical)})" if lexical else "") + ".",
            "- **E[ℓ]**: expected layer from cumulative probes on layers 0..ℓ (Tenney et al. 2019); the anchored "
            "value counts what layer 0 already holds as layer 0 (the verdict's default definition); Tenney's value "
            "is the centre of the gains after layer 0 (– when there are none); MDL's is the centre of the bits "
            "saved after layer 0 by the online codes (categorical tasks). The verdict's definition is named in "
            "\"Expected layer by definition\".",
            "- **MDL compression** = uniform codelength / online codelength (Voita & Titov); ≈1 means the labels "
            "are no easier to transmit with the probe than without.",
            "- **random-init twin**: the same architecture with random weights; structure it also shows comes "
            "from the architecture and the words, not from training.",
            "- **Erasure** (when run): a probe shows that a property is decodable, erasure whether the model uses it. "
            "A behaviour that falls when the concept is erased at a layer, but not when a random subspace of the "
            "same rank is, depends on that concept there; the probe's accuracy after erasure should be at the "
            "majority baseline (the eraser worked).", ""]


def markdown_report(results: Results, files: Sequence[str] = ()) -> str:
    results = ProbeResults.coerce(results)
    main = results.main
    lines = [f"# Probing report: {main.tag}", "", *_data_lines(results), "", "## Verdict", ""]
    for m in results.models:
        lines += verdict_lines(m) + [""]
    lines += [f"## Tasks: {main.tag}", ""] + task_table(results, main) + [""]
    lines += _side_by_side(results) + _expected_section(results) + _erasure_section(results) + _subsets(results)
    lexical = [t.name for t in results.tasks if (r := main.tasks.get(t.name)) is not None and r.lexical]
    lines += _how_to_read(lexical)
    if files:
        lines.append("Files: " + ", ".join(f"`{f}`" for f in files) + ".")
    return "\n".join(lines) + "\n"


def summary(results: Results) -> str:
    """A few lines for the terminal: verdict per model (the main model's also under the other
    expected-layer definitions, in short) and the main model's peaks."""
    results = ProbeResults.coerce(results)
    lines = []
    for m in results.models:
        lines.append(f"{m.tag} ({m.role.replace('_', '-')}): hierarchy {m.verdict.status} — {m.verdict.message}")
        if m is results.main and (other := other_verdicts_line(m)) is not None:
            lines.append(other)
    lines.append(f"{'task':<20} {'level':<7} {'peak':>4} {'score':>7} {'sel':>7} {'E[l]':>6}")
    for t in results.tasks:
        r = results.main.tasks.get(t.name)
        if r is None or r.skipped is not None:
            continue
        e = r.expected_layer.anchored if r.expected_layer else None
        lines.append(f"{t.name:<20} {t.level:<7} {r.peak_layer:>4} {_num(r.peak.score):>7} "
                     f"{_num(r.peak.selectivity):>7} {_num(e, 2):>6}")
    for m in results.models:
        if m.erasure is not None:
            lines += [f"erasure, {m.tag}: {c.reading}" for c in m.erasure.concepts.values()]
    return "\n".join(lines)


__all__ = ["RESULTS_FILE", "CSV_FILE", "ERASURE_CSV_FILE", "FIGURES_FILE", "REPORT_FILE", "save_results",
           "load_results", "write_outputs", "check_overwrite", "ResultsExistError", "csv_rows", "to_csv",
           "erasure_csv_rows", "erasure_csv", "figures", "figures_page", "markdown_report", "task_table",
           "expected_table", "expected_by_kind", "verdicts_by_kind", "concept_table", "erasure_lines", "verdict_lines",
           "summary"]
