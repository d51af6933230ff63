"""The readers of a probing run (report.md, summary, results.csv, figures) on the two axes of
issue 20: lexical share and depth per task, the verdict's effect sizes, anchored labelled
lexical-weighted, selectivity at matched / one λ, refits, test score against λ; and files of
schema 2, which lack all of these, rendered with "–" / "one fit".

The numbers come from a real fit of planted data (tests/test_probes_depth.py ``_planted``:
t0 is lexical, t1 and t2 are gained at layers 1 and 2, ``len`` is ordinal and has no gain).
``planted_results`` and ``as_schema_2`` are reused by the dashboard tests."""

from __future__ import annotations

import copy
import csv
import functools
import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

import probes
from probes.report import (
    UNDEFINED_Y,
    csv_rows,
    figures,
    figures_page,
    markdown_report,
    save_results,
    summary,
    to_csv,
)
from probes.results import DataInfo, ModelResult, ProbeResults, TaskInfo, comparison_of
from tests.test_probes_depth import _planted

NEW_TASK_KEYS = ("lexical_share", "curves", "refits")
NEW_EXPECTED_KEYS = ("depth", "depth_ci", "depth_relative", "depth_source", "gain", "gain_unit")
NEW_LAYER_KEYS = ("val_score", "fixed_lambda", "control_lambda")
NEW_VERDICT_KEYS = ("compared", "uninformative", "undefined")


@functools.cache
def _planted_dict() -> dict[str, Any]:
    X, sentences, tasks = _planted(120)
    cfg = probes.ProbeConfig(n_bootstrap=50, lambdas=(1e-1,), max_iter=200, refits=2)
    fit = probes.ProbeSuite(tasks, cfg).fit(X, sentences)
    # the twin shares the fit: only the report's layout for a second model is under test
    models = [ModelResult("planted", "model", None, {}, fit),
              ModelResult("planted+random-init", "random_init", None, {}, copy.deepcopy(fit))]
    data = DataInfo(len(sentences), int(X.shape[1]), {"train": 84, "val": 12, "test": 24}, {}, path="planted")
    results = ProbeResults("2025-01-01T00:00:00+00:00", "test", data, cfg,
                           [TaskInfo(t.name, t.level, t.kind, "") for t in tasks], models, comparison_of(models))
    return results.to_dict()


def planted_results() -> ProbeResults:
    """A schema-3 run on planted data (fitted once per session, ~10 s; a fresh copy each call)."""
    return ProbeResults.from_dict(copy.deepcopy(_planted_dict()))


def as_schema_2(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` as a schema-2 file holds it: without the keys schema 3 added, the verdict on the
    anchored expected layer (schema 2's default), no refits, the control on its own λ."""
    old = copy.deepcopy(data)
    old["schema"] = "stratascope.probes/2"
    for key in ("refits", "control_lambda"):
        del old["config"][key]
    old["config"]["expected"] = "anchored"
    for m in old["models"]:
        m["verdict"] = m["verdicts"].pop("anchored")
        m["verdicts"] = {"anchored": m["verdict"], **{k: v for k, v in m["verdicts"].items() if k != "depth"}}
        for v in m["verdicts"].values():
            for key in NEW_VERDICT_KEYS:
                del v[key]
        for t in m["tasks"].values():
            for key in NEW_TASK_KEYS:
                t.pop(key, None)
            for key in NEW_EXPECTED_KEYS:
                t["expected_layer"].pop(key, None)
            for x in t["layers"]:
                for key in NEW_LAYER_KEYS:
                    x.pop(key, None)
    old["verdict"] = old["models"][0]["verdict"]
    return old


@pytest.fixture(scope="module")
def results() -> ProbeResults:
    return planted_results()


@pytest.fixture(scope="module")
def old() -> ProbeResults:
    return ProbeResults.from_dict(as_schema_2(_planted_dict()))


def table(report: str, first_head: str) -> tuple[list[str], dict[str, list[str]]]:
    """The markdown table whose header starts with ``first_head``: its heads and, per first
    cell, the row's cells."""
    lines = report.splitlines()
    start = next(k for k, line in enumerate(lines) if line.startswith(f"| {first_head} |"))

    def cells(line: str) -> list[str]:
        return [c.strip() for c in line.strip().strip("|").split("|")]

    rows = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        row = cells(line)
        rows[row[0]] = row
    return cells(lines[start]), rows


def section(report: str, title: str) -> str:
    rest = report[report.index(title):]
    end = rest.find("\n## ", 1)
    return rest if end < 0 else rest[:end]


def ci2(ci) -> str:
    return f"[{ci.low:.2f}, {ci.high:.2f}]"


# ----------------------------------------------------------------------------- the fit itself
def test_the_planted_fit_has_both_axes(results):
    t = results.main.tasks
    assert t["t1"].expected_layer.depth is not None and t["t2"].expected_layer.depth is not None
    assert t["t0"].expected_layer.depth is None and t["len"].expected_layer.depth is None  # no gain after layer 0
    assert t["t0"].lexical_share.value == pytest.approx(1.0) and t["t1"].lexical_share.value < 0.2
    v = results.verdict
    assert v.expected == "depth" and v.compared == ["middle", "late"] and v.uninformative == ["early"]
    assert v.undefined == ["t0", "len"] and [(p.lower, p.upper) for p in v.pairs] == [("middle", "late")]


# ----------------------------------------------------------------------------- report.md
def test_task_table_shows_both_axes_with_the_fits_numbers(results):
    report = markdown_report(results)
    heads, rows = table(section(report, "## Tasks: planted"), "task")
    col = {h: k for k, h in enumerate(heads)}
    assert heads[6:11] == ["lexical share [95% CI]", "depth [95% CI] (source)", "gain after the embeddings [95% CI]",
                           "selectivity at peak, matched λ [95% CI]", "selectivity at peak, one λ [95% CI]"]
    for name in ("t1", "t2"):
        r = results.main.tasks[name]
        e, share, fixed = r.expected_layer, r.lexical_share, r.peak.fixed
        row = rows[name]
        assert row[col["lexical share [95% CI]"]] == f"{share.value:.2f} {ci2(share.ci)}"
        assert row[col["depth [95% CI] (source)"]] == f"{e.depth:.2f} {ci2(e.depth_ci)} (MDL)"
        assert row[col["gain after the embeddings [95% CI]"]] == \
            f"{e.gain.value:.1f} bits [{e.gain.ci.low:.1f}, {e.gain.ci.high:.1f}]"
        assert row[col["selectivity at peak, one λ [95% CI]"]] == \
            f"{fixed.selectivity:.3f} [{fixed.selectivity_ci.low:.3f}, {fixed.selectivity_ci.high:.3f}] (λ 0.1)"
        assert row[col["selectivity at peak, matched λ [95% CI]"]].startswith(f"{r.peak.selectivity:.3f} [")
    # undefined depth: "–", with where it would come from
    assert rows["t0"][col["depth [95% CI] (source)"]] == "– (MDL)"
    length = results.main.tasks["len"].expected_layer
    assert rows["len"][col["depth [95% CI] (source)"]] == "– (Tenney)"
    assert rows["len"][col["gain after the embeddings [95% CI]"]] == \
        f"{length.gain.value:+.3f} R² [{length.gain.ci.low:+.3f}, {length.gain.ci.high:+.3f}]"
    assert rows["len"][col["selectivity at peak, one λ [95% CI]"]] == "–"  # ordinal: no control
    t0 = results.main.tasks["t0"]
    assert rows["t0"][col["layer 0 / baseline"]] == f"{t0.layer0_score:.3f} / {t0.baseline.score:.3f} (lexical)"


def test_verdict_gives_compared_levels_effect_sizes_and_what_was_left_out(results):
    v = results.verdict
    report = markdown_report(results)
    verdict = section(report, "## Verdict")
    assert f"**planted: hierarchy HOLDS** on the depth axis (the depth of what is gained after the embeddings) — " \
           f"{v.message}" in verdict
    _, levels = table(verdict, "level")
    assert levels["middle"] == ["middle", "t1", f"{v.levels['middle'].mean:.2f} {ci2(v.levels['middle'].ci)}"]
    assert list(levels) == ["middle", "late"]
    _, pairs = table(verdict, "order")
    p = v.pairs[0]
    effect = f"late − middle = {p.difference:+.2f} layers [{p.difference_ci.low:+.2f}, {p.difference_ci.high:+.2f}]"
    assert pairs["middle < late"] == ["middle < late", f"{100 * p.p_in_order:.1f}% of resamples", effect]
    assert effect in v.message  # the same wording as the verdict's own message
    assert ("Compared: middle < late. Not compared: early (no task with a defined value: what it carries is in the "
            "embeddings). Undefined (left out of their level): t0, len.") in verdict
    assert probes.report.effect_text(p) == effect


def test_anchored_is_labelled_lexical_weighted(results):
    report = markdown_report(results)
    expected = section(report, "## Expected layer by definition")
    heads, rows = table(expected, "task")
    assert heads[2:] == ["depth (verdict) [95% CI]", "anchored (lexical-weighted) [95% CI]", "Tenney [95% CI]",
                         "MDL [95% CI]"]
    e = results.main.tasks["t1"].expected_layer
    assert rows["t1"][2:4] == [f"{e.depth:.2f} {ci2(e.depth_ci)}", f"{e.anchored:.2f} {ci2(e.anchored_ci)}"]
    assert rows["t0"][2] == "–" and rows["len"][2] == "–"  # undefined: no interval either
    anchored = results.main.verdicts["anchored"]
    assert f"- Verdict with **anchored (lexical-weighted)**: {anchored.message}" in expected
    assert f"- Verdict with **depth** (the run's verdict): {results.verdict.message}" in expected
    assert f"other expected-layer definitions: anchored (lexical-weighted) {anchored.status}" in summary(results)
    # a run whose verdict is the anchored one says so wherever the verdict is shown
    data = results.to_dict()
    data["config"]["expected"] = "anchored"
    for m in data["models"]:
        m["verdict"] = m["verdicts"]["anchored"]
    data["verdict"] = data["models"][0]["verdict"]
    typed = ProbeResults.from_dict(data)
    text = markdown_report(typed)
    assert (f"**planted: hierarchy {anchored.status.upper()}** on the anchored (lexical-weighted) expected layer — "
            f"{anchored.message}") in text
    assert "| level | tasks | mean expected layer, anchored (lexical-weighted) [95% CI] |" in text
    assert summary(typed).splitlines()[0].endswith("[on the anchored (lexical-weighted) expected layer]")
    title = figures(typed)["expected_layers"].layout.title.text
    assert title.startswith("Expected layer (anchored (lexical-weighted)) per task (the verdict's definition")


def test_refits_and_the_control_lambda_are_stated(results):
    report = markdown_report(results)
    assert ("Intervals: 2 fits per number (the train/validation split redrawn and every probe refitted; the number "
            "is their mean), so each interval includes the refit variance as well as the 50 bootstrap resamples of "
            "the test sentences.") in report
    assert "control task: matched λ;" in report
    data = results.to_dict()
    data["config"]["control_lambda"] = "own"
    own = ProbeResults.from_dict(data)
    heads, _ = table(markdown_report(own), "task")
    assert "selectivity at peak, own λ: conservative bound [95% CI]" in heads
    assert "conservative (low) bound" in markdown_report(own)


def test_side_by_side_and_summary_give_both_axes(results):
    report = markdown_report(results)
    _, rows = table(section(report, "## Side by side"), "task")
    r = results.main.tasks["t2"]
    e = r.expected_layer
    cell = f"{r.peak_score:.3f} @ {r.peak_layer}; {r.lexical_share.value:.2f}; {e.depth:.2f} ({e.depth_relative:.2f})"
    assert rows["t2"][2] == cell
    t0 = results.main.tasks["t0"]
    assert rows["t0"][2] == f"{t0.peak_score:.3f} @ {t0.peak_layer}; {t0.lexical_share.value:.2f}; –"
    lines = {line.split()[0]: line.split() for line in summary(results).splitlines()[2:]}
    assert lines["task"][-2:] == ["lex", "depth"]
    assert lines["t2"][-2:] == [f"{r.lexical_share.value:.2f}", f"{e.depth:.2f}"]
    assert lines["t0"][-1] == "–"


# ----------------------------------------------------------------------------- results.csv
def test_csv_has_the_new_columns_from_the_fit(results):
    text = to_csv(results)
    header = text.splitlines()[0].split(",")
    assert header[-12:] == ["val_score", "fixed_lambda", "fixed_selectivity", "fixed_selectivity_ci_low",
                            "fixed_selectivity_ci_high", "lexical_share", "lexical_share_ci_low",
                            "lexical_share_ci_high", "depth", "depth_ci_low", "depth_ci_high", "depth_source"]
    rows = [r for r in csv.DictReader(io.StringIO(text)) if r["model"] == "planted" and r["task"] == "t1"]
    t1 = results.main.tasks["t1"]
    assert len(rows) == len(t1.layers)
    for row, x in zip(rows, t1.layers):
        assert float(row["val_score"]) == x.val_score
        assert float(row["fixed_lambda"]) == x.fixed.lam
        assert float(row["fixed_selectivity"]) == x.fixed.selectivity
        assert float(row["fixed_selectivity_ci_low"]) == x.fixed.selectivity_ci.low
    e = t1.expected_layer
    per_task = {(r["lexical_share"], r["lexical_share_ci_low"], r["depth"], r["depth_ci_high"], r["depth_source"])
                for r in rows}
    assert per_task == {(repr(t1.lexical_share.value), repr(t1.lexical_share.ci.low), repr(e.depth),
                         repr(e.depth_ci.high), "mdl")}  # the same on every row of the task
    t0 = next(r for r in csv_rows(results) if r["task"] == "t0")
    assert t0["depth"] is None and t0["depth_source"] == "mdl"
    length = next(r for r in csv_rows(results) if r["task"] == "len")
    assert length["fixed_lambda"] is None and length["fixed_selectivity"] is None and length["val_score"] is not None


# ----------------------------------------------------------------------------- figures
def test_axes_figure_has_one_marker_per_task_and_model(results):
    fig = figures(results)["axes"]
    assert fig.layout.title.text.startswith("Two axes per task: lexical share (x) and depth")
    defined = next(t for t in fig.data if t.name == "planted")
    main = results.main.tasks
    assert list(defined.text) == ["t1", "t2"]
    assert list(defined.x) == [main[n].lexical_share.value for n in ("t1", "t2")]
    assert list(defined.y) == [main[n].expected_layer.depth for n in ("t1", "t2")]
    ci = main["t1"].expected_layer.depth_ci
    assert defined.error_y.arrayminus[0] == pytest.approx(main["t1"].expected_layer.depth - ci.low)
    share = main["t1"].lexical_share
    assert defined.error_x.array[0] == pytest.approx(share.ci.high - share.value)
    undefined = next(t for t in fig.data if t.name == "planted: depth undefined")
    assert list(undefined.text) == ["t0", "len"] and set(undefined.y) == {UNDEFINED_Y}
    assert list(undefined.x) == [main[n].lexical_share.value for n in ("t0", "len")]
    assert undefined.marker.symbol == "circle-open" and undefined.error_y.visible is False
    assert undefined.mode == "markers" and defined.mode == "markers+text"  # lexical tasks pile up at x = 1: a note
    assert [a.text for a in fig.layout.annotations] == ["depth undefined (–), planted: t0, len"]
    assert fig.layout.yaxis.tickvals[0] == UNDEFINED_Y and fig.layout.yaxis.ticktext[0] == "–"
    twin = [t for t in fig.data if t.name and t.name.startswith("planted+random-init")]
    assert len(twin) == 2 and twin[0].marker.symbol == "x" and twin[0].text is None  # labels on the main model only


def test_lambda_curves_figure(results):
    fig = figures(results)["lambda_curves"]
    t1 = results.main.tasks["t1"]
    curves = t1.curves
    assert curves.layer is not None and curves.control is not None
    titles = [a.text for a in fig.layout.annotations]
    assert f"t1 (middle), layer {curves.layer}" in titles
    col = titles.index(f"t1 (middle), layer {curves.layer}") + 1
    axis = "x" if col == 1 else f"x{col}"
    task = next(t for t in fig.data if t.name == "planted" and t.xaxis == axis)
    assert list(task.x) == curves.lambdas and list(task.y) == curves.task[curves.layer]
    control = next(t for t in fig.data if t.name == "planted control" and t.xaxis == axis)
    assert list(control.y) == curves.control
    assert fig.layout.xaxis.type == "log"
    # an ordinal task: no control, the curve at its peak layer over the ridge grid
    length = results.main.tasks["len"]
    title = f"len (middle), layer {length.peak_layer}"
    assert title in titles and length.curves.layer is None
    ridge = next(t for t in fig.data if t.name == "planted" and t.xaxis == f"x{titles.index(title) + 1}")
    assert list(ridge.y) == length.curves.task[length.peak_layer] and len(ridge.x) == len(length.curves.lambdas) > 1


def test_expected_layer_figure_uses_the_verdicts_definition(results):
    fig = figures(results)["expected_layers"]
    trace = next(t for t in fig.data if t.name == "planted")
    main = results.main.tasks
    assert list(trace.x) == ["t1", "t2"] and list(trace.y) == [main[n].expected_layer.depth for n in ("t1", "t2")]
    assert "Depth of what is gained after the embeddings per task" in fig.layout.title.text
    assert "undefined, not drawn: t0, len" in fig.layout.title.text
    sel = figures(results)["selectivity"]
    assert "(matched λ); dash-dot: one λ for every layer" in sel.layout.title.text
    one = next(t for t in sel.data if t.name == "planted one λ (0.1)" and t.xaxis == "x")
    assert list(one.y) == [x.fixed.selectivity for x in main["t0"].layers]


def test_figures_page_holds_the_new_figures(results):
    figs = figures(results)
    assert list(figs) == ["curves", "axes", "selectivity", "expected_layers", "lambda_curves", "mdl"]
    page = figures_page(results)
    assert page.index('<section id="curves">') < page.index('<section id="axes">')
    assert '<section id="lambda_curves">' in page and "Intervals: 2 fits per number" in page
    assert "(on the depth axis (the depth of what is gained after the embeddings))" in page


# ----------------------------------------------------------------------------- schema 2
def test_a_schema_2_file_renders_with_dashes_and_one_fit(old, tmp_path):
    assert old.schema == "stratascope.probes/2" and old.config.refits == 1
    assert old.main.tasks["t1"].lexical_share is None and old.main.tasks["t1"].expected_layer.depth_source is None
    report = markdown_report(old)
    assert "Intervals: one fit (intervals from the test sentences only)." in report
    assert "control task: own λ;" in report
    heads, rows = table(section(report, "## Tasks: planted"), "task")
    assert "selectivity at peak, own λ [95% CI]" in heads
    for name in ("t0", "t1", "len"):
        assert rows[name][6:9] == ["–", "–", "–"], name  # lexical share, depth, gain
        assert rows[name][10] == "–"  # one λ
    assert (f"**planted: hierarchy {old.main.verdict.status.upper()}** on the anchored (lexical-weighted) expected "
            f"layer") in report
    assert "Compared:" not in report  # the verdict's lists are not in the file
    _, kinds = table(section(report, "## Expected layer by definition"), "task")
    e = old.main.tasks["t1"].expected_layer
    assert kinds["t1"][2:4] == ["–", f"{e.anchored:.2f} {ci2(e.anchored_ci)}"]
    lines = {line.split()[0]: line.split() for line in summary(old).splitlines()[2:]}
    assert lines["t1"][-2:] == ["–", "–"]
    figs = figures(old)
    assert list(figs) == ["curves", "selectivity", "expected_layers", "mdl"]
    assert "(own λ)" in figs["selectivity"].layout.title.text
    assert "Intervals: one fit" in figures_page(old)
    row = next(r for r in csv.DictReader(io.StringIO(to_csv(old))) if r["task"] == "t1")
    assert [row[k] for k in ("val_score", "fixed_lambda", "lexical_share", "depth", "depth_source")] == [""] * 5
    paths = probes.write_outputs(old, tmp_path)  # and every file is written
    assert (tmp_path / "report.md").read_text().startswith(report) and set(paths) == {"results", "csv", "figures",
                                                                                       "report"}


def planted_run(tiny: Path, root: Path) -> Path:
    """A run directory under ``root`` for the dashboard tests: the ``tiny`` run's files (not its
    probes or checkpoints) with ``planted_results`` as probes/planted and the same results as a
    schema-2 file as probes/schema2."""
    run = root / "planted"
    shutil.copytree(tiny, run, ignore=shutil.ignore_patterns("probes", "checkpoints"))
    save_results(planted_results(), run / "probes" / "planted" / "results.json")
    (run / "probes" / "schema2").mkdir(parents=True)
    (run / "probes" / "schema2" / "results.json").write_text(json.dumps(as_schema_2(_planted_dict())))
    return run
