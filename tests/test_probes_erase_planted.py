"""Erasure validated on a planted model: a feature written at layer k and read downstream.

A 3-block Pre-LN GPT (d_model 16, RMSNorm) with hand-set weights. Input tokens sit at the corners
(±1, ±1) of two residual dimensions; the feature is the XOR of the two signs, which no linear
read-out of layers 0 and 1 can decode. Block 1's MLP computes it and writes ±2 into a fresh
dimension, so it is in the stream from layer k = 2 (after block 1) on. Attention writes nothing and
blocks 0 and 2 are identities. The unembedding reads the feature to choose between two output
tokens, plus a small term in sign(a) that decides when the feature is gone (a coin flip with
respect to the XOR). The behaviour is the accuracy of the top output token.

Through the engine's own code path (``erase_concept``: LEACE fit, the residual hook, the random
control, the probe refit): erasing at layer ≥ k destroys the behaviour (50 %), a random rank-1
direction at k does not (100 %), erasing at layers < k does nothing (LEACE finds nothing to
erase: rank 0, 100 %).
"""

import numpy as np
import pytest
import torch

from gpt_model import GPT, GPTConfig
from probes.erase import ConceptData, ErasureSettings, erase_concept
from probes.erase_behaviour import edited_forward
from probes.erase_fit import fit_leace, random_eraser
from probes.metrics import Bootstrap

CORNERS = [(1.0, 1.0), (1.0, -1.0), (-1.0, 1.0), (-1.0, -1.0)]  # tokens 0..3
OUT_SAME, OUT_DIFF = 4, 5  # the two output tokens: signs equal (XOR false) or not
K_LAYER = 2  # residual layer where the feature appears (after block 1)
GAIN = 5.0


def planted_model() -> GPT:
    cfg = GPTConfig(n_layer=3, d_model=16, n_head=2, d_mlp=4, vocab_size=6, context_len=8, norm="rmsnorm",
                    ln_placement="pre", bias=False, tie_embeddings=False)
    model = GPT(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        for name, p in model.named_parameters():
            if "ln" in name:  # norm gains
                p.fill_(1.0)
        for tok, (a, b) in enumerate(CORNERS):
            model.embed.weight[tok, :2] = torch.tensor([a, b])
        # block 1's MLP: hidden units |a + b| and |a − b| (GELU ≈ ReLU at this gain), written as
        # |a + b| − |a − b| = ±2 into dimension 2 (after RMSNorm the corners sit at ±√8 per axis)
        mlp = model.blocks[1].mlp
        mlp.fc_in.weight[:, :2] = GAIN * torch.tensor([[1.0, 1.0], [-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0]])
        unit = GAIN * 2 * 8 ** 0.5  # a hidden unit's value when active
        mlp.fc_out.weight[2] = 2.0 / unit * torch.tensor([1.0, 1.0, -1.0, -1.0])
        # the read-out: the feature, and a weak tie-breaker in sign(a)
        model.unembed.weight[OUT_SAME, 2], model.unembed.weight[OUT_DIFF, 2] = 1.0, -1.0
        model.unembed.weight[OUT_SAME, 0], model.unembed.weight[OUT_DIFF, 0] = 0.1, -0.1
    return model


def sequences(n: int, seed: int) -> torch.Tensor:
    """n rows, each the four corner tokens in a random order: every corner equally often, so
    a, b and the XOR are exactly uncorrelated."""
    rng = np.random.default_rng(seed)
    return torch.as_tensor(np.stack([rng.permutation(4) for _ in range(n)]), dtype=torch.long)


def xor_label(ids: torch.Tensor) -> torch.Tensor:
    """1 where the signs differ (token 1 or 2), else 0."""
    return ((ids == 1) | (ids == 2)).long()


class TopToken:
    """The behaviour: the top output token is the right one (units = sequences)."""

    agreement_label = "top-token accuracy"

    def __init__(self, ids: torch.Tensor):
        self.ids = ids
        self.target = torch.where(xor_label(ids) == 1, OUT_DIFF, OUT_SAME)
        self.n_units = len(ids)

    def measure(self, forward):
        logits = forward(self.ids)
        correct = (logits.argmax(-1) == self.target).double().sum(1).numpy()
        loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), self.target, reduction="none")
        n = np.full(self.n_units, float(self.ids.shape[1]))
        return {"agreement": (correct, n), "loss": (loss.double().sum(1).numpy(), n)}


def features(model: GPT, ids: torch.Tensor) -> torch.Tensor:
    """Residual stream at every position, [n_layer + 1, n_positions, d]."""
    names = ["blocks.0.hook_resid_pre"] + [f"blocks.{i}.hook_resid_post" for i in range(model.cfg.n_layer)]
    with torch.no_grad():
        _, cache = model.run_with_cache(ids, names_filter=lambda n: n in names)
    return torch.stack([cache[n].reshape(-1, model.cfg.d_model) for n in names])


@pytest.fixture(scope="module")
def planted():
    model = planted_model()
    train, test = sequences(300, seed=1), sequences(100, seed=2)
    data = ConceptData("xor", [0, 1], features(model, train), xor_label(train).reshape(-1),
                       features(model, train[:20]), xor_label(train[:20]).reshape(-1),
                       features(model, test), xor_label(test).reshape(-1),
                       np.repeat(np.arange(len(test)), test.shape[1]))
    behaviour = TopToken(test)
    clean = behaviour.measure(edited_forward(model))
    boot = Bootstrap(len(test), 200, seed=0)
    entry, _, _ = erase_concept(model, behaviour, data, clean, boot, ErasureSettings(n_random=5, n_bootstrap=200),
                                  read_on="agreement")
    return model, data, behaviour, clean, entry


def test_the_planted_model_works_and_hides_the_feature_before_k(planted):
    model, data, behaviour, clean, _ = planted
    assert clean["agreement"][0].sum() / clean["agreement"][1].sum() == 1.0  # the behaviour is perfect
    X, y = data.X_train, data.y_train.double()
    for layer in range(model.cfg.n_layer + 1):
        # correlation of the label with every residual dimension
        Xc = X[layer].double() - X[layer].double().mean(0)
        corr = (Xc * (y - y.mean())[:, None]).mean(0).abs().max()
        if layer < K_LAYER:
            assert corr < 1e-12  # the XOR is not linearly decodable: every class mean is the same
        else:
            assert corr > 0.5


def test_erasing_at_k_and_after_destroys_the_behaviour(planted):
    _, _, _, _, entry = planted
    layers = entry["layers"]
    assert [x["layer"] for x in layers] == [0, 1, 2, 3]
    assert entry["rank"] == 1 and entry["majority"] == pytest.approx(0.5)
    for x in layers[K_LAYER:]:
        assert x["agreement"]["value"] == pytest.approx(0.5, abs=0.01)  # a coin flip
        assert x["loss_delta"]["value"] > 0.5
        assert x["probe_accuracy"]["value"] == pytest.approx(0.5, abs=0.05)  # the eraser works
        lo, hi = x["agreement"]["ci"]
        assert lo <= x["agreement"]["value"] <= hi and hi < 0.6
    assert entry["reading"].startswith("erasing xor at layer 2 drops top-token accuracy from 100.0% to 50.0% [")


def test_a_random_direction_of_the_same_rank_does_not(planted):
    _, _, _, _, entry = planted
    for x in entry["layers"][K_LAYER:]:
        assert x["random"]["agreement"]["value"] >= 0.99
        assert abs(x["random"]["loss_delta"]["value"]) < 0.05
        assert x["random"]["probe_accuracy"]["value"] >= 0.99
    assert entry["reading"].endswith("a random rank-1 subspace: 100.0%")


def test_erasing_where_the_feature_is_absent_does_nothing(planted):
    model, data, _, _, entry = planted
    for layer in range(K_LAYER):
        assert fit_leace(data.X_train[layer], data.y_train, 2).rank == 0  # nothing to erase
        x = entry["layers"][layer]
        assert x["agreement"]["value"] == 1.0 and x["loss_delta"]["value"] == 0.0
        assert x["random"]["agreement"]["value"] == 1.0
        assert x["probe_accuracy"]["value"] == pytest.approx(0.5, abs=0.1)  # XOR: not linear there anyway


def test_the_hook_erases_every_position_and_only_the_feature(planted):
    """Through the hook, the erased layer's stream loses the feature direction and keeps the rest;
    a random direction removes exactly its own component."""
    model, data, behaviour, _, _ = planted
    eraser = fit_leace(data.X_train[K_LAYER], data.y_train, 2)
    seen = {}

    def keep(x, hook):
        seen["x"] = x.detach().clone()

    forward = edited_forward(model, K_LAYER, eraser)
    model.add_hook("blocks.2.hook_resid_pre", keep)
    try:
        forward(behaviour.ids)
    finally:
        model.reset_hooks()
    x = seen["x"]  # what block 2 received: the erased stream at layer 2, [b, t, d]
    assert x[..., 2].abs().max() < 1e-3  # the feature is gone at every position
    assert torch.equal(x[..., :2].abs(), torch.ones_like(x[..., :2]))  # a and b untouched
    rnd = random_eraser(eraser.mean, 1, (0, K_LAYER, 0))
    u = rnd.left[:, 0]
    z = torch.randn(5, 16)
    assert torch.allclose((rnd(z) - eraser.mean) @ u, torch.zeros(5), atol=1e-5)
    assert torch.allclose(z - rnd(z), torch.outer((z - eraser.mean) @ u, u), atol=1e-5)

