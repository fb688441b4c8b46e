"""The notebooks run from top to bottom, and each English notebook has a Japanese twin with the same code
(the two differ only in their markdown, comments and docstrings).

Every notebooks/*.ipynb is executed with nbclient in a fresh "python3" kernel (the kernelspec ipykernel installs
into the environment), from notebooks/, as Jupyter runs a notebook; an error in any cell fails the test. The
notebooks' own `assert` lines check the claims their text makes. Saved notebooks carry no outputs: CI executes
them, and the repository stays light.
"""
import io
import sys
import tokenize
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
ALL = sorted(NOTEBOOKS.glob("*.ipynb"))
ENGLISH = sorted(NOTEBOOKS.glob("*.en.ipynb"))
CELL_TIMEOUT = 300                          # seconds per cell; a whole notebook takes about a minute


def read(path: Path):
    return nbformat.read(path, as_version=4)


def code_cells(path: Path) -> list[str]:
    return [cell.source for cell in read(path).cells if cell.cell_type == "code"]


def without_comments(source: str) -> list[tuple[int, str]]:
    """A cell's tokens without its comments, docstrings and blank lines: the code, whatever language they are in.

    A docstring here is a string standing alone as a statement (documentation, like a comment); every other
    string, a printed message or a plot label, is code and must be the same in both languages.
    """
    tokens = [t for t in tokenize.generate_tokens(io.StringIO(source).readline)
              if t.type not in (tokenize.COMMENT, tokenize.NL)]
    starts = (tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT)
    kept = []
    for k, t in enumerate(tokens):
        before = tokens[k - 1].type if k else tokenize.NEWLINE
        after = tokens[k + 1].type if k + 1 < len(tokens) else tokenize.ENDMARKER
        if not (t.type == tokenize.STRING and before in starts and after in (tokenize.NEWLINE, tokenize.ENDMARKER)):
            kept.append((t.type, t.string))
    return kept


def test_the_notebooks_are_found():
    assert ENGLISH, f"no *.en.ipynb in {NOTEBOOKS}"
    assert {p.name.split(".")[-2] for p in ALL} == {"en", "ja"}, [p.name for p in ALL]


@pytest.mark.parametrize("path", ENGLISH, ids=lambda p: p.name)
def test_each_english_notebook_has_a_japanese_twin_with_the_same_code(path):
    twin = path.with_name(path.name.replace(".en.ipynb", ".ja.ipynb"))
    assert twin.exists(), f"{path.name} has no Japanese twin {twin.name}"
    en, ja = code_cells(path), code_cells(twin)
    assert len(en) == len(ja), f"{path.name}: {len(en)} code cells, {twin.name}: {len(ja)}"
    for k, (a, b) in enumerate(zip(en, ja)):
        a, b = without_comments(a), without_comments(b)
        first = next((f"{x[1]!r} against {y[1]!r}" for x, y in zip(a, b) if x != y), "one cell is longer")
        assert a == b, f"code cell {k} differs beyond comments and docstrings: {first}"


def test_each_japanese_notebook_has_an_english_twin():
    for path in NOTEBOOKS.glob("*.ja.ipynb"):
        assert path.with_name(path.name.replace(".ja.ipynb", ".en.ipynb")).exists(), path.name


def test_the_comparison_ignores_only_comments_and_docstrings():
    assert without_comments("x = 1  # one\n\n# a note\n") == without_comments("x = 1  # 一つ\n")
    assert without_comments('def f():\n    """One."""\n    return 1\n') == \
        without_comments('def f():\n    """一つ。"""\n    return 1\n')
    assert without_comments("x = 1\n") != without_comments("x = 2\n")
    assert without_comments('print("a")\n') != without_comments('print("あ")\n')
    assert without_comments('x = "a"\n') != without_comments('x = "あ"\n')


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_saved_notebooks_carry_no_outputs(path):
    dirty = [k for k, cell in enumerate(read(path).cells)
             if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)]
    assert not dirty, f"{path.name}: code cells {dirty} were saved with outputs; clear them before committing"


@pytest.mark.slow
@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_notebook_runs(path, monkeypatch):
    # the models are small: BLAS threads would only contend with each other on a 2-core machine
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    nb = read(path)
    # first, that the kernel is this environment's Python and imports this checkout's nplstm
    nb.cells.insert(0, new_code_cell(
        "import sys, pathlib, nplstm\n"
        f"assert sys.prefix == {sys.prefix!r}, sys.prefix\n"
        f"assert pathlib.Path(nplstm.__file__).resolve().parents[1] == pathlib.Path({str(ROOT)!r}), nplstm.__file__"))
    NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
