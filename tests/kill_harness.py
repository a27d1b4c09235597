"""The kill test's harness: SIGKILL `kgpipe run` at chosen moments, run again, and compare with a clean run.

Used by tests/test_kill.py (a toy pipeline, a few kills, in `make test`) and benchmarks/kill_test.py (the sample
pipeline through every stage, 20 kills or more). What it checks after the kills: the final run's artifacts are
byte for byte a clean run's, every stage is up to date, and no temporary file is left anywhere in the project.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from kgpipe.atomic import TMP_MARKER
from kgpipe.config import load_pipeline
from kgpipe.hashing import iter_files

REPO = Path(__file__).resolve().parents[1]


def artifact_digests(pipeline: Path) -> dict[str, str]:
    """sha256 of every file of every stage's outs (kgpipe's own marker files left out), by stage, out and path
    inside the out: comparable between two copies of a pipeline wherever their artifacts lie."""
    pipe = load_pipeline(pipeline)
    digests = {}
    for stage in pipe.stages.values():
        for name, out in stage.outs.items():
            files = iter_files(out) if out.is_dir() else [out] if out.exists() else []
            for file in files:
                inside = file.relative_to(out).as_posix() if out.is_dir() else ""
                digests[f"{stage.name}.{name}/{inside}"] = hashlib.sha256(file.read_bytes()).hexdigest()
    return digests


def leftovers(pipeline: Path) -> list[str]:
    """Temporary files or folders left in the workspace, the artifacts folder or beside any out. Run after a
    successful run: scratch folders (kept for a resumed attempt) are gone by then too."""
    pipe = load_pipeline(pipeline)
    places = {pipe.workspace, pipe.artifacts} | {out.parent for s in pipe.stages.values() for out in s.outs.values()}
    found = {p for place in places if place.is_dir() for p in place.rglob(f"*{TMP_MARKER}*")}
    return sorted(str(p) for p in found)


# Set by a caller whose pipeline uses stage types registered in a module of its own (the toy stages).
PRELOAD = os.environ.get("KGPIPE_KILL_PRELOAD", "")


def _command(pipeline: Path, verbose: bool = False) -> list[str]:
    preload = f"import {PRELOAD}\n" if PRELOAD else ""
    code = f"import sys\n{preload}sys.argv[0] = 'kgpipe'\nfrom kgpipe.cli import main\nmain()\n"
    return [sys.executable, "-c", code, *(["-v"] if verbose else []), "run", str(pipeline)]


def _env(extra: dict[str, str] | None) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    env.setdefault("PYSTOW_HOME", str(REPO / ".pystow"))
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(extra or {})
    return env


@dataclass
class KillRecord:
    after_s: float          # when the kill was sent, seconds after the run started
    was_running: bool       # False: the run had already finished
    stage: str | None       # the stage that was running, from the run's own output


@dataclass
class KillReport:
    clean_seconds: float
    kills: list[KillRecord] = field(default_factory=list)
    final_returncode: int = 0
    equal: bool = False
    differing: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)
    stale_after: list[str] = field(default_factory=list)


def timed_run(pipeline: Path, env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    done = subprocess.run(_command(pipeline), env=_env(env), capture_output=True, text=True, cwd=REPO)
    if done.returncode != 0:
        raise RuntimeError(f"kgpipe run failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return time.perf_counter() - started


def kill_at(pipeline: Path, after_s: float, env: dict[str, str] | None = None) -> KillRecord:
    """Start `kgpipe run`, SIGKILL its whole process group after_s seconds later (worker processes too)."""
    process = subprocess.Popen(_command(pipeline), env=_env(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               cwd=REPO, start_new_session=True, text=True)
    time.sleep(after_s)
    was_running = process.poll() is None
    if was_running:
        os.killpg(process.pid, signal.SIGKILL)
    output, _ = process.communicate()
    started = [line.split()[1].rstrip(":") for line in output.splitlines() if line.startswith("> ")]
    finished = {line.split()[1] for line in output.splitlines() if line.startswith("✓ ")}
    running = next((s for s in reversed(started) if s not in finished), None)
    return KillRecord(after_s=after_s, was_running=was_running, stage=running if was_running else None)


def kill_and_compare(pipeline: Path, reference: dict[str, str], moments: list[float], clean_seconds: float,
                     env: dict[str, str] | None = None) -> KillReport:
    """Kill a run at each moment in turn (each later run continues what the killed ones left), then run to the
    end and compare its artifacts with the reference digests of a clean run."""
    report = KillReport(clean_seconds=clean_seconds)
    for moment in moments:
        report.kills.append(kill_at(pipeline, moment, env))
    return finish_and_compare(pipeline, reference, report, env)


def finish_and_compare(pipeline: Path, reference: dict[str, str], report: KillReport,
                       env: dict[str, str] | None = None) -> KillReport:
    """Run to the end after the kills in `report`, and compare with a clean run's digests."""
    from kgpipe.runner import status

    done = subprocess.run(_command(pipeline), env=_env(env), capture_output=True, text=True, cwd=REPO)
    report.final_returncode = done.returncode
    digests = artifact_digests(pipeline)
    report.differing = sorted(k for k in set(digests) | set(reference) if digests.get(k) != reference.get(k))
    report.equal = not report.differing and done.returncode == 0
    report.leftovers = leftovers(pipeline)
    report.stale_after = [s.name for s in status(pipeline) if s.stale]
    return report
