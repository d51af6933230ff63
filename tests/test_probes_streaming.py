"""Bounded memory at the size users bring (#14): features stream a task at a time from float16
memmaps (``--store``, ``--max-memory``), extraction writes into one tensor in corpus order."""

import json
import tempfile

import numpy as np
import pytest
import torch

import hooks
import probes
import probes.features
from app.cli import main
from corpus import SplitConfig, read_conllu
from probes.features import FeatureLayers
from probes_fixtures import build_treebank_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return build_treebank_run(tmp_path_factory.mktemp("runs") / "tiny", model_seed=7, n_sentences=200,
                              treebank_seed=4, split=SplitConfig(0.5, 0.1, 0.4))


@pytest.fixture(scope="module")
def sentences(run_dir):
    return read_conllu(run_dir / "data" / "probe.conllu")[:60]


def test_length_bucketed_extraction_keeps_corpus_order(run_dir, sentences):
    backend = hooks.load(str(run_dir))
    batched = probes.extract(backend, sentences, batch_size=7)
    one_by_one = torch.cat([backend.run_one(s, logits=False).word_resid() for s in sentences], dim=1)
    assert batched.shape == one_by_one.shape
    torch.testing.assert_close(batched, one_by_one, atol=1e-5, rtol=1e-5)


def test_feature_layers_read_only_a_tasks_rows(sentences):
    rng = np.random.default_rng(0)
    layers = [rng.normal(size=(50, 4)).astype(np.float16) for _ in range(3)]
    rows = np.array([7, 3, 3, 49, 0])
    got = FeatureLayers(layers).rows(rows)
    assert got.dtype == torch.float32 and got.shape == (3, 5, 4)
    np.testing.assert_array_equal(got.numpy(), np.stack(layers)[:, rows].astype(np.float32))
    # a tensor is indexed where it lies
    t = torch.from_numpy(np.stack(layers).astype(np.float32))
    torch.testing.assert_close(FeatureLayers(t).rows(rows), t[:, torch.from_numpy(rows)])


def test_a_fit_frees_the_features_it_was_given_without_the_garbage_collector(sentences):
    """A model's features are freed when its fit returns, before the next model's extraction:
    a reference cycle holding them (FeatureLayers' closure over itself) kept 1 GB of float32
    features alive into the twin's run at 12 × 768, until a full collection happened."""
    import gc
    import weakref

    n_words = sum(len(s.words) for s in sentences)
    feats = torch.randn(3, n_words, 8, generator=torch.Generator().manual_seed(0))
    alive = weakref.ref(feats)
    suite = probes.ProbeSuite(["upos", "position"], probes.ProbeConfig(n_bootstrap=10, mdl=False, control=False))
    gc.disable()
    try:
        suite.fit(feats, sentences)
        del feats
        assert alive() is None
    finally:
        gc.enable()


def test_the_suite_streams_a_store_without_loading_every_layer(run_dir, sentences, tmp_path, monkeypatch):
    backend = hooks.load(str(run_dir))
    store = probes.models.extract_to_store(backend, sentences, tmp_path / "acts")
    assert store.index["dtype"] == "float16"

    def refuse(*args, **kwargs):
        raise AssertionError("the suite loaded every layer of the store in float32")

    monkeypatch.setattr(probes.features, "to_tensor", refuse)
    monkeypatch.setattr(probes.suite, "to_tensor", refuse)
    config = probes.ProbeConfig(n_bootstrap=20, max_iter=200, mdl=False, cumulative=False)
    streamed = probes.ProbeSuite(["upos", "position"], config).fit(store, sentences)
    in_memory = probes.ProbeSuite(["upos", "position"], config).fit(probes.extract(backend, sentences), sentences)
    for task in ("upos", "position"):
        a = [x.score for x in streamed.tasks[task].layers]
        b = [x.score for x in in_memory.tasks[task].layers]
        assert a == pytest.approx(b, abs=0.02)  # float16 features, the same probes


def test_max_memory_streams_from_a_temporary_store(run_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    base = ["probe", "--model", str(run_dir), "--tasks", "upos", "--no-twin", "--no-mdl", "--no-cumulative",
            "--bootstrap", "10", "--max-sentences", "40"]
    assert main([*base, "--out", str(tmp_path / "mem"), "--quiet"]) == 0
    assert main([*base, "--out", str(tmp_path / "streamed"), "--max-memory", "0.0001"]) == 0
    out = capsys.readouterr().out
    assert "more than --max-memory" in out and "streaming float16 memmaps" in out
    assert list((tmp_path / "tmp").iterdir()) == []  # the temporary store is gone
    scores = {}
    for name in ("mem", "streamed"):
        res = json.loads((tmp_path / name / "results.json").read_text())
        scores[name] = [x["score"] for x in res["models"][0]["tasks"]["upos"]["layers"]]
    assert scores["streamed"] == pytest.approx(scores["mem"], abs=0.02)
    # a budget the features fit in changes nothing
    assert main([*base, "--out", str(tmp_path / "big"), "--max-memory", "8", "--quiet"]) == 0
    big = json.loads((tmp_path / "big" / "results.json").read_text())
    assert [x["score"] for x in big["models"][0]["tasks"]["upos"]["layers"]] == scores["mem"]


def test_bad_max_memory_is_one_line(run_dir, capsys):
    assert main(["probe", "--model", str(run_dir), "--max-memory", "0"]) != 0
    err = capsys.readouterr().err.strip()
    assert "--max-memory must be > 0" in err and "\n" not in err


def test_an_existing_float32_store_is_reused_as_it_is(run_dir, sentences, tmp_path, capsys):
    backend = hooks.load(str(run_dir))
    probes.models.extract_to_store(backend, sentences[:30], tmp_path / "acts" / "tiny", dtype="float32")
    from probes.run import _store_dtype

    assert _store_dtype(tmp_path / "acts" / "tiny") == "float32"
    assert _store_dtype(tmp_path / "acts" / "new") == "float16"
