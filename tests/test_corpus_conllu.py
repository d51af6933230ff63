"""CoNLL-U reading and writing: round trips, real UD data, and clear errors."""

from __future__ import annotations

import math
from pathlib import Path

import conllu
import pytest

from corpus import CoNLLUError, Sentence, Word, generate_sentences, iter_conllu, read_conllu, write_conllu
from corpus.conllu_io import parse_conllu_string, sentence_to_tokenlist, serialize_sentence

EWT_DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "ud_english_ewt" / "en_ewt-ud-dev.conllu"
if not EWT_DEV.is_file():
    EWT_DEV = Path("/work/shared/data/ud_english_ewt/en_ewt-ud-dev.conllu")

UD_SAMPLE = """\
# newdoc id = doc1
# sent_id = s1
# text = Don't go.
1-2\tDon't\t_\t_\t_\t_\t_\t_\t_\t_
1\tDo\tdo\tAUX\tVBP\tMood=Imp|VerbForm=Fin\t3\taux\t3:aux\t_
2\tn't\tnot\tPART\tRB\t_\t3\tadvmod\t3:advmod\t_
3\tgo\tgo\tVERB\tVB\tVerbForm=Inf\t0\troot\t0:root\tSpaceAfter=No
3.1\tgo\tgo\tVERB\tVB\t_\t_\t_\t3:conj\tCopyOf=3
4\t.\t.\tPUNCT\t.\t_\t3\tpunct\t3:punct\t_

# sent_id = s2
# newpar
1\tHi\thi\tINTJ\tUH\t_\t0\troot\t0:root\t_

"""


def test_generated_treebank_round_trips(tmp_path: Path) -> None:
    sentences = generate_sentences(200, seed=5)
    path = tmp_path / "t.conllu"
    assert write_conllu(sentences, path) == 200
    back = read_conllu(path)
    assert back == sentences  # every field, the exact logprob float included
    text = path.read_text(encoding="utf-8")
    assert text.startswith(f"# sent_id = 5-0\n# text = {sentences[0].text}\n# logprob = {sentences[0].logprob!r}\n1\t")
    write_conllu(back, tmp_path / "again.conllu")
    assert (tmp_path / "again.conllu").read_bytes() == path.read_bytes()
    # the fast writer produces exactly what the conllu package's serializer does
    assert all(serialize_sentence(s) == sentence_to_tokenlist(s).serialize() for s in sentences)
    # and the conllu package itself reads our files
    parsed = conllu.parse(text)
    assert len(parsed) == 200 and parsed[0][0]["misc"]["Const"] == sentences[0].words[0].misc["Const"]
    assert math.isclose(float(parsed[0].metadata["logprob"]), sentences[0].logprob)


def test_multiword_tokens_and_empty_nodes_are_kept_out_of_words(tmp_path: Path) -> None:
    first, second = parse_conllu_string(UD_SAMPLE)
    assert first.forms == ["Do", "n't", "go", "."]
    assert first.metadata == {"newdoc id": "doc1", "sent_id": "s1", "text": "Don't go."}
    assert first.logprob is None
    assert [(m.start, m.end, m.form) for m in first.multiword_tokens] == [(1, 2, "Don't")]
    assert [(e.id, e.form, e.deps, e.misc) for e in first.empty_nodes] == [("3.1", "go", "3:conj", {"CopyOf": "3"})]
    assert first.words[2].misc == {"SpaceAfter": "No"} and first.words[0].feats == {"Mood": "Imp", "VerbForm": "Fin"}
    assert first.words[3].head == 3 and first.words[3].deps == "3:punct"
    assert second.metadata == {"sent_id": "s2", "newpar": ""}
    path = tmp_path / "ud.conllu"
    write_conllu([first, second], path)
    assert path.read_text(encoding="utf-8") == UD_SAMPLE


@pytest.mark.skipif(not EWT_DEV.is_file(), reason="UD English EWT dev file not present")
def test_reads_ud_english_ewt_dev(tmp_path: Path) -> None:
    sentences = read_conllu(EWT_DEV)
    assert len(sentences) == 2001
    assert sum(len(s.words) for s in sentences) == 25147
    assert sum(len(s.multiword_tokens) for s in sentences) == 359
    assert sum(len(s.empty_nodes) for s in sentences) == 4
    assert sentences[0].forms == ["From", "the", "AP", "comes", "this", "story", ":"]
    assert sentences[0].metadata["sent_id"].endswith("-0001")
    for s in sentences:
        assert [w.id for w in s.words] == list(range(1, len(s.words) + 1))
        assert all(w.head is not None and 0 <= w.head <= len(s.words) for w in s.words)
    out = tmp_path / "ewt.conllu"
    write_conllu(sentences, out)
    assert out.read_bytes() == EWT_DEV.read_bytes()


@pytest.mark.parametrize("body, line, message", [
    ("1\tthe\tthe\tDET\n", 1, "expected 10 tab-separated columns, found 4"),
    ("# sent_id = a\n1\ta\ta\tX\t_\t_\t0\troot\t_\t_\n3\tb\tb\tX\t_\t_\t1\tdep\t_\t_\n", 3,
     "word ID 3 out of sequence"),
    ("1\ta\ta\tX\t_\t_\t0\troot\t_\t_\n2\tb\tb\tX\t_\t_\t7\tdep\t_\t_\n", 2, "HEAD 7 outside the sentence"),
    ("1\ta\ta\tX\t_\t_\tzero\troot\t_\t_\n", 1, "bad HEAD 'zero'"),
    ("x\ta\ta\tX\t_\t_\t0\troot\t_\t_\n", 1, "bad ID 'x'"),
    ("1\ta\ta\tX\t_\t_\t0\troot\t_\t_\n\n\n2-3\tab\t_\t_\t_\t_\t_\t_\t_\t_\n", 4, "does not start at word 1"),
    ("1-3\tab\t_\t_\t_\t_\t_\t_\t_\t_\n1\ta\ta\tX\t_\t_\t0\troot\t_\t_\n", 1, "runs past the last word"),
    ("1\ta\ta\tX\t_\t_\t0\troot\t_\t_\n1.2\te\te\tX\t_\t_\t_\t_\t_\t_\n", 2, "empty node 1.2 out of sequence"),
    ("1\t\ta\tX\t_\t_\t0\troot\t_\t_\n", 1, "empty FORM field"),
    ("# logprob = high\n1\ta\ta\tX\t_\t_\t0\troot\t_\t_\n", 1, "bad logprob"),
    ("1\ta\ta\tX\t_\t_\t0\troot\t_\t_\n# late comment\n", 2, "comment line inside a sentence"),
    ("1\ta\ta\tX\t_\t_\t0\troot\t_\t_\n\n# only a comment\n", 3, "sentence has no words"),
])
def test_malformed_input_names_file_and_line(tmp_path: Path, body: str, line: int, message: str) -> None:
    path = tmp_path / "bad.conllu"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(CoNLLUError) as info:
        read_conllu(path)
    err = info.value
    assert isinstance(err, ValueError)
    assert (err.path, err.line) == (str(path), line)
    assert str(err).startswith(f"{path}:{line}: ") and message in str(err)


def test_missing_file_and_argument_order(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such CoNLL-U file"):
        read_conllu(tmp_path / "absent.conllu")
    with pytest.raises(TypeError, match="sentences come first"):
        write_conllu(tmp_path / "x.conllu", [])  # type: ignore[arg-type]


def test_crlf_and_bom_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "win.conllu"
    path.write_bytes("\ufeff# sent_id = w\r\n1\tHi\thi\tINTJ\t_\t_\t0\troot\t_\t_\r\n\r\n".encode("utf-8"))
    (s,) = read_conllu(path)
    assert s.metadata == {"sent_id": "w"} and s.forms == ["Hi"] and s.words[0].deps == "_"


def test_hand_built_sentence_writes_underscores() -> None:
    s = Sentence([Word(1, "Hi", head=0, deprel="root")], {"sent_id": "h"}, logprob=-1.5)
    assert serialize_sentence(s) == "# sent_id = h\n# logprob = -1.5\n1\tHi\t_\t_\t_\t_\t0\troot\t_\t_\n\n"


CYCLE = ("# sent_id = loop-7\n"
         "1\ta\ta\tX\t_\t_\t0\troot\t_\t_\n"
         "2\tb\tb\tX\t_\t_\t3\tdep\t_\t_\n"
         "3\tc\tc\tX\t_\t_\t4\tdep\t_\t_\n"
         "4\td\td\tX\t_\t_\t2\tdep\t_\t_\n")


def test_head_cycle_is_malformed_and_names_the_sentence(tmp_path: Path) -> None:
    path = tmp_path / "cycle.conllu"
    path.write_text(UD_SAMPLE + CYCLE, encoding="utf-8")
    with pytest.raises(CoNLLUError) as info:
        read_conllu(path)
    first_line = UD_SAMPLE.count("\n") + 3  # the line of word 2, the cycle's first word
    assert (info.value.path, info.value.line) == (str(path), first_line)
    assert "sentence loop-7" in str(info.value) and "HEAD cycle 2 → 3 → 4 → 2" in str(info.value)
    # without a sent_id the sentence is named by its number in the file
    with pytest.raises(CoNLLUError, match=r"sentence 1 \(no sent_id\).*HEAD cycle 2 → 3 → 4 → 2"):
        parse_conllu_string(CYCLE.split("\n", 1)[1])


def test_invalid_utf8_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.conllu"
    good = "1\tHi\thi\tINTJ\t_\t_\t0\troot\t_\t_\n\n"
    path.write_bytes((good * 3).encode() + "1\tcafé\tcafé\tNOUN\t_\t_\t0\troot\t_\t_\n\n".encode("latin-1")
                     + (good * 2).encode())
    with pytest.raises(CoNLLUError) as info:
        read_conllu(path)
    assert (info.value.path, info.value.line) == (str(path), 7)
    assert str(info.value).startswith(f"{path}:7: not UTF-8") and "0xe9" in str(info.value)
    with pytest.raises(CoNLLUError, match=r":7: not UTF-8"):  # the streaming reader too
        list(iter_conllu(path))
