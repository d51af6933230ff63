import dataclasses

import pytest

from gpt_model import GPTConfig, model_preset
from gpt_model.presets import MODEL_PRESETS


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"d_model": 130, "n_head": 4}, "n_head"),
        ({"n_layer": 0}, "n_layer"),
        ({"vocab_size": -3}, "vocab_size"),
        ({"norm": "batchnorm"}, "norm"),
        ({"ln_placement": "middle"}, "ln_placement"),
        ({"mlp": "relu"}, "mlp"),
        ({"residual": "rezero"}, "residual"),
        ({"residual": "deepnorm", "ln_placement": "pre"}, "ln_placement"),
        ({"dropout": 1.0}, "dropout"),
        ({"d_mlp": 0}, "d_mlp"),
        ({"tie_embeddings": "yes"}, "tie_embeddings"),
        ({"context_len": 2.5}, "context_len"),
    ],
)
def test_invalid_config_names_the_field(kwargs, field):
    with pytest.raises(ValueError, match=rf"GPTConfig\.{field}"):
        GPTConfig(**kwargs)


def test_divisibility_error_names_both_fields():
    with pytest.raises(ValueError) as err:
        GPTConfig(d_model=130, n_head=4)
    assert "d_model" in str(err.value) and "n_head" in str(err.value)


def test_derived_sizes():
    cfg = GPTConfig(n_layer=3, d_model=96, n_head=6)
    assert (cfg.d_head, cfg.mlp_width, cfg.n_layers, cfg.n_heads) == (16, 384, 3, 6)
    assert GPTConfig(d_model=96, n_head=6, mlp="swiglu").mlp_width == 256  # 8/3·96 rounded up to 64
    assert GPTConfig(d_model=96, n_head=6, d_mlp=100).mlp_width == 100


def test_deepnorm_constants_follow_torchscale_decoder():
    cfg = GPTConfig(n_layer=12, ln_placement="post", residual="deepnorm")
    assert cfg.deepnorm_alpha == pytest.approx((2 * 12) ** 0.25)
    assert cfg.deepnorm_beta == pytest.approx((8 * 12) ** -0.25)
    assert GPTConfig(n_layer=12).deepnorm_alpha == 1.0


def test_dict_round_trip_and_unknown_field(tmp_path):
    cfg = GPTConfig(n_layer=2, norm="rmsnorm", mlp="swiglu", bias=False)
    assert GPTConfig.from_dict(cfg.to_dict()) == cfg
    cfg.save(tmp_path / "c.json")
    assert GPTConfig.load(tmp_path / "c.json") == cfg
    with pytest.raises(ValueError, match="n_layers_typo"):
        GPTConfig.from_dict({**cfg.to_dict(), "n_layers_typo": 3})


def test_config_is_immutable():
    with pytest.raises(dataclasses.FrozenInstanceError):
        GPTConfig().n_layer = 3  # type: ignore[misc]


def test_presets_are_valid_and_overridable():
    assert {"demo", "deep", "gpu", "gpt2-small"} <= set(MODEL_PRESETS)
    assert model_preset("deep").n_layer >= 24
    assert model_preset("demo", vocab_size=77).vocab_size == 77
    with pytest.raises(ValueError, match="unknown preset"):
        model_preset("huge")
    with pytest.raises(ValueError, match="n_head"):
        model_preset("demo", n_head=5)
