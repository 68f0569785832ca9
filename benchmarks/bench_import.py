"""Import time of alignlib (issue 19, item 4): each import in a fresh Python process, timed inside it
with perf_counter around the import statement alone (interpreter start-up excluded), median of
--reps runs, interleaved so that a busy machine slows every row alike; one unrecorded warm-up run
first (bytecode compiled, files in the page cache).

    python benchmarks/bench_import.py [--reps 5]

"seconds": the import alone in a fresh process (torch included where the module loads it).
"beyond torch": the same import timed in a fresh process that has just imported torch: what alignlib
adds to the torch import that any user of it pays anyway (timed in one process, so the machine's
noise in torch's own 2 s does not swamp it). ``import alignlib`` loads no torch (its entry points
are loaded on first use). The target: ``import alignlib.metrics`` under 1.2 s beyond torch.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

STATEMENTS = ("import torch", "import alignlib", "import alignlib.metrics", "import alignlib.stats")

TIMER = ("{before}; import time; t = time.perf_counter(); {stmt}; t = time.perf_counter() - t; "
         "import sys; print(t, 'torch' in sys.modules)")


def time_import(stmt: str, after_torch: bool = False) -> tuple[float, bool]:
    """Seconds taken by ``stmt`` in a fresh interpreter (that has imported torch first if
    ``after_torch``), and whether torch is loaded afterwards."""
    code = TIMER.format(before="import torch" if after_torch else "pass", stmt=stmt)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    seconds, torch_loaded = out.stdout.split()
    return float(seconds), torch_loaded == "True"


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5, help="fresh processes per import (median)")
    args = parser.parse_args(argv)
    for stmt in STATEMENTS:
        time_import(stmt)                       # warm-up, not recorded
    alone: dict[str, list[float]] = {stmt: [] for stmt in STATEMENTS}
    after: dict[str, list[float]] = {stmt: [] for stmt in STATEMENTS[1:]}
    loads_torch = {}
    for _ in range(args.reps):
        for stmt in STATEMENTS:
            seconds, loads_torch[stmt] = time_import(stmt)
            alone[stmt].append(seconds)
            if stmt in after:
                after[stmt].append(time_import(stmt, after_torch=True)[0])
    import torch

    lines = [f"import time, median of {args.reps} fresh processes each (torch {torch.__version__}, Python "
             f"{sys.version.split()[0]})", "",
             "| import | seconds | range | beyond torch | range |", "|---|---|---|---|---|"]
    for stmt in STATEMENTS:
        row = f"| `{stmt}` | {statistics.median(alone[stmt]):.3f} | {min(alone[stmt]):.3f}-{max(alone[stmt]):.3f} |"
        if stmt in after:
            note = "" if loads_torch[stmt] else " (loads no torch)"
            row += (f" {statistics.median(after[stmt]):.3f}{note} | "
                    f"{min(after[stmt]):.3f}-{max(after[stmt]):.3f} |")
        else:
            row += " - | - |"
        lines.append(row)
    text = "\n".join(lines)
    print(text)
    return text


if __name__ == "__main__":
    main()
