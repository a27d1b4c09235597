"""Claim: SIGKILL at any moment of `kgpipe run` loses nothing: after the kills, a plain `kgpipe run` ends with
artifacts byte-identical to an uninterrupted run's, every stage up to date and no temporary file left.

The sample pipeline (every stage, ingest to export; the embed stage checkpointing every epoch so that kills
inside training exercise its resume) runs once cleanly in a fresh folder; then, round after round in fresh
folders, `kgpipe run` is started and killed (the whole process group, SIGKILL) at a random moment between 0.5 s
and --window of the clean run's time after its start, again and again (each run continues what the killed
ones committed, so the kills walk through the stages) until a run finishes before its kill or the round has
--max-per-round kills; then it runs to the end and is compared file by file with the clean run. Rounds go on
until --kills kills have landed while `kgpipe run` was running. Reports which stage each kill hit, whether the
artifacts are equal, and what the kills cost in time
against the clean run (a ratio: kills and the resumed work over one uninterrupted run).

Usage: python benchmarks/kill_test.py [--kills 24] [--max-per-round 8] [--window 1.0] [--seed 0] [--no-write]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section  # noqa: E402

from tests import kill_harness  # noqa: E402
from tests.sample_pipeline import write_sample_pipeline  # noqa: E402

# Small enough for several rounds, with enough epochs that a kill can land inside training.
EMBED = {"embedding_dim": 32, "epochs": 20, "checkpoint_minutes": 0,
         "early_stopping": {"frequency": 5, "patience": 5}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=24, help="kills that land while kgpipe runs, in all")
    parser.add_argument("--max-per-round", type=int, default=8)
    parser.add_argument("--window", type=float, default=1.0, help="kills within this fraction of a clean run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    rng = random.Random(args.seed)

    with tempfile.TemporaryDirectory(prefix="kgpipe-kill-") as tmp:
        (Path(tmp) / "clean").mkdir()
        clean = write_sample_pipeline(Path(tmp) / "clean", EMBED)
        clean_seconds = kill_harness.timed_run(clean)
        reference = kill_harness.artifact_digests(clean)
        rows, hits, all_equal, total_kills = [], Counter(), True, 0
        round_no = 0
        while total_kills < args.kills:
            (Path(tmp) / f"round{round_no}").mkdir()
            pipeline = write_sample_pipeline(Path(tmp) / f"round{round_no}", EMBED)
            started = time.perf_counter()
            report = kill_harness.KillReport(clean_seconds=clean_seconds)
            # kill until a run outlives its kill (it finished) or the round has its share; each run continues
            # what the killed ones committed, so the kills walk through the stages
            while len(report.kills) < args.max_per_round and total_kills + len(report.kills) < args.kills:
                moment = rng.uniform(0.5, max(1.0, args.window * clean_seconds))
                report.kills.append(kill_harness.kill_at(pipeline, moment))
                if not report.kills[-1].was_running:
                    break
            report = kill_harness.finish_and_compare(pipeline, reference, report)
            elapsed = time.perf_counter() - started
            landed = [k.stage or "(before a stage / after the run)" for k in report.kills if k.was_running]
            hits.update(landed)
            total_kills += sum(k.was_running for k in report.kills)
            all_equal &= report.equal and not report.leftovers and not report.stale_after
            rows.append(f"| {round_no} | {sum(k.was_running for k in report.kills)} | {', '.join(landed)} | "
                        f"{'yes' if report.equal else 'NO: ' + ', '.join(report.differing[:5])} | "
                        f"{len(report.leftovers)} {' '.join(Path(p).name for p in report.leftovers[:3])} | "
                        f"{', '.join(report.stale_after) or 'none'} | "
                        f"{elapsed:.0f} s ({elapsed / clean_seconds:.2f}x) |")
            print(rows[-1], flush=True)
            round_no += 1

    body = "\n".join([
        f"Clean run of the sample pipeline (all six stages): {clean_seconds:.0f} s, {len(reference)} artifact files.",
        f"{total_kills} kills landed while `kgpipe run` was running; by stage: "
        + ", ".join(f"{stage} {n}" for stage, n in sorted(hits.items())) + ".",
        "",
        "| round | kills | stage running at each kill | artifacts equal to the clean run's | temporary files "
        "left | stale stages after | time with kills (x clean run) |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
        "Result: " + ("every round ended with the clean run's bytes, no leftovers" if all_equal else "FAILED") + ".",
    ])
    command = "python benchmarks/kill_test.py " + " ".join(sys.argv[1:])
    write_section("kill_test", "Kill test: SIGKILL at random moments, then one run", body, command.strip(),
                  print_only=args.no_write)
    if not all_equal:
        sys.exit(1)


if __name__ == "__main__":
    main()
