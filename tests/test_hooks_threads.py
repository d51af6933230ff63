"""Thread safety: concurrent calls on a shared model from 4 threads give correct, unmixed
results, and forward passes never overlap (the model's lock serialises them)."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from hooks_fixtures import backends, gpt2_dir, make_sentences, one_torch_thread  # noqa: F401

import hooks

BATCHES = [make_sentences(3, seed=100 + i) for i in range(8)]


class OverlapDetector:
    """Wraps a callable; records the most calls ever running at once."""

    def __init__(self, fn):
        self.fn, self.running, self.peak, self.calls = fn, 0, 0, 0
        self.guard = threading.Lock()

    def __call__(self, *args, **kwargs):
        with self.guard:
            self.running += 1
            self.calls += 1
            self.peak = max(self.peak, self.running)
        try:
            time.sleep(0.002)  # widen the window in which an unlocked caller would overlap
            return self.fn(*args, **kwargs)
        finally:
            with self.guard:
                self.running -= 1


def job(backend, i):
    """Alternate what is asked for, so mixed-up hooks would show as wrong or missing tensors."""
    patterns = i % 2 == 0
    names = "blocks.1.hook_mlp_out" if i % 3 == 0 else ()
    return backend.run(BATCHES[i % len(BATCHES)], patterns=patterns, names=names, logits=i % 4 != 1)


def check(runs, reference):
    for run, ref in zip(runs, reference):
        assert run.encoding == ref.encoding
        torch.testing.assert_close(run.resid, ref.resid, atol=1e-6, rtol=0)
        if run.patterns is not None:
            torch.testing.assert_close(run.patterns, ref.patterns, atol=1e-6, rtol=0)
        if run.logits is not None:
            torch.testing.assert_close(run.logits, ref.logits, atol=1e-6, rtol=0)
        for name, x in run.activations.items():
            torch.testing.assert_close(x, ref.activations[name], atol=1e-6, rtol=0)


@pytest.mark.parametrize("kind", ["gpt2", "tl", "nnsight"])
def test_four_threads_get_correct_unmixed_results(backends, kind, monkeypatch):
    backend = backends[kind]
    reference = {i: backend.run(BATCHES[i], patterns=True, names="blocks.1.hook_mlp_out") for i in range(8)}
    detector = OverlapDetector(backend._forward)
    monkeypatch.setattr(backend, "_forward", detector)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda i: (i, job(backend, i)), range(16)))
    for i, runs in results:
        check(runs, reference[i % 8])
        assert (runs[0].patterns is not None) == (i % 2 == 0)
        assert bool(runs[0].activations) == (i % 3 == 0)
    assert detector.calls == 16 and detector.peak == 1
    assert all(not hp.fwd_hooks for hp in backend.model.hook_dict.values()) if kind != "nnsight" else True


def test_interventions_and_runs_share_the_model_lock(backends, monkeypatch):
    backend = backends["gpt2"]
    model = backend.model
    ids = backend.tokens(BATCHES[0])
    clean = model(ids).detach()
    truncated = hooks.ablate_block(backend, ids, [1, 2])
    reference = {i: backend.run(BATCHES[i]) for i in range(8)}
    detector = OverlapDetector(model.forward)
    monkeypatch.setattr(model, "forward", detector)

    def work(i):
        if i % 3 == 0:
            return "ablate", hooks.ablate_block(backend, ids, [1, 2])
        if i % 3 == 1:
            return "patch", hooks.patch_activation(backend, ids, ids, 1, 3)
        return "run", (i, backend.run(BATCHES[i % 8]))

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(work, range(16)))
    for what, value in results:
        if what == "ablate":
            torch.testing.assert_close(value, truncated, atol=1e-6, rtol=0)
        elif what == "patch":
            torch.testing.assert_close(value, clean, atol=1e-6, rtol=0)
        else:
            i, runs = value
            check(runs, reference[i % 8])
    assert detector.peak == 1
    assert hooks.lock_for(model) is backend.lock


def test_two_backends_on_one_model_share_a_lock(backends):
    native = backends["gpt2"]
    twin = hooks.NativeBackend(native.model, native.tokenizer, name="twin")
    assert twin.lock is native.lock
    assert backends["tl"].lock is not native.lock
    nn_backend = backends["nnsight"]
    rewrapped = hooks.load(nn_backend.model._module, tokenizer=nn_backend.tokenizer)  # a new envoy
    assert rewrapped.lock is nn_backend.lock  # same torch module, same lock
