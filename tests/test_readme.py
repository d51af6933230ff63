"""The README's Python examples run as written (each is marked `<!-- readme-example: NAME -->`),
and no link in the README or the docs points at a file that does not exist."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
EXAMPLE = re.compile(r"<!-- readme-example: (\S+) -->\s*```python\n(.*?)```", re.S)
DOCS = [README, *sorted((ROOT / "docs").glob("*.md")), ROOT / "bench" / "RESULTS.md"]
# [text](target) and ![alt](target), with an optional "title"
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
# a repository document named in running text or code, e.g. `bench/RESULTS.md`
DOC_PATH = re.compile(r"(?<![\w./-])((?:docs|bench)/[\w./-]*\.md)\b")
OUTSIDE = "../shared/"  # the shared data directory next to the repository (README), not part of it


def examples() -> list[tuple[str, str]]:
    return EXAMPLE.findall(README.read_text())


def test_readme_has_examples():
    assert len(examples()) >= 1


@pytest.mark.parametrize("name, code", examples(), ids=[n for n, _ in examples()])
def test_readme_example_runs(name, code, capsys):
    exec(compile(code, f"README:{name}", "exec"), {"__name__": f"readme_{name}"})
    assert capsys.readouterr().out.strip(), "the example prints its result"


def dead_links(doc: Path, root: Path = ROOT) -> list[str]:
    """Relative link targets (resolved from the document's folder) and repository document paths
    (resolved from the root) that name no existing file; web links and anchors are not checked."""
    text = doc.read_text(encoding="utf-8")
    dead = []
    for target in LINK.findall(text):
        if re.match(r"[a-zA-Z][\w+.-]*:", target) or target.startswith(("#", OUTSIDE)):
            continue
        if not (doc.parent / target.split("#", 1)[0]).exists():
            dead.append(target)
    dead += [path for path in DOC_PATH.findall(text) if not (root / path).exists()]
    return list(dict.fromkeys(dead))


def test_dead_link_checker_finds_dead_links(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "here.md").write_text("x")
    doc = tmp_path / "README.md"
    doc.write_text("[ok](docs/here.md#part) [web](https://example.org/x.md) [anchor](#top)\n"
                   "[gone](docs/gone.md) ![pic](docs/pic.png) see `bench/RESULTS_x.md` and docs/here.md\n"
                   "data in [shared](../shared/data/)\n")
    assert dead_links(doc, tmp_path) == ["docs/gone.md", "docs/pic.png", "bench/RESULTS_x.md"]


@pytest.mark.parametrize("doc", DOCS, ids=[str(d.relative_to(ROOT)) for d in DOCS])
def test_docs_have_no_dead_links(doc):
    assert dead_links(doc) == [], f"{doc.relative_to(ROOT)} links to files that do not exist"
