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

Usage: python benchmarks/extract_webnlg.py [SPLIT_FOLDER] [--ner-model FOLDER] [--limit N] [--no-write]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("path", nargs="?", default=str(DATA))
    parser.add_argument("--ner-model", default=None, help="a model folder from `kgpipe ner train`")
    parser.add_argument("--patterns", default=str(REPO / "pipelines" / "patterns"))
    parser.add_argument("--limit", type=int, default=None, help="only the first N texts")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    from kgpipe.nlp.extractor import build_extractor
    from kgpipe.nlp.models import load_model
    from kgpipe.nlp.patterns import load_patterns

    records = read_split(Path(args.path))[:args.limit]
    nlp = load_model(args.ner_model or "auto")
    extractor, _facts = build_extractor(nlp, patterns=load_patterns([Path(args.patterns)]))
    t0 = time.perf_counter()
    results = list(extractor.extract((str(i), r["text"]) for i, r in enumerate(records)))
    seconds = time.perf_counter() - t0

    m_tp = m_pred = m_gold = 0
    pair_pred = pair_right = pair_right_any = 0
    gold_pairs = gold_found = gold_found_any = 0
    by_category: dict[str, Counter] = defaultdict(Counter)
    for record, result in zip(records, results, strict=True):
        predicted = Counter(norm(m["text"]) for m in result.mentions)
        gold = Counter(record["name_list"])
        tp = sum((predicted & gold).values())
        m_tp, m_pred, m_gold = m_tp + tp, m_pred + sum(predicted.values()), m_gold + sum(gold.values())
        category = record["category"]
        by_category[category].update(tp=tp, pred=sum(predicted.values()), gold=sum(gold.values()))

        names = record["names"]
        eligible = [(names[s], names[o]) for s, _, o in record["triples"] if s in names and o in names]
        texts = {m["mention_id"]: norm(m["text"]) for m in result.mentions}
        pairs = {(texts[r["subject_id"]], texts[r["object_id"]]) for r in result.relations}
        for a, b in pairs:
            pair_pred += 1
            pair_right += any(a in s and b in o for s, o in eligible)
            pair_right_any += any((a in s and b in o) or (a in o and b in s) for s, o in eligible)
        for s, o in eligible:
            gold_pairs += 1
            gold_found += any(a in s and b in o for a, b in pairs)
            gold_found_any += any((a in s and b in o) or (a in o and b in s) for a, b in pairs)

    mp, mr, mf = prf(m_tp, m_pred, m_gold)
    lines = [f"Data: `{args.path.rstrip('/').rsplit('/', 2)[-1]}` split, {len(records)} texts; model "
             f"`{nlp.meta.get('name')}`; {len(extractor.library)} patterns; no gazetteer. "
             f"Extraction took {seconds:.1f}s ({len(records) / seconds:.0f} texts/s, shared 2-core machine).", "",
             "| measure | predicted | gold | P | R | F1 |", "|---|---|---|---|---|---|",
             f"| mentions vs name references | {m_pred} | {m_gold} | {mp:.3f} | {mr:.3f} | **{mf:.3f}** |"]
    for name, right, found in (("directed", pair_right, gold_found), ("undirected", pair_right_any, gold_found_any)):
        p, r = (right / pair_pred if pair_pred else 0.0), (found / gold_pairs if gold_pairs else 0.0)
        f = 2 * p * r / (p + r) if p + r else 0.0
        lines.append(f"| (subject, object) pairs, {name} | {pair_pred} | {gold_pairs} | {p:.3f} | {r:.3f} "
                     f"| **{f:.3f}** |")
    lines += ["", "Mentions per category (F1): " + ", ".join(
        f"{c} {prf(v['tp'], v['pred'], v['gold'])[2]:.2f}" for c, v in sorted(by_category.items())) + ".", "",
        f"Gold pairs are the {gold_pairs} triples whose subject and object both have a name reference in the "
        "text (literals such as dates and numbers often do not). Recall of pairs is bounded by the patterns' "
        "relations: most WebNLG properties (runwayLength, leaderName, ingredient, ...) have no pattern. "
        "Precision of pairs is a lower bound: WebNLG lists only the triples its text was written from, so a "
        "true extra fact (\"Auckland located_in New Zealand\" where the gold names \"Auckland, New Zealand\" "
        "as one entity) counts as wrong."]
    body = "\n".join(lines)
    command = "python benchmarks/extract_webnlg.py" + (f" --ner-model {args.ner_model}" if args.ner_model else "")
    write_section("extract_webnlg", "Extraction on WebNLG dev", body, command, print_only=args.no_write)


if __name__ == "__main__":
    main()
