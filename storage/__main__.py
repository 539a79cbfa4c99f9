"""``python -m storage info [--json] [--home DIR] [--url URL]``: where the database is, its schema
version and how many rows it holds.

``python -m storage queue [--json]``: every person's queued and running jobs, as an admin sees them.

``python -m storage recover [--all]``: mark queued/running generations whose holder stopped renewing its
lease as failed ("interrupted"), whatever host or container it ran in, and remove the staging folders and
temporary files nobody is writing; ``--all`` marks every queued/running one — run it only when no
VividFlow process is running.

``python -m storage gc [--yes] [--min-age SECONDS]``: list the media files no record references (a dry
run); ``--yes`` deletes them. Files younger than ``--min-age`` (default 600 s) are left alone: a writer may
be about to record them.

Errors (a busy, damaged, unreachable or newer database, a full disk, a read-only folder, a bad setting)
print one line on stderr and exit 2."""

from __future__ import annotations

import argparse
import json
import sys

from storage.errors import StorageError
from storage.store import DB_FILENAME, DB_URL_ENV, HOME_ENV, open_store
from storage.sweep import DEFAULT_GC_MIN_AGE_S
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
    with open_store(url=args.url, home=args.home) as store:
        if args.all:
            ids, requeued, removed = store.mark_interrupted(), [], store.sweep_temp()
        else:
            done = store.recover()
            ids, requeued, removed = done.interrupted, done.requeued, done.removed
    if ids:
        print(f"marked {len(ids)} generation(s) as interrupted: {', '.join(f'#{i}' for i in ids)}")
        print("run one again with `python -m generation rerun ID`, or Retry in the app")
    if requeued:
        print(f"put {len(requeued)} generation(s) back in the shared queue: {', '.join(f'#{i}' for i in requeued)}")
    if removed:
        print(f"removed {len(removed)} half-written temporary file(s) or folder(s)")
    if not (ids or requeued or removed):
        print("nothing to recover")
    return 0


def _gc(args: argparse.Namespace) -> int:
    if args.min_age < 0:
        raise StorageError(f"--min-age must be 0 or more seconds, got {args.min_age:g}")
    with open_store(url=args.url, home=args.home) as store:
        found = store.gc(delete=args.yes, min_age_s=args.min_age)
        root = store.media.root
    for path in found:
        print(f"{'deleted' if args.yes else 'would delete'} {path}")
    if not found:
        print(f"no unreferenced media under {root}")
    elif not args.yes:
        print(f"{len(found)} file(s) no record references; run again with --yes to delete them")
    else:
        print(f"deleted {len(found)} file(s)")
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m storage …` through the error boundary (vividflow.boundary): an exit status; a StorageError
    is one line on stderr and exit 2."""
    return run_cli(cli, argv, prog="python -m storage")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m storage", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    url_help = f"SQLAlchemy URL (default ${DB_URL_ENV} or the home's {DB_FILENAME})"
    p_info = sub.add_parser("info", help="database location, schema version and row counts")
    p_info.add_argument("--json", action="store_true", help="print JSON instead of text")
    p_queue = sub.add_parser("queue", help="every person's queued and running jobs (the admin's view)")
    p_queue.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p_rec = sub.add_parser("recover", help="mark jobs whose lease ran out as interrupted; remove half-written files")
    p_rec.add_argument("--all", action="store_true",
                       help="every queued/running job, whatever its lease (no VividFlow may be running)")
    p_gc = sub.add_parser("gc", help="list (or, with --yes, delete) media files no record references")
    p_gc.add_argument("--yes", action="store_true", help="delete them (default: only list them)")
    p_gc.add_argument("--min-age", type=float, default=DEFAULT_GC_MIN_AGE_S, metavar="SECONDS",
                      help=f"leave files younger than this alone (default {DEFAULT_GC_MIN_AGE_S:g})")
    for p in (p_info, p_queue, p_rec, p_gc):
        p.add_argument("--home", default=None, help=HOME_HELP)
        p.add_argument("--url", default=None, help=url_help)
    return parser


def cli(argv: list[str]) -> int:
    """Parse `argv` and run the command; expected errors (StorageError, SettingsError) are raised, not printed."""
    args = build_parser().parse_args(argv)
    commands = {"info": _print_info, "queue": _print_queue, "recover": _recover, "gc": _gc}
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
