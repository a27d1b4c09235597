"""A synthetic run for the explorer, written directly (no stage runs): a pipeline with a fuse and an embed
stage whose outputs are generated tables (entities with made-up names, random triples, a hub entity, extra
entities given by the caller), optionally embeddings and an untrained model of the right shape, and a lock
file that says they are up to date. Used by tests/test_web_api.py and benchmarks/explore_latency.py."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from kgpipe.artifacts import (
    EMBEDDINGS,
    ENTITIES,
    MENTION_ENTITIES,
    MENTIONS,
    RELATIONS,
    SEED_ENTITIES,
    SEED_TRIPLES,
    TRIPLES,
    write_table,
)
from kgpipe.kg.stored_weights import FIXED_TEXT

NS = "http://example.org/e/"
REL = "http://example.org/r/"
TYPES = ("http://schema.org/Person", "http://schema.org/City", "http://schema.org/Organization",
         "http://schema.org/Award", "http://schema.org/Country")
SYLLABLES = ("ka", "ri", "to", "men", "sa", "lo", "ve", "dan", "mi", "ro", "tha", "bel", "zu", "nor", "ia", "ge")


def made_up_name(rng: np.random.Generator) -> str:
    words = [("".join(rng.choice(SYLLABLES, size=rng.integers(2, 4)))).capitalize() for _ in range(2)]
    return " ".join(words)


def write_pipeline(folder: Path, *, embed: bool) -> Path:
    """A pipeline file with a fuse stage (over empty extract and ingest tables) and, with `embed`, an embed
    stage."""
    inputs = folder / "in"
    inputs.mkdir(parents=True, exist_ok=True)
    for name, schema in (("mentions", MENTIONS), ("relations", RELATIONS), ("seed_entities", SEED_ENTITIES),
                         ("seed_triples", SEED_TRIPLES)):
        write_table([], inputs / f"{name}.parquet", schema)
    cfg = {"version": 1, "root": str(folder), "artifacts": "artifacts", "stages": {
        "fuse": {"type": "fuse", "deps": {n: f"in/{n}.parquet" for n in
                                          ("mentions", "relations", "seed_entities", "seed_triples")}},
    }}
    if embed:
        cfg["stages"]["embed"] = {"type": "embed", "deps": {"triples": "artifacts/fuse/triples.parquet",
                                                            "entities": "artifacts/fuse/entities.parquet"}}
    pipeline = folder / "synthetic.yaml"
    pipeline.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return pipeline


def write_synthetic(folder: Path, n_entities: int, n_triples: int, *, hub_degree: int = 0,
                    extra: Sequence[dict[str, Any]] = (), n_relations: int = 8, embedding_dim: int | None = None,
                    model: bool = False, seed: int = 0, lock: bool = True) -> Path:
    """Write the run into folder; returns the pipeline file. Entity i is NS + f"e{i}"; the hub is NS + "hub"
    with hub_degree outgoing triples (and no other); `extra` rows (id, label, type, aliases, mention_count) come
    first. `lock`: record the outputs in the lock file, as a run's commit does."""
    from kgpipe.config import load_pipeline

    pipeline = folder / "synthetic.yaml"
    if not pipeline.exists():
        pipeline = write_pipeline(folder, embed=embedding_dim is not None or model)
    pipe = load_pipeline(pipeline)
    rng = np.random.default_rng(seed)
    rows = [{"id": e["id"], "label": e["label"], "type": e.get("type"), "aliases": list(e.get("aliases", [])),
             "seed_iri": None, "mention_count": int(e.get("mention_count", 0)), "sources": []} for e in extra]
    rows.append({"id": NS + "hub", "label": "Hub Entity", "type": TYPES[2], "aliases": [], "seed_iri": None,
                 "mention_count": 0, "sources": []})
    for i in range(n_entities):
        rows.append({"id": f"{NS}e{i}", "label": made_up_name(rng), "type": TYPES[i % len(TYPES)],
                     "aliases": [made_up_name(rng)] if i % 7 == 0 else [], "seed_iri": None,
                     "mention_count": int(rng.integers(0, 50)), "sources": []})
    ids = np.array([r["id"] for r in rows])
    fuse = pipe.stages["fuse"].outs
    write_table(rows, fuse["entities"], ENTITIES)
    relations = np.array([f"{REL}r{j}" for j in range(n_relations)])
    pool = ids[ids != NS + "hub"]
    heads = pool[rng.integers(0, len(pool), n_triples)]
    tails = pool[rng.integers(0, len(pool), n_triples)]
    rels = relations[rng.integers(0, n_relations, n_triples)]
    hub = [(NS + "hub", relations[i % n_relations], f"{NS}e{i % max(1, n_entities)}") for i in range(hub_degree)]
    import pandas as pd

    triples = pd.DataFrame({"head": [h for h, _, _ in hub] + heads.tolist(),
                            "relation": [r for _, r, _ in hub] + rels.tolist(),
                            "tail": [t for _, _, t in hub] + tails.tolist()}).drop_duplicates(
                                ["head", "relation", "tail"])
    triples = triples.assign(count=1, sources=[["synthetic.tsv"]] * len(triples), confidence=1.0)
    write_table(triples, fuse["triples"], TRIPLES)
    write_table([], fuse["mention_entities"], MENTION_ENTITIES)
    fuse["graph_ttl"].write_text(f"<{ids[0]}> <{REL}r0> <{ids[-1]}> .\n", encoding="utf-8")
    fuse["graph_graphml"].write_text("", encoding="utf-8")
    fuse["report"].write_text("{}\n", encoding="utf-8")
    fuse["learned_weights"].write_text(FIXED_TEXT, encoding="utf-8")
    embed = pipe.stages["embed"].outs if "embed" in pipe.stages else {}
    if embedding_dim is not None:
        vectors = rng.standard_normal((len(ids), embedding_dim)).astype(np.float32)
        write_table(pd.DataFrame({"id": ids, "label": [r["label"] for r in rows], "vector": list(vectors)}),
                    embed["entity_embeddings"], EMBEDDINGS)
    if model:
        write_untrained_model(embed["model"], ids.tolist(), [r["label"] for r in rows], relations.tolist(),
                              triples, embedding_dim or 8)
    if lock:
        commit_lock(pipeline)
    return pipeline


def write_untrained_model(folder: Path, entity_ids: list[str], labels: list[str], relation_ids: list[str],
                          triples: Any, dim: int) -> None:
    """A ComplEx model with random weights and the given id maps, saved as the embed stage saves one."""
    import torch
    from pykeen.triples import TriplesFactory

    from kgpipe.embed.model_io import build_model, save_model

    entity_to_id = {e: i for i, e in enumerate(entity_ids)}
    relation_to_id = {r: i for i, r in enumerate(relation_ids)}
    mapped = torch.tensor(np.stack([triples["head"].map(entity_to_id).to_numpy(),
                                    triples["relation"].map(relation_to_id).to_numpy(),
                                    triples["tail"].map(entity_to_id).to_numpy()], axis=1), dtype=torch.long)
    factory = TriplesFactory(mapped_triples=mapped, entity_to_id=entity_to_id, relation_to_id=relation_to_id)
    config = {"model": "ComplEx", "model_kwargs": {"embedding_dim": dim}}
    model = build_model(config, factory, random_seed=0)
    save_model(folder, model, training_triples=mapped.int(), config=config, entity_ids=entity_ids,
               entity_labels=labels, relation_ids=relation_ids,
               relation_labels=[r.rsplit("/", 1)[-1] for r in relation_ids])


def commit_lock(pipeline: Path) -> None:
    """Record every stage whose outputs exist as up to date in the lock file (what a run commits)."""
    from kgpipe import __version__
    from kgpipe.config import load_pipeline
    from kgpipe.hashing import path_hash
    from kgpipe.lockfile import LockEntry, LockFile
    from kgpipe.runner import Workspace

    pipe = load_pipeline(pipeline)
    lock = LockFile(Workspace(pipe).lock_path)
    for name, stage in pipe.stages.items():
        lock.stages[name] = LockEntry(
            type=stage.type.name, type_version=stage.type.version, params=stage.params_dict(),
            deps={pipe.rel(p): path_hash(p) for p in stage.dep_paths()},
            outs={pipe.rel(p): h for p in stage.out_paths() if (h := path_hash(p)) is not None},
            started_at="2026-01-01T00:00:00+00:00", duration_s=0.1, kgpipe_version=__version__)
    lock.write()
