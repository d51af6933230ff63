"""hooks.load: one spec grammar (hooks.parse_spec), and refusing poisoned or unreadable models
with one line naming the tensor or file, for every backend."""

import os
import shutil
from pathlib import Path

import pytest
import torch
from hooks_fixtures import build_gpt2_dir, one_torch_thread, word_run  # noqa: F401
from safetensors.torch import load_file, save_file

import hooks

PREFIXES = ("gpt2", "tl", "nnsight")
POISONED = "transformer.h.0.mlp.c_fc.weight"


@pytest.fixture(scope="module")
def tiny_hf(tmp_path_factory) -> Path:
    """A 1-layer random GPT-2 in Hugging Face layout, with its BPE tokenizer."""
    return build_gpt2_dir(tmp_path_factory.mktemp("tiny-hf"), n_layer=1)


def copy_of(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


class Payload:
    """Unpickling this runs a shell command that leaves a marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def as_bin(directory: Path) -> Path:
    """Replace model.safetensors by an equivalent pytorch_model.bin."""
    state = load_file(str(directory / "model.safetensors"))
    (directory / "model.safetensors").unlink()
    torch.save(state, directory / "pytorch_model.bin")
    return directory / "pytorch_model.bin"


def truncate(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def corrupt(directory: Path, how: str, marker: Path) -> Path:
    """Damage the weights of an HF directory; return the file that is damaged."""
    if how == "malicious_bin":
        (directory / "model.safetensors").unlink()
        torch.save({"weight": Payload(marker)}, directory / "pytorch_model.bin")
        return directory / "pytorch_model.bin"
    if how == "truncated_bin":
        return truncate(as_bin(directory))
    if how == "truncated_safetensors":
        return truncate(directory / "model.safetensors")
    assert how == "garbage_safetensors"
    (directory / "model.safetensors").write_bytes(b"not a safetensors file " * 40)
    return directory / "model.safetensors"


@pytest.mark.parametrize("how", ["malicious_bin", "truncated_bin", "truncated_safetensors", "garbage_safetensors"])
@pytest.mark.parametrize("prefix", PREFIXES)
def test_unreadable_weights_give_one_line_naming_the_file(tiny_hf, tmp_path, prefix, how):
    marker = tmp_path / "payload-ran"
    bad = corrupt(copy_of(tiny_hf, tmp_path / "model"), how, marker)
    with pytest.raises(ValueError) as info:
        hooks.load(f"{prefix}:{bad.parent}")
    message = str(info.value)
    assert str(bad) in message and "\n" not in message
    assert "weights_only" not in message and "will likely succeed" not in message
    assert not marker.exists()  # nothing was unpickled


def poison(directory: Path) -> None:
    path = directory / "model.safetensors"
    state = load_file(str(path))
    state[POISONED][3, 5] = float("nan")
    save_file(state, str(path), metadata={"format": "pt"})


@pytest.mark.parametrize("prefix", PREFIXES)
def test_nonfinite_weights_are_refused_naming_the_tensor(tiny_hf, tmp_path, prefix):
    directory = copy_of(tiny_hf, tmp_path / "model")
    poison(directory)
    with pytest.raises(ValueError, match=r"c_fc\.weight.*NaN") as info:
        hooks.load(f"{prefix}:{directory}")
    assert "\n" not in str(info.value) and "allow-nonfinite" in str(info.value)
    backend = hooks.load(f"{prefix}:{directory}", allow_nonfinite=True)
    assert torch.isnan(backend.run_one(["the", "dog"]).resid[-1]).any()


def test_nonfinite_native_run_is_refused(word_run, tmp_path):
    run = copy_of(word_run, tmp_path / "run")
    path = run / "model.safetensors"
    state = load_file(str(path))
    state["blocks.1.attn.qkv.weight"][0, 0] = float("inf")
    save_file(state, str(path))
    with pytest.raises(ValueError, match=r"blocks\.1\.attn\.qkv\.weight"):
        hooks.load(str(run))
    assert hooks.load(str(run), allow_nonfinite=True).n_layer == 2


def test_nonfinite_model_objects_are_refused(word_run):
    backend = hooks.load(str(word_run))
    model, tokenizer = backend.model, backend.tokenizer
    twin = type(model)(model.cfg)
    with torch.no_grad():
        twin.blocks[0].mlp.fc_in.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"blocks\.0\.mlp\.fc_in\.weight"):
        hooks.load(twin, tokenizer=tokenizer)
    assert hooks.load(twin, tokenizer=tokenizer, allow_nonfinite=True).kind == "native"


def test_specs_are_parsed_by_the_one_parser(word_run, tmp_path, monkeypatch):
    assert hooks.parse_spec("tl:/m") == hooks.Spec("tl", "/m")
    for spelling in (str(word_run), f"native:{word_run}", f"run:{word_run}", hooks.Spec("native", str(word_run))):
        assert hooks.load(spelling).metadata.name == "tiny-word"
    monkeypatch.chdir(word_run.parent.parent)  # a bare name is looked up under runs/
    assert hooks.load("tiny-word").metadata.name == "tiny-word"
    with pytest.raises(ValueError, match="empty model source"):
        hooks.load("gpt2:")
    with pytest.raises(FileNotFoundError, match="no run or checkpoint directory.*gpt2:DIR"):
        hooks.load("no-such-run")
