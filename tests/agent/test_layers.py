"""agent/ has no import cycles, not even through imports inside functions, and stands only on storage."""

from __future__ import annotations

import ast
from pathlib import Path

AGENT = Path(__file__).resolve().parents[2] / "agent"


def module_name(path: Path) -> str:
    parts = path.relative_to(AGENT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, modules: set[str]) -> set[str]:
    """The modules `path` imports anywhere (functions included), `if TYPE_CHECKING:` blocks left out."""
    tree = ast.parse(path.read_text())
    type_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"
                 for stmt in node.body for n in ast.walk(stmt)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            # `from agent.rules import patterns` imports the module agent.rules.patterns
            found |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                      for a in node.names}
    return found


def graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for p in AGENT.rglob("*.py")}
    return {name: imports(path, set(paths)) for name, path in paths.items()}


def test_no_import_cycles_inside_agent():
    modules = graph()
    edges = {m: {i for i in found if i in modules and i != m} for m, found in modules.items()}
    cycles = []

    def visit(module: str, stack: list[str]) -> None:
        for nxt in sorted(edges[module]):
            if nxt in stack:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in done:
                visit(nxt, stack + [nxt])
        done.add(module)

    done: set[str] = set()
    for module in sorted(edges):
        if module not in done:
            visit(module, [module])
    assert not cycles, "\n".join(" → ".join(c) for c in cycles)


def test_agent_stands_only_on_storage():
    above = {m: sorted(i for i in found if i.split(".")[0] in ("generation", "ui", "streamlit_app", "pages"))
             for m, found in graph().items()}
    assert not {m: i for m, i in above.items() if i}
