"""One writer per run directory: `train` holds the run's lock for the whole run; a second
writer (a fresh `train --out SAME` or a `--resume`) fails at once naming the holder's PID."""

import contextlib
import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Iterator

import pytest

from app.cli import main
from gpt_model import GPTConfig
from gpt_model.data import PackedDataset, synthetic_documents
from gpt_model.presets import train_preset
from gpt_model.rundir import RunDir, RunLockedError
from gpt_model.train import TrainConfig, Trainer, train

ROOT = Path(__file__).resolve().parents[1]
WORDS = "the a dog cat bird sees chases likes runs sleeps big small red old".split()
SMALL = ["--set", "model.n_layer=1", "--set", "model.d_model=32", "--set", "model.n_head=2",
         "--set", "model.context_len=16", "--set", "train.eval_interval=0", "--set", "train.log_interval=1",
         "--set", "train.warmup_steps=1", "--batch-size", "4", "--device", "cpu", "--no-progress"]

HOLDER = textwrap.dedent("""
    import sys
    from gpt_model.rundir import RunDir

    lock = RunDir(sys.argv[1]).lock().acquire()
    print("LOCKED", flush=True)
    sys.stdin.readline()  # hold the lock until the test closes our stdin
""")


def _text(path: Path) -> Path:
    rng = random.Random(0)
    path.write_text("\n".join(" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 8))) for _ in range(80)))
    return path


@contextlib.contextmanager
def _hold(tmp_path: Path) -> Iterator[int]:
    """A second process holding the write lock of tmp_path/run; yields its PID."""
    script = tmp_path / "holder.py"
    script.write_text(HOLDER)
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "run")], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert proc.stdout.readline().strip() == "LOCKED", proc.stderr.read()
        yield proc.pid
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)


@pytest.mark.parametrize("resume", [False, True])
def test_a_second_writer_fails_at_once_naming_the_holder(tmp_path, capsys, resume):
    text = _text(tmp_path / "corpus.txt")
    run = tmp_path / "run"
    args = ["train", "--data", str(text), "--steps", "2", "--out", str(run), *SMALL]
    if resume:  # a finished run with checkpoints; then `--resume` while another process writes it
        assert main(args) == 0
        capsys.readouterr()
        args = ["train", "--out", str(run), "--resume", "--steps", "4", "--no-progress"]
        before = (run / "metrics.jsonl").read_text()
    with _hold(tmp_path) as pid:
        assert main(args) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert f"process {pid}" in err and str(run) in err
    if resume:
        assert (run / "metrics.jsonl").read_text() == before  # nothing written
    else:
        assert not (run / "metrics.jsonl").exists() and not (run / "tokenizer").exists()


def test_the_lock_is_held_for_the_whole_run_and_released_after(tmp_path):
    run = tmp_path / "run"
    cfg = train_preset("smoke").override(["train.max_steps=3", "train.device=cpu", "train.progress=false",
                                          "data.n_sentences=300", "train.eval_interval=0"])
    seen = []

    def try_to_write(trainer, rec):
        with pytest.raises(RunLockedError, match=f"process {os.getpid()}"):
            RunDir(run).lock().acquire()  # another open file: flock refuses it even in this process
        seen.append(trainer.step)

    train(cfg, run, on_step=try_to_write)
    assert seen == [1, 2, 3]
    RunDir(run).lock().acquire().release()  # released when the run ends


def test_a_trainer_used_directly_takes_the_lock_during_fit(tmp_path):
    docs = synthetic_documents(60, 30, seed=1)
    data = PackedDataset.from_documents(docs, 16, bos_id=0, eos_id=1, pad_id=2)
    cfg = TrainConfig(max_steps=2, batch_size=4, warmup_steps=0, eval_interval=0, checkpoint_interval=0,
                      progress=False)
    trainer = Trainer(GPTConfig(n_layer=1, d_model=32, n_head=2, context_len=16, vocab_size=30), cfg, data, None,
                      tmp_path / "run")
    refused = []

    def try_to_write(t, rec):
        with pytest.raises(RunLockedError):
            RunDir(tmp_path / "run").lock().acquire()
        refused.append(t.step)

    trainer.fit(on_step=try_to_write)
    assert refused == [1, 2]
    RunDir(tmp_path / "run").lock().acquire().release()
