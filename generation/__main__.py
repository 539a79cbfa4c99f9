"""``python -m generation``: render a plan from the terminal, rerun one from history, list the queue, show a recipe.

    python -m generation render [--image IMG] --plan plan.json|- [--backend preview] [--out x.mp4 [--force]]
                                [--end-image END | --loop] [--variations N]
    python -m generation render --story a.png b.png c.png --plan plan.json   # or --image a.png --image b.png …
    python -m generation rerun ID [--seed N] [--steps N] [--backend NAME] [--out x.mp4 [--force]]
    python -m generation queue
    python -m generation recipe [--model ID] [--lightning | --no-lightning]
    python -m generation worker [--backend preview] [--concurrency N] [--device cuda:0 …] [--lease-s S]
    python -m generation ray-workers [--address auto|ray://…] [--gpus-per-worker 1] [--cpu-workers N]

`render` and `rerun` run synchronously in this process (a progress bar on stderr), record the
generation in the store ($VIVIDFLOW_HOME or --home) and print its id and video path. Without `--image`,
`render` starts from the words alone: that needs a text-to-video model (Wan2.2-TI2V-5B or T2V-A14B). `recipe` prints the
resolved recipe of the configured (or named) model as one JSON object, without loading any weights. `worker`
serves the database's shared queue (storage.leases: jobs the studio queues under VIVIDFLOW_WORKERS=external) until
SIGTERM or Ctrl-C, printing a line per job; any number of workers on any hosts may share one database
(PostgreSQL for more than one host; media on a folder every host mounts, VIVIDFLOW_MEDIA_ROOT).
`ray-workers` starts such workers as Ray actors, one per GPU of the cluster (generation.ray_workers). Like the app's
runner, they first mark jobs whose lease ran out (their process died, anywhere) as interrupted; the live
jobs of a running app or of another render keep renewing their leases and are left alone.
`--plan` is a JSON file (or - for stdin) of at most 1 MB; `--out` is never a file of the data folder, a
device or a folder, and an existing file is replaced only with `--force` (through a temporary file beside it).
Exit status: 0 succeeded, 1 failed or internal error (details in the log), 2 bad input, 130 cancelled (Ctrl-C);
`--debug` also prints an internal error's traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from vividflow.boundary import run_cli
from vividflow.errors import clip
from vividflow.inputs import InputError, check_out_path, copy_atomic, read_json


def _store(args: argparse.Namespace) -> Any:
    from storage import open_store

    return open_store(url=args.url, home=args.home)


def _progress_bar() -> tuple[Any, Any]:
    """(listener, close) drawing one tqdm bar per stage on stderr."""
    from tqdm import tqdm

    from generation.events import Progress, Queued, Started

    state: dict[str, Any] = {"bar": None, "stage": None}

    def close() -> None:
        if state["bar"] is not None:
            state["bar"].close()
            state["bar"] = None

    def listen(event: Any) -> None:
        if isinstance(event, Queued) and event.position > 0:
            print(f"queued: {event.position} job(s) ahead", file=sys.stderr)
        elif isinstance(event, Started):
            print(f"started on backend {event.backend}", file=sys.stderr)
        elif isinstance(event, Progress) and event.stage != "loading":
            if event.stage != state["stage"]:
                close()
                state["stage"] = event.stage
                state["bar"] = tqdm(total=event.total, desc=event.stage, unit="step", file=sys.stderr, leave=True)
            bar = state["bar"]
            if event.total != bar.total:
                bar.total = event.total
            bar.n = event.step
            bar.refresh()

    return listen, close


def _out_path(store: Any, args: argparse.Namespace, clips: int = 1) -> Path | None:
    """`--out` checked before any work (None without it): never inside the store, replaced only with --force.
    For a batch of `clips` variations each numbered path (x-1.mp4 … x-N.mp4) is checked."""
    if args.out is None:
        return None
    protected = tuple(p for p in (store.media.root, store.database_path) if p is not None)
    if clips == 1:
        return check_out_path(args.out, force=args.force, protected=protected)
    if not args.out or "\x00" in args.out:
        return check_out_path(args.out, protected=protected)  # refused: not a file path
    out = Path(args.out).expanduser().absolute()
    for k in range(clips):
        check_out_path(str(_numbered(out, k, clips)), force=args.force, protected=protected)
    return out


def _run_job(store: Any, submit: Any, out: Path | None) -> int:
    """Submit through a local runner, wait with a progress bar, print the outcome (of each clip of a batch)."""
    from generation.jobs import Runner

    listen, close_bar = _progress_bar()
    runner = Runner(store)  # recovers only the jobs whose lease ran out (storage.recovery)
    if runner.interrupted:
        ids = ", ".join(f"#{i}" for i in runner.interrupted)
        print(f"marked generation(s) {ids} failed: interrupted by a process that stopped", file=sys.stderr)
    try:
        runner.subscribe(listen)
        submitted = submit(runner)
        records = submitted if isinstance(submitted, list) else [submitted]  # a batch of variations (#12 §3)
        for record in records:
            print(f"generation #{record.id} queued ({record.backend}, {record.width}×{record.height}, "
                  f"{record.num_frames} frames)", file=sys.stderr)
        finals = []
        try:
            for record in records:
                finals.append(runner.wait(record.id))
        except KeyboardInterrupt:
            print("\ncancelling …", file=sys.stderr)
            for record in records:
                runner.cancel(record.id)
            finals = [runner.wait(record.id) for record in records]
    finally:
        close_bar()
        runner.close(cancel_running=True)
    codes = [_print_outcome(final, _numbered(out, k, len(finals))) for k, final in enumerate(finals)]
    return max(codes, key=lambda c: (c != 0, c))


def _numbered(out: Path | None, k: int, n: int) -> Path | None:
    """--out for clip k of n: the path itself for one clip, x-1.mp4, x-2.mp4 … for a batch."""
    if out is None or n == 1:
        return out
    return out.with_name(f"{out.stem}-{k + 1}{out.suffix or '.mp4'}")


def _print_outcome(final: Any, out: Path | None) -> int:
    print(f"id: {final.id}")
    print(f"status: {final.status}")
    if final.batch_id is not None:
        print(f"batch: {final.batch_id} (seed {final.seed})")
    if final.status == "succeeded":
        video = str(final.video_path)
        if out is not None:
            try:
                copy_atomic(video, out)
            except InputError as e:
                raise InputError(f"generation #{final.id} succeeded ({video}), but {e}") from None
            video = str(out)
        print(f"video: {video}")
        return 0
    if final.status == "cancelled":
        return 130
    print(f"error: {final.error}", file=sys.stderr)
    return 1


def cmd_render(args: argparse.Namespace) -> int:
    from agent.plan import MotionPlan, PlanError

    # 1. Check every input before any work: the plan, the pictures (first and end), --out
    data = read_json(args.plan, what="--plan")
    try:
        plan = MotionPlan.from_dict(data)
    except PlanError as e:
        raise BadInput(f"--plan {clip(args.plan)}: {e}") from None
    if args.seed is not None:
        plan = _with(plan, seed=args.seed, seed_policy="explicit")
    plan = _loop_and_variations(plan, args)
    from generation.image import open_image

    pictures = list(args.image or []) + list(args.story or [])  # two or more: story mode (#12 §4)
    for picture in (pictures[0] if len(pictures) == 1 else None, args.end_image):  # size in bytes and pixels,
        if picture is not None:                                                      # from the header: before any work
            open_image(picture).close()
    with _store(args) as store:
        out = _out_path(store, args, clips=plan.variations)
        if len(pictures) >= 2:  # the pictures in order, stored, their keys in the plan
            plan = _with(plan, **_story_changes(store, plan, pictures))
        plan = _with_end_image(plan, args, store)
        first = pictures[0] if pictures else None
        return _run_job(store, lambda r: r.submit_batch(plan, first, backend=args.backend), out)


def _story_changes(store: Any, plan: Any, paths: list[str]) -> dict[str, Any]:
    """Store each story picture (once per content) and give the plan their keys; BadInput names a bad one."""
    from agent.plan import STORY_PICTURES
    from generation.image import ImageError, load_image

    lo, hi = STORY_PICTURES
    if not lo <= len(paths) <= hi:
        raise BadInput(f"story mode takes {lo} to {hi} pictures, got {len(paths)}")
    keys = []
    for path in paths:
        try:
            load_image(path)
            with open(path, "rb") as f:
                data = f.read()
        except (ImageError, OSError) as e:
            raise BadInput(f"story picture {path}: {e}") from None
        keys.append(store.add_image(data, filename=os.path.basename(path)).sha256)
    transitions = plan.transitions if len(plan.transitions) == len(keys) - 1 else ()
    return {"story_images": tuple(keys), "transitions": transitions}


def _loop_and_variations(plan: Any, args: argparse.Namespace) -> Any:
    """--loop and --variations (#12 §1, §3); --end-image with --loop refused."""
    from agent.end_and_batch import MAX_VARIATIONS

    if args.end_image is not None and args.loop:
        raise BadInput("--end-image and --loop: a loop ends on the first picture, so give one of them")
    if args.loop:
        plan = _with(plan, loop=True, end_image=None)
    if args.variations is not None:
        count = args.variations
        if count > MAX_VARIATIONS:
            print(f"note: {count} variations is more than the {MAX_VARIATIONS} a batch can hold: "
                  f"set to {MAX_VARIATIONS}", file=sys.stderr)
            count = MAX_VARIATIONS
        plan = _with(plan, variations=count)
    return plan


def _with_end_image(plan: Any, args: argparse.Namespace, store: Any) -> Any:
    """--end-image (checked by cmd_render): stored like the first picture, the plan keeps its key (#12 §1)."""
    if args.end_image is None:
        return plan
    with open(args.end_image, "rb") as f:
        record = store.add_image(f.read(), filename=os.path.basename(args.end_image))
    return _with(plan, end_image=record.sha256, loop=False)


def cmd_rerun(args: argparse.Namespace) -> int:
    from agent.plan import MotionPlan
    from storage import NotFoundError

    with _store(args) as store:
        try:
            g = store.get_generation(args.id)
        except NotFoundError as e:
            raise BadInput(str(e)) from None
        plan = MotionPlan.from_dict(g.plan)
        changes: dict[str, Any] = {}
        if args.seed is not None:
            changes.update(seed=args.seed, seed_policy="explicit")
        if args.steps is not None:
            changes["steps"] = args.steps
        plan = _with(plan, **changes) if changes else plan
        backend = args.backend or g.backend

        def submit(runner: Any) -> Any:
            return runner.submit(plan, g.source_image_id, backend=backend, conversation_id=g.conversation_id,
                                 parent_id=g.id)

        return _run_job(store, submit, _out_path(store, args))


def cmd_queue(args: argparse.Namespace) -> int:
    with _store(args) as store:
        page = store.list_gallery(status=["queued", "running"], page_size=500)
        jobs = sorted(page.items, key=lambda g: g.id)
        if not jobs:
            print("no queued or running generations")
            return 0
        print(f"{'id':>5}  {'status':<8} {'pos':>3}  {'backend':<8} {'progress':<24} created (UTC)")
        for g in jobs:
            pos = store.queue_position(g.id) if g.status == "queued" else None
            prog = ""
            if g.progress is not None:
                prog = f"{g.progress.stage} {g.progress.step or 0}/{g.progress.total or '?'}"
            print(f"{g.id:>5}  {g.status:<8} {'' if pos is None else pos:>3}  {g.backend:<8} {prog:<24} "
                  f"{g.created_at:%Y-%m-%d %H:%M:%S}")
    return 0


def cmd_recipe(args: argparse.Namespace) -> int:
    import json

    from generation.config import GenerationConfig
    from generation.sampling import describe_recipe

    overrides = {k: v for k, v in (("model", args.model), ("lightning", args.lightning)) if v is not None}
    print(json.dumps(describe_recipe(GenerationConfig.from_env(**overrides))))
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    import signal
    import threading

    from generation.jobs import DEFAULT_DEVICE, Runner
    from vividflow.settings import load_settings

    lease_s = args.lease_s if args.lease_s is not None else load_settings().storage.lease_s
    devices = [d for d in (args.device or [DEFAULT_DEVICE]) for _ in range(args.concurrency)]
    backends = None
    if args.preview_max_area is not None:
        from generation.preview import PreviewBackend

        backends = {"preview": PreviewBackend(max_area=args.preview_max_area)}
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with _store(args) as store:
        runner = Runner(store, backends, devices=devices, serves={d: args.backend for d in devices} if args.backend
                        else None, shared_queue=True, lease_s=lease_s, poll_s=args.poll_s)
        runner.subscribe(_report)
        served = ", ".join(args.backend) if args.backend else "every backend"
        print(f"worker {runner.owner}: {len(devices)} slot(s) for {served}, lease {lease_s:g} s", flush=True)
        while not stop.wait(0.5):
            pass
        print("stopping: running jobs finish, nothing new is claimed", file=sys.stderr, flush=True)
        runner.close(timeout=None)
    return 0


def cmd_ray_workers(args: argparse.Namespace) -> int:
    import signal
    import threading

    try:
        import ray
    except ImportError:
        raise BadInput("Ray is not installed (pip install 'ray>=2.40')") from None
    from generation.ray_workers import gpu_worker_count, start_actors
    from vividflow.settings import load_settings

    ray.init(address=args.address, include_dashboard=False)
    gpu_workers = gpu_worker_count(args.gpus_per_worker)
    if gpu_workers + args.cpu_workers == 0:
        raise BadInput("the Ray cluster has no GPU and --cpu-workers is 0: no worker to start")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    lease_s = args.lease_s if args.lease_s is not None else load_settings().storage.lease_s
    actors = start_actors(gpu_workers=gpu_workers, cpu_workers=args.cpu_workers, gpus_per_worker=args.gpus_per_worker,
                          url=args.url, home=args.home, lease_s=lease_s, max_restarts=args.max_restarts)
    for stats in ray.get([a.stats.remote() for a in actors]):
        print(f"actor {stats['owner']}: warm {', '.join(stats['loads'])}", flush=True)
    while not stop.wait(0.5):
        pass
    ray.shutdown()  # the actors end with this driver; a running job's lease runs out and it is retried
    return 0


def _report(event: Any) -> None:
    """One line per job event a person (or a test) reads in the worker's output."""
    from generation.events import Cancelled, Failed, Finished, Started

    if isinstance(event, Started):
        print(f"#{event.job_id} started ({event.backend})", flush=True)
    elif isinstance(event, Finished):
        print(f"#{event.job_id} succeeded: {event.video_path}", flush=True)
    elif isinstance(event, Failed):
        print(f"#{event.job_id} failed: {event.message}", flush=True)
    elif isinstance(event, Cancelled):
        print(f"#{event.job_id} cancelled", flush=True)


class BadInput(InputError):
    """Input the CLI refuses (exit status 2)."""


def _with(plan: Any, **changes: Any) -> Any:
    from agent.plan import PlanError

    try:
        return plan.with_changes(**changes)
    except PlanError as e:
        raise BadInput(str(e)) from None


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    """`python -m generation …` through the error boundary (vividflow.boundary): an exit status."""
    return run_cli(cli, argv, prog="python -m generation")


def cli(argv: list[str]) -> int:
    """Parse `argv` and run the command; expected errors are raised (VividflowError), not printed."""
    parser = argparse.ArgumentParser(prog="python -m generation", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", default=None, help="data folder (default $VIVIDFLOW_HOME or ./vividflow-data)")
    parser.add_argument("--url", default=None, help="SQLAlchemy URL (default: the home's vividflow.db)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("render", help="render a plan from an image (or from words alone), synchronously")
    p.add_argument("--image", action="append", default=None, metavar="IMG",
                   help="PNG, JPEG or WebP picture (omit it to start from words alone: a text-to-video model); "
                        "repeat it for story mode")
    p.add_argument("--story", nargs="+", default=None, metavar="IMG",
                   help="story mode: 2 to 6 pictures in order, one transition between each pair (same as repeating --image)")
    p.add_argument("--plan", required=True, help="MotionPlan JSON file (at most 1 MB), or - for stdin")
    p.add_argument("--backend", default=None, help="preview or wan (default: wan with CUDA and weights, else preview)")
    p.add_argument("--seed", type=int, default=None, help="override the plan's seed")
    p.add_argument("--out", default=None,
                   help="also copy the video here (a new file; see --force; x-1.mp4, x-2.mp4 … for variations)")
    p.add_argument("--force", action="store_true", help="let --out replace an existing file")
    p.add_argument("--end-image", default=None, metavar="END", help="a picture the clip ends on (Wan: last_image)")
    p.add_argument("--loop", action="store_true", help="a seamless loop: the clip ends where it starts")
    p.add_argument("--variations", type=_positive_int, default=None, metavar="N",
                   help="render N clips with different seeds as one batch (at most 8)")
    p.set_defaults(func=cmd_render)
    p = sub.add_parser("rerun", help="render a generation from history again (as its child)")
    p.add_argument("id", type=int)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--backend", default=None, help="default: the original's backend")
    p.add_argument("--out", default=None, help="also copy the video here (a new file; see --force)")
    p.add_argument("--force", action="store_true", help="let --out replace an existing file")
    p.set_defaults(func=cmd_rerun)
    p = sub.add_parser("queue", help="list queued and running generations")
    p.set_defaults(func=cmd_queue)
    p = sub.add_parser("recipe", help="print the resolved model recipe as JSON (no weights loaded)")
    p.add_argument("--model", default=None, help="hub id or alias (default: VIVIDFLOW_WAN_MODEL)")
    p.add_argument("--lightning", action=argparse.BooleanOptionalAction, default=None,
                   help="the Lightning recipe or the base one (default: VIVIDFLOW_WAN_LIGHTNING)")
    p.set_defaults(func=cmd_recipe)
    from generation.choose import BACKEND_NAMES

    p = sub.add_parser("worker", help="run jobs of the shared queue until SIGTERM or Ctrl-C")
    p.add_argument("--backend", action="append", choices=BACKEND_NAMES,
                   help="serve only this backend (repeatable; default: every backend)")
    p.add_argument("--concurrency", type=_positive_int, default=1, help="jobs at once per device (default 1)")
    p.add_argument("--device", action="append", help="a device to run on, e.g. cuda:0 (repeatable)")
    p.add_argument("--lease-s", type=float, default=None,
                   help="seconds a claim lasts unless renewed (default VIVIDFLOW_LEASE_S, 30)")
    p.add_argument("--poll-s", type=float, default=0.5, help="how often an idle worker looks for jobs")
    p.add_argument("--preview-max-area", type=_positive_int, default=None,
                   help="render previews at most this many pixels (default: the 480p budget)")
    p.set_defaults(func=cmd_worker)
    p = sub.add_parser("ray-workers", help="start workers as Ray actors (one per GPU) until SIGTERM or Ctrl-C")
    p.add_argument("--address", default=None, help="the Ray cluster: auto, ray://head:10001 (default: a local one)")
    p.add_argument("--gpus-per-worker", type=float, default=1.0, help="GPUs per wan actor (default 1)")
    p.add_argument("--cpu-workers", type=int, default=0, help="CPU actors for previews (default 0)")
    p.add_argument("--lease-s", type=float, default=None, help="default VIVIDFLOW_LEASE_S, 30")
    p.add_argument("--max-restarts", type=int, default=3, help="how often Ray restarts an actor that died")
    p.set_defaults(func=cmd_ray_workers)
    args = parser.parse_args(argv)
    global _ONE_SHOT
    _ONE_SHOT = args.command in ("render", "rerun")
    return int(args.func(args))


_ONE_SHOT = False  # set by main(): a render or rerun, which leaves no server, thread or atexit work behind


def _exit_now(code: int) -> None:
    """End a one-shot command (render, rerun) at once: everything is written, flushed and closed by now, and the interpreter's
    teardown of numpy, SQLAlchemy, pydantic and PIL module state would add 0.2–0.5 s to every render
    (bench/preview_vs_zoompan.py)."""
    import logging

    if not _ONE_SHOT:  # a worker or Ray: its atexit handlers (ray.shutdown …) must run
        sys.exit(code)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    _exit_now(main())
