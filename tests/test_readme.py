"""The README's Python examples run as written (each is marked `<!-- readme-example: NAME -->`)."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
EXAMPLE = re.compile(r"<!-- readme-example: (\S+) -->\s*```python\n(.*?)```", re.S)


def examples() -> list[tuple[str, str]]:
    return EXAMPLE.findall(README.read_text())


def test_readme_has_examples():
    assert len(examples()) >= 1


@pytest.mark.parametrize("name, code", examples(), ids=[n for n, _ in examples()])
def test_readme_example_runs(name, code, capsys):
    exec(compile(code, f"README:{name}", "exec"), {"__name__": f"readme_{name}"})
    assert capsys.readouterr().out.strip(), "the example prints its result"
