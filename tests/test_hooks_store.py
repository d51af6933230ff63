"""hooks.ActivationStore: arrays equal a direct run_with_cache, index, resume after an
interruption gives identical files, append, any backend, CoNLL-U streaming."""

import json

import numpy as np
import pytest
import torch
from hooks_fixtures import backends, gpt2_dir, make_sentences, one_torch_thread, word_run  # noqa: F401

import hooks
from hooks import store as store_module

SENTENCES = make_sentences(23, seed=11)


def direct_rows(backend, sentences, names, which="last"):
    """{name: rows at each word}, from TransformerLens's run_with_cache, one sentence at a time."""
    rows = {name: [] for name in names}
    for words in sentences:
        enc = backend.encode(words)
        _, cache = backend.model.run_with_cache(torch.tensor([enc.ids]), names_filter=list(names))
        for name in names:
            x = cache[name][0]
            if which == "mean":
                rows[name].append(torch.stack([x[s:e].mean(0) for s, e in enc.spans]))
            else:
                rows[name].append(x[enc.positions(which)])
    return {name: torch.cat(r).numpy() for name, r in rows.items()}


def file_bytes(path):
    return {p.name: p.read_bytes() for p in sorted(path.iterdir()) if p.is_file()}


def write_corpus(path, sentences):
    from corpus import Sentence, Word, write_conllu

    write_conllu([Sentence([Word(i + 1, w, upos="X", head=0, deprel="dep") for i, w in enumerate(s)])
                  for s in sentences], path)
    return path


def test_store_equals_run_with_cache(backends, tmp_path):
    b = backends["gpt2"]
    store = hooks.ActivationStore.build(tmp_path / "s", b, SENTENCES, dtype="float32", batch_size=5)
    n_words = sum(map(len, SENTENCES))
    assert store.complete and store.n_words == n_words and store.n_sentences == len(SENTENCES)
    assert store.names == b.resid_names()
    direct = direct_rows(b, SENTENCES, b.resid_names())
    for layer, name in enumerate(b.resid_names()):
        x = store.layer(layer)
        assert isinstance(x, np.memmap) and x.shape == (n_words, 32) and x.dtype == np.float32
        np.testing.assert_allclose(x, direct[name], atol=1e-5, rtol=0)
        assert np.array_equal(store.read(name), x)
    offsets = store.sentence_offsets
    assert offsets[0] == 0 and offsets[-1] == n_words and np.all(np.diff(offsets) == list(map(len, SENTENCES)))
    rows = store.sentence_rows(4)
    name = b.resid_names()[2]
    np.testing.assert_allclose(store.layer(2)[rows], direct_rows(b, SENTENCES[4:5], [name])[name], atol=1e-5, rtol=0)


def test_float16_mean_position_and_other_hooks(backends, tmp_path):
    b = backends["gpt2"]
    names = ["blocks.1.hook_mlp_out", "blocks.0.attn.hook_z"]
    store = hooks.ActivationStore.build(tmp_path / "s", b, SENTENCES, names="blocks.1.hook_mlp_out",
                                        position="mean", batch_size=8)
    x = store.read("blocks.1.hook_mlp_out")
    assert x.dtype == np.float16
    expected = direct_rows(b, SENTENCES, names[:1], "mean")[names[0]]
    np.testing.assert_allclose(x.astype(np.float32), expected, atol=2e-3, rtol=2e-3)
    z = hooks.ActivationStore.build(tmp_path / "z", b, SENTENCES[:4], names=names[1:], dtype="float32")
    assert z.shape(names[1]) == (sum(map(len, SENTENCES[:4])), 4, 8)
    np.testing.assert_allclose(z.read(names[1]), direct_rows(b, SENTENCES[:4], names[1:])[names[1]], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="cannot be stored"):
        hooks.ActivationStore.build(tmp_path / "p", b, SENTENCES, names="blocks.0.attn.hook_pattern")


def test_index_describes_the_store(backends, tmp_path):
    b = backends["tl"]
    store = hooks.ActivationStore.build(tmp_path / "s", b, SENTENCES, batch_size=4)
    index = json.loads((tmp_path / "s" / "index.json").read_text())
    assert index["model"]["name"] == "tl:tiny-gpt2" and index["model"]["backend"] == "tl"
    assert index["names"] == b.resid_names() and index["dtype"] == "float16"
    assert index["shapes"]["blocks.2.hook_resid_post"] == [32]
    assert index["n_words"] == sum(map(len, SENTENCES)) and index["done_sentences"] == len(SENTENCES)
    offsets = np.load(tmp_path / "s" / index["offsets_file"])
    assert offsets.dtype == np.int64 and list(np.diff(offsets)) == list(map(len, SENTENCES))
    for name in index["names"]:  # each file is exactly the raw array
        assert (tmp_path / "s" / index["files"][name]).stat().st_size == index["n_words"] * 32 * 2
    assert "ActivationStore" in repr(store)


def test_resume_after_interruption_gives_identical_files(backends, tmp_path):
    b = backends["gpt2"]
    reference = hooks.ActivationStore.build(tmp_path / "ref", b, SENTENCES, batch_size=4, window=1)

    class Interrupt(Exception):
        pass

    def stop_after(n):
        def progress(done, total):
            if done >= n:
                raise Interrupt
        return progress

    with pytest.raises(Interrupt):
        hooks.ActivationStore.build(tmp_path / "cut", b, SENTENCES, batch_size=4, progress=stop_after(8),
                                    commit_interval=0, window=1)
    partial = hooks.ActivationStore(tmp_path / "cut")
    assert not partial.complete and partial.index["done_sentences"] == 8
    with pytest.raises(RuntimeError, match="incomplete"):
        partial.layer(1)
    assert partial.layer(1, partial=True).shape == (partial.index["done_words"], 32)
    hooks.ActivationStore.build(tmp_path / "cut", b, SENTENCES, batch_size=4, window=1)
    assert file_bytes(tmp_path / "cut") == file_bytes(tmp_path / "ref")
    np.testing.assert_array_equal(hooks.ActivationStore(tmp_path / "cut").layer(3), reference.layer(3))


def test_windows_run_by_length_and_resume_at_a_window(backends, tmp_path):
    """By default a window of 8 batches runs in batches of similar length: the rows still land
    in corpus order (equal to one sentence at a time), and an interrupted build resumes at the
    last committed window with the uninterrupted bytes."""
    b = backends["gpt2"]
    reference = hooks.ActivationStore.build(tmp_path / "ref", b, SENTENCES, batch_size=2, dtype="float32")
    one_by_one = hooks.ActivationStore.build(tmp_path / "one", b, SENTENCES, batch_size=1, dtype="float32", window=1)
    for layer in range(4):
        np.testing.assert_allclose(reference.layer(layer), one_by_one.layer(layer), atol=1e-5, rtol=1e-5)

    class Interrupt(Exception):
        pass

    def stop(done, total):
        if done >= 16:
            raise Interrupt

    with pytest.raises(Interrupt):
        hooks.ActivationStore.build(tmp_path / "cut", b, SENTENCES, batch_size=2, dtype="float32", progress=stop,
                                    commit_interval=0)
    assert hooks.ActivationStore(tmp_path / "cut").index["done_sentences"] == 16  # one window of 8 × 2
    hooks.ActivationStore.build(tmp_path / "cut", b, SENTENCES, batch_size=2, dtype="float32")
    assert file_bytes(tmp_path / "cut") == file_bytes(tmp_path / "ref")
    with pytest.raises(ValueError, match="window must be a positive integer"):
        hooks.ActivationStore.build(tmp_path / "bad", b, SENTENCES, window=0)


def test_crash_between_write_and_commit_resumes_identically(backends, tmp_path, monkeypatch):
    b = backends["gpt2"]
    hooks.ActivationStore.build(tmp_path / "ref", b, SENTENCES, batch_size=3, dtype="float32", window=1)
    commits = {"n": 0}
    real_commit = store_module.ActivationStore._commit

    def flaky_commit(self):
        commits["n"] += 1
        if commits["n"] == 4:  # the data of batch 3 is written, the index not yet updated
            raise OSError("disk went away")
        real_commit(self)

    monkeypatch.setattr(store_module.ActivationStore, "_commit", flaky_commit)
    with pytest.raises(OSError):
        hooks.ActivationStore.build(tmp_path / "cut", b, SENTENCES, batch_size=3, dtype="float32",
                                    commit_interval=0, window=1)
    monkeypatch.setattr(store_module.ActivationStore, "_commit", real_commit)
    assert hooks.ActivationStore(tmp_path / "cut").index["done_sentences"] == 6
    hooks.ActivationStore.build(tmp_path / "cut", b, SENTENCES, batch_size=3, dtype="float32", window=1)
    assert file_bytes(tmp_path / "cut") == file_bytes(tmp_path / "ref")


def test_uncommitted_batches_are_redone(backends, tmp_path, monkeypatch):
    """With a long commit interval nothing is committed before the end: a crash mid-way leaves
    the store at 0 sentences, and the rerun still gives the uninterrupted files."""
    b = backends["gpt2"]
    hooks.ActivationStore.build(tmp_path / "ref", b, SENTENCES, batch_size=4, window=1)
    calls = {"n": 0}
    real = b.forward_tokens

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(b, "forward_tokens", failing)
    with pytest.raises(KeyboardInterrupt):
        hooks.ActivationStore.build(tmp_path / "cut", b, SENTENCES, batch_size=4, commit_interval=1e9, window=1)
    monkeypatch.undo()
    assert hooks.ActivationStore(tmp_path / "cut").index["done_sentences"] == 0
    hooks.ActivationStore.build(tmp_path / "cut", b, SENTENCES, batch_size=4, window=1)
    assert file_bytes(tmp_path / "cut") == file_bytes(tmp_path / "ref")


def test_append_and_resume_an_append(backends, tmp_path):
    b = backends["gpt2"]
    first, second = SENTENCES[:10], SENTENCES[10:]
    whole = hooks.ActivationStore.build(tmp_path / "whole", b, SENTENCES, batch_size=10, dtype="float32", window=1)
    store = hooks.ActivationStore.build(tmp_path / "s", b, first, batch_size=10, dtype="float32", window=1)
    store.append(b, second, window=1)
    assert store.complete and store.n_sentences == len(SENTENCES) and len(store.index["segments"]) == 2
    np.testing.assert_array_equal(store.sentence_offsets, whole.sentence_offsets)
    for layer in range(4):  # batches start at the same sentences here, so even the bytes agree
        np.testing.assert_array_equal(store.layer(layer), whole.layer(layer))

    class Interrupt(Exception):
        pass

    def progress(done, total):
        if done > len(first):
            raise Interrupt

    cut = hooks.ActivationStore.build(tmp_path / "cut", b, first, batch_size=10, dtype="float32", window=1)
    with pytest.raises(Interrupt):
        cut.append(b, second, progress=progress, commit_interval=0, window=1)
    cut = hooks.ActivationStore(tmp_path / "cut")
    assert not cut.complete
    with pytest.raises(RuntimeError, match="unfinished segment"):
        cut.append(b, first, window=1)
    cut.append(b, second, window=1)
    assert file_bytes(tmp_path / "cut") == file_bytes(tmp_path / "s")


def test_reopening_with_another_corpus_model_or_hooks_fails(backends, word_run, tmp_path):
    b = backends["gpt2"]
    hooks.ActivationStore.build(tmp_path / "s", b, SENTENCES[:5])
    with pytest.raises(ValueError, match="another corpus"):
        hooks.ActivationStore.build(tmp_path / "s", b, SENTENCES[:6])
    with pytest.raises(ValueError, match="holds hooks"):
        hooks.ActivationStore.build(tmp_path / "s", b, SENTENCES[:5], names="blocks.0.hook_mlp_out")
    with pytest.raises(ValueError, match="built with model"):
        hooks.ActivationStore.build(tmp_path / "s", backends["tl"], SENTENCES[:5])
    with pytest.raises(FileNotFoundError):
        hooks.ActivationStore(tmp_path / "nothing")


def test_store_written_before_the_vocab_size_rename_still_resumes(backends, tmp_path):
    """index.json of earlier versions says "d_vocab"; it is read as "vocab_size"."""
    b = backends["gpt2"]
    path = tmp_path / "old"
    reference = hooks.ActivationStore.build(tmp_path / "ref", b, SENTENCES, batch_size=4, window=1)
    hooks.ActivationStore.build(path, b, SENTENCES[:8], batch_size=4, window=1)
    index = json.loads((path / "index.json").read_text())
    index["model"]["d_vocab"] = index["model"].pop("vocab_size")
    (path / "index.json").write_text(json.dumps(index))
    old = hooks.ActivationStore(path)
    assert old.model["vocab_size"] == 300 and hooks.ModelInfo.from_dict(old.model) == b.metadata
    old.append(b, SENTENCES[8:], window=1)
    np.testing.assert_array_equal(hooks.ActivationStore(path).layer(3), reference.layer(3))


def test_conllu_file_through_every_backend(backends, tmp_path):
    path = write_corpus(tmp_path / "probe.conllu", SENTENCES)
    stores = {k: hooks.ActivationStore.build(tmp_path / k, b, path, dtype="float32", batch_size=6)
              for k, b in backends.items()}
    for kind in ("tl", "nnsight"):
        for layer in range(4):
            np.testing.assert_allclose(stores[kind].layer(layer), stores["gpt2"].layer(layer), atol=1e-5, rtol=0)
    assert stores["gpt2"].index["segments"][0]["source"] == str(path)


def test_word_run_store_rows_align_with_corpus_labels(word_run, tmp_path):
    from corpus import read_conllu

    b = hooks.load(str(word_run))
    path = write_corpus(tmp_path / "c.conllu", SENTENCES)
    store = hooks.ActivationStore.build(tmp_path / "s", b, path, dtype="float32")
    labels = [w.form for s in read_conllu(path) for w in s.words]
    assert store.layer(0).shape[0] == len(labels)
    # layer 0 at a word = its embedding + its position's embedding: row r is the r-th word
    emb, pos = b.model.embed.weight.detach(), b.model.pos_embed.weight.detach()
    positions = [i + 1 for s in SENTENCES for i in range(len(s))]
    expected = torch.stack([emb[b.tokenizer.tokenizer.stoi[w]] + pos[p] for w, p in zip(labels, positions)])
    np.testing.assert_allclose(store.layer(0), expected.numpy(), atol=1e-6, rtol=0)


def test_too_long_sentence_fails_before_extracting(word_run, tmp_path):
    b = hooks.load(str(word_run))
    with pytest.raises(ValueError, match="sentence 1: .*context length"):
        hooks.ActivationStore.build(tmp_path / "s", b, [["the"], ["dog"] * 40])
    assert not (tmp_path / "s").exists()


CONLLU = """# sent_id = 1
# text = I don't know.
1-2\tdon't\t_\t_\t_\t_\t_\t_\t_\t_
1\tdo\tdo\tAUX\t_\t_\t3\taux\t_\t_
2\tn't\tnot\tPART\t_\t_\t3\tadvmod\t_\t_
3\tknow\tknow\tVERB\t_\t_\t0\troot\t_\t_
3.1\tit\tit\tPRON\t_\t_\t_\t_\t3:obj\t_
4\t.\t.\tPUNCT\t_\t_\t3\tpunct\t_\t_

# sent_id = 2
1\tDogs\tdog\tNOUN\t_\t_\t2\tnsubj\t_\t_
2\tbark\tbark\tVERB\t_\t_\t0\troot\t_\t_

"""


def test_fast_forms_reader_matches_the_corpus_reader(tmp_path):
    from corpus import read_conllu

    path = tmp_path / "mwt.conllu"
    path.write_text(CONLLU)
    source = store_module.CorpusSource(path)
    expected = [s.forms for s in read_conllu(path)]
    assert expected == [["do", "n't", "know", "."], ["Dogs", "bark"]]
    assert list(source) == expected and list(source.forms()) == expected


def test_multiword_tokens_store_one_row_per_syntactic_word(backends, tmp_path):
    path = tmp_path / "mwt.conllu"
    path.write_text(CONLLU)
    store = hooks.ActivationStore.build(tmp_path / "s", backends["gpt2"], path)
    assert store.n_words == 6 and list(store.sentence_offsets) == [0, 4, 6]
