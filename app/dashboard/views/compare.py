"""Compare: our model, GPT-2 and the random-init twin side by side on the same sentences and tasks."""

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from app.dashboard import data, ui
from probes.report import EXPECTED_NAMES, verdict_axis
from probes.results import ProbeResults

ROLE_NAMES = {"model": "our model", "random_init": "random-init twin", "compare": "compared model"}


def relative(n: int) -> list[float]:
    """Relative depth ℓ / L of layers 0..L (so models of different depth share an axis)."""
    return [l / (n - 1) if n > 1 else 0.0 for l in range(n)]


def depth_chart(title: str, per_model: dict[str, list[float]], *, blocks: bool = False, yaxis: str = "") -> go.Figure:
    fig = go.Figure()
    for name, ys in per_model.items():
        n = len(ys) + (1 if blocks else 0)
        xs = relative(n)[1:] if blocks else relative(n)
        fig.add_trace(go.Scatter(x=xs, y=[None if y is None or not np.isfinite(y) else float(y) for y in ys],
                                 mode="lines+markers", name=name))
    fig.update_layout(title=title, xaxis_title="relative depth ℓ / L", yaxis_title=yaxis, template="plotly_white",
                      height=320, margin={"t": 50, "b": 40, "l": 50, "r": 20}, legend={"orientation": "h", "y": -0.3})
    return fig


def relative_depths(results: ProbeResults) -> tuple[str, dict[str, dict[str, float | None]]]:
    """Per model and task, the depth relative to the model's depth (None where undefined); for
    results written before the depth axis (schema 1/2), the anchored expected layer instead. Returns
    (the definition used, values)."""
    kind = "depth" if any(t.expected_layer is not None and t.expected_layer.depth_source is not None
                          for m in results.models for t in m.tasks.values()) else "anchored"
    out: dict[str, dict[str, float | None]] = {}
    for m in results.models:
        for name, t in m.tasks.items():
            e = t.expected_layer if t.skipped is None else None
            out.setdefault(m.tag, {})[name] = None if e is None else (
                e.depth_relative if kind == "depth" else e.relative)
    return kind, out


def models(ctx: ui.RunContext) -> list[tuple[str, data.ModelRef]]:
    out = [("our model", ctx.model()), ("random-init twin", data.ModelRef.twin(ctx.path, ctx.weights))]
    if ctx.settings.gpt2:
        out.append(("GPT-2", data.ModelRef.gpt2(ctx.settings.gpt2)))
    return out


def same_sentences(ctx: ui.RunContext, refs: list[tuple[str, data.ModelRef]]) -> None:
    sample = ctx.sample()
    st.header("Same sentences")
    if not sample["sentences"]:
        st.info("no sentences in the sample")
        return
    sentences, pairs = tuple(sample["sentences"]), tuple(sample["pairs"])
    usable = []
    for name, ref in refs:
        with ui.guard(f"Loading {name}"):
            data.model_info(ref.key)
            usable.append((name, ref))
    fits = [data.fits_context(ref.key, sentences) for _, ref in usable]  # once per model, not per sentence
    keep = [i for i in range(len(sentences)) if all(f[i] for f in fits)]
    skipped = len(sentences) - len(keep)
    sentences, pairs = tuple(sentences[i] for i in keep), tuple(pairs[i] for i in keep)
    st.caption(f"{len(sentences)} sentences ({sample['source']})"
               + (f"; {skipped} left out, longer than a model's context" if skipped else "")
               + "; each model reads them with its own tokenizer and is read at each word's last token.")
    if not sentences:
        st.warning("No sentence of the sample fits every model's context.")
        return
    results = {}
    rows = []
    for name, ref in usable:
        with ui.guard(f"Running {name}"):
            info = data.model_info(ref.key)
            results[name] = data.sample_analysis(ref.key, sentences, pairs)
            rows.append({"model": name, "name": info["name"], "backend": info["backend"], "blocks": info["n_layer"],
                         "heads": info["n_head"], "d_model": info["d_model"], "vocabulary": info["vocab_size"],
                         "words in the sample": results[name]["n_words"]})
    if not results:
        return
    ui.dataframe(rows, key="compare_models")
    c1, c2, c3 = st.columns(3)
    with c1:
        ui.plot(depth_chart("mean ‖xₗ‖ (relative to layer 0)",
                            {k: list(np.asarray(v["stats"]["norm"]) / max(v["stats"]["norm"][0], 1e-12))
                             for k, v in results.items()}), key="compare_norm")
    with c2:
        ui.plot(depth_chart("relative update per block", {k: v["stats"]["rel_update"] for k, v in results.items()},
                            blocks=True), key="compare_rel")
    with c3:
        ui.plot(depth_chart("cos(xₗ, xₗ₋₁) per block", {k: v["stats"]["cos"] for k, v in results.items()},
                            blocks=True), key="compare_cos")
    lens = {k: v["lens"] for k, v in results.items() if v["lens"] is not None}
    c1, c2 = st.columns(2)
    with c1:
        if lens:
            ui.plot(depth_chart("Logit lens: KL to the final layer (nats)", {k: v["kl"] for k, v in lens.items()}),
                    key="compare_lens_kl")
    with c2:
        if lens:
            ui.plot(depth_chart("Logit lens: top-1 agreement with the final layer",
                                {k: v["agree"] for k, v in lens.items()}), key="compare_lens_agree")
    c1, c2 = st.columns(2)
    with c1:
        ui.plot(depth_chart("Strongest previous-token head per layer",
                            {k: np.nanmax(v["heads"]["prev_token"], axis=1) for k, v in results.items()},
                            blocks=True), key="compare_prev")
    with c2:
        subj = {k: np.nanmax(v["heads"]["subject"], axis=1) for k, v in results.items()
                if not np.isnan(v["heads"]["subject"]).all()}
        if subj:
            ui.plot(depth_chart("Strongest verb → subject head per layer", subj, blocks=True), key="compare_subject")
    st.subheader("Layer × layer CKA")
    cols = st.columns(len(results))
    for col, (name, res) in zip(cols, results.items()):
        with col:
            n = res["cka"].shape[0]
            labels = [str(l) for l in range(n)]
            ui.plot(ui.heatmap(res["cka"], x=labels, y=labels, title=name, zmin=0, zmax=1, height=360,
                               xaxis="layer", yaxis="layer"), key=f"compare_cka_{name}")


def same_tasks(ctx: ui.RunContext) -> None:
    st.header("Same tasks (probing results)")
    s = ctx.summary
    if not s["probe_tags"]:
        st.info(f"No probing results for `{ctx.name}`: run `{ui.probe_hint(ctx)}` first.")
        return
    tag = st.selectbox("Results", s["probe_tags"], key="compare_tag")
    read = ui.probe_results(ctx, tag)
    if read is None:
        return
    results = read.to_dict()
    roles = {m["role"] for m in results["models"]}
    if ctx.settings.gpt2 and "compare" not in roles:
        st.info("GPT-2 is configured for this dashboard but these results do not include it: probe it with "
                "`stratascope probe … --compare gpt2:DIR` to see it here.")
    comp = results.get("comparison") or {}
    tags = [m["tag"] for m in results["models"]]
    role_of = {m["tag"]: ROLE_NAMES.get(m["role"], m["role"]) for m in results["models"]}
    tasks = [t["name"] for t in results["tasks"] if t["name"] in comp]
    kind, rel = relative_depths(read)
    name = EXPECTED_NAMES.get(kind, kind)
    fig = go.Figure()
    for tag_ in tags:
        fig.add_trace(go.Bar(x=tasks, y=[rel.get(tag_, {}).get(t) for t in tasks], name=f"{tag_} ({role_of[tag_]})"))
    title = ("Depth of what is gained after the embeddings, relative to the model's depth (depth / L); no bar: "
             "undefined (lexical)" if kind == "depth" else f"Expected layer, {name}, relative to depth (E[ℓ] / L)")
    fig.update_layout(barmode="group", title=title, yaxis_title=f"{name} / L", template="plotly_white", height=380,
                      legend={"orientation": "h", "y": -0.25})
    ui.plot(fig, key="compare_expected")
    fig = go.Figure()
    for tag_ in tags:
        fig.add_trace(go.Bar(x=tasks, y=[(comp[t].get(tag_) or {}).get("peak_score") for t in tasks],
                             name=f"{tag_} ({role_of[tag_]})"))
    fig.update_layout(barmode="group", title="Peak probe score per task", yaxis_title="accuracy / R²",
                      template="plotly_white", height=380, legend={"orientation": "h", "y": -0.25})
    ui.plot(fig, key="compare_peaks")
    rows = []
    typed = {m.tag: m for m in read.models}
    for t in tasks:
        for tag_ in tags:
            c = comp[t].get(tag_)
            if c:
                task = typed[tag_].tasks.get(t)
                e = task.expected_layer if task is not None else None
                share = task.lexical_share if task is not None else None
                rows.append({"task": t, "model": tag_, "role": role_of[tag_], "peak layer": c["peak_layer"],
                             "peak score": c["peak_score"], "selectivity at peak": c["selectivity_at_peak"],
                             "lexical share": share and share.value, "depth": e and e.depth,
                             f"relative {name}": rel.get(tag_, {}).get(t),
                             EXPECTED_NAMES["anchored"]: c["expected_layer"]})
    ui.dataframe(rows, key="compare_table")
    for m in read.models:
        v = m.verdict
        st.markdown(f"- **{m.tag}** ({role_of[m.tag]}), on the {verdict_axis(v.expected)}: {v.message}")


def render() -> None:
    ctx = ui.current(need_model=True)
    st.title("Compare")
    st.caption("Our model, its random-init twin (same architecture, random weights: what the architecture and "
               "the words alone give) and GPT-2, on the same sentences and the same probing tasks.")
    if ctx.settings.gpt2:
        st.success(f"GPT-2: `{ctx.settings.gpt2}`")
    else:
        st.warning("GPT-2 is not configured: start the dashboard with `--gpt2 DIR` (a local Hugging Face GPT-2 "
                   "directory or a cached hub name) or set `STRATASCOPE_GPT2`. Showing our model and its "
                   "random-init twin only.")
    refs = models(ctx)
    same_sentences(ctx, refs)
    same_tasks(ctx)


render()
