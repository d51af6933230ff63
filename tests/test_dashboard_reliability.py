"""The dashboard against hostile or damaged input (issue 19): run names it must refuse in one
line, numbers in a results.json that no run can have written (NaN, 1e308, a layer the model does
not have), metrics.jsonl messages that say what was skipped, page addresses and CLI hints."""

from __future__ import annotations

import copy
import json
import re
import shlex
import shutil
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from app.dashboard import data, ui
from dashboard_fixtures import open_page, runs_root, use_runs_root  # noqa: F401 - fixture
from probes.results import ProbeResults


def page(root: Path, monkeypatch, name: str | None = None, run: str | None = "tiny") -> AppTest:
    """The dashboard over ``root`` at page ``name`` (None: the Run page), ``?run=run``; no exception."""
    use_runs_root(root, monkeypatch)
    return open_page(name, run)


def texts(elements) -> list[str]:
    return [str(e.value) for e in elements]


def copy_run(runs_root: Path, root: Path, name: str = "tiny") -> Path:  # noqa: F811
    """runs_root/tiny as root/name (no treebank, no checkpoints: the pages fall back)."""
    run = root / name
    shutil.copytree(runs_root / "tiny", run, ignore=shutil.ignore_patterns("data", "checkpoints"))
    return run


# ----------------------------------------------------------------------------- item 7: run names
LONG_NAMES = ["x" * 5000, "a" * 256, "é" * 128]  # 5000 characters; 256 bytes (one over NAME_MAX), twice


@pytest.mark.parametrize("name", [*LONG_NAMES, "a\x00b", "\ud800", "run\x00/../../etc"])
def test_bad_run_names_are_refused_in_one_short_line(runs_root, name):  # noqa: F811
    with pytest.raises(data.AccessError) as err:
        data.resolve_run(runs_root, name)
    message = str(err.value)
    assert message.startswith("refused:") and "\n" not in message and len(message) < 300, message


@pytest.mark.parametrize("name", [*LONG_NAMES, "a\x00b"])
def test_bad_run_names_in_the_url_are_refused_on_the_page(runs_root, monkeypatch, name):  # noqa: F811
    for view in (None, "probes"):
        at = page(runs_root, monkeypatch, view, run=name)
        errors = texts(at.error)
        assert len(errors) == 1 and errors[0].startswith("refused:"), errors
        assert "\n" not in errors[0] and len(errors[0]) < 300 and "Traceback" not in errors[0]
        assert not at.get("plotly_chart")


def test_symlink_loops_are_refused_in_one_line(runs_root, tmp_path, monkeypatch):  # noqa: F811
    root = tmp_path / "runs"
    run = copy_run(runs_root, root)
    (root / "loop").symlink_to(root / "loop")
    with pytest.raises(data.AccessError, match="refused"):
        data.resolve_run(root, "loop")
    (run / "metrics.jsonl").unlink()
    (run / "metrics.jsonl").symlink_to(run / "metrics.jsonl")
    at = page(root, monkeypatch)
    assert [e for e in texts(at.error) if "metrics.jsonl" in e and "\n" not in e], texts(at.error)
    at = page(root, monkeypatch, run="loop")
    assert texts(at.error)[0].startswith("refused:")


def test_a_run_name_at_the_length_limit_is_only_missing(runs_root):  # noqa: F811
    with pytest.raises(data.AccessError, match="no run named"):
        data.resolve_run(runs_root, "a" * 255)


# ----------------------------------------------------------------------------- item 17: results.json values
def tiny_results(runs_root: Path) -> dict[str, Any]:  # noqa: F811
    return json.loads((runs_root / "tiny" / "probes" / "tiny" / "results.json").read_text())


def put(d: Any, path: tuple, value: Any) -> None:
    for key in path[:-1]:
        d = d[key]
    d[path[-1]] = value


M = ("models", 0)
MAIN = "results.models['tiny']"
NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize("path, value, message", [
    ((*M, "tasks", "upos", "layers", 1, "score"), NAN, f"{MAIN}.tasks.upos.layers[1].score: NaN is not a finite"),
    ((*M, "tasks", "upos", "layers", 1, "score"), 1e308,
     f"{MAIN}.tasks.upos.layers[1].score: 1e+308 is outside [0, 1]"),
    ((*M, "tasks", "upos", "layers", 1, "ci"), [0.5, INF], f"{MAIN}.tasks.upos.layers[1].ci: inf is not a finite"),
    ((*M, "tasks", "upos", "layers", 1, "selectivity"), -3.0, "layers[1].selectivity: -3 is outside [-1, 1]"),
    ((*M, "tasks", "upos", "layers", 1, "mdl", "codelength_bits"), -1.0, "mdl.codelength_bits: -1 is outside"),
    ((*M, "tasks", "upos", "peak_score"), 1e308, f"{MAIN}.tasks.upos.peak_score: 1e+308 is outside [0, 1]"),
    ((*M, "tasks", "upos", "peak_layer"), 7, f"{MAIN}.tasks.upos.peak_layer: 7 is outside 0..2"),
    ((*M, "tasks", "upos", "layers", 2, "layer"), 9, f"{MAIN}.tasks.upos.layers[2].layer: 9 is outside 0..2"),
    ((*M, "tasks", "upos", "n_words", "test"), -4, f"{MAIN}.tasks.upos.n_words.test: -4 is outside"),
    ((*M, "tasks", "upos", "expected_layer", "anchored"), 1e308, "expected_layer.anchored: 1e+308 is outside [0, 2]"),
    ((*M, "tasks", "upos", "fit_s"), NAN, f"{MAIN}.tasks.upos.fit_s: NaN is not a finite"),
    ((*M, "tasks", "depth", "layers", 1, "score"), 1e308, f"{MAIN}.tasks.depth.layers[1].score: 1e+308 is outside"),
    ((*M, "tasks", "depth", "layers", 1, "spearman"), 2.0, f"{MAIN}.tasks.depth.layers[1].spearman: 2 is outside"),
    ((*M, "verdict", "p_order"), INF, f"{MAIN}.verdict.p_order: inf is not a finite"),
    ((*M, "verdicts", "anchored", "levels", "early", "mean"), 1e308,
     f"{MAIN}.verdicts.anchored.levels.early.mean: 1e+308"),
    ((*M, "timing_s", "word"), -1.0, f"{MAIN}.timing_s.word: -1 is outside"),
    ((*M, "n_layer"), -2, f"{MAIN}.n_layer: -2 is outside"),
    ((*M, "erasure", "clean", "agreement", "value"), 1.5,
     f"{MAIN}.erasure.clean.agreement.value: 1.5 is outside [0, 1]"),
    ((*M, "erasure", "concepts", "upos", "layers", 0, "loss_delta", "value"), NAN,
     "loss_delta.value: NaN is not a finite"),
    (("data", "n_sentences"), 10 ** 300, "results.data.n_sentences: a 301-digit integer"),
    (("comparison", "upos", "tiny", "peak_score"), 1e308, "results.comparison['upos']['tiny'].peak_score: 1e+308"),
])
def test_results_values_are_checked_on_load(runs_root, path, value, message):  # noqa: F811
    good = tiny_results(runs_root)
    ProbeResults.from_dict(good)  # what the current code writes loads
    bad = copy.deepcopy(good)
    put(bad, path, value)
    bad = json.loads(json.dumps(bad))  # as a hand edit would write it (NaN, Infinity)
    with pytest.raises(ValueError, match=re.escape(message)) as err:
        ProbeResults.from_dict(bad)
    assert "\n" not in str(err.value) and len(str(err.value)) < 300, str(err.value)


def test_undefined_values_written_as_null_still_load(runs_root):  # noqa: F811
    d = tiny_results(runs_root)
    for path in [(*M, "tasks", "upos", "layers", 1, "score"), (*M, "tasks", "upos", "peak_score"),
                 (*M, "tasks", "upos", "expected_layer", "anchored"), (*M, "verdict", "p_order"),
                 (*M, "verdicts", "anchored", "p_order")]:
        put(d, path, None)
    put(d, (*M, "tasks", "upos", "layers", 1, "ci"), [None, None])
    results = ProbeResults.from_dict(d)
    assert results.main.tasks["upos"].layers[1].score is None


def test_the_probes_page_shows_a_damaged_results_file_as_one_alert(runs_root, tmp_path, monkeypatch):  # noqa: F811
    root = tmp_path / "runs"
    run = copy_run(runs_root, root)
    path = run / "probes" / "tiny" / "results.json"
    d = json.loads(path.read_text())
    put(d, (*M, "tasks", "upos", "layers", 1, "score"), 1e308)
    path.write_text(json.dumps(d))
    for view in ("probes", "compare"):
        at = page(root, monkeypatch, view)
        errors = [e for e in texts(at.error) if "results.json" in e]
        assert len(errors) == 1, texts(at.error)
        assert f"{MAIN}.tasks.upos.layers[1].score: 1e+308 is outside [0, 1]" in errors[0]
        assert "\n" not in errors[0]
    assert not any(key.startswith("probes_") for key in (el.key for el in at.get("plotly_chart")))


@pytest.mark.parametrize("field, value", [("val_loss", 1e308), ("val_loss", NAN), ("train_tokens_per_s", 1e308),
                                          ("pct_above_floor", INF), ("entropy_floor", -1.0)])
def test_the_run_page_flags_impossible_numbers_in_results_json(runs_root, tmp_path, monkeypatch,  # noqa: F811
                                                                field, value):
    root = tmp_path / "runs"
    run = copy_run(runs_root, root)
    res = json.loads((run / "results.json").read_text())
    res[field] = value
    (run / "results.json").write_text(json.dumps(res))
    at = page(root, monkeypatch)
    errors = [e for e in texts(at.error) if e.startswith("results.json")]
    assert len(errors) == 1 and f"results.json: {field} " in errors[0] and "not shown" in errors[0], texts(at.error)
    assert all(len(m.value) < 20 for m in at.metric), [m.value for m in at.metric]  # no 300-digit number
    shown = {m.label: m.value for m in at.metric}
    # pct_above_floor: recomputed from the validation loss and the floor; entropy_floor: from config.json
    label = {"val_loss": "validation loss", "train_tokens_per_s": "tokens/s"}.get(field)
    if label:
        assert shown[label] == "–"


def test_the_run_page_flags_a_broken_agreement_accuracy(runs_root, tmp_path, monkeypatch):  # noqa: F811
    root = tmp_path / "runs"
    run = copy_run(runs_root, root)
    res = json.loads((run / "results.json").read_text())
    res["agreement"]["accuracy"] = 1e308
    (run / "results.json").write_text(json.dumps(res))
    at = page(root, monkeypatch)
    assert any(e.startswith("results.json: agreement.accuracy 1e+308") for e in texts(at.error)), texts(at.error)
    assert {m.label: m.value for m in at.metric}["agreement (attractors)"] == "–"


# ----------------------------------------------------------------------------- item 18: metrics.jsonl
METRIC_LINES = [
    json.dumps({"event": "resumed", "step": 0, "checkpoint": "step_0000000"}),
    '{"step": 2, "train_lo',  # cut by a crash
    json.dumps({"step": 2, "train_loss": None, "grad_norm": None, "skipped": True}),
    json.dumps({"step": "4", "train_loss": 3.5}),
]


def test_metrics_without_a_loss_say_what_each_line_held(runs_root, tmp_path, monkeypatch):  # noqa: F811
    root = tmp_path / "runs"
    run = copy_run(runs_root, root)
    (run / "metrics.jsonl").write_text("\n".join(METRIC_LINES) + "\n")
    at = page(root, monkeypatch)
    warnings = [w for w in texts(at.warning) if "metrics.jsonl" in w]
    assert warnings == ["metrics.jsonl: 1 of 4 lines skipped: line 2 is not JSON "
                        "(a line being written, or damaged)"], texts(at.warning)
    info = [i for i in texts(at.info) if "metrics.jsonl" in i]
    assert len(info) == 1 and "missing or empty" not in info[0], texts(at.info)
    assert info[0] == ("No loss to plot: of the 4 lines of metrics.jsonl, line 1 is an event (resumed), "
                       "line 2 is not JSON, line 3 is a skipped step (non-finite loss or gradient), "
                       "line 4 has no integer step.")
    assert "loss_curves" not in [el.key for el in at.get("plotly_chart")]


def test_metric_lines_that_are_not_objects_are_counted(runs_root, tmp_path, monkeypatch):  # noqa: F811
    root = tmp_path / "runs"
    run = copy_run(runs_root, root)
    lines = (run / "metrics.jsonl").read_text().splitlines()
    (run / "metrics.jsonl").write_text("\n".join([*lines[:2], "[1, 2]", "not json", *lines[2:]]) + "\n")
    at = page(root, monkeypatch)
    n = len(lines) + 2
    assert [w for w in texts(at.warning) if "metrics.jsonl" in w] == [
        f"metrics.jsonl: 2 of {n} lines skipped: line 3 is not a JSON object, line 4 is not JSON "
        f"(a line being written, or damaged)"]
    assert "loss_curves" in [el.key for el in at.get("plotly_chart")]


def test_a_run_without_metrics_has_none_yet(runs_root, monkeypatch):  # noqa: F811
    at = page(runs_root, monkeypatch, run="pending")
    assert "No training metrics yet (metrics.jsonl is missing or empty)." in texts(at.info)
    assert not [w for w in texts(at.warning) if "metrics.jsonl" in w]


# ----------------------------------------------------------------------------- item 18: hint, addresses
def test_the_probe_hint_is_a_valid_command(runs_root, monkeypatch):  # noqa: F811
    from app.cli import build_parser

    for view in ("probes", "compare"):
        at = page(runs_root, monkeypatch, view, run="pending")
        hints = [m for m in (re.findall(r"`(stratascope probe[^`]*)`", t) for t in texts(at.info)) if m]
        assert hints, texts(at.info)
        argv = shlex.split(hints[0][0])[1:]
        args = build_parser().parse_args(argv)  # SystemExit (exit 2) on an invalid command line
        assert args.command == "probe" and Path(args.model) == runs_root / "pending"


def _addresses() -> None:  # an AppTest script: st.Page is only set up inside a running app
    import streamlit as st

    from app.dashboard import ui

    st.session_state["pages"] = [(p.url_path, p.title, p.visibility) for p in ui.pages()]


def test_every_page_is_served_at_its_address(runs_root, monkeypatch):  # noqa: F811
    at = AppTest.from_function(_addresses)
    at.run()
    assert not at.exception
    pages = at.session_state["pages"]
    by_address = {address: title for address, title, _ in pages}
    assert by_address[""] == "Run"  # the start page
    assert by_address["run"] == "Run"  # and /run, its own address
    for address, title in [(a, t) for _, t, a in ui.PAGES]:
        assert by_address[address] == title
    visible = [title for _, title, visibility in pages if visibility == "visible"]
    assert visible == [t for _, t, _ in ui.PAGES]  # each listed once in the navigation
    at = page(runs_root, monkeypatch)
    at.switch_page("views/run.py").run()  # the page registered at /run
    assert not at.exception and at.title[0].value == "Run · tiny"
