"""The documents keep their promises: linked code lines still say what the docs cite, and every
code block marked `python runnable` runs."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted([ROOT / "README.md", ROOT / "README.ja.md", *(ROOT / "docs").glob("*.md")])
# `code` [nplstm/lstm.py#L97](../nplstm/lstm.py#L97): the cited code must stand on that line
LINK = re.compile(r"`([^`]+)` \[(nplstm/[\w/]+\.py)#L(\d+)\]\(\.\./\2#L\3\)")
RUNNABLE = re.compile(r"```python runnable\n(.*?)```", re.S)


def math_links():
    text = (ROOT / "docs" / "math.md").read_text(encoding="utf-8")
    return LINK.findall(text)


def test_math_links_exist():
    assert len(math_links()) >= 20


@pytest.mark.parametrize("code,path,line", math_links(), ids=lambda v: str(v)[:40])
def test_math_link_points_at_the_cited_code(code, path, line):
    lines = (ROOT / path).read_text(encoding="utf-8").splitlines()
    assert int(line) <= len(lines), f"{path} has {len(lines)} lines, the link says L{line}"
    assert code in lines[int(line) - 1], f"{path}:{line} is now {lines[int(line) - 1].strip()!r}, not {code!r}"


def runnable_blocks():
    return [(doc.name, k, block) for doc in DOCS for k, block in enumerate(RUNNABLE.findall(doc.read_text("utf-8")))]


def test_there_are_runnable_blocks():
    assert any(name == "README.md" for name, _, _ in runnable_blocks())


@pytest.mark.parametrize("doc,k,code", runnable_blocks(), ids=lambda v: str(v)[:30])
def test_runnable_block_runs(doc, k, code, request):
    if "import torch" in code:
        request.getfixturevalue("torch")       # skipped without torch locally, required in CI
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{doc} block {k} failed:\n{result.stderr[-2000:]}"
