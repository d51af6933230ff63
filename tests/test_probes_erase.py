"""Causal erasure end to end (``probes.erase``): the result dict, the eraser check, the
behaviour's numbers against a direct computation, INLP, the tl backend, and the CLI."""

import json
import math

import numpy as np
import pytest
import torch
from hooks_fixtures import gpt2_dir, one_torch_thread  # noqa: F401 - fixtures

import hooks
import probes
from probes_fixtures import build_treebank_run
from app.cli import main
from corpus import SplitConfig, agreement_minimal_pairs, read_conllu
from probes.erase import erase, minimal_pairs_for
from probes.erase_behaviour import LMBehaviour, edited_forward
from probes.models import fits_context
from probes.results import ErasureResult
from probes.suite import split_sentences

CONFIG = probes.ProbeConfig(n_bootstrap=100)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """runs/tiny: a 2-block GPT (random weights), its word tokenizer and a small treebank."""
    return build_treebank_run(tmp_path_factory.mktemp("runs") / "tiny", model_seed=3, n_sentences=1000,
                              treebank_seed=4, split=SplitConfig(0.4, 0.1, 0.5))


@pytest.fixture(scope="module")
def backend(run_dir):
    return hooks.load(str(run_dir))


@pytest.fixture(scope="module")
def sentences(run_dir):
    return read_conllu(run_dir / "data" / "probe.conllu")


@pytest.fixture(scope="module")
def result(backend, sentences):
    return erase(backend, sentences, ["subject_number_next", "upos"], CONFIG, n_random=3)


def _values(d):
    """Every {"value", "ci"} pair in a nested dict."""
    if isinstance(d, dict):
        if set(d) >= {"value", "ci"}:
            yield d
        for v in d.values():
            yield from _values(v)
    elif isinstance(d, list):
        for v in d:
            yield from _values(v)


def test_the_result_is_the_schema_dict(result, backend):
    assert {k: result[k] for k in ("method", "site", "n_random", "n_bootstrap", "seed")} == {
        "method": "leace", "site": "resid", "n_random": 3, "n_bootstrap": 100, "seed": 0}
    assert set(result["timing_s"]) >= {"fit", "behaviour"}
    assert result["clean"]["agreement"]["n_pairs"] > 15 and result["clean"]["loss"]["n_tokens"] > 800
    assert list(result["concepts"]) == ["subject_number_next", "upos"]
    for name, c in result["concepts"].items():
        assert c["task"] == name and c["reading"].startswith(f"erasing {name} at layer ")
        assert c["rank"] == c["n_classes"] - 1  # LEACE: the class-mean differences
        assert [x["layer"] for x in c["layers"]] == [0, 1, 2]
        for x in c["layers"]:
            assert set(x) == {"layer", "agreement", "loss_delta", "probe_accuracy", "random"}
            assert set(x["random"]) == {"agreement", "loss_delta", "probe_accuracy"}
    assert "attractor agreement" in result["concepts"]["subject_number_next"]["reading"]
    assert "next-token loss" in result["concepts"]["upos"]["reading"]
    json.dumps(result, allow_nan=False)  # plain JSON: no NaN
    typed = ErasureResult.from_dict(result, "erasure", backend.n_layer)
    assert typed.to_dict() == result


def test_intervals_contain_their_values(result):
    pairs = list(_values(result))
    assert len(pairs) == 2 + 2 * 3 * 6  # clean; 2 concepts x 3 layers x (3 measures, erased and random)
    for v in pairs:
        lo, hi = v["ci"]
        assert lo is not None and hi is not None and lo - 1e-9 <= v["value"] <= hi + 1e-9, v


def test_the_eraser_leaves_the_probe_at_the_majority_baseline(result):
    """Within a few points: with every class mean equal, the refitted probe's weights are near zero
    and its argmax hovers between the most frequent classes."""
    for c in result["concepts"].values():
        for x in c["layers"]:
            assert abs(x["probe_accuracy"]["value"] - c["majority"]) < 0.06, (c["task"], x["layer"])
    upos = result["concepts"]["upos"]
    # a random subspace of the same rank leaves UPOS decodable
    assert all(x["random"]["probe_accuracy"]["value"] > upos["majority"] + 0.3 for x in upos["layers"])


def test_the_clean_numbers_match_a_direct_computation(backend, sentences, result):
    """Loss and minimal-pair accuracy of the unerased model, recomputed sentence by sentence."""
    split = split_sentences(sentences, CONFIG.split, CONFIG.seed)
    held_out = [s for s, k in zip(sentences, split) if k == 2]
    model = backend.model
    total, n = 0.0, 0
    correct = 0
    pairs = agreement_minimal_pairs(held_out)
    with torch.no_grad():
        for s in held_out:
            ids = backend.encode(s).tensor()[None]
            total += float(torch.nn.functional.cross_entropy(model(ids)[0, :-1], ids[0, 1:], reduction="sum"))
            n += ids.shape[1] - 1
        for prefix, good, bad in pairs:
            ids = backend.encode([*prefix, good]).tensor()[None]
            logp = model(ids)[0, -2].log_softmax(-1)
            bad_id = backend.encode([*prefix, bad]).ids[-1]
            correct += int(logp[ids[0, -1]] > logp[bad_id])
    clean = result["clean"]
    assert clean["loss"]["n_tokens"] == n and clean["loss"]["value"] == pytest.approx(total / n, rel=1e-5)
    assert clean["agreement"]["n_pairs"] == len(pairs)
    assert clean["agreement"]["value"] == pytest.approx(correct / len(pairs))


def test_multi_token_verbs_and_the_tl_backend(gpt2_dir):
    """A BPE model (several tokens per verb form: extra passes for the wrong forms) gives the
    margins of a direct computation, and its TransformerBridge gives the native numbers."""
    from corpus import generate_sentences

    native = hooks.load(f"gpt2:{gpt2_dir}")
    sentences = [s for s in generate_sentences(200, seed=3) if fits_context(native, s)][:120]
    held_out = sentences[:40]
    pairs = minimal_pairs_for(held_out, sentences)
    # a wrong form that shares no first token with the right one needs a pass of its own
    unit = next(u for u, p in enumerate(pairs) if p)
    prefix, good, _ = pairs[unit][0]
    pairs[unit].append((prefix, good, "zyzzyva"))
    flat = [p for unit in pairs for p in unit]

    def last_word_tokens(words):
        start, end = native.encode(words).spans[-1]
        return end - start

    assert len(flat) > 5 and sum(last_word_tokens([*p, w]) > 1 for p, _, w in flat) > 2
    behaviour = LMBehaviour(native, held_out, pairs)
    assert len(behaviour._rows.ids) > len(held_out)
    lp = behaviour.logprobs(edited_forward(native))[behaviour._n_loss:]
    margins = np.zeros(len(flat))
    np.add.at(margins, behaviour._pair_index, behaviour._pair_sign * lp)
    with torch.no_grad():
        for k, (prefix, good, bad) in enumerate(flat):
            scores = []
            for form in (good, bad):
                enc = native.encode([*prefix, form])
                logp = native.model(enc.tensor()[None])[0].log_softmax(-1)
                start, end = enc.spans[-1]
                scores.append(sum(float(logp[p - 1, enc.ids[p]]) for p in range(start, end)))
            assert margins[k] == pytest.approx(scores[0] - scores[1], abs=1e-4)
    tl = hooks.load(f"tl:{gpt2_dir}")
    a = erase(native, sentences, "subject_number_next", CONFIG, n_random=2)
    b = erase(tl, sentences, "subject_number_next", CONFIG, n_random=2)
    la, lb = a["concepts"]["subject_number_next"]["layers"], b["concepts"]["subject_number_next"]["layers"]
    for x, y in zip(la, lb):
        assert x["loss_delta"]["value"] == pytest.approx(y["loss_delta"]["value"], abs=1e-4)
        assert x["agreement"] == y["agreement"]


def test_inlp_runs_and_reports_its_rank(backend, sentences):
    d = erase(backend, sentences, ["subject_number_next"], CONFIG, method="inlp", n_random=2, inlp_rounds=10)
    c = d["concepts"]["subject_number_next"]
    assert d["method"] == "inlp" and 1 <= c["rank"] <= 10
    for x in c["layers"]:
        assert abs(x["probe_accuracy"]["value"] - c["majority"]) < 0.15


def test_bad_requests_are_one_line_errors(backend, sentences, gpt2_dir):
    with pytest.raises(ValueError, match="erasure needs a categorical task, 'depth' is ordinal"):
        erase(backend, sentences, ["depth"], CONFIG)
    with pytest.raises(ValueError, match="unknown task 'nope'"):
        erase(backend, sentences, "nope", CONFIG)
    with pytest.raises(ValueError, match="erasure method must be one of leace, inlp"):
        erase(backend, sentences, "upos", CONFIG, method="pca")
    with pytest.raises(ValueError, match="erasure needs a native or tl backend"):
        erase(hooks.load(f"nnsight:{gpt2_dir}"), sentences, "upos", CONFIG)


def test_probe_from_python_attaches_the_erasure(run_dir, sentences):
    results = probes.probe(str(run_dir), sentences[:150], ["upos"], probes.ProbeConfig(n_bootstrap=20, mdl=False),
                           twin=False, erase=["subject_number_next"], erase_random=1)
    erased = results.models[0].erasure
    assert erased is not None and list(erased.concepts) == ["subject_number_next"] and erased.n_random == 1


def test_cli_writes_the_erasure_of_the_model_and_its_twin(run_dir, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["probe", "--model", str(run_dir), "--tasks", "upos", "--erase", "subject_number_next,upos",
                 "--erase-random", "2", "--bootstrap", "30", "--no-mdl", "--max-sentences", "200", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "erasure: erasing subject_number_next at layer" in printed
    data = json.loads((out / "results.json").read_text())
    assert data["schema"] == "stratascope.probes/3"
    assert [m["role"] for m in data["models"]] == ["model", "random_init"]
    for m in data["models"]:
        e = m["erasure"]
        assert e["method"] == "leace" and e["n_random"] == 2 and e["n_bootstrap"] == 30
        assert list(e["concepts"]) == ["subject_number_next", "upos"]
        assert not any(isinstance(v, float) and math.isnan(v) for v in _values(e))
    assert probes.load_results(out).models[1].erasure is not None


def test_cli_refuses_bad_erasure_flags_in_one_line(run_dir, capsys):
    assert main(["probe", "--model", str(run_dir), "--erase", "depth"]) == 1
    err = capsys.readouterr().err
    assert "cannot erase 'depth'" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert main(["probe", "--model", str(run_dir), "--erase", "upos", "--erase-random", "0"]) == 1
    assert "--erase-random must be >= 1" in capsys.readouterr().err
