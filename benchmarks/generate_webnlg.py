"""Claim: a knowledge prefix trained for generation steers a decoder's continuation towards the graph: given
"<head> | <relation> ->", SmolLM2 with the head's KG vector (and the relation's) in its knowledge slots generates the
tail more often than without them.

KG: the WebNLG train triples minus --withheld triples whose head and tail both stay in the KG (seeded sample),
through kgpipe's own ingest -> fuse -> embed. The adapter trains on the KG's triples verbalised
("Marie Curie | award received -> Nobel Prize in Physics"; next-token loss on the tail), the LM frozen. Rows:
  base alone        SmolLM2 without any prefix (it has never seen the format)
  constant prefix   the same adapter trained the same way on all-zero KG vectors: prefix-tuning, no knowledge
  KG prefix         the adapter on the entities' and relations' KG vectors
Accuracy of the greedy tail (up to the first line break), exact and after kgpipe's name normalisation, on the
withheld triples (not in the KG, so the KG vectors only imply them) and on as many KG triples (trained on).

Usage: python benchmarks/generate_webnlg.py [DATA_DIR] [--withheld 150] [--epochs 5] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section
from _webnlg import read_webnlg
from inject_webnlg import build_kg, entity_iri


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data", nargs="?", default=str(Path(__file__).resolve().parents[2] / "shared/data/webnlg"))
    parser.add_argument("--withheld", type=int, default=150, help="triples left out of the KG and asked for")
    parser.add_argument("--max-train", type=int, default=1500, help="verbalised KG triples the adapter trains on")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--prefix-layers", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=12)
    parser.add_argument("--kge-model", default="ComplEx")
    parser.add_argument("--kge-epochs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--work", default="/tmp/kgpipe-generate-webnlg")
    parser.add_argument("--no-write", action="store_true")
    run(parser.parse_args())


def run(args) -> None:
    import numpy as np
    import pandas as pd
    import torch

    from kgpipe.export.embeddings import load_embeddings
    from kgpipe.lm.decoder_model import DecoderInjectionConfig, KnowledgeDecoder
    from kgpipe.lm.decoders import load_decoder, resolve_decoder
    from kgpipe.lm.generation import encode_generation, tail_accuracy, train_generation, verbalise
    from kgpipe.lm.knowledge import KnowledgeTable
    from kgpipe.lm.knowledge_model import knowledge_for, relation_knowledge
    from kgpipe.lm.task import TrainConfig, states_below_items

    t_start = time.perf_counter()
    data = Path(args.data)
    if not (data / "train").is_dir():
        raise SystemExit(f"{data}: expected a train/ folder of WebNLG XML")
    triples = sorted({t for e in read_webnlg(data / "train") for t in e.triples})
    degree = Counter(x for s, _, o in triples for x in (s, o))
    rng = random.Random(args.seed)
    candidates = [t for t in triples if degree[t[0]] > 1 and degree[t[2]] > 1 and t[0] != t[2]]
    rng.shuffle(candidates)
    withheld: list[tuple[str, str, str]] = []
    for t in candidates:  # keep both ends in the KG: each needs another triple left after this one goes
        if len(withheld) == args.withheld:
            break
        if degree[t[0]] > 1 and degree[t[2]] > 1:
            withheld.append(t)
            degree[t[0]] -= 1
            degree[t[2]] -= 1
    kg_triples = set(triples) - set(withheld)

    t0 = time.perf_counter()
    entities_path, embeddings_path, ran = build_kg(Path(args.work) / "kg", kg_triples, args)
    kg_s = time.perf_counter() - t0
    entities = pd.read_parquet(entities_path)
    knowledge = knowledge_for(entities, load_embeddings(embeddings_path), "float32").table
    relations = relation_knowledge(Path(embeddings_path).with_name("relation_embeddings.parquet"), "float32")
    label_of = dict(zip(entities["id"], entities["label"], strict=True))

    def ids(t):
        return entity_iri(t[0]), entity_iri(t[1]), entity_iri(t[2])  # ingest mints relation IRIs the same way

    asked = [e for e in verbalise(map(ids, withheld), label_of)
             if e.head in knowledge.index and e.tail in knowledge.index]
    trained = verbalise(map(ids, sorted(kg_triples)), label_of)
    rng.shuffle(trained)
    trained = trained[:args.max_train]
    seen = trained[:len(asked)]

    lm, tokenizer = load_decoder(resolve_decoder("smollm2"))
    entity_row = lambda e: knowledge.index.get(e, -1)  # noqa: E731
    relation_row = lambda r: relations.index.get(r, -1)  # noqa: E731
    items = encode_generation(tokenizer, trained, entity_row, relation_row)
    config = DecoderInjectionConfig(mode="prefix", prefix_layers=args.prefix_layers)
    probe = KnowledgeDecoder(lm, knowledge, config, relations=relations)
    t0 = time.perf_counter()
    states = states_below_items(probe, items, batch_size=32)
    below_s = time.perf_counter() - t0

    rows: dict[str, dict] = {}

    def measure(name: str, decoder, knowledge_on: bool, train_s: float | None) -> None:
        t0 = time.perf_counter()
        out = {}
        for split, examples in (("withheld", asked), ("in KG", seen)):
            acc = tail_accuracy(decoder, tokenizer, examples, label_of, entity_row, relation_row,
                                knowledge=knowledge_on, max_new_tokens=args.max_new_tokens)
            out[split] = {"exact": acc.exact, "normalised": acc.normalised, "examples": acc.examples,
                          "sample": list(zip([e.prompt for e in examples[:3]], acc.generated[:3], strict=True))}
        rows[name] = {**out, "train_s": train_s, "eval_s": time.perf_counter() - t0}
        print(name, json.dumps(rows[name]), flush=True)

    measure("base alone", probe, False, None)
    zeros = KnowledgeTable(knowledge.ids, np.zeros((len(knowledge), knowledge.dim), dtype=np.float32))
    zero_relations = KnowledgeTable(relations.ids, np.zeros((len(relations), relations.dim), dtype=np.float32))
    for name, table, relation_table in (("constant prefix", zeros, zero_relations),
                                        ("KG prefix", knowledge, relations)):
        torch.manual_seed(args.seed)
        decoder = KnowledgeDecoder(lm, table, DecoderInjectionConfig(mode="prefix", prefix_layers=args.prefix_layers),
                                   relations=relation_table)
        t0 = time.perf_counter()
        losses = train_generation(decoder, items, TrainConfig(args.epochs, args.batch_size, args.lr, seed=args.seed),
                                  states=states)
        print(name, "losses", [round(x, 3) for x in losses], flush=True)
        measure(name, decoder, True, time.perf_counter() - t0)

    tokens = sum(len(i["input_ids"]) for i in items)
    body = [f"KG: {len(kg_triples)} WebNLG train triples ({len(withheld)} withheld, both ends kept in the KG), "
            f"{len(entities)} entities, {args.kge_model} at most {args.kge_epochs} epochs, built in {kg_s:.0f}s "
            f"({'stages run: ' + ', '.join(ran) if ran else 'reused'}). Adapter: prefix in the top "
            f"{args.prefix_layers} of {len(lm.model.layers)} SmolLM2 layers, trained on {len(items)} verbalised KG "
            f"triples for {args.epochs} epochs (batch {args.batch_size}, lr {args.lr}; the relation slot empty for "
            f"half the examples); lower layers once: {tokens} tokens in {below_s:.0f}s. Asked: {len(asked)} withheld "
            f"triples whose ends have vectors, and {len(seen)} KG triples the adapter trained on; greedy, at most "
            f"{args.max_new_tokens} new tokens.", "",
            "| row | withheld exact | withheld normalised | in-KG exact | in-KG normalised | train (s) |",
            "|---|---|---|---|---|---|"]
    for name, r in rows.items():
        train_s = "" if r["train_s"] is None else f"{r['train_s']:.0f}"
        body.append(f"| {name} | {r['withheld']['exact']:.3f} | {r['withheld']['normalised']:.3f} | "
                    f"{r['in KG']['exact']:.3f} | {r['in KG']['normalised']:.3f} | {train_s} |")
    body += ["", "Samples (prompt -> generated), KG prefix, withheld: " + "; ".join(
        f"`{p}` -> `{g}`" for p, g in rows["KG prefix"]["withheld"]["sample"]),
        "", f"Whole benchmark: {time.perf_counter() - t_start:.0f}s; load average at the end "
            f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores, torch threads {torch.get_num_threads()}."]
    write_section("generate_webnlg", "Knowledge prefix for generation: WebNLG tails", "\n".join(body),
                  f"python benchmarks/generate_webnlg.py {args.data} --withheld {args.withheld} --epochs {args.epochs} "
                  f"--prefix-layers {args.prefix_layers}", print_only=args.no_write)


if __name__ == "__main__":
    main()
