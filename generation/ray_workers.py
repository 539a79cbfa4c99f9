"""Ray workers: one actor per GPU (or per CPU slot for previews), each with a warm pipeline, all serving
the database's shared queue (storage.leases) exactly as `python -m generation worker` does.

    python -m generation ray-workers --address auto                       # one `wan` actor per GPU
    python -m generation ray-workers --cpu-workers 2 --backend preview    # CPU actors for previews

Each actor opens the store, builds its backend once and keeps it loaded, then claims jobs under a lease,
writes progress to the job's record, hears a cancel through it, and writes media to the media root. An
actor that dies is restarted by Ray (`max_restarts`) and loads its pipeline again; the job it held goes
back to the queue when its lease runs out, and another actor finishes it.

Two nodes (a head with PostgreSQL and the studio, a GPU node):
  1. Both nodes mount one shared folder at the same path, e.g. /srv/vividflow-media (NFS).
  2. Head: PostgreSQL listening on the LAN with a `vividflow` database; `ray start --head --port 6379`.
  3. Both nodes, in the environment of every VividFlow process:
     VIVIDFLOW_DB_URL=postgresql+psycopg://vf@head/vividflow  VIVIDFLOW_MEDIA_ROOT=/srv/vividflow-media
  4. GPU node: `ray start --address head:6379`.
  5. Head: the studio with VIVIDFLOW_WORKERS=external, and `python -m generation ray-workers --address auto`
     (one actor per GPU of the cluster; add `--cpu-workers 2 --backend preview` for a preview lane).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

from generation.jobs import DEFAULT_DEVICE, DEFAULT_LEASE_S

GPU_DEVICE = "cuda:0"  # Ray shows each GPU actor only its own GPUs


class WorkerActor:
    """What runs inside one Ray actor: a shared-queue Runner with one device and its backends kept warm.

    Plain Python (Ray wraps it in `start_actors`), so this module imports without Ray."""

    def __init__(self, url: str | None, home: str | None, media_root: str | None, backends: Sequence[str],
                 device: str, lease_s: float, poll_s: float, preview_max_area: int | None) -> None:
        from generation.events import Finished
        from generation.jobs import Runner, default_factory
        from storage import open_store
        from vividflow.boundary import configure_logging

        configure_logging(["--home", home] if home else [])  # the actor's process is an entry point of its own
        self.loads: dict[str, int] = {}
        self.finished: list[int] = []
        self._count = threading.Lock()

        def factory(name: str, dev: str) -> Any:
            with self._count:
                self.loads[name] = self.loads.get(name, 0) + 1
            if name == "preview" and preview_max_area is not None:
                from generation.preview import PreviewBackend

                return PreviewBackend(max_area=preview_max_area)
            return default_factory(name, dev)

        self.store = open_store(url=url, home=home, media_root=media_root)
        self.runner = Runner(self.store, devices=(device,), serves={device: backends}, factory=factory,
                             shared_queue=True, lease_s=lease_s, poll_s=poll_s, start=False)
        self.runner.subscribe(lambda e: self.finished.append(e.job_id) if isinstance(e, Finished) else None)
        self.runner.warm(backends)  # the pipeline loads now, once, not with the first job
        self.runner.start()

    def stats(self) -> dict[str, Any]:
        """Who this actor is (its owner id names its process), its backend loads and the jobs it finished."""
        return {"owner": self.runner.owner, "pid": os.getpid(), "loads": dict(self.loads),
                "finished": list(self.finished), "running": self.runner.running()}


def start_actors(*, gpu_workers: int, cpu_workers: int, gpus_per_worker: float = 1.0,
                 gpu_backends: Sequence[str] = ("wan",), cpu_backends: Sequence[str] = ("preview",),
                 url: str | None = None, home: str | None = None, media_root: str | None = None,
                 lease_s: float = DEFAULT_LEASE_S, poll_s: float = 0.5, preview_max_area: int | None = None,
                 max_restarts: int = 3) -> list[Any]:
    """Start the actors on the Ray cluster this process is connected to (`ray.init` first); returns their
    handles once every one has loaded its backends."""
    import ray

    common = dict(url=url, home=home, media_root=media_root, lease_s=lease_s, poll_s=poll_s,
                  preview_max_area=preview_max_area)
    gpu = ray.remote(num_gpus=gpus_per_worker, num_cpus=1, max_restarts=max_restarts)(WorkerActor)
    cpu = ray.remote(num_cpus=1, max_restarts=max_restarts)(WorkerActor)
    actors = [gpu.remote(backends=list(gpu_backends), device=GPU_DEVICE, **common) for _ in range(gpu_workers)]
    actors += [cpu.remote(backends=list(cpu_backends), device=DEFAULT_DEVICE, **common) for _ in range(cpu_workers)]
    ray.get([a.stats.remote() for a in actors])  # raises here if an actor cannot start
    return actors


def gpu_worker_count(gpus_per_worker: float) -> int:
    """One actor per `gpus_per_worker` GPUs of the connected cluster."""
    import ray

    return int(ray.cluster_resources().get("GPU", 0) // gpus_per_worker)
