"""The layout keeps its promises: no import circle, no file that holds two concerns' worth of lines,
and `import nplstm` loads the library level alone (the application is in sub-packages)."""
import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "nplstm"
MAX_LINES = 400


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports, anywhere in its body (lazy imports count too)."""
    mods = modules()
    graph = {m: set() for m in mods}
    for m, path in mods.items():
        package = m if path.name == "__init__.py" else m.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                named = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in mods]
                graph[m].update(named or ([target] if target in mods else []))
            elif isinstance(node, ast.Import):
                graph[m].update(a.name for a in node.names if a.name in mods)
        graph[m].discard(m)
    return graph


# The one lazy edge from the library up into the application: Model.fit hands over to the trainer at call
# time, as keras.Model.fit hands over to its trainer. Without it there is no circle, and `import nplstm`
# still loads no application module (the test below).
HANDOVERS = {("nplstm.layers", "nplstm.training.fit")}


def test_the_package_has_no_import_circle():
    graph, state, path = import_graph(), {}, []
    for a, b in HANDOVERS:
        assert b in graph[a], f"{a} no longer imports {b}: drop it from HANDOVERS"
        graph[a].discard(b)

    def visit(m):
        state[m] = "open"
        path.append(m)
        for n in sorted(graph[m]):
            assert state.get(n) != "open", "import circle: " + " -> ".join(path[path.index(n):] + [n])
            if n not in state:
                visit(n)
        path.pop()
        state[m] = "done"
    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_the_graph_sees_lazy_imports():
    """The check above could pass by missing edges: the anomaly hooks import the autopsy lazily."""
    assert "nplstm.diagnostics.autopsy" in import_graph()["nplstm.anomaly"]


def test_no_file_is_over_the_line_limit():
    long = {str(p.relative_to(ROOT)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"files over {MAX_LINES} lines (two concerns in one?): {long}"


def test_import_nplstm_loads_the_library_level_only():
    code = ("import sys, nplstm; print(sorted(m for m in sys.modules if m.startswith('nplstm.') "
            "and m.count('.') > 1 or m.split('.')[1:2] in (['training'], ['diagnostics'], ['tasks'], "
            "['interop'], ['cli'], ['science'])))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", f"import nplstm loaded application modules: {out}"


def test_every_task_meets_the_one_task_contract():
    from nplstm.tasks import TASKS, make_task
    from nplstm.tasks.base import TaskLike
    for name in TASKS:
        if name not in ("charlm", "series", "sequences"):   # these read a file; their classes are checked below
            assert isinstance(make_task(name), TaskLike), name
    data = Path(__file__).parent / "data" / "sunspots.csv"
    assert isinstance(make_task("series", path=str(data), window=20), TaskLike)
    assert all(hasattr(cls, m) for cls in TASKS.values() for m in ("batch", "test_set", "evaluate"))
