"""Every dashboard page under Streamlit's AppTest, against the tiny run of dashboard_fixtures:
the numbers in the figures and tables are checked against independent computations."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import plotly.io as pio
import pytest
import torch
from dashboard_fixtures import open_page, runs_root, use_runs_root  # noqa: F401 - fixture
from hooks_fixtures import gpt2_dir  # noqa: F401 - fixture
from streamlit.testing.v1 import AppTest

from app.analysis import (
    checkpoint_drift,
    cka_matrix,
    head_summary,
    logit_lens,
    native_unembed,
    stream_stats,
    subject_verb_pairs,
)
from app.dashboard import ENV_GPT2, ENV_RUNS


@pytest.fixture
def app(runs_root, monkeypatch):  # noqa: F811
    use_runs_root(runs_root, monkeypatch)  # a test may change the environment before opening a page
    return open_page


def figures(at: AppTest) -> dict:
    return {el.key: pio.from_json(el.proto.spec) for el in at.get("plotly_chart")}


def arr(x) -> np.ndarray:
    """A figure's array: plotly's JSON may hold it as a typed array {dtype, bdata, shape}."""
    if isinstance(x, dict) and "bdata" in x:
        import base64

        out = np.frombuffer(base64.b64decode(x["bdata"]), dtype=np.dtype(x["dtype"]))
        shape = x.get("shape")
        if isinstance(shape, str):
            shape = [int(v) for v in shape.split(",")]
        return out.reshape(shape) if shape else out
    return np.asarray(x, dtype=float)


def table(at: AppTest, column: str) -> pd.DataFrame:
    for df in at.dataframe:
        if column in df.value.columns:
            return df.value
    raise AssertionError(f"no table with a {column!r} column; tables: {[list(d.value.columns) for d in at.dataframe]}")


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


# ----------------------------------------------------------------------------- independent computations
def backend(run_dir):
    import hooks

    return hooks.load(str(run_dir))


def sample_sentences(run_dir, n=48):
    from corpus import iter_conllu

    context = json.loads((run_dir / "config.json").read_text())["model"]["context_len"]
    out = []
    for s in iter_conllu(run_dir / "data" / "probe.conllu"):
        if 0 < len(s.words) < context:
            out.append(s)
        if len(out) >= n:
            break
    return out


def word_resid(b, sentences):
    runs = b.run([s.forms for s in sentences])
    return torch.cat([r.word_resid() for r in runs], dim=1).numpy()


# ----------------------------------------------------------------------------- Run
def test_run_page(app, runs_root):  # noqa: F811
    from gpt_model import GPT, GPTConfig

    at = app()
    run = runs_root / "tiny"
    results = json.loads((run / "results.json").read_text())
    config = json.loads((run / "config.json").read_text())
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["blocks"] == "2" and metrics["d_model"] == "32"
    assert metrics["validation loss"] == f"{results['val_loss']:.4f}"
    assert metrics["entropy floor"] == f"{results['entropy_floor']:.4f}"
    assert metrics["agreement (attractors)"] == f"{100 * results['agreement']['accuracy']:.2f}%"
    model = GPT(GPTConfig.from_dict(config["model"]))
    assert metrics["parameters"] == f"{model.num_params():,}"
    figs = figures(at)
    bars = figs["params_per_block"].data[0]
    counts = model.param_counts()
    assert list(bars.x) == list(counts) and list(bars.y) == list(counts.values())
    loss = figs["loss_curves"]
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    val = [r for r in rows if r.get("val_loss") is not None and "event" not in r]
    trace = next(t for t in loss.data if t.name == "validation loss")
    assert list(trace.x) == [r["step"] for r in val]
    assert np.allclose(trace.y, [r["val_loss"] for r in val])
    floors = [s.y0 for s in loss.layout.shapes]
    assert results["entropy_floor"] in floors and results["unigram_entropy"] in floors
    tput = figs["throughput"].data[0]
    assert list(tput.y) == [r["tokens_per_s"] for r in rows if "tokens_per_s" in r]
    assert "optimizer" in figs
    config_table = table(at, "field")
    assert dict(zip(config_table["field"], config_table["value"]))["n_layer"] == "2"


# ----------------------------------------------------------------------------- Attention
def test_attention_page(app, runs_root):  # noqa: F811
    run = runs_root / "tiny"
    at = app("attention")
    first = sample_sentences(run)[0]
    assert at.text_input(key="attention_sentence").value == " ".join(first.forms)
    b = backend(run)
    out = b.run_one(first.forms, patterns=True)
    pats = out.patterns.numpy()
    figs = figures(at)
    grid = figs["attention_grid"]
    assert len(grid.data) == 2 * 2  # layers × heads
    labels = [f"{i}·{t}" for i, t in enumerate(["<bos>", *first.forms])]
    for k, tr in enumerate(grid.data):
        l, h = divmod(k, 2)
        assert list(tr.x) == labels and list(tr.y) == labels
        assert np.allclose(arr(tr.z), pats[l, h], atol=1e-6)
        assert np.allclose(arr(tr.z).sum(1), 1.0, atol=1e-5)
    # head summary of this sentence: the gold subject and verb of the main clause
    s, v = subject_verb_pairs(first)[-1]
    expected = head_summary(pats, [(s + 1, v + 1)])
    tab = table(at, "prev_token")
    assert np.allclose(tab["entropy"], expected.entropy.ravel(), atol=1e-5)
    assert np.allclose(tab["prev_token"], expected.prev_token.ravel(), atol=1e-5)
    assert np.allclose(tab["subject_at_verb"], expected.subject.ravel(), atol=1e-5)
    sent = figs["attention_sentence_prev_token"].data[0]
    assert np.allclose(arr(sent.z), expected.prev_token, atol=1e-5)
    assert "attention_sample_entropy" in figs

    # a typed sentence, then another layer and head in the zoom
    words = ["the", "dogs", "near", "the", "old", "cat", "sleep", "."]
    at.text_input(key="attention_sentence").input(" ".join(words)).run()
    at.selectbox(key="attention_layer").set_value(1).run()
    at.selectbox(key="attention_head").set_value(1).run()
    assert not at.exception
    zoom = figures(at)["attention_head_zoom"].data[0]
    assert list(zoom.x) == [f"{i}·{t}" for i, t in enumerate(["<bos>", *words])]
    typed = b.run_one(words, patterns=True).patterns.numpy()
    assert np.allclose(arr(zoom.z), typed[1, 1], atol=1e-6)
    assert "Subject word" in [w.label for w in at.selectbox]  # no gold labels: the user picks

    at.text_input(key="attention_sentence").input("the zyzzyva sleeps .").run()
    assert not at.exception
    assert "zyzzyva" in texts(at.warning)
    at.text_input(key="attention_sentence").input(" ".join(["the dogs sleep"] * 20)).run()  # 60 words > context
    assert not at.exception
    assert "more than the context length" in texts(at.error)


# ----------------------------------------------------------------------------- Residual stream
def test_residual_page(app, runs_root):  # noqa: F811
    run = runs_root / "tiny"
    at = app("residual")
    b = backend(run)
    sentences = sample_sentences(run)
    x = word_resid(b, sentences)
    stats = stream_stats(x)
    figs = figures(at)
    assert np.allclose(figs["resid_sample_norm"].data[0].y, stats.norm, rtol=1e-5)
    assert np.allclose(figs["resid_sample_rel"].data[0].y, stats.rel_update, rtol=1e-5)
    assert list(figs["resid_sample_rel"].data[0].x) == [1, 2]
    assert np.allclose(figs["resid_sample_cos"].data[0].y, stats.cos, rtol=1e-5)
    tab = table(at, "mean ‖x‖")
    assert np.allclose(tab["mean ‖x‖"], stats.norm, rtol=1e-5)
    cka = arr(figs["resid_cka"].data[0].z)
    assert np.allclose(cka, cka_matrix(x), atol=1e-5)
    # logit lens of the chosen sentence
    first = sentences[0]
    out = b.run_one(first.forms)
    with b.lock:
        lens = logit_lens(out.resid, native_unembed(b.model), final_logits=out.logits)
    heat = figs["resid_lens_heatmap"].data[0]
    assert np.allclose(arr(heat.z), lens.kl, atol=1e-5)
    assert np.allclose(arr(heat.z)[-1], 0.0, atol=1e-5)  # the last layer is the output
    top1 = [b.tokenizer.decode([i])[0] for i in lens.top_ids[0, :, 0]]
    assert list(np.asarray(heat.text)[0]) == top1
    line = figs["resid_lens_sentence"]
    assert np.allclose(line.data[0].y, lens.kl.mean(1), atol=1e-5)
    assert np.allclose(line.data[1].y, lens.agree.mean(1))
    top = table(at, "#1")
    assert len(top) == 3 and top["#1"].iloc[-1].startswith(b.tokenizer.decode([int(lens.top_ids[-1, 2, 0])])[0])


# ----------------------------------------------------------------------------- Activation drift
def test_drift_page(app, runs_root):  # noqa: F811
    import hooks
    from gpt_model import GPT, GPTConfig

    run = runs_root / "tiny"
    at = app("drift")
    labels = at.selectbox(key="drift_a").options
    assert len(labels) == 4  # init, step 6, step 12, final
    # defaults: from the initialisation to the final weights
    config = json.loads((run / "config.json").read_text())
    torch.manual_seed(config["train"]["seed"])
    init = hooks.load(GPT(GPTConfig.from_dict(config["model"])).eval(), tokenizer=backend(run).tokenizer)
    sentences = sample_sentences(run)
    a, b = word_resid(init, sentences), word_resid(backend(run), sentences)
    expected = checkpoint_drift(a, b)
    figs = figures(at)
    assert np.allclose(figs["drift_change"].data[0].y, expected["rel_change"], rtol=1e-4)
    sim = figs["drift_similarity"]
    assert np.allclose(sim.data[0].y, expected["cos"], rtol=1e-4)
    assert np.allclose(sim.data[1].y, expected["cka"], atol=1e-4)
    tab = table(at, "CKA(a, b)")
    assert np.allclose(tab["relative change"], expected["rel_change"], rtol=1e-4)
    assert np.allclose(tab["‖x‖ A"], expected["a"].norm, rtol=1e-4)
    # two checkpoints of the run
    at.selectbox(key="drift_a").set_value("step_0000006").run()
    at.selectbox(key="drift_b").set_value("step_0000012").run()
    assert not at.exception
    a = word_resid(hooks.load(str(run / "checkpoints" / "step_0000006")), sentences)
    b = word_resid(hooks.load(str(run / "checkpoints" / "step_0000012")), sentences)
    assert np.allclose(figures(at)["drift_change"].data[0].y, checkpoint_drift(a, b)["rel_change"], rtol=1e-4)
    at.selectbox(key="drift_b").set_value("step_0000006").run()
    assert "two different" in texts(at.info)


# ----------------------------------------------------------------------------- Probes
def test_probes_page(app, runs_root):  # noqa: F811
    from probes import load_results
    from probes.depth import EXPECTED_KINDS
    from probes.report import EXPECTED_NAMES, UNDEFINED_Y

    results = load_results(runs_root / "tiny" / "probes" / "tiny").to_dict()
    at = app("probes")
    shown = texts(at.success) + texts(at.warning) + texts(at.info)
    for m in results["models"]:
        assert m["verdict"]["message"] in shown
    figs = figures(at)
    assert set(figs) >= {"probes_expected", "probes_curves", "probes_selectivity", "probes_mdl", "probes_axes",
                         "probes_lambda"}
    main = results["models"][0]
    kind = main["verdict"]["expected"]
    assert kind == "depth"
    trace = next(t for t in figs["probes_expected"].data if t.name == main["tag"])
    expected = {name: r["expected_layer"][kind] for name, r in main["tasks"].items()
                if not r.get("skipped") and (r.get("expected_layer") or {}).get(kind) is not None}
    assert dict(zip(trace.x or [], trace.y or [])) == pytest.approx(expected)
    # the two axes: every task of the tiny run is lexical (no depth): all on the bottom row
    undefined = next(t for t in figs["probes_axes"].data if t.name == f"{main['tag']}: depth undefined")
    shares = {name: r["lexical_share"]["value"] for name, r in main["tasks"].items()
              if not r.get("skipped") and r["expected_layer"].get("depth") is None}
    assert dict(zip(undefined.text, undefined.x)) == pytest.approx(shares)
    assert set(undefined.y) == {UNDEFINED_Y}
    curves = [t for t in figs["probes_curves"].data if t.name == main["tag"]]
    first_task = next(t for t in results["tasks"] if not main["tasks"][t["name"]].get("skipped"))
    assert list(curves[0].y) == pytest.approx([x["score"] for x in main["tasks"][first_task["name"]]["layers"]])
    tab = table(at, "peak score")
    row = tab[tab["task"] == first_task["name"]].iloc[0]
    r = main["tasks"][first_task["name"]]
    assert row["peak layer"] == r["peak_layer"] and row["peak score"] == pytest.approx(r["peak_score"])
    if main["verdict"]["levels"]:
        levels = table(at, "mean depth")
        assert list(levels["level"]) == list(main["verdict"]["levels"])
    assert row["lexical share"] == pytest.approx(r["lexical_share"]["value"])
    depth = r["expected_layer"].get("depth")
    shown_depth = np.nan if row["depth"] is None else float(row["depth"])
    assert shown_depth == pytest.approx(np.nan if depth is None else depth, nan_ok=True)
    # the expected layer under every definition, the verdict's named; anchored labelled lexical-weighted
    kinds = table(at, "anchored (lexical-weighted) 95% CI")
    defined = {name: r["expected_layer"] for name, r in main["tasks"].items() if not r.get("skipped")}
    assert list(kinds["task"]) == list(defined)
    for kind in EXPECTED_KINDS:  # depth, anchored, Tenney, MDL
        want = [np.nan if e.get(kind) is None else e[kind] for e in defined.values()]
        shown = pd.to_numeric(kinds[EXPECTED_NAMES[kind]]).astype(float)
        assert list(shown) == pytest.approx(want, nan_ok=True), kind
    assert f"the verdict uses **{main['verdict']['expected']}**" in texts(at.caption)
    # the twin's table
    at.selectbox(key="probes_model").set_value(results["models"][1]["tag"]).run()
    twin = results["models"][1]["tasks"][first_task["name"]]
    row = table(at, "peak score").iloc[0]
    assert row["peak score"] == pytest.approx(twin["peak_score"])


def test_probes_page_shows_erasure(app, runs_root):  # noqa: F811
    from probes import load_results

    results = load_results(runs_root / "tiny" / "probes" / "tiny").to_dict()
    main, twin = results["models"][0], results["models"][1]
    at = app("probes")
    fig = figures(at)["probes_erasure"]
    assert "Causal erasure" in fig.layout.title.text
    number = main["erasure"]["concepts"]["subject_number_next"]["layers"]
    # the first column (subject_number_next), top row (attractor agreement): the main model and its twin
    for model, dash in ((main, "solid"), (twin, "dash")):
        tag = model["tag"]
        layers = model["erasure"]["concepts"]["subject_number_next"]["layers"]
        erased = next(t for t in fig.data if t.name == f"{tag}: erased" and t.xaxis == "x")
        assert list(erased.x) == [x["layer"] for x in layers] and erased.line.dash == dash
        assert list(erased.y) == pytest.approx([x["agreement"]["value"] for x in layers])
        control = next(t for t in fig.data if t.name == f"{tag}: random subspace" and t.xaxis == "x")
        assert list(control.y) == pytest.approx([x["random"]["agreement"]["value"] for x in layers])
        clean = next(t for t in fig.data if t.name == f"{tag}: clean")
        assert set(clean.y) == {model["erasure"]["clean"]["agreement"]["value"]}
    band = next(t for t in fig.data if t.fill == "toself" and t.xaxis == "x")
    assert list(band.y) == pytest.approx([x["agreement"]["ci"][1] for x in number]
                                         + [x["agreement"]["ci"][0] for x in number][::-1])
    shown = texts(at.markdown)
    for m in (main, twin):
        for concept in m["erasure"]["concepts"].values():
            assert concept["reading"] in shown
    at.selectbox(key="probes_model").set_value(twin["tag"]).run()
    rows = table(at, "random: agreement")
    upos = rows[rows["concept"] == "upos"]
    assert list(upos["loss change"]) == pytest.approx(
        [x["loss_delta"]["value"] for x in twin["erasure"]["concepts"]["upos"]["layers"]])
    assert upos["agreement"].isna().all()  # no minimal pairs measured for upos


def test_probes_page_shows_the_two_axes_and_the_effect_sizes(app, runs_root, tmp_path, monkeypatch):  # noqa: F811
    """A run whose verdict compares levels (planted data: t1 gained at layer 1, t2 at layer 2, t0
    lexical), and the same results as a schema-2 file."""
    from test_probes_report_axes import planted_results, planted_run

    from probes.report import effect_text

    results = planted_results()
    run = planted_run(runs_root / "tiny", tmp_path / "runs")
    use_runs_root(tmp_path / "runs", monkeypatch)
    at = app("probes", run=run.name)
    assert at.selectbox(key="probes_tag").value == "planted"  # the schema-3 results, shown first
    v = results.verdict
    pair = v.pairs[0]
    assert f"hierarchy HOLDS on the depth axis (the depth of what is gained after the embeddings) — {v.message}" \
        in texts(at.success)
    pairs = table(at, "effect size")
    assert list(pairs["order"]) == ["middle < late"] and list(pairs["effect size"]) == [effect_text(pair)]
    assert pairs["difference (layers)"].iloc[0] == pytest.approx(pair.difference)
    assert "late − middle = +" in effect_text(pair) and " layers [" in effect_text(pair)
    assert ("Compared: middle < late; not compared: early (no task with a defined value: what it carries is in the "
            "embeddings); undefined, left out of their level: t0, len.") in texts(at.caption)
    levels = table(at, "mean depth")
    assert list(levels["mean depth"]) == pytest.approx([v.levels["middle"].mean, v.levels["late"].mean])
    figs = figures(at)
    main = results.main.tasks
    axes = next(t for t in figs["probes_axes"].data if t.name == "planted")
    assert list(axes.text) == ["t1", "t2"]
    assert list(axes.x) == pytest.approx([main[n].lexical_share.value for n in ("t1", "t2")])
    assert list(axes.y) == pytest.approx([main[n].expected_layer.depth for n in ("t1", "t2")])
    curves = main["t1"].curves
    assert any(list(t.y) == pytest.approx(curves.control) for t in figs["probes_lambda"].data
               if t.name == "planted control")
    tasks = table(at, "lexical share").set_index("task")
    assert tasks.loc["t2", "depth"] == pytest.approx(main["t2"].expected_layer.depth)
    assert tasks.loc["t2", "depth from"] == "MDL" and tasks.loc["len", "depth from"] == "Tenney"
    assert tasks.loc["t0", "lexical share"] == pytest.approx(main["t0"].lexical_share.value)
    assert tasks.loc["t1", "selectivity, one λ"] == pytest.approx(main["t1"].peak.fixed.selectivity)
    assert "matched λ" in texts(at.caption) and "Intervals: 2 fits per number" in texts(at.caption)
    kinds = table(at, "anchored (lexical-weighted) 95% CI").set_index("task")
    assert kinds.loc["t1", "depth"] == pytest.approx(main["t1"].expected_layer.depth)
    # the schema-2 file of the same run: no axes, "–", one fit
    at.selectbox(key="probes_tag").set_value("schema2").run()
    assert not at.exception, [e.value for e in at.exception]
    assert "written before the two axes existed" in texts(at.info)
    assert "probes_axes" not in figures(at) and "probes_lambda" not in figures(at)
    assert "Intervals: one fit (intervals from the test sentences only)." in texts(at.caption)
    shown = texts(at.success) + texts(at.error) + texts(at.warning)  # the box follows the verdict's status
    assert "on the anchored (lexical-weighted) expected layer" in shown
    old = table(at, "lexical share").set_index("task")
    assert old["lexical share"].isna().all() and set(old["depth 95% CI"]) == {"–"}


# ----------------------------------------------------------------------------- Compare
def test_compare_page_without_gpt2(app, runs_root):  # noqa: F811
    from probes import load_results

    at = app("compare")
    assert "GPT-2 is not configured" in texts(at.warning)
    models = table(at, "words in the sample")
    assert list(models["model"]) == ["our model", "random-init twin"]
    figs = figures(at)
    run = runs_root / "tiny"
    sentences = sample_sentences(run)
    ours = stream_stats(word_resid(backend(run), sentences))
    norm = figs["compare_norm"]
    assert np.allclose(norm.data[0].y, ours.norm / ours.norm[0], rtol=1e-5)
    assert list(norm.data[0].x) == [0.0, 0.5, 1.0]
    from probes import random_init_twin

    twin = stream_stats(word_resid(random_init_twin(backend(run), 0), sentences))
    assert np.allclose(figs["compare_rel"].data[1].y, twin.rel_update, rtol=1e-5)
    results = load_results(run / "probes" / "tiny").to_dict()
    exp = figs["compare_expected"]
    assert [t.name.split(" ")[0] for t in exp.data] == [m["tag"] for m in results["models"]]
    tasks = list(exp.data[0].x)
    # the depth axis relative to the model's depth (every task of the tiny run is lexical: no bar)
    assert exp.layout.title.text.startswith("Depth of what is gained after the embeddings, relative")
    for trace, model in zip(exp.data, results["models"]):
        want = [model["tasks"][t]["expected_layer"].get("depth_relative") for t in tasks]
        assert list(np.asarray(trace.y, dtype=float)) == pytest.approx(np.asarray(want, dtype=float), nan_ok=True)
    rows = table(at, "anchored (lexical-weighted)")
    main = rows[rows["model"] == results["main"]].set_index("task")
    assert list(main.index) == tasks
    assert list(main["anchored (lexical-weighted)"]) == pytest.approx(
        [results["comparison"][t][results["main"]]["expected_layer"] for t in tasks], nan_ok=True)
    assert list(main["lexical share"]) == pytest.approx(
        [results["models"][0]["tasks"][t]["lexical_share"]["value"] for t in tasks])
    assert any("on the depth axis" in str(m.value) for m in at.markdown)


def test_compare_page_with_gpt2(app, runs_root, gpt2_dir, monkeypatch):  # noqa: F811
    monkeypatch.setenv(ENV_GPT2, str(gpt2_dir))
    at = app("compare")
    assert str(gpt2_dir) in texts(at.success)
    models = table(at, "words in the sample")
    assert list(models["model"]) == ["our model", "random-init twin", "GPT-2"]
    gpt2 = models[models["model"] == "GPT-2"].iloc[0]
    assert (gpt2["blocks"], gpt2["d_model"]) == (3, 32)
    assert gpt2["words in the sample"] == models["words in the sample"].iloc[0]  # same words, other tokenizer
    figs = figures(at)
    assert len(figs["compare_lens_kl"].data) == 3
    assert list(figs["compare_lens_kl"].data[2].x) == [0.0, 1 / 3, 2 / 3, 1.0]
    assert "compare_cka_GPT-2" in figs
    assert "do not include it" in texts(at.info)


# ----------------------------------------------------------------------------- refusals and broken runs
@pytest.mark.parametrize("name", ["escape", "..", "../outside/secret-run", "/etc", "tiny/../../outside"])
def test_paths_outside_the_root_are_refused(app, name):
    for page in (None, "attention", "probes"):
        at = app(page, run=name)
        assert "refused" in texts(at.error), name
        assert not at.get("plotly_chart")
    assert "escape" not in at.selectbox(key="run").options


def test_broken_and_pending_runs(app):
    at = app(run="broken")
    assert "config.json is unreadable or invalid" in texts(at.error)
    at.switch_page("views/attention.py").run()
    assert not at.exception and "no usable config.json" in texts(at.error)
    at = app(run="pending")
    assert "No training metrics yet" in texts(at.info)
    for page in ("residual", "drift", "compare"):
        at.switch_page(f"views/{page}.py").run()
        assert not at.exception
    at.switch_page("views/attention.py").run()
    assert not at.exception
    # a config without weights still has its initialisation, rebuilt from the training seed
    assert at.selectbox(key="weights").value == "init"
    at.switch_page("views/probes.py").run()
    assert "No probing results" in texts(at.info)


def test_empty_root(app, tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_RUNS, str(tmp_path))
    at = app(run=None)
    assert "No run directories" in texts(at.warning)
    at.switch_page("views/compare.py").run()
    assert not at.exception


def test_selecting_a_run_updates_the_url(app):
    at = app(run=None)
    assert at.selectbox(key="run").value == "tiny"  # the first run with final weights
    at.selectbox(key="run").set_value("pending").run()
    assert at.query_params["run"] == "pending"


def test_compare_page_with_a_missing_gpt2(app, tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_GPT2, str(tmp_path / "no-such-gpt2"))
    at = app("compare")
    assert "Loading GPT-2 failed" in texts(at.error)
    assert list(table(at, "words in the sample")["model"]) == ["our model", "random-init twin"]
