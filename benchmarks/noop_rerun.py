"""Claim: a no-op `kgpipe run` (nothing changed) costs about what it costs to check the pipeline's files
by hand, and well under a second.

Compares, in one session on the same files, each in a fresh process:
  kgpipe     - `kgpipe run PIPELINE`, every stage up to date;
  plain      - Python that parses the same YAML and sha256-hashes every dep and out with hashlib
               (the least work any correct staleness check must do without a cache);
  plain+libs - the same, after importing the libraries kgpipe's CLI stands on (typer, rich, pydantic,
               networkx, filelock): the floor for any CLI built on them.
Reports medians over --repeat runs and the ratios.

Usage: python benchmarks/noop_rerun.py [--pipeline pipelines/default.yaml] [--repeat 15] [--no-write]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section

PLAIN = r"""
import hashlib, os, sys, yaml
if "--libs" in sys.argv:
    import typer, rich.console, rich.progress, pydantic, networkx, filelock
from pathlib import Path
pipe = Path(sys.argv[1]).resolve()
cfg = yaml.safe_load(pipe.read_text())
root = (pipe.parent / cfg.get("root", ".")).resolve()
paths = []
for stage in cfg["stages"].values():
    for v in stage.get("deps", {}).values():
        paths += v if isinstance(v, list) else [v]
paths += [str(p) for p in (root / cfg.get("artifacts", "artifacts")).rglob("*") if p.is_file()]
def h(p):
    p = root / p
    files = sorted(x for x in p.rglob("*") if x.is_file()) if p.is_dir() else [p]
    d = hashlib.sha256()
    for f in files:
        d.update(f.read_bytes())
    return d.hexdigest()
print(len([h(p) for p in paths]))
"""


def timed(cmd: list[str], cwd: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pipeline", default="pipelines/default.yaml")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    repo = Path(__file__).resolve().parents[1]
    kgpipe = [str(Path(sys.executable).parent / "kgpipe"), "run", args.pipeline]
    subprocess.run(kgpipe, cwd=repo, check=True, capture_output=True)  # bring everything up to date
    out = subprocess.run(kgpipe, cwd=repo, check=True, capture_output=True, text=True).stdout
    assert "ran 0 stage(s)" in out, out
    plain = [sys.executable, "-c", PLAIN, args.pipeline]
    k_times, p_times, l_times = [], [], []
    for _ in range(args.repeat):  # interleaved, so drift on a noisy machine hits all alike
        k_times.append(timed(kgpipe, repo))
        p_times.append(timed(plain, repo))
        l_times.append(timed([*plain, "--libs"], repo))
    k, p, lib = (statistics.median(t) for t in (k_times, p_times, l_times))
    body = (f"| what (fresh process each) | median wall time (s), {args.repeat} runs |\n|---|---|\n"
            f"| `kgpipe run` no-op | {k:.3f} |\n"
            f"| plain: parse YAML + sha256 of every dep and out | {p:.3f} |\n"
            f"| plain+libs: the same after importing typer, rich, pydantic, networkx, filelock | {lib:.3f} |\n"
            f"| ratio kgpipe / plain | {k / p:.2f} |\n"
            f"| ratio kgpipe / plain+libs | {k / lib:.2f} |\n")
    write_section("noop_rerun", "No-op re-run", body,
                  f"python benchmarks/noop_rerun.py --pipeline {args.pipeline} --repeat {args.repeat}",
                  print_only=args.no_write)


if __name__ == "__main__":
    main()
