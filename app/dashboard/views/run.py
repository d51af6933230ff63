"""Run: the model card, the loss curves against the entropy floor, throughput."""

import json

import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from app.dashboard import data, ui


@st.cache_data(show_spinner=False)
def param_counts(model_config_json: str) -> dict[str, int]:
    """Parameters per part, from the config alone (the model is built on the meta device)."""
    import torch

    from gpt_model import GPT, GPTConfig

    cfg = GPTConfig.from_dict(json.loads(model_config_json))
    with torch.device("meta"):
        model = GPT(cfg)
    counts = model.param_counts()
    counts["total"] = model.num_params()
    return counts


def model_card(ctx: ui.RunContext) -> None:
    s = ctx.summary
    config = s["config"]
    st.header("Model card")
    if config is None:
        st.info("No model card without a readable config.json.")
        return
    m = config["model"]
    counts = param_counts(json.dumps(m, sort_keys=True))
    cols = st.columns(6)
    cols[0].metric("blocks", m["n_layer"])
    cols[1].metric("d_model", m["d_model"])
    cols[2].metric("heads", m["n_head"])
    cols[3].metric("context", m["context_len"])
    cols[4].metric("vocabulary", m["vocab_size"])
    cols[5].metric("parameters", f"{counts['total']:,}")
    left, right = st.columns([2, 3])
    with left:
        ui.dataframe([{"field": k, "value": str(v)} for k, v in m.items()], key="model_config")
    with right:
        parts = [k for k in counts if k != "total"]
        fig = go.Figure(go.Bar(x=parts, y=[counts[k] for k in parts], text=[f"{counts[k]:,}" for k in parts],
                               marker_color=["#7f7f7f" if not k.startswith("blocks.") else "#1f77b4" for k in parts]))
        fig.update_layout(title="Parameters per block (embeddings, each block, final norm, unembedding)",
                          yaxis_title="parameters", template="plotly_white", height=340,
                          margin={"t": 50, "b": 40, "l": 60, "r": 20})
        ui.plot(fig, key="params_per_block")
    with st.expander("training and data configuration"):
        st.json({k: v for k, v in config.items() if k != "model"}, expanded=False)


def headline_metrics(res: dict, floor: float | None, floor_src: str) -> None:
    """The final numbers of results.json: validation loss against the floor, agreement, speed."""
    cols = st.columns(5)
    val_loss = data.finite(res.get("val_loss"))
    cols[0].metric("validation loss", "–" if val_loss is None else f"{val_loss:.4f}")
    cols[1].metric("entropy floor", "–" if floor is None else f"{floor:.4f}", help=floor_src or None)
    pct = data.finite(res.get("pct_above_floor"))
    if pct is None and val_loss is not None and floor:
        pct = 100 * (val_loss - floor) / floor
    cols[2].metric("above the floor", "–" if pct is None else f"{pct:+.2f}%")
    agreement = res.get("agreement")
    agreement = data.finite(agreement.get("accuracy")) if isinstance(agreement, dict) else None
    cols[3].metric("agreement (attractors)", "–" if agreement is None else f"{100 * agreement:.2f}%",
                   help="minimal pairs whose subject and verb are separated by an attractor")
    tps = data.finite(res.get("train_tokens_per_s"))
    cols[4].metric("tokens/s", "–" if tps is None else f"{tps:,.0f}")


def performance_charts(train: list[dict]) -> None:
    """Throughput (and MFU where known), learning rate and gradient norm over the logged steps."""
    perf = [r for r in train if data.finite(r.get("tokens_per_s")) is not None]
    if perf:
        has_mfu = any(data.finite(r.get("mfu")) is not None for r in perf)
        fig = make_subplots(specs=[[{"secondary_y": has_mfu}]])
        fig.add_trace(go.Scatter(x=[r["step"] for r in perf], y=[r["tokens_per_s"] for r in perf], mode="lines",
                                 name="tokens/s"), secondary_y=False)
        if has_mfu:
            fig.add_trace(go.Scatter(x=[r["step"] for r in perf], y=[100 * (r.get("mfu") or 0) for r in perf],
                                     mode="lines", name="MFU %"), secondary_y=True)
            fig.update_yaxes(title_text="MFU (%)", secondary_y=True)
        fig.update_yaxes(title_text="tokens / s", secondary_y=False)
        fig.update_layout(title="Throughput (training tokens per second between logs)", xaxis_title="step",
                          template="plotly_white", height=320)
        ui.plot(fig, key="throughput")
    opt = [r for r in train if data.finite(r.get("lr")) is not None]
    if opt:
        fig = make_subplots(specs=[[{"secondary_y": True}]])
        fig.add_trace(go.Scatter(x=[r["step"] for r in opt], y=[r["lr"] for r in opt], mode="lines",
                                 name="learning rate"), secondary_y=False)
        fig.add_trace(go.Scatter(x=[r["step"] for r in opt], y=[r.get("grad_norm") for r in opt], mode="lines",
                                 name="gradient norm (before clipping)"), secondary_y=True)
        fig.update_layout(title="Learning rate and gradient norm", xaxis_title="step", template="plotly_white",
                          height=300)
        ui.plot(fig, key="optimizer")


def training(ctx: ui.RunContext) -> None:
    s = ctx.summary
    st.header("Training")
    n_lines, skipped = s["metric_line_count"], s["metric_skipped"]
    if skipped:
        cut = " (a line being written, or damaged)" if any(why == data.NOT_JSON for _, why in skipped) else ""
        st.warning(f"metrics.jsonl: {len(skipped)} of {n_lines} lines skipped: {data.describe_lines(skipped)}{cut}")
    floor, floor_src = data.entropy_floor(s)
    res = s.get("results") or {}
    headline_metrics(res, floor, floor_src)
    series = data.metric_series(s)
    train, val = series.train, series.val
    if not train and not val:
        if not n_lines:
            st.info("No training metrics yet (metrics.jsonl is missing or empty).")
        else:
            st.info(f"No loss to plot: of the {n_lines} line{'s' * (n_lines > 1)} of metrics.jsonl, "
                    f"{data.describe_lines(series.unused)}.")
        return
    fig = go.Figure()
    if train:
        fig.add_trace(go.Scatter(x=[r["step"] for r in train], y=[r["train_loss"] for r in train], mode="lines",
                                 name="train loss (step)", line={"color": "#9ecae1", "width": 1}))
        avg = [r for r in train if data.finite(r.get("train_loss_avg")) is not None]
        if avg:
            fig.add_trace(go.Scatter(x=[r["step"] for r in avg], y=[r["train_loss_avg"] for r in avg],
                                     mode="lines", name="train loss (mean since last log)", line={"color": "#1f77b4"}))
    if val:
        fig.add_trace(go.Scatter(x=[r["step"] for r in val], y=[r["val_loss"] for r in val], mode="lines+markers",
                                 name="validation loss", line={"color": "#d62728"}))
    if floor is not None:
        fig.add_hline(y=floor, line={"dash": "dash", "color": "black"},
                      annotation_text=f"entropy floor {floor:.3f}", annotation_position="top right")
    unigram = data.finite(res.get("unigram_entropy")) or data.finite(
        (s.get("treebank_stats") or {}).get("unigram_entropy_nats_per_token"))
    if unigram is not None:
        fig.add_hline(y=unigram, line={"dash": "dot", "color": "#999"},
                      annotation_text=f"unigram entropy {unigram:.3f}", annotation_position="bottom right")
    fig.update_layout(title="Loss (nats/token) against the treebank's entropy floor", xaxis_title="step",
                      yaxis_title="nats / token", template="plotly_white", height=420,
                      legend={"orientation": "h", "y": -0.2})
    ui.plot(fig, key="loss_curves")

    performance_charts(train)
    events = [r for r in series.events if r["event"] != "final"]
    if events:
        with st.expander(f"events ({len(events)})"):
            ui.dataframe([{"step": r.get("step"), "event": r["event"], "detail": r.get("message") or r.get("checkpoint")}
                          for r in events], key="events")
    if s["checkpoints"]:
        st.caption("Checkpoints: " + ", ".join(data.weight_label(c) for c in s["checkpoints"]))


def render() -> None:
    ctx = ui.current()
    st.title(f"Run · {ctx.name}")
    st.caption(f"`{ctx.path}`")
    for err in ctx.summary["errors"]:
        st.error(err)
    with ui.guard("The model card"):
        model_card(ctx)
    with ui.guard("The training curves"):
        training(ctx)


render()
