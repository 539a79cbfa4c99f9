"""Lease and recovery benchmark: what a runner's lease thread and recovery pass cost on a store with many
finished generations (the work every runner repeats every `lease_s / 3` and `lease_s / 2`), and what
`python -m storage gc` costs.

Over a fresh temp SQLite store with --rows finished generations (storage_bench's fill) and --held jobs held by
this process under a lease, prints the median time of:
- renew_leases(held jobs)       one statement per tick of a runner's lease thread;
- recover()                     a runner's periodic pass when nothing expired (expire, mark, sweep);
- orphan_media() / gc dry run   every row's media references against the files under media/.
Asserts nothing. Run: .venv/bin/python bench/recovery_bench.py [--rows 10000] [--held 8] [--repeat 30]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.storage_bench import fill, make_plan, median_ms  # noqa: E402
from storage import open_store  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--held", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=30)
    args = ap.parse_args(argv)
    rng = random.Random(0)

    with tempfile.TemporaryDirectory() as home:
        store = open_store(home=home)
        t0 = time.perf_counter()
        fill(store, args.rows, rng)
        print(f"filled {store.counts()['generations']} generations in {time.perf_counter() - t0:.1f} s ({store.url})")
        owner = "bench:1:00000000"
        held = [store.create_generation(None, make_plan(rng), None, "preview", "m", owner=owner, lease_s=60).id
                for _ in range(args.held)]
        for i in held[: args.held // 2]:
            store.claim_generation(i, owner=owner, lease_s=60)

        renew = median_ms(lambda: store.renew_leases(held, owner, 60), args.repeat)
        print(f"renew_leases({args.held} jobs held, half running): median {renew:.2f} ms")
        recover = median_ms(store.recover, args.repeat)
        print(f"recover() with nothing expired: median {recover:.2f} ms")
        assert store.recover().interrupted == []
        orphans = median_ms(lambda: store.orphan_media(min_age_s=0), max(3, args.repeat // 10))
        print(f"orphan_media() (gc dry run) over {args.rows} rows: median {orphans:.2f} ms")
        store.close()
    return 0


if __name__ == "__main__":
    from vividflow.boundary import run_cli

    sys.exit(run_cli(main, prog="bench/recovery_bench.py"))
