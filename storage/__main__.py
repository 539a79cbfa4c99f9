"""``python -m storage info [--json] [--home DIR] [--url URL]``: where the database is, its schema
version and how many rows it holds.

``python -m storage queue [--json]``: every person's queued and running jobs, as an admin sees them.

``python -m storage recover [--all]``: mark queued/running generations whose process is gone as failed
("interrupted"); ``--all`` marks every one of them, for jobs left by a machine or container that no
longer exists (their owner's host cannot be checked) — run it only when no VividFlow process is running."""

from __future__ import annotations

import argparse
import json
import sys

from storage.store import DB_FILENAME, DB_URL_ENV, HOME_ENV, open_store
from vividflow.boundary import run_cli
from vividflow.sections import DEFAULT_HOME

HOME_HELP = f"data folder (default ${HOME_ENV} or {DEFAULT_HOME})"


def _print_info(args: argparse.Namespace) -> int:
    with open_store(url=args.url, home=args.home) as store:
        info = store.info()
    if args.json:
        print(json.dumps(info.to_dict(), indent=2))
        return 0
    print(f"database:       {info.url}")
    if info.database_path is not None:
        print(f"database file:  {info.database_path}")
    print(f"media folder:   {info.media_root}")
    print(f"schema version: {info.schema_version} (latest known: {info.latest_version})")
    print("rows:")
    for table, n in info.counts.items():
        print(f"  {table:<15} {n}")
    print("generations by status:")
    for status, n in info.generations_by_status.items():
        print(f"  {status:<15} {n}")
    return 0


def _print_queue(args: argparse.Namespace) -> int:
    with open_store(url=args.url, home=args.home) as store:
        jobs = store.queue_overview()
        per_user = store.queue_by_user()
    if args.json:
        rows = [{"id": g.id, "user": g.user_id, "status": g.status, "backend": g.backend,
                 "created_at": g.created_at.isoformat(), "stage": g.progress.stage if g.progress else None,
                 "step": g.progress.step if g.progress else None, "total": g.progress.total if g.progress else None,
                 "worker": g.owner} for g in jobs]
        users = [{"user": u.user_id, "queued": u.queued, "running": u.running} for u in per_user]
        print(json.dumps({"jobs": rows, "users": users}, indent=2))
        return 0
    if not jobs:
        print("the queue is empty: nothing queued or running")
        return 0
    print(f"{'id':>6}  {'status':<8} {'user':<24} {'backend':<8} {'queued at (UTC)':<19}  progress")
    for g in jobs:
        progress = ""
        if g.progress is not None:
            steps = f" {g.progress.step}/{g.progress.total}" if g.progress.total else ""
            progress = f"{g.progress.stage}{steps}"
        print(f"{g.id:>6}  {g.status:<8} {g.user_id[:24]:<24} {g.backend[:8]:<8} "
              f"{g.created_at:%Y-%m-%d %H:%M:%S}  {progress}")
    print("per person: " + ", ".join(f"{u.user_id} {u.queued} queued, {u.running} running" for u in per_user))
    return 0


def _recover(args: argparse.Namespace) -> int:
    from storage.owner import owner_alive

    with open_store(url=args.url, home=args.home) as store:
        ids = store.mark_interrupted(is_alive=None if args.all else owner_alive)
    if ids:
        print(f"marked {len(ids)} generation(s) as interrupted: {', '.join(f'#{i}' for i in ids)}")
        print("run one again with `python -m generation rerun ID`, or Retry in the app")
    else:
        print("nothing to recover")
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m storage …` through the error boundary (vividflow.boundary): an exit status."""
    return run_cli(cli, argv, prog="python -m storage")


def cli(argv: list[str]) -> int:
    """Parse `argv` and run the command; expected errors (StorageError, SettingsError) are raised, not printed."""
    parser = argparse.ArgumentParser(prog="python -m storage", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_info = sub.add_parser("info", help="database location, schema version and row counts")
    p_info.add_argument("--json", action="store_true", help="print JSON instead of text")
    p_info.add_argument("--home", default=None, help=HOME_HELP)
    p_info.add_argument("--url", default=None,
                        help=f"SQLAlchemy URL (default ${DB_URL_ENV} or the home's {DB_FILENAME})")
    p_queue = sub.add_parser("queue", help="every person's queued and running jobs (the admin's view)")
    p_queue.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p_queue.add_argument("--home", default=None, help=HOME_HELP)
    p_queue.add_argument("--url", default=None, help=f"SQLAlchemy URL (default ${DB_URL_ENV})")
    p_rec = sub.add_parser("recover", help="mark jobs whose process is gone as interrupted")
    p_rec.add_argument("--all", action="store_true",
                       help="every queued/running job, also those owned by other hosts (no VividFlow may be running)")
    p_rec.add_argument("--home", default=None, help=HOME_HELP)
    p_rec.add_argument("--url", default=None, help=f"SQLAlchemy URL (default ${DB_URL_ENV})")
    args = parser.parse_args(argv)
    if args.command == "info":
        return _print_info(args)
    if args.command == "queue":
        return _print_queue(args)
    if args.command == "recover":
        return _recover(args)
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
