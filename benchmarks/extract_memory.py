"""Claim: the extract stage's peak memory does not grow with the document: a one-line document of any size
costs about what one batch of max_batch_chars characters costs, while bare `nlp.pipe` over the same pieces
(spaCy's batches of 64 texts, as the stage had them before) grows with the document up to 64 pieces.

Per size and kind of text, two fresh processes (peak RSS is the process's VmHWM, which includes loading the
model; `growth` is the peak less the RSS just before the text is processed):
  stage - ExtractStage.run() on a documents.parquet holding the one document (n_process 1, default params,
          the sample seed KG for the gazetteer and the default pattern library);
  bare  - `for doc in nlp.pipe(pieces, batch_size=64): pass` over the pieces the stage cuts the document
          into (kgpipe.nlp.documents.split_text at max_chunk_chars), on the same nlp with the gazetteer.
Kinds of text:
  english - the sample corpus's sentences joined into one line and repeated (the real NER: slow here);
  glued   - the same with the words of each sentence, and runs of four sentences, joined by "_": some 100
            characters a token, so the statistical pipeline runs through megabytes in seconds;
  token   - one token without spaces ("Qwertyuiop" repeated).

Usage: python benchmarks/extract_memory.py [--mb 1 4 50] [--kinds english glued token] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section

REPO = Path(__file__).resolve().parents[1]
DEFAULT_KINDS = ["glued", "token"]
NOTES = {
    "english": "english: plain English, the real NER on every word; spaCy's pipeline runs some 7,500 characters a "
               "second here, so a 50 MB document would take about two hours per run and is not measured.",
    "glued": "glued: the stage cuts a run without whitespace longer than max_mention_chars (200) into tokens of 200 "
             "characters (spaCy's tokenizer is quadratic in a run of punctuation, and no kept mention can lie in "
             "such a run), while bare nlp.pipe tokenizes the runs as they come, so the two parse different tokens "
             "and their seconds differ for that reason too; the stage's mentions are 0 because every entity the "
             "NER finds in this text touches such a run and is dropped (counted as dropped over-long). What "
             "grows with the document in the stage is the document itself, held a few times over (parquet page, "
             "arrow array, the Python str at 2 bytes a character since the corpus has non-Latin-1 letters).",
    "token": "token: one run without whitespace; the stage parses it as tokens of 200 characters (250,000 of them "
             "at 50 MB), bare nlp.pipe as one token per piece, hence the seconds; the stage's growth at 50 MB is "
             "the document held a few times over.",
}


def make_text(kind: str, chars: int) -> str:
    if kind == "token":
        return ("Qwertyuiop" * (chars // 10 + 1))[:chars]
    sentences = [" ".join(s.split()) for p in sorted((REPO / "sample_kg" / "corpus").glob("*.txt"))
                 for s in re.split(r"(?<=[.!?])\s+", p.read_text(encoding="utf-8")) if s.strip()]
    if kind == "glued":
        sentences = [s.replace(" ", "_") for s in sentences]
        sentences = ["_".join(sentences[i:i + 4]) for i in range(0, len(sentences), 4)]
    corpus = " ".join(sentences)
    return ((corpus + " ") * (chars // (len(corpus) + 1) + 1))[:chars].strip()


def rss_mb(field: str) -> int:
    status = Path("/proc/self/status").read_text()
    return next(int(line.split()[1]) // 1024 for line in status.splitlines() if line.startswith(field))


def child(mode: str, work: Path) -> None:
    """One measurement in this (fresh) process; prints a JSON line."""
    from kgpipe.nlp.models import load_model
    from kgpipe.stage import StageContext
    from kgpipe.stages.extract import ExtractParams, ExtractStage

    params = ExtractParams()
    ctx = StageContext(stage="extract", params=params, root=REPO, scratch_dir=work / "scratch",
                       inputs={"documents": work / "documents.parquet",
                               "seed_entities": work / "seed_entities.parquet",
                               "patterns": [REPO / "pipelines" / "patterns"], "model": None},
                       outputs={"mentions": work / "mentions.parquet", "relations": work / "relations.parquet"})
    nlp = load_model("auto")
    t0 = time.perf_counter()
    if mode == "stage":
        from dataclasses import replace

        from kgpipe.artifacts import DOCUMENTS, write_table
        from kgpipe.corpus import document_row

        # a warm-up run on a one-sentence document: the gazetteer and patterns are built, as bare's are
        write_table([document_row("w", "Ada was born in London.", "bench")], work / "warm.parquet", DOCUMENTS)
        ExtractStage().run(replace(ctx, inputs={**ctx.inputs, "documents": work / "warm.parquet"}))
        base = rss_mb("VmRSS")
        t0 = time.perf_counter()
        summary = ExtractStage().run(ctx)
        facts = {k: summary[k] for k in ("mentions", "relations", "sentences", "dropped_long_mentions")}
    else:
        import pyarrow.parquet as pq

        from kgpipe.artifacts import SEED_ENTITIES, read_table
        from kgpipe.nlp.documents import split_text
        from kgpipe.nlp.extractor import build_extractor

        build_extractor(nlp, seed_entities=read_table(work / "seed_entities.parquet", SEED_ENTITIES)
                        .to_dict("records"))  # the same pipes as the stage's
        text = pq.read_table(work / "documents.parquet", columns=["text"]).column(0)[0].as_py()
        base = rss_mb("VmRSS")
        t0 = time.perf_counter()
        pieces = (piece for _, piece in split_text(text, params.max_chunk_chars) if not piece.isspace())
        count = 0
        for _doc in nlp.pipe(pieces, batch_size=params.batch_size):
            count += 1
        facts = {"pieces": count}
    print(json.dumps({"seconds": time.perf_counter() - t0, "base_mb": base, "peak_mb": rss_mb("VmHWM"),
                      **facts}))


def measure(mode: str, work: Path, timeout: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, __file__, "--child", mode, "--work", str(work)], capture_output=True,
                          text=True, env=env, timeout=timeout, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{mode} run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", nargs="*", type=float, default=[1, 4, 50])
    parser.add_argument("--kinds", nargs="*", default=DEFAULT_KINDS, choices=["english", "glued", "token"])
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per measured run")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--child", choices=["stage", "bare"], help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, Path(args.work))
        return

    from kgpipe.artifacts import DOCUMENTS, SEED_ENTITIES, write_table
    from kgpipe.corpus import document_row
    from kgpipe.kg.seed import SeedOptions, merge_seeds, read_seed

    seeds = [REPO / "sample_kg" / "seed_kg.ttl", REPO / "sample_kg" / "extra_seed.tsv"]
    entities, _, _ = merge_seeds(read_seed(s, s.name, "auto", SeedOptions(tsv_namespace="http://kgpipe.org/sample/"))
                                 for s in seeds)
    rows = []
    for kind in args.kinds:
        for mb in args.mb:
            work = Path(tempfile.mkdtemp(prefix=f"kgpipe_extract_memory_{kind}_{mb:g}_"))
            text = make_text(kind, int(mb * 1_000_000))
            write_table([document_row("one_line", text, "bench")], work / "documents.parquet", DOCUMENTS)
            write_table(entities, work / "seed_entities.parquet", SEED_ENTITIES)
            del text
            stage = measure("stage", work, args.timeout)
            bare = measure("bare", work, args.timeout)
            rows.append((kind, mb, stage, bare))
            print(kind, mb, "stage", stage, "bare", bare, flush=True)

    lines = ["One one-line document per row, each run in a fresh process; peak is VmHWM (model included), growth "
             "the peak less the RSS just before the text is processed (the stage after a warm-up run on one "
             "sentence, which builds the gazetteer and the patterns). Bare nlp.pipe runs the same pipes "
             "(gazetteer included) over the same pieces with batch_size 64, as the stage did before its "
             "batches were bounded in characters. The 2 cores are shared with other work, so seconds vary.", "",
             "| text | MB | stage peak (MB) | stage growth (MB) | stage s | bare nlp.pipe peak (MB) | "
             "bare growth (MB) | bare s | peak ratio stage / bare | stage mentions | dropped over-long |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for kind, mb, stage, bare in rows:
        lines.append(f"| {kind} | {mb:g} | {stage['peak_mb']:,} | {stage['peak_mb'] - stage['base_mb']:,} | "
                     f"{stage['seconds']:.0f} | {bare['peak_mb']:,} | {bare['peak_mb'] - bare['base_mb']:,} | "
                     f"{bare['seconds']:.0f} | **{stage['peak_mb'] / bare['peak_mb']:.2f}** | "
                     f"{stage['mentions']:,} | {stage['dropped_long_mentions']:,} |")
    command = ("python benchmarks/extract_memory.py --mb " + " ".join(f"{m:g}" for m in args.mb)
               + " --kinds " + " ".join(args.kinds))
    for kind in args.kinds:
        lines += ["", NOTES[kind]]
    key = "extract_memory" + ("" if args.kinds == DEFAULT_KINDS else "_" + "_".join(args.kinds))
    write_section(key, f"Extract stage memory on one-line documents ({', '.join(args.kinds)})", "\n".join(lines),
                  command, print_only=args.no_write)


if __name__ == "__main__":
    main()
