"""Probes: score curves with intervals, control and selectivity, MDL, expected layers, verdict."""

import streamlit as st

from app.dashboard import data, ui
from probes.results import Interval, ModelResult, ProbeResults

VERDICT_BOX = {True: st.success, False: st.warning, None: st.info}


def verdict_box(model: ModelResult) -> None:
    v = model.verdict
    text = f"**{model.tag}** ({model.role.replace('_', '-')}): hierarchy {v.status.upper()} — {v.message}"
    VERDICT_BOX[v.holds](text)


def task_rows(results: ProbeResults, model: ModelResult) -> list[dict]:
    rows = []
    for t in results.tasks:
        r = model.tasks.get(t.name)
        if r is None:
            continue
        if r.skipped is not None:
            rows.append({"task": t.name, "level": t.level, "metric": "skipped: " + r.skipped})
            continue
        peak = r.peak
        e = r.expected_layer
        rows.append({
            "task": t.name, "level": t.level, "metric": r.metric, "peak layer": r.peak_layer,
            "peak score": peak.score, "95% CI": _interval(peak.ci),
            "layer 0": r.layer0_score, "baseline": r.baseline.score if r.baseline else None,
            "selectivity at peak": peak.selectivity,
            "expected layer": e and e.anchored, "E[ℓ] (Tenney)": e and e.tenney,
            "MDL compression": peak.mdl and peak.mdl.compression,
            "MDL control": peak.mdl and peak.mdl.control_compression,
            "lexical": r.lexical,
        })
    return rows


def _n(x) -> str:
    return "–" if x is None else f"{x:.3f}"


def _interval(ci: Interval) -> str:
    return f"[{_n(ci.low)}, {_n(ci.high)}]"


def render() -> None:
    ctx = ui.current()
    s = ctx.summary
    st.title("Probes")
    tags = s["probe_tags"]
    if not tags:
        st.info(f"No probing results for `{ctx.name}` yet (looked for probes/*/results.json). "
                f"Run `stratascope probe {ctx.root}/{ctx.name}`.")
        return
    tag = st.selectbox("Results", tags, key="probes_tag", help="runs/RUN/probes/TAG/results.json")
    results = None
    with ui.guard("Reading the probing results"):
        results = data.probe_results(ctx.root, ctx.name, tag, ctx.sig)
    if results is None:
        return
    d = results.data
    st.caption(f"{d.n_sentences} sentences, {d.n_words} words from `{d.path or '?'}`; "
               f"test sentences {d.split_sentences.get('test')}; "
               f"{results.config.n_bootstrap} bootstrap resamples. Models: "
               + ", ".join(f"`{m.tag}` ({m.role.replace('_', '-')})" for m in results.models) + ".")
    st.header("Hierarchy verdict")
    for m in results.models:
        verdict_box(m)
    levels = results.main.verdict.levels
    if levels:
        ui.dataframe([{"level": lv, "tasks": ", ".join(x.tasks), "mean expected layer": x.mean,
                       "95% CI": _interval(x.ci)} for lv, x in levels.items()], key="probes_levels")
    with ui.guard("Drawing the probing figures"):
        from probes.report import figures

        figs = figures(results)
        for name, fig in figs.items():  # interval bands are polygons: no markers at their corners
            fig.update_traces(mode="lines", selector={"fill": "toself"})
            if name != "expected_layers":  # per-task grids: the x title would cover the next row's titles
                fig.update_xaxes(title_text=None)
        st.header("Expected layer per task")
        st.caption("Colour = the level the task is expected at (blue early, green middle, red late); dashed lines: "
                   "the main model's level means; marker: circle = model, × = random-init twin, ◆ = compared model.")
        ui.plot(figs["expected_layers"], key="probes_expected", own_theme=True)
        st.header("Score by layer")
        st.caption("x: layer (0 = embeddings). Test accuracy (categorical) or R² (ordinal) of a linear probe on each "
                   "layer, with 95% bootstrap intervals; dotted: the control task; grey line: the majority / mean "
                   "baseline.")
        ui.plot(figs["curves"], key="probes_curves", own_theme=True)
        st.header("Selectivity (task − control)")
        ui.plot(figs["selectivity"], key="probes_selectivity", own_theme=True)
        st.header("MDL (online codelength)")
        st.caption("Compression = uniform codelength / online codelength; higher = the labels are easier to "
                   "transmit with the probe; dotted: the control task.")
        ui.plot(figs["mdl"], key="probes_mdl", own_theme=True)
    st.header("Tasks")
    which = st.selectbox("Model", [m.tag for m in results.models], key="probes_model")
    model = next(m for m in results.models if m.tag == which)
    ui.dataframe(task_rows(results, model), key="probes_tasks")


render()
