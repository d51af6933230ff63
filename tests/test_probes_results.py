"""Typed probing results: to_dict / from_dict against schema "stratascope.probes/3" (and files of
"stratascope.probes/1" and "/2"), erasure results, the readers (report, CSV, figures) on typed objects, and
the one place the verdict wording lives."""

import copy
import json

import pytest
import torch

import hooks
import probes
from corpus import DEFAULT_GRAMMAR, WordTokenizer, generate_sentences
from gpt_model import GPT, GPTConfig
from erasure_fixtures import erasure_dict
from probes.results import ErasureResult, Interval, ProbeResults, run_settings, settings_diff

V1_MODEL_KEYS = ["tag", "role", "spec", "info", "n_layer", "d_model", "tasks", "verdict", "timing_s"]
V1_KEYS = ["schema", "created", "version", "data", "config", "tasks", "main", "models", "verdict", "comparison",
           "torch"]


@pytest.fixture(scope="module")
def results():
    tok = WordTokenizer.from_words(DEFAULT_GRAMMAR.vocabulary())
    torch.manual_seed(2)
    model = GPT(GPTConfig(n_layer=2, d_model=16, n_head=2, vocab_size=len(tok), context_len=48)).eval()
    backend = hooks.load(model, tokenizer=tok, name="typed")
    cfg = probes.ProbeConfig(n_bootstrap=30, lambdas=(1e-1, 1e-2), max_iter=100)
    return probes.probe(backend, generate_sentences(80, seed=5), ["position", "upos", "subject_number"], cfg,
                        data_info={"kind": "treebank", "path": "mem"})


def test_results_are_typed_objects(results):
    assert isinstance(results, ProbeResults)
    assert [m.role for m in results.models] == ["model", "random_init"] and results.main.tag == "typed"
    upos = results.main.tasks["upos"]
    assert upos.info.categorical and upos.metric == "accuracy" and len(upos.layers) == 3
    peak = upos.peak
    assert peak is upos.layers[upos.peak_layer] and peak.ci.low <= peak.score <= peak.ci.high
    assert peak.selectivity == pytest.approx(peak.score - peak.control.score)
    assert peak.mdl.compression > 0 and upos.expected_layer.anchored is not None
    position = results.main.tasks["position"]
    assert position.metric == "r2" and position.layers[0].control is None and position.layers[0].spearman is not None
    groups = results.main.tasks["subject_number"].peak.groups
    assert set(groups) <= {"attractor", "no_attractor"} and all(g.n > 0 for g in groups.values())
    assert results.verdict is results.main.verdict and results.data.path == "mem"


def test_json_round_trip_keeps_every_key(results, tmp_path):
    data = results.to_dict()
    assert data["schema"] == "stratascope.probes/3"
    again = ProbeResults.from_dict(json.loads(json.dumps(data)))
    assert again.to_dict() == data
    assert json.dumps(again.to_dict()) == json.dumps(data)  # the same keys in the same order
    probes.save_results(results, tmp_path / "results.json")
    loaded = probes.load_results(tmp_path)
    assert loaded.to_dict() == data and loaded.main.tasks["upos"].peak.score == results.main.tasks["upos"].peak.score


def test_from_dict_rejects_another_schema_or_missing_fields(results, tmp_path):
    data = results.to_dict()
    other = copy.deepcopy(data)
    other["schema"] = "stratascope.probes/4"
    with pytest.raises(ValueError, match=r"results.schema: 'stratascope.probes/4' is not one of "
                                         r"'stratascope.probes/1', 'stratascope.probes/2', 'stratascope.probes/3'"):
        ProbeResults.from_dict(other)
    broken = copy.deepcopy(data)
    del broken["models"][1]["tasks"]["upos"]["layers"][2]["selectivity_ci"]
    with pytest.raises(ValueError, match=r"results.models\['typed\+random-init'\].tasks.upos.layers\[2\]: "
                                         r"missing field 'selectivity_ci'"):
        ProbeResults.from_dict(broken)
    broken = copy.deepcopy(data)
    broken["models"][0]["tasks"]["position"]["peak_layer"] = "2"
    with pytest.raises(ValueError, match=r"tasks.position.peak_layer: expected a number, got str"):
        ProbeResults.from_dict(broken)
    broken = copy.deepcopy(data)
    del broken["config"]["n_bootstrap"]
    with pytest.raises(ValueError, match=r"results.config: missing field 'n_bootstrap'"):
        ProbeResults.from_dict(broken)
    (tmp_path / "results.json").write_text(json.dumps(other))
    with pytest.raises(ValueError, match=r"results.json: results.schema"):
        probes.load_results(tmp_path)


def test_readers_take_typed_results_or_their_dict(results):
    data = results.to_dict()
    assert probes.to_csv(results) == probes.to_csv(data)
    assert probes.markdown_report(results) == probes.markdown_report(data)
    assert probes.summary(results) == probes.summary(data)
    rows = probes.report.csv_rows(results)
    assert len(rows) == 2 * 3 * 3 and rows[0]["model"] == "typed"
    figs = probes.figures(results)
    assert set(figs) == {"curves", "axes", "selectivity", "expected_layers", "lambda_curves", "mdl"}


def test_verdict_wording_is_defined_once(results):
    assert probes.VERDICT_STATUS == {True: "holds", False: "does not hold", None: "incomplete"}
    for m in results.models:
        status = m.verdict.status
        assert status == probes.verdict_status(m.verdict.holds)
        assert m.verdict.message.startswith(status + ":")
        assert f"hierarchy {status} — " in probes.summary(results)
        assert f"hierarchy {status.upper()}**" in probes.markdown_report(results)


def test_settings_name_what_differs(results):
    same = results.settings()
    assert settings_diff(same, ProbeResults.from_dict(results.to_dict()).settings()) == []
    quick = run_settings(["upos"], {"kind": "treebank", "path": "mem", "max_sentences": 100},
                         probes.ProbeConfig(n_bootstrap=30, lambdas=(1e-1, 1e-2), max_iter=100, device="cuda"),
                         [("model", results.main.spec)])
    spec = results.main.spec
    assert settings_diff(same, quick) == [
        "tasks position,upos,subject_number → upos", f"models {spec},random-init twin → {spec}",
        "data.max_sentences unset → 100"]  # the device is how, not what: not a difference


# ----------------------------------------------------------------------------- schema 2: erasure
def with_erasure(data: dict) -> dict:
    out = copy.deepcopy(data)
    out["models"][0]["erasure"] = erasure_dict(n_layer=2)
    out["models"][1]["erasure"] = erasure_dict(n_layer=2, twin=True)
    return out


def test_a_run_that_erases_nothing_does_not_replace_erasure_results(results, tmp_path):
    from probes.report import ResultsExistError, check_overwrite
    from probes.results import erasure_settings

    typed = ProbeResults.from_dict(with_erasure(results.to_dict()))
    probes.save_results(typed, tmp_path / "results.json")
    plain = results.settings()  # the same run without --erase
    with pytest.raises(ResultsExistError, match=r"erasure.concepts"):
        check_overwrite(tmp_path, plain)
    erased = typed.settings()
    assert erased["erasure"] == erasure_settings(list(typed.main.erasure.concepts), "leace",
                                                 typed.main.erasure.n_random)
    check_overwrite(tmp_path, erased)  # the same settings may replace it


def test_a_run_without_erasure_keeps_its_keys(results):
    data = results.to_dict()
    with_verdicts = V1_MODEL_KEYS[:8] + ["verdicts"] + V1_MODEL_KEYS[8:]  # the verdict by definition beside it
    with_fingerprint = with_verdicts + ["fingerprint"]  # #19: the weights and tokenizer probed
    assert list(data) == V1_KEYS and all(list(m) == with_fingerprint for m in data["models"])
    assert all(m.erasure is None for m in results.models)


def test_erasure_round_trip_is_exact(results):
    data = json.loads(json.dumps(with_erasure(results.to_dict())))
    typed = ProbeResults.from_dict(data)
    assert json.dumps(typed.to_dict()) == json.dumps(data)  # every key, in order
    e = typed.main.erasure
    assert isinstance(e, ErasureResult) and (e.method, e.site, e.n_random, e.n_bootstrap) == ("leace", "resid", 5, 40)
    assert e.clean.agreement.value == 1.0 and e.clean.n_pairs == 120 and e.clean.loss.ci == Interval(2.39, 2.43)
    number = e.concepts["subject_number_next"]
    assert (number.rank, number.majority, [x.layer for x in number.layers]) == (1, 0.55, [0, 1, 2])
    at1 = number.layers[1]
    assert at1.erased.agreement.value == 0.52 and at1.erased.agreement.ci == Interval(0.5, 0.54)
    assert at1.random.agreement.value == pytest.approx(0.998) and at1.erased.loss_delta.value == 0.3
    upos = e.concepts["upos"]
    assert upos.layers[0].erased.agreement is None and upos.layers[0].random.agreement is None
    assert typed.models[1].erasure.clean.agreement.value == 0.55
    assert ErasureResult.from_dict(data["models"][0]["erasure"]).to_dict() == data["models"][0]["erasure"]


def test_a_schema_1_file_still_loads(results, tmp_path):
    data = results.to_dict()
    old = copy.deepcopy(data)
    old["schema"] = "stratascope.probes/1"
    (tmp_path / "results.json").write_text(json.dumps(old))
    loaded = probes.load_results(tmp_path)
    assert loaded.schema == "stratascope.probes/1" and loaded.main.erasure is None
    assert loaded.to_dict() == data  # written back as the current schema, nothing else changes
    old["models"][0]["erasure"] = erasure_dict(n_layer=2)
    with pytest.raises(ValueError, match=r"erasure results in a 'stratascope.probes/1' file"):
        ProbeResults.from_dict(old)


def _broken(data: dict, edit) -> dict:
    out = copy.deepcopy(data)
    edit(out["models"][0]["erasure"])
    return out


@pytest.mark.parametrize("edit, message", [
    (lambda e: e.pop("n_random"), r"results.models\['typed'\].erasure: missing field 'n_random'"),
    (lambda e: e.update(method=1), r"results.models\['typed'\].erasure.method: expected a string, got int"),
    (lambda e: e["clean"]["loss"].pop("n_tokens"), r"erasure.clean.loss: missing field 'n_tokens'"),
    (lambda e: e["clean"]["agreement"].pop("n_pairs"), r"erasure.clean.agreement: missing field 'n_pairs'"),
    (lambda e: e["concepts"]["upos"].update(rank="11"), r"erasure.concepts.upos.rank: expected a number, got str"),
    (lambda e: e["concepts"]["upos"]["layers"][1]["loss_delta"].update(ci=[0.1]),
     r"erasure.concepts.upos.layers\[1\].loss_delta.ci: expected an interval \[low, high\], got \[0.1\]"),
    (lambda e: e["concepts"]["upos"]["layers"][2].pop("probe_accuracy"),
     r"erasure.concepts.upos.layers\[2\]: missing field 'probe_accuracy'"),
    (lambda e: e["concepts"]["subject_number_next"]["layers"][0]["random"]["agreement"].update(value="high"),
     r"erasure.concepts.subject_number_next.layers\[0\].random.agreement.value: expected a number or null, got str"),
    (lambda e: e["concepts"]["upos"]["layers"][0].update(agreement=0.5),
     r"erasure.concepts.upos.layers\[0\].agreement: expected an object or null, got float"),
    (lambda e: e["concepts"]["upos"]["layers"].append(copy.deepcopy(e["concepts"]["upos"]["layers"][0])),
     r"erasure.concepts.upos.layers: layers \[0, 1, 2, 0\] are not increasing layers of 0..2"),
    (lambda e: e["concepts"]["upos"]["layers"][2].update(layer=3),
     r"erasure.concepts.upos.layers: layers \[0, 1, 3\] are not increasing layers of 0..2"),
    (lambda e: e["timing_s"].update(fit="slow"), r"erasure.timing_s.fit: expected a number, got str"),
    (lambda e: e.update(concepts=[]), r"erasure.concepts: expected an object, got list"),
])
def test_bad_erasure_fields_are_named(results, edit, message):
    with pytest.raises(ValueError, match=message):
        ProbeResults.from_dict(_broken(with_erasure(results.to_dict()), edit))


def test_erasure_outputs(results, tmp_path):
    typed = ProbeResults.from_dict(with_erasure(results.to_dict()))
    readings = [c["reading"] for c in erasure_dict()["concepts"].values()]
    report = probes.markdown_report(typed)
    assert "## Erasure" not in probes.markdown_report(results)
    section = report[report.index("## Erasure"):]
    assert "### Erasure: `typed` (model)" in section and "### Erasure: `typed+random-init` (random-init)" in section
    assert "Clean model: attractor agreement 100.0% [99.0, 100.0] on 120 minimal pairs; next-token loss 2.410 " \
           "[2.390, 2.430] nats/token (5120 tokens)." in section
    assert all(r in section for r in readings)
    assert ("| 1 | 52.0 [50.0, 54.0] | 99.8 [99.3, 100.0] | +0.300 [+0.290, +0.310] | +0.001 [+0.000, +0.002] | "
            "55.0 [53.0, 57.0] | 96.0 [94.0, 98.0] |") in section
    upos = section[section.index("**upos**"):]
    assert upos.splitlines()[2] == (
        "| layer | loss change (nats/token) [95% CI] | random rank-11: loss change | "
        "probe accuracy after erasure % (majority 31.0) | random rank-11: probe accuracy % |")
    assert f"erasure, typed: {readings[0]}" in probes.summary(typed)
    # the CSV files: results.csv unchanged, erasure.csv one row per model x concept x layer
    assert probes.to_csv(typed) == probes.to_csv(results)
    rows = probes.report.erasure_csv_rows(typed)
    assert len(rows) == 2 * 2 * 3 and list(rows[1]) == list(probes.report.ERASURE_CSV_COLUMNS)
    assert (rows[1]["model"], rows[1]["concept"], rows[1]["layer"], rows[1]["agreement"],
            rows[1]["agreement_ci_low"], rows[1]["random_agreement"], rows[1]["clean_loss"]) == \
        ("typed", "subject_number_next", 1, 0.52, 0.5, 0.998, 2.41)
    assert rows[3]["agreement"] is None and rows[3]["concept"] == "upos"
    paths = probes.write_outputs(typed, tmp_path / "with")
    assert paths["erasure_csv"].read_text() == probes.report.erasure_csv(typed)
    upos_row = (tmp_path / "with" / "erasure.csv").read_text().splitlines()[4]
    assert upos_row.startswith("typed,model,upos,leace,11,0.31,0,,,,")  # agreement: empty
    probes.write_outputs(results, tmp_path / "without")
    assert not (tmp_path / "without" / "erasure.csv").exists()
    # the figure: a column per concept; agreement, loss change, probe accuracy by layer
    assert "erasure" not in probes.figures(results)
    figs = probes.figures(typed)
    assert list(figs)[:2] == ["curves", "erasure"]  # beside the probe curves
    fig = figs["erasure"]
    assert "Causal erasure" in fig.layout.title.text
    erased = [t for t in fig.data if t.name == "typed: erased"]
    assert [t.xaxis for t in erased] == ["x", "x3", "x5", "x4", "x6"]  # upos has no agreement curve
    assert list(erased[0].y) == [1.0, 0.52, 0.98] and list(erased[1].y) == [0.0, 0.3, 0.04]
    control = next(t for t in fig.data if t.name == "typed+random-init: random subspace")
    assert list(control.y) == [0.548] * 3
    clean = [t for t in fig.data if (t.name or "").endswith(": clean")]
    assert [set(t.y) for t in clean] == [{1.0}, {0.55}]
    assert "no minimal pairs measured" in [a.text for a in fig.layout.annotations]
    page = (tmp_path / "with" / "figures.html").read_text()
    assert page.index('<section id="curves">') < page.index('<section id="erasure">') < page.index(readings[0])


def test_expected_layers_side_by_side(results):
    from probes.depth import EXPECTED_KINDS

    report = probes.markdown_report(results)
    section = report[report.index("## Expected layer by definition"):]
    assert "**`typed`** (model): the verdict uses the **depth** expected layer (`--expected depth`)." in section
    names = {"depth": "depth (verdict)", "anchored": "anchored (lexical-weighted)", "tenney": "Tenney", "mdl": "MDL"}
    assert section.splitlines()[4] == "| task | level | " + " | ".join(
        f"{names[k]} [95% CI]" for k in EXPECTED_KINDS) + " |"
    upos = results.main.tasks["upos"].expected_layer
    row = next(line for line in section.splitlines() if line.startswith("| upos |"))
    depth = "–" if upos.depth is None else f"{upos.depth:.2f} [{upos.depth_ci.low:.2f}, {upos.depth_ci.high:.2f}]"
    assert row.startswith(f"| upos | middle | {depth} | {upos.anchored:.2f} [{upos.anchored_ci.low:.2f}, "
                          f"{upos.anchored_ci.high:.2f}] | ")


def test_the_erasure_engine_writes_this_schema(results):
    """The contract: what probes.erase returns reads back as an ErasureResult, key for key."""
    from probes.erase import erase

    tok = WordTokenizer.from_words(DEFAULT_GRAMMAR.vocabulary())
    torch.manual_seed(2)
    model = GPT(GPTConfig(n_layer=2, d_model=16, n_head=2, vocab_size=len(tok), context_len=48)).eval()
    data = erase(hooks.load(model, tokenizer=tok, name="typed"), generate_sentences(60, seed=5),
                 ["subject_number_next"], probes.ProbeConfig(n_bootstrap=10, max_iter=50), n_random=1)
    data = json.loads(json.dumps(data, allow_nan=False))
    typed = ErasureResult.from_dict(data, "erasure", 2)
    assert typed.to_dict() == data and [x.layer for x in typed.concepts["subject_number_next"].layers] == [0, 1, 2]
    with_it = results.to_dict()
    with_it["models"][0]["erasure"] = data
    assert ProbeResults.from_dict(with_it).to_dict() == with_it


# ----------------------------------------------------------------------------- verdict by definition
def test_verdicts_under_every_definition_round_trip(results):
    from probes.depth import EXPECTED_KINDS
    from probes.results import Verdict

    data = json.loads(json.dumps(results.to_dict()))
    for m, raw in zip(results.models, data["models"]):
        # the run has cumulative probes and MDL codes: a verdict for each definition, the run's among them
        assert list(m.verdicts) == list(EXPECTED_KINDS) and m.verdicts["depth"] == m.verdict
        assert all(v.expected == kind and isinstance(v, Verdict) for kind, v in m.verdicts.items())
        assert raw["verdicts"]["depth"] == raw["verdict"]
    assert "subject_number" not in results.main.verdicts["mdl"].left_out  # categorical: has an MDL code
    assert results.main.verdicts["mdl"].left_out == ["position"]
    again = ProbeResults.from_dict(data)
    assert again.to_dict() == data and again.main.verdicts == results.main.verdicts
    assert json.dumps(again.to_dict()) == json.dumps(data)


def test_a_file_without_verdicts_still_loads(results):
    data = results.to_dict()
    for m in data["models"]:
        del m["verdicts"]
    for schema in ("stratascope.probes/1", "stratascope.probes/2"):
        old = ProbeResults.from_dict({**copy.deepcopy(data), "schema": schema})
        assert old.main.verdicts == {} and old.main.verdict == results.main.verdict
        assert "verdicts" not in old.to_dict()["models"][0]
        report = probes.markdown_report(old)  # the run's verdict alone under the table
        assert f"- Verdict with **depth** (the run's verdict): {old.main.verdict.message}" in report
        assert "other expected-layer definitions" not in probes.summary(old)


def test_verdicts_are_checked(results):
    data = results.to_dict()
    cases = [
        (lambda m: m["verdicts"].update(median=m["verdicts"]["tenney"]),
         r"verdicts.median: not an expected-layer definition"),
        (lambda m: m["verdicts"]["tenney"].update(expected="mdl"), r"verdicts.tenney.expected: 'mdl' under"),
        (lambda m: m["verdicts"]["mdl"].update(holds="yes"), r"verdicts.mdl.holds: expected a boolean or null"),
        (lambda m: m["verdicts"]["tenney"].pop("message"), r"verdicts.tenney: missing field 'message'"),
        (lambda m: m["verdicts"]["depth"].update(message="edited"), r"verdicts.depth: differs from the verdict"),
        (lambda m: m.update(verdicts=[]), r"\['typed'\].verdicts: expected an object, got list"),
    ]
    for spoil, message in cases:
        broken = copy.deepcopy(data)
        spoil(broken["models"][0])
        with pytest.raises(ValueError, match=message):
            ProbeResults.from_dict(broken)


def test_report_and_summary_give_the_verdict_by_definition(results):
    report = probes.markdown_report(results)
    section = report[report.index("## Expected layer by definition"):]
    main = results.main
    lines = [line for line in section.splitlines() if line.startswith("- Verdict with ")]
    assert lines[:4] == [f"- Verdict with **depth** (the run's verdict): {main.verdicts['depth'].message}",
                         f"- Verdict with **anchored (lexical-weighted)**: {main.verdicts['anchored'].message}",
                         f"- Verdict with **Tenney**: {main.verdicts['tenney'].message}",
                         f"- Verdict with **MDL**: {main.verdicts['mdl'].message}"]
    assert len(lines) == 4 * len(results.models)
    summary = probes.summary(results).splitlines()
    other = summary[1]
    assert other.startswith("  other expected-layer definitions: anchored (lexical-weighted) ")
    assert ", Tenney " in other and ", MDL " in other
    assert sum("other expected-layer definitions" in line for line in summary) == 1
