"""Ray workers against the in-process runner: what Ray costs to start, and what a warm actor adds to each job.

On a local Ray instance (`ray.init(num_cpus=2)`) and one database (SQLite file by default, or a throwaway
PostgreSQL server with `--db postgresql`, devtools/postgres.py), prints:

- `ray.init`: starting the local Ray instance;
- actor start-up: `generation.ray_workers.start_actors` with 1 and then 2 preview actors, until each has
  opened the store and loaded (warmed) its pipeline;
- warm-job latency: tiny preview clips (96×64 picture, 0.5 s), submitted one at a time and waited for
  (submit → succeeded), through the Ray actors (they claim from the shared queue, polling every `--poll-s`
  when idle) and through the studio's in-process runner (a thread woken at once); p50/p99 and the difference,
  which is Ray's warm-job overhead; the render itself (the record's `total_s`) beside it.

Ray is only the placement: jobs travel through the database either way. Asserts nothing.

    .venv/bin/python bench/ray_bench.py [--jobs 20] [--poll-s 0.05] [--db sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def one_job(runner, picture: Path, seed: int, store) -> tuple[float, float]:
    """(submit → succeeded seconds, the render's own total_s) of one tiny preview clip."""
    from agent.plan import MotionPlan

    plan = MotionPlan.create(seed=seed, template="landscape", duration_s=0.5)
    t = time.perf_counter()
    record = runner.submit(plan, picture, backend="preview")
    final = runner.wait(record.id, timeout=120)
    wait = time.perf_counter() - t
    if final.status != "succeeded":
        raise SystemExit(f"job {final.id} {final.status}: {final.error}")
    return wait, float((store.get_generation(final.id).timings or {}).get("total_s", 0.0))


def line(name: str, runs: list[tuple[float, float]]) -> str:
    waits = [w for w, _ in runs]
    around = [w - r for w, r in runs]
    return (f"  {name:<22} submit→done p50 {statistics.median(waits) * 1000:7.1f} ms  p99 "
            f"{percentile(waits, 0.99) * 1000:7.1f} ms;  minus the render itself: p50 "
            f"{statistics.median(around) * 1000:6.1f} ms  p99 {percentile(around, 0.99) * 1000:6.1f} ms")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=20)
    ap.add_argument("--poll-s", type=float, default=0.05, help="how often an idle actor looks for jobs")
    ap.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    args = ap.parse_args(argv)

    import ray
    from PIL import Image

    from generation.jobs import Runner
    from generation.preview import PreviewBackend
    from generation.ray_workers import start_actors
    from storage import open_store

    work = Path(tempfile.mkdtemp(prefix="ray-bench-"))
    server = None
    url = None
    if args.db == "postgresql":
        from devtools.postgres import TempPostgres

        server = TempPostgres.start()
        url = server.create_database()
    home = work / "home"
    store = open_store(url=url, home=home)
    picture = work / "picture.png"
    Image.new("RGB", (96, 64), (40, 120, 200)).save(picture)
    load = os.getloadavg()
    print(f"cpus={os.cpu_count()} load(1/5/15 min)={load[0]:.2f}/{load[1]:.2f}/{load[2]:.2f} db={args.db} "
          f"jobs={args.jobs} poll_s={args.poll_s} ray {ray.__version__}")

    t = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(REPO)}})
    print(f"  ray.init (local, num_cpus=2)          {time.perf_counter() - t:7.2f} s")
    common = dict(gpu_workers=0, url=store.url if url is None else url, home=str(home),
                  media_root=str(home / "media"), poll_s=args.poll_s, preview_max_area=320 * 240, max_restarts=0)
    if url is None:
        common["url"] = f"sqlite:///{home / 'vividflow.db'}"
    try:
        for n in (1, 2):
            t = time.perf_counter()
            actors = start_actors(cpu_workers=n, **common)
            print(f"  actor start-up, {n} preview actor(s)    {time.perf_counter() - t:7.2f} s (store opened, pipeline warm)")
            if n == 1:
                for a in actors:
                    ray.kill(a)
        submitter = Runner(store, devices=(), shared_queue=True, poll_s=args.poll_s)
        local = Runner(store, {"preview": PreviewBackend(max_area=320 * 240)})  # its jobs are its own: no actor takes them
        ray_runs, local_runs = [], []
        for i in range(args.jobs + 2):  # alternating, so both meet the same load; the first two warm up
            order = ((submitter, ray_runs), (local, local_runs)) if i % 2 == 0 else ((local, local_runs), (submitter, ray_runs))
            for runner, runs in order:
                result = one_job(runner, picture, 1000 + 2 * i + len(runs), store)
                if i >= 2:
                    runs.append(result)
        submitter.close()
        local.close()
        for a in actors:
            ray.kill(a)
    finally:
        ray.shutdown()
    print(line("Ray actors (2, warm)", ray_runs))
    print(line("in-process runner", local_runs))
    overhead = statistics.median(w - r for w, r in ray_runs) - statistics.median(w - r for w, r in local_runs)
    print(f"  warm-job overhead of Ray (difference of the p50s without the render) {overhead * 1000:+.1f} ms "
          f"(an idle actor polls the database every {args.poll_s * 1000:.0f} ms; the in-process runner is woken at once)")
    load = os.getloadavg()
    print(f"load(1/5/15 min) now {load[0]:.2f}/{load[1]:.2f}/{load[2]:.2f}")
    store.close()
    if server is not None:
        server.stop()


if __name__ == "__main__":
    from vividflow.boundary import run_cli

    sys.exit(run_cli(main, prog="bench/ray_bench.py"))
