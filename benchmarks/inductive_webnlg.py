"""Claim: an entity whose triples the KG never saw still gets a useful vector from its text (the vectors stage).

Withhold ALL triples of 10% of the WebNLG train entities (seeded), build the KG from the rest with kgpipe's own
stages (ingest -> fuse -> embed -> vectors), the text context being the WebNLG lexicalisations that mention each
entity (their gold references, located in the text). Then, for every withheld triple whose other entity and
relation are in the KG, rank the true other entity among all KG entities (filtered by every WebNLG train triple;
tail prediction where the withheld entity is the head, head prediction where it is the tail) with the withheld
entity's vector taken from
  (a) inductive  the vectors stage's prediction from its label and sentences
  (b) random     a random direction with the norm of a random trained row (the same norm distribution)
  (c) trained    the embedding of a KG that keeps their triples (same settings, same candidate entities)
each scored by the trained model's own PyKEEN interaction (LinkPredictor.score_with_vector).

Usage: python benchmarks/inductive_webnlg.py [DATA_DIR] [--seeds 3] [--epochs 100] [--dim 128] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section
from _webnlg import read_webnlg
from inject_webnlg import NAMESPACE, entity_iri

SPLIT = {"validation_fraction": 0.0, "test_fraction": 0.01, "early_stopping": False}


def text_tables(entries, work: Path) -> int:
    """documents / mentions / mention_entities from the WebNLG texts: every located reference is a mention of
    its entity; returns the mention count."""
    from kgpipe.artifacts import DOCUMENTS, MENTION_ENTITIES, MENTIONS, write_table
    from kgpipe.corpus import document_row

    docs, mentions, links = [], [], []
    for entry in entries:
        for text in entry.texts:
            doc = f"{entry.eid}/{text.lid}"
            docs.append(document_row(doc, text.text, "webnlg"))
            for k, ref in enumerate(text.references):
                if ref.start is None or ref.end is None or ref.start == ref.end:
                    continue
                mention = f"{doc}#{k}"
                mentions.append({"mention_id": mention, "doc_id": doc, "sentence": 0, "start_char": ref.start,
                                 "end_char": ref.end, "text": text.text[ref.start:ref.end], "label": ref.type,
                                 "kg_type": None, "source": "webnlg", "seed_iri": None})
                links.append({"mention_id": mention, "entity_id": entity_iri(ref.entity)})
    write_table(docs, work / "documents.parquet", DOCUMENTS)
    write_table(mentions, work / "text_mentions.parquet", MENTIONS)
    write_table(links, work / "mention_entities.parquet", MENTION_ENTITIES)
    return len(mentions)


def pipeline(work: Path, triples: set[tuple[str, str, str]], args, seed: int, *, vectors: bool) -> Path:
    """ingest (TSV seed) -> fuse -> embed (-> vectors) as a pipeline file in work."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import yaml

    from kgpipe.artifacts import MENTIONS, RELATIONS

    work.mkdir(parents=True, exist_ok=True)
    (work / "kg.tsv").write_text("".join("\t".join(t) + "\n" for t in sorted(triples)), encoding="utf-8")
    for name, schema in (("mentions", MENTIONS), ("relations", RELATIONS)):  # fuse sees the KG only
        pq.write_table(pa.Table.from_pylist([], schema=schema.arrow), work / f"{name}.parquet")
    stages = {
        "ingest": {"type": "ingest", "deps": {"seeds": ["kg.tsv"]}, "params": {"tsv_namespace": NAMESPACE}},
        "fuse": {"type": "fuse", "deps": {"mentions": "mentions.parquet", "relations": "relations.parquet",
                                          "seed_entities": "artifacts/ingest/seed_entities.parquet",
                                          "seed_triples": "artifacts/ingest/seed_triples.parquet"}},
        "embed": {"type": "embed", "deps": {"triples": "artifacts/fuse/triples.parquet",
                                            "entities": "artifacts/fuse/entities.parquet"},
                  "params": {"model": "ComplEx", "embedding_dim": args.dim, "epochs": args.epochs,
                             "batch_size": args.batch_size, "seed": seed, **SPLIT}},
    }
    if vectors:
        stages["vectors"] = {"type": "vectors", "deps": {
            "entities": "entities_all.parquet", "embeddings": "artifacts/embed/entity_embeddings.parquet",
            "mentions": "../text_mentions.parquet", "mention_entities": "../mention_entities.parquet",
            "documents": "../documents.parquet"}, "params": {"max_contexts": args.max_contexts, "seed": seed}}
    path = work / "kg.yaml"
    path.write_text(yaml.safe_dump({"root": ".", "allow_outside": [str(work.parent)], "stages": stages},
                                   sort_keys=False))
    return path


def with_withheld(entities_path: Path, withheld: list[str], out: Path) -> None:
    """fuse's entities plus the withheld entities (labelled as ingest labels a TSV name): they occur in no
    triple of this KG, as half of the sample graph's entities do."""
    import pandas as pd

    from kgpipe.artifacts import ENTITIES, write_table
    from kgpipe.kg.seed import local_name_label

    table = pd.read_parquet(entities_path)
    known = set(table["id"])
    extra = [{"id": e, "label": local_name_label(e), "type": None, "aliases": [], "seed_iri": e,
              "mention_count": 0, "sources": ["withheld"]} for e in withheld if e not in known]
    write_table(pd.concat([table, pd.DataFrame(extra)], ignore_index=True), out, ENTITIES)


def filtered_rank(scores, true_index: int, other_true: list[int]) -> float:
    """Rank of the true answer among the candidates, other true answers left out, ties counted half."""
    import torch

    scores = scores.clone()
    target = scores[true_index].item()
    if other_true:
        scores[torch.tensor(other_true)] = float("-inf")
    higher = int((scores > target).sum())
    ties = int((scores == target).sum()) - 1
    return 1 + higher + ties / 2


def evaluate(queries, predictors, vectors_for, candidates, known) -> dict[str, dict[str, float]]:
    """MRR and Hits@10 per variant over the queries (triple, withheld side)."""
    import torch

    out = {}
    for variant, predictor in predictors.items():
        ranks = []
        model_row = {e: i for i, e in enumerate(predictor.info.entity_ids)}
        pick = torch.tensor([model_row[c] for c in candidates])
        position = {c: i for i, c in enumerate(candidates)}
        for (h, r, t), side in queries:
            entity, answer = (h, t) if side == "head" else (t, h)
            target = "tail" if side == "head" else "head"
            scores = predictor.score_with_vector(vectors_for[variant](entity), r, target)[pick]
            others = (known["tails"].get((h, r), set()) if target == "tail" else known["heads"].get((r, t), set()))
            ranks.append(filtered_rank(scores, position[answer],
                                       [position[o] for o in others if o != answer and o in position]))
        out[variant] = {"mrr": sum(1 / x for x in ranks) / len(ranks),
                        "hits_at_10": sum(x <= 10 for x in ranks) / len(ranks)}
    return out


def run_seed(seed: int, triples, entities, args, work: Path) -> dict:
    import numpy as np

    import kgpipe
    from kgpipe.embed import LinkPredictor
    from kgpipe.export.embeddings import load_embeddings

    rng = random.Random(seed)
    withheld = set(rng.sample(sorted(entities), round(args.withhold * len(entities))))
    kept = {t for t in triples if t[0] not in withheld and t[2] not in withheld}
    t0 = time.perf_counter()
    without = pipeline(work / f"seed{seed}-without", kept, args, seed, vectors=False)
    kgpipe.run(without)
    folder = without.parent / "artifacts"
    with_withheld(folder / "fuse/entities.parquet", sorted(withheld), without.parent / "entities_all.parquet")
    kgpipe.run(pipeline(without.parent, kept, args, seed, vectors=True))  # embed is up to date: vectors runs
    full = pipeline(work / f"seed{seed}-with", triples, args, seed, vectors=False)
    kgpipe.run(full)
    build_s = time.perf_counter() - t0

    vectors = load_embeddings(folder / "vectors/entity_vectors.parquet")
    fit = json.loads((folder / "vectors/vectors_metrics.json").read_text())
    trained_with = load_embeddings(full.parent / "artifacts/embed/entity_embeddings.parquet")
    inductive = LinkPredictor.load(folder / "embed/model", vectors=vectors)
    trained = LinkPredictor.load(full.parent / "artifacts/embed/model", vectors=trained_with)
    candidates = list(inductive.info.entity_ids)          # the KG's entities, in both models
    relations = set(inductive.info.relation_ids)
    queries, skipped = [], 0
    for h, r, t in sorted(triples - kept):
        for side, entity, other in (("head", h, t), ("tail", t, h)):
            if entity in withheld and other not in withheld:
                if other in inductive.info.entity_to_id and r in relations:
                    queries.append(((h, r, t), side))
                else:
                    skipped += 1
    known = {"tails": {}, "heads": {}}
    for h, r, t in triples:
        known["tails"].setdefault((h, r), set()).add(t)
        known["heads"].setdefault((r, t), set()).add(h)

    trained_rows = [i for i, flag in enumerate(vectors.inductive or []) if not flag]
    norms = np.linalg.norm(vectors.vectors[trained_rows], axis=1)
    noise = np.random.default_rng(seed)
    random_vectors = {}

    def random_vector(entity: str):
        if entity not in random_vectors:
            direction = noise.normal(size=vectors.dim)
            random_vectors[entity] = (direction / np.linalg.norm(direction) * noise.choice(norms)).astype(np.float32)
        return random_vectors[entity]

    result = evaluate(queries, {"inductive": inductive, "random": inductive, "trained": trained},
                      {"inductive": vectors.vector, "random": random_vector, "trained": trained_with.vector},
                      candidates, known)
    with_context = sum(1 for e in withheld if e in vectors.ids)  # every withheld entity has a row
    return {"seed": seed, "withheld": len(withheld), "withheld_triples": len(triples - kept),
            "kg_triples": len(kept), "queries": len(queries), "skipped": skipped, "fit": fit,
            "vector_rows": with_context, "kg_entities": len(candidates), "build_s": build_s, **result}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data", nargs="?", default=str(Path(__file__).resolve().parents[2] / "shared/data/webnlg"))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--withhold", type=float, default=0.1, help="share of the train entities withheld")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--dim", type=int, default=128, help="ComplEx embedding dim (complex numbers)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--max-contexts", type=int, default=8, help="sentences per entity for its context")
    parser.add_argument("--work", default="/tmp/kgpipe-inductive-webnlg")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    started = time.perf_counter()
    entries = read_webnlg(Path(args.data) / "train")
    triples = {(entity_iri(s), NAMESPACE + p, entity_iri(o)) for e in entries for s, p, o in e.triples}
    entities = {x for h, _, t in triples for x in (h, t)}
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    mentions = text_tables(entries, work)
    print(f"WebNLG train: {len(triples)} triples, {len(entities)} entities, {mentions} located mentions; split "
          f"settings of the embed stage: {SPLIT}", flush=True)
    runs = []
    for seed in range(args.seeds):
        runs.append(run_seed(seed, triples, entities, args, work))
        print(json.dumps(runs[-1], default=str), flush=True)

    def spread(variant: str, metric: str) -> str:
        values = [r[variant][metric] for r in runs]
        mean = statistics.mean(values)
        return f"{mean:.3f} ({min(values):.3f}-{max(values):.3f})"

    body = [f"WebNLG train: {len(triples)} distinct triples, {len(entities)} entities. Per seed, "
            f"{args.withhold:.0%} of the entities ({runs[0]['withheld']}) lose all their triples "
            f"({statistics.mean(r['withheld_triples'] for r in runs):.0f} on average); the KG of the rest "
            f"({statistics.mean(r['kg_triples'] for r in runs):.0f} triples) goes through ingest -> fuse -> embed "
            f"-> vectors. Embed: ComplEx, dim {args.dim}, {args.epochs} epochs, batch {args.batch_size} (pinned), "
            f"split {SPLIT} (the same for the KG that keeps the withheld triples, variant c). Vectors: the "
            f"packaged all-MiniLM-L6-v2, label + mean of at most {args.max_contexts} sentences of the WebNLG "
            f"texts that mention the entity ({mentions} located references), ridge "
            f"{runs[0]['fit']['ridge']}; held-out anchor fit: cosine "
            f"{statistics.mean(r['fit']['heldout_cosine'] for r in runs):.3f}, R2 "
            f"{statistics.mean(r['fit']['heldout_r2'] for r in runs):.3f} (the mean vector's cosine "
            f"{statistics.mean(r['fit']['heldout_baseline_cosine'] for r in runs):.3f}). Queries: withheld triples "
            f"whose other entity and relation are in the KG, "
            f"{statistics.mean(r['queries'] for r in runs):.0f} per seed "
            f"({statistics.mean(r['skipped'] for r in runs):.0f} others skipped: the answer is not a KG entity); "
            f"the withheld entity's vector is the query, the true other entity is ranked among the "
            f"{statistics.mean(r['kg_entities'] for r in runs):.0f} KG entities, filtered by all train triples. "
            f"Mean of {len(runs)} seeds (min-max).", "",
            "| withheld entity's vector | MRR | Hits@10 |", "|---|---|---|"]
    for variant, name in (("inductive", "(a) inductive: predicted from label and sentences"),
                          ("random", "(b) random, same norm distribution"),
                          ("trained", "(c) trained with its triples in the KG")):
        body.append(f"| {name} | {spread(variant, 'mrr')} | {spread(variant, 'hits_at_10')} |")
    body += ["", f"Whole benchmark: {time.perf_counter() - started:.0f}s (KG builds "
                 f"{sum(r['build_s'] for r in runs):.0f}s); load average at the end {os.getloadavg()[0]:.1f} on "
                 f"{os.cpu_count()} cores, torch threads {torch.get_num_threads()}."]
    write_section("inductive_webnlg", "Inductive entity vectors: WebNLG link prediction for unseen entities",
                  "\n".join(body),
                  f"python benchmarks/inductive_webnlg.py {args.data} --seeds {args.seeds} --epochs {args.epochs} "
                  f"--dim {args.dim} --batch-size {args.batch_size} --max-contexts {args.max_contexts}",
                  print_only=args.no_write)


if __name__ == "__main__":
    main()
