"""Extract memory is bounded by the batch, not the document: peak RSS of a whole `kgpipe run` of the
extract stage (a fresh process per size, n_process 1, the real statistical pipeline, seed gazetteer and
default patterns) stays flat across 1, 2 and 4 MB one-line documents. Before the batches were bounded in
characters, spaCy's batches of 64 pieces held every piece's activations at once: 556, 665 and 907 MB here.

The text is the sample corpus's sentences in one line with the words of each sentence, and runs of four
sentences, joined by "_": some 100 characters a token, so the pipeline gets through 7 MB in about 40 s of
CPU, while the memory a batch takes per token shows as it does with plain English (which runs some 50 times
slower per megabyte). benchmarks/extract_memory.py measures larger documents and plain English.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO
from tests.test_extract import write_inputs

# The 4 MB peak may exceed the 1 MB peak by this much: the document itself is held a few times over
# (parquet column, Python str, its pieces), some 20 MB at 4 MB; batches of 64 pieces held at once cost
# hundreds of MB more (that is what this test guards against).
MARGIN_MB = 150

CHILD = """
import json, resource, sys
from pathlib import Path
from kgpipe.runner import run
result = run(Path(sys.argv[1]), force=True)
status = Path("/proc/self/status").read_text()
hwm = next(int(line.split()[1]) // 1024 for line in status.splitlines() if line.startswith("VmHWM"))
peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        + resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) // 1024
print(json.dumps({"peak_mb": max(peak, hwm), "summary": result.summaries["extract"]}))
"""


def english_line(chars: int, *, glue: str = " ") -> str:
    """The sample corpus's sentences joined into one line, repeated to `chars` characters; glue "_" joins
    the words of each sentence and runs of four sentences, so a token holds some 100 characters."""
    sentences = [" ".join(s.split()) for p in sorted((REPO / "sample_kg" / "corpus").glob("*.txt"))
                 for s in re.split(r"(?<=[.!?])\s+", p.read_text(encoding="utf-8")) if s.strip()]
    if glue != " ":
        sentences = [s.replace(" ", glue) for s in sentences]
        sentences = [glue.join(sentences[i:i + 4]) for i in range(0, len(sentences), 4)]
    corpus = " ".join(sentences)
    return ((corpus + " ") * (chars // (len(corpus) + 1) + 1))[:chars].strip()


def peak_rss_mb(root: Path, text: str) -> tuple[int, dict]:
    pipeline = write_inputs(root, [("big", text)], n_process=1)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", CHILD, str(pipeline)], capture_output=True, text=True,
                          env=env, timeout=300, cwd=root, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return report["peak_mb"], report["summary"]


def test_peak_memory_is_flat_across_1_2_and_4_mb_one_line_documents(tmp_path):
    peaks, summaries = {}, {}
    for mb in (1, 2, 4):
        peaks[mb], summaries[mb] = peak_rss_mb(tmp_path / f"run{mb}", english_line(mb * 1_000_000, glue="_"))
    print("peak RSS (MB) by document size (MB):", peaks)
    # the runs did the work: sentences grow with the document (and the NER found entities) while memory does not
    assert summaries[4]["sentences"] > 3.5 * summaries[1]["sentences"] > 0
    assert summaries[1]["mentions"] + summaries[1]["dropped_long_mentions"] > 0
    assert peaks[4] - peaks[1] <= MARGIN_MB, f"peak RSS grows with the document: {peaks}"
    assert peaks[2] - peaks[1] <= MARGIN_MB, f"peak RSS grows with the document: {peaks}"
