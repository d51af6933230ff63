"""Loading a model from a damaged or missing source through the CLI: one line on stderr naming the
spec, the file (and its line) and what was expected; no library progress bar or warning around it."""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import pytest
import torch
from hooks_fixtures import gpt2_dir, one_torch_thread, word_run  # noqa: F401
from safetensors.torch import load_file

import hooks
from app.cli import main
from corpus import SplitConfig, write_treebank

PREFIXES = ("gpt2", "tl", "nnsight")


def copy_of(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def probe_error(capsys, spec: str) -> str:
    """The one-line error of `stratascope probe --model SPEC` (models load before any data is read)."""
    assert main(["probe", "--model", spec, "--data", "missing.conllu", "--quiet"]) == 1
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert "\n" not in err and "Traceback" not in err, captured.err
    assert err.startswith("stratascope probe: error: "), err
    return err.removeprefix("stratascope probe: error: ")


# ----------------------------------------------------------------------------- item 8: config.json
@pytest.mark.parametrize("content, where, what", [
    (b'{"n_layer": 1,\n', ":2:1: ", "not valid JSON"),
    (b"[]", ": ", "expected a JSON object (a Hugging Face model config), got a list"),
    (b'"gpt2"', ": ", "got a string"),
    (b'{"model_type":\n"gpt2\xff"}', ":2: ", "not UTF-8"),
])
@pytest.mark.parametrize("prefix", PREFIXES)
def test_unreadable_config_json_is_one_line_naming_the_file(gpt2_dir, tmp_path, capsys, prefix, content, where,
                                                           what):
    model = copy_of(gpt2_dir, tmp_path / "model")
    (model / "config.json").write_bytes(content)
    message = probe_error(capsys, f"{prefix}:{model}")
    assert message.startswith(f"{model / 'config.json'}{where}") and what in message


# ----------------------------------------------------------------------------- item 15: vocab.json
@pytest.mark.parametrize("content, where, what", [
    (b'{\n"<bos>": 0,\n"<eos>": 1,\n', ":4:1: ", "not valid JSON"),
    (b'{\n"<bos>": 0,\n"caf\xe9": 1\n}', ":3: ", "not UTF-8"),
    (b'["<bos>"]', ": ", "got a list"),
])
def test_unreadable_run_vocabulary_names_file_and_line(word_run, tmp_path, capsys, content, where, what):
    run = copy_of(word_run, tmp_path / "run")
    vocab = run / "tokenizer" / "vocab.json"
    vocab.write_bytes(content)
    message = probe_error(capsys, str(run))
    assert message.startswith(f"{vocab}{where}") and what in message


@pytest.mark.parametrize("prefix", PREFIXES)
def test_unreadable_hf_vocabulary_names_file_and_line(gpt2_dir, tmp_path, capsys, prefix):
    model = copy_of(gpt2_dir, tmp_path / "model")
    (model / "tokenizer.json").unlink()  # the tokenizer is then built from vocab.json + merges.txt
    (model / "vocab.json").write_bytes(b'{"a": 0,\n"b": 1,\n')
    message = probe_error(capsys, f"{prefix}:{model}")
    assert message.startswith(f"{model / 'vocab.json'}:3:1: not valid JSON")


# ----------------------------------------------------------------------------- item 18: missing sources
@pytest.fixture
def empty_hub_cache(tmp_path, monkeypatch) -> Path:
    """An empty Hugging Face cache, offline: hub names resolve only against it."""
    from huggingface_hub import constants

    hub = tmp_path / "hub"
    hub.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return hub


@pytest.mark.parametrize("prefix", PREFIXES)
def test_missing_source_is_one_line_naming_spec_path_and_what_was_looked_for(gpt2_dir, tmp_path, capsys,
                                                                            empty_hub_cache, prefix):
    missing = tmp_path / "no-such-model"
    message = probe_error(capsys, f"{prefix}:{missing}")
    assert message.startswith(f"{prefix}:{missing}: no such directory {missing}") and "config.json" in message

    no_weights = copy_of(gpt2_dir, tmp_path / "no-weights")
    (no_weights / "model.safetensors").unlink()
    message = probe_error(capsys, f"{prefix}:{no_weights}")
    assert message.startswith(f"{prefix}:{no_weights}: no weights in {no_weights}")
    assert "model.safetensors" in message and "pytorch_model.bin" in message

    no_config = copy_of(gpt2_dir, tmp_path / "no-config")
    (no_config / "config.json").unlink()
    message = probe_error(capsys, f"{prefix}:{no_config}")
    assert message.startswith(f"{prefix}:{no_config}: no config.json in {no_config}")

    message = probe_error(capsys, f"{prefix}:no-such-org/no-such-model")
    assert message.startswith(f"{prefix}:no-such-org/no-such-model: no such directory")
    assert "'no-such-org/no-such-model'" in message and str(empty_hub_cache) in message and "cache" in message


def test_a_cached_hub_name_loads_from_the_cache(gpt2_dir, empty_hub_cache):
    commit = "0" * 40
    repo = empty_hub_cache / "models--tiny-org--tiny-gpt2"
    shutil.copytree(gpt2_dir, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    words = ["the", "dog", "runs"]
    cached = hooks.load("gpt2:tiny-org/tiny-gpt2")
    assert cached.metadata.source == "gpt2:tiny-org/tiny-gpt2"
    torch.testing.assert_close(cached.run_one(words).resid, hooks.load(f"gpt2:{gpt2_dir}").run_one(words).resid)


# ----------------------------------------------------------------------------- item 18: pickles, --quiet
class Payload:
    """Unpickling this runs a shell command that leaves a marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("prefix", PREFIXES)
def test_malicious_pickle_is_refused_without_torch_warning(gpt2_dir, tmp_path, capsys, prefix):
    model = copy_of(gpt2_dir, tmp_path / "model")
    (model / "model.safetensors").unlink()
    marker = tmp_path / "payload-ran"
    torch.save({"weight": Payload(marker)}, model / "pytorch_model.bin", pickle_protocol=4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        message = probe_error(capsys, f"{prefix}:{model}")
    assert message.startswith(f"{model / 'pytorch_model.bin'}: ") and "refusing to unpickle" in message
    assert not [w for w in caught if "pickle protocol" in str(w.message)]
    assert not marker.exists()


def test_protocol_4_weights_are_refused_in_one_line_without_torch_warning(gpt2_dir, tmp_path, capsys):
    """torch's weights-only unpickler cannot read pickle protocol 4: its warning's news goes into our line."""
    model = copy_of(gpt2_dir, tmp_path / "model")
    torch.save(load_file(str(model / "model.safetensors")), model / "pytorch_model.bin", pickle_protocol=4)
    (model / "model.safetensors").unlink()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        message = probe_error(capsys, f"gpt2:{model}")
    assert message.startswith(f"{model / 'pytorch_model.bin'}: ") and "pickle protocol 4" in message
    assert "safetensors" in message
    assert not [w for w in caught if "pickle protocol" in str(w.message)]


def test_quiet_probe_prints_no_loading_bar(gpt2_dir, tmp_path, capfd):
    from transformers.utils import logging as hf_logging

    write_treebank(tmp_path / "treebank", 30, seed=0, split=SplitConfig(0.5, 0.1, 0.4))
    bars_before = hf_logging.is_progress_bar_enabled()
    for prefix in ("tl", "nnsight"):
        code = main(["probe", "--model", f"{prefix}:{gpt2_dir}", "--data", str(tmp_path / "treebank" / "probe.conllu"),
                     "--tasks", "upos", "--no-mdl", "--no-cumulative", "--no-control",
                     "--bootstrap", "0", "--out", str(tmp_path / prefix), "--quiet"])
        assert code == 0
        err = capfd.readouterr().err
        assert "Loading weights" not in err and "it/s" not in err, err
    assert hf_logging.is_progress_bar_enabled() == bars_before  # transformers' own setting is restored
