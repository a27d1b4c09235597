"""Claim: the extract stage costs little beyond spaCy itself: its words per second are at least 0.8 of bare
`nlp.pipe` over the very same `nlp` object (same pipes, gazetteer included) on the same text.

In one process, interleaved, --repeat times each:
  bare   - `for doc in nlp.pipe(texts, batch_size=B, n_process=P): pass`;
  stage  - ExtractStage.run() itself on a documents.parquet holding the same texts: reading the table,
           loading the pattern files, building the gazetteer, splitting, nlp.pipe, mentions, relation
           patterns, writing mentions.parquet and relations.parquet.
The stage gets the nlp object from kgpipe.nlp.models' cache, the one `bare` uses, with the gazetteer the
stage installed. Both are run with one process and with two. Reports words/s of the best run of each (the
one least disturbed by other users of the shared machine) and the ratios, best and median. With --learned
FILE (a pattern file from `kgpipe patterns learn`, e.g. some 1800 patterns learned on CoNLL04 train), the
stage is measured a second time with that file beside the default library, since a library of learned
back-off patterns costs more to match than the hand-written one. With --transformer-ner FOLDER (a model
folder from `kgpipe ner train --transformer`), one more table: bare `nlp.pipe` of that folder (the base model's
tagger and parser, the transformer NER as `ner`) against bare `nlp.pipe` of the base model, one process,
torch with --torch-threads threads, interleaved in the same run. With --relation-model FOLDER (a model from
`kgpipe rel train`), one more table: the stage with that model under relation_policy union against bare
`nlp.pipe` of the stage's own nlp and the stage with patterns only, one process (the stage's relation model
always scores on one torch thread), interleaved in the same run.

Usage: python benchmarks/extract_speed.py [CORPUS_FOLDER] [--seeds FILE ...] [--copies 8] [--repeat 3]
         [--batch-size 64] [--learned FILE] [--transformer-ner FOLDER [--torch-threads 1]]
         [--relation-model FOLDER] [--no-write]
Defaults: the demo corpus and seed KG in sample_kg/ (the corpus is repeated --copies times).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("corpus", nargs="?", default=str(REPO / "sample_kg" / "corpus"))
    parser.add_argument("--seeds", nargs="*", default=[str(REPO / "sample_kg" / "seed_kg.ttl"),
                                                        str(REPO / "sample_kg" / "extra_seed.tsv")])
    parser.add_argument("--patterns", default=str(REPO / "pipelines" / "patterns"))
    parser.add_argument("--copies", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learned", default=None, help="a learned pattern file, measured beside --patterns")
    parser.add_argument("--transformer-ner", default=None, help="a `kgpipe ner train --transformer` model folder")
    parser.add_argument("--torch-threads", type=int, default=1)
    parser.add_argument("--relation-model", default=None, help="a `kgpipe rel train` model folder")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    from kgpipe.artifacts import DOCUMENTS, SEED_ENTITIES, write_table
    from kgpipe.corpus import document_row
    from kgpipe.kg.seed import SeedOptions, merge_seeds, read_seed
    from kgpipe.nlp.models import load_model
    from kgpipe.nlp.patterns import load_patterns
    from kgpipe.stage import StageContext
    from kgpipe.stages.extract import ExtractParams, ExtractStage

    files = sorted(Path(args.corpus).glob("*.txt"))
    texts = [f.read_text(encoding="utf-8") for f in files] * args.copies
    words = sum(len(t.split()) for t in texts)
    seed_options = SeedOptions(tsv_namespace="http://kgpipe.org/sample/")
    entities, _, _ = merge_seeds(read_seed(Path(s), Path(s).name, "auto", seed_options) for s in args.seeds)

    work = Path(tempfile.mkdtemp(prefix="kgpipe_extract_speed_"))
    rows = [document_row(f"d{i}", t, "bench") for i, t in enumerate(texts)]
    write_table(rows, work / "documents.parquet", DOCUMENTS)
    write_table(entities, work / "seed_entities.parquet", SEED_ENTITIES)

    def run_stage(n_process: int, patterns: list[Path], relation_model: str | None = None) -> dict:
        params = ExtractParams(batch_size=args.batch_size, n_process=n_process,
                               relation_policy="union" if relation_model else None)
        ctx = StageContext(stage="extract", params=params, root=REPO, scratch_dir=work / "scratch",
                           inputs={"documents": work / "documents.parquet",
                                   "seed_entities": work / "seed_entities.parquet",
                                   "patterns": patterns, "model": None,
                                   "relation_model": Path(relation_model) if relation_model else None},
                           outputs={"mentions": work / "mentions.parquet", "relations": work / "relations.parquet"})
        return ExtractStage().run(ctx)

    libraries = {"default": [Path(args.patterns)]}
    if args.learned:
        libraries["default + learned"] = [Path(args.patterns), Path(args.learned)]
    summaries = {name: run_stage(1, paths) for name, paths in libraries.items()}  # warm-up; installs the gazetteer
    summary = summaries["default"]
    nlp = load_model("auto")
    assert "kgpipe_gazetteer" in nlp.pipe_names

    results: dict[tuple[str, int], dict[str, list[float]]] = {}
    for library, pattern_files in libraries.items():
        for n_process in (1, 2):
            results[(library, n_process)] = interleaved({
                "bare": bare_pipe(nlp, texts, args.batch_size, n_process),
                "stage": functools.partial(run_stage, n_process, pattern_files)}, args.repeat)

    lines = [f"{len(texts)} documents ({len(files)} demo documents x {args.copies}), {words:,} words; "
             f"pipes {', '.join(nlp.pipe_names)}; {summary['patterns']} patterns in the default library"
             + (f", {summaries['default + learned']['patterns']} with `{args.learned}` beside it" if args.learned
                else "")
             + f", {summary['gazetteer_names']} gazetteer names; batch size {args.batch_size}; "
             f"{args.repeat} interleaved runs of each. The machine's 2 cores are shared with other work, so "
             "absolute numbers vary from run to run; the ratio is what the claim is about. The best run of each "
             "is the one least disturbed by other processes; the median is shown too.", "",
             "| patterns | processes | bare nlp.pipe, best (words/s) | extract stage, best (words/s) | ratio, best | "
             "ratio, median |", "|---|---|---|---|---|---|"]
    for (library, n_process), times in results.items():
        bare, stage = (words / min(times[k]) for k in ("bare", "stage"))
        median_ratio = statistics.median(times["bare"]) / statistics.median(times["stage"])
        lines.append(f"| {library} | {n_process} | {bare:,.0f} | {stage:,.0f} | **{stage / bare:.2f}** | "
                     f"{median_ratio:.2f} |")
    lines.append("")
    if args.learned:
        made = Path(args.learned).read_text(encoding="utf-8").splitlines()[0].lstrip("# ")
        labels = sorted({label for p in load_patterns([Path(args.learned)]).patterns
                         for label in (*p.subject.labels, *p.object.labels)})
        lines.append(f"`{args.learned}` (its header: {made}) asks for the entity labels {', '.join(labels)}; "
                     "every pattern is matched whether or not the corpus has mentions with those labels, and that "
                     "matching is the cost measured.")
        lines.append("")
    lines.append("Stage output per run: " + "; ".join(f"{s['mentions']} mentions, {s['relations']} relations ({name})"
                                                      for name, s in summaries.items()) + ".")
    if args.transformer_ner:
        lines += ["", *transformer_ner_rows(args.transformer_ner, texts, words, args)]
    if args.relation_model:
        lines += ["", *relation_model_rows(args.relation_model, texts, words, args, nlp,
                                           lambda: run_stage(1, libraries["default"]),
                                           lambda: run_stage(1, libraries["default"], args.relation_model))]
    body = "\n".join(lines)
    command = (f"python benchmarks/extract_speed.py --copies {args.copies} --repeat {args.repeat}"
               + (f" --learned {args.learned}" if args.learned else "")
               + (f" --transformer-ner {args.transformer_ner} --torch-threads {args.torch_threads}"
                  if args.transformer_ner else "")
               + (f" --relation-model {args.relation_model}" if args.relation_model else ""))
    write_section("extract_speed", "Extract stage speed against bare nlp.pipe", body, command,
                  print_only=args.no_write)


def bare_pipe(nlp: Any, texts: list[str], batch_size: int, n_process: int = 1) -> Callable[[], None]:
    """One run of bare `nlp.pipe` over the texts."""
    def run() -> None:
        for _ in nlp.pipe(texts, batch_size=batch_size, n_process=n_process):
            pass
    return run


def interleaved(runs: Mapping[str, Callable[[], object]], repeat: int) -> dict[str, list[float]]:
    """Seconds of each run, `repeat` times, interleaved, so that load from other users of the machine hits all
    alike (warm-ups are the caller's)."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeat):
        for name, run in runs.items():
            t0 = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - t0)
    return times


def ratio_table(times: Mapping[str, list[float]], words: int, baseline: str,
                pipes: Mapping[str, str] | None = None) -> list[str]:
    """Words/s of the best run of each, and its ratio to `baseline`'s, best against best and median against
    median; with `pipes`, a column naming each run's spaCy components."""
    rows = ["| run | " + ("pipes | " if pipes else "") + f"words/s, best | ratio to {baseline}, best | "
            "ratio, median |", "|---|" + ("---|" if pipes else "") + "---|---|---|"]
    for name, seconds in times.items():
        ratio = min(times[baseline]) / min(seconds)
        median = statistics.median(times[baseline]) / statistics.median(seconds)
        rows.append(f"| {name} | " + (f"{pipes[name]} | " if pipes else "") + f"{words / min(seconds):,.0f} | "
                    f"**{ratio:.3f}** | {median:.3f} |")
    return rows


def transformer_ner_rows(folder: str, texts: list[str], words: int, args: argparse.Namespace) -> list[str]:
    """Bare nlp.pipe of the transformer NER folder against bare nlp.pipe of the base model (a fresh copy: no
    gazetteer in either), one process."""
    import torch

    from kgpipe.nlp.models import load_model

    torch.set_num_threads(args.torch_threads)
    model = load_model(folder)
    base = load_model("auto", cache=False)
    labels = ", ".join(getattr(model.get_pipe("ner"), "labels", ()))
    pipelines = {"base model": base, "transformer NER": model}
    for nlp in pipelines.values():  # warm-up
        bare_pipe(nlp, texts[:8], args.batch_size)()
    times = interleaved({name: bare_pipe(nlp, texts, args.batch_size) for name, nlp in pipelines.items()},
                        args.repeat)
    encoder = model.get_pipe("ner").tagger.config  # type: ignore[attr-defined]
    return [f"Transformer NER (`{folder}`: {encoder.base_model}, {encoder.encoder.get('num_hidden_layers')} "
            f"layers of {encoder.encoder.get('hidden_size')}, labels {labels}) against the base model, bare "
            f"`nlp.pipe`, 1 process, torch threads {args.torch_threads}, batch size {args.batch_size}, "
            f"{args.repeat} interleaved runs:", "",
            *ratio_table(times, words, "base model", {name: ", ".join(nlp.pipe_names)
                                                      for name, nlp in pipelines.items()})]


def relation_model_rows(folder: str, texts: list[str], words: int, args: argparse.Namespace, nlp: Any,
                        patterns_stage: Callable[[], dict], model_stage: Callable[[], dict]) -> list[str]:
    """The extract stage with the relation model (relation_policy union) against bare nlp.pipe of the nlp the
    stage uses (the cached model with the stage's gazetteer) and against the stage with patterns only; one
    process. The stage loads the relation model on each run, as it does in a pipeline."""
    from kgpipe.lm.relation_model import RelationModel

    summary = model_stage()  # warm-up: torch and the model's first forward pass
    runs = {"bare nlp.pipe": bare_pipe(nlp, texts, args.batch_size),
            "extract stage, patterns": patterns_stage,
            "extract stage, union with the relation model": model_stage}
    times = interleaved(runs, args.repeat)
    config = RelationModel.load(folder).config
    return [f"Relation model (`{folder}`: {config.base_model}, {config.encoder.get('num_hidden_layers')} layers "
            f"of {config.encoder.get('hidden_size')}, relations {', '.join(config.relation_labels[1:])}) in the "
            f"extract stage, relation_policy union, against bare `nlp.pipe` of the stage's nlp and the stage with "
            f"patterns only; 1 process, the model on one torch thread, batch size {args.batch_size}, "
            f"{args.repeat} interleaved runs (each stage run loads the model, as a pipeline run does). Per run "
            f"the model scored {summary['relation_pairs_scored']:,} mention pairs "
            f"({summary['relation_pairs_dropped']} beyond max_pairs_per_sentence) and gave "
            f"{summary['relations_model']} of the {summary['relations']} relations.", "",
            *ratio_table(times, words, "bare nlp.pipe")]


if __name__ == "__main__":
    main()
