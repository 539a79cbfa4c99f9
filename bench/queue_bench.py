"""Queue benchmark: jobs per second through the shared queue's claim path, with 1, 2, 4 and 8 worker
processes, on SQLite and PostgreSQL (a throwaway server from this machine's binaries, devtools/postgres.py).

Each run queues `--jobs` jobs for any worker, then starts the workers at the same moment; each loops
claim (storage.leases: under a lease) → `--work-ms` of pretend work → finish, until the queue is empty.
No rendering: this measures the queue, not a backend. Prints jobs/s over the whole run (first claim to
last finish) and the claim latency p50/p99 over every claim, and the machine's load average before and
after, since other processes on the machine move these figures. Asserts nothing.

Run: .venv/bin/python bench/queue_bench.py [--jobs 300] [--workers 1 2 4 8] [--work-ms 0] [--db sqlite postgresql]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from storage import SHARED_QUEUE, open_store  # noqa: E402

PLAN = {"template": "landscape", "seed": 1, "duration_s": 0.5, "prompt": "waves roll in"}


def worker(url: str, home: str, index: int, start_at: float, work_s: float, results: mp.Queue) -> None:
    """Claim and finish until the queue is empty; report (claim latencies, first claim, last finish)."""
    store = open_store(url=url, home=home, media_root=home)
    owner = f"bench:{os.getpid()}:{index}@b:x"
    video = str(Path(home) / "video.mp4")
    latencies: list[float] = []
    time.sleep(max(0.0, start_at - time.time()))
    first = time.time()
    while True:
        t = time.perf_counter()
        job = store.claim_shared(owner, 60, ["preview"])
        latencies.append(time.perf_counter() - t)
        if job is None:
            break
        if work_s:
            time.sleep(work_s)
        store.finish_generation(job.id, "succeeded", video_path=video, owner=owner)
    store.close()
    results.put((latencies[:-1] or latencies, first, time.time(), len(latencies) - 1))


def run(url: str, home: str, jobs: int, workers: int, work_s: float) -> tuple[float, float, float]:
    """(jobs per second, claim p50 ms, claim p99 ms) for one database and number of workers."""
    with open_store(url=url, home=home, media_root=home) as store:
        for _ in range(jobs):
            store.create_generation(None, PLAN, None, "preview", "bench", owner=SHARED_QUEUE)
    ctx = mp.get_context("spawn")
    results: mp.Queue = ctx.Queue()
    start_at = time.time() + 1.0 + 0.3 * workers  # after every process has imported and connected
    procs = [ctx.Process(target=worker, args=(url, home, i, start_at, work_s, results)) for i in range(workers)]
    for p in procs:
        p.start()
    reports = [results.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
    done = sum(r[3] for r in reports)
    if done != jobs:
        raise RuntimeError(f"{done} jobs finished, expected {jobs}")
    wall = max(r[2] for r in reports) - min(r[1] for r in reports)
    latencies = sorted(x for r in reports for x in r[0])
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
    return jobs / wall, statistics.median(latencies) * 1000, p99 * 1000


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--work-ms", type=float, default=0.0, help="pretend work per job (sleep)")
    parser.add_argument("--db", nargs="+", default=["sqlite", "postgresql"], choices=["sqlite", "postgresql"])
    args = parser.parse_args(argv)

    load_before = os.getloadavg()
    server = None
    if "postgresql" in args.db:
        from devtools.postgres import TempPostgres

        server = TempPostgres.start()
    rows = []
    try:
        for db in args.db:
            for n in args.workers:
                with tempfile.TemporaryDirectory(prefix="queue-bench-") as home:
                    url = f"sqlite:///{home}/bench.db" if db == "sqlite" else server.create_database()
                    rows.append((db, n, *run(url, home, args.jobs, n, args.work_ms / 1000)))
                print(f"  {db} × {n} done", file=sys.stderr, flush=True)
    finally:
        if server is not None:
            server.stop()
    load_after = os.getloadavg()

    print(f"queue bench: {args.jobs} jobs per run, claim → {args.work_ms:g} ms work → finish, no rendering; "
          f"{os.cpu_count()} CPUs")
    print(f"load average before {' '.join(f'{x:.2f}' for x in load_before)}, "
          f"after {' '.join(f'{x:.2f}' for x in load_after)} (1, 5, 15 min)")
    print(f"{'database':<11} {'workers':>7} {'jobs/s':>8} {'claim p50 ms':>13} {'claim p99 ms':>13}")
    for db, n, rate, p50, p99 in rows:
        print(f"{db:<11} {n:>7} {rate:>8.1f} {p50:>13.2f} {p99:>13.2f}")


if __name__ == "__main__":
    from vividflow.boundary import run_cli

    sys.exit(run_cli(main, prog="bench/queue_bench.py"))
