"""Word-level tokenizer, byte-level BPE training, and word-to-token alignment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from corpus import WordTokenizer, align_words_to_tokens, generate_sentences, train_bpe_tokenizer


@pytest.fixture(scope="module")
def sentences():
    return generate_sentences(600, seed=2)


@pytest.fixture(scope="module")
def bpe(tmp_path_factory, sentences):
    out = tmp_path_factory.mktemp("bpe")
    # a vocabulary this small leaves most words split into several tokens
    return train_bpe_tokenizer([s.text for s in sentences], vocab_size=300, out_dir=out), out


def test_word_tokenizer_ids_and_round_trip(tmp_path: Path, sentences) -> None:
    tok = WordTokenizer.from_sentences(sentences)
    assert (tok.bos_id, tok.eos_id, tok.pad_id, tok.unk_id) == (0, 1, 2, 3)
    assert tok.decode([0, 1, 2, 3]) == ["<bos>", "<eos>", "<pad>", "<unk>"]
    assert tok.decode([4, 5]) == ["the", "."]  # most frequent words first
    words = sentences[0].forms
    ids = tok.encode(words, add_bos=True, add_eos=True)
    assert ids[0] == 0 and ids[-1] == 1 and len(ids) == len(words) + 2
    assert tok.decode(ids, skip_special=True) == words
    path = tok.save(tmp_path)
    assert path == tmp_path / "vocab.json"
    mapping = json.loads(path.read_text())
    assert mapping["<bos>"] == 0 and mapping["<unk>"] == 3 and len(mapping) == len(tok)
    loaded = WordTokenizer.load(path)
    assert loaded.itos == tok.itos and len(loaded) == len(tok)
    assert WordTokenizer.load(tmp_path).itos == tok.itos


def test_unknown_words_are_counted_and_reported(sentences) -> None:
    tok = WordTokenizer.from_sentences(sentences)
    assert tok.unknown_report() == "no unknown words"
    ids = tok.encode(["the", "zebra", "zebra", "yak"])
    assert ids[1:] == [3, 3, 3]
    assert tok.unknown_counts == {"zebra": 2, "yak": 1}
    assert tok.unknown_report().startswith("3 unknown word tokens (2 types) mapped to <unk>: 'zebra'×2")
    with pytest.raises(ValueError, match=r"unknown words: \['yak'\]"):
        tok.encode(["yak"], strict=True)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.decode([len(tok)])
    with pytest.raises(ValueError, match="min_count"):
        WordTokenizer.from_sentences(sentences, min_count=0)


@pytest.mark.parametrize("content, message", [
    ('{"<bos>": 0, "<eos>": 1, "<pad>": 2, "<unk>": 3, "a": 5}', "without gaps"),
    ('{"<eos>": 0, "<bos>": 1, "<pad>": 2, "<unk>": 3}', "ids 0..3 must be"),
    ('["<bos>"]', "JSON object"),
    ("{not json", "not valid JSON"),
])
def test_load_rejects_bad_vocab_files(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "vocab.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        WordTokenizer.load(path)
    with pytest.raises(FileNotFoundError):
        WordTokenizer.load(tmp_path / "none.json")


@pytest.mark.parametrize("content, where, message", [
    (b'{\n"<bos>": 0,\n"\xe9t\xe9": 1\n}\n', ":3: ", "not UTF-8"),
    (b'{\n"<bos>": 0,\n"<eos>": 1,\n}\n', ":4:1: ", "not valid JSON"),
    (b"[]", ": ", "got a list"),
    (b'{\n"<bos>": 0,\n"<eos>": "1"\n}\n', ":3: ", "token '<eos>' has id '1'"),
    (b'{\n"<bos>": 0,\n"<eos>": 0\n}\n', ":3: ", "id 0 is given to both '<bos>' and '<eos>'"),
])
def test_bad_vocab_files_name_the_file_and_line(tmp_path: Path, content: bytes, where: str, message: str) -> None:
    path = tmp_path / "vocab.json"
    path.write_bytes(content)
    with pytest.raises(ValueError) as info:
        WordTokenizer.load(path)
    text = str(info.value)
    assert text.startswith(f"{path}{where}") and message in text and "\n" not in text


@pytest.mark.parametrize("name, content, where, message", [
    ("vocab.json", b'{"a": 0,\n"b": 1,', ":2:8: ", "not valid JSON"),
    ("vocab.json", b"[]", ": ", "got a list"),
    ("vocab.json", b'{\n"\xe9": 0}', ":2: ", "not UTF-8"),
    ("vocab.json", b'{\n"a": 0,\n"b": "x"}', ":3: ", "token 'b' has id 'x'"),
    ("merges.txt", b"#version: 0.2\n\xe9 b\n", ":2: ", "not UTF-8"),
])
def test_bad_bpe_files_name_the_file_and_line(bpe, tmp_path: Path, name: str, content: bytes, where: str,
                                              message: str) -> None:
    import shutil

    from corpus.tokenizers import load_bpe

    broken = tmp_path / "bpe"
    shutil.copytree(bpe[1], broken)
    (broken / name).write_bytes(content)
    with pytest.raises(ValueError) as info:
        load_bpe(broken)
    text = str(info.value)
    assert text.startswith(f"{broken / name}{where}") and message in text and "\n" not in text


def test_bpe_files_the_tokenizers_library_refuses_give_one_line(bpe, tmp_path: Path) -> None:
    import shutil

    from corpus.tokenizers import load_bpe

    broken = tmp_path / "bpe"
    shutil.copytree(bpe[1], broken)
    (broken / "merges.txt").write_text("#version: 0.2\nzzzq yyyq\n")
    with pytest.raises(ValueError) as info:
        load_bpe(broken)
    assert str(info.value).startswith(f"{broken}: not a readable BPE tokenizer") and "\n" not in str(info.value)


def test_bpe_tokenizer_is_saved_for_gpt2_tokenizer_fast(bpe) -> None:
    from transformers import GPT2TokenizerFast

    tok, out = bpe
    assert (out / "vocab.json").is_file() and (out / "merges.txt").is_file()
    again = GPT2TokenizerFast(vocab=str(out / "vocab.json"), merges=str(out / "merges.txt"))
    assert len(again) == len(tok) == 300
    text = "the dogs near the old cat sleep ."
    assert again(text)["input_ids"] == tok(text)["input_ids"]
    assert again.decode(again(text)["input_ids"]) == text
    with pytest.raises(ValueError, match="vocab_size"):
        train_bpe_tokenizer(["a b"], vocab_size=100, out_dir=out / "x")


def test_one_loader_for_word_bpe_and_hugging_face_tokenizers(bpe, tmp_path: Path, sentences) -> None:
    from corpus.tokenizers import load_bpe, load_hf_tokenizer, load_tokenizer

    tok, out = bpe
    text = "the dogs near the old cat sleep ."
    for loaded in (load_tokenizer("bpe", out), load_bpe(out), load_hf_tokenizer(out)):
        assert len(loaded) == 300 and loaded(text)["input_ids"] == tok(text)["input_ids"]
    words = WordTokenizer.from_sentences(sentences[:50])
    words.save(tmp_path)
    assert load_tokenizer("word", tmp_path / "vocab.json").itos == words.itos
    assert not list(tmp_path.glob(".*.tmp"))  # saved whole: no temporary file left behind
    with pytest.raises(ValueError, match="unknown tokenizer kind 'sentencepiece'"):
        load_tokenizer("sentencepiece", out)
    with pytest.raises(FileNotFoundError, match="needs vocab.json and merges.txt"):
        load_tokenizer("bpe", tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no usable tokenizer"):
        load_hf_tokenizer(tmp_path / "empty")


def test_training_data_and_hooks_load_a_run_tokenizer_alike(bpe, tmp_path: Path) -> None:
    """gpt_model.data and the hooks adapters read a run's tokenizer through the same loader."""
    import hooks
    from gpt_model.data import BPETokenizer, load_tokenizer

    tok, out = bpe
    run = tmp_path / "run"
    (run / "checkpoints" / "step_0000001").mkdir(parents=True)
    (run / "tokenizer").mkdir()
    for name in ("vocab.json", "merges.txt"):
        (run / "tokenizer" / name).write_bytes((out / name).read_bytes())
    info = {"kind": "bpe", "path": "tokenizer"}
    words = ["the", "dogs", "sleep"]
    ours = load_tokenizer(run, info)
    assert isinstance(ours, BPETokenizer) and ours.encode(words) == tok(" ".join(words))["input_ids"]
    for where in (run, run / "checkpoints" / "step_0000001"):  # a checkpoint reads its run's tokenizer
        adapter = hooks.load_run_tokenizer(where, {"tokenizer": info})
        assert list(adapter.encode(words).ids[1:]) == ours.encode(words)
    stray = tmp_path / "x" / "y" / "model"  # not a checkpoint: never looks two levels up
    stray.mkdir(parents=True)
    (run / "tokenizer").rename(tmp_path / "x" / "tokenizer")
    with pytest.raises(FileNotFoundError, match="tokenizer 'tokenizer' of"):
        hooks.load_run_tokenizer(stray, {"tokenizer": info})


def test_alignment_spans_multi_token_words(bpe, sentences) -> None:
    tok, _ = bpe
    multi = 0
    for s in sentences[:50]:
        words = s.forms
        al = align_words_to_tokens(tok, words)
        assert al.input_ids == tok(" ".join(words), add_special_tokens=False)["input_ids"]
        assert al.word_spans[0][0] == 0 and al.word_spans[-1][1] == len(al.input_ids)
        for i, (start, end) in enumerate(al.word_spans):
            assert end > start
            assert al.last_token[i] == end - 1 and al.first_token[i] == start
            piece = tok.decode(al.input_ids[start:end])
            assert piece == (words[i] if i == 0 else " " + words[i])  # GPT-2 style leading space
            multi += end - start > 1
        assert [al.token_word[t] for t in al.last_token] == list(range(len(words)))
    assert multi > 100


def test_alignment_of_a_known_split(bpe) -> None:
    tok, _ = bpe
    words = ["the", "children", "sleep", "."]
    al = align_words_to_tokens(tok, words)
    assert len(al.tokens) == len(al.input_ids)
    assert all(end - start >= 1 for start, end in al.word_spans)
    assert al.word_spans[1][1] - al.word_spans[1][0] > 1  # "children" is split
    assert "".join(al.tokens[slice(*al.word_spans[1])]) == "Ġchildren"
    with pytest.raises(ValueError, match="whitespace"):
        align_words_to_tokens(tok, ["two words"])
    with pytest.raises(ValueError, match="at least one word"):
        align_words_to_tokens(tok, [])


def test_alignment_with_special_tokens_and_slow_tokenizers(bpe) -> None:
    tok, _ = bpe

    class Slow:
        """The surface of a tokenizer without offsets (a 'slow' Hugging Face tokenizer)."""

        is_fast = False
        bos_token_id = 0

        def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
            return tok(text, add_special_tokens=False)["input_ids"]

        def convert_ids_to_tokens(self, ids: list[int]) -> list[str]:
            return tok.convert_ids_to_tokens(ids)

    words = ["the", "dogs", "sleep", "."]
    fast = align_words_to_tokens(tok, words)
    slow = align_words_to_tokens(Slow(), words)
    assert slow.input_ids == fast.input_ids and slow.word_spans == fast.word_spans
    framed = align_words_to_tokens(Slow(), words, add_special_tokens=True)
    assert framed.token_word[0] is None
    assert framed.word_spans == [(s + 1, e + 1) for s, e in fast.word_spans]
