"""SIGTERM / SIGINT: the trainer finishes its step, writes a checkpoint and exits cleanly."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from gpt_model import GPTConfig
from gpt_model.checkpoint import load_model
from gpt_model.data import PackedDataset, synthetic_documents
from gpt_model.rundir import RunDir
from gpt_model.train import TrainConfig, Trainer


ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent("""
    import sys
    from gpt_model import GPTConfig
    from gpt_model.data import PackedDataset, synthetic_documents
    from gpt_model.train import TrainConfig, Trainer

    docs = synthetic_documents(200, 40, seed=5)
    data = PackedDataset.from_documents(docs, 16, bos_id=0, eos_id=1, pad_id=2)
    cfg = TrainConfig(max_steps=1_000_000, batch_size=4, warmup_steps=10, eval_interval=0, log_interval=10,
                      checkpoint_interval=0, progress=False)
    trainer = Trainer(GPTConfig(n_layer=1, d_model=32, n_head=2, context_len=16, vocab_size=40), cfg, data,
                      None, sys.argv[1])

    def report(t, rec):
        if t.step == 3:
            print("STEP3", flush=True)

    result = trainer.fit(on_step=report)
    print("RESULT", result.status, result.step, flush=True)
""")


def test_sigterm_saves_a_checkpoint_and_exits_cleanly(tmp_path):
    sig = signal.SIGTERM
    run = tmp_path / "run"
    script = tmp_path / "train_forever.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, str(script), str(run)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 60
        line = ""
        while "STEP3" not in line:
            line = proc.stdout.readline()
            assert line or proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "the trainer did not start in time"
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert f"stopped by {sig.name}" in err
    status, step = out.split("RESULT")[1].split()[:2]
    assert status == "interrupted" and int(step) >= 3
    ckpt = RunDir(run).latest_checkpoint()
    assert ckpt is not None and ckpt.name == f"step_{int(step):07d}"
    assert json.loads((ckpt / "trainer_state.json").read_text())["step"] == int(step)
    load_model(ckpt)
    events = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert events[-1]["event"] == "interrupted" and events[-1]["signal"] == sig.name


def test_sigint_in_process_stops_after_the_step_with_a_checkpoint(tmp_path):
    docs = synthetic_documents(200, 40, seed=5)
    data = PackedDataset.from_documents(docs, 16, bos_id=0, eos_id=1, pad_id=2)
    cfg = TrainConfig(max_steps=100, batch_size=4, warmup_steps=1, eval_interval=0, checkpoint_interval=0,
                      progress=False)
    trainer = Trainer(GPTConfig(n_layer=1, d_model=32, n_head=2, context_len=16, vocab_size=40), cfg, data,
                      None, tmp_path / "run")

    def interrupt(t, rec):
        if t.step == 2:
            os.kill(os.getpid(), signal.SIGINT)

    previous = signal.getsignal(signal.SIGINT)
    result = trainer.fit(on_step=interrupt)
    assert result.status == "interrupted" and result.step == 3  # the signal lands during step 3
    assert RunDir(tmp_path / "run").latest_checkpoint().name == "step_0000003"
    assert signal.getsignal(signal.SIGINT) is previous  # handlers restored


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_the_cli_exits_128_plus_the_signal_after_saving_a_checkpoint(tmp_path, sig):
    text = tmp_path / "corpus.txt"
    text.write_text("\n".join(f"the dog {w} the cat" for w in ("sees", "likes", "chases") * 30) + "\n")
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "app.cli", "train", "--data", str(text), "--out", str(run), "--steps", "1000000",
           "--device", "cpu", "--no-progress", "--batch-size", "4", "--set", "model.n_layer=1",
           "--set", "model.d_model=32", "--set", "model.n_head=2", "--set", "model.context_len=16",
           "--set", "train.eval_interval=0", "--set", "train.log_interval=1", "--set", "train.checkpoint_interval=0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        deadline = time.monotonic() + 90
        while not ((run / "metrics.jsonl").is_file() and (run / "metrics.jsonl").read_text().count("\n") >= 2):
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "the trainer did not start in time"
            time.sleep(0.1)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + sig.value, err
    assert "Traceback" not in err and f"stopped by {sig.name}" in err
    ckpt = RunDir(run).latest_checkpoint()
    step = json.loads((ckpt / "trainer_state.json").read_text())["step"]
    assert step >= 2 and ckpt == RunDir(run).checkpoint_dir(step)
