"""Claim: how much of WebNLG's entities and entity pairs the extract stage finds in text it has never seen
(DBpedia verbalisations on airports, astronauts, buildings, food, monuments, sports teams, universities).

For each text of a WebNLG split folder (`<entry>`s with `<modifiedtripleset>` triples and `<lex>` texts
whose `<references>` list every entity mention and its type):
  mentions - predicted mention strings against the gold references of type "name" (exact match after
             removing whitespace, since the references are tokenized, and a leading "the"; counted as
             multisets per text), precision/recall/F1;
  pairs    - (subject, object) of every predicted relation, whatever its relation name (WebNLG's DBpedia
             properties are not the pattern library's relations), against the gold triples whose subject
             and object are both named in the text; a pair is right when its strings are name references
             of a gold triple's subject and object. Directed, and undirected.
The stage's defaults: spaCy model `auto` (or --ner-model), the default pattern library, no gazetteer
(seeding it from the gold triples would leak the answers).
With --relation-model (a folder from `kgpipe rel train` on benchmarks/webnlg_relations.py's conversion of
train texts), the pairs rows again for each --relation-policy (extract param relation_policy: model, union,
model_then_patterns), mention labels reaching the model unchanged (no relation_label_map), plus "directed,
property right": a pair counts only when its relation is the gold triple's DBpedia property.

Usage: python benchmarks/extract_webnlg.py [SPLIT_FOLDER] [--ner-model FOLDER] [--limit N]
         [--relation-model FOLDER [FOLDER ...] [--relation-policy model union ...] [--relation-threshold 0.5]]
         [--no-write]   (several folders: seeds of one recipe, mean and min-max)
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section
from _webnlg import read_webnlg

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "webnlg" / "dev"


def read_split(folder: Path) -> list[dict]:
    """One record per text: its string, gold name references {entity: set of normalised strings}, the
    entry's triples and its category (read with benchmarks/_webnlg.py)."""
    records = []
    for entry in read_webnlg(folder):
        for text in entry.texts:
            names: dict[str, set[str]] = defaultdict(set)
            name_list = []
            for ref in text.references:
                if ref.type == "name" and ref.text:
                    names[ref.entity].add(norm(ref.text))
                    name_list.append(norm(ref.text))
            records.append({"text": text.text, "names": dict(names), "name_list": name_list,
                            "triples": text.triples, "category": text.category})
    return records


def norm(text: str) -> str:
    """WebNLG's references are tokenized ("Auckland , New Zealand", "Airport 's"): compare strings with all
    whitespace removed and a leading "the" dropped, case kept."""
    text = text.strip()
    if text.lower().startswith("the "):
        text = text[4:]
    return "".join(text.split())


def prf(tp: int, n_pred: int, n_gold: int) -> tuple[float, float, float]:
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_gold if n_gold else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


@dataclass
class PairCounts:
    predicted: int = 0
    gold: int = 0
    right: Counter = field(default_factory=Counter)   # predicted pairs right, per measure
    found: Counter = field(default_factory=Counter)   # gold pairs found, per measure
    reachable: int = 0   # gold pairs whose subject and object are both mentions of one sentence (recall's ceiling)

    def prf(self, measure: str) -> tuple[float, float, float]:
        p, r = (self.right[measure] / self.predicted if self.predicted else 0.0), \
            (self.found[measure] / self.gold if self.gold else 0.0)
        return p, r, (2 * p * r / (p + r) if p + r else 0.0)

    def row(self, source: str, measure: str) -> str:
        p, r, f = self.prf(measure)
        return f"| (subject, object) pairs, {measure} | {source} | {self.predicted} | {self.gold} | {p:.3f} | " \
               f"{r:.3f} | **{f:.3f}** |"


def seeds_row(source: str, measure: str, runs: list[PairCounts]) -> str:
    """One row for the runs of several models (training seeds): each number the mean, F1 with (min-max)."""
    if len(runs) == 1:
        return runs[0].row(source, measure)
    p, r, f = (np.array([run.prf(measure)[k] for run in runs]) for k in range(3))
    predicted = sum(run.predicted for run in runs) / len(runs)
    return (f"| (subject, object) pairs, {measure} | {source} ({len(runs)} models) | {predicted:.0f} | {runs[0].gold} "
            f"| {p.mean():.3f} | {r.mean():.3f} | **{f.mean():.3f}** ({f.min():.3f}-{f.max():.3f}) |")


PAIR_MEASURES = ("directed", "undirected", "directed, property right")


def score_pairs(records: list[dict], results: list) -> PairCounts:
    """The pairs measures of one run (see the module docstring)."""
    counts = PairCounts()
    for record, result in zip(records, results, strict=True):
        names = record["names"]
        eligible = [(names[s], p, names[o]) for s, p, o in record["triples"] if s in names and o in names]
        texts = {m["mention_id"]: norm(m["text"]) for m in result.mentions}
        typed = {(texts[r["subject_id"]], r["relation"], texts[r["object_id"]]) for r in result.relations}
        pairs = {(a, b) for a, _, b in typed}
        for a, b in pairs:
            counts.predicted += 1
            counts.right["directed"] += any(a in s and b in o for s, _, o in eligible)
            counts.right["undirected"] += any((a in s and b in o) or (a in o and b in s) for s, _, o in eligible)
            counts.right["directed, property right"] += any(
                a in s and b in o and (a, p, b) in typed for s, p, o in eligible)
        by_sentence: dict[int, set[str]] = defaultdict(set)
        for m in result.mentions:
            by_sentence[m["sentence"]].add(norm(m["text"]))
        for s, p, o in eligible:
            counts.gold += 1
            counts.reachable += any(s & found and o & found for found in by_sentence.values())
            counts.found["directed"] += any(a in s and b in o for a, b in pairs)
            counts.found["undirected"] += any((a in s and b in o) or (a in o and b in s) for a, b in pairs)
            counts.found["directed, property right"] += any(a in s and b in o for a, q, b in typed if q == p)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("path", nargs="?", default=str(DATA))
    parser.add_argument("--ner-model", default=None, help="a model folder from `kgpipe ner train`")
    parser.add_argument("--patterns", default=str(REPO / "pipelines" / "patterns"))
    parser.add_argument("--limit", type=int, default=None, help="only the first N texts")
    parser.add_argument("--relation-model", nargs="+", default=None, help=(
        "relation model folders from `kgpipe rel train`; several (training seeds of one recipe): each number the "
        "mean over them, F1 with (min-max), and a row per model below"))
    parser.add_argument("--relation-policy", nargs="+", default=["model", "union"],
                        choices=["model", "union", "model_then_patterns"],
                        help="the relation_policy rows to add for --relation-model (patterns: the rows above)")
    parser.add_argument("--relation-threshold", type=float, default=0.5)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    from kgpipe.nlp.extractor import ExtractOptions, build_extractor
    from kgpipe.nlp.models import load_model
    from kgpipe.nlp.patterns import load_patterns

    records = read_split(Path(args.path))[:args.limit]
    if not records:
        sys.exit(f"no WebNLG texts under {args.path}: pass a split folder, e.g. ../shared/data/webnlg/dev")
    nlp = load_model(args.ner_model or "auto")
    library = load_patterns([Path(args.patterns)])
    extractor, _facts = build_extractor(nlp, patterns=library)
    t0 = time.perf_counter()
    results = list(extractor.extract((str(i), r["text"]) for i, r in enumerate(records)))
    seconds = time.perf_counter() - t0

    m_tp = m_pred = m_gold = 0
    by_category: dict[str, Counter] = defaultdict(Counter)
    for record, result in zip(records, results, strict=True):
        predicted = Counter(norm(m["text"]) for m in result.mentions)
        gold = Counter(record["name_list"])
        tp = sum((predicted & gold).values())
        m_tp, m_pred, m_gold = m_tp + tp, m_pred + sum(predicted.values()), m_gold + sum(gold.values())
        category = record["category"]
        by_category[category].update(tp=tp, pred=sum(predicted.values()), gold=sum(gold.values()))
    runs = [("patterns", score_pairs(records, results))]

    model_note = ""
    by_policy: dict[str, list[PairCounts]] = defaultdict(list)
    per_model: list[str] = []
    if args.relation_model:
        import torch

        from kgpipe.nlp.model_relations import load_model_relations

        torch.set_num_threads(1)
        notes = []
        for folder in args.relation_model:
            scorer = load_model_relations(folder, threshold=args.relation_threshold, max_pairs=64)
            training = scorer.model.config.training
            timings = []
            for policy in args.relation_policy:
                options = ExtractOptions(relation_policy=policy, relation_threshold=args.relation_threshold)
                with_model, _ = build_extractor(nlp, options=options, patterns=library, model=scorer)
                t1 = time.perf_counter()
                by_policy[policy].append(score_pairs(records, list(with_model.extract(
                    (str(i), r["text"]) for i, r in enumerate(records)))))
                timings.append(f"{policy} {time.perf_counter() - t1:.1f}s")
                per_model.append(f"| `{folder}` | {training.get('seed', '-')} | {policy} | "
                                 f"{by_policy[policy][-1].prf('directed')[2]:.3f} |")
            notes.append(f"`{folder}` (`{scorer.pattern_id}`, base {scorer.model.config.base_model}, "
                         f"{len(scorer.model.config.relation_labels) - 1} relations; training: " + ", ".join(
                             f"{k} {training[k]}" for k in ("train_sentences", "epochs_run", "best_epoch", "stopped",
                                                            "seed") if k in training)
                         + f"; extraction with it took {', '.join(timings)})")
        model_note = (("Relation model " if len(notes) == 1 else "Relation models (seeds of one recipe: each row "
                       "the mean over them, F1 with its min-max) ") + "; ".join(notes)
                      + f". Threshold {args.relation_threshold}, one torch thread; rows 'model' use it alone, "
                      "'union' and 'model_then_patterns' with the patterns.\n\n")

    mp, mr, mf = prf(m_tp, m_pred, m_gold)
    lines = [f"Data: `{args.path.rstrip('/').rsplit('/', 2)[-1]}` split, {len(records)} texts; model "
             f"`{nlp.meta.get('name')}`; {len(extractor.library)} patterns; no gazetteer. "
             f"Extraction took {seconds:.1f}s ({len(records) / seconds:.0f} texts/s, shared 2-core machine).", "",
             model_note + "| measure | relations | predicted | gold | P | R | F1 |", "|---|---|---|---|---|---|---|",
             f"| mentions vs name references | (any) | {m_pred} | {m_gold} | {mp:.3f} | {mr:.3f} | **{mf:.3f}** |"]
    for measure in PAIR_MEASURES:
        lines += [counts.row(source, measure) for source, counts in runs]
        lines += [seeds_row(policy, measure, counts) for policy, counts in by_policy.items()]
    gold_pairs, reachable = runs[0][1].gold, runs[0][1].reachable
    lines += ["", f"Of the {gold_pairs} gold pairs, {reachable} ({reachable / max(1, gold_pairs):.3f}) have both "
              "subject and object among the mentions of one sentence: the recall any relation source can reach "
              "with these mentions.", "", "Mentions per category (F1): " + ", ".join(
        f"{c} {prf(v['tp'], v['pred'], v['gold'])[2]:.2f}" for c, v in sorted(by_category.items())) + ".", "",
        f"Gold pairs are the {gold_pairs} triples whose subject and object both have a name reference in the "
        "text (literals such as dates and numbers often do not). Recall of pairs is bounded by the patterns' "
        "relations: most WebNLG properties (runwayLength, leaderName, ingredient, ...) have no pattern, and no "
        "pattern relation is a DBpedia property (so 'property right' is 0 for patterns). "
        "Precision of pairs is a lower bound: WebNLG lists only the triples its text was written from, so a "
        "true extra fact (\"Auckland located_in New Zealand\" where the gold names \"Auckland, New Zealand\" "
        "as one entity) counts as wrong."]
    if len(args.relation_model or []) > 1:
        lines += ["", "Each relation model (directed pairs F1):", "", "| model | seed | policy | F1 |",
                  "|---|---|---|---|", *per_model]
    body = "\n".join(lines)
    command = "python benchmarks/extract_webnlg.py" + (f" {args.path}" if args.path != str(DATA) else "") \
        + (f" --ner-model {args.ner_model}" if args.ner_model else "")
    if args.limit is not None:
        command += f" --limit {args.limit}"
    if args.relation_model:
        command += (f" --relation-model {' '.join(args.relation_model)} --relation-policy "
                    f"{' '.join(args.relation_policy)}")
        if args.relation_threshold != 0.5:
            command += f" --relation-threshold {args.relation_threshold}"
    write_section("extract_webnlg", "Extraction on WebNLG dev", body, command, print_only=args.no_write)


if __name__ == "__main__":
    main()
