"""`pip install .` gives the product packages and a working `vividflow` command.

The wheel is built and installed (without dependencies: they are this venv's) into a folder outside the
checkout, and the console script's entry point runs from there. The full `pip install .` in a fresh venv
(which also installs the dependencies, ~2 minutes) is the README's check, not a test."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_installs_the_product_and_the_vividflow_command(tmp_path):
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"),
         str(ROOT)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr
    wheel = next((tmp_path / "dist").glob("vividflow-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"agent", "generation", "storage", "ui", "vividflow", "pages", "streamlit_app.py"}
    assert "agent/templates.toml" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "vividflow = vividflow.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()

    target = tmp_path / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                              str(wheel)], capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr
    run = subprocess.run(
        [sys.executable, "-c", "import sys; from vividflow.cli import main; sys.exit(main(['--help']))"],
        cwd=tmp_path, env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
        timeout=60)
    assert run.returncode == 0, run.stderr
    assert "usage: vividflow" in run.stdout and all(c in run.stdout for c in ("plan", "render", "config", "studio"))
    plan = subprocess.run([sys.executable, "-m", "vividflow", "plan", "--rng-seed", "1"],
                          input='{"turns": ["slow zoom in"], "template": null}', cwd=tmp_path,
                          env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
                          timeout=60)
    assert plan.returncode == 0, plan.stderr
    assert '"zoom_in"' in plan.stdout
