"""Every Python code block in README.md runs against the sample pipeline; a block marked `<!-- sketch -->` on the
line before its fence (an outline such as a new stage type) is skipped, and only those.

Paths in the blocks are the repository's ("pipelines/default.yaml", "artifacts/..."): they are pointed at the
sample pipeline's file and artifacts folder before the block runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO

SKETCH = "<!-- sketch -->"


@dataclass(frozen=True)
class Block:
    line: int        # of the opening fence, 1-based
    section: str
    code: str
    sketch: bool

    @property
    def id(self) -> str:
        return f"line{self.line}-{re.sub(r'[^a-z0-9]+', '-', self.section.lower()).strip('-')}"


def python_blocks(text: str) -> list[Block]:
    blocks, section, lines = [], "", text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("## "):
            section = line[3:]
        if line.strip() == "```python":
            end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "```")
            sketch = i > 0 and lines[i - 1].strip() == SKETCH
            blocks.append(Block(i + 1, section, "\n".join(lines[i + 1:end]) + "\n", sketch))
            i = end
        i += 1
    return blocks


BLOCKS = python_blocks((REPO / "README.md").read_text(encoding="utf-8"))
RUNNABLE = [b for b in BLOCKS if not b.sketch]


def pointed_at(code: str, pipeline: Path, artifacts: Path) -> str:
    return code.replace("pipelines/default.yaml", pipeline.as_posix()).replace("artifacts/", f"{artifacts.as_posix()}/")


def test_the_readme_has_runnable_blocks_and_sketches_are_marked() -> None:
    assert len(RUNNABLE) >= 5
    sketches = [b for b in BLOCKS if b.sketch]
    # the stage-type outline cannot run (it is a new module and its registration): marked, and nothing else is
    assert sketches and all(b.section == "Adding a stage type" for b in sketches)
    assert all("count_words" in b.code for b in sketches)


def test_the_block_finder_sees_fences_and_marks() -> None:
    text = "## A\n```python\nx = 1\n```\n<!-- sketch -->\n```python\n...\n```\n```bash\nls\n```\n"
    blocks = python_blocks(text)
    assert [(b.line, b.section, b.code, b.sketch) for b in blocks] == [(2, "A", "x = 1\n", False),
                                                                       (6, "A", "...\n", True)]


@pytest.mark.parametrize("block", RUNNABLE, ids=lambda b: b.id)
def test_readme_block_runs_on_the_sample_pipeline(block: Block, sample_pipeline: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from kgpipe.config import load_pipeline

    artifacts = load_pipeline(sample_pipeline).artifacts
    code = pointed_at(block.code, sample_pipeline, artifacts)
    monkeypatch.chdir(tmp_path)   # a block that writes relative paths writes here, not into the repository
    try:
        exec(compile(code, f"README.md (block at line {block.line})", "exec"), {"__name__": "readme"})
    except Exception as exc:
        pytest.fail(f"README.md block at line {block.line} ({block.section}) raised {type(exc).__name__}: {exc}")
