"""AdamW parameter groups: weight decay on ≥2-D parameters only (nanoGPT's rule)."""

import torch

from gpt_model import GPT, GPTConfig
from gpt_model.train import TrainConfig, build_optimizer, param_groups


def _names(model, params):
    ids = {id(p) for p in params}
    return {n for n, p in model.named_parameters() if id(p) in ids}


def test_matrices_and_embeddings_decay_biases_and_norms_do_not():
    model = GPT(GPTConfig(n_layer=2, d_model=32, n_head=2, context_len=16, vocab_size=50))
    decay, no_decay = param_groups(model, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    d, nd = _names(model, decay["params"]), _names(model, no_decay["params"])
    assert "embed.weight" in d and "pos_embed.weight" in d  # the tied embedding is the unembedding too
    assert "blocks.0.attn.qkv.weight" in d and "blocks.1.mlp.fc_out.weight" in d
    assert "blocks.0.attn.qkv.bias" in nd and "blocks.0.ln1.norm.weight" in nd
    assert "blocks.0.ln1.norm.bias" in nd and "ln_final.norm.weight" in nd
    assert all(p.dim() >= 2 for p in decay["params"]) and all(p.dim() < 2 for p in no_decay["params"])
    # every parameter exactly once; the tied unembedding is not counted twice
    all_ids = [id(p) for p in decay["params"] + no_decay["params"]]
    assert len(all_ids) == len(set(all_ids)) == len(list(model.parameters()))


def test_decay_acts_only_on_the_decay_group():
    torch.manual_seed(0)
    model = GPT(GPTConfig(n_layer=1, d_model=16, n_head=2, context_len=8, vocab_size=20))
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(1.0)
    opt = build_optimizer(model, TrainConfig(lr=0.1, weight_decay=0.5, warmup_steps=0), torch.device("cpu"))
    for p in model.parameters():
        p.grad = torch.zeros_like(p)  # a zero gradient: only the decay moves anything
    opt.step()
    w = model.blocks[0].attn.qkv.weight
    b = model.blocks[0].attn.qkv.bias
    g = model.blocks[0].ln1.norm.weight
    assert torch.allclose(w, torch.full_like(w, 1 - 0.1 * 0.5))
    assert torch.equal(b, torch.ones_like(b)) and torch.equal(g, torch.ones_like(g))
