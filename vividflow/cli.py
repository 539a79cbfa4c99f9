"""`vividflow`: one command for everything (`pip install .` puts it on the PATH).

    vividflow plan       chat turns → plans            (python -m agent plan)
    vividflow render     plan + picture → video        (python -m generation render)
    vividflow rerun      a generation again            (python -m generation rerun)
    vividflow queue      queued and running jobs       (python -m generation queue)
    vividflow recipe     the model's resolved recipe   (python -m generation recipe)
    vividflow db …       info / queue / recover / gc   (python -m storage …)
    vividflow config     the effective settings and where each came from
    vividflow studio     start the studio (streamlit run streamlit_app.py)

Each sub-command hands its arguments to the package's own CLI, so `python -m agent plan` and
`vividflow plan` are the same program. Light: nothing heavy is imported before a sub-command runs.
Errors go through one boundary (vividflow.boundary): bad input exits 2 with one line, a bug exits 1 with
one line pointing at the log file (`--debug` or VIVIDFLOW_DEBUG=1 prints its traceback), Ctrl-C exits 130.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path

from vividflow.boundary import run_cli
from vividflow.errors import VividflowError

# sub-command -> (module whose cli(argv) runs it, the sub-command that module expects or None, help)
DELEGATES: dict[str, tuple[str, str | None, str]] = {
    "plan": ("agent.__main__", "plan", "chat turns → MotionPlans (JSON lines); see `vividflow plan --help`"),
    "render": ("generation.__main__", "render", "render a plan from a picture (or words alone) to an MP4"),
    "rerun": ("generation.__main__", "rerun", "render a generation from history again"),
    "queue": ("generation.__main__", "queue", "list queued and running generations"),
    "recipe": ("generation.__main__", "recipe", "the resolved model recipe as JSON (no weights loaded)"),
    "db": ("storage.__main__", None, "the database: info, queue, recover, gc"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vividflow", description="VividFlow: turn a still picture into a short video by chatting about the motion.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Settings come from VIVIDFLOW_* variables, then vividflow.toml, then defaults (`vividflow config`).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_module, _inner, help_text) in DELEGATES.items():
        p = sub.add_parser(name, help=help_text, add_help=False)
        p.add_argument("args", nargs=argparse.REMAINDER)
    p = sub.add_parser("config", help="print the effective settings and where each came from")
    p.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    p = sub.add_parser("studio", help="start the studio in the browser (Streamlit)")
    p.add_argument("args", nargs=argparse.REMAINDER, help="passed on to `streamlit run`")
    return parser


def cmd_config(as_json: bool) -> int:
    from vividflow.settings import load_settings

    settings = load_settings()  # SettingsError: one line, exit 2
    rows = settings.describe()
    if as_json:
        out = {key: {"value": value, "source": source} for key, value, source in rows}
        print(json.dumps({"config_file": str(settings.config_file) if settings.config_file else None,
                          "settings": out}, indent=2, default=str))
        return 0
    print(f"config file: {settings.config_file or 'none (VIVIDFLOW_CONFIG, ./vividflow.toml, <home>/vividflow.toml)'}")
    width = max(len(key) for key, _, _ in rows)
    for key, value, source in rows:
        print(f"{key:<{width}}  {_shown(value):<44}  {source}")
    return 0


def _shown(value: object) -> str:
    if isinstance(value, list):
        return "; ".join(str(v.get("source", v)) if isinstance(v, dict) else str(v) for v in value) or "none"
    return "none" if value is None else str(value)


def cmd_studio(args: Sequence[str]) -> int:
    app = Path(__file__).resolve().parent.parent / "streamlit_app.py"
    if not app.is_file():
        spec = importlib.util.find_spec("streamlit_app")
        if spec is None or spec.origin is None:
            raise VividflowError("streamlit_app.py is not installed")
        app = Path(spec.origin)
    command = studio_command(app, args, Path.cwd(), os.environ)
    return subprocess.call(command, cwd=os.getcwd())


SAFE_DEFAULTS = {"server.address": "127.0.0.1", "client.showErrorDetails": "none"}  # when no config is found


def studio_command(app: Path, args: Sequence[str], cwd: Path, env: Mapping[str, str]) -> list[str]:
    """`streamlit run app args`. Streamlit reads .streamlit/config.toml from the working folder only, so started
    elsewhere the shipped one's settings (127.0.0.1, upload limit, no error details) come as flags, except
    those the arguments or a STREAMLIT_* variable set."""
    flags: list[str] = []
    if not (cwd / ".streamlit" / "config.toml").is_file():
        options = dict(SAFE_DEFAULTS)
        try:
            shipped = tomllib.loads((app.parent / ".streamlit" / "config.toml").read_text())
        except (OSError, tomllib.TOMLDecodeError):
            shipped = {}
        for section, table in shipped.items():
            for name, value in (table.items() if isinstance(table, dict) else ()):
                if isinstance(value, str | int | float | bool):
                    options[f"{section}.{name}"] = value
        for key, value in options.items():
            section, name = key.split(".", 1)
            env_name = f"STREAMLIT_{section}_{re.sub(r'(?<!^)(?=[A-Z])', '_', name)}".upper()
            given = any(a == f"--{key}" or a.startswith(f"--{key}=") for a in args)
            if not given and env_name not in env:
                text = str(value).lower() if isinstance(value, bool) else str(value)
                flags += [f"--{key}", text]
    return [sys.executable, "-m", "streamlit", "run", str(app), *flags, *args]


def main(argv: Sequence[str] | None = None) -> int:
    """`vividflow …` through the error boundary (vividflow.boundary): an exit status."""
    return run_cli(cli, argv, prog="vividflow")


def cli(argv: list[str]) -> int:
    """Parse `argv` and run the command, or hand it to the package's own (unwrapped) CLI."""
    parser = build_parser()
    if argv and argv[0] in DELEGATES:  # hand everything after the sub-command to the package's own CLI
        module, inner, _help = DELEGATES[argv[0]]
        rest = argv[1:]
        inner_argv = [inner, *rest] if inner else rest
        return int(importlib.import_module(module).cli(inner_argv))
    args = parser.parse_args(argv)
    if args.command == "config":
        return cmd_config(args.json)
    if args.command == "studio":
        return cmd_studio(args.args)
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
