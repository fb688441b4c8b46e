"""The documents keep their promises: linked code lines still say what the docs cite, and every
code block marked `python runnable` runs.

A block that the English and Japanese documents share (the same program, comments aside) runs once."""
import ast
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted([ROOT / "README.md", ROOT / "README.ja.md", *(ROOT / "docs").glob("*.md")])
# `code` [nplstm/lstm.py#L97](../nplstm/lstm.py#L97): the cited code must stand on that line
LINK = re.compile(r"`([^`]+)` \[(nplstm/[\w/]+\.py)#L(\d+)\]\(\.\./\2#L\3\)")
RUNNABLE = re.compile(r"```python runnable\n(.*?)```", re.S)
SLOW = {"numpy-or-framework.md-0",                # imports torch
        "why-nan.md-0", "why-nan.md-3"}           # gradcheck of the question's backward; 500 training updates


def code_links() -> list[tuple[str, str, str, str]]:
    """(document, code, path, line) for every link to a line of nplstm/ in the documents."""
    return [(doc.name, *link) for doc in DOCS for link in LINK.findall(doc.read_text(encoding="utf-8"))]


def test_the_documents_link_to_code_lines():
    per_doc = Counter(doc for doc, *_ in code_links())
    assert per_doc["math.md"] >= 20
    assert per_doc["why-nan.md"] + per_doc["why-nan.ja.md"] >= 12


def test_the_japanese_readme_has_what_the_english_one_has():
    """README.ja.md is a translation of README.md: the same sections, table rows and links (README.md and
    README.ja.md point at each other)."""
    def outline(name):
        text = (ROOT / name).read_text(encoding="utf-8")
        links = set(re.findall(r"\]\(([^)#]+)[^)]*\)", text)) - {"README.md", "README.ja.md"}
        rows = sum(line.startswith("| ") for line in text.splitlines())
        return text.count("\n## "), rows, links
    (en_sections, en_rows, en_links), (ja_sections, ja_rows, ja_links) = outline("README.md"), outline("README.ja.md")
    assert (ja_sections, ja_rows) == (en_sections, en_rows)
    assert ja_links == en_links, en_links ^ ja_links


def test_the_japanese_math_links_the_same_code_lines_as_the_english():
    """docs/math.ja.md translates docs/math.md: every equation keeps its link, code and line alike."""
    links = {doc: Counter(tuple(link) for d, *link in code_links() if d == doc) for doc in ("math.md", "math.ja.md")}
    assert links["math.ja.md"] == links["math.md"]


@pytest.mark.parametrize("doc,code,path,line", [pytest.param(*link, id=f"{link[0]}-{link[2]}#L{link[3]}")
                                                for link in code_links()])
def test_code_link_points_at_the_cited_code(doc, code, path, line):
    lines = (ROOT / path).read_text(encoding="utf-8").splitlines()
    assert int(line) <= len(lines), f"{doc}: {path} has {len(lines)} lines, the link says L{line}"
    assert code in lines[int(line) - 1], \
        f"{doc}: {path}:{line} is now {lines[int(line) - 1].strip()!r}, not {code!r}"


def runnable_blocks() -> dict[str, list[str]]:
    """Every distinct program among the runnable blocks, as {code: ["why-nan.md-0", "why-nan.ja.md-0", ...]}."""
    programs, where = {}, {}                         # ast.dump(...) -> code; code -> where it stands
    for doc in DOCS:
        for k, block in enumerate(RUNNABLE.findall(doc.read_text(encoding="utf-8"))):
            code = programs.setdefault(ast.dump(ast.parse(block)), block)   # comments and spacing aside
            where.setdefault(code, []).append(f"{doc.name}-{k}")
    return where


def runnable(code: str, where: list[str]):
    return pytest.param(code, where, id="+".join(where), marks=pytest.mark.slow if SLOW & set(where) else ())


def test_there_are_runnable_blocks():
    places = [place for found in runnable_blocks().values() for place in found]
    assert any(place.startswith("README.md-") for place in places)
    assert sum(place.startswith(("why-nan.md-", "why-nan.ja.md-")) for place in places) >= 8
    assert SLOW <= set(places), SLOW - set(places)


@pytest.mark.parametrize("code,where", [runnable(code, where) for code, where in runnable_blocks().items()])
def test_runnable_block_runs(code, where, request):
    if "import torch" in code:
        request.getfixturevalue("torch")       # skipped without torch locally, required in CI
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{' and '.join(where)} failed:\n{result.stderr[-2000:]}"
