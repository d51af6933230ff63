"""examples/extract_residuals.py on a tiny word-level run trained on nothing, over the built-in
treebank's probe split (and on the nnsight backend of a tiny GPT-2)."""

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import torch
from hooks_fixtures import gpt2_dir, one_torch_thread  # noqa: F401

import hooks

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "extract_residuals.py"


def example_main():
    spec = importlib.util.spec_from_file_location("extract_residuals", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def tiny_run(root: Path, treebank: Path) -> Path:
    from corpus import WordTokenizer
    from gpt_model import GPT, GPTConfig
    from gpt_model.checkpoint import save_model

    run = root / "runs" / "tiny"
    (run / "tokenizer").mkdir(parents=True)
    shutil.copy(treebank / "vocab.json", run / "tokenizer" / "vocab.json")
    vocab = len(WordTokenizer.load(run / "tokenizer" / "vocab.json"))
    torch.manual_seed(0)
    model = GPT(GPTConfig(n_layer=2, d_model=32, n_head=4, context_len=64, vocab_size=vocab))
    save_model(model, run, extra_config={"tokenizer": {"kind": "word", "path": "tokenizer/vocab.json"}})
    return run


def test_example_extracts_the_probe_split(tmp_path, capsys):
    from corpus import read_conllu, write_treebank

    write_treebank(tmp_path / "treebank", 400, 0)
    probe = tmp_path / "treebank" / "probe.conllu"
    run = tiny_run(tmp_path, tmp_path / "treebank")
    out = tmp_path / "acts"
    example_main()([str(run), str(probe), str(out)])
    lines = capsys.readouterr().out.strip().splitlines()
    n_words = sum(len(s.words) for s in read_conllu(probe))
    assert len(lines) == 3 and lines[0].startswith(f"layer 0: ({n_words}, 32) float16")
    store = hooks.ActivationStore(out)
    assert store.complete and store.model["name"] == "tiny" and store.layer(2).shape == (n_words, 32)
    assert np.isfinite(store.layer(2)).all()


def test_example_runs_any_backend(gpt2_dir, tmp_path, capsys):
    from hooks_fixtures import make_sentences

    from corpus import Sentence, Word, write_conllu

    path = tmp_path / "c.conllu"
    write_conllu([Sentence([Word(i + 1, w) for i, w in enumerate(s)]) for s in make_sentences(6, seed=9)], path)
    example_main()([f"nnsight:{gpt2_dir}", str(path), str(tmp_path / "acts")])
    assert len(capsys.readouterr().out.strip().splitlines()) == 4
