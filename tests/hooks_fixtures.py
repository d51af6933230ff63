"""Tiny models for the hooks tests, built offline: a random GPT-2 in Hugging Face layout with a
locally trained byte-level BPE tokenizer, and a word-level run directory of our GPT.

Import the fixtures into a test module (`from hooks_fixtures import gpt2_dir, one_torch_thread, ...`);
the models are built once per session (memoised), whichever test module asks first.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

# Words that the tiny BPE splits into several tokens next to ones it keeps whole.
COMMON = ["the", "a", "dog", "dogs", "cat", "cats", "sees", "see", "runs", "run", "near", "big", "small", "and"]
RARE = ["unbelievably", "extraordinary", "zyzzyva", "quixotically", "Bartholomew", "don't", "U.S.", "3.14"]
_BUILT: dict[str, Path] = {}


def make_sentences(n: int, seed: int = 0, max_words: int = 8) -> list[list[str]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        k = rng.randint(2, max_words)
        out.append([rng.choice(RARE) if rng.random() < 0.15 else rng.choice(COMMON) for _ in range(k)])
    return out


def build_gpt2_dir(root: Path, n_layer: int = 3) -> Path:
    """A random GPT2LMHeadModel saved with save_pretrained, with its BPE tokenizer next to it."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from corpus import train_bpe_tokenizer

    out = root / "tiny-gpt2"
    texts = [" ".join(s) for s in make_sentences(400, seed=1)]
    tok = train_bpe_tokenizer(texts, 300, out)
    tok.save_pretrained(out)  # tokenizer.json + tokenizer_config.json for AutoTokenizer
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=len(tok), n_positions=64, n_embd=32, n_layer=n_layer, n_head=4,
                     bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    GPT2LMHeadModel(cfg).save_pretrained(out)
    return out


def build_word_run(root: Path) -> Path:
    """runs/<name>/ of our GPT with a word-level tokenizer, plus one checkpoint directory."""
    from corpus import WordTokenizer
    from gpt_model import GPT, GPTConfig
    from gpt_model.checkpoint import save_model

    run = root / "runs" / "tiny-word"
    words = sorted({w for s in make_sentences(200, seed=2) for w in s})
    tok = WordTokenizer(words)
    (run / "tokenizer").mkdir(parents=True)
    tok.save(run / "tokenizer" / "vocab.json")
    torch.manual_seed(0)
    model = GPT(GPTConfig(n_layer=2, d_model=32, n_head=4, context_len=32, vocab_size=len(tok)))
    extra = {"tokenizer": {"kind": "word", "path": "tokenizer/vocab.json"}}
    save_model(model, run, extra_config=extra)
    save_model(model, run / "checkpoints" / "step_0000010", extra_config=extra)
    return run


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Run each hooks test with one intra-op thread: on a busy 2-core machine two OpenMP threads
    turn every tiny op into a wait for the other thread (tens of ms per op). Restored after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _once(key: str, factory, tmp_path_factory) -> Path:
    if key not in _BUILT or not _BUILT[key].exists():
        _BUILT[key] = factory(tmp_path_factory.mktemp(key))
    return _BUILT[key]


@pytest.fixture(scope="session")
def gpt2_dir(tmp_path_factory) -> Path:
    return _once("gpt2", build_gpt2_dir, tmp_path_factory)


@pytest.fixture(scope="session")
def word_run(tmp_path_factory) -> Path:
    return _once("word", build_word_run, tmp_path_factory)


_BACKENDS: dict[str, object] = {}


def backend_for(kind: str, gpt2: Path):
    """hooks.load("<kind>:<dir>"), loaded once per session."""
    import hooks

    key = f"{kind}:{gpt2}"
    if key not in _BACKENDS:
        _BACKENDS[key] = hooks.load(key)
    return _BACKENDS[key]


@pytest.fixture(scope="session")
def backends(gpt2_dir):
    """The same tiny GPT-2 through our GPT (gpt2:), TransformerBridge (tl:) and nnsight."""
    return {kind: backend_for(kind, gpt2_dir) for kind in ("gpt2", "tl", "nnsight")}
