"""Claim: making the stages run on Ray (issue 16) did not slow the local engine: entity resolution's CPU time
at 1M mentions and the extract stage's words/s ratio to bare nlp.pipe stay within 5% of the code before it.

The code before is a git revision (--base; the default is the parent of the commit that added kgpipe/engine),
exported with `git archive` into a temporary folder. Every run is a fresh process with PYTHONPATH on one tree,
old and new interleaved (old, new, old, new, ...) so that a slow spell of the shared machine hits both alike.

- Entity resolution: the same synthetic mentions (this tree's er_scale generator, fixed seed) passed to each
  tree's `resolve()` as Record objects (the input both versions take); the CPU seconds of `resolve()` alone,
  and the hash of the cluster labels, which must be equal.
- Extract: each tree's own `benchmarks/extract_speed.py --no-write` (bare nlp.pipe and the stage, interleaved
  inside it); its median ratio for the default patterns, one and two processes, read from its table.

Usage: python benchmarks/local_regression.py [--base REV] [--size 1000000] [--repeat 3] [--no-extract] [--no-write]
       python benchmarks/local_regression.py --one-resolve N   (internal: this tree's resolve, prints JSON)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _er import table
from _report import write_section

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve()


def default_base() -> str:
    """The parent of the first commit that touched kgpipe/engine (the local engine as it was before Ray)."""
    first = subprocess.run(["git", "log", "--reverse", "--format=%H", "--", "kgpipe/engine"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.split()[0]
    return subprocess.run(["git", "rev-parse", "--short", f"{first}^"], cwd=REPO, capture_output=True, text=True,
                          check=True).stdout.strip()


def export(rev: str, into: Path) -> Path:
    """The tree of `rev` as files (git archive), without touching the working tree; plus placeholders for the
    installed package's spaCy entry points that `rev` lacks (see entry_point_placeholders)."""
    archive = subprocess.run(["git", "archive", "--format=tar", rev], cwd=REPO, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    entry_point_placeholders(into)
    return into


def entry_point_placeholders(tree: Path) -> list[str]:
    """spaCy loads every installed `spacy_*` entry point when it builds a pipeline, and the installed kgpipe's
    point at this tree's modules; an older tree on PYTHONPATH may not have them (kgpipe.nlp.transformer_ner
    came later), so spaCy fails to import them. Each missing module gets a placeholder whose factory raises if
    called: the old tree's pipelines never use it. Returns the modules written."""
    from importlib.metadata import distribution

    written = []
    for point in distribution("kgpipe").entry_points:
        if not point.group.startswith("spacy_"):
            continue
        module, _, attribute = point.value.partition(":")
        path = tree.joinpath(*module.split(".")).with_suffix(".py")
        if path.exists() or not attribute:
            continue
        path.write_text(f'"""Placeholder for the installed entry point {point.name}: not in this revision."""\n\n\n'
                        f"def {attribute}(*args, **kwargs):\n"
                        f"    raise RuntimeError('{point.name} is not in this revision of kgpipe')\n",
                        encoding="utf-8")
        written.append(module)
    return written


def one_resolve(n: int) -> dict:
    """resolve() of whichever kgpipe is on the path, on this script's tree's generator."""
    import hashlib

    from er_scale import generate

    from kgpipe.kg.resolve import Record, resolve

    mentions, _ = generate(n)
    records = [Record(str(i), name) for i, name in enumerate(mentions)]
    del mentions
    t0, c0 = time.perf_counter(), time.process_time()
    result = resolve(records)
    return {"cpu_seconds": round(time.process_time() - c0, 1), "seconds": round(time.perf_counter() - t0, 1),
            "clusters_sha": hashlib.sha256(result.labels.tobytes()).hexdigest()[:16],
            "load_average": round(os.getloadavg()[0], 1)}


def run_resolve(tree: Path, n: int) -> dict:
    env = {**os.environ, "PYTHONPATH": f"{tree}{os.pathsep}{HERE.parent}", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(HERE), "--one-resolve", str(n)], capture_output=True, text=True,
                          env=env, cwd=tree)
    if proc.returncode:
        raise SystemExit(f"resolve in {tree}: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


ROW = re.compile(r"^\|\s*default\s*\|\s*(\d)\s*\|.*\|\s*\**([0-9.]+)\**\s*\|\s*([0-9.]+)\s*\|\s*$")


def run_extract(tree: Path, copies: int, repeat: int) -> dict[int, float]:
    """Each tree's extract_speed: {processes: median ratio} of the default patterns."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    proc = subprocess.run([sys.executable, "benchmarks/extract_speed.py", "--copies", str(copies), "--repeat",
                           str(repeat), "--no-write"], capture_output=True, text=True, env=env, cwd=tree)
    if proc.returncode:
        raise SystemExit(f"extract_speed in {tree}: {proc.stderr[-2000:]}")
    ratios = {int(m.group(1)): float(m.group(3)) for line in proc.stdout.splitlines() if (m := ROW.match(line))}
    if not ratios:
        raise SystemExit(f"extract_speed in {tree}: no 'default' rows in its table:\n{proc.stdout[-2000:]}")
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", default=None, help="the old revision (default: before kgpipe/engine existed)")
    parser.add_argument("--size", type=int, default=1_000_000, help="mentions for entity resolution")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved runs of each tree")
    parser.add_argument("--no-extract", action="store_true", help="entity resolution only")
    parser.add_argument("--copies", type=int, default=4, help="extract_speed --copies")
    parser.add_argument("--extract-repeat", type=int, default=3, help="extract_speed --repeat (inside each run)")
    parser.add_argument("--one-resolve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if args.one_resolve:
        print(json.dumps(one_resolve(args.one_resolve)))
        return
    base = args.base or default_base()
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                          check=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="kgpipe-old-") as tmp:
        trees = {"old": export(base, Path(tmp)), "new": REPO}
        resolve_runs: dict[str, list[dict]] = {"old": [], "new": []}
        extract_runs: dict[str, list[dict[int, float]]] = {"old": [], "new": []}
        for _ in range(args.repeat):
            for which in ("old", "new"):
                resolve_runs[which].append(run_resolve(trees[which], args.size))
                print(which, resolve_runs[which][-1], flush=True)
                if not args.no_extract:
                    extract_runs[which].append(run_extract(trees[which], args.copies, args.extract_repeat))
                    print(which, extract_runs[which][-1], flush=True)
    hashes = {r["clusters_sha"] for runs in resolve_runs.values() for r in runs}
    cpu = {w: statistics.median(r["cpu_seconds"] for r in runs) for w, runs in resolve_runs.items()}
    rows = [["entity resolution CPU s (median)", args.size, cpu["old"], cpu["new"], f"{cpu['new'] / cpu['old']:.3f}",
             "; ".join(f"{a['cpu_seconds']}/{b['cpu_seconds']}" for a, b in zip(resolve_runs["old"],
                                                                                 resolve_runs["new"], strict=True))]]
    if not args.no_extract:
        for processes in sorted(extract_runs["new"][0]):
            old = statistics.median(r[processes] for r in extract_runs["old"] if processes in r)
            new = statistics.median(r[processes] for r in extract_runs["new"])
            rows.append([f"extract / bare nlp.pipe words/s (median ratio), {processes} process(es)", "-", old, new,
                         f"{new / old:.3f}", "; ".join(f"{a.get(processes)}/{b[processes]}" for a, b in zip(
                             extract_runs["old"], extract_runs["new"], strict=True))])
    loads = [r["load_average"] for runs in resolve_runs.values() for r in runs]
    body = (f"Old: `{base}` (the local engine before Ray); new: `{head}`. {args.repeat} runs of each, interleaved "
            "(old, new, ...), each in a fresh process with one thread. Entity resolution: the same synthetic "
            f"mentions (er_scale's generator) as Record objects into each tree's `resolve()`; clusters "
            f"{'identical in every run' if len(hashes) == 1 else 'DIFFERENT: ' + ', '.join(sorted(hashes))}. "
            + ("" if args.no_extract else "Extract: each tree's own extract_speed (default patterns), its median "
               "ratio of the stage's words/s to bare nlp.pipe. ")
            + f"The machine's 1-minute load average after the resolve runs: {min(loads)}-{max(loads)} "
            "(2 cores). The claim: new / old within 5% (CPU time at most 1.05; ratios at least 0.95).\n\n"
            + table(["measure", "mentions", "old", "new", "new / old", "each repeat (old/new)"], rows))
    command = f"python benchmarks/local_regression.py --base {base} --size {args.size} --repeat {args.repeat}" + (
        " --no-extract" if args.no_extract else f" --copies {args.copies} --extract-repeat {args.extract_repeat}")
    write_section("local_regression", "The local engine before and after the Ray work", body, command,
                  print_only=args.no_write)
    if len(hashes) > 1:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
