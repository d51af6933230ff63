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
