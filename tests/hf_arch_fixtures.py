"""Tiny random Hugging Face models of the architectures users bring — Llama, GPT-NeoX (Pythia),
Qwen2 and GPT-2 — built offline and saved with ``save_pretrained`` next to a locally trained
byte-level BPE tokenizer (``corpus.train_bpe_tokenizer``, as ``hooks_fixtures.build_gpt2_dir``).

Every model has 2 layers, d_model 32, 4 heads, MLP width 64, a 64-token context and the
tokenizer's ~300-token vocabulary; Llama and Qwen2 use grouped-query attention (2 key/value
heads), Qwen2 has q/k/v biases, NeoX has Pythia's partial rotary (25%) and parallel
attention + MLP. Weights are drawn by each model's own ``_init_weights`` under
``torch.manual_seed(ARCH_SEEDS[arch])``, with the init std raised to 0.2 so that the blocks
change the residual stream visibly (the comparisons against Hugging Face's hidden states are
then not trivially satisfied by the embeddings).

``build_arch_dir(root, arch)`` builds one directory; ``arch_dir(arch, tmp_path_factory)`` builds
it once per session (memoised), whichever test module asks first.
"""

from __future__ import annotations

from pathlib import Path

import torch

from hooks_fixtures import make_sentences

ARCHS = ("llama", "neox", "qwen2", "gpt2")
ARCH_SEEDS = {"llama": 11, "neox": 12, "qwen2": 13, "gpt2": 14}
# the Hugging Face class each architecture is saved as (config.json "architectures")
HF_CLASSES = {"llama": "LlamaForCausalLM", "neox": "GPTNeoXForCausalLM", "qwen2": "Qwen2ForCausalLM",
              "gpt2": "GPT2LMHeadModel"}
N_LAYER, D_MODEL, N_HEAD, D_MLP, N_CTX, VOCAB = 2, 32, 4, 64, 64, 300
INIT_STD = 0.2
_BUILT: dict[str, Path] = {}


def hf_config(arch: str, bos: int, eos: int):
    """The transformers config of the tiny `arch` model."""
    import transformers as tf

    common = dict(vocab_size=VOCAB, bos_token_id=bos, eos_token_id=eos, tie_word_embeddings=False)
    if arch == "llama":
        return tf.LlamaConfig(hidden_size=D_MODEL, intermediate_size=D_MLP, num_hidden_layers=N_LAYER,
                              num_attention_heads=N_HEAD, num_key_value_heads=2, max_position_embeddings=N_CTX,
                              initializer_range=INIT_STD, **common)
    if arch == "qwen2":
        return tf.Qwen2Config(hidden_size=D_MODEL, intermediate_size=D_MLP, num_hidden_layers=N_LAYER,
                              num_attention_heads=N_HEAD, num_key_value_heads=2, max_position_embeddings=N_CTX,
                              initializer_range=INIT_STD, **common)
    if arch == "neox":
        return tf.GPTNeoXConfig(hidden_size=D_MODEL, intermediate_size=D_MLP, num_hidden_layers=N_LAYER,
                                num_attention_heads=N_HEAD, max_position_embeddings=N_CTX, rotary_pct=0.25,
                                use_parallel_residual=True, initializer_range=INIT_STD, **common)
    if arch == "gpt2":
        return tf.GPT2Config(n_embd=D_MODEL, n_inner=D_MLP, n_layer=N_LAYER, n_head=N_HEAD, n_positions=N_CTX,
                             initializer_range=INIT_STD, **common)
    raise ValueError(f"unknown architecture {arch!r}; one of {', '.join(ARCHS)}")


def build_arch_dir(root: Path, arch: str) -> Path:
    """A random `arch` causal LM saved with save_pretrained, with its BPE tokenizer next to it."""
    from transformers import AutoModelForCausalLM

    from corpus import DEFAULT_GRAMMAR, train_bpe_tokenizer

    out = root / f"tiny-{arch}"
    # the treebank's words (what the probe tests read) and the hooks tests' words
    texts = [" ".join(s) for s in make_sentences(300, seed=1)] + [" ".join(DEFAULT_GRAMMAR.vocabulary())] * 3
    tok = train_bpe_tokenizer(texts, VOCAB, out)
    tok.save_pretrained(out)  # tokenizer.json + tokenizer_config.json for AutoTokenizer
    assert len(tok) == VOCAB, len(tok)
    cfg = hf_config(arch, tok.bos_token_id, tok.eos_token_id)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(ARCH_SEEDS[arch])
        model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager")
    assert type(model).__name__ == HF_CLASSES[arch]
    model.eval().save_pretrained(out)
    return out


def arch_dir(arch: str, tmp_path_factory) -> Path:
    if arch not in _BUILT or not _BUILT[arch].exists():
        _BUILT[arch] = build_arch_dir(tmp_path_factory.mktemp(f"arch-{arch}"), arch)
    return _BUILT[arch]
