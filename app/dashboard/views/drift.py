"""Activation drift: how each block's representation moved between two checkpoints of one run."""

import streamlit as st

from app.dashboard import data, ui


def render() -> None:
    ctx = ui.current(need_model=True)
    s = ctx.summary
    st.title("Activation drift")
    st.caption("The same sample sentences through two sets of weights of this run: how far each layer's "
               "representation moved (relative change, cosine, CKA) and the per-block statistics of both.")
    options = data.weight_options(s)
    options.sort(key=lambda w: (data.weight_step(w, s), w == data.FINAL))
    if len(options) < 2:
        st.warning("This run has fewer than two sets of weights to compare.")
        return
    c1, c2 = st.columns(2)
    a = c1.selectbox("From (A)", options, index=0, key="drift_a", format_func=lambda w: data.weight_label(w, s))
    b = c2.selectbox("To (B)", options, index=len(options) - 1, key="drift_b",
                     format_func=lambda w: data.weight_label(w, s))
    if a == b:
        st.info("Pick two different sets of weights.")
        return
    sample = ctx.sample()
    if not sample["sentences"]:
        st.info("no sentences in the sample")
        return
    with ui.guard("Comparing the checkpoints"):
        ka, kb = ctx.model(a).key, ctx.model(b).key
        d = data.drift_analysis(ka, kb, tuple(sample["sentences"]), tuple(sample["pairs"]))
        la, lb = data.weight_label(a, s), data.weight_label(b, s)
        st.caption(f"{d['n_words']} words from {len(sample['sentences'])} sentences ({sample['source']}).")
        c1, c2 = st.columns(2)
        with c1:
            ui.plot(ui.layer_line("How far each layer moved from A to B", {
                "relative change ‖b − a‖ / ‖a‖": d["rel_change"]}), key="drift_change")
        with c2:
            ui.plot(ui.layer_line("How similar each layer stayed (1 = unchanged)", {
                "cos(a, b)": d["cos"], "linear CKA(a, b)": d["cka"]}), key="drift_similarity")
        n_layer = len(d["a"]["norm"]) - 1
        blocks = list(range(1, n_layer + 1))
        c1, c2, c3 = st.columns(3)
        with c1:
            ui.plot(ui.layer_line("mean ‖xₗ‖", {f"A: {la}": d["a"]["norm"], f"B: {lb}": d["b"]["norm"]}),
                    key="drift_norm")
        with c2:
            ui.plot(ui.layer_line("relative update per block", {f"A: {la}": d["a"]["rel_update"],
                                                                f"B: {lb}": d["b"]["rel_update"]},
                                  x=blocks, xaxis="block ℓ"), key="drift_rel")
        with c3:
            ui.plot(ui.layer_line("cos(xₗ, xₗ₋₁) per block", {f"A: {la}": d["a"]["cos"], f"B: {lb}": d["b"]["cos"]},
                                  x=blocks, xaxis="block ℓ"), key="drift_cos")
        if d["lens_a"] is not None and d["lens_b"] is not None:
            ui.plot(ui.layer_line("Logit lens: KL to each model's own final layer (nats)", {
                f"A: {la}": d["lens_a"]["kl"], f"B: {lb}": d["lens_b"]["kl"]}), key="drift_lens")
        ui.dataframe([{"layer": l, "relative change": float(d["rel_change"][l]), "cos(a, b)": float(d["cos"][l]),
                       "CKA(a, b)": float(d["cka"][l]), "‖x‖ A": d["a"]["norm"][l], "‖x‖ B": d["b"]["norm"][l]}
                      for l in range(n_layer + 1)], key="drift_table")


render()
