"""Claim: knowledge prefix tokens from kgpipe's KG help a decoder LM (SmolLM2-135M, LLaMA architecture) classify
relations on WebNLG, beyond the same frozen LM with the same trained head.

The task of inject_webnlg.py (a WebNLG text with a marked subject and object, the DBpedia relation as label; the
KG is WebNLG train minus every dev triple, built by kgpipe's own ingest -> fuse -> embed; mentions linked by
kgpipe's linker), sized to CPU: the 20 most frequent relations, up to --per-relation examples of each from the
train texts for training and as many from the dev texts for evaluation (stratified, one fixed sample), kept only
where both the decoder's and the encoder's tokenizers hold both mentions within --max-length tokens, so every row
sees the same examples. Rows, each trained for the same epochs with the same optimiser, 3 seeds:
  decoder plain    SmolLM2 frozen, the span-pair head on its last layer (context: the tokens between the mentions)
  decoder prefix   the same with knowledge prefix slots in the top --prefix-layers layers (adapter + head trained)
  decoder align    the E-BERT map fitted to SmolLM2's input embeddings, added at linked mention tokens
  encoder plain / encoder fusion   all-MiniLM-L6-v2 frozen, and with gated fusion at layers 3,5 (as today)
The frozen layers below the prefix run once per example and are shared by every seed and by the plain row.
Also: the frozen part's throughput (tokens/s) and the forward-pass latency of prefix vs plain on one batch.

Usage: python benchmarks/inject_decoder_webnlg.py [DATA_DIR] [--per-relation 25] [--seeds 0,1,2] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section
from _webnlg import read_webnlg
from inject_webnlg import build_examples, build_kg, entity_iri, link_examples


def stratified(examples, relations, per_relation: int, rng: random.Random):
    by_relation = defaultdict(list)
    for ex in examples:
        if ex.label in relations:
            by_relation[ex.label].append(ex)
    chosen = []
    for relation in relations:
        pool = by_relation[relation]
        rng.shuffle(pool)
        chosen += pool[:per_relation]
    return chosen


def fits(tokenizers, example, max_length: int) -> bool:
    """Both mentions inside max_length tokens for every tokenizer (so every row gets this example)."""
    from kgpipe.lm.task import encode_examples

    return all(encode_examples(t, [example], [example.label], lambda e: -1, max_length=max_length)
               for t in tokenizers)


def memo(model):
    """The frozen model with its outputs kept by input: the align row's features (all layers, knowledge in the
    input) are the same for every seed, so each batch runs once (batches are formed by length, alike per seed)."""
    import torch

    class Memo(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model, self.seen = model, {}

        def forward(self, input_ids, attention_mask, **kwargs):
            key = (tuple(input_ids.shape), input_ids.numpy().tobytes(),
                   *(v.numpy().tobytes() for _, v in sorted(kwargs.items())))
            if key not in self.seen:
                self.seen[key] = self.model(input_ids, attention_mask, **kwargs)
            return self.seen[key]

    return Memo()


def spread(values: list[float]) -> str:
    return f"{statistics.mean(values):.4f} ({min(values):.4f}-{max(values):.4f})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data", nargs="?", default=str(Path(__file__).resolve().parents[2] / "shared/data/webnlg"))
    parser.add_argument("--relations", type=int, default=20, help="the most frequent relations kept")
    parser.add_argument("--per-relation", type=int, default=25, help="examples per relation, train and eval each")
    parser.add_argument("--max-length", type=int, default=48)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--prefix-layers", type=int, default=4)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--kge-model", default="ComplEx")
    parser.add_argument("--kge-epochs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=42, help="the KG embedding's and the sample's seed")
    parser.add_argument("--kg-without-train", action="store_true",
                        help="the training examples' triples leave the KG too (cross-fitted), so that the KG knows "
                             "the training pairs no better than the evaluated ones")
    parser.add_argument("--work", default="/tmp/kgpipe-inject-decoder-webnlg")
    parser.add_argument("--no-write", action="store_true")
    run(parser.parse_args())


def run(args) -> None:
    import pandas as pd
    import torch
    from transformers import AutoModel, AutoTokenizer

    from kgpipe.export.embeddings import load_embeddings
    from kgpipe.kg.normalize import normalize_name
    from kgpipe.lm.decoder_model import DecoderInjectionConfig, KnowledgeDecoder
    from kgpipe.lm.decoders import load_decoder, resolve_decoder
    from kgpipe.lm.encoder import InjectionConfig, KnowledgeEnhancedEncoder, resolve_base_model
    from kgpipe.lm.knowledge_model import fit_align_map, knowledge_for
    from kgpipe.lm.linker import EntityLinker
    from kgpipe.lm.task import (
        SpanPairClassifier,
        TrainConfig,
        accuracy_macro_f1,
        collate,
        encode_examples,
        lower_states,
        predict,
        train_classifier,
    )

    t_start = time.perf_counter()
    data = Path(args.data)
    if not (data / "train").is_dir() or not (data / "dev").is_dir():
        raise SystemExit(f"{data}: expected train/ and dev/ folders of WebNLG XML")
    train_entries, dev_entries = read_webnlg(data / "train"), read_webnlg(data / "dev")
    dev_triples = {t for e in dev_entries for t in e.triples}
    train_triples = {t for e in train_entries for t in e.triples}

    decoder_base = resolve_decoder("smollm2")
    t0 = time.perf_counter()
    lm, lm_tokenizer = load_decoder(decoder_base)
    load_s = time.perf_counter() - t0
    encoder_path = resolve_base_model("all-MiniLM-L6-v2")
    encoder_tokenizer = AutoTokenizer.from_pretrained(encoder_path)
    tokenizers = (lm_tokenizer, encoder_tokenizer)

    train_all, dev_all = build_examples(train_entries), build_examples(dev_entries)
    relations = [r for r, _ in Counter(ex.label for ex in train_all).most_common(args.relations)]
    rng = random.Random(args.seed)
    keep = [ex for ex in train_all if fits(tokenizers, ex, args.max_length)]
    train_examples = stratified(keep, relations, args.per_relation, rng)
    keep = [ex for ex in dev_all if fits(tokenizers, ex, args.max_length)]
    eval_examples = stratified(keep, relations, args.per_relation, rng)
    labels = sorted(relations)

    kg_triples = train_triples - dev_triples
    if args.kg_without_train:
        asked = {(ex.subject_entity, ex.label, ex.object_entity) for ex in train_examples}
        kg_triples = {(s, p, o) for s, p, o in kg_triples if (entity_iri(s), p, entity_iri(o)) not in asked}
    t0 = time.perf_counter()
    kg_dir = Path(args.work) / ("kg-crossfit" if args.kg_without_train else "kg")
    entities_path, embeddings_path, ran = build_kg(kg_dir, kg_triples, args)
    kg_s = time.perf_counter() - t0
    entities = pd.read_parquet(entities_path)
    found = knowledge_for(entities, load_embeddings(embeddings_path), "float32")
    knowledge, entity_labels = found.table, found.labels
    linker = EntityLinker(entities.to_dict("records"), normalize=normalize_name)
    train_linked = [replace(ex) for ex in train_examples]
    eval_linked = [replace(ex) for ex in eval_examples]
    link_examples(train_linked, linker, knowledge.index)
    linking = link_examples(eval_linked, linker, knowledge.index)
    row = lambda e: knowledge.index.get(e, -1) if e else -1  # noqa: E731

    def items(tokenizer):
        return (encode_examples(tokenizer, train_linked, labels, row, max_length=args.max_length),
                encode_examples(tokenizer, eval_linked, labels, row, max_length=args.max_length))

    seeds = [int(s) for s in args.seeds.split(",")]
    config = lambda seed: TrainConfig(epochs=args.epochs, batch_size=args.batch_size,  # noqa: E731
                                      learning_rate=args.lr, seed=seed)
    results: dict[str, list[dict]] = defaultdict(list)

    def evaluate(name: str, model, train_items, eval_items, seed: int, states=(None, None)) -> None:
        t0 = time.perf_counter()
        train_classifier(model, train_items, config(seed), states=states[0])
        train_s = time.perf_counter() - t0
        gold = [i["label"] for i in eval_items]
        accuracy, macro_f1 = accuracy_macro_f1(gold, predict(model, eval_items, states=states[1]))
        results[name].append({"seed": seed, "accuracy": accuracy, "macro_f1": macro_f1, "train_s": train_s})
        print(name, json.dumps(results[name][-1]), flush=True)

    # --- decoder rows ------------------------------------------------------------------------------------
    dec_train, dec_eval = items(lm_tokenizer)
    hidden = lm.config.hidden_size

    def prefix_decoder(seed: int) -> KnowledgeDecoder:
        torch.manual_seed(seed)
        return KnowledgeDecoder(lm, knowledge, DecoderInjectionConfig(mode="prefix",
                                                                      prefix_layers=args.prefix_layers))

    def classifier(encoder, seed: int, knowledge_on: bool, context: str = "between") -> SpanPairClassifier:
        torch.manual_seed(seed)
        return SpanPairClassifier(encoder, hidden, len(labels), knowledge=knowledge_on, context=context)

    t0 = time.perf_counter()
    probe = classifier(prefix_decoder(0), 0, True)
    states = (lower_states(probe, dec_train), lower_states(probe, dec_eval))
    below_s = time.perf_counter() - t0
    below_tokens = sum(len(i["input_ids"]) for i in dec_train + dec_eval)
    for seed in seeds:
        plain = prefix_decoder(seed).requires_grad_(False)  # no knowledge: the frozen LM, from the same states
        evaluate("decoder plain", classifier(plain, seed, False), dec_train, dec_eval, seed, states)
        evaluate("decoder prefix", classifier(prefix_decoder(seed), seed, True), dec_train, dec_eval, seed, states)
    align_fit = fit_align_map(knowledge, entity_labels, lm_tokenizer, lm, anchors=found.trained)
    align = KnowledgeDecoder(lm, knowledge, DecoderInjectionConfig(mode="align"), linear_map=align_fit.map)
    remembered = memo(align)
    for seed in seeds:
        model = classifier(remembered, seed, True)
        evaluate("decoder align", model, dec_train, dec_eval, seed)

    batch = collate(dec_eval[:8])
    prefix_model = prefix_decoder(0)
    timings: dict[str, list[float]] = {"plain": [], "prefix": []}
    with torch.no_grad():
        for _ in range(3):
            for key, call in (("plain", lambda: lm.model(input_ids=batch.input_ids,
                                                         attention_mask=batch.attention_mask)),
                              ("prefix", lambda: prefix_model(batch.input_ids, batch.attention_mask,
                                                              entity_rows=batch.entity_rows))):
                t0 = time.perf_counter()
                call()
                timings[key].append(time.perf_counter() - t0)
    latency = {k: statistics.median(v) for k, v in timings.items()}

    # --- encoder rows (today's inject stage), the same examples ---------------------------------------
    enc_train, enc_eval = items(encoder_tokenizer)
    enc_states = None
    for seed in seeds:
        torch.manual_seed(seed)
        base = AutoModel.from_pretrained(encoder_path).requires_grad_(False)
        model = SpanPairClassifier(base, base.config.hidden_size, len(labels), knowledge=False)
        evaluate("encoder plain", model, enc_train, enc_eval, seed)
        torch.manual_seed(seed)
        base = AutoModel.from_pretrained(encoder_path)
        fusion = KnowledgeEnhancedEncoder(base, knowledge, InjectionConfig(mode="fusion", layers=[3, 5]))
        model = SpanPairClassifier(fusion, base.config.hidden_size, len(labels), knowledge=True)
        if enc_states is None:
            enc_states = (lower_states(model, enc_train), lower_states(model, enc_eval))
        evaluate("encoder fusion", model, enc_train, enc_eval, seed, enc_states)

    per_relation = Counter(ex.label for ex in train_examples)
    body = [
        f"Examples: {len(dec_train)} train (train texts) and {len(dec_eval)} eval (dev texts), stratified over the "
        f"{len(labels)} most frequent relations (at most {args.per_relation} each; {min(per_relation.values())}-"
        f"{max(per_relation.values())} per relation in train), both mentions within {args.max_length} tokens for "
        f"both tokenizers, the same examples in every row. KG: {len(kg_triples)} triples (train "
        f"minus every dev triple{' and every training example triple' if args.kg_without_train else ''}), "
        f"{len(entities)} entities, {args.kge_model} at most {args.kge_epochs} epochs, "
        f"built in {kg_s:.0f}s ({'stages run: ' + ', '.join(ran) if ran else 'reused'}); eval linking accuracy "
        f"{linking[0]:.3f} over all mentions, {linking[1]:.3f} over those whose entity is in the KG. Training: "
        f"{args.epochs} epochs, batch {args.batch_size}, lr {args.lr}, the LM frozen (SmolLM2-135M-Instruct, "
        f"{decoder_base.describe()['file']}, loaded in {load_s:.0f}s); prefix in the top {args.prefix_layers} of "
        f"{len(lm.model.layers)} layers. The {len(lm.model.layers) - args.prefix_layers} layers below ran once: "
        f"{below_tokens} tokens in {below_s:.0f}s ({below_tokens / below_s:.0f} tokens/s with "
        f"{torch.get_num_threads()} torch threads). Align map: {align_fit.anchors} anchors, held-out cosine "
        f"{align_fit.heldout_cosine:.3f}. Seeds {args.seeds} (head and adapter initialisation, batch order); "
        f"mean (min-max).", "",
        "| row | eval accuracy | eval macro-F1 | train time per seed (s) |", "|---|---|---|---|"]
    for name, runs in results.items():
        body.append(f"| {name} | {spread([r['accuracy'] for r in runs])} | {spread([r['macro_f1'] for r in runs])} | "
                    f"{statistics.mean(r['train_s'] for r in runs):.0f} |")
    gain = [p["macro_f1"] - q["macro_f1"] for p, q in zip(results["decoder prefix"], results["decoder plain"],
                                                          strict=True)]
    body += ["", f"Prefix minus plain macro-F1 per seed: {', '.join(f'{g:+.4f}' for g in gain)} (mean "
                 f"{statistics.mean(gain):+.4f}; target +0.03). Forward pass over 8 eval examples, all "
                 f"{len(lm.model.layers)} layers: plain {latency['plain']:.3f}s, prefix {latency['prefix']:.3f}s "
                 f"(ratio {latency['prefix'] / latency['plain']:.2f}). Whole benchmark: "
                 f"{time.perf_counter() - t_start:.0f}s; load average at the end {os.getloadavg()[0]:.1f} on "
                 f"{os.cpu_count()} cores."]
    text = "\n".join(body)
    key, title = "inject_decoder_webnlg", "Knowledge injection into a decoder: WebNLG relation classification"
    if args.kg_without_train:
        key, title = key + "_crossfit", title + " (KG without the training triples)"
    write_section(key, title,
                  text, f"python benchmarks/inject_decoder_webnlg.py {args.data} --per-relation {args.per_relation} "
                  f"--epochs {args.epochs} --prefix-layers {args.prefix_layers} --seeds {args.seeds}"
                  f"{' --kg-without-train' if args.kg_without_train else ''}",
                  print_only=args.no_write)


if __name__ == "__main__":
    main()
