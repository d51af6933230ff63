"""Widgets and figure helpers shared by the pages; the sidebar and the run context."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from app.dashboard import VIEWS, data
from gpt_model.rundir import CONFIG_FILE, WEIGHTS_FILE, RunDir

CTX_KEY = "_stratascope_ctx"
SENTENCE_KEY = "_stratascope_sentence"
DEFAULT_SENTENCE = "the dogs near the old cat sleep ."
PLOT_CONFIG = {"displaylogo": False}


# ----------------------------------------------------------------------------- pages
# (script in views/, title, address): each page is served at /ADDRESS (e.g. /attention?run=demo)
PAGES = (("run.py", "Run", "run"), ("attention.py", "Attention", "attention"),
         ("residual.py", "Residual stream", "residual"), ("drift.py", "Activation drift", "drift"),
         ("probes.py", "Probes", "probes"), ("compare.py", "Compare", "compare"))


def pages() -> list[st.Page]:
    """The pages for ``st.navigation``, in menu order. The first (Run) is the start page, served
    at "/"; Streamlit ignores a start page's own address, so it is served at "/run" too, by a
    second page of the same script hidden from the menu."""
    (script, title, address), *others = PAGES
    out = [st.Page(VIEWS / script, title=title, url_path=f"{address}-start", default=True)]
    out += [st.Page(VIEWS / s, title=t, url_path=a) for s, t, a in others]
    out.append(st.Page(VIEWS / script, title=title, url_path=address, visibility="hidden"))
    return out


def probe_hint(ctx: "RunContext") -> str:
    """The command that writes the probing results the Probes and Compare pages read."""
    import shlex

    return f"stratascope probe --model {shlex.quote(str(Path(ctx.root) / str(ctx.name)))}"


# ----------------------------------------------------------------------------- run context
@dataclass
class RunContext:
    settings: data.Settings
    name: str | None = None
    path: Path | None = None
    sig: tuple[float, ...] = ()
    summary: dict[str, Any] | None = None
    weights: str | None = None
    n_sample: int = data.DEFAULT_SAMPLE
    refused: str | None = None
    runs: tuple[str, ...] = ()

    @property
    def root(self) -> str:
        return str(self.settings.root)

    def model(self, which: str | None = None) -> data.ModelRef:
        assert self.path is not None
        return data.ModelRef.run(self.path, which or self.weights or data.FINAL)

    def sample(self) -> dict[str, Any]:
        return data.corpus_sample(self.root, self.name, self.sig, self.n_sample)


def _on_run_change() -> None:
    st.query_params["run"] = st.session_state["run"]


def default_run(root: Path, runs: list[str]) -> int:
    """"demo" when present, else the first run with final weights, else the first."""
    if "demo" in runs:
        return runs.index("demo")
    for i, name in enumerate(runs):
        if RunDir(Path(root) / name).has_final_weights():
            return i
    return 0


def sidebar() -> RunContext:
    """Runs root, run and weights selection (in the sidebar); the context the pages use."""
    s = data.settings()
    runs = data.list_runs(s.root)
    ctx = RunContext(settings=s, runs=tuple(runs))
    requested = st.query_params.get("run")
    if requested is not None:
        try:
            data.resolve_run(s.root, requested)
            if requested in runs and st.session_state.get("run") != requested:
                st.session_state["run"] = requested
        except data.AccessError as err:
            ctx.refused = str(err)
    sb = st.sidebar
    sb.caption(f"Runs root: `{s.root}`")
    if not runs:
        sb.warning("no runs")
    else:
        if st.session_state.get("run") not in runs:
            st.session_state["run"] = runs[default_run(s.root, runs)]
        ctx.name = sb.selectbox("Run", runs, key="run", on_change=_on_run_change)
    if ctx.name is not None and ctx.refused is None:
        try:
            ctx.path = data.resolve_run(s.root, ctx.name)
            ctx.sig = data.signature(ctx.path)
            ctx.summary = data.run_summary(ctx.root, ctx.name, ctx.sig)
        except data.AccessError as err:
            ctx.refused = str(err)
        except (OSError, ValueError) as err:  # a run that changed or broke while being read
            ctx.refused = f"run {data.shown(ctx.name)} cannot be read: {type(err).__name__}: {err}"
    if ctx.summary is not None:
        options = data.weight_options(ctx.summary)
        if options:
            summary = ctx.summary
            ctx.weights = sb.selectbox("Weights", options, key="weights",
                                       format_func=lambda w: data.weight_label(w, summary),
                                       help="which weights the model pages run: the final ones, a checkpoint, "
                                            "or the initialisation rebuilt from the training seed")
    ctx.n_sample = int(sb.slider("Sentences in the sample", 8, 256, data.DEFAULT_SAMPLE, step=8, key="n_sample",
                                 help="treebank sentences behind the per-block statistics, CKA and head summaries"))
    sb.caption("GPT-2: " + (f"`{s.gpt2}`" if s.gpt2 else "not configured (`--gpt2 DIR` or `STRATASCOPE_GPT2`)"))
    st.session_state[CTX_KEY] = ctx
    return ctx


def current(need_model: bool = False) -> RunContext:
    """The context set by the sidebar; shows why and stops the page when there is no usable run."""
    ctx = st.session_state.get(CTX_KEY)
    if ctx is None:  # pragma: no cover - main.py always sets it
        ctx = sidebar()
    if ctx.refused:
        st.error(ctx.refused)
        st.stop()
    if ctx.name is None or ctx.summary is None:
        st.warning(f"No run directories under `{ctx.root}`. Train one (`stratascope train --preset demo "
                   f"--out {ctx.root}/demo`) or start the dashboard with `--runs DIR`.")
        st.stop()
    if need_model:
        if ctx.summary["config"] is None:
            st.error(f"Run `{ctx.name}` has no usable {CONFIG_FILE}: " + "; ".join(ctx.summary["errors"]))
            st.stop()
        if ctx.weights is None:
            st.warning(f"Run `{ctx.name}` has no weights yet (no {WEIGHTS_FILE} and no checkpoint).")
            st.stop()
    return ctx


def probe_results(ctx: RunContext, tag: str) -> Any:
    """The run's probing results ``tag`` (``probes.ProbeResults``), or None after showing in one
    line why they cannot be read (a damaged results.json names the file and the field)."""
    try:
        return data.probe_results(ctx.root, ctx.name, tag, ctx.sig)
    except (ValueError, OSError) as err:  # AccessError and json's errors are ValueErrors
        st.error(f"The probing results `{tag}` cannot be shown: {err}")
    except Exception as err:  # noqa: BLE001 - a shape the reader did not foresee: still one line
        st.error(f"The probing results `{tag}` cannot be shown: {type(err).__name__}: {err}")
    return None


@contextlib.contextmanager
def guard(what: str) -> Iterator[None]:
    """Show an error message instead of a traceback when a section fails."""
    try:
        yield
    except Exception as err:  # noqa: BLE001 - the page goes on; st.stop/rerun are BaseExceptions
        st.error(f"{what} failed: {type(err).__name__}: {err}")


# ----------------------------------------------------------------------------- sentences
def sentence_picker(page: str, sample: dict[str, Any]) -> tuple[str, ...]:
    """An example from the sample or a typed sentence, shared between pages."""
    key = f"{page}_sentence"
    examples = [" ".join(s) for s in sample["sentences"][:40]]
    if key not in st.session_state:
        st.session_state[key] = st.session_state.get(SENTENCE_KEY) or (examples[0] if examples else DEFAULT_SENTENCE)

    def use_example() -> None:
        ex = st.session_state.get(f"{page}_example")
        if ex:
            st.session_state[key] = ex

    c1, c2 = st.columns([2, 3])
    c1.selectbox("Pick a treebank sentence", examples, index=None, placeholder="choose an example…",
                 key=f"{page}_example", on_change=use_example)
    text = c2.text_input("…or type one (words separated by spaces)", key=key)
    st.session_state[SENTENCE_KEY] = text
    return tuple(text.split())


def analysed_sentence(page: str, sample: dict[str, Any], model_key: str
                      ) -> tuple[tuple[str, ...], dict[str, Any]] | None:
    """The sentence picker, then (words, ``data.sentence_analysis`` of them), with words outside
    the model's vocabulary flagged; None (and a hint) while no sentence is typed."""
    words = sentence_picker(page, sample)
    if not words:
        st.info("Type a sentence.")
        return None
    data.load_backend(model_key)  # first, so that its own spinner ("Loading the model…") shows
    res = data.sentence_analysis(model_key, words)
    if res["unknown"]:
        st.warning("Not in the model's vocabulary (read as <unk>): " + ", ".join(res["unknown"]))
    return words, res


def subject_verb(page: str, words: tuple[str, ...], sample: dict[str, Any]) -> tuple[tuple[int, int] | None, str]:
    """Gold (subject, verb) when the sentence is in the sample, else a guess the user can change."""
    gold = dict(zip(sample["sentences"], sample["pairs"]))
    pairs = gold.get(words)
    if pairs:
        return pairs[-1], "gold, from the treebank (the main clause's subject and verb)"
    guess = data.guess_pair(words, sample["lexicon"])
    tag = hashlib.md5(" ".join(words).encode()).hexdigest()[:8]
    options = list(range(len(words)))
    fmt = lambda i: f"{i + 1}: {words[i]}"  # noqa: E731
    c1, c2 = st.columns(2)
    s = c1.selectbox("Subject word", options, index=guess[0] if guess else 0, format_func=fmt, key=f"{page}_subj_{tag}")
    v = c2.selectbox("Verb word", options, index=guess[1] if guess else len(words) - 1, format_func=fmt,
                     key=f"{page}_verb_{tag}")
    if s >= v:
        return None, "the subject must come before the verb"
    return (s, v), "guessed from the words' usual part of speech — change it above" if guess else "chosen above"


# ----------------------------------------------------------------------------- figures
def plot(fig: go.Figure, key: str | None = None, own_theme: bool = False) -> None:
    """own_theme: keep the figure's colours and template (figures made outside the dashboard)."""
    st.plotly_chart(fig, width="stretch", config=PLOT_CONFIG, key=key, theme=None if own_theme else "streamlit")


def layer_line(title: str, series: dict[str, Sequence[float]], *, x: Sequence[float] | None = None,
               xaxis: str = "layer (0 = embeddings)", yaxis: str = "", height: int = 320,
               hline: tuple[float, str] | None = None) -> go.Figure:
    fig = go.Figure()
    for name, ys in series.items():
        ys = [None if v is None or not np.isfinite(v) else float(v) for v in ys]
        xs = list(x) if x is not None else list(range(len(ys)))
        fig.add_trace(go.Scatter(x=xs[: len(ys)], y=ys, mode="lines+markers", name=name))
    if hline is not None:
        fig.add_hline(y=hline[0], line={"dash": "dash", "color": "#999"}, annotation_text=hline[1])
    fig.update_layout(title=title, xaxis_title=xaxis, yaxis_title=yaxis, height=height, template="plotly_white",
                      margin={"t": 50, "b": 40, "l": 50, "r": 20}, legend={"orientation": "h", "y": -0.25})
    if x is None or all(float(v).is_integer() for v in x):
        fig.update_xaxes(dtick=1)
    return fig


def heatmap(z: Any, *, x: Sequence[Any], y: Sequence[Any], title: str, zmin: float | None = None,
            zmax: float | None = None, colorscale: str = "Viridis", text: Any = None, height: int = 420,
            xaxis: str = "", yaxis: str = "", reverse_y: bool = True) -> go.Figure:
    z = np.asarray(z, dtype=float)
    if text is not None:
        text = np.asarray(text)
        if text.dtype.kind in "fiu":  # numbers: two decimals
            text = np.vectorize(lambda v: "" if not np.isfinite(v) else f"{v:.2f}", otypes=[object])(text.astype(float))
    fig = go.Figure(go.Heatmap(z=z, x=list(x), y=list(y), zmin=zmin, zmax=zmax, colorscale=colorscale,
                               text=text, texttemplate="%{text}" if text is not None else None,
                               hovertemplate="%{y} → %{x}: %{z:.3f}<extra></extra>"))
    fig.update_layout(title=title, height=height, template="plotly_white", xaxis_title=xaxis, yaxis_title=yaxis,
                      margin={"t": 50, "b": 40, "l": 60, "r": 20})
    fig.update_xaxes(type="category")
    fig.update_yaxes(type="category", autorange="reversed" if reverse_y else True)
    return fig


def dataframe(rows: list[dict[str, Any]] | Any, key: str | None = None, **kwargs: Any) -> None:
    import pandas as pd

    df = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
    st.dataframe(df, width="stretch", hide_index=True, key=key, **kwargs)
