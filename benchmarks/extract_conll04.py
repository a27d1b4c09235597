"""Claim: the extract stage's entities and relations, measured on CoNLL04 (real news sentences), end to end.

Entities: precision/recall/F1 with exact spans, per CoNLL04 type and overall, for the stock spaCy model
(its labels mapped PERSON->Peop, ORG->Org, GPE/LOC/FAC->Loc, everything else->Other) and, if given, a model
trained with `kgpipe ner train`. Relations (Work_For, Live_In, Located_In, OrgBased_In, Kill; exact head
and tail spans plus type) from patterns only: (a) the hand-written library, (b) patterns learned on the
train split in this run, (c) both; each with predicted entities (end to end) and with gold entities (the
patterns alone). The precision of every pattern that fired is listed. Every choice is made on the train
split: the learner's per-relation thresholds by k-fold cross-validation inside it, the NER's early stopping
on a held-out slice of it (`kgpipe ner train` without --dev); dev is only reported. Where several relations
fire on one pair of entities, the most confident pattern's is kept (extract param one_relation_per_pair),
as the cross-validation assumes.

With --relation-model (a folder from `kgpipe rel train`, trained on the train split; its early stopping on a
held-out slice of train), the same table gets rows for the model alone and for the model with both pattern
sets (extract param relation_policy: model, union, or model_then_patterns), end to end and with gold entities,
by the same scorer; the model's relation names are CoNLL04's own.

Sentences are processed with their gold tokenization, as is usual for CoNLL04. The hand-written relation
names map to CoNLL04 types by the subject's type: works_for/employed_by -> Work_For, killed -> Kill, and
the place relations (lives_in, born_in, located_in, headquartered_in, capital_of) -> Live_In for a person,
OrgBased_In for an organisation, Located_In for a place.

Usage: python benchmarks/extract_conll04.py [DEV.jsonl] [--train TRAIN.jsonl] [--ner-model FOLDER]
         [--other-ner-models FOLDER ...] [--train-command "kgpipe ner train ..."]
         [--patterns pipelines/patterns] [--cv-folds 5] [--max-path 5] [--min-precision 0.6] [--min-support 1]
         [--relation-model FOLDER [--relation-policy model union ...] [--relation-threshold 0.5]] [--no-write]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "conll04"
TYPES = ("Peop", "Loc", "Org", "Other")
RELATIONS = ("Work_For", "Live_In", "Located_In", "OrgBased_In", "Kill")
STOCK_TO_CONLL = {"PERSON": "Peop", "ORG": "Org", "GPE": "Loc", "LOC": "Loc", "FAC": "Loc",
                  "Peop": "Peop", "Org": "Org", "Loc": "Loc", "Other": "Other"}
PLACE_RELATIONS = {"lives_in", "born_in", "located_in", "headquartered_in", "capital_of"}
PLACE_BY_SUBJECT = {"Peop": "Live_In", "Org": "OrgBased_In", "Loc": "Located_In"}


# Composition rules for the "+ composition" rows: a place relation followed by located_in gives the place
# relation again (lives in Omaha, Omaha is in Nebraska: lives in Nebraska). How often that holds in the
# train split's gold annotation is measured and printed in the same run.
PLACE_ALL = ("Live_In", "OrgBased_In", "Located_In", "lives_in", "born_in", "located_in", "headquartered_in")
LOCATED_ALL = ("Located_In", "located_in")
COMPOSE = {(first, then): first for first in PLACE_ALL for then in LOCATED_ALL}


def composition_support(train: list[Any]) -> tuple[int, int]:
    """(holds, total): gold X(a, b) and Located_In(b, c) in a train sentence, and is X(a, c) gold too?"""
    holds = total = 0
    for s in train:
        gold = {(r.head, r.tail, r.type) for r in s.relations}
        for a, b, rel in gold:
            if rel in ("Live_In", "OrgBased_In", "Located_In"):
                for b2, c, rel2 in gold:
                    if b2 == b and rel2 == "Located_In" and c != a:
                        total += 1
                        holds += (a, c, rel) in gold
    return holds, total


def conll_type(label: str) -> str:
    return STOCK_TO_CONLL.get(label, "Other")


def conll_relation(name: str, subject_type: str) -> str | None:
    if name in RELATIONS:
        return name
    if name in ("works_for", "employed_by"):
        return "Work_For"
    if name == "killed":
        return "Kill"
    if name in PLACE_RELATIONS:
        return PLACE_BY_SUBJECT.get(subject_type)
    return None


def prf(tp: int, n_pred: int, n_gold: int) -> tuple[float, float, float]:
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_gold if n_gold else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def gold_sets(sentences: list[Any]) -> tuple[set[tuple], set[tuple]]:
    entities, relations = set(), set()
    for n, s in enumerate(sentences):
        spans = s.char_spans()
        for (a, b), e in zip(spans, s.entities, strict=True):
            entities.add((n, a, b, e.type))
        for r in s.relations:
            relations.add((n, *spans[r.head], *spans[r.tail], r.type))
    return entities, relations


def run_extractor(extractor: Any, nlp: Any, sentences: list[Any], *, gold_entities: bool) -> list[Any]:
    from spacy.tokens import Span

    from kgpipe.nlp.labelled import make_doc

    if not gold_entities:
        return list(extractor.extract_docs((str(n), make_doc(nlp, s)) for n, s in enumerate(sentences)))
    results = []
    off = [p for p in ("ner", "kgpipe_gazetteer") if p in nlp.pipe_names]
    with nlp.select_pipes(disable=off):
        docs = nlp.pipe(make_doc(nlp, s) for s in sentences)
        for n, (s, doc) in enumerate(zip(sentences, docs, strict=True)):
            doc.ents = [Span(doc, e.start, e.end, label=e.type) for e in s.entities]
            results.append(extractor.extract_doc(doc, str(n)))
    return results


def predicted_sets(results: list[Any], per_pattern: dict[str, Counter] | None, gold_rel: set[tuple]
                   ) -> tuple[set[tuple], set[tuple]]:
    entities, relations = set(), set()
    for res in results:
        n = int(res.doc_id)
        by_id = {}
        for m in res.mentions:
            key = (n, m["start_char"], m["end_char"], conll_type(m["label"]))
            entities.add(key)
            by_id[m["mention_id"]] = key
        for r in res.relations:
            s, o = by_id[r["subject_id"]], by_id[r["object_id"]]
            rel = conll_relation(r["relation"], s[3])
            if rel is None:
                continue
            triple = (n, s[1], s[2], o[1], o[2], rel)
            relations.add(triple)
            if per_pattern is not None:
                per_pattern[r["pattern_id"]]["fired"] += 1
                per_pattern[r["pattern_id"]]["correct"] += triple in gold_rel
    return entities, relations


def entity_table(gold: set[tuple], pred: set[tuple]) -> tuple[str, float]:
    rows = ["| type | gold | predicted | P | R | F1 |", "|---|---|---|---|---|---|"]
    for t in TYPES:
        g = {e for e in gold if e[3] == t}
        p = {e for e in pred if e[3] == t}
        rows.append(f"| {t} | {len(g)} | {len(p)} | " + " | ".join(f"{x:.3f}" for x in prf(len(g & p), len(p), len(g)))
                    + " |")
    overall = prf(len(gold & pred), len(pred), len(gold))
    untyped = prf(len({e[:3] for e in gold} & {e[:3] for e in pred}), len({e[:3] for e in pred}),
                  len({e[:3] for e in gold}))
    rows.append(f"| **all (typed)** | {len(gold)} | {len(pred)} | " + " | ".join(f"**{x:.3f}**" for x in overall)
                + " |")
    rows.append("| spans only (untyped) | | | " + " | ".join(f"{x:.3f}" for x in untyped) + " |")
    return "\n".join(rows), overall[2]


def relation_row(name: str, gold: set[tuple], pred: set[tuple]) -> tuple[str, float]:
    cells = []
    for rel in RELATIONS:
        g = {x for x in gold if x[5] == rel}
        p = {x for x in pred if x[5] == rel}
        cells.append(f"{prf(len(g & p), len(p), len(g))[2]:.2f}")
    p, r, f = prf(len(gold & pred), len(pred), len(gold))
    return f"| {name} | {len(pred)} | {p:.3f} | {r:.3f} | **{f:.3f}** | " + " | ".join(cells) + " |", f


def kept_epoch(training: dict) -> str:
    """Which epoch `kgpipe ner train` kept, and on what evidence (from the model's meta.json)."""
    if training.get("dev_ents_f") is None:
        return f"the last of {training.get('epochs_run')} epochs kept (no validation set)"
    return (f"epoch {training.get('best_epoch')} of {training.get('epochs_run')} kept (best F1 by spaCy's scorer "
            f"on the validation set: {training.get('validation', 'dev')}, {training['dev_ents_f']:.3f}; patience "
            f"{training.get('patience')})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("path", nargs="?", default=str(DATA / "conll04_dev.jsonl"))
    parser.add_argument("--train", default=str(DATA / "conll04_train.jsonl"))
    parser.add_argument("--model", default="auto", help="stock model for the entity baseline")
    parser.add_argument("--ner-model", default=None, help="a model folder from `kgpipe ner train`")
    parser.add_argument("--patterns", default=str(REPO / "pipelines" / "patterns"))
    parser.add_argument("--min-precision", type=float, default=0.6)
    parser.add_argument("--min-support", type=int, default=1)
    parser.add_argument("--cv-folds", type=int, default=5,
                        help="choose per-relation thresholds by k-fold CV on train (0: use the two above)")
    parser.add_argument("--max-path", type=int, default=5, help="longest learned dependency path, in edges")
    parser.add_argument("--other-ner-models", nargs="*", default=[],
                        help="more `kgpipe ner train` folders: their entity and end-to-end relation F1 are listed "
                             "too, to show how much the numbers move from one NER training run to another")
    parser.add_argument("--train-note", default=None,
                        help="how the --ner-model's training settings were chosen, quoted after its command")
    parser.add_argument("--train-command", default=None,
                        help="the `kgpipe ner train` command that made --ner-model, quoted in the report")
    parser.add_argument("--relation-model", default=None, help="a relation model folder from `kgpipe rel train`")
    parser.add_argument("--relation-policy", nargs="+", default=["model", "union"],
                        choices=["model", "union", "model_then_patterns"],
                        help="the relation_policy rows to add for --relation-model (patterns: the rows above)")
    parser.add_argument("--relation-threshold", type=float, default=0.5)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    from kgpipe.nlp.extractor import ExtractOptions, build_extractor
    from kgpipe.nlp.labelled import read_labelled
    from kgpipe.nlp.learn import LearnOptions, describe, learn_patterns
    from kgpipe.nlp.models import load_model
    from kgpipe.nlp.patterns import LoadedPattern, PatternLibrary, load_patterns

    dev = read_labelled(Path(args.path))
    train = read_labelled(Path(args.train))
    gold_ent, gold_rel = gold_sets(dev)
    options = ExtractOptions(keep_unmapped_labels=True, one_relation_per_pair=True)
    sections: list[str] = []
    summary: dict[str, float] = {}

    # --- entities -----------------------------------------------------------------------------------
    models = [("stock", args.model)] + ([("trained", args.ner_model)] if args.ner_model else [])
    for name, spec in models:
        nlp = load_model(spec, cache=False)
        extractor, _ = build_extractor(nlp, options=options)
        t0 = time.perf_counter()
        ents, _ = predicted_sets(run_extractor(extractor, nlp, dev, gold_entities=False), None, gold_rel)
        table, f1 = entity_table(gold_ent, ents)
        summary[f"entity_f1_{name}"] = f1
        training = nlp.meta.get("kgpipe_training")
        trained = (f"Trained by `kgpipe ner train` from {training['base_model']} on {training['train_sentences']} "
                   f"sentences: {kept_epoch(training)}, stopped: {training['stopped']}; label renames "
                   f"{training['label_renames'] or 'none'}.\n\n") if training else ""
        sections.append(f"### Entities, {name} model (`{spec}`, {nlp.meta.get('name')}), "
                        f"{time.perf_counter() - t0:.1f}s\n\n{trained}{table}\n")

    # --- relations ------------------------------------------------------------------------------------
    spec = args.ner_model or args.model
    nlp = load_model(spec, cache=False)
    hand = load_patterns([Path(args.patterns)])
    t0 = time.perf_counter()
    learned, report = learn_patterns(nlp, train, LearnOptions(
        min_precision=args.min_precision, min_support=args.min_support, cv_folds=args.cv_folds,
        max_path_edges=args.max_path))
    learn_s = time.perf_counter() - t0
    learned_lib = PatternLibrary([LoadedPattern(p, "<learned>", None) for p in learned])
    both = PatternLibrary([*hand.loaded, *learned_lib.loaded])
    rows = ["| patterns | entities | predicted | P | R | F1 | " + " | ".join(RELATIONS) + " |",
            "|---|---|---|---|---|---|" + "---|" * len(RELATIONS)]
    per_pattern: dict[str, dict[str, Counter]] = {}
    composed = ExtractOptions(keep_unmapped_labels=True, one_relation_per_pair=True, compose=COMPOSE)
    for lib_name, library, opts in (("hand-written", hand, options), ("learned", learned_lib, options),
                                    ("both", both, options), ("both + composition", both, composed)):
        extractor, _ = build_extractor(nlp, options=opts, patterns=library)
        for gold_entities in (False, True):
            counts: dict[str, Counter] = defaultdict(Counter)
            _, rels = predicted_sets(run_extractor(extractor, nlp, dev, gold_entities=gold_entities),
                                     counts, gold_rel)
            mode = "gold" if gold_entities else "predicted"
            row, f1 = relation_row(lib_name, gold_rel, rels)
            rows.append(row.replace(f"| {lib_name} |", f"| {lib_name} | {mode} |", 1))
            summary[f"relation_f1_{lib_name}_{mode}"] = f1
            if lib_name == "both + composition":
                per_pattern[mode] = counts
    model_note = ""
    if args.relation_model:
        import torch

        from kgpipe.nlp.model_relations import load_model_relations

        torch.set_num_threads(1)
        scorer = load_model_relations(args.relation_model, threshold=args.relation_threshold, max_pairs=64)
        training = scorer.model.config.training
        model_note = (f"Relation model `{args.relation_model}` (`{scorer.pattern_id}`, base "
                      f"{scorer.model.config.base_model}; training: " + ", ".join(
                          f"{k} {training[k]}" for k in ("epochs_run", "best_epoch", "stopped", "seed")
                          if k in training) + f"), threshold {args.relation_threshold}; "
                      "rows 'model' use it alone, 'union' and 'model_then_patterns' with both pattern sets.\n\n")
        for policy in args.relation_policy:
            opts = ExtractOptions(keep_unmapped_labels=True, one_relation_per_pair=True, relation_policy=policy,
                                  relation_threshold=args.relation_threshold)
            extractor, _ = build_extractor(nlp, options=opts, patterns=both, model=scorer)
            for gold_entities in (False, True):
                t1 = time.perf_counter()
                _, rels = predicted_sets(run_extractor(extractor, nlp, dev, gold_entities=gold_entities), None,
                                         gold_rel)
                mode = "gold" if gold_entities else "predicted"
                row, f1 = relation_row(policy, gold_rel, rels)
                rows.append(row.replace(f"| {policy} |", f"| {policy} | {mode} |", 1))
                summary[f"relation_f1_{policy}_{mode}"] = f1
                print(f"relation model, {policy}, {mode} entities: F1 {f1:.3f} "
                      f"({time.perf_counter() - t1:.1f}s)", file=sys.stderr)
    holds, total = composition_support(train)
    sections.append(f"### Relations ({len(gold_rel)} gold), entities from `{spec}`\n\n"
                    f"Learned on `{Path(args.train).name}` in {learn_s:.1f}s (max path {args.max_path} edges; "
                    + (f"thresholds by {args.cv_folds}-fold CV on train" if args.cv_folds >= 2 else
                       f"min precision {args.min_precision}, min support {args.min_support}")
                    + f"):\n\n```\n{describe(report)}\n```\n\n"
                    "Composition (extract param `compose`): Live_In/OrgBased_In/Located_In(a, b) + "
                    f"Located_In(b, c) -> the first relation (a, c); in the train split's gold annotation this "
                    f"holds {holds} of {total} times. Derived rows are counted like any other prediction.\n\n"
                    + model_note + "\n".join(rows) + "\n")
    if args.other_ner_models:
        runs = ["| NER model | entity F1 | relation F1, both | relation F1, both + composition |", "|---|---|---|---|",
                f"| `{spec}` (above) | {summary.get('entity_f1_trained', 0.0):.3f} | "
                f"{summary['relation_f1_both_predicted']:.3f} | "
                f"{summary['relation_f1_both + composition_predicted']:.3f} |"]
        scores = [(summary.get("entity_f1_trained", 0.0), summary["relation_f1_both_predicted"],
                   summary["relation_f1_both + composition_predicted"])]
        for other in args.other_ner_models:
            other_nlp = load_model(other, cache=False)
            cells = []
            for opts in (options, composed):
                extractor, _ = build_extractor(other_nlp, options=opts, patterns=both)
                ents, rels = predicted_sets(run_extractor(extractor, other_nlp, dev, gold_entities=False), None,
                                            gold_rel)
                cells.append(relation_row("x", gold_rel, rels)[1])
            meta = other_nlp.meta.get("kgpipe_training", {})
            runs.append(f"| `{other}` (renames {meta.get('label_renames') or 'none'}; seed {meta.get('seed')}, "
                        f"{meta.get('train_sentences')} sentences, {kept_epoch(meta)}) | "
                        f"{entity_table(gold_ent, ents)[1]:.3f} | {cells[0]:.3f} | {cells[1]:.3f} |")
            scores.append((entity_table(gold_ent, ents)[1], cells[0], cells[1]))
        runs.append(f"| mean (min-max) of the {len(scores)} runs | "
                    + " | ".join(f"{sum(col) / len(col):.3f} ({min(col):.3f}-{max(col):.3f})"
                                 for col in zip(*scores, strict=True))
                    + " |")
        sections.append("### Other NER training runs (same train data and patterns)\n\n" + "\n".join(runs) + "\n")
    lines = ["| pattern | fired (end to end) | precision | fired (gold entities) | precision |",
             "|---|---|---|---|---|"]
    ids = sorted(set(per_pattern["predicted"]) | set(per_pattern["gold"]),
                 key=lambda i: (-per_pattern["gold"][i]["fired"], i))
    for pid in ids:
        e2e, gold = per_pattern["predicted"][pid], per_pattern["gold"][pid]
        lines.append(f"| {pid} | {e2e['fired']} | {e2e['correct'] / e2e['fired'] if e2e['fired'] else 0:.2f} | "
                     f"{gold['fired']} | {gold['correct'] / gold['fired'] if gold['fired'] else 0:.2f} |")
    sections.append("### Precision of each pattern that fired on dev (hand-written and learned together, with "
                    "composition; a derived row counts for 'p1+p2')\n\n"
                    + "\n".join(lines) + "\n")

    entity_f1 = summary.get("entity_f1_trained", summary["entity_f1_stock"])
    targets = (f"Targets (CoNLL04 dev, end to end, i.e. predicted entities): entity F1 >= 0.75: **{entity_f1:.3f}**; "
               f"relation F1 >= 0.50: **{summary['relation_f1_both_predicted']:.3f}** with the hand-written and "
               f"learned patterns, **{summary['relation_f1_both + composition_predicted']:.3f}** with composition "
               f"added (learned patterns alone {summary['relation_f1_learned_predicted']:.3f}, hand-written alone "
               f"{summary['relation_f1_hand-written_predicted']:.3f}).")
    training = f"NER model made with: `{args.train_command}`\n\n" if args.train_command else ""
    training += f"{args.train_note}\n\n" if args.train_note else ""
    if args.relation_model:
        targets += " With the relation model: " + ", ".join(
            f"{policy} **{summary[f'relation_f1_{policy}_predicted']:.3f}** end to end, "
            f"{summary[f'relation_f1_{policy}_gold']:.3f} with gold entities" for policy in args.relation_policy) + "."
    body = (f"Data: `{Path(args.path).name}` ({len(dev)} sentences, {len(gold_ent)} entities, "
            f"{len(gold_rel)} relations); gold tokenization; exact spans. Shared 2-core machine.\n\n"
            + training + targets + "\n\n" + "\n".join(sections))
    command = "python benchmarks/extract_conll04.py" + (f" --ner-model {args.ner_model}" if args.ner_model else "")
    if args.other_ner_models:
        command += " --other-ner-models " + " ".join(args.other_ner_models)
    if args.cv_folds < 2 and (args.min_precision != 0.6 or args.min_support != 1):
        command += f" --min-precision {args.min_precision} --min-support {args.min_support}"
    if args.cv_folds != 5:
        command += f" --cv-folds {args.cv_folds}"
    if args.max_path != 5:
        command += f" --max-path {args.max_path}"
    if args.relation_model:
        command += f" --relation-model {args.relation_model} --relation-policy {' '.join(args.relation_policy)}"
        if args.relation_threshold != 0.5:
            command += f" --relation-threshold {args.relation_threshold}"
    if args.train_command:
        command += f" --train-command '{args.train_command}'"
    if args.train_note:
        command += f" --train-note '{args.train_note}'"
    write_section("extract_conll04", "Extraction quality on CoNLL04 dev", body, command, print_only=args.no_write)


if __name__ == "__main__":
    main()
