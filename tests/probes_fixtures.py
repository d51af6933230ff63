"""A tiny run directory for the probe tests: a 2-block GPT, its word tokenizer and a built-in treebank."""

from pathlib import Path

import torch

from corpus import DEFAULT_GRAMMAR, SplitConfig, WordTokenizer, write_treebank
from gpt_model import GPT, GPTConfig
from gpt_model.checkpoint import save_model


def build_treebank_run(run: Path, *, model_seed: int, n_sentences: int, treebank_seed: int,
                       split: SplitConfig) -> Path:
    """runs/tiny: random weights (``model_seed``), the grammar's word tokenizer, a treebank in data/."""
    tok = WordTokenizer.from_words(DEFAULT_GRAMMAR.vocabulary())
    torch.manual_seed(model_seed)
    model = GPT(GPTConfig(n_layer=2, d_model=32, n_head=2, vocab_size=len(tok), context_len=48))
    save_model(model, run, extra_config={"tokenizer": {"kind": "word", "path": "tokenizer/vocab.json"},
                                         "data": {"source": "treebank", "path": "data"}})
    (run / "tokenizer").mkdir()
    tok.save(run / "tokenizer" / "vocab.json")
    write_treebank(run / "data", n_sentences, seed=treebank_seed, split=split)
    return run


def quick_probe_args(run_dir: Path, *extra: str) -> list[str]:
    """``stratascope probe`` arguments for a seconds-long probe of a tiny run (``extra`` appended)."""
    return ["probe", "--model", str(run_dir), "--data", str(run_dir / "data" / "probe.conllu"), "--tasks", "upos",
            "--no-twin", "--no-mdl", "--no-cumulative", "--bootstrap", "10", "--max-sentences", "30", "--quiet",
            *extra]


def forbid_work(monkeypatch) -> None:
    """Make loading a model or the data fail the test: for errors that must come before any work."""
    import probes

    def fail(*args, **kwargs):
        raise AssertionError("a model or the data was loaded before the argument error was reported")

    monkeypatch.setattr(probes, "load_models", fail, raising=False)
    monkeypatch.setattr(probes, "load_data", fail)


def probe_with_task_file(run_dir: Path, tmp_path: Path, name: str, labels: str) -> tuple[int, Path]:
    """``stratascope probe`` (a quick run) of one late task ``name`` defined in a task file, whose
    labels per sentence are the Python expression ``labels`` (over ``sentence``): (exit code, file).
    The task is unregistered afterwards."""
    import probes
    from app.cli import main

    path = tmp_path / f"{name}_tasks.py"
    path.write_text(f"import probes\n\n\n@probes.task({name!r}, 'late')\ndef {name}(sentence):\n"
                    f"    return {labels}\n")
    try:
        return main(quick_probe_args(run_dir, "--task-file", str(path), "--tasks", name,
                                     "--out", str(tmp_path / "o"))), path
    finally:
        probes.TASKS.pop(name, None)

