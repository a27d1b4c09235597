"""Claims (issue 20): a changed corpus redoes only its share of the work. Extract of +1% new documents takes
<= 5% of a full extract (the spaCy model's load time reported apart), and every artifact is byte-identical to a
full re-extraction; with a warm-started embed stage (--embed), the whole pipeline takes <= 25% of a full run with
an MRR within the seed-to-seed spread of training from scratch.

Corpus: the demo corpus (sample_kg/corpus) and WebNLG texts (train + dev, duplicates dropped) up to --docs
documents, written as one jsonl file in the work folder. Two pipelines read it, both ingest -> extract -> fuse with
pipelines/default.yaml's params and seeds: `incremental` (extract's per-document cache on, as by default) and
`full` (cache: false, so every run extracts every document). In one process, one step after another:
  full    - the corpus as is (the incremental pipeline's cache is empty: what filling it costs);
  add     - --fraction new documents (WebNLG texts not used yet);
  edit    - --fraction of the documents edited (a sentence of another document appended);
  remove  - --fraction of the documents removed.
At each step both pipelines run (full first), and the script compares the extract stage's duration (the lock
entry's), the documents it computed and reused, the whole run's wall time, and the sha256 of every output of
extract (mentions.parquet, relations.parquet) and fuse. The spaCy model is loaded once before the sequence (the
stage keeps it per process), so no stage duration holds its load; its load time (spacy.load of the packaged model,
timed in this process) is reported apart, as what each fresh `kgpipe run` process adds.

--embed: the embed stage's warm start (`warm_start: true`), if this kgpipe's embed params have it, on the fused
graphs of the `full` and `add` steps, with pipelines/default.yaml's embed params and split: hash for both variants
(so that they test on the same triples). For each of --seeds: `warm` trains on the `full` graph (not timed: the
previous run), then on the `add` graph warm-started from it (its warm_started_from is checked against that model's
hash in the lock file); `scratch` trains on the `add` graph from scratch. Whole-pipeline time = the `add` step's
run (full pipeline / incremental one) plus embed's (from scratch / warm). Without it, a line says so.

Usage: python benchmarks/incremental.py [--docs 20000] [--fraction 0.01] [--webnlg ../shared/data/webnlg]
       [--work DIR] [--embed] [--seeds 0,1,2] [--no-write]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "sample_kg"
VARIANTS = ("full", "incremental")
COMPARED = ("extract", "fuse")  # the stages whose outputs must be the same bytes


# --- corpus -----------------------------------------------------------------------------------------------


@dataclass
class Corpus:
    """The documents of one step, id -> text in file order, and the WebNLG texts not used yet."""

    documents: dict[str, str]
    unused: list[str]
    next_id: int = 0

    def write(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        with tmp.open("w", encoding="utf-8") as f:
            for doc_id, text in self.documents.items():
                f.write(json.dumps({"id": doc_id, "text": text}, ensure_ascii=False) + "\n")
        tmp.replace(path)


def webnlg_texts(webnlg: Path) -> list[str]:
    from _webnlg import read_webnlg

    texts = [t.text for split in ("train", "dev") for e in read_webnlg(webnlg / split) for t in e.texts]
    return list(dict.fromkeys(texts))  # ingest drops documents with the same text: none are left to drop


def base_corpus(webnlg: Path, docs: int) -> Corpus:
    documents = {f"demo/{p.stem}": p.read_text(encoding="utf-8").strip()
                 for p in sorted((DEMO / "corpus").glob("*.txt"))}
    texts = webnlg_texts(webnlg)
    take = docs - len(documents)
    if take <= 0 or take > len(texts):
        raise SystemExit(f"--docs {docs}: between {len(documents) + 1} and {len(documents) + len(texts)} "
                         f"(the {len(documents)} demo documents and {len(texts)} distinct WebNLG texts)")
    documents.update((f"w{i:06d}", text) for i, text in enumerate(texts[:take]))
    return Corpus(documents, texts[take:], take)


def add_documents(corpus: Corpus, n: int) -> Corpus:
    if n > len(corpus.unused):
        raise SystemExit(f"{n} new documents wanted, {len(corpus.unused)} WebNLG texts left: lower --docs or "
                         "--fraction")
    new = {f"w{corpus.next_id + i:06d}": text for i, text in enumerate(corpus.unused[:n])}
    return Corpus({**corpus.documents, **new}, corpus.unused[n:], corpus.next_id + n)


def edit_documents(corpus: Corpus, n: int, rng: random.Random) -> Corpus:
    """n documents with the first sentence of another document appended (a new mention or two, new offsets)."""
    ids = list(corpus.documents)
    documents = dict(corpus.documents)
    for doc_id in rng.sample(ids, n):
        donor = corpus.documents[rng.choice(ids)]
        documents[doc_id] = f"{documents[doc_id]} {donor.split('. ')[0].rstrip('.')}."
    return Corpus(documents, corpus.unused, corpus.next_id)


def remove_documents(corpus: Corpus, n: int, rng: random.Random) -> Corpus:
    gone = set(rng.sample(list(corpus.documents), n))
    return Corpus({k: v for k, v in corpus.documents.items() if k not in gone}, corpus.unused, corpus.next_id)


# --- pipelines --------------------------------------------------------------------------------------------


def write_pipeline(work: Path, variant: str, corpus: Path) -> Path:
    """ingest -> extract -> fuse as in pipelines/default.yaml, over the jsonl corpus; outputs under work/variant."""
    import yaml

    default = yaml.safe_load((REPO / "pipelines/default.yaml").read_text())["stages"]
    out = f"{variant}/artifacts"
    extract_params = {**default["extract"]["params"], "cache": variant == "incremental"}
    seeds = [str(REPO / s) for s in default["ingest"]["deps"]["seeds"]]
    stages = {
        "ingest": {"type": "ingest", "deps": {"corpus": str(corpus), "seeds": seeds},
                   "params": {**default["ingest"]["params"], "format": "jsonl"}},
        "extract": {"type": "extract", "params": extract_params,
                    "deps": {"documents": f"{out}/ingest/documents.parquet",
                             "seed_entities": f"{out}/ingest/seed_entities.parquet",
                             "patterns": str(REPO / default["extract"]["deps"]["patterns"])}},
        "fuse": {"type": "fuse", "params": default["fuse"]["params"],
                 "deps": {"mentions": f"{out}/extract/mentions.parquet",
                          "relations": f"{out}/extract/relations.parquet",
                          "seed_entities": f"{out}/ingest/seed_entities.parquet",
                          "seed_triples": f"{out}/ingest/seed_triples.parquet"}},
    }
    cfg = {"version": 1, "root": str(work), "artifacts": out, "workspace": f"{variant}/workspace",
           "allow_outside": [str(REPO)], "stages": stages}
    path = work / f"{variant}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def file_hashes(outputs: dict[str, Path]) -> dict[str, str]:
    """sha256 of each output (a folder: of its files' names and bytes, in name order)."""
    hashes = {}
    for name, path in sorted(outputs.items()):
        digest = hashlib.sha256()
        for f in sorted(path.rglob("*")) if path.is_dir() else [path]:
            if f.is_file():
                digest.update(str(f.relative_to(path) if path.is_dir() else f.name).encode())
                digest.update(f.read_bytes())
        hashes[name] = digest.hexdigest()
    return hashes


@dataclass
class Measured:
    """One pipeline run of one step."""

    wall_s: float
    durations: dict[str, float]
    computed: int
    reused: int
    hashes: dict[str, str] = field(default_factory=dict)   # 'stage.out' -> sha256


def run_pipeline(path: Path) -> Measured:
    import kgpipe

    start = time.perf_counter()
    result = kgpipe.run(path)
    wall = time.perf_counter() - start
    missing = [s for s in ("ingest", *COMPARED) if s not in result.ran]
    if missing:
        raise SystemExit(f"{path}: {', '.join(missing)} did not run (the corpus did not change?)")
    summary = result.summaries["extract"]
    hashes = {f"{stage}.{name}": digest for stage in COMPARED
              for name, digest in file_hashes(result.outputs[stage]).items()}
    return Measured(wall, dict(result.durations), summary["documents_computed"], summary["documents_reused"], hashes)


# --- the sequence -----------------------------------------------------------------------------------------


@dataclass
class Step:
    name: str
    documents: int
    changed: int
    runs: dict[str, Measured]

    def different(self) -> list[str]:
        full, inc = self.runs["full"].hashes, self.runs["incremental"].hashes
        return sorted(k for k in full.keys() | inc.keys() if full.get(k) != inc.get(k))


def model_load_seconds() -> tuple[str, float]:
    """The packaged spaCy model's load time (spacy imported first), then kgpipe's per-process copy loaded, so that
    no stage duration below holds it."""
    import spacy

    from kgpipe.nlp.models import load_model, resolve_model

    name = str(resolve_model("auto"))
    start = time.perf_counter()
    spacy.load(name)
    seconds = time.perf_counter() - start
    load_model("auto")
    return name, seconds


def run_sequence(args: argparse.Namespace, work: Path, loads: list[float]) -> tuple[list[Step], dict[str, Corpus]]:
    corpus_file = work / "corpus.jsonl"
    pipelines = {v: write_pipeline(work, v, corpus_file) for v in VARIANTS}
    rng = random.Random(0)
    corpus = base_corpus(Path(args.webnlg), args.docs)
    n = max(1, round(args.fraction * args.docs))
    plan = [("full", lambda c: c, len(corpus.documents)), ("add", lambda c: add_documents(c, n), n),
            ("edit", lambda c: edit_documents(c, n, rng), n), ("remove", lambda c: remove_documents(c, n, rng), n)]
    steps, corpora = [], {}
    for name, change, changed in plan:
        corpus = change(corpus)
        corpora[name] = corpus
        corpus.write(corpus_file)
        runs = {}
        for variant in VARIANTS:
            runs[variant] = run_pipeline(pipelines[variant])
            loads.append(os.getloadavg()[0])
            m = runs[variant]
            print(f"{name:>6} {variant:>11}: {len(corpus.documents):,} docs, run {m.wall_s:.1f}s, extract "
                  f"{m.durations['extract']:.1f}s ({m.computed:,} computed, {m.reused:,} reused), fuse "
                  f"{m.durations['fuse']:.1f}s", flush=True)
        steps.append(Step(name, len(corpus.documents), changed, runs))
        if steps[-1].different():
            print(f"  DIFFERENT: {', '.join(steps[-1].different())}", flush=True)
    return steps, corpora


# --- embed warm start (--embed) ---------------------------------------------------------------------------


Triple = tuple[str, str, str]


def warm_start_available() -> bool:
    from kgpipe.registry import get_stage_type

    params = get_stage_type("embed").Params
    return params is not None and "warm_start" in params.model_fields


def embed_pipeline(work: Path, name: str, graph: Path, seed: int, warm: bool) -> Path:
    """The embed stage alone over a fused graph's triples and entities (a folder the caller fills per step),
    with pipelines/default.yaml's embed params; both variants split by triple hash, so that they test on the
    same triples (a from-scratch run would otherwise use PyKEEN's splitter). Any earlier run's folders are
    removed: the first run of a warm pipeline must train from scratch."""
    import yaml

    default = yaml.safe_load((REPO / "pipelines/default.yaml").read_text())["stages"]["embed"]
    params = {**default["params"], "seed": seed, "device": "cpu", "warm_start": warm, "split": "hash"}
    cfg = {"version": 1, "root": str(work), "artifacts": f"{name}/artifacts", "workspace": f"{name}/workspace",
           "stages": {"embed": {"type": "embed", "params": params,
                                "deps": {"triples": str(graph / "triples.parquet"),
                                         "entities": str(graph / "entities.parquet")}}}}
    shutil.rmtree(work / name, ignore_errors=True)
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


@dataclass
class Graph:
    """A fused graph's triples as the embed stage reads them."""

    triples: list[Triple]

    @classmethod
    def read(cls, folder: Path) -> Graph:
        from kgpipe.embed.data import read_triples

        path = folder / "triples.parquet"
        return cls(sorted(set(read_triples(path, str(path)))))

    @property
    def entities(self) -> frozenset[str]:
        """The entities in a triple (those the embedding has a vector for)."""
        return frozenset(e for h, _, t in self.triples for e in (h, t))

    def test_triples(self, training: frozenset[Triple], seed: int) -> frozenset[Triple]:
        """The test triples of an embed run whose model trained on `training`: the hash split (the stage's
        fractions, pipelines/default.yaml leaves them at their defaults) with that run's training triples kept
        in training reproduces the run's split."""
        from kgpipe.embed.split import hash_split
        from kgpipe.stages.embed import EmbedParams

        fractions = [("validation", EmbedParams().validation_fraction), ("testing", EmbedParams().test_fraction)]
        return frozenset(hash_split(self.triples, fractions, seed=seed, keep=training).carved["testing"])


@dataclass
class EmbedRun:
    """One embed run: wall seconds of kgpipe.run, its lock summary and the model's training triples."""

    seconds: float
    summary: dict
    training: frozenset[Triple]

    @property
    def mrr(self) -> float:
        return float(self.summary["mrr"])


def run_embed_pipeline(path: Path) -> EmbedRun:
    import kgpipe
    from kgpipe.embed.warm_start import read_previous

    start = time.perf_counter()
    result = kgpipe.run(path)
    seconds = time.perf_counter() - start
    if "embed" not in result.ran:
        raise SystemExit(f"{path}: the embed stage did not run")
    model = read_previous(result.outputs["embed"]["model"])
    return EmbedRun(seconds, dict(result.summaries["embed"]), model.training_triples)


def lock_hash(work: Path, name: str, out: str) -> str:
    """The hash the lock file of embed pipeline `name` records for the embed stage's output `out`."""
    from kgpipe.lockfile import LockFile

    outs = LockFile.read(work / name / "workspace" / "lock.json").stages["embed"].outs
    return next(digest for path, digest in outs.items() if path.endswith(f"/embed/{out}"))


def run_config(work: Path, name: str) -> dict:
    """The training settings embed pipeline `name` used (its metrics.json's config)."""
    return dict(json.loads((work / name / "artifacts/embed/metrics.json").read_text())["config"])


def describe(config: dict) -> str:
    stopping = config["early_stopping"]
    return (f"{config['model']} dim {config['model_kwargs']['embedding_dim']}, {config['training_loop']} "
            f"{config['loss']} loss, {config['optimizer']} lr {config['optimizer_kwargs'].get('lr')}, batch "
            f"{config['batch_size']}, inverse triples {config['inverse_triples']}, regularizer "
            f"{config['regularizer']} {config['regularizer_kwargs']}, "
            + (f"early stopping on validation {stopping['metric']} every {stopping['frequency']} epochs "
               f"(patience {stopping['patience']})" if stopping else "no early stopping"))


def spread(values: list[float], digits: int) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} ± {sd:.{digits}f}"


@dataclass
class EmbedSeed:
    """One seed's two timed runs on the `add` graph, and the test triples each tested on."""

    seed: int
    scratch: EmbedRun
    warm: EmbedRun
    common_tests: int       # test triples of both runs
    only_warm: int
    only_scratch: int


def run_embed(args: argparse.Namespace, work: Path, steps: list[Step], corpora: dict[str, Corpus]) -> str:
    """Per seed: `warm` trains on the `full` step's graph (from scratch: the previous model), then on the `add`
    step's graph warm-started from it; `scratch` trains on the `add` step's graph from scratch. Only the two
    runs on the `add` graph are timed, in alternating order from seed to seed."""
    import kgpipe

    if not warm_start_available():
        return "embed warm start: not available in this kgpipe yet (the embed stage has no `warm_start` param); " \
               "skipped.\n"
    graph = work / "graph"
    corpus_file, fuse_pipeline = work / "corpus.jsonl", work / "incremental.yaml"
    for step in ("full", "add"):   # each step's fused graph, as the incremental pipeline wrote it
        corpora[step].write(corpus_file)
        result = kgpipe.run(fuse_pipeline)
        shutil.copytree(result.outputs["fuse"]["triples"].parent, graph / step, dirs_exist_ok=True)
    graphs = {step: Graph.read(graph / step) for step in ("full", "add")}
    results = []
    for seed in (int(s) for s in args.seeds.split(",")):
        names = {"warm": f"embed-warm-{seed}", "scratch": f"embed-scratch-{seed}"}
        paths = {kind: embed_pipeline(work, name, graph / "current", seed, warm=kind == "warm")
                 for kind, name in names.items()}
        shutil.copytree(graph / "full", graph / "current", dirs_exist_ok=True)
        previous = run_embed_pipeline(paths["warm"])   # the previous run's model, not timed
        if "warm_started_from" in previous.summary:
            raise SystemExit(f"seed {seed}: the first warm run started from an earlier model")
        previous_model = lock_hash(work, names["warm"], "model")
        shutil.copytree(graph / "add", graph / "current", dirs_exist_ok=True)
        done = {kind: run_embed_pipeline(paths[kind])
                for kind in (("warm", "scratch") if seed % 2 == 0 else ("scratch", "warm"))}
        started_from = done["warm"].summary.get("warm_started_from")
        if started_from != previous_model:
            raise SystemExit(f"seed {seed}: the warm run started from {started_from}, not from the model trained "
                             f"on the `full` graph ({previous_model})")
        print(f"embed seed {seed}: warm_started_from {started_from} (the full-graph model's hash in its lock "
              f"entry); {done['warm'].summary['warm_start']}", flush=True)
        warm_tests, scratch_tests = (graphs["add"].test_triples(done[kind].training, seed)
                                     for kind in ("warm", "scratch"))
        common = len(warm_tests & scratch_tests)
        results.append(EmbedSeed(seed, done["scratch"], done["warm"], common, len(warm_tests) - common,
                                 len(scratch_tests) - common))
    add = next(s for s in steps if s.name == "add").runs
    return embed_report(results, graphs, (add["full"].wall_s, add["incremental"].wall_s),
                        {kind: run_config(work, f"embed-{kind}-{results[0].seed}") for kind in ("scratch", "warm")})


def embed_report(results: list[EmbedSeed], graphs: dict[str, Graph], pipeline_s: tuple[float, float],
                 configs: dict[str, dict]) -> str:
    """The embed table and verdicts; pipeline_s: the `add` step's full and incremental run seconds."""
    def column(kind: str, key: str) -> list[float]:
        runs = [getattr(r, kind) for r in results]
        return [r.seconds if key == "seconds" else float(r.summary[key]) for r in runs]

    full_s = [pipeline_s[0] + s for s in column("scratch", "seconds")]
    warm_s = [pipeline_s[1] + s for s in column("warm", "seconds")]
    scratch_mrr, warm_mrr = column("scratch", "mrr"), column("warm", "mrr")
    diffs = [w - s for w, s in zip(warm_mrr, scratch_mrr, strict=True)]
    rows = []
    for r, whole_full, whole_warm, diff in zip(results, full_s, warm_s, diffs, strict=True):
        tests = f"{r.common_tests}" + (f" + {r.only_warm} / {r.only_scratch}" if r.only_warm or r.only_scratch else "")
        rows.append(f"| {r.seed} | {tests} | {r.scratch.summary['epochs']} | {r.scratch.seconds:.1f} "
                    f"| {r.warm.summary['epochs']} | {r.warm.seconds:.1f} | {whole_full:.1f} | {whole_warm:.1f} "
                    f"| {whole_warm / whole_full:.2f} | {r.scratch.mrr:.4f} | {r.warm.mrr:.4f} | {diff:+.4f} |")
    ratio = statistics.mean(warm_s) / statistics.mean(full_s)
    rows.append(f"| mean ± sd | | {spread(column('scratch', 'epochs'), 1)} | {spread(column('scratch', 'seconds'), 1)}"
                f" | {spread(column('warm', 'epochs'), 1)} | {spread(column('warm', 'seconds'), 1)} "
                f"| {spread(full_s, 1)} | {spread(warm_s, 1)} | {ratio:.2f} | {spread(scratch_mrr, 4)} "
                f"| {spread(warm_mrr, 4)} | {spread(diffs, 4)} |")
    low, high = min(scratch_mrr), max(scratch_mrr)
    scratch_embed = statistics.mean(column("scratch", "seconds"))
    embed_ratio = statistics.mean(column("warm", "seconds")) / scratch_embed
    incremental_scratch = (pipeline_s[1] + scratch_embed) / statistics.mean(full_s)
    full, grown = graphs["full"], graphs["add"]
    new = len(grown.entities - full.entities)
    counts = results[0].warm.summary["warm_start"]
    return (
        f"Embed warm start on the `add` step. Graphs (fused by the incremental pipeline): `full` "
        f"{len(full.triples):,} triples, {len(full.entities):,} entities in them; `add` {len(grown.triples):,} "
        f"triples, {len(grown.entities):,} entities, {new:,} of them new ({new / len(grown.entities):.1%}). "
        "Embed params: pipelines/default.yaml's (model ComplEx, embedding_dim 64) over kgpipe's ComplEx defaults: "
        f"{describe(configs['scratch'])}; at most {configs['scratch']['epochs']} epochs from scratch, "
        f"{configs['warm']['epochs']} warm (warm_epochs unset: a quarter); device cpu; split: hash (validation "
        "and test 0.1 each; the seed is the split's too). Per seed: `scratch` trains on the `add` graph from "
        "scratch; `warm` trained on the `full` graph first (not timed), then on the `add` graph from that model "
        "(its warm_started_from checked against the `full` model's hash in the lock file; "
        f"{counts['entities_copied']:,} entities and {counts['relations_copied']} relations copied, "
        f"{counts['entities_new']:,} entities new). "
        "Embed s: wall seconds of the embed pipeline's kgpipe.run (read, train, evaluate, export); pipeline: the "
        "`add` step's run (full: extract cache off; warm: incremental) + embed. MRR: test, filtered, realistic, "
        "both sides. Test triples: those both runs test on (+ only warm's / only scratch's: a triple the `full` "
        "model trained on stays in warm's training, where scratch's hash split may test it).\n\n"
        "| seed | test triples | scratch epochs | embed scratch s | warm epochs | embed warm s | pipeline full s "
        "| pipeline warm s | warm / full | MRR scratch | MRR warm | warm - scratch |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n\n"
        f"- whole pipeline warm / full: {ratio:.2f} (ratio of means; target <= 0.25): "
        f"{'met' if ratio <= 0.25 else 'NOT met'}. Embed alone warm / scratch: {embed_ratio:.2f}; embed from "
        f"scratch is {scratch_embed / statistics.mean(full_s):.0%} of the full run, and the incremental pipeline "
        f"with embed from scratch would take {incremental_scratch:.2f} of it\n"
        f"- MRR warm {statistics.mean(warm_mrr):.4f}, scratch {statistics.mean(scratch_mrr):.4f} (seed-to-seed "
        f"range {low:.4f}-{high:.4f}, spread {high - low:.4f}); target, warm within (or above) the scratch range: "
        f"{'met' if statistics.mean(warm_mrr) >= low else 'NOT met'}. At equal seeds (the same test triples, but "
        f"those counted apart above) warm - scratch {spread(diffs, 4)}, warm higher at "
        f"{sum(d > 0 for d in diffs)} of {len(diffs)} seeds\n")


# --- report -----------------------------------------------------------------------------------------------


def report(steps: list[Step], model: str, load_s: float, loads: list[float]) -> str:
    rows = []
    for step in steps:
        full, inc = step.runs["full"], step.runs["incremental"]
        fx, ix = full.durations["extract"], inc.durations["extract"]
        rows.append(f"| {step.name} | {step.documents:,} | {step.changed:,} | {fx:.1f} | {ix:.1f} | {ix / fx:.3f} "
                    f"| {inc.computed:,} / {inc.reused:,} | {full.wall_s:.1f} | {inc.wall_s:.1f} "
                    f"| {inc.wall_s / full.wall_s:.2f} | {'yes' if not step.different() else 'NO'} |")
    add = next(s for s in steps if s.name == "add").runs
    add_ratio = add["incremental"].durations["extract"] / add["full"].durations["extract"]
    with_load = ((add["incremental"].durations["extract"] + load_s) / (add["full"].durations["extract"] + load_s))
    remove = next(s for s in steps if s.name == "remove").runs["incremental"]
    reuse_ms = 1000 * remove.durations["extract"] / max(1, remove.reused)
    identical = all(not s.different() for s in steps)
    differing = sorted({k for s in steps for k in s.different()})
    compared = sorted(steps[0].runs["full"].hashes)
    demo = len(list((DEMO / "corpus").glob("*.txt")))
    return (f"{steps[0].documents:,} documents ({steps[0].documents - demo:,} WebNLG texts and the {demo} demo "
            f"documents); then +{steps[1].changed:,} new, {steps[2].changed:,} edited, {steps[3].changed:,} "
            "removed. Each step: the `full` pipeline (extract cache: false) and the `incremental` one (cache on), "
            "ingest -> extract -> fuse with pipelines/default.yaml's params. Load average during the run: "
            f"{min(loads):.1f}-{max(loads):.1f} (2 cores, shared).\n\n"
            "| step | documents | changed | extract full s | extract incremental s | ratio | computed / reused "
            "| run full s | run incremental s | ratio | identical |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n\n"
            f"- spaCy model `{model}` load (spacy.load, this process): {load_s:.1f}s, apart: loaded once before "
            "the sequence, so no duration above holds it; a fresh `kgpipe run` process adds it to both columns "
            f"(+1% step with it: ratio {with_load:.4f})\n"
            f"- extract of +1% documents / full extract: {add_ratio:.4f} (target <= 0.05): "
            f"{'met' if add_ratio <= 0.05 else 'NOT met'}\n"
            f"- what reusing costs: the `remove` step computes {remove.computed} documents and takes "
            f"{remove.durations['extract']:.1f}s for {remove.reused:,} reused ones ({reuse_ms:.2f} ms each: "
            "looking them up, reading their rows from the cache, writing both tables)\n"
            f"- artifacts identical to the full re-extraction at every step (sha256 of {', '.join(compared)}): "
            f"{'yes' if identical else 'NO: ' + ', '.join(differing)}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=20000)
    parser.add_argument("--fraction", type=float, default=0.01, help="share of documents added, edited, removed")
    parser.add_argument("--webnlg", default=str(REPO.parent / "shared/data/webnlg"))
    parser.add_argument("--work", default=None, help="work folder (default: a temporary one, removed after)")
    parser.add_argument("--embed", action="store_true", help="the embed warm start too (see above)")
    parser.add_argument("--seeds", default="0,1,2", help="embed seeds, with --embed")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if not (Path(args.webnlg) / "train").is_dir():
        parser.error(f"--webnlg {args.webnlg}: no train/ folder there (the WebNLG folder of ../shared/data)")
    if not 0 < args.fraction < 0.5:
        parser.error("--fraction: between 0 and 0.5")
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    model, load_s = model_load_seconds()
    with tempfile.TemporaryDirectory(prefix="kgpipe-incremental-") as tmp:
        work = Path(args.work).resolve() if args.work else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        loads = [os.getloadavg()[0]]   # 1-minute load average before the sequence and after each run
        steps, corpora = run_sequence(args, work, loads)
        body = report(steps, model, load_s, loads)
        if args.embed:
            body += "\n" + run_embed(args, work, steps, corpora)
    command = "python benchmarks/incremental.py " + " ".join(sys.argv[1:])
    write_section("incremental", "Incremental runs: a changed corpus against a full re-extraction", body,
                  command.strip(), print_only=args.no_write)


if __name__ == "__main__":
    main()
