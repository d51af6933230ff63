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
    SCHEMA,
    ConceptErasure,
    ErasureResult,
    ExpectedLayer,
    Interval,
    Measurement,
    ModelResult,
    PairOrder,
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
    # validation score; selectivity with one λ for every layer; the task's two axes (on every row of the task)
    "val_score", "fixed_lambda", "fixed_selectivity", "fixed_selectivity_ci_low", "fixed_selectivity_ci_high",
    "lexical_share", "lexical_share_ci_low", "lexical_share_ci_high", "depth", "depth_ci_low", "depth_ci_high",
    "depth_source",
)
ERASURE_MEASURES = ("agreement", "loss_delta", "probe_accuracy")
ERASURE_CSV_COLUMNS = (
    "model", "role", "concept", "method", "rank", "majority", "layer",
    *(f"{prefix}{m}{end}" for prefix in ("", "random_") for m in ERASURE_MEASURES
      for end in ("", "_ci_low", "_ci_high")),
    "clean_agreement", "clean_loss",
)
# anchored counts what the embeddings hold as layer 0: a lexical-weighted mix of the two axes
EXPECTED_NAMES = {"depth": "depth", "anchored": "anchored (lexical-weighted)", "tenney": "Tenney", "mdl": "MDL"}
DEPTH_SOURCES = {"mdl": "MDL", "tenney": "Tenney"}
GAIN_UNITS = {"bits": "bits", "accuracy": "accuracy", "r2": "R²"}
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
    fixed, share, e = x.fixed, t.lexical_share, t.expected_layer
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
        "val_score": x.val_score, "fixed_lambda": fixed and fixed.lam, "fixed_selectivity": fixed and fixed.selectivity,
        "fixed_selectivity_ci_low": _pair(fixed and fixed.selectivity_ci).low,
        "fixed_selectivity_ci_high": _pair(fixed and fixed.selectivity_ci).high,
        "lexical_share": share and share.value, "lexical_share_ci_low": _pair(share and share.ci).low,
        "lexical_share_ci_high": _pair(share and share.ci).high, "depth": e and e.depth,
        "depth_ci_low": _pair(e and e.depth_ci).low, "depth_ci_high": _pair(e and e.depth_ci).high,
        "depth_source": e and e.depth_source,
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
def _grid(title: str, tasks: list[TaskInfo], x_title: str = "layer (0 = embeddings)",
          titles: list[str] | None = None) -> tuple[Any, dict[str, tuple[int, int]]]:
    """A figure with a subplot per task (titled ``titles``, default "task (level)"), and each
    task's (row, col); x is the layer unless another ``x_title`` is given."""
    from plotly.subplots import make_subplots

    n = max(1, len(tasks))
    cols = min(4, n)
    rows = math.ceil(n / cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles or [f"{t.name} ({t.level})" for t in tasks],
                        horizontal_spacing=0.06, vertical_spacing=min(0.14, 0.5 / rows) if rows > 1 else 0.1)
    fig.update_layout(title=title, template="plotly_white")
    _legend_below(fig, 280 * rows + 80)
    if x_title.startswith("layer"):
        fig.update_xaxes(dtick=1)
    for c in range(1, cols + 1):  # the axis title on the bottom row only
        fig.update_xaxes(title_text=x_title, row=rows, col=c)
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

    def __init__(self, tasks: list[TaskInfo], control_lambda: str = "matched λ"):
        categorical = [t for t in tasks if t.categorical]
        self.curves, self.at = _grid("Probe score by layer (95% bootstrap intervals); dotted: control task; "
                                     "grey line: majority / mean baseline", tasks)
        self.sel, self.at_sel = _grid(f"Selectivity (task − control accuracy) by layer, categorical tasks "
                                      f"({control_lambda}); dash-dot: one λ for every layer", categorical)
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
            if layers[0].fixed is not None:
                self.sel.add_trace(go.Scatter(x=xs, y=[x.fixed.selectivity if x.fixed else None for x in layers],
                                              mode="lines", name=f"{tag} one λ ({layers[0].fixed.lam:g})",
                                              legendgroup=tag, showlegend=False,
                                              line={"color": color, "dash": "dashdot", "width": 1}),
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
    """Per task and model, the expected layer of the verdict's definition (anchored labelled
    lexical-weighted), with the main model's level means; undefined values named in the title."""
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
    undefined = results.verdict.undefined
    note = f"; undefined, not drawn: {', '.join(undefined)}" if undefined else ""
    what = "Depth of what is gained after the embeddings" if kind == "depth" else \
        f"Expected layer ({EXPECTED_NAMES.get(kind, kind)})"
    exp.update_layout(title=f"{what} per task (the verdict's definition; 95% CI)<br><sup>colour = expected level; "
                            f"dashed = level means of the main model{html.escape(note)}</sup>",
                      yaxis_title=f"{EXPECTED_NAMES.get(kind, kind)} (layer)", template="plotly_white", height=480,
                      margin={"r": 120}, legend={"orientation": "h", "yanchor": "top", "y": -0.12, "x": 0})
    return exp


AXES_TITLE = ("Two axes per task: lexical share (x) and depth of what is gained after the embeddings (y)<br>"
              "<sup>95% intervals; colour = expected level; bottom row (–): depth undefined (the gain after the "
              "embeddings is not above 0), the task is on the lexical axis only</sup>")
UNDEFINED_Y = -0.7  # where a task without a depth is drawn, below layer 0


def _axes_points(m: ModelResult, tasks: list[TaskInfo]) -> dict[bool, dict[str, list[Any]]]:
    """The markers of one model by whether the depth is defined: x, y, their error bars, colour,
    label and hover text (tasks without a lexical share, older files' all, are left out)."""
    out = {d: {k: [] for k in ("x", "y", "x_lo", "x_hi", "y_lo", "y_hi", "color", "text", "hover")}
           for d in (True, False)}
    for t in tasks:
        r = m.tasks.get(t.name)
        share = r.lexical_share if r is not None and r.skipped is None else None
        if share is None or share.value is None:
            continue
        e = r.expected_layer
        depth = e.depth if e is not None else None
        p = out[depth is not None]
        y = UNDEFINED_Y if depth is None else depth
        p["x"].append(share.value)
        p["y"].append(y)
        p["x_lo"].append(share.value - share.ci.low if share.ci.low is not None else 0)
        p["x_hi"].append(share.ci.high - share.value if share.ci.high is not None else 0)
        d_ci = e.depth_ci if depth is not None else _NO_INTERVAL
        p["y_lo"].append(y - d_ci.low if d_ci.low is not None else 0)
        p["y_hi"].append(d_ci.high - y if d_ci.high is not None else 0)
        p["color"].append(LEVEL_COLORS.get(t.level, "#333"))
        p["text"].append(t.name)
        p["hover"].append(f"{t.name} ({t.level}), {m.tag}<br>lexical share {share_text(share)}<br>depth "
                          f"{depth_text(e)}<br>gain after the embeddings {gain_text(e)}")
    return out


def _axes_figure(results: ProbeResults, colors: dict[str, str]) -> Any | None:
    """Lexical share (x) against depth (y), one marker per task and model with both intervals;
    tasks whose depth is undefined on a row of their own at the bottom, unlabelled (lexical tasks
    pile up at x = 1) and named in a note below. None when no task has a lexical share (files
    written before schema 3)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    xs: list[float] = []
    undefined: list[str] = []
    for m in results.models:
        symbol = MODEL_SYMBOL.get(m.role, "circle")
        for defined, p in _axes_points(m, results.tasks).items():
            if not p["x"]:
                continue
            xs += p["x"]
            if m is results.main and not defined:
                undefined = p["text"]
            fig.add_trace(go.Scatter(
                x=p["x"], y=p["y"], mode="markers+text" if defined else "markers",
                text=p["text"] if m.role == "model" else None,
                textposition="top center", hovertext=p["hover"], hoverinfo="text",
                name=m.tag if defined else f"{m.tag}: depth undefined", legendgroup=m.tag,
                marker={"size": 11, "color": p["color"], "symbol": symbol if defined else f"{symbol}-open",
                        "line": {"color": colors[m.tag] if defined else p["color"], "width": 2}},
                error_x={"type": "data", "symmetric": False, "array": p["x_hi"], "arrayminus": p["x_lo"],
                         "thickness": 1, "color": "#666"},
                error_y={"type": "data", "symmetric": False, "array": p["y_hi"], "arrayminus": p["y_lo"],
                         "thickness": 1, "color": "#666", "visible": defined}))
    if not xs:
        return None
    top = max(m.n_layer for m in results.models)
    fig.add_hline(y=UNDEFINED_Y / 2, line={"color": "#bbb", "dash": "dot", "width": 1})
    if undefined:
        fig.add_annotation(text=_wrap(f"depth undefined (–), {results.main.tag}: {', '.join(undefined)}"),
                           xref="paper", yref="paper", x=0, y=-0.2, xanchor="left", yanchor="top", showarrow=False,
                           align="left", font={"size": 12, "color": "#555"})
    fig.update_layout(title=AXES_TITLE, template="plotly_white", height=560, margin={"b": 130},
                      xaxis={"title": "lexical share = (S₀ − baseline) / (S_peak − baseline)",
                             "range": [min(-0.1, min(xs) - 0.1), max(1.1, max(xs) + 0.1)], "zeroline": False},
                      yaxis={"title": "depth (layer; – undefined)", "range": [UNDEFINED_Y - 0.5, top + 0.5],
                             "tickvals": [UNDEFINED_Y, *range(top + 1)], "ticktext": ["–", *map(str, range(top + 1))],
                             "zeroline": False})
    return fig


def _wrap(text: str, width: int = 120) -> str:
    """``text`` broken into lines of at most about ``width`` characters (plotly's <br>)."""
    lines = [""]
    for word in text.split(" "):
        if lines[-1] and len(lines[-1]) + 1 + len(word) > width:
            lines.append(word)
        else:
            lines[-1] = f"{lines[-1]} {word}" if lines[-1] else word
    return "<br>".join(lines)


LAMBDA_TITLE = ("Test score against the probe's L2 strength λ at one layer (Pimentel et al. 2020)<br><sup>solid: "
                "the task; dotted: the control task at the same layer (the layer with the best validation score; "
                "first fit)</sup>")


def _lambda_figure(results: ProbeResults, colors: dict[str, str]) -> Any | None:
    """Per task, the test score against λ at ``LambdaCurves.layer`` (ordinal tasks: the peak
    layer) and the control task's there, for every model; None when no task has curves."""
    import plotly.graph_objects as go

    def curves(m: ModelResult, name: str) -> tuple[TaskResult, int] | None:
        r = m.tasks.get(name)
        if r is None or r.skipped is not None or r.curves is None:
            return None
        return r, r.curves.layer if r.curves.layer is not None else r.peak_layer

    tasks = [t for t in results.tasks if any(curves(m, t.name) for m in results.models)]
    if not tasks:
        return None
    titles = []
    for t in tasks:
        first = next(c for m in results.models if (c := curves(m, t.name)))
        titles.append(f"{t.name} ({t.level}), layer {first[1]}")
    fig, at = _grid(LAMBDA_TITLE, tasks, x_title="λ (L2 strength, log scale)", titles=titles)
    shown: set[str] = set()
    for t in tasks:
        r_c = at[t.name]
        for m in results.models:
            c = curves(m, t.name)
            if c is None:
                continue
            res, layer = c
            line = {"color": colors[m.tag], "dash": MODEL_DASH.get(m.role, "solid")}
            fig.add_trace(go.Scatter(x=res.curves.lambdas, y=res.curves.task[layer], mode="lines+markers",
                                     name=m.tag, legendgroup=m.tag, showlegend=m.tag not in shown, line=line,
                                     hovertemplate=f"{m.tag}, layer {layer}: λ %{{x:g}}, score %{{y:.3f}}"
                                                   "<extra></extra>"), row=r_c[0], col=r_c[1])
            shown.add(m.tag)
            if res.curves.control is not None:
                fig.add_trace(go.Scatter(x=res.curves.lambdas, y=res.curves.control, mode="lines+markers",
                                         name=f"{m.tag} control", legendgroup=m.tag, showlegend=False,
                                         line={"color": colors[m.tag], "dash": "dot", "width": 1},
                                         hovertemplate=f"{m.tag} control, layer {layer}: λ %{{x:g}}, score "
                                                       "%{y:.3f}<extra></extra>"), row=r_c[0], col=r_c[1])
    fig.update_xaxes(type="log")
    fig.update_yaxes(title_text="test accuracy / R²", col=1)
    return fig


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
    against the random control), "axes" (lexical share against depth per task and model; files
    from schema 3 on), "selectivity", "expected_layers" (the verdict's definition),
    "lambda_curves" (test score against λ; schema 3 on) and "mdl" (compression by layer)."""
    results = ProbeResults.coerce(results)
    colors = {m.tag: PALETTE[k % len(PALETTE)] for k, m in enumerate(results.models)}
    grids = _Grids(results.tasks, control_lambda_text(results))
    for t in results.tasks:
        for m in results.models:
            res = m.tasks.get(t.name)
            if res is not None and res.skipped is None:
                grids.add(m, res, colors[m.tag])
    out = {"curves": grids.curves}
    if any(m.erasure is not None for m in results.models):
        out["erasure"] = _erasure_figure(results, colors)
    out.update(axes=_axes_figure(results, colors), selectivity=grids.sel,
               expected_layers=_expected_figure(results, colors), lambda_curves=_lambda_figure(results, colors),
               mdl=grids.mdl)
    return {name: fig for name, fig in out.items() if fig is not None}


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
    verdict = html.escape(f"{results.verdict.message} (on the {verdict_axis(results.verdict.expected)})")
    note = html.escape(refits_text(results))
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>" + title + "</title></head>"
            "<body style=\"font-family: sans-serif; margin: 1em 2em\"><h1>" + title + "</h1>"
            "<p><b>Hierarchy verdict:</b> " + verdict + "</p><p>" + note + "</p>" + "\n".join(parts)
            + "</body></html>\n")


# ----------------------------------------------------------------------------- text
def _num(x: Any, digits: int = 3) -> str:
    if x is None:
        return "–"
    return f"{x:.{digits}f}"


def _ci(ci: Interval | None, digits: int = 3) -> str:
    if ci is None or ci.low is None or ci.high is None:
        return ""
    return f" [{ci.low:.{digits}f}, {ci.high:.{digits}f}]"


def _value_ci(value: float | None, ci: Interval | None, digits: int = 2) -> str:
    """A value with its interval, "–" alone where the value is undefined."""
    return "–" if value is None else f"{value:.{digits}f}{_ci(ci, digits)}"


def control_lambda_text(results: Results) -> str:
    """At which λ the control task's probe was fitted: "matched λ" (its task's), "own λ:
    conservative bound" (its own λ path), or "own λ" for files written before the choice existed."""
    results = ProbeResults.coerce(results)
    if results.schema != SCHEMA:
        return "own λ"
    return "matched λ" if results.config.control_lambda == "task" else "own λ: conservative bound"


def refits_text(results: Results) -> str:
    """How many fits each number and interval includes."""
    results = ProbeResults.coerce(results)
    n = results.config.refits
    if n <= 1:
        return "Intervals: one fit (intervals from the test sentences only)."
    return (f"Intervals: {n} fits per number (the train/validation split redrawn and every probe refitted; the "
            f"number is their mean), so each interval includes the refit variance as well as the "
            f"{results.config.n_bootstrap} bootstrap resamples of the test sentences.")


def verdict_axis(kind: str) -> str:
    """What a verdict of ``kind`` compares, in words."""
    if kind == "depth":
        return "depth axis (the depth of what is gained after the embeddings)"
    return f"{EXPECTED_NAMES.get(kind, kind)} expected layer"


def effect_text(pair: PairOrder) -> str:
    """The effect size of one pair of levels: late − middle = +1.20 layers [+0.60, +1.90]."""
    if pair.difference is None:
        return f"{pair.upper} − {pair.lower} = –"
    ci = pair.difference_ci
    tail = "" if ci.low is None or ci.high is None else f" [{ci.low:+.2f}, {ci.high:+.2f}]"
    return f"{pair.upper} − {pair.lower} = {pair.difference:+.2f} layers{tail}"


def share_text(share: Measurement | None) -> str:
    """The lexical share with its interval: 0.85 [0.80, 0.90] ("–" where undefined or not recorded)."""
    return "–" if share is None else _value_ci(share.value, share.ci)


def depth_text(e: ExpectedLayer | None) -> str:
    """The depth with its interval and where it comes from: 2.10 [1.80, 2.40] (MDL); "– (MDL)"
    where undefined (the gain after the embeddings is not above 0); "–" in older files."""
    if e is None or e.depth_source is None:
        return "–"
    return f"{_value_ci(e.depth, e.depth_ci)} ({DEPTH_SOURCES.get(e.depth_source, e.depth_source)})"


def gain_text(e: ExpectedLayer | None) -> str:
    """The gain after the embeddings behind the depth: 594.7 bits [532.9, 666.9], +0.120 accuracy [...]."""
    if e is None or e.gain is None or e.gain.value is None:
        return "–"
    g, unit = e.gain, GAIN_UNITS.get(e.gain_unit or "", e.gain_unit or "")
    if e.gain_unit == "bits":
        ci = "" if g.ci.low is None or g.ci.high is None else f" [{g.ci.low:.1f}, {g.ci.high:.1f}]"
        return f"{g.value:.1f} bits{ci}"
    ci = "" if g.ci.low is None or g.ci.high is None else f" [{g.ci.low:+.3f}, {g.ci.high:+.3f}]"
    return f"{g.value:+.3f}{' ' + unit if unit else ''}{ci}"


def _fixed_text(r: TaskResult) -> str:
    """Selectivity at the peak with one λ for every layer: 0.396 [0.343, 0.469] (λ 0.1)."""
    f = r.peak.fixed
    if f is None:
        return "–"
    return f"{_num(f.selectivity)}{_ci(f.selectivity_ci)} (λ {f.lam:g})"


def _task_row(t: TaskInfo, r: TaskResult, n_cells: int) -> str:
    if r.skipped is not None:
        cells = ["skipped: " + r.skipped] + ["–"] * (n_cells - 1)
        return f"| {t.name} | {t.level} | " + " | ".join(cells) + " |"
    x = r.peak
    e = r.expected_layer
    lex = " (lexical)" if r.lexical else ""
    return (f"| {t.name} | {t.level} | {r.metric} | {r.peak_layer} | {_num(x.score)}{_ci(x.ci)} | "
            f"{_num(r.layer0_score)} / {_num(r.baseline.score if r.baseline else None)}{lex} | "
            f"{share_text(r.lexical_share)} | {depth_text(e)} | {gain_text(e)} | "
            f"{_num(x.selectivity)}{_ci(x.selectivity_ci)} | {_fixed_text(r)} |")


def task_table(results: Results, model: ModelResult) -> list[str]:
    """The markdown table of one model's tasks: peak, the two axes (lexical share; depth and the
    gain behind it), selectivity at the peak (and the twin's peaks beside the main model's)."""
    results = ProbeResults.coerce(results)
    twin = results.model("random_init") if model.role == "model" else None
    heads = ["task", "level", "metric", "peak layer", "peak score [95% CI]", "layer 0 / baseline",
             "lexical share [95% CI]", "depth [95% CI] (source)", "gain after the embeddings [95% CI]",
             f"selectivity at peak, {control_lambda_text(results)} [95% CI]", "selectivity at peak, one λ [95% CI]"]
    if twin is not None:
        heads.append("random-init peak (selectivity)")
    lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    for t in results.tasks:
        r = model.tasks.get(t.name)
        if r is None:
            continue
        row = _task_row(t, r, 9)
        if twin is not None and r.skipped is None:
            tr = twin.tasks.get(t.name)
            if tr is not None and tr.skipped is None:
                row += f" {_num(tr.peak_score)} @ {tr.peak_layer} ({_num(tr.peak.selectivity)}) |"
            else:
                row += " – |"
        lines.append(row)
    no_control = [t.name for t in results.tasks if t.categorical and not t.control and t.name in model.tasks]
    if no_control:
        lines += ["", f"No control task for {', '.join(no_control)}: its label is the word type, so a random label "
                      "per word type would be the task relabelled (selectivity –)."]
    return lines


# Why a level is not compared (``Verdict.uninformative``), in report.md and on the dashboard.
UNINFORMATIVE_WHY = "no task with a defined value: what it carries is in the embeddings"


def verdict_lines(model: ModelResult) -> list[str]:
    """The verdict of one model: status and message, the compared levels' means, the effect
    size of each pair, and what was left out (uninformative levels, undefined tasks)."""
    v: Verdict = model.verdict
    name = "depth" if v.expected == "depth" else f"expected layer, {EXPECTED_NAMES.get(v.expected, v.expected)}"
    lines = [f"**{model.tag}: hierarchy {v.status.upper()}** on the {verdict_axis(v.expected)} — {v.message}", "",
             f"| level | tasks | mean {name} [95% CI] |", "|---|---|---|"]
    for level, x in v.levels.items():
        lines.append(f"| {level} | {', '.join(x.tasks)} | {_num(x.mean, 2)}{_ci(x.ci, 2)} |")
    if v.pairs:
        lines += ["", "| order | in order in | effect size [95% CI] |", "|---|---|---|"]
        for p in v.pairs:
            lines.append(f"| {p.lower} < {p.upper} | {100 * p.p_in_order:.1f}% of resamples | {effect_text(p)} |")
    left = []
    if v.compared:
        left.append(f"Compared: {' < '.join(v.compared)}.")
    if v.uninformative:
        left.append(f"Not compared: {', '.join(v.uninformative)} ({UNINFORMATIVE_WHY}).")
    if v.undefined:
        left.append(f"Undefined (left out of their level): {', '.join(v.undefined)}.")
    return lines + (["", " ".join(left)] if left else [])


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
                 f"{cfg.n_bootstrap} bootstrap resamples of the test sentences; control task: "
                 f"{control_lambda_text(results)}; verdict on the {verdict_axis(cfg.expected)}.")
    lines.append(refits_text(results))
    return lines


def _side_by_side(results: ProbeResults) -> list[str]:
    if all(m.role == "model" for m in results.models):
        return []
    lines = ["## Side by side", "", ("Peak score @ layer; lexical share; depth (relative to the model's depth; – "
             "undefined) per model."), "",
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
            share = r.lexical_share.value if r.lexical_share is not None else None
            depth = "–" if e is None or e.depth is None else f"{e.depth:.2f} ({_num(e.depth_relative, 2)})"
            cells.append(f"{_num(r.peak_score)} @ {r.peak_layer}; {_num(share, 2)}; {depth}")
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
    """Per task, the expected layer under every definition side by side ("–" where undefined);
    the verdict's marked."""
    results = ProbeResults.coerce(results)
    used = model.verdict.expected
    heads = [EXPECTED_NAMES.get(k, k) + (" (verdict)" if k == used else "") + " [95% CI]" for k in EXPECTED_KINDS]
    lines = [(f"**`{model.tag}`** ({model.role.replace('_', '-')}): the verdict uses the "
             f"**{EXPECTED_NAMES.get(used, used)}** expected layer (`--expected {used}`)."), "",
             "| task | level | " + " | ".join(heads) + " |", "|---|---|" + "---|" * len(heads)]
    for t in results.tasks:
        r = model.tasks.get(t.name)
        if r is None or r.skipped is not None:
            continue
        cells = [_value_ci(value, ci) for value, ci in expected_by_kind(r).values()]
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
             (f"{e.method.upper()} erasure of each concept in the residual stream at one layer at a time, at "
              f"every position (layer 0 = embeddings, layer ℓ = after block ℓ−1), on held-out sentences. Control: a "
              f"random subspace of the same rank ({e.n_random} draws, their mean). 95% intervals from "
              f"{e.n_bootstrap} bootstrap resamples of the sentences."), ""]
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


CONTROL_LAMBDA_NOTES = {
    "matched λ": "the control probe uses the λ its task chose at each layer (the same complexity)",
    "own λ: conservative bound": "the control probe chooses its own λ on validation, which favours the control: "
                                 "the selectivity is a conservative (low) bound",
    "own λ": "the control probe chose its own λ on validation (results written before the matched λ existed)",
}


def _how_to_read(lexical: list[str], control_lambda: str = "matched λ") -> list[str]:
    return ["## How to read this", "",
            ("- **score**: test accuracy (categorical) or R² (ordinal) of a linear probe on one layer's residual "
             "stream (layer 0 = embeddings). The peak layer is chosen on the validation score, its score reported "
             "on test."),
            "- **Two axes per task.** *Lexical share* = (S₀ − baseline) / (S_peak − baseline): how much of what "
            "the probes find is already in the embeddings (1: all of it; it can leave [0, 1] by noise). *Depth*: where "
            "in the layers the rest is gained — the centre of the bits saved after layer 0 by the online codes "
            "(MDL, categorical tasks) or of the cumulative probes' gains after layer 0 (Tenney, ordinal tasks). "
            "**–** = undefined: the gain after the embeddings (its column) has a 95% interval that includes 0, so "
            "the task's information is lexical and it sits on the lexical axis only"
            + (f" (flagged lexical here: {', '.join(lexical)})" if lexical else "") + ".",
            ("- **Verdict** (default, `--expected depth`): early < middle < late on the depth axis in ≥95% of the "
             "resamples; tasks with an undefined depth leave their level, and an early level left without one is "
             "not compared. The **effect size** is the difference of two levels' mean depths in layers, with its "
             "95% interval. **Anchored (lexical-weighted)** counts what layer 0 already holds as layer 0, mixing the "
             "two axes into one number; it and the Tenney and MDL expected layers are in \"Expected layer by "
             "definition\"."),
            (f"- **selectivity** = task − control accuracy (Hewitt & Liang): the control task gives every word type "
             f"a fixed random label, so high selectivity means the probe reads structure, not memorised words. "
             f"Here ({control_lambda}) {CONTROL_LAMBDA_NOTES.get(control_lambda, '')}; *one λ*: task and control "
             "probes with a single λ for every layer (complexity held fixed across layers). The accuracy-against-λ "
             "curves (Pimentel et al. 2020) are in figures.html."),
            ("- **Intervals**: percentile bootstrap over the test sentences; with refits, each number is the mean of "
             "several fits on redrawn train/validation splits and its interval includes that variance."),
            ("- **MDL compression** = uniform codelength / online codelength (Voita & Titov); ≈1 means the labels "
             "are no easier to transmit with the probe than without."),
            ("- **random-init twin**: the same architecture with random weights; structure it also shows comes "
             "from the architecture and the words, not from training."),
            ("- **Erasure** (when run): a probe shows that a property is decodable, erasure whether the model uses it. "
             "A behaviour that falls when the concept is erased at a layer, but not when a random subspace of the "
             "same rank is, depends on that concept there; the probe's accuracy after erasure should be at the "
             "majority baseline (the eraser worked)."), ""]


def markdown_report(results: Results, files: Sequence[str] = ()) -> str:
    results = ProbeResults.coerce(results)
    main = results.main
    lines = [f"# Probing report: {main.tag}", "", *_data_lines(results), "", "## Verdict", ""]
    for m in results.models:
        lines += verdict_lines(m) + [""]
    lines += [f"## Tasks: {main.tag}", ""] + task_table(results, main) + [""]
    lines += _side_by_side(results) + _expected_section(results) + _erasure_section(results) + _subsets(results)
    lexical = [t.name for t in results.tasks if (r := main.tasks.get(t.name)) is not None and r.lexical]
    lines += _how_to_read(lexical, control_lambda_text(results))
    if files:
        lines.append("Files: " + ", ".join(f"`{f}`" for f in files) + ".")
    return "\n".join(lines) + "\n"


def summary(results: Results) -> str:
    """A few lines for the terminal: verdict per model (the main model's also under the other
    expected-layer definitions, in short) and the main model's peaks and two axes."""
    results = ProbeResults.coerce(results)
    lines = []
    for m in results.models:
        axis = "" if m.verdict.expected == "depth" else f" [on the {verdict_axis(m.verdict.expected)}]"
        role = m.role.replace("_", "-")
        lines.append(f"{m.tag} ({role}): hierarchy {m.verdict.status} — {m.verdict.message}{axis}")
        if m is results.main and (other := other_verdicts_line(m)) is not None:
            lines.append(other)
    lines.append(f"{'task':<20} {'level':<7} {'peak':>4} {'score':>7} {'sel':>7} {'lex':>6} {'depth':>6}")
    for t in results.tasks:
        r = results.main.tasks.get(t.name)
        if r is None or r.skipped is not None:
            continue
        e = r.expected_layer
        share = r.lexical_share.value if r.lexical_share is not None else None
        lines.append(f"{t.name:<20} {t.level:<7} {r.peak_layer:>4} {_num(r.peak.score):>7} "
                     f"{_num(r.peak.selectivity):>7} {_num(share, 2):>6} {_num(e and e.depth, 2):>6}")
    for m in results.models:
        if m.erasure is not None:
            lines += [f"erasure, {m.tag}: {c.reading}" for c in m.erasure.concepts.values()]
    return "\n".join(lines)


__all__ = [
    "CSV_FILE",
    "ERASURE_CSV_FILE",
    "FIGURES_FILE",
    "REPORT_FILE",
    "RESULTS_FILE",
    "ResultsExistError",
    "check_overwrite",
    "concept_table",
    "control_lambda_text",
    "csv_rows",
    "depth_text",
    "effect_text",
    "erasure_csv",
    "erasure_csv_rows",
    "erasure_lines",
    "expected_by_kind",
    "expected_table",
    "figures",
    "figures_page",
    "gain_text",
    "load_results",
    "markdown_report",
    "refits_text",
    "save_results",
    "share_text",
    "summary",
    "task_table",
    "to_csv",
    "verdict_axis",
    "verdict_lines",
    "verdicts_by_kind",
    "write_outputs",
]
