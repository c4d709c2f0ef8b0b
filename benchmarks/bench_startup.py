"""Start-up of the command line: `pyxl-del --version`, `--help`, and each command group's own start-up (its
imports and the config, up to the moment it reads data), as a ratio to `python -c pass` on the same machine.

A command's own start-up is measured by running it on a file that does not exist: it imports what it needs,
loads the config and stops at reading the data (exit 2). Median of --repeat runs each (default 15), in fresh
processes.

    python benchmarks/bench_startup.py [--repeat 15]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGETS = {"--version": 0.3, "--help": 0.3, "command": 0.6}  # seconds, issue 13


def _time(args: list[str], repeat: int, cwd: Path) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(args, cwd=cwd, capture_output=True, check=False)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    cli = [sys.executable, "-m", "pyxl_del.cli"]
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        missing = str(cwd / "missing.parquet")
        runs = {
            "python -c pass": ([sys.executable, "-c", "pass"], None),
            "pyxl-del --version": ([*cli, "--version"], TARGETS["--version"]),
            "pyxl-del --help": ([*cli, "--help"], TARGETS["--help"]),
            "pyxl-del report (to reading)": ([*cli, "report", missing, "--out", "out/", "-q"], TARGETS["command"]),
            "pyxl-del backtest (to reading)": ([*cli, "backtest", missing, "--origins", "3", "-q"], TARGETS["command"]),
            "pyxl-del el (to reading)": ([*cli, "el", missing], TARGETS["command"]),
            "pyxl-del optimise (to reading)": ([*cli, "optimise", missing], TARGETS["command"]),
            "pyxl-del decide (to reading)": ([*cli, "decide", missing], TARGETS["command"]),
        }
        baseline = _time(runs["python -c pass"][0], args.repeat, cwd)
        print(f"{'run':34} {'median s':>9} {'x python':>9} {'target s':>9}")
        for name, (command, target) in runs.items():
            seconds = baseline if name == "python -c pass" else _time(command, args.repeat, cwd)
            verdict = "" if target is None else ("ok" if seconds <= target else "OVER")
            print(f"{name:34} {seconds:9.3f} {seconds / baseline:9.1f} {'' if target is None else target:>9} {verdict}")


if __name__ == "__main__":
    main()
