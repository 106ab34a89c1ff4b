"""The code's layout rules (ARCHITECTURE.md, "Inside flows/"), checked the way a reviewer would."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_sql_lives_in_archive_db_not_in_flows():
    """Queries and writes are archive_db's: flows/ calls them and builds no SQL of its own."""
    offenders = [
        f"{p.relative_to(ROOT)}:{n}"
        for p in sorted((ROOT / "flows").rglob("*.py"))
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if re.search(r"\bselect\(|from sqlalchemy import .*\b(select|insert|update|delete)\b", line)
    ]
    assert sorted((ROOT / "flows").rglob("*.py")), "flows/ not found"
    assert offenders == []


def _project_imports() -> dict[str, set[str]]:
    """module -> the project modules it imports (at the top or inside a function)."""
    import ast

    modules = {}
    for package in ("restoration", "archive_db", "flows"):
        for p in (ROOT / package).rglob("*.py"):
            if "migrations" in p.parts:
                continue
            parts = list(p.relative_to(ROOT).with_suffix("").parts)
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in modules}
    for m, p in modules.items():
        for node in ast.walk(ast.parse(p.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [f"{node.module}.{a.name}" for a in node.names]
            for target in filter(None, map(resolve, names)):
                if target != m and not m.startswith(target + "."):  # a package's own __init__ is not a circle
                    graph[m].add(target)
    return graph


def test_no_import_circles_in_the_project():
    """Imports run one way (ARCHITECTURE.md): no module reaches itself again through its imports,
    lazy imports inside functions included."""
    graph = _project_imports()
    assert len(graph) > 50 and graph["flows.restore"], "the project's modules were not found"
    circles, state = [], {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = "open"
        for n in sorted(graph[m]):
            if state.get(n) == "open":
                circles.append(" -> ".join(path[path.index(n) :] + [n]))
            elif n not in state:
                visit(n, [*path, n])
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert circles == []


def test_the_shared_derivative_engine_never_branches_on_an_operation():
    """A new operation is an entry in flows/derive/operations.py, not an edit of the shared code."""
    shared = ["dispatch.py", "worker.py", "writer.py", "processors.py", "inputs.py"]
    found = [
        f"{name}:{n}"
        for name in shared
        for n, line in enumerate((ROOT / "flows" / "derive" / name).read_text().splitlines(), 1)
        if re.search(r"operation\s*[!=]=|[!=]=\s*[\"'](restore|style)[\"']|\bin \([\"'](restore|style)", line)
    ]
    assert found == []
