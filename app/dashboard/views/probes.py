"""Probes: the verdict with its effect sizes, each task's two axes (lexical share; depth of what is
gained after the embeddings), score curves with intervals, control and selectivity, test score
against λ, MDL, expected layers under every definition (anchored labelled lexical-weighted), and
the causal-erasure curves when the results include them."""

from typing import Any

import streamlit as st

from app.dashboard import ui
from probes.report import (
    DEPTH_SOURCES,
    EXPECTED_NAMES,
    UNINFORMATIVE_WHY,
    control_lambda_text,
    effect_text,
    expected_by_kind,
    gain_text,
    refits_text,
    verdict_axis,
)
from probes.results import Interval, Measurement, ModelResult, ProbeResults, Verdict

VERDICT_BOX = {True: st.success, False: st.warning, None: st.info}


def verdict_box(model: ModelResult) -> None:
    v = model.verdict
    text = (f"**{model.tag}** ({model.role.replace('_', '-')}): hierarchy {v.status.upper()} on the "
            f"{verdict_axis(v.expected)} — {v.message}")
    VERDICT_BOX[v.holds](text)


def pair_rows(v: Verdict) -> list[dict]:
    """Per pair of compared levels: how often in order, and the effect size (upper − lower, layers)."""
    return [{"order": f"{p.lower} < {p.upper}", "in order (% of resamples)": 100 * p.p_in_order,
             "effect size": effect_text(p), "difference (layers)": p.difference, "95% CI": _interval(p.difference_ci)}
            for p in v.pairs]


def left_out_text(v: Verdict) -> str | None:
    """The compared levels, the uninformative ones and the undefined tasks, in one line (None
    when the results do not record them)."""
    parts = []
    if v.compared:
        parts.append(f"compared: {' < '.join(v.compared)}")
    if v.uninformative:
        parts.append(f"not compared: {', '.join(v.uninformative)} ({UNINFORMATIVE_WHY})")
    if v.undefined:
        parts.append(f"undefined, left out of their level: {', '.join(v.undefined)}")
    if not parts:
        return None
    text = "; ".join(parts)
    return text[0].upper() + text[1:] + "."


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
        share = r.lexical_share
        rows.append({
            "task": t.name, "level": t.level, "metric": r.metric, "peak layer": r.peak_layer,
            "peak score": peak.score, "95% CI": _interval(peak.ci),
            "layer 0": r.layer0_score, "baseline": r.baseline.score if r.baseline else None,
            "lexical share": _value(share), "lexical share 95% CI": _ci_of(share),
            "depth": e and e.depth, "depth 95% CI": _interval(e.depth_ci) if e and e.depth is not None else "–",
            "depth from": DEPTH_SOURCES.get(e.depth_source, "–") if e and e.depth_source else "–",
            "gain after the embeddings": gain_text(e),
            "selectivity at peak": peak.selectivity, "selectivity 95% CI": _ci_text(peak.selectivity_ci),
            "selectivity, one λ": peak.fixed and peak.fixed.selectivity,
            "MDL compression": peak.mdl and peak.mdl.compression,
            "MDL control": peak.mdl and peak.mdl.control_compression,
            "lexical": r.lexical,
        })
    return rows


def expected_rows(results: ProbeResults, model: ModelResult) -> list[dict]:
    """Per task, the expected layer and its interval under every definition (None and "–" where
    undefined)."""
    rows = []
    for t in results.tasks:
        r = model.tasks.get(t.name)
        if r is None or r.skipped is not None:
            continue
        row = {"task": t.name, "level": t.level}
        for kind, (value, ci) in expected_by_kind(r).items():
            name = EXPECTED_NAMES.get(kind, kind)
            row[name] = value
            row[f"{name} 95% CI"] = _interval(ci) if ci is not None and value is not None else "–"  # – undefined
        rows.append(row)
    return rows


def erasure_rows(model: ModelResult) -> list[dict]:
    """Per erased concept and layer: the behaviour after erasure beside the random control."""
    e = model.erasure
    if e is None:
        return []
    rows = []
    for c in e.concepts.values():
        for x in c.layers:
            rows.append({
                "concept": c.task, "layer": x.layer, "rank": c.rank,
                "agreement": _value(x.erased.agreement), "agreement 95% CI": _ci_of(x.erased.agreement),
                "random: agreement": _value(x.random.agreement),
                "loss change": _value(x.erased.loss_delta), "loss change 95% CI": _ci_of(x.erased.loss_delta),
                "random: loss change": _value(x.random.loss_delta),
                "probe accuracy": _value(x.erased.probe_accuracy), "majority": c.majority,
                "random: probe accuracy": _value(x.random.probe_accuracy),
            })
    return rows


def _value(m: Measurement | None) -> float | None:
    return None if m is None else m.value


def _ci_of(m: Measurement | None) -> str:
    return "–" if m is None else _interval(m.ci)


def _n(x) -> str:
    return "–" if x is None else f"{x:.3f}"


def _interval(ci: Interval) -> str:
    return f"[{_n(ci.low)}, {_n(ci.high)}]"


def _ci_text(ci: Interval | None) -> str:
    return "–" if ci is None else _interval(ci)


def erasure_section(results: ProbeResults, fig: Any) -> None:
    """The readings and clean numbers of every model with erasure, then the erasure figure."""
    st.header("Causal erasure")
    st.caption("Each concept erased (LEACE/INLP) from the residual stream at one layer at a time, at every position. "
               "Lines with 95% bootstrap bands: the behaviour after erasure; dotted: a random subspace of the same "
               "rank; dash-dot: the clean model. The probe's accuracy after erasure should fall to the majority "
               "baseline (the eraser worked).")
    for m in results.models:
        e = m.erasure
        if e is None:
            continue
        clean = e.clean
        agreement = "no attractor minimal pairs" if clean.agreement is None else (
            f"attractor agreement {_n(clean.agreement.value)} {_interval(clean.agreement.ci)} on {clean.n_pairs} pairs")
        loss = "no next-token loss" if clean.loss is None else f"next-token loss {_n(clean.loss.value)} nats/token"
        st.markdown(f"**{m.tag}** ({m.role.replace('_', '-')}, {e.method.upper()}; clean: {agreement}, {loss})\n\n"
                    + "\n".join(f"- {c.reading}" for c in e.concepts.values()))
    ui.plot(fig, key="probes_erasure", own_theme=True)


def render() -> None:
    ctx = ui.current()
    s = ctx.summary
    st.title("Probes")
    tags = s["probe_tags"]
    if not tags:
        st.info(f"No probing results for `{ctx.name}` yet (looked for probes/*/results.json). "
                f"Run `{ui.probe_hint(ctx)}`.")
        return
    tag = st.selectbox("Results", tags, key="probes_tag", help="runs/RUN/probes/TAG/results.json")
    results = ui.probe_results(ctx, tag)
    if results is None:
        return
    d = results.data
    st.caption(f"{d.n_sentences} sentences, {d.n_words} words from `{d.path or '?'}`; "
               f"test sentences {d.split_sentences.get('test')}; "
               f"{results.config.n_bootstrap} bootstrap resamples. Models: "
               + ", ".join(f"`{m.tag}` ({m.role.replace('_', '-')})" for m in results.models) + ". "
               + refits_text(results))
    st.header("Hierarchy verdict")
    for m in results.models:
        verdict_box(m)
    main_verdict = results.main.verdict
    used = main_verdict.expected
    if main_verdict.levels:
        ui.dataframe([{"level": lv, "tasks": ", ".join(x.tasks), f"mean {EXPECTED_NAMES.get(used, used)}": x.mean,
                       "95% CI": _interval(x.ci)} for lv, x in main_verdict.levels.items()], key="probes_levels")
    if main_verdict.pairs:
        st.caption(f"Effect sizes of `{results.main.tag}`: the difference of two levels' means (upper − lower, in "
                   f"layers) with its 95% interval, and how often the pair is in order across the resamples.")
        ui.dataframe(pair_rows(main_verdict), key="probes_pairs")
    if (left := left_out_text(main_verdict)) is not None:
        st.caption(left)
    with ui.guard("Drawing the probing figures"):
        from probes.report import figures

        figs = figures(results)
        for name, fig in figs.items():  # interval bands are polygons: no markers at their corners
            fig.update_traces(mode="lines", selector={"fill": "toself"})
            # per-task grids: the x title would cover the next row's subplot titles (the erasure figure
            # has x titles on its bottom row only)
            if name not in ("expected_layers", "erasure", "axes"):
                fig.update_xaxes(title_text=None)
        st.header("Two axes: lexical share and depth")
        if "axes" in figs:
            st.caption("x: lexical share, (S₀ − baseline) / (S_peak − baseline): how much of what the probes find is "
                       "already in the embeddings. y: the depth of what is gained after them (MDL for categorical "
                       "tasks, Tenney for ordinal ones); bottom row (–): undefined, the gain after the embeddings is "
                       "not above 0, so the task is on the lexical axis only. Bars: 95% intervals; colour = expected "
                       "level; open markers: undefined depth.")
            ui.plot(figs["axes"], key="probes_axes", own_theme=True)
        else:
            st.info("These results were written before the two axes existed (schema 1 or 2): no lexical share or "
                    "depth to show.")
        st.header("Expected layer per task (the verdict's definition)")
        st.caption("Colour = the level the task is expected at (blue early, green middle, red late); dashed lines: "
                   "the main model's level means; marker: circle = model, × = random-init twin, ◆ = compared model.")
        ui.plot(figs["expected_layers"], key="probes_expected", own_theme=True)
        st.caption(f"Expected layer of `{results.main.tag}` under every definition (– where undefined); the verdict "
                   f"uses **{used}** (`--expected`). Anchored is lexical-weighted: it counts what the embeddings "
                   f"already hold as layer 0.")
        ui.dataframe(expected_rows(results, results.main), key="probes_expected_kinds")
        st.header("Score by layer")
        st.caption("x: layer (0 = embeddings). Test accuracy (categorical) or R² (ordinal) of a linear probe on each "
                   "layer, with 95% bootstrap intervals; dotted: the control task; grey line: the majority / mean "
                   "baseline.")
        ui.plot(figs["curves"], key="probes_curves", own_theme=True)
        if "erasure" in figs:
            erasure_section(results, figs["erasure"])
        st.header("Selectivity (task − control)")
        st.caption(f"Control task probe: {control_lambda_text(results)}; dash-dot: task and control at one λ for "
                   f"every layer.")
        ui.plot(figs["selectivity"], key="probes_selectivity", own_theme=True)
        if "lambda_curves" in figs:
            st.header("Test score against λ")
            st.caption("x: the probe's L2 strength λ (log scale). Solid: the task at the layer named above each "
                       "panel; dotted: the control task at the same layer (Pimentel et al. 2020).")
            ui.plot(figs["lambda_curves"], key="probes_lambda", own_theme=True)
        st.header("MDL (online codelength)")
        st.caption("Compression = uniform codelength / online codelength; higher = the labels are easier to "
                   "transmit with the probe; dotted: the control task.")
        ui.plot(figs["mdl"], key="probes_mdl", own_theme=True)
    st.header("Tasks")
    which = st.selectbox("Model", [m.tag for m in results.models], key="probes_model")
    model = next(m for m in results.models if m.tag == which)
    ui.dataframe(task_rows(results, model), key="probes_tasks")
    if model.erasure is not None:
        st.subheader(f"Erasure: {model.tag}")
        ui.dataframe(erasure_rows(model), key="probes_erasure_table")


render()
