"""Every third-party import of the code is installed (no silent skips)."""

import ast
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _third_party_imports() -> set[str]:
    ours = {p.name for p in ROOT.iterdir() if p.is_dir()} | {p.stem for p in ROOT.glob("*.py")}
    found = set()
    for path in ROOT.glob("**/*.py"):
        if ".venv" in path.parts or "artifacts" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top not in ours and top not in sys.stdlib_module_names:
                    found.add(top)
    return found


# Modules that only exist on a GPU machine or are optional extras, imported behind guards.
OPTIONAL = {"xgrammar", "outlines", "outlines_core", "selenium"}


def test_every_imported_package_is_installed():
    missing = sorted(m for m in _third_party_imports() - OPTIONAL if importlib.util.find_spec(m) is None)
    assert not missing, f"imported by the code but not installed (add to requirements.txt): {missing}"
