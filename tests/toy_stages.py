"""Tiny stage types for testing the runner: they read and write text files and log each call."""

from __future__ import annotations

import os
from pathlib import Path

from kgpipe.registry import register_stage
from kgpipe.stage import InputSpec, OutputSpec, StageContext, StageParams, StageType, ValidationContext

CALLS: list[str] = []


class ToyParams(StageParams):
    prefix: str = ""
    fail: str | None = None   # "error" raises RuntimeError, "interrupt" raises KeyboardInterrupt
    unused: int = 0           # a param that changes nothing in the output


@register_stage
class ToyUpper(StageType):
    """Upper-cases its input, after an optional prefix."""

    name = "toy_upper"
    version = 1
    Params = ToyParams
    inputs = (InputSpec("source"),)
    outputs = (OutputSpec("result", "result.txt"),)

    def run(self, ctx: StageContext) -> dict:
        CALLS.append(ctx.stage)
        text = ctx.input("source").read_text()
        ctx.output("result").write_text("half-written")  # a failure below must not leak this
        marker = ctx.scratch() / "attempts"
        marker.write_text(marker.read_text() + "x" if marker.exists() else "x")
        if ctx.params.fail == "error":
            raise RuntimeError("boom")
        if ctx.params.fail == "interrupt":
            raise KeyboardInterrupt
        ctx.output("result").write_text(ctx.params.prefix + text.upper())
        return {"chars": len(text)}


@register_stage
class ToyConcat(StageType):
    """Concatenates several files (or the .txt files in folders) into a folder output."""

    name = "toy_concat"
    version = 1
    Params = ToyParams
    inputs = (InputSpec("parts", many=True),)
    outputs = (OutputSpec("folder", "joined", folder=True),)

    def run(self, ctx: StageContext) -> None:
        CALLS.append(ctx.stage)
        folder = ctx.output("folder")
        folder.mkdir(exist_ok=True)
        files = [f for p in ctx.input("parts") for f in (sorted(p.rglob("*.txt")) if p.is_dir() else [p])]
        (folder / "all.txt").write_text("".join(f.read_text() for f in files))
        (folder / "count.txt").write_text(str(len(files)))


class SlowParams(StageParams):
    steps: int = 8
    delay: float = 0.05


@register_stage
class ToySlow(StageType):
    """Copies its input into a folder, one numbered file per step, sleeping between steps: a stage slow enough
    to be killed in the middle (the kill test)."""

    name = "toy_slow"
    version = 1
    Params = SlowParams
    inputs = (InputSpec("source"),)
    outputs = (OutputSpec("folder", "steps", folder=True), OutputSpec("last", "last.txt"))

    def run(self, ctx: StageContext) -> dict:
        import time

        text = ctx.input("source").read_text() if ctx.input("source").is_file() else \
            "".join(f.read_text() for f in sorted(ctx.input("source").glob("*.txt")))
        folder = ctx.output("folder")
        folder.mkdir(exist_ok=True)
        for step in range(ctx.params.steps):
            (folder / f"{step:03d}.txt").write_text(f"{step}:{text}")
            time.sleep(ctx.params.delay)
        ctx.output("last").write_text(text[::-1])
        return {"steps": ctx.params.steps}


@register_stage
class ToyChecked(ToyUpper):
    """toy_upper whose validate() refuses the prefix 'bad', as a real stage refuses an unknown model name."""

    name = "toy_checked"

    def validate(self, ctx: ValidationContext) -> None:
        CALLS.append(f"validate {ctx.stage}")
        if ctx.params.prefix == "bad":
            raise ctx.error("prefix 'bad' is not allowed", param="prefix", hint="use another prefix")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def age(path: Path, seconds: float = 10.0) -> None:
    """Move a file's mtime into the past, so the hash cache treats it as settled."""
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns - int(seconds * 1e9)))


@register_stage
class ToyProbe(StageType):
    """Writes into its folder output without creating it, and records what it found when it started: the
    runner hands a stage an empty temporary folder for a folder output and only a free name for a file."""

    name = "toy_probe"
    version = 1
    Params = ToyParams
    inputs = (InputSpec("source"),)
    outputs = (OutputSpec("folder", "probe", folder=True), OutputSpec("file", "probe.txt"))

    def run(self, ctx: StageContext) -> dict:
        folder, file = ctx.output("folder"), ctx.output("file")
        found = {"folder_is_dir": folder.is_dir(), "folder_entries": len(list(folder.iterdir())),
                 "file_exists": file.exists()}
        (folder / "copy.txt").write_text(ctx.input("source").read_text())
        file.write_text("ok")
        return found


@register_stage
class ToyRemote(ToyUpper):
    """toy_upper that, on a distributed engine, runs as a whole on a worker (as embed and inject do), and says
    in which process it ran."""

    name = "toy_remote"
    remote = True

    def run(self, ctx: StageContext) -> dict:
        summary = super().run(ctx)
        return {**summary, "pid": os.getpid(), "progress_forwarded": ctx.on_progress is not None}
