"""Residual stream: per-block statistics, layer × layer CKA, and the logit lens."""

import numpy as np
import streamlit as st

from app.dashboard import data, ui


def block_stats(stats: dict, title: str, key: str) -> None:
    n_layer = len(stats["norm"]) - 1
    c1, c2, c3 = st.columns(3)
    with c1:
        ui.plot(ui.layer_line(f"mean ‖xₗ‖ — {title}", {"mean norm": stats["norm"]}, yaxis="mean norm"), key=f"{key}_norm")
    blocks = list(range(1, n_layer + 1))
    with c2:
        ui.plot(ui.layer_line(f"relative update ‖xₗ − xₗ₋₁‖ / ‖xₗ₋₁‖ — {title}",
                              {"relative update": stats["rel_update"]}, x=blocks, xaxis="block ℓ"),
                key=f"{key}_rel")
    with c3:
        ui.plot(ui.layer_line(f"cos(xₗ, xₗ₋₁) — {title}", {"cosine": stats["cos"]}, x=blocks, xaxis="block ℓ"),
                key=f"{key}_cos")


def render() -> None:
    ctx = ui.current(need_model=True)
    ref = ctx.model()
    st.title("Residual stream")
    st.caption(f"{ref.label}. Layer 0 is the embeddings, layer ℓ the stream after block ℓ. Statistics are "
               f"averaged over the words of a sample of treebank sentences (<bos> left out).")
    sample = ctx.sample()
    with ui.guard("The sample statistics"):
        if not sample["sentences"]:
            st.info("no sentences in the sample")
        else:
            agg = data.sample_analysis(ref.key, tuple(sample["sentences"]), tuple(sample["pairs"]))
            st.caption(f"{agg['n_sentences']} sentences, {agg['n_words']} words — {sample['source']}.")
            s = agg["stats"]
            block_stats(s, "sample", "resid_sample")
            ui.dataframe([{"layer": l, "mean ‖x‖": s["norm"][l],
                           "relative update": s["rel_update"][l - 1] if l else None,
                           "cos(xₗ, xₗ₋₁)": s["cos"][l - 1] if l else None} for l in range(len(s["norm"]))],
                         key="resid_table")
            n = agg["cka"].shape[0]
            c1, c2 = st.columns([1, 1])
            with c1:
                labels = [f"layer {l}" for l in range(n)]
                fig = ui.heatmap(agg["cka"], x=labels, y=labels, title="Linear CKA between layers (sample words)",
                                 zmin=0, zmax=1, text=agg["cka"], height=140 + 45 * n)
                ui.plot(fig, key="resid_cka")
            with c2:
                if agg["lens"] is None:
                    st.info("This model has no logit lens (it needs our GPT's ln_final and unembed).")
                else:
                    fig = ui.layer_line("Logit lens over the sample", {
                        "KL(final ‖ layer) (nats)": agg["lens"]["kl"],
                        "top-1 agreement with the final layer": agg["lens"]["agree"]})
                    ui.plot(fig, key="resid_lens_sample")

    st.header("Logit lens — one sentence")
    with ui.guard("Running the model"):
        picked = ui.analysed_sentence("residual", sample, ref.key)
        if picked is None:
            return
        words, res = picked
        lens = res["lens"]
        if lens is None:
            st.info("This model has no logit lens.")
            return
        tokens = res["tokens"]
        n_l = lens["kl"].shape[0]
        layers = [f"layer {l}" for l in range(n_l)]
        top1 = np.array([[lens["top_tokens"][l][t][0] for t in range(len(tokens))] for l in range(n_l)])
        fig = ui.heatmap(lens["kl"], x=tokens, y=layers, colorscale="Magma_r",
                         title="KL(final ‖ layer) per position (nats); text: the layer's top next-token guess",
                         text=top1, height=140 + 45 * n_l, xaxis="position (predicting the next token)")
        ui.plot(fig, key="resid_lens_heatmap")
        c1, c2 = st.columns(2)
        with c1:
            ui.plot(ui.layer_line("This sentence", {"KL (nats)": lens["kl"].mean(1),
                                                     "top-1 agreement": lens["agree"].mean(1)}),
                    key="resid_lens_sentence")
        with c2:
            pos = st.selectbox("Position", list(range(len(tokens))), index=min(len(tokens) - 1, 2),
                               format_func=lambda t: tokens[t], key="resid_lens_pos")
            ui.dataframe([{"layer": l, **{f"#{k + 1}": f"{lens['top_tokens'][l][pos][k]} ({lens['top_probs'][l, pos, k]:.2f})"
                                          for k in range(len(lens['top_tokens'][l][pos]))},
                           "KL": float(lens["kl"][l, pos])} for l in range(n_l)], key="resid_top_tokens")
        st.subheader("Per-block statistics — this sentence")
        block_stats(res["stats"], "this sentence", "resid_sentence")


render()
