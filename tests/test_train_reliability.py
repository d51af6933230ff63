"""Training under hostile use (issue 19): no non-finite checkpoint, a lock that survives deleting
RUN/.lock, one-line errors checked before anything is written, bounded --threads and
--batch-size, prompt signals before the first step, resume checked before any data work, and
config / text files whose decode errors name the file and line."""

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from app.cli import main
from gpt_model import GPTConfig
from gpt_model.data import PackedDataset, synthetic_documents
from gpt_model.rundir import RunDir, RunLockedError
from gpt_model.train import TrainConfig, Trainer, TrainingDiverged
from test_train_lock import SMALL, _hold, _text

ROOT = Path(__file__).resolve().parents[1]


def _one_line_error(capsys, *fragments: str) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, err
    return err


def _train(tmp_path: Path, *extra: str, out: Path | None = None) -> int:
    text = tmp_path / "corpus.txt"
    if not text.exists():
        _text(text)
    return main(["train", "--data", str(text), "--steps", "2", "--out", str(out or tmp_path / "run"), *SMALL,
                 *extra])


# --------------------------------------------------------------------------- 3. non-finite checkpoints
def test_non_finite_weights_are_never_checkpointed_and_the_finite_ones_stay(tmp_path):
    docs = synthetic_documents(200, 40, seed=4)
    data = PackedDataset.from_documents(docs, 16, bos_id=0, eos_id=1, pad_id=2)
    # checkpoint_interval (1) < max_bad_steps (5), keep_checkpoints 2: poisoned checkpoints used to
    # push every finite one out
    cfg = TrainConfig(max_steps=20, batch_size=4, warmup_steps=0, eval_interval=0, log_interval=1,
                      checkpoint_interval=1, keep_checkpoints=2, max_bad_steps=5, progress=False)
    run = tmp_path / "run"
    trainer = Trainer(GPTConfig(n_layer=1, d_model=32, n_head=2, context_len=16, vocab_size=40), cfg, data, None,
                      run)

    def poison(t, rec):
        if t.step == 3:  # e.g. an optimizer step that overflowed
            with torch.no_grad():
                t.model.blocks[0].mlp.fc_in.weight[0, 0] = float("nan")

    with pytest.raises(TrainingDiverged) as err:
        trainer.fit(on_step=poison)
    message = str(err.value)
    assert "blocks.0.mlp.fc_in.weight" in message and str(RunDir(run).checkpoint_dir(2)) in message
    assert [s for s, _ in RunDir(run).checkpoints()] == [1, 2]  # step 3 was not written, 1-2 kept
    events = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert events[-1]["event"] == "diverged" and events[-1]["step"] == 3


# --------------------------------------------------------------------------- 4. the lock
def test_deleting_the_lock_file_does_not_let_a_second_writer_in(tmp_path, capsys):
    run = tmp_path / "run"
    with _hold(tmp_path):
        (run / ".lock").unlink()  # a user tidying up
        with pytest.raises(RunLockedError, match=f"{run} is being written by another process"):
            RunDir(run).lock().acquire()
        assert _train(tmp_path, out=run) == 1
        _one_line_error(capsys, f"{run} is being written by")
        assert list(run.iterdir()) == []  # the refused writer wrote nothing
    RunDir(run).lock().acquire().release()  # free again once the holder is gone


def test_the_lock_is_free_again_after_its_holder_is_killed(tmp_path):
    script = tmp_path / "holder.py"
    script.write_text(textwrap.dedent("""
        import sys, time
        from gpt_model.rundir import RunDir
        RunDir(sys.argv[1]).lock().acquire()
        print("LOCKED", flush=True)
        time.sleep(600)
    """))
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "run")], stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert proc.stdout.readline().strip() == "LOCKED"
        with pytest.raises(RunLockedError, match=f"process {proc.pid}"):
            RunDir(tmp_path / "run").lock().acquire()
        proc.kill()
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    RunDir(tmp_path / "run").lock().acquire().release()


# --------------------------------------------------------------------------- 9. bad paths, checked up front
def test_out_below_a_file_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert _train(tmp_path, out=blocker / "sub") == 1
    _one_line_error(capsys, "--out", str(blocker), "not a directory")


def test_corpus_naming_a_file_is_one_line_and_leaves_nothing(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["train", "--data", "treebank", "--corpus", str(blocker), "--out", str(tmp_path / "run"),
                 "--steps", "2", *SMALL]) == 1
    _one_line_error(capsys, "--corpus", str(blocker), "not a directory")
    assert not (tmp_path / "run").exists()


def test_a_missing_text_file_fails_before_the_run_directory_is_made(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path / "missing.txt"), "--out", str(tmp_path / "run"), *SMALL]) == 1
    _one_line_error(capsys, str(tmp_path / "missing.txt"))
    assert not (tmp_path / "run").exists()


def test_a_start_that_fails_after_the_lock_leaves_nothing_behind(tmp_path, capsys):
    one_line = tmp_path / "one.txt"
    one_line.write_text("the dog sees the cat\n")  # found only when the data are read
    assert main(["train", "--data", str(one_line), "--out", str(tmp_path / "run"), *SMALL]) == 1
    _one_line_error(capsys, "need at least 2 non-empty lines")
    assert not (tmp_path / "run").exists()


def test_an_unwritable_run_directory_is_one_line(tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    run.mkdir()
    real_access = os.access
    # as root a chmod'ed directory stays writable: say it is not, as for any other user
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p) == run and mode & os.W_OK
                        else real_access(p, mode, **kw))
    assert _train(tmp_path, out=run) == 1
    _one_line_error(capsys, "--out", str(run), "not writable")
    assert list(run.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_a_read_only_run_directory_is_one_line(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    run.chmod(0o555)
    try:
        assert _train(tmp_path, out=run) == 1
    finally:
        run.chmod(0o755)
    _one_line_error(capsys, "--out", str(run), "not writable")


# --------------------------------------------------------------------------- 10, 11. bounds
def test_absurd_thread_counts_are_refused_naming_the_flag(tmp_path, capsys):
    assert _train(tmp_path, "--threads", "100000") == 1
    _one_line_error(capsys, "--threads", "100000", f"{os.cpu_count()} CPUs")
    assert not (tmp_path / "run").exists()


def test_a_batch_that_cannot_fit_in_memory_is_refused_at_once(tmp_path, capsys):
    demo_shape = ["--set", "model.n_layer=6", "--set", "model.d_model=128", "--set", "model.context_len=64"]
    # at least 9 TiB for one micro-batch: refused on any machine, before any data work
    assert _train(tmp_path, "--batch-size", "100000000", *demo_shape) == 1
    _one_line_error(capsys, "--batch-size", "100000000", "--grad-accum")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_before_the_first_step_finished_stops_at_once(tmp_path, capsys, monkeypatch, sig):
    original = Trainer._train_step

    def signalled_step(self):
        if self.step == 0:
            os.kill(os.getpid(), sig)  # lands inside the first step: nothing to save yet
        return original(self)

    monkeypatch.setattr(Trainer, "_train_step", signalled_step)
    previous = signal.getsignal(sig)
    assert _train(tmp_path) == 128 + sig.value
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"stopped by {sig.name} before the first step finished" in err
    assert RunDir(tmp_path / "run").checkpoints() == []  # stopped, not finished-then-checkpointed
    assert signal.getsignal(sig) is previous
    RunDir(tmp_path / "run").lock().acquire().release()


# --------------------------------------------------------------------------- 14. resume checked first
def test_resume_with_another_shape_is_refused_before_any_data_work(tmp_path, capsys):
    run = tmp_path / "run"
    assert _train(tmp_path, out=run) == 0
    capsys.readouterr()
    before = (run / "metrics.jsonl").read_text()
    assert main(["train", "--out", str(run), "--resume", "--preset", "smoke", "--device", "cpu",
                 "--no-progress"]) == 1
    _one_line_error(capsys, "another model config", "n_layer")
    assert not (run / "data").exists()  # the smoke treebank was not generated
    assert (run / "metrics.jsonl").read_text() == before


# --------------------------------------------------------------------------- 15. decode errors
@pytest.mark.parametrize("content, where", [
    (b'{\n  "train": {"lr": 0.001}\n}\n\xff\n', ":4:"),
    (b'{\n  "train": {\n    "lr": 0.001,\n  }\n}\n', ":4:"),
    (b'[1, 2]\n', "JSON object"),
    (b'{"train": {"nope": 1}}', "train.nope"),
])
def test_config_file_errors_name_the_file_and_line(tmp_path, capsys, content, where):
    config = tmp_path / "my.json"
    config.write_bytes(content)
    assert _train(tmp_path, "--config", str(config)) == 1
    _one_line_error(capsys, str(config), where)
    assert not (tmp_path / "run").exists()


def test_a_text_file_that_is_not_utf8_names_the_file_and_line(tmp_path, capsys):
    text = tmp_path / "corpus.txt"
    _text(text)
    text.write_bytes(text.read_bytes() + b"\nthe caf\xe9 is open\n")
    n_lines = text.read_bytes().count(b"\n")
    assert _train(tmp_path) == 1
    _one_line_error(capsys, f"{text}:{n_lines}:", "UTF-8")
    assert not (tmp_path / "run").exists()
