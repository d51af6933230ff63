"""`stratascope train` end to end on a plain text file with a BPE tokenizer, then --resume."""

import json
import random

from app.cli import main
from gpt_model.checkpoint import load_model
from gpt_model.data import load_tokenizer


WORDS = "the a dog cat bird sees chases likes runs sleeps big small red old near under house garden".split()


def _text_file(path, n=300):
    rng = random.Random(0)
    lines = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 9))) for _ in range(n)]
    path.write_text("\n".join(lines) + "\n")
    return path


SMALL = ["--set", "model.n_layer=1", "--set", "model.d_model=32", "--set", "model.n_head=2",
         "--set", "model.context_len=32", "--set", "train.eval_interval=3", "--set", "train.log_interval=1",
         "--set", "train.checkpoint_interval=3", "--set", "train.warmup_steps=2", "--batch-size", "4",
         "--device", "cpu", "--no-progress"]


def test_train_on_a_text_file_with_bpe_then_resume(tmp_path, capsys):
    text = _text_file(tmp_path / "corpus.txt")
    out = tmp_path / "run"
    rc = main(["train", "--data", str(text), "--tokenizer", "bpe", "--set", "data.bpe_vocab_size=300",
               "--steps", "6", "--out", str(out), *SMALL])
    assert rc == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "validation loss" in printed and "tokens/s" in printed
    config = json.loads((out / "config.json").read_text())
    assert config["tokenizer"] == {"kind": "bpe", "path": "tokenizer"}
    assert config["data"]["source"] == "text"
    tok = load_tokenizer(out, config["tokenizer"])
    assert len(tok) == config["model"]["vocab_size"] and len(tok) >= 257
    assert tok.bos_id == tok.eos_id  # GPT-2 style <|endoftext|>
    assert load_model(out).cfg.n_layer == 1

    # --resume with more steps continues from the latest checkpoint, config read from the run dir
    rc = main(["train", "--out", str(out), "--resume", "--steps", "9", "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    steps = [json.loads(line).get("step") for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert max(s for s in steps if s) == 9
    assert json.loads((out / "results.json").read_text())["step"] == 9


def test_existing_run_without_resume_is_an_error(tmp_path, capsys):
    text = _text_file(tmp_path / "corpus.txt", n=60)
    out = tmp_path / "run"
    args = ["train", "--data", str(text), "--steps", "3", "--out", str(out), *SMALL]
    assert main(args) == 0
    capsys.readouterr()
    assert main(args) == 1
    assert "--resume" in capsys.readouterr().err


def test_out_naming_an_existing_file_is_a_one_line_error(tmp_path, capsys):
    text = _text_file(tmp_path / "corpus.txt", n=60)
    out = tmp_path / "not_a_dir"
    out.write_text("precious")
    assert main(["train", "--data", str(text), "--steps", "3", "--out", str(out), *SMALL]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert str(out) in err and "file" in err
    assert out.read_text() == "precious"


def test_resume_without_a_checkpoint_says_so_and_stops(tmp_path, capsys):
    text = _text_file(tmp_path / "corpus.txt", n=60)
    out = tmp_path / "run"
    out.mkdir()
    # no --preset: the old code trained a fresh demo preset here
    rc = main(["train", "--out", str(out), "--resume", "--data", str(text), "--steps", "3", *SMALL])
    assert rc == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "no checkpoint" in err and str(out) in err
    assert list(out.iterdir()) == []  # nothing generated, nothing trained
