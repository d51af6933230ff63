"""The dashboard's data layer: what it agrees to read, and what it rebuilds."""

from __future__ import annotations

import json
import os

import pytest
import torch

from app.dashboard import data
from dashboard_fixtures import runs_root  # noqa: F401 - fixture


def test_list_runs_only_real_run_directories_inside_the_root(runs_root):  # noqa: F811
    assert data.list_runs(runs_root) == ["broken", "pending", "tiny"]  # not "escape" (a symlink out)
    assert data.list_runs(runs_root / "nowhere") == []


@pytest.mark.parametrize("name, message", [
    ("escape", "outside the runs root"),
    ("..", "not a directory name"),
    ("../outside/secret-run", "not a directory name"),
    ("/etc", "not a directory name"),
    ("~root", "not a directory name"),
    ("", "empty"),
    ("missing", "no run named"),
    ("tiny/checkpoints", "not a directory name"),
])
def test_resolve_run_refuses(runs_root, name, message):  # noqa: F811
    with pytest.raises(data.AccessError, match=message):
        data.resolve_run(runs_root, name)


def test_symlinks_inside_the_root_are_followed_but_files_pointing_out_are_not(runs_root, tmp_path):  # noqa: F811
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(runs_root / "tiny", root / "alias")  # a run elsewhere: refused
    with pytest.raises(data.AccessError, match="outside"):
        data.resolve_run(root, "alias")
    run = root / "r"
    run.mkdir()
    (run / "config.json").write_text((runs_root / "tiny" / "config.json").read_text())
    os.symlink(runs_root / "tiny" / "metrics.jsonl", run / "metrics.jsonl")  # a file pointing out
    os.symlink(run, root / "inner")  # a symlink that stays inside: fine
    assert data.resolve_run(root, "inner") == run.resolve()
    summary = data.run_summary(str(root), "r", data.signature(run))
    assert summary["metrics"] == []
    assert any("outside the runs root" in e for e in summary["errors"])


def test_run_summary(runs_root):  # noqa: F811
    tiny = runs_root / "tiny"
    s = data.run_summary(str(runs_root), "tiny", data.signature(tiny))
    assert s["errors"] == [] and s["has_final"]
    assert s["checkpoints"] == ["step_0000006", "step_0000012"]
    assert s["probe_tags"] == ["tiny"]
    assert s["treebank"] == str((tiny / "data").resolve())
    assert data.weight_options(s) == ["final", "step_0000012", "step_0000006", "init"]
    floor, source = data.entropy_floor(s)
    assert floor == json.loads((tiny / "results.json").read_text())["entropy_floor"] and "results.json" in source
    s["results"] = None
    floor, source = data.entropy_floor(s)
    assert floor == s["config"]["data_info"]["entropy_floor_nats"]
    broken = data.run_summary(str(runs_root), "broken", data.signature(runs_root / "broken"))
    assert broken["config"] is None and "config.json" in broken["errors"][0]
    assert data.weight_options(broken) == []


def test_init_weights_are_the_trainers_initial_weights(tmp_path):
    """'init' rebuilds GPT(cfg) right after torch.manual_seed(train.seed), as Trainer does."""
    from corpus import WordTokenizer
    from gpt_model import GPTConfig
    from gpt_model.data import PackedDataset
    from gpt_model.train import Trainer, TrainConfig

    tok = WordTokenizer(["a", "b", "c"])
    cfg = GPTConfig(n_layer=2, d_model=16, n_head=2, context_len=8, vocab_size=len(tok))
    rows = PackedDataset.from_documents([[4, 5, 6], [5, 6]] * 8, 8, bos_id=0, eos_id=1, pad_id=2)
    trainer = Trainer(cfg, TrainConfig(seed=7, max_steps=1, progress=False), rows, None, tmp_path / "out")
    run = tmp_path / "run"
    (run / "tokenizer").mkdir(parents=True)
    tok.save(run / "tokenizer" / "vocab.json")
    (run / "config.json").write_text(json.dumps({"model": cfg.to_dict(), "train": {"seed": 7},
                                                 "tokenizer": {"kind": "word", "path": "tokenizer/vocab.json"}}))
    torch.manual_seed(123)  # the global RNG must not matter
    rebuilt = data._init_backend(run).model.state_dict()
    expected = trainer.model.state_dict()
    assert rebuilt.keys() == expected.keys()
    for k in expected:
        assert torch.equal(rebuilt[k], expected[k]), k


def test_guess_pair():
    lex = {"the": "DET", "dogs": "NOUN", "near": "ADP", "cat": "NOUN", "sleep": "VERB", ".": "PUNCT"}
    assert data.guess_pair(tuple("the dogs near the cat sleep .".split()), lex) == (1, 5)
    assert data.guess_pair(("the", "dogs"), lex) is None
    assert data.guess_pair(("unknown", "words"), lex) is None


def test_gpt2_spec():
    assert data.gpt2_spec("/models/gpt2") == "gpt2:/models/gpt2"
    assert data.gpt2_spec("gpt2") == "gpt2:gpt2"
    assert data.gpt2_spec("tl:/models/gpt2") == "tl:/models/gpt2"


def test_model_files_pointing_out_of_the_run_are_refused(runs_root, tmp_path):  # noqa: F811
    import shutil

    root = tmp_path / "root"
    run = root / "r"
    shutil.copytree(runs_root / "tiny", run, ignore=shutil.ignore_patterns("data", "probes"))
    data.check_model_files(run, "final")
    data.check_model_files(run, "step_0000006")
    secret = tmp_path / "secret.json"
    shutil.copy(run / "tokenizer" / "vocab.json", secret)
    (run / "tokenizer" / "vocab.json").unlink()
    os.symlink(secret, run / "tokenizer" / "vocab.json")
    with pytest.raises(data.AccessError, match="outside"):
        data.check_model_files(run, "init")
    with pytest.raises(data.AccessError, match="outside"):
        data.load_backend(data.ModelRef.run(run.resolve(), "final").key)


def test_twin_is_the_initialisation_when_the_training_seed_is_zero(runs_root):  # noqa: F811
    run = (runs_root / "tiny").resolve()
    assert json.loads((run / "config.json").read_text())["train"]["seed"] == 0
    twin = data.load_backend(data.ModelRef.twin(run, "final").key).model.state_dict()
    init = data.load_backend(data.ModelRef.run(run, "init").key).model.state_dict()
    final = data.load_backend(data.ModelRef.run(run, "final").key).model.state_dict()
    assert all(torch.equal(twin[k], init[k]) for k in init)
    assert not all(torch.equal(final[k], init[k]) for k in init)


def test_checkpoint_listing_follows_the_run_layout(runs_root, tmp_path):  # noqa: F811
    """Only complete checkpoints with weights are offered: not the hidden directory of one being
    written, not foreign names; and a run being written (its lock held) is read without waiting."""
    import shutil

    from gpt_model.rundir import RunDir

    root = tmp_path / "root"
    run = root / "r"
    shutil.copytree(runs_root / "tiny", run, ignore=shutil.ignore_patterns("data", "probes"))
    ckpts = run / "checkpoints"
    shutil.copytree(ckpts / "step_0000012", ckpts / ".step_0000018.tmp")
    shutil.copytree(ckpts / "step_0000012", ckpts / "step_latest")
    (ckpts / "step_0000024").mkdir()  # no weights yet
    with RunDir(run).lock():
        s = data.run_summary(str(root), "r", data.signature(run))
    assert s["checkpoints"] == ["step_0000006", "step_0000012"] and s["errors"] == []
    assert data.weight_step("step_0000012", s) == 12 and data.weight_label("step_0000006") == "checkpoint step 6"
    assert data.weights_dir(run, "step_0000006") == ckpts / "step_0000006"
    assert data.weights_dir(run, "final") == run
    for bad in ("step_latest", ".step_0000018.tmp", "../step_0000006"):
        with pytest.raises(data.AccessError):
            data.weights_dir(run, bad)


def test_gpt2_spec_uses_the_model_spec_grammar():
    assert data.gpt2_spec("nnsight:/m/gpt2") == "nnsight:/m/gpt2"
    assert data.gpt2_spec("C:/models/gpt2") == "gpt2:C:/models/gpt2"  # not a backend prefix: a path
    with pytest.raises(ValueError, match="empty model source"):
        data.gpt2_spec("gpt2:")
