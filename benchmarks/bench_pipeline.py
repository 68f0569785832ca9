"""Run the pipeline from scratch and show where its time goes, per rule.

    python benchmarks/bench_pipeline.py                        # the default config, 2 cores
    python benchmarks/bench_pipeline.py --configfile tests/configs/tiny.yaml --cores 2
    python benchmarks/bench_pipeline.py --keep /tmp/run        # keep the run's folder (else a temp folder)

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
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
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
    """One entry per job from Snakemake's metadata: rule, start, end, log file, and its timing line."""
    jobs: dict[tuple, dict] = {}
    for path in glob.glob(str(workdir / ".snakemake" / "metadata" / "*")):
        with open(path) as handle:
            record = json.load(handle)
        key = (record["rule"], tuple(record.get("log") or ()), record.get("job_hash"))
        job = jobs.setdefault(key, {"rule": record["rule"], "log": (record.get("log") or [None])[0],
                                    "start": record["starttime"], "end": record["endtime"]})
        job["start"], job["end"] = min(job["start"], record["starttime"]), max(job["end"], record["endtime"])
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
    parser.add_argument("snakemake_args", nargs="*", help="extra snakemake arguments (after --)")
    args = parser.parse_args(argv)

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
    if args.jobs:
        print()
        for job in jobs:
            numerics = "" if job["numerics"] is None else f"{job['numerics']:7.1f}"
            print(f"{job['start'] - start_stamp:7.1f} {job['end'] - start_stamp:7.1f} {job['end'] - job['start']:6.1f} "
                  f"{numerics:>7}  {job['rule']:<16} {Path(job['log']).name if job['log'] else ''}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
