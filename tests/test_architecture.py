"""The house rules, checked on the source: floors, no import cycles, settings read in one place, light imports,
modules of one concern. Static (AST) except for the one subprocess that imports every light module."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("vividflow", "storage", "agent", "generation", "ui", "pages", "devtools")
TOP_MODULES = ("streamlit_app",)
HEAVY = ("torch", "diffusers", "transformers", "torchao", "peft", "accelerate", "ray", "streamlit")
MAX_LINES = 600
SETTINGS_MODULE = "vividflow.settings"
# settings, errors, the CLI boundary, bounded input and logging: beside the ground floor, importable by every floor
BASEMENT = (SETTINGS_MODULE, "vividflow.sections", "vividflow.values", "vividflow.errors", "vividflow.logs",
            "vividflow.boundary", "vividflow.inputs")


def floor(module: str) -> int:
    """0 settings · 1 storage · 2 agent · 3 generation · 4 the top (pages, CLIs, studio logic, dev tools)."""
    if module in BASEMENT:
        return 0
    if module.endswith(".__main__") or module.startswith(("ui", "pages", "streamlit_app", "vividflow", "devtools")):
        return 4
    return {"storage": 1, "agent": 2, "generation": 3}[module.split(".")[0]]


def product_files() -> dict[str, Path]:
    files = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            files[".".join(parts)] = path
    for name in TOP_MODULES:
        files[name] = ROOT / f"{name}.py"
    return files


def imports_of(module: str, path: Path, known: set[str]) -> set[str]:
    """Every module of ours that `module` imports, at module level or inside functions."""
    found: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from a.b import c`: c is a module of ours or a name defined in a.b
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module" and node.args:
            if isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                names = [node.args[0].value]
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            # a module's own parent packages run first anyway: not an edge of the graph
            if name and name != module and not module.startswith(name + "."):
                found.add(name)
            # importing a.b.c runs the sub-package a.b's __init__ first (an eager one can close a cycle)
            parent = name.rpartition(".")[0]
            while parent.count(".") >= 1:
                if parent in known and not module.startswith(parent + ".") and parent != module:
                    found.add(parent)
                parent = parent.rpartition(".")[0]
    return found


def import_graph() -> dict[str, set[str]]:
    files = product_files()
    known = set(files)
    return {module: imports_of(module, path, known) for module, path in files.items()}


def test_no_import_goes_up_a_floor():
    graph = import_graph()
    upward = sorted(f"{m} (floor {floor(m)}) imports {d} (floor {floor(d)})"
                    for m, deps in graph.items() for d in deps if floor(d) > floor(m))
    assert not upward, "imports that go up a floor:\n" + "\n".join(upward)


def test_no_import_cycles():
    graph = import_graph()
    cycles = [sorted(c) for c in _strongly_connected(graph) if len(c) > 1]
    assert not cycles, f"import cycles: {cycles}"


def _strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            out.append(component)

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_a_cycle():
    assert [sorted(c) for c in _strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) if len(c) > 1] \
        == [["a", "b", "c"]]


def test_vividflow_variables_are_read_only_in_the_settings_module():
    offenders = []
    for module, path in product_files().items():
        if module == SETTINGS_MODULE:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            key = _environment_read(node)
            if key is not None and (not isinstance(key, ast.Constant) or str(key.value).startswith("VIVIDFLOW_")):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, f"environment read outside {SETTINGS_MODULE} (use vividflow.settings): {offenders}"


def _environment_read(node: ast.AST) -> ast.expr | None:
    """The key of `os.environ[...]`, `os.environ.get(...)`, `os.getenv(...)` (reads only), else None."""
    if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and _is_environ(node.value):
        return node.slice
    if isinstance(node, ast.Call) and node.args:
        f = node.func
        if isinstance(f, ast.Attribute) and f.attr in ("get", "pop") and _is_environ(f.value):
            return node.args[0]
        if isinstance(f, ast.Attribute) and f.attr == "getenv":
            return node.args[0]
    return None


def _is_environ(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "environ" or isinstance(node, ast.Name) and node.id == "environ"


def test_modules_stay_under_600_lines():
    long = {m: n for m, p in product_files().items() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines (split them by concern): {long}"


LIGHT_STAGES = {
    # stage: (code run in one shared interpreter, libraries it must not bring in)
    "agent CLI, 3 turns": (
        "import io, json; sys.stdin = io.StringIO(json.dumps({'turns': ['a dog', 'slower tail', 'new seed']}))\n"
        "from agent.__main__ import main\n"
        "with contextlib.redirect_stdout(io.StringIO()): assert main(['plan', '--rng-seed', '1']) == 0\n",
        ("torch", "transformers", "diffusers", "llguidance", "sqlalchemy")),
    "agent.llm": ("import agent.llm, agent.llm.grammar\n", ("torch", "transformers", "llguidance")),
    "storage, a store opened": (
        "import storage, storage.__main__, storage.leases\n"
        "s = storage.open_store(home=os.path.join(TMP, 'h')); s.info(); s.close()\n",
        ("torch", "diffusers", "transformers", "torchao", "peft", "skimage", "streamlit", "ray")),
    "generation, backend choice": (
        "import generation, generation.jobs, generation.preview, generation.choose, generation.export\n"
        "import generation.image, generation.__main__, generation.specs, generation.workers, generation.ray_workers\n"
        "from generation.choose import default_backend_name\n"
        "from generation.config import GenerationConfig\n"
        "assert default_backend_name(GenerationConfig(model='/nonexistent'), requested='auto') == 'preview'\n",
        ("torch", "diffusers", "transformers", "skimage", "scipy", "ray")),
    "Wan modules, tiny builders": (
        "import generation.config, generation.wan, generation.wan_load, generation.nag, devtools.tiny_wan\n",
        ("torch", "diffusers", "transformers", "torchao", "peft")),
    "settings, CLI, studio logic": (
        "import vividflow.settings, vividflow.cli, vividflow.studio\n", ("torch", "diffusers", "transformers")),
}


def test_light_modules_import_no_heavy_library(tmp_path):
    """One interpreter runs each stage in turn (the agent CLI, the packages, a store, the backend choice) and
    reports which heavy libraries each stage newly brought in: none may."""
    code = ["import contextlib, json, os, sys", f"TMP = {str(tmp_path)!r}", "report = {}"]
    for stage, (body, banned) in LIGHT_STAGES.items():
        code += ["before = set(sys.modules)", body.rstrip("\n"),
                 f"report[{stage!r}] = sorted({{m.split('.')[0] for m in set(sys.modules) - before}} & set({banned!r}))"]
    code.append("print(json.dumps(report))")
    out = subprocess.run([sys.executable, "-c", "\n".join(code)], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, env={**os.environ, "VIVIDFLOW_HOME": str(tmp_path / "home")})
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report == {stage: [] for stage in LIGHT_STAGES}, f"heavy libraries imported at module level: {report}"


def test_bench_and_devtools_do_not_import_tests():
    offenders = []
    for folder in ("bench", "devtools"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                    [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] == "tests"]
    assert not offenders, f"bench/ and devtools/ must not import tests/ (move the shared piece to devtools/): {offenders}"


def test_library_modules_neither_print_nor_configure_logging():
    """agent/, generation/, storage/ log through logging.getLogger(__name__); only the entry points (`__main__`,
    vividflow.logs via the boundary, the studio) print or configure logging."""
    offenders = []
    for module, path in product_files().items():
        if module.split(".")[0] not in ("agent", "generation", "storage") or module.endswith("__main__"):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call):
                continue
            f = node.func
            if isinstance(f, ast.Name) and f.id == "print" or \
                    isinstance(f, ast.Attribute) and f.attr in ("basicConfig", "dictConfig", "fileConfig"):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, f"library modules that print or configure logging (log instead): {offenders}"
