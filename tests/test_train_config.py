"""Configuration: invalid values raise ValueError naming the field; presets, overrides, --config."""

import json

import pytest

from app.cli import main
from app.commands.train import build_config
from gpt_model.data import DataConfig
from gpt_model.presets import MODEL_PRESETS, TRAIN_PRESETS, model_preset, train_preset
from gpt_model.train import RunConfig, TrainConfig


@pytest.mark.parametrize("field, value", [
    ("lr", -1e-3), ("lr", 0.0), ("lr", float("nan")), ("lr", "fast"), ("batch_size", 0), ("batch_size", 2.5),
    ("max_steps", 0), ("grad_accum_steps", True), ("warmup_steps", -1), ("weight_decay", -0.1),
    ("beta2", 1.0), ("adam_eps", 0.0), ("grad_clip", -1.0), ("min_lr_ratio", 1.5), ("max_bad_steps", 0),
    ("lr_schedule", "step"), ("dtype", "float16"), ("device", "tpu"), ("compile", "yes"), ("seed", -1),
    ("eval_interval", -5), ("keep_checkpoints", 0),
])
def test_bad_train_field_names_the_field(field, value):
    with pytest.raises(ValueError, match=rf"TrainConfig\.{field}\b"):
        TrainConfig(**{field: value})


@pytest.mark.parametrize("field, value", [
    ("source", "wiki"), ("tokenizer", "char"), ("bpe_vocab_size", 10), ("n_sentences", 0), ("val_fraction", 1.0),
])
def test_bad_data_field_names_the_field(field, value):
    with pytest.raises(ValueError, match=rf"DataConfig\.{field}\b"):
        DataConfig(**{field: value})


def test_text_source_needs_a_path():
    with pytest.raises(ValueError, match="DataConfig.path"):
        DataConfig(source="text")


def test_overrides_parse_and_validate():
    cfg = train_preset("demo").override(["model.n_layer=8", "train.lr=1e-3", "train.compile=true",
                                         "data.path=/tmp/tb", "train.grad_clip=1"])
    assert cfg.model.n_layer == 8 and cfg.train.lr == 1e-3 and cfg.train.compile is True
    assert cfg.data.path == "/tmp/tb" and cfg.train.grad_clip == 1.0
    assert train_preset("demo").model.n_layer != 8  # presets are not mutated
    with pytest.raises(ValueError, match="model.n_layr"):
        cfg.override(["model.n_layr=3"])
    with pytest.raises(ValueError, match="TrainConfig.lr"):
        cfg.override(["train.lr=abc"])
    with pytest.raises(ValueError, match="GPTConfig.n_head"):
        cfg.override(["model.n_head=0"])
    with pytest.raises(ValueError, match="SECTION.FIELD=VALUE"):
        cfg.override(["lr=3"])
    with pytest.raises(ValueError, match="unknown section 'optim'"):
        cfg.override(["optim.lr=3"])


def test_run_config_round_trips_and_rejects_unknown_sections():
    cfg = train_preset("deep")
    assert RunConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ValueError, match="unknown config section"):
        RunConfig.from_dict({"modle": {}})
    with pytest.raises(ValueError, match="train.learning_rate"):
        RunConfig.from_dict({"train": {"learning_rate": 1}})


def test_presets_exist_and_keep_the_model_zoo():
    assert {"demo", "deep", "gpu"} <= set(TRAIN_PRESETS)
    assert {"demo", "deep", "gpu", "gpt2-small"} <= set(MODEL_PRESETS)
    assert model_preset("demo", n_layer=3).n_layer == 3
    assert train_preset("demo").model.n_layer >= 4  # probes want at least 4 blocks
    assert train_preset("deep").model.n_layer >= 24
    with pytest.raises(ValueError, match="unknown training preset"):
        train_preset("huge")


def _args(argv):
    from app.cli import build_parser

    return build_parser().parse_args(["train", *argv])


def test_cli_precedence_preset_config_flags_set(tmp_path):
    cfg_file = tmp_path / "c.json"
    cfg_file.write_text(json.dumps({"train": {"lr": 5e-4, "max_steps": 77}, "model": {"n_layer": 5}}))
    cfg, out = build_config(_args(["--preset", "deep", "--config", str(cfg_file), "--lr", "1e-4",
                                   "--set", "train.lr=2e-4", "--steps", "12", "--device", "cpu",
                                   "--out", str(tmp_path / "r")]))
    assert cfg.model.n_layer == 5 and cfg.model.d_model == train_preset("deep").model.d_model
    assert cfg.train.lr == 2e-4 and cfg.train.max_steps == 12 and cfg.train.device == "cpu"
    assert out == tmp_path / "r"
    cfg, out = build_config(_args(["--data", str(tmp_path / "t.txt"), "--tokenizer", "bpe"]))
    assert cfg.data.source == "text" and cfg.data.path == str((tmp_path / "t.txt").resolve())
    assert cfg.data.tokenizer == "bpe" and out.name == "demo"


def test_cli_reports_a_bad_field_without_traceback(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "r"), "--set", "train.batch_size=0"]) == 1
    err = capsys.readouterr().err
    assert "TrainConfig.batch_size" in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()
