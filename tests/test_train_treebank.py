"""A short run on the built-in treebank: the loss falls well below the unigram entropy, and the run
directory is what the hooks / probes / dashboard code consumes."""

import json

import pytest

from gpt_model.checkpoint import load_model
from gpt_model.data import DataConfig, load_tokenizer
from gpt_model.evaluate import agreement_accuracy, evaluate_run
from gpt_model.presets import train_preset
from gpt_model.train import train


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("tb") / "run"
    config = train_preset("smoke").override([
        "data.n_sentences=2000", "train.max_steps=50", "train.batch_size=8", "train.lr=5e-3", "train.warmup_steps=5",
        "train.checkpoint_interval=0", "train.eval_interval=25", "train.progress=false"])
    result = train(config, out)
    return out, result


def test_loss_falls_well_below_the_unigram_entropy(run):
    out, result = run
    final = json.loads((out / "results.json").read_text())
    assert result.status == "finished" and final == result.final
    unigram, floor = final["unigram_entropy"], final["entropy_floor"]
    assert floor < unigram
    # context is being used: at least 40% of the way from the unigram entropy to the floor
    assert final["val_loss"] < unigram - 0.4 * (unigram - floor), final
    assert 0.0 <= final["agreement"]["accuracy"] <= 1.0 and final["agreement"]["n_pairs"] > 50
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    vals = [m["val_loss"] for m in metrics if "val_loss" in m and "event" not in m]
    assert len(vals) == 2 and vals[-1] < vals[0]
    assert metrics[-1]["event"] == "final"
    assert {"step", "train_loss", "lr", "grad_norm", "tokens_per_s"} <= set(metrics[0])


def test_run_directory_contract(run):
    out, _ = run
    config = json.loads((out / "config.json").read_text())
    assert {"model", "train", "data", "tokenizer"} <= set(config)
    assert config["tokenizer"] == {"kind": "word", "path": "tokenizer/vocab.json"}
    assert config["data"]["path"] == "data"  # the generated treebank, relative to the run dir
    assert (out / "data" / "train.conllu").is_file() and (out / "model.safetensors").is_file()
    tok = load_tokenizer(out, config["tokenizer"])
    model = load_model(out)
    assert model.cfg.vocab_size == len(tok) == config["model"]["vocab_size"]
    DataConfig.from_dict(config["data"])  # round-trips


def test_evaluate_run_reproduces_the_final_numbers(run):
    out, result = run
    again = evaluate_run(str(out))
    assert again["val_loss"] == pytest.approx(result.final["val_loss"], rel=1e-6)
    a, b = again["agreement"], result.final["agreement"]
    assert (a["n_pairs"], a["n_correct"]) == (b["n_pairs"], b["n_correct"])
    assert a["mean_margin"] == pytest.approx(b["mean_margin"], rel=1e-5)


def test_agreement_scores_a_known_preference(run):
    out, _ = run
    config = json.loads((out / "config.json").read_text())
    tok = load_tokenizer(out, config["tokenizer"])
    model = load_model(out)
    # a pair against itself: margin 0 → not counted correct; swapped pairs are complementary
    pairs = [(["the", "dog"], "sleeps", "sleep")] if "sleeps" in tok else []
    if pairs:
        a = agreement_accuracy(model, tok, pairs)
        b = agreement_accuracy(model, tok, [(p, w, c) for p, c, w in pairs])
        assert a.n_correct + b.n_correct == 1
    same = agreement_accuracy(model, tok, [(["the"], "the", "the")])
    assert same.n_correct == 0 and same.mean_margin == 0.0
