"""Run the pipeline from scratch and show where its time goes, per rule.

    python benchmarks/bench_pipeline.py                        # the default config, 2 cores
    python benchmarks/bench_pipeline.py --configfile tests/configs/tiny.yaml --cores 2
    python benchmarks/bench_pipeline.py --keep /tmp/run        # keep the run's folder (else a temp folder)
    python benchmarks/bench_pipeline.py --from /tmp/run --critical-path   # a finished run's folder, not rerun
    python benchmarks/bench_pipeline.py --plan-cores 16 [--refined-from /tmp/run/results]   # predicted, nothing runs

The run happens in a fresh folder (results, .snakemake and all), with the real snakemake CLI and
the repository's Snakefile and workflow profile. Afterwards, per rule:

* jobs and the summed job time: each job's start and end as Snakemake recorded them
  (``.snakemake/metadata``, the numbers ``snakemake --report`` uses), so a job's time includes
  its process start-up, imports and file input/output;
* numerics: the time the job's script spent inside alignlib's computations, measured in-process
  (``alignpipe.timing``: the ``alignlib-timing:`` line of each job's log);
* overhead: job time minus numerics;

then the wall time, the cores given, how busy they were (summed job time / (wall x cores)),
Snakemake's own start-up before the first job, the stretches with a single job running while the
other cores idled (the longest one, and the serial tail: one at the very end). The machine's load average before and after is
printed too: timings taken beside other work are not comparable.

``--critical-path``: the longest chain of dependent jobs in job seconds (each job's end minus start),
from the job table: a job waits for the jobs whose outputs are its inputs (Snakemake's metadata
records both), and a task's refined training jobs wait for its refine checkpoint (the train jobs of
the task that started after refine ended). That chain bounds the wall time on any number of cores.
``--plan-cores N`` predicts the same without running: the jobs ``alignpipe.jobsize.plan`` expects on
N cores, their expected seconds (numerics on their threads plus start-up) and the chain; the
refinement's n from ``--refined-from`` (a finished run's results folder with its refine.json files),
else ``alignpipe.jobsize.assumed_refinement``.
"""
from __future__ import annotations

import argparse
import base64
import contextlib
import glob
import heapq
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from alignpipe.jobsize import critical_path  # noqa: E402
from alignpipe.timing import parse_timing  # noqa: E402


def run(configfile: Path, workdir: Path, cores: int, extra: list[str]) -> tuple[float, float, subprocess.CompletedProcess]:
    """Run snakemake from scratch in ``workdir``; (wall seconds, start time stamp, process)."""
    config = yaml.safe_load(configfile.read_text())
    config["results"] = str(workdir / "results")
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(workdir / "config.yaml"), "--cores", str(cores), "--quiet", *extra]
    start_stamp, start = time.time(), time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=workdir)
    return time.perf_counter() - start, start_stamp, proc


def jobs_of(workdir: Path) -> list[dict]:
    """One entry per job from Snakemake's metadata: rule, start, end, log file, its timing line, and
    its outputs and inputs (a metadata file is named by its output's path, base64-encoded)."""
    jobs: dict[tuple, dict] = {}
    for path in glob.glob(str(workdir / ".snakemake" / "metadata" / "*")):
        with open(path) as handle:
            record = json.load(handle)
        key = (record["rule"], tuple(record.get("log") or ()), record.get("job_hash"))
        job = jobs.setdefault(key, {"rule": record["rule"], "log": (record.get("log") or [None])[0],
                                    "start": record["starttime"], "end": record["endtime"],
                                    "outputs": set(), "inputs": set()})
        job["start"], job["end"] = min(job["start"], record["starttime"]), max(job["end"], record["endtime"])
        with contextlib.suppress(ValueError):
            job["outputs"].add(os.path.normpath(base64.b64decode(os.path.basename(path)).decode()))
        job["inputs"].update(os.path.normpath(p) for p in record.get("input") or ())
    for job in jobs.values():
        text = Path(job["log"]).read_text() if job["log"] and Path(job["log"]).exists() else ""
        timing = parse_timing(text) or {}
        job["numerics"] = timing.get("numerics_s")
        job["threads"] = timing.get("threads", 1)
    return sorted(jobs.values(), key=lambda j: j["start"])


def lone_stretches(jobs: list[dict]) -> list[tuple[float, float, list[dict]]]:
    """Every stretch of the run with exactly one job running (the other cores idle): (start, end, jobs)."""
    events = sorted([(j["start"], 1, i) for i, j in enumerate(jobs)] + [(j["end"], -1, i) for i, j in enumerate(jobs)],
                    key=lambda e: (e[0], e[1]))
    stretches, running, since = [], set(), None
    for t, step, i in events:
        if len(running) == 1 and since is not None and t > since:
            stretches.append((since, t, [jobs[k] for k in running]))
        running.add(i) if step > 0 else running.discard(i)
        since = t
    merged = []  # join back-to-back stretches (one job ending as the next starts alone)
    for start, end, alone in stretches:
        if merged and start - merged[-1][1] < 0.5:
            merged[-1] = (merged[-1][0], end, merged[-1][2] + [j for j in alone if j not in merged[-1][2]])
        else:
            merged.append((start, end, alone))
    return merged


@dataclass(frozen=True)
class TableJob:
    """A job of a finished run as alignpipe.jobsize.critical_path reads it."""

    name: str
    rule: str
    task: str
    seconds: float
    after: tuple[str, ...]


def job_task(job: dict) -> str:
    """The task of a job, from its log's folder (results/<task>/logs/...); '' for the run's own jobs."""
    if not job["log"]:
        return ""
    folder = Path(job["log"]).parent.parent
    return folder.name if (folder / "logs").is_dir() and folder.parent.name != "" and job["rule"] != "summary" else ""


def dependency_graph(jobs: list[dict]) -> list[TableJob]:
    """The jobs with what each waited for: the producers of its inputs, and for a refined training
    job its task's refine checkpoint (a train job of the task that started once refine had ended)."""
    names = [f"{job['rule']} {Path(job['log']).stem if job['log'] else i}" + (f" {job_task(job)}" if job_task(job) else "")
             for i, job in enumerate(jobs)]
    producer = {out: names[i] for i, job in enumerate(jobs) for out in job["outputs"]}
    refines = {job_task(job): (names[i], job["end"]) for i, job in enumerate(jobs) if job["rule"] == "refine"}
    graph = []
    for i, job in enumerate(jobs):
        after = {producer[p] for p in job["inputs"] if p in producer and producer[p] != names[i]}
        if job["rule"] == "train":
            task = job_task(job)
            for parent, (refine, end) in refines.items():
                if (task == parent or task.startswith(parent + "_draw")) and job["start"] >= end - 1e-6:
                    after.add(refine)
        graph.append(TableJob(names[i], job["rule"], job_task(job), job["end"] - job["start"], tuple(sorted(after))))
    return graph


def print_chain(total: float, path: list, what: str) -> None:
    print(f"critical path ({what}): {total:.1f} s of job time in {len(path)} jobs")
    for job in path:
        threads = getattr(job, "threads", 1)
        print(f"  {job.seconds:7.1f} s  {job.name}" + (f"  ({threads} threads)" if threads > 1 else ""))


def simulated_wall(jobs, cores: int) -> float:
    """The wall time of ``jobs`` (alignpipe.jobsize.PlannedJob) list-scheduled on ``cores`` cores: whenever
    cores are free, the ready job with the longest chain still ahead of it (its priority in the
    Snakefile) starts if its threads fit. Snakemake schedules much like this; it ignores start-up
    delays between jobs."""
    by_name = {job.name: job for job in jobs}
    successors = {job.name: [] for job in jobs}
    for job in jobs:
        for other in job.after:
            if other in by_name:
                successors[other].append(job.name)
    rank: dict[str, float] = {}
    for job in reversed(jobs):  # dependency order reversed: successors first
        rank[job.name] = job.seconds + max((rank[s] for s in successors[job.name]), default=0.0)
    waiting = {job.name: sum(other in by_name for other in job.after) for job in jobs}
    ready = sorted((name for name, count in waiting.items() if count == 0), key=lambda n: -rank[n])
    running: list[tuple[float, str]] = []
    now, free = 0.0, cores
    while ready or running:
        for name in list(ready):
            threads = min(by_name[name].threads, cores)
            if threads <= free:
                free -= threads
                heapq.heappush(running, (now + by_name[name].seconds, name))
                ready.remove(name)
        now, name = heapq.heappop(running)
        free += min(by_name[name].threads, cores)
        for other in successors[name]:
            waiting[other] -= 1
            if waiting[other] == 0:
                ready.append(other)
        ready.sort(key=lambda n: -rank[n])
    return now


def plan_report(configfile: Path, cores: int, refined_from: Path | None) -> int:
    """--plan-cores: the expected jobs of a run on ``cores`` cores, per rule, and their critical path."""
    from alignpipe.config import with_defaults
    from alignpipe.jobsize import critical_path, plan, run_target

    config = with_defaults(yaml.safe_load(configfile.read_text()), REPO / "schemas" / "config.schema.yaml")
    refined, source = None, "alignpipe.jobsize.assumed_refinement"
    if refined_from is not None:
        refined = {path.parent.name: json.loads(path.read_text())["added_n"]
                   for path in sorted(refined_from.glob("*/refine.json"))}
        source = f"{refined_from}/*/refine.json"
    jobs = plan(config, cores, refined)
    per_rule: dict[str, list] = defaultdict(list)
    for job in jobs:
        per_rule[job.rule].append(job)
    print(f"configfile: {configfile}   planned for {cores} cores (nothing runs); target {run_target(config, cores):.1f} s "
          f"of numerics per sized job; refined n from {source}")
    print(f"{'rule':<18}{'jobs':>5}{'expected job s':>16}{'core s':>9}{'longest':>9}{'threads >1':>11}")
    for rule, group in per_rule.items():
        print(f"{rule:<18}{len(group):>5}{sum(j.seconds for j in group):>16.1f}"
              f"{sum(j.seconds * j.threads for j in group):>9.1f}{max(j.seconds for j in group):>9.1f}"
              f"{sum(j.threads > 1 for j in group):>11}")
    core_seconds = sum(j.seconds * j.threads for j in jobs)
    print(f"{'total':<18}{len(jobs):>5}{sum(j.seconds for j in jobs):>16.1f}{core_seconds:>9.1f}")
    total, path = critical_path(jobs)
    print()
    print_chain(total, path, f"expected seconds, {cores} cores")
    print(f"wall time: at least max(critical path, core seconds / cores) = {max(total, core_seconds / cores):.1f} s "
          f"(core seconds / cores = {core_seconds / cores:.1f} s); list-scheduled by priority on {cores} cores: "
          f"{simulated_wall(jobs, cores):.1f} s")
    return 0


def table(jobs: list[dict]) -> list[dict]:
    rows: dict[str, dict] = defaultdict(lambda: {"jobs": 0, "time": 0.0, "numerics": 0.0, "longest": 0.0})
    for job in jobs:
        row = rows[job["rule"]]
        duration = job["end"] - job["start"]
        row["jobs"] += 1
        row["time"] += duration
        row["numerics"] += job["numerics"] or 0.0
        row["longest"] = max(row["longest"], duration)
    order = ["task_data", "train", "extract", "align_part", "align", "claims", "figures", "theory_residuals",
             "summary"]
    names = sorted(rows, key=lambda r: (order.index(r) if r in order else len(order), r))
    return [dict(rule=name, **rows[name]) for name in names]


def render(rows: list[dict], markdown: bool) -> str:
    total = {"rule": "total", "jobs": sum(r["jobs"] for r in rows), "time": sum(r["time"] for r in rows),
             "numerics": sum(r["numerics"] for r in rows), "longest": max((r["longest"] for r in rows), default=0)}
    head = ["rule", "jobs", "job time (s)", "numerics (s)", "overhead (s)", "overhead %", "longest job (s)"]
    lines = []
    for r in rows + [total]:
        overhead = r["time"] - r["numerics"]
        share = 100 * overhead / r["time"] if r["time"] else 0.0
        lines.append([r["rule"], f"{r['jobs']}", f"{r['time']:.1f}", f"{r['numerics']:.1f}", f"{overhead:.1f}",
                      f"{share:.0f} %", f"{r['longest']:.1f}"])
    if markdown:
        out = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
        out += ["| " + " | ".join(f"**{c}**" if line[0] == "total" else c for c in line) + " |" for line in lines]
        return "\n".join(out)
    widths = [max(len(str(x)) for x in col) for col in zip(head, *lines)]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    return "\n".join([fmt.format(*head)] + [fmt.format(*line) for line in lines])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configfile", type=Path, default=REPO / "config.yaml")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--keep", type=Path, help="run in this (new) folder and keep it; default: a temp folder")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--jobs", action="store_true", help="also list every job with its start, end and numerics")
    parser.add_argument("--critical-path", action="store_true",
                        help="also print the longest chain of dependent jobs, in job seconds")
    parser.add_argument("--from", dest="from_dir", type=Path,
                        help="analyse this finished run's folder (its .snakemake/metadata) instead of running")
    parser.add_argument("--plan-cores", type=int, metavar="N",
                        help="predict the jobs and critical path on N cores from alignpipe.jobsize; runs nothing")
    parser.add_argument("--refined-from", type=Path, metavar="RESULTS",
                        help="with --plan-cores: the refined n of a finished run's RESULTS/<task>/refine.json")
    parser.add_argument("snakemake_args", nargs="*", help="extra snakemake arguments (after --)")
    args = parser.parse_args(argv)

    if args.plan_cores is not None:
        return plan_report(args.configfile.resolve(), args.plan_cores, args.refined_from)
    if args.from_dir is not None:
        jobs = jobs_of(args.from_dir)
        if not jobs:
            parser.error(f"--from {args.from_dir}: no job records in its .snakemake/metadata")
        print(f"run folder: {args.from_dir} (not rerun)")
        print(render(table(jobs), args.markdown))
        busy = sum(j["end"] - j["start"] for j in jobs)
        span = max(j["end"] for j in jobs) - min(j["start"] for j in jobs)
        print(f"\nfirst job start to last job end: {span:.1f} s; summed job time {busy:.1f} s")
        print_chain(*critical_path(dependency_graph(jobs)), "job table")
        return 0

    workdir = args.keep or Path(tempfile.mkdtemp(prefix="bench_pipeline_"))
    if args.keep:
        if args.keep.exists() and any(args.keep.iterdir()):
            parser.error(f"--keep {args.keep}: the folder must be new or empty (the run is from scratch)")
        args.keep.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    try:
        wall, start_stamp, proc = run(args.configfile.resolve(), workdir, args.cores, args.snakemake_args)
        load_after = os.getloadavg()
        if proc.returncode != 0:
            print(proc.stdout[-3000:], proc.stderr[-5000:], sep="\n", file=sys.stderr)
            return proc.returncode
        jobs = jobs_of(workdir)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    rows = table(jobs)
    busy = sum(j["end"] - j["start"] for j in jobs)
    first = min(j["start"] for j in jobs)
    stretches = lone_stretches(jobs)
    longest = max(stretches, key=lambda x: x[1] - x[0], default=None)
    final = stretches[-1] if stretches and abs(stretches[-1][1] - max(j["end"] for j in jobs)) < 0.5 else None
    print(f"configfile: {args.configfile}   cores: {args.cores}   machine: {platform.machine()}, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(render(rows, args.markdown))
    print()
    print(f"wall time: {wall:.1f} s ({wall / 60:.1f} min) on {args.cores} cores; cores busy "
          f"{100 * busy / (wall * args.cores):.0f} % of the wall time")
    print(f"snakemake before the first job: {first - start_stamp:.1f} s; after the last job: "
          f"{start_stamp + wall - max(j['end'] for j in jobs):.1f} s")

    def describe(stretch):
        start, end, _ = stretch
        alone = [j for j in jobs if min(j["end"], end) - max(j["start"], start) > 0.5]
        names = ", ".join(f"{j['rule']} {min(j['end'], end) - max(j['start'], start):.1f} s" for j in alone)
        return f"{end - start:.1f} s, {start - start_stamp:.0f}-{end - start_stamp:.0f} s after the start: {names}"

    print(f"one job alone: {sum(e - s for s, e, _ in stretches):.1f} s in all; longest stretch "
          + (describe(longest) if longest else "none"))
    print("serial tail (the run ended with one job alone): " + (describe(final) if final else "none"))
    print(f"load average (1 min) before: {load_before[0]:.2f}, after: {load_after[0]:.2f}")
    if args.critical_path:
        print_chain(*critical_path(dependency_graph(jobs)), "job table")
    if args.jobs:
        print()
        for job in jobs:
            numerics = "" if job["numerics"] is None else f"{job['numerics']:7.1f}"
            print(f"{job['start'] - start_stamp:7.1f} {job['end'] - start_stamp:7.1f} {job['end'] - job['start']:6.1f} "
                  f"{numerics:>7}  {job['rule']:<16} {Path(job['log']).name if job['log'] else ''}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
