"""#19: an activation store or a results.json is never reused for another model or other data.

A store records its model's fingerprint (weights and tokenizer) and a results.json records each
model's fingerprint and the data file's content hash; a mismatch is refused naming what differs,
or rebuilt/replaced with --force. A damaged store is named as such, with the remedy."""

import json
import shutil

import numpy as np
import pytest
import torch

import hooks
import probes
from app.cli import main
from corpus import SplitConfig, read_conllu
from gpt_model import GPT
from gpt_model.checkpoint import load_model, save_model
from hooks.fingerprint import model_fingerprint, weights_fingerprint
from hooks.store import DamagedStoreError, StaleStoreError
from probes.features import FeatureLayers, NonFiniteActivationsError
from probes_fixtures import build_treebank_run, quick_probe_args


def _run(path, seed=5):
    return build_treebank_run(path, model_seed=seed, n_sentences=200, treebank_seed=2,
                              split=SplitConfig(0.5, 0.1, 0.4))


def _replace_weights(run, seed):
    """Overwrite RUN/model.safetensors in place with other weights of the same shape."""
    cfg = load_model(run).cfg
    torch.manual_seed(seed)
    save_model(GPT(cfg), run)


@pytest.fixture
def run_dir(tmp_path):
    return _run(tmp_path / "runs" / "tiny")


@pytest.fixture
def sentences(run_dir):
    return read_conllu(run_dir / "data" / "probe.conllu")[:25]


def _quick(run_dir, *extra):
    return quick_probe_args(run_dir, "--no-control", *extra)


def _upos_scores(out):
    data = json.loads((out / "results.json").read_text())
    return [x["score"] for x in data["models"][0]["tasks"]["upos"]["layers"]]


# ----------------------------------------------------------------------------- fingerprints
def test_weights_fingerprint_follows_the_weights_not_the_object(run_dir):
    a, b = hooks.load(str(run_dir)), hooks.load(str(run_dir))
    assert model_fingerprint(a) == model_fingerprint(b)
    assert set(model_fingerprint(a)) == {"weights", "tokenizer"}
    _replace_weights(run_dir, seed=99)
    c = hooks.load(str(run_dir))
    assert model_fingerprint(c)["weights"] != model_fingerprint(a)["weights"]
    assert model_fingerprint(c)["tokenizer"] == model_fingerprint(a)["tokenizer"]
    # one weight changed by one ulp changes it; bf16 weights are hashed too
    model = load_model(run_dir)
    before = weights_fingerprint(model)
    with torch.no_grad():
        p = next(model.parameters())
        p.view(-1)[0] = torch.nextafter(p.view(-1)[0], torch.tensor(float("inf")))
    assert weights_fingerprint(model) != before
    assert weights_fingerprint(model.to(torch.bfloat16)).startswith("sha256:")


# ----------------------------------------------------------------------------- the store
def test_store_built_from_other_weights_is_refused_then_rebuilt(run_dir, sentences, tmp_path):
    """The issue's case: same path, name and shape, model.safetensors replaced."""
    old = hooks.load(str(run_dir))
    hooks.ActivationStore.build(tmp_path / "s", old, sentences, dtype="float32")
    _replace_weights(run_dir, seed=99)
    new = hooks.load(str(run_dir))
    with pytest.raises(StaleStoreError, match=r"built from another model \(weights sha256:\w{12} → sha256:\w{12}"):
        hooks.ActivationStore.build(tmp_path / "s", new, sentences, dtype="float32")
    rebuilt = hooks.ActivationStore.build(tmp_path / "s", new, sentences, dtype="float32", rebuild=True)
    fresh = hooks.ActivationStore.build(tmp_path / "fresh", new, sentences, dtype="float32")
    assert rebuilt.fingerprint == model_fingerprint(new)
    for layer in range(3):
        np.testing.assert_array_equal(rebuilt.layer(layer), fresh.layer(layer))
    # append() checks the same
    with pytest.raises(StaleStoreError, match="weights"):
        hooks.ActivationStore(tmp_path / "s").append(old, sentences[:3])


def test_store_is_reused_for_the_same_weights_under_another_path(run_dir, sentences, tmp_path):
    store = hooks.ActivationStore.build(tmp_path / "s", hooks.load(str(run_dir)), sentences)
    index = (tmp_path / "s" / "index.json").read_bytes()
    copy = shutil.copytree(run_dir, tmp_path / "elsewhere" / "tiny")
    again = hooks.ActivationStore.build(tmp_path / "s", hooks.load(str(copy)), sentences)
    assert (tmp_path / "s" / "index.json").read_bytes() == index
    np.testing.assert_array_equal(again.layer(2), store.layer(2))


def test_store_without_a_fingerprint_is_read_but_never_reused(run_dir, sentences, tmp_path):
    backend = hooks.load(str(run_dir))
    hooks.ActivationStore.build(tmp_path / "s", backend, sentences)
    index = json.loads((tmp_path / "s" / "index.json").read_text())
    del index["fingerprint"]
    index["version"] = 1
    (tmp_path / "s" / "index.json").write_text(json.dumps(index))
    old = hooks.ActivationStore(tmp_path / "s")
    assert old.fingerprint is None and old.layer(1).shape == (sum(len(s.words) for s in sentences), 32)
    with pytest.raises(StaleStoreError, match="records no fingerprint"):
        hooks.ActivationStore.build(tmp_path / "s", backend, sentences)


def test_compare_model_never_takes_over_another_models_store(tmp_path):
    """Two runs named alike get the tags runA and runA_; swapping them must not swap stores."""
    a, b = _run(tmp_path / "a" / "runA", seed=1), _run(tmp_path / "b" / "runA", seed=2)
    sentences = read_conllu(a / "data" / "probe.conllu")[:25]
    config = probes.ProbeConfig(n_bootstrap=5, mdl=False, control=False, cumulative=False)
    store = tmp_path / "acts"
    first = probes.probe(str(a), sentences, ["upos"], config, compare=[str(b)], twin=False, store_dir=store)
    assert [m.tag for m in first.models] == ["runA", "runA_"]
    with pytest.raises(StaleStoreError, match=r"acts/runA cannot be reused for .*b/runA: .*weights"):
        probes.probe(str(b), sentences, ["upos"], config, compare=[str(a)], twin=False, store_dir=store)
    swapped = probes.probe(str(b), sentences, ["upos"], config, compare=[str(a)], twin=False, store_dir=store,
                           rebuild_stores=True)
    assert ([x.score for x in swapped.models[0].tasks["upos"].layers]
            == [x.score for x in first.models[1].tasks["upos"].layers])
    assert swapped.models[0].fingerprint == first.models[1].fingerprint != first.models[0].fingerprint


def test_cli_refuses_a_stale_store_before_probing_and_rebuilds_it_with_force(run_dir, tmp_path, capsys):
    store = tmp_path / "acts"
    assert main(_quick(run_dir, "--store", str(store), "--out", str(tmp_path / "o1"))) == 0
    _replace_weights(run_dir, seed=99)
    assert main(_quick(run_dir, "--store", str(store), "--out", str(tmp_path / "o2"))) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot be reused" in err and "weights sha256:" in err and "--force" in err
    assert not (tmp_path / "o2").exists()
    assert main(_quick(run_dir, "--store", str(store), "--out", str(tmp_path / "o2"), "--force")) == 0
    assert main(_quick(run_dir, "--store", str(tmp_path / "fresh"), "--out", str(tmp_path / "o3"))) == 0
    assert _upos_scores(tmp_path / "o2") == _upos_scores(tmp_path / "o3") != _upos_scores(tmp_path / "o1")


def test_damaged_store_names_the_file_and_the_remedy(run_dir, sentences, tmp_path, capsys):
    backend = hooks.load(str(run_dir))
    path = tmp_path / "s"
    store = hooks.ActivationStore.build(path, backend, sentences)
    data_file = path / store.index["files"][store.names[1]]
    with open(data_file, "r+b") as handle:
        handle.truncate(100)
    with pytest.raises(DamagedStoreError, match=r"is damaged: .*\.bin \(blocks\.0\.hook_resid_post\) has 100 bytes"
                                                r".*truncated.*delete the directory"):
        hooks.ActivationStore(path).layer(1)
    (path / "index.json").write_text('{"format": "stratascope.activation_store", "version": 2,')
    with pytest.raises(DamagedStoreError, match=r"is damaged: index\.json:1:\d+: not valid JSON"):
        hooks.ActivationStore(path)
    (path / "index.json").write_text(json.dumps({"format": "stratascope.activation_store", "version": 2}))
    with pytest.raises(DamagedStoreError, match="index.json lacks model, names"):
        hooks.ActivationStore(path)
    (path / "sentence_offsets.npy").write_bytes(b"\x93NUMPY garbage")
    rebuilt = hooks.ActivationStore.build(path, backend, sentences, rebuild=True)  # the remedy works
    np.testing.assert_array_equal(rebuilt.layer(1), hooks.ActivationStore.build(tmp_path / "f", backend,
                                                                                  sentences).layer(1))
    # through the CLI: one line
    store = tmp_path / "acts"
    assert main(_quick(run_dir, "--store", str(store), "--out", str(tmp_path / "o"))) == 0
    (store / "tiny" / "index.json").write_text("not json")
    assert main(_quick(run_dir, "--store", str(store), "--out", str(tmp_path / "o"))) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is damaged: index.json:1:1: not valid JSON" in err


def test_nonfinite_activations_in_a_store_are_one_line(run_dir, tmp_path, capsys):
    """Was: AttributeError: 'numpy.ndarray' object has no attribute 'numel' (probes/features.py)."""
    layers = [np.zeros((4, 3), np.float16), np.array([[0, np.nan, 0]] * 4, np.float16)]
    with pytest.raises(NonFiniteActivationsError, match=r"layer 1 .* hold 4 NaN/inf value\(s\) of 12"):
        FeatureLayers(layers).check_finite("store")
    store = tmp_path / "acts"
    assert main(_quick(run_dir, "--store", str(store), "--out", str(tmp_path / "o"))) == 0
    index = json.loads((store / "tiny" / "index.json").read_text())
    name = index["names"][2]
    x = np.memmap(store / "tiny" / index["files"][name], dtype=index["dtype"], mode="r+")
    x[5] = np.inf
    x.flush()
    del x
    assert main(_quick(run_dir, "--store", str(store), "--out", str(tmp_path / "o"))) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "activations at layer 2" in err and "NaN/inf" in err


# ----------------------------------------------------------------------------- results.json
def test_results_record_data_hash_and_fingerprints(run_dir, tmp_path):
    assert main(_quick(run_dir, "--out", str(tmp_path / "o"))) == 0
    results = probes.load_results(tmp_path / "o")
    assert results.data.sha256.startswith("sha256:") and len(results.data.sha256) == 71
    assert results.main.fingerprint == model_fingerprint(hooks.load(str(run_dir)))
    data = json.loads((tmp_path / "o" / "results.json").read_text())
    assert data["data"]["sha256"] == results.data.sha256
    assert data["models"][0]["fingerprint"] == results.main.fingerprint


def test_results_from_changed_data_contents_are_not_replaced_silently(run_dir, tmp_path, capsys):
    data = tmp_path / "probe.conllu"
    shutil.copy(run_dir / "data" / "probe.conllu", data)
    args = _quick(run_dir, "--data", str(data), "--out", str(tmp_path / "o"))
    assert main(args) == 0
    before = (tmp_path / "o" / "results.json").read_bytes()
    text = data.read_text()
    data.write_text(text.replace("\tdogs\t", "\tcats\t", 1) if "\tdogs\t" in text else text + "\n")
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "data.sha256 sha256:" in err and "--force" in err
    assert (tmp_path / "o" / "results.json").read_bytes() == before
    assert main([*args, "--force"]) == 0


def test_results_from_replaced_weights_are_not_replaced_silently(run_dir, tmp_path, capsys):
    args = _quick(run_dir, "--out", str(tmp_path / "o"))
    assert main(args) == 0
    assert main(args) == 0  # the same weights and data: a rerun replaces them
    _replace_weights(run_dir, seed=99)
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{run_dir}: weights sha256:" in err and "tokenizer" not in err
    assert main([*args, "--force"]) == 0


def test_results_without_fingerprints_are_replaced_only_with_force(run_dir, tmp_path, capsys):
    """results.json of earlier versions records neither: it still loads, and is not replaced silently."""
    args = _quick(run_dir, "--out", str(tmp_path / "o"))
    assert main(args) == 0
    path = tmp_path / "o" / "results.json"
    data = json.loads(path.read_text())
    del data["data"]["sha256"]
    for m in data["models"]:
        del m["fingerprint"]
    path.write_text(json.dumps(data))
    old = probes.load_results(tmp_path / "o")
    assert old.main.fingerprint is None and old.data.sha256 is None
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "data.sha256 unset → sha256:" in err and "weights not recorded → sha256:" in err
