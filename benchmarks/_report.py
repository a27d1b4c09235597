"""Shared by the benchmark scripts: machine facts and writing one section of docs/benchmarks.md."""

from __future__ import annotations

import os
import platform
import re
import sys
from datetime import UTC, datetime
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"


def write_section(key: str, title: str, body: str, command: str, *, print_only: bool = False) -> None:
    """Replace (or append) the section marked <!-- bench:key --> in docs/benchmarks.md; with print_only (the
    scripts' --no-write) print the body and leave the file alone."""
    if print_only:
        print(body)
        return
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = (f"<!-- bench:{key} -->\n## {title}\n\n"
               f"- date: {stamp}\n- machine: {machine()}\n- command: `{command}`\n\n{body.strip()}\n"
               f"<!-- /bench:{key} -->")
    text = DOC.read_text(encoding="utf-8") if DOC.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"<!-- bench:{re.escape(key)} -->.*?<!-- /bench:{re.escape(key)} -->", re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section + "\n"
    DOC.write_text(text, encoding="utf-8")
    print(section, file=sys.stdout)
