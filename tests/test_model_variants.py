"""Every architecture variant: causal, trainable end to end, deterministic init rules."""

import itertools
import math

import pytest
import torch

from gpt_model import GPT, GPTConfig

PLACEMENT_RESIDUAL = [
    ("pre", "standard"),
    ("pre", "scaled_init"),
    ("post", "standard"),
    ("post", "scaled_init"),
    ("post", "deepnorm"),
]
VARIANTS = [
    dict(ln_placement=p, residual=r, norm=n, mlp=m, tie_embeddings=t, bias=b)
    for (p, r), n, m, t, b in itertools.product(
        PLACEMENT_RESIDUAL, ["layernorm", "rmsnorm"], ["gelu", "swiglu"], [True, False], [True, False]
    )
]


def tiny(**kwargs) -> GPT:
    cfg = GPTConfig(n_layer=2, d_model=32, n_head=4, context_len=12, vocab_size=37, **kwargs)
    return GPT(cfg)


def variant_id(v: dict) -> str:
    return "-".join(str(x) for x in v.values())


@pytest.mark.parametrize("variant", VARIANTS, ids=variant_id)
def test_causal_and_gradients_reach_every_parameter(variant):
    model = tiny(**variant)
    tokens = torch.randint(0, 37, (2, 12))
    changed = tokens.clone()
    changed[:, 7:] = (changed[:, 7:] + 5) % 37
    model.eval()
    with torch.no_grad():
        a, b = model(tokens), model(changed)
    torch.testing.assert_close(a[:, :7], b[:, :7], rtol=0, atol=1e-6)
    assert (a[:, 7:] - b[:, 7:]).abs().max() > 1e-4

    model.train()
    loss = model(tokens, return_type="loss")
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.norm() > 0, f"no gradient reaches {name}"
    assert math.log(37) - 0.5 < loss.item() < math.log(37) + 0.5  # near-uniform at init


@pytest.mark.parametrize("variant", VARIANTS[::7], ids=variant_id)
def test_explicit_attention_path_equals_sdpa(variant):
    model = tiny(**variant).eval()
    tokens = torch.randint(0, 37, (3, 10))
    plain = model(tokens)
    with_pattern, cache = model.run_with_cache(tokens, names_filter=lambda n: n.endswith("hook_pattern"))
    assert len(cache) == 2
    torch.testing.assert_close(plain, with_pattern, rtol=1e-5, atol=1e-5)


def test_tied_embeddings_share_storage_and_untied_do_not():
    tied, untied = tiny(tie_embeddings=True), tiny(tie_embeddings=False)
    assert tied.unembed.weight is tied.embed.weight
    assert untied.unembed.weight is not untied.embed.weight
    assert untied.num_params() - tied.num_params() == 37 * 32


def test_blocks_are_independent_modules():
    model = tiny()
    assert isinstance(model.blocks, torch.nn.ModuleList) and len(model.blocks) == 2
    w0, w1 = model.blocks[0].attn.qkv.weight, model.blocks[1].attn.qkv.weight
    assert w0.data_ptr() != w1.data_ptr()
    assert not torch.equal(w0, w1)
    counts = model.param_counts()
    assert counts["blocks.0"] == counts["blocks.1"] == sum(p.numel() for p in model.blocks[0].parameters())
    assert sum(counts.values()) == model.num_params()


def test_scaled_init_shrinks_residual_projections():
    torch.manual_seed(0)
    cfg = dict(n_layer=8, d_model=256, n_head=4, context_len=8, vocab_size=11)
    std = GPT(GPTConfig(**cfg, residual="scaled_init")).blocks[3].mlp.fc_out.weight.std().item()
    assert std == pytest.approx(0.02 / math.sqrt(16), rel=0.05)
    plain = GPT(GPTConfig(**cfg)).blocks[3].mlp.fc_out.weight.std().item()
    assert plain == pytest.approx(0.02, rel=0.05)


def test_deepnorm_init_follows_torchscale_decoder():
    """q/k/v xavier_uniform(gain 1/√2), out xavier_uniform, FFN nn.Linear default; v, out, FFN ÷ (8N)^¼."""
    torch.manual_seed(0)
    n, d = 6, 256
    model = GPT(GPTConfig(n_layer=n, d_model=d, n_head=4, context_len=8, vocab_size=11,
                          ln_placement="post", residual="deepnorm"))
    beta = (8 * n) ** -0.25
    xavier = math.sqrt(2 / (d + d))  # std of xavier_uniform on a square [d, d] matrix
    block = model.blocks[2]
    qkv = block.attn.qkv.weight
    assert qkv[:d].std().item() == pytest.approx(xavier / math.sqrt(2), rel=0.05)  # q
    assert qkv[d : 2 * d].std().item() == pytest.approx(xavier / math.sqrt(2), rel=0.05)  # k
    assert qkv[2 * d :].std().item() == pytest.approx(xavier / math.sqrt(2) * beta, rel=0.05)  # v
    assert block.attn.out.weight.std().item() == pytest.approx(xavier * beta, rel=0.05)
    # nn.Linear's default: uniform(±1/√fan_in), std 1/√(3·fan_in)
    assert block.mlp.fc_in.weight.std().item() == pytest.approx(beta / math.sqrt(3 * d), rel=0.05)
    assert block.mlp.fc_out.weight.std().item() == pytest.approx(beta / math.sqrt(3 * 4 * d), rel=0.05)
    assert block.mlp.fc_in.bias.abs().max().item() <= beta / math.sqrt(d) + 1e-7
    assert block.alpha == pytest.approx((2 * n) ** 0.25)
    assert model.blocks[0].attn.qkv.weight.std().item() != pytest.approx(0.02, rel=0.2)


def test_deepnorm_block_computes_post_ln_of_scaled_residual():
    n = 6
    model = GPT(GPTConfig(n_layer=n, d_model=64, n_head=4, context_len=8, vocab_size=11,
                          ln_placement="post", residual="deepnorm"))
    block = model.blocks[2]
    x = torch.randn(1, 5, 64)
    with torch.no_grad():
        mid = block.ln1.norm(block.alpha * x + block.attn(x))
        expected = block.ln2.norm(block.alpha * mid + block.mlp(mid))
        torch.testing.assert_close(block(x), expected)


def test_post_ln_block_normalises_its_output():
    block = tiny(ln_placement="post").blocks[0]
    out = block(torch.randn(2, 6, 32) * 10)
    torch.testing.assert_close(out.mean(-1), torch.zeros(2, 6), atol=1e-5, rtol=0)


def test_dropout_only_in_training():
    model = tiny(dropout=0.5)
    tokens = torch.randint(0, 37, (2, 10))
    model.eval()
    torch.testing.assert_close(model(tokens), model(tokens))
    model.train()
    assert not torch.allclose(model(tokens), model(tokens))


def test_activation_checkpointing_gives_same_gradients():
    torch.manual_seed(1)
    a = tiny()
    b = tiny()
    b.load_state_dict(a.state_dict())
    b.activation_checkpointing = True
    tokens = torch.randint(0, 37, (2, 12))
    for m in (a, b):
        m.train()
        m(tokens, return_type="loss").backward()
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(pa.grad, pb.grad, msg=name)


def test_loss_with_targets_and_ignore_index():
    model = tiny().eval()
    tokens = torch.randint(0, 37, (2, 8))
    targets = torch.roll(tokens, -1, dims=1)
    targets[:, -1] = -100
    logits, loss = model(tokens, targets, return_type="both")
    expected = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 37), tokens[:, 1:].reshape(-1))
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(model(tokens, return_type="loss"), expected)  # TransformerLens-style


@pytest.mark.parametrize(
    "tokens, match",
    [
        (torch.randint(0, 37, (1, 13)), "context_len"),
        (torch.tensor([[1, 2, 37]]), "token id 37"),
        (torch.tensor([[1, -1, 3]]), "token id -1"),
        (torch.rand(1, 4), "int64/int32 tensor"),
        (torch.zeros(1, 3, dtype=torch.int16), "int64/int32 tensor"),
        (torch.zeros(1, 2, 3, dtype=torch.long), "shape"),
        (torch.zeros(1, 0, dtype=torch.long), "shape"),
    ],
)
def test_bad_input_raises_clear_error(tokens, match):
    with pytest.raises(ValueError, match=match):
        tiny()(tokens)


def test_unknown_return_type():
    with pytest.raises(ValueError, match="return_type"):
        tiny()(torch.zeros(1, 3, dtype=torch.long), return_type="probs")
