"""Claim: a decoder LM with knowledge prefix tokens classifies triples better than the KG embedding's score alone
and than the LM alone (KoPA's triple classification, on WebNLG, with SmolLM2 on CPU).

Triples: the WebNLG train triples; --withheld of them (seeded) leave the KG, each with both ends kept in it by other
triples. The KG (the rest) goes through kgpipe's ingest -> fuse -> embed (ComplEx). Every positive gets one negative
that replaces its tail by an entity that is the tail of the same relation elsewhere in the graph (type-compatible)
and does not make a known triple. Training examples: --train KG triples with their negatives; evaluation: the
withheld triples with theirs (half positive). Rows:
  (a) KG score     the embed model's score of (h, r, t), one threshold per relation chosen on the training examples
                   (a global one for relations without training examples)
  (b) LM alone     SmolLM2 frozen, the triple as text "head | relation -> tail", the span-pair head over the head's
                   and the tail's tokens, trained for the same epochs as (c)
  (c) LM + prefix  the same with the head's and tail's KG vectors and the relation's in the top layers' slots
(b) and (c) over 3 seeds (head and adapter initialisation, batch order), mean and range.
Context, not a target: CoDEx-S triple classification ComplEx 0.836 (LibKGE, CoDEx README); KoPA with LLaMA-7B in the
same range.

Usage: python benchmarks/triple_classification_webnlg.py [DATA_DIR] [--withheld 500] [--train 500] [--no-write]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import statistics
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section
from _webnlg import read_webnlg
from inject_webnlg import build_kg, entity_iri


def withhold(triples: list[tuple[str, str, str]], n: int, rng: random.Random) -> list[tuple[str, str, str]]:
    """n triples whose head and tail each keep another triple in the graph after all of them are gone."""
    degree = Counter(x for s, _, o in triples for x in (s, o))
    order = list(triples)
    rng.shuffle(order)
    out = []
    for s, p, o in order:
        if len(out) == n:
            break
        if s != o and degree[s] > 1 and degree[o] > 1:
            out.append((s, p, o))
            degree[s] -= 1
            degree[o] -= 1
    return out


def negatives(positives, graph, rng: random.Random, known=None, weighted: bool = False):
    """One corrupted tail per positive: a tail of the same relation elsewhere in `graph`, not a known triple
    (`known`: every true triple, the graph's by default); positives without such a tail are dropped (with their
    negative). `weighted`: a tail is drawn as often as it is a tail of the relation (a random triple's tail), so
    that a frequent tail is no sign of a positive; otherwise every distinct tail is equally likely."""
    tails = defaultdict(list)
    for _, p, o in sorted(graph):
        tails[p].append(o)
    known = set(graph) if known is None else set(known)
    pairs = []
    for s, p, o in positives:
        pool = tails[p] if weighted else sorted(set(tails[p]))
        options = [t for t in pool if t != o and t != s and (s, p, t) not in known]
        if options:
            pairs.append(((s, p, o), (s, p, rng.choice(options))))
    return pairs


def threshold_accuracy(train_scores, eval_scores) -> float:
    """Per relation, the threshold that classifies its training examples best (midpoints of sorted scores);
    relations without training examples use the best global threshold."""
    def best(scores):
        values = sorted({s for s, _ in scores})
        cuts = [values[0] - 1, *((a + b) / 2 for a, b in itertools.pairwise(values)), values[-1] + 1]
        return max(cuts, key=lambda c: sum((s > c) == y for s, y in scores))

    by_relation = defaultdict(list)
    for relation, score, label in train_scores:
        by_relation[relation].append((score, label))
    overall = best([(s, y) for _, s, y in train_scores])
    cut = {relation: best(scores) for relation, scores in by_relation.items()}
    return sum((s > cut.get(r, overall)) == y for r, s, y in eval_scores) / len(eval_scores)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data", nargs="?", default=str(Path(__file__).resolve().parents[2] / "shared/data/webnlg"))
    parser.add_argument("--withheld", type=int, default=500)
    parser.add_argument("--train", type=int, default=500, help="KG triples (each with a negative) to train on")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--prefix-layers", type=int, default=4)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--kge-model", default="ComplEx")
    parser.add_argument("--kge-epochs", type=int, default=100)
    parser.add_argument("--kg-without-train", action="store_true",
                        help="the training triples leave the KG too (cross-fitted): the KG knows them no better "
                             "than the evaluated ones, and (a)'s thresholds are chosen on triples it did not see")
    parser.add_argument("--weighted-negatives", action="store_true",
                        help="draw a negative tail as often as it is a tail of the relation (not each distinct tail "
                             "alike), so that a popular tail does not mark a positive")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--work", default="/tmp/kgpipe-triple-classification")
    parser.add_argument("--no-write", action="store_true")
    run(parser.parse_args())


def run(args) -> None:
    import pandas as pd
    import torch

    from kgpipe.embed.predict import LinkPredictor
    from kgpipe.export.embeddings import load_embeddings
    from kgpipe.lm.decoder_model import DecoderInjectionConfig, KnowledgeDecoder
    from kgpipe.lm.decoders import load_decoder, resolve_decoder
    from kgpipe.lm.generation import relation_words
    from kgpipe.lm.knowledge_model import knowledge_for, relation_knowledge
    from kgpipe.lm.task import (
        RelationExample,
        SpanPairClassifier,
        TrainConfig,
        accuracy_macro_f1,
        encode_examples,
        lower_states,
        predict,
        train_classifier,
    )

    t_start = time.perf_counter()
    data = Path(args.data)
    if not (data / "train").is_dir():
        raise SystemExit(f"{data}: expected a train/ folder of WebNLG XML")
    named = sorted({t for e in read_webnlg(data / "train") for t in e.triples})
    rng = random.Random(args.seed)
    out_named = withhold(named, args.withheld + (args.train if args.kg_without_train else 0), rng)
    held_named, train_named = out_named[:args.withheld], out_named[args.withheld:]
    t0 = time.perf_counter()
    kg_dir = Path(args.work) / ("kg-crossfit" if args.kg_without_train else "kg")
    entities_path, embeddings_path, ran = build_kg(kg_dir, set(named) - set(out_named), args)
    kg_s = time.perf_counter() - t0

    def iri(triple):  # the IRIs kgpipe's ingest mints for the names (relations too)
        return tuple(entity_iri(x) for x in triple)

    held = [iri(t) for t in held_named]
    graph = sorted(iri(t) for t in set(named) - set(out_named))
    every = [iri(t) for t in named]
    entities = pd.read_parquet(entities_path)
    label_of = dict(zip(entities["id"], entities["label"], strict=True))
    knowledge = knowledge_for(entities, load_embeddings(embeddings_path), "float32").table
    relations = relation_knowledge(Path(embeddings_path).with_name("relation_embeddings.parquet"), "float32")
    usable = lambda t: all(x in knowledge.index for x in (t[0], t[2])) and t[1] in relations.index  # noqa: E731
    if args.kg_without_train:
        train_pairs = negatives([iri(t) for t in train_named if usable(iri(t))], graph, rng, every,
                                args.weighted_negatives)
    else:
        train_pairs = negatives([t for t in rng.sample(graph, min(len(graph), args.train * 2)) if usable(t)],
                                graph, rng, every, args.weighted_negatives)[:args.train]
    eval_pairs = negatives([t for t in held if usable(t)], graph, rng, every, args.weighted_negatives)
    train = [(t, label) for pair in train_pairs for t, label in zip(pair, (1, 0), strict=True)]
    evaluation = [(t, label) for pair in eval_pairs for t, label in zip(pair, (1, 0), strict=True)]

    # (a) the KG embedding's own score
    predictor = LinkPredictor.load(Path(embeddings_path).parent / "model")
    e_id, r_id = predictor.info.entity_to_id, predictor.info.relation_to_id

    def scores(examples):
        hrt = torch.tensor([[e_id[h], r_id[r], e_id[t]] for (h, r, t), _ in examples])
        with torch.no_grad():
            values = predictor.model.score_hrt(hrt).view(-1).tolist()
        return [(r, s, y) for ((_, r, _), y), s in zip(examples, values, strict=True)]

    kg_accuracy = threshold_accuracy(scores(train), scores(evaluation))
    print("KG score", kg_accuracy, flush=True)

    # (b), (c): the LM on the triple as text
    lm, tokenizer = load_decoder(resolve_decoder("smollm2"))

    def example(triple, label) -> RelationExample:
        h, r, t = triple
        head, tail = label_of[h], label_of[t]
        text = f"{head} | {relation_words(r)} -> {tail}"
        return RelationExample(text, (0, len(head)), (len(text) - len(tail), len(text)), str(label), h, t, r)

    entity_row = lambda e: knowledge.index.get(e, -1) if e else -1  # noqa: E731
    relation_row = lambda r: relations.index.get(r, -1) if r else -1  # noqa: E731
    encoded = [encode_examples(tokenizer, [example(t, y) for t, y in split], ["0", "1"], entity_row,
                               max_length=64, relation_row=relation_row) for split in (train, evaluation)]

    def decoder(seed: int) -> KnowledgeDecoder:
        torch.manual_seed(seed)
        return KnowledgeDecoder(lm, knowledge, DecoderInjectionConfig(mode="prefix", prefix_layers=args.prefix_layers),
                                relations=relations)

    t0 = time.perf_counter()
    probe = SpanPairClassifier(decoder(0), lm.config.hidden_size, 2, knowledge=True, context="between")
    states = [lower_states(probe, items) for items in encoded]
    below_s = time.perf_counter() - t0
    results: dict[str, list[dict]] = defaultdict(list)
    for seed in [int(s) for s in args.seeds.split(",")]:
        for name, knowledge_on in (("(b) LM alone", False), ("(c) LM + knowledge prefix", True)):
            model_decoder = decoder(seed)
            if not knowledge_on:
                model_decoder.requires_grad_(False)
            torch.manual_seed(seed)
            model = SpanPairClassifier(model_decoder, lm.config.hidden_size, 2, knowledge=knowledge_on,
                                       context="between")
            t0 = time.perf_counter()
            train_classifier(model, encoded[0], TrainConfig(args.epochs, args.batch_size, args.lr, seed=seed),
                             states=states[0])
            accuracy, _ = accuracy_macro_f1([i["label"] for i in encoded[1]], predict(model, encoded[1],
                                                                                       states=states[1]))
            results[name].append({"seed": seed, "accuracy": accuracy, "train_s": time.perf_counter() - t0})
            print(name, json.dumps(results[name][-1]), flush=True)

    def spread(values):
        return f"{statistics.mean(values):.4f} ({min(values):.4f}-{max(values):.4f})"

    tokens = sum(len(i["input_ids"]) for items in encoded for i in items)
    origin = (f"{len(train_pairs)} withheld triples" if args.kg_without_train else f"{len(train_pairs)} KG triples")
    body = [f"KG: {len(graph)} WebNLG train triples ({len(out_named)} withheld, both ends kept), {len(entities)} "
            f"entities, "
            f"{args.kge_model} at most {args.kge_epochs} epochs, built in {kg_s:.0f}s "
            f"({'stages run: ' + ', '.join(ran) if ran else 'reused'}). Examples: {len(encoded[0])} training "
            f"({origin} and a negative each), {len(encoded[1])} evaluation ({len(eval_pairs)} "
            f"withheld triples and a negative each); negatives replace the tail by another tail of the same relation. "
            f"LM: SmolLM2-135M frozen, prefix in the top {args.prefix_layers} layers, {args.epochs} epochs, batch "
            f"{args.batch_size}, lr {args.lr}; lower layers once ({tokens} tokens in {below_s:.0f}s).", "",
            "| row | evaluation accuracy | train time per seed (s) |", "|---|---|---|",
            f"| (a) KG score, threshold per relation | {kg_accuracy:.4f} | |"]
    for name, runs in results.items():
        body.append(f"| {name} | {spread([r['accuracy'] for r in runs])} | "
                    f"{statistics.mean(r['train_s'] for r in runs):.0f} |")
    body += ["", f"Whole benchmark: {time.perf_counter() - t_start:.0f}s; load average at the end "
                 f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores, torch threads {torch.get_num_threads()}."]
    key, title = "triple_classification_webnlg", "Triple classification on WebNLG: KG score, LM, LM + knowledge prefix"
    if args.kg_without_train:
        key, title = key + "_crossfit", title + " (training triples not in the KG)"
    write_section(key, title, "\n".join(body),
                  f"python benchmarks/triple_classification_webnlg.py {args.data} --withheld "
                  f"{args.withheld} --train {args.train} --epochs {args.epochs} --seeds {args.seeds}"
                  f"{' --kg-without-train' if args.kg_without_train else ''}",
                  print_only=args.no_write)


if __name__ == "__main__":
    main()
