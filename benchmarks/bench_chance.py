"""Benchmark: the extra align time of the chance levels (alignlib.stats.chance) on one task's cube.

    python benchmarks/bench_chance.py results/mlp_regression --draws 0,3,6,10
    python benchmarks/bench_chance.py results/linear_regression --draws 0,6 --threads 1

Runs ``compute_alignment`` on the task's activation cubes (from an earlier run) with the
config's default metric list, once per number of chance draws K, interleaved over
``--repeat`` rounds, and prints the best time of each K and its overhead over K = 0.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from alignlib.ensembles.alignment import compute_alignment
from alignpipe.cubes import open_activations, read_netcdf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task_dir", type=Path, help="results/<task> of an earlier run")
    parser.add_argument("--draws", default="0,6", help="comma-separated K values (0 = no chance)")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--config", type=Path, default=Path("config.yaml"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    metrics = yaml.safe_load(args.config.read_text())["metrics"]
    cube = open_activations(sorted((args.task_dir / "activations").glob("n*.nc")))
    cube = cube.load()
    probe_x = read_netcdf(args.task_dir / "data" / "data.nc")["probe_x"].values
    ks = [int(k) for k in args.draws.split(",")]
    print(f"# {args.task_dir.name}: sizes {dict(cube.sizes)}, metrics {len(metrics)}, threads {args.threads}, "
          f"load average {os.getloadavg()[0]:.2f}")
    best = {k: np.inf for k in ks}
    for _ in range(args.repeat):
        for k in ks:
            start = time.perf_counter()
            compute_alignment(cube, metrics, log=io.StringIO(), probe_x=probe_x, chance_draws=k,
                              task=args.task_dir.name)
            best[k] = min(best[k], time.perf_counter() - start)
    for k in ks:
        print(f"K = {k:3d}: {best[k]:7.1f} s  overhead {100 * (best[k] / best[ks[0]] - 1):5.1f} % over K = {ks[0]}")


if __name__ == "__main__":
    main()
