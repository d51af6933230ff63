"""Typed probing results: to_dict / from_dict against schema "stratascope.probes/1", the readers
(report, CSV, figures) on typed objects, and the one place the verdict wording lives."""

import copy
import json

import pytest
import torch

import hooks
import probes
from corpus import DEFAULT_GRAMMAR, WordTokenizer, generate_sentences
from gpt_model import GPT, GPTConfig
from probes.results import ProbeResults, run_settings, settings_diff


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
    assert data["schema"] == "stratascope.probes/1"
    again = ProbeResults.from_dict(json.loads(json.dumps(data)))
    assert again.to_dict() == data
    assert json.dumps(again.to_dict()) == json.dumps(data)  # the same keys in the same order
    probes.save_results(results, tmp_path / "results.json")
    loaded = probes.load_results(tmp_path)
    assert loaded.to_dict() == data and loaded.main.tasks["upos"].peak.score == results.main.tasks["upos"].peak.score


def test_from_dict_rejects_another_schema_or_missing_fields(results, tmp_path):
    data = results.to_dict()
    other = copy.deepcopy(data)
    other["schema"] = "stratascope.probes/2"
    with pytest.raises(ValueError, match=r"results.schema: 'stratascope.probes/2' is not 'stratascope.probes/1'"):
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
    assert set(figs) == {"curves", "selectivity", "expected_layers", "mdl"}


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
