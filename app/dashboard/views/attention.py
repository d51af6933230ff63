"""Attention: per layer × head patterns of one sentence, and head summaries."""

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from app.dashboard import data, ui

MAX_GRID_LAYERS = 8


def pattern_grid(patterns: np.ndarray, tokens: list[str], layers: list[int]) -> go.Figure:
    """One heatmap per (layer, head): rows = query tokens, columns = key tokens."""
    n_head = patterns.shape[1]
    fig = make_subplots(rows=len(layers), cols=n_head, horizontal_spacing=0.015, vertical_spacing=0.25 / len(layers),
                        subplot_titles=[f"layer {l} · head {h}" for l in layers for h in range(n_head)])
    for r, l in enumerate(layers, start=1):
        for h in range(n_head):
            fig.add_trace(go.Heatmap(z=patterns[l, h], x=tokens, y=tokens, coloraxis="coloraxis",
                                     name=f"L{l}H{h}",
                                     hovertemplate="query %{y} → key %{x}: %{z:.3f}<extra>L" + f"{l}H{h}</extra>"),
                          row=r, col=h + 1)
    side = max(160, 22 * len(tokens))
    fig.update_layout(height=side * len(layers) + 80, coloraxis={"colorscale": "Blues", "cmin": 0, "cmax": 1},
                      title="Attention patterns — row: query token, column: key token (layer i = blocks.i)",
                      template="plotly_white", margin={"t": 70, "l": 80, "r": 20, "b": 60})
    fig.update_xaxes(type="category", tickangle=-60, tickfont={"size": 9}, showticklabels=False)
    fig.update_yaxes(type="category", autorange="reversed", tickfont={"size": 9}, showticklabels=False)
    fig.update_xaxes(showticklabels=True, row=len(layers))  # key tokens under the last row
    fig.update_yaxes(showticklabels=True, col=1)  # query tokens left of the first column
    return fig


def summary_heatmaps(heads: dict, title: str, key: str) -> None:
    n_layer, n_head = heads["entropy"].shape
    x = [f"head {h}" for h in range(n_head)]
    y = [f"layer {l}" for l in range(n_layer)]
    cols = st.columns(3)
    specs = [("entropy", "entropy (nats)", "Viridis", None, None),
             ("prev_token", "previous-token score", "Blues", 0, 1),
             ("subject", "verb → subject attention", "Reds", 0, 1)]
    for col, (field, label, scale, lo, hi) in zip(cols, specs):
        z = heads[field]
        with col:
            if field == "subject" and np.isnan(z).all():
                st.info("no subject–verb pair: no subject score")
                continue
            fig = ui.heatmap(z, x=x, y=y, title=f"{label} ({title})", colorscale=scale, zmin=lo, zmax=hi,
                             text=z, height=140 + 40 * n_layer)
            ui.plot(fig, key=f"{key}_{field}")


def render() -> None:
    ctx = ui.current(need_model=True)
    ref = ctx.model()
    st.title("Attention")
    st.caption(f"{ref.label}: every head's attention pattern on one sentence, and per-head summaries "
               f"(entropy, previous-token score, attention from the verb to its subject). Layer i is blocks.i; "
               f"its output is layer i + 1 of the residual stream.")
    sample = ctx.sample()
    with ui.guard("Running the model"):
        picked = ui.analysed_sentence("attention", sample, ref.key)
        if picked is None:
            return
        words, res = picked
        pats = res["patterns"]
        tokens = res["tokens"]
        n_layer, n_head = pats.shape[:2]
        if n_layer <= MAX_GRID_LAYERS:
            layers = list(range(n_layer))
        else:
            lo, hi = st.select_slider("Layers to show", options=list(range(n_layer)), value=(0, MAX_GRID_LAYERS - 1),
                                      key="attention_layers")
            layers = list(range(lo, hi + 1))
        ui.plot(pattern_grid(pats, tokens, layers), key="attention_grid")

        st.subheader("One head, larger")
        c1, c2 = st.columns(2)
        l = c1.selectbox("Layer", list(range(n_layer)), key="attention_layer")
        h = c2.selectbox("Head", list(range(n_head)), key="attention_head")
        fig = ui.heatmap(pats[l, h], x=tokens, y=tokens, title=f"layer {l} · head {h}", colorscale="Blues", zmin=0,
                         zmax=1, text=pats[l, h], height=140 + 32 * len(tokens),
                         xaxis="key token", yaxis="query token")
        ui.plot(fig, key="attention_head_zoom")

        st.subheader("Head summary — this sentence")
        pair, how = ui.subject_verb("attention", words, sample)
        from app.analysis import head_summary

        tok_pair = [] if pair is None else [(res["word_pos"][pair[0]], res["word_pos"][pair[1]])]
        hs = head_summary(pats, tok_pair)
        if pair is not None:
            st.caption(f"subject “{words[pair[0]]}”, verb “{words[pair[1]]}”: {how}")
        else:
            st.caption(how)
        summary_heatmaps({"entropy": hs.entropy, "prev_token": hs.prev_token, "subject": hs.subject},
                         "this sentence", "attention_sentence")
        ui.dataframe(hs.rows(), key="attention_head_table")

    st.subheader(f"Head summary — {ctx.n_sample}-sentence sample")
    with ui.guard("The sample's head summary"):
        if not sample["sentences"]:
            st.info("no sentences in the sample")
            return
        agg = data.sample_analysis(ref.key, tuple(sample["sentences"]), tuple(sample["pairs"]))
        st.caption(f"{agg['n_sentences']} sentences ({sample['source']}): {agg['heads']['n_queries']} query "
                   f"positions, {agg['heads']['n_pairs']} subject–verb pairs.")
        summary_heatmaps(agg["heads"], "sample", "attention_sample")


render()
