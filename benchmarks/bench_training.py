"""Benchmark: training throughput, today's per-n loop against batching across n (issue 20 item 5).

    python benchmarks/bench_training.py                 # every task of config.yaml, 50 steps, CPU 1 thread
                                                        # and all threads, CUDA when present (~3 min on 2 cores)
    python benchmarks/bench_training.py --quick         # 20 steps, CPU all threads and CUDA (the GPU script)
    python benchmarks/bench_training.py --tasks mlp_regression --devices cpu1,cuda --steps 100
    python benchmarks/bench_training.py --stopping      # the tasks' own stopping rules (real runs, slower)

Each task's real grid of members (every SNR x seed at every n of the config; the refined n, which
depend on the coarse results, are left out) is trained for ``--steps`` full-batch steps in two ways:

- ``per-n``: one batch per n, the n one after the other (alignlib.ensembles.builder.trained_members,
  what a train job does on the CPU);
- ``batched``: buckets of consecutive n up to twice the smallest in one padded batch each
  (``n_buckets(grouping="ratio")``, train_members_across_n: what a train job does on a GPU).

The stopping rules are switched off (tol 0, a fit_tol no error reaches) but still evaluated, so every
member makes every step and the throughput is that of a real step; ``--stopping`` keeps the task's
own rules (and max_steps, at most ``--steps``), so members stop where they would in the pipeline and
a batch runs until its slowest member. Member-steps/s = sum over members of the steps they made /
the wall time of the whole call (building the training sets, training, the final train and test
errors). Devices: ``cpu1`` (one torch thread), ``cpu`` (all threads), ``cuda``. Every time is the
best of ``--repeat`` runs after a warm-up; other jobs on the machine distort them (the header gives
the load average).

Cost model (the second table): per device and task, the per-n runs give the seconds per member-step
at each n, fitted by least squares as ``s(n) = a + b n``. Training a grid then costs about

    T = sum over members m of steps_m x s(n_m)      (one thread, or one GPU; per-n batches)

where steps_m is at most max_steps (members above their threshold run all of them with full-batch
Adam; members that fit stop earlier). The CPU's a is the per-step overhead shared by a batch of
members (divided by the batch's size it is small), b the arithmetic per sample; CPU-core-hours =
T(cpu1) / 3600.
"""

from __future__ import annotations

import argparse
import copy
import io
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from alignlib.ensembles.builder import n_buckets, train_members_across_n, trained_members  # noqa: E402
from alignlib.ensembles.data import make_task_data  # noqa: E402
from alignpipe.config import with_defaults  # noqa: E402


def machine() -> str:
    """CPU model and cores, torch version, GPU name."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"CPU: {cpu}, {os.cpu_count()} cores; GPU: {gpu}; torch {torch.__version__}; "
            f"load average {load:.1f} at the start")


def bench_config(cfg: dict, steps: int, stopping: bool) -> dict:
    """The task's settings for the benchmark: ``steps`` steps, stopping rules on or off."""
    cfg = copy.deepcopy(cfg)
    training = cfg["training"]
    if stopping:
        training["max_steps"] = min(int(training["max_steps"]), steps)
    else:
        training["max_steps"] = steps
        training["tol"] = 0.0  # criterion < 0: never
        if training["fit_tol"] is not None:
            training["fit_tol"] = -1.0  # error <= -1: never, but the rule is still evaluated
    return cfg


def run(task: str, cfg: dict, data, grid: dict, device, mode: str) -> tuple[float, int, dict]:
    """Train the grid {n: members} per n or in buckets; (seconds, member-steps, {n: seconds per member-step}).

    Per n, the per-member-step time of each n's own batch; batched, each bucket's per-member-step time
    (padded to its largest n) under every n of it."""
    log = io.StringIO()
    grouping = "per_n" if mode == "per-n" else "ratio"
    buckets = n_buckets(grid, device, grouping=grouping, batch_size=cfg["training"]["batch_size"],
                        members_per_n={n: len(m) for n, m in grid.items()})
    total, member_steps, per_step = 0.0, 0, {}
    for bucket in buckets:
        t0 = time.perf_counter()
        if len(bucket) == 1:
            records = trained_members(task, cfg, data, bucket[0], grid[bucket[0]], device, log)
            steps = int(sum(int(r["steps"]) for r in records))
        else:
            members = [(s, n, k) for n in bucket for s, k in grid[n]]
            result = train_members_across_n(task, cfg, data, members, device, log)[1]
            steps = int(result.steps.sum())
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
        total += seconds
        member_steps += steps
        for n in bucket:
            per_step[n] = seconds / max(steps, 1)
    return total, member_steps, per_step


def devices(names: list[str]) -> list[tuple[str, str, int]]:
    """(label, torch device, threads) for the names asked for that exist here."""
    out = []
    for name in names:
        if name == "cpu1":
            out.append(("CPU, 1 thread", "cpu", 1))
        elif name == "cpu":
            out.append((f"CPU, {os.cpu_count()} threads", "cpu", os.cpu_count()))
        elif name == "cuda":
            if torch.cuda.is_available():
                out.append((f"CUDA ({torch.cuda.get_device_name(0)})", "cuda", os.cpu_count()))
        else:
            raise SystemExit(f"unknown device {name!r}: cpu1, cpu or cuda")
    return out


def fit_cost(per_step: dict) -> tuple[float, float]:
    """Least squares a + b n through the seconds per member-step at each n."""
    ns = np.array(sorted(per_step), dtype=float)
    t = np.array([per_step[n] for n in sorted(per_step)])
    if len(ns) < 2:
        return float(t.mean()), 0.0
    b, a = np.polyfit(ns, t, 1)
    return float(a), float(b)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configfile", default=str(REPO / "config.yaml"))
    parser.add_argument("--tasks", default=None, help="comma-separated (default: every task of the config)")
    parser.add_argument("--steps", type=int, default=None, help="steps per member (default 50; --quick: 20)")
    parser.add_argument("--devices", default=None, help="cpu1,cpu,cuda (default; --quick: cpu,cuda)")
    parser.add_argument("--repeat", type=int, default=1, help="best of this many runs (default 1)")
    parser.add_argument("--stopping", action="store_true", help="keep the tasks' stopping rules")
    parser.add_argument("--quick", action="store_true", help="20 steps, CPU all threads and CUDA")
    args = parser.parse_args(argv)
    steps = args.steps or (20 if args.quick else 50)
    names = (args.devices or ("cpu,cuda" if args.quick else "cpu1,cpu,cuda")).split(",")
    config = with_defaults(yaml.safe_load(Path(args.configfile).read_text()), REPO / "schemas" / "config.schema.yaml")
    tasks = args.tasks.split(",") if args.tasks else list(config["tasks"])
    default_threads = torch.get_num_threads()
    print(f"# Training throughput ({'stopping rules on' if args.stopping else 'stopping rules off'}, "
          f"at most {steps} steps per member)\n\n{machine()}\n"
          f"command: python benchmarks/bench_training.py {' '.join(argv if argv is not None else sys.argv[1:])}\n")
    rows, costs = [], []
    for task in tasks:
        cfg = bench_config(config["tasks"][task], steps, args.stopping)
        data = make_task_data(task, cfg)
        grid = {int(n): [(float(s), k) for s in cfg["snr"] for k in range(cfg["seeds"])] for n in cfg["n"]}
        members = sum(len(m) for m in grid.values())
        buckets = n_buckets(grid, grouping="ratio", batch_size=cfg["training"]["batch_size"])
        for label, device, threads in devices(names):
            torch.set_num_threads(threads if device == "cpu" else default_threads)
            smallest = min(grid)  # warm-up: the first call pays torch's start-up
            run(task, bench_config(cfg, 3, False), data, {smallest: grid[smallest][:2]}, device, "per-n")
            best = {}
            for _ in range(args.repeat):
                for mode in ("per-n", "batched"):
                    result = run(task, cfg, data, grid, device, mode)
                    if mode not in best or result[0] < best[mode][0]:
                        best[mode] = result
            (t_n, s_n, per_n), (t_b, s_b, _) = best["per-n"], best["batched"]
            rows.append((task, members, len(grid), len(buckets), label, s_n / t_n, s_b / t_b, t_n, t_b))
            costs.append((task, label, *fit_cost(per_n), per_n[min(per_n)], per_n[max(per_n)]))
            print(f"{task} on {label}: per-n {t_n:.2f} s, batched {t_b:.2f} s", file=sys.stderr, flush=True)
    torch.set_num_threads(default_threads)
    print("| task | members | n | buckets | device | per-n (member-steps/s) | batched (member-steps/s) | "
          "batched / per-n | per-n (s) | batched (s) |")
    print("|---|---:|---:|---:|---|---:|---:|---:|---:|---:|")
    for task, members, n_count, n_buckets_, label, r_n, r_b, t_n, t_b in rows:
        print(f"| {task} | {members} | {n_count} | {n_buckets_} | {label} | {r_n:,.0f} | {r_b:,.0f} | "
              f"{r_b / r_n:.2f}x | {t_n:.2f} | {t_b:.2f} |")
    print("\nSeconds per member-step of the per-n runs, s(n) = a + b n (least squares over the task's n):\n")
    print("| task | device | a (s) | b (s per sample) | s at the smallest n | s at the largest n |")
    print("|---|---|---:|---:|---:|---:|")
    for task, label, a, b, lo, hi in costs:
        print(f"| {task} | {label} | {a:.3g} | {b:.3g} | {lo:.3g} | {hi:.3g} |")


if __name__ == "__main__":
    main()
