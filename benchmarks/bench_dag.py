"""How long `snakemake -n` takes to build the DAG of configs/paper_scale.yaml (target: < 30 s).

Run: python benchmarks/bench_dag.py   (prints a table; tiny fake MNIST/CIFAR-10 files stand in
for the real ones, which only the config check reads).
"""
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
from test_paper_scale import paper_scale_with_fake_images  # noqa: E402


def main(repeats: int = 3) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config = paper_scale_with_fake_images(Path(tmp))
        config["results"] = str(Path(tmp) / "results_paper")
        path = Path(tmp) / "paper_scale.yaml"
        path.write_text(yaml.safe_dump(config))
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--quiet", "rules", "--configfile",
                                   str(path), "--cores", "2"], cwd=REPO, capture_output=True, text=True)
            times.append(time.perf_counter() - start)
            if proc.returncode != 0:
                raise SystemExit(proc.stderr[-3000:])
        summary = next(line for line in proc.stderr.splitlines() if line.startswith("alignment pipeline"))
    print(summary)
    print(f"{'run':>4} {'seconds':>8}")
    for i, t in enumerate(times, 1):
        print(f"{i:>4} {t:8.2f}")
    print(f"best {min(times):8.2f}  (target < 30 s)")


if __name__ == "__main__":
    main()
