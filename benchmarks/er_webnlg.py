"""Claim: kgpipe's entity resolution groups entity mentions in text by the entity they denote, measured on
WebNLG, where every mention (<references><reference entity=...>) carries its gold DBpedia entity.

Records: each mention of type name (descriptions such as 'the country' or 'their', pronouns and
demonstratives are a job for coreference, not name matching) in every verbalisation (<lex>) of the split;
context: the other mentions of the same text, as the fuse stage uses the other mentions of a document. Gold
cluster: the DBpedia entity. Reports cluster purity, B-cubed and pairwise P/R/F1 for kgpipe resolve (defaults)
and for two references: exact normalised-name match (what a string-equality merge gives) and rapidfuzz
token_set_ratio >= 90 with connected components. `--learn em`: kgpipe with match weights learned on the
mentions (Fellegi-Sunter by EM, as `resolution.learn: em` in the fuse stage), written to a section of its own.

Usage: python benchmarks/er_webnlg.py [PATH (a WebNLG split folder, default dev)] [--learn fixed|em] [--no-write]
"""

from __future__ import annotations

import argparse
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _er import table
from _report import write_section

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "webnlg" / "dev"
KINDS = ("name",)  # descriptions ('the country', 'their') need coreference, not name matching


def load(path: Path) -> tuple[list, list[str]]:
    """Records with context, and the gold entity of each."""
    from kgpipe.kg.normalize import normalize_name
    from kgpipe.kg.resolve import Record

    records, gold = [], []
    for file in sorted(path.rglob("*.xml")):
        root = ET.parse(file).getroot()
        for entry in root.iter("entry"):
            for lex in entry.iter("lex"):
                refs = [(r.get("entity"), (r.text or "").strip(), r.get("type")) for r in lex.iter("reference")]
                refs = [(e, t, k) for e, t, k in refs if k in KINDS and t and e]
                keys = [normalize_name(t) for _, t, _ in refs]
                for i, (entity, text, _) in enumerate(refs):
                    context = frozenset(k for j, k in enumerate(keys) if j != i and k and k != keys[i])
                    rid = f"{file.parent.name}/{file.stem}/{entry.get('eid')}/{lex.get('lid')}/{i}"
                    records.append(Record(rid, text, source=file.stem, context=context))
                    gold.append(entity)
    return records, gold


def fuzzy_components(records, threshold: int = 90) -> np.ndarray:
    """rapidfuzz token_set_ratio over all pairs of distinct names, connected components."""
    from rapidfuzz import fuzz, process, utils

    from kgpipe.kg.cluster import connected_components

    names = sorted({r.name for r in records})
    index = {n: i for i, n in enumerate(names)}
    scores = process.cdist(names, names, scorer=fuzz.token_set_ratio, processor=utils.default_process,
                           dtype=np.uint8, score_cutoff=threshold, workers=1)
    left, right = np.nonzero(np.triu(scores >= threshold, 1))
    labels = connected_components(len(names), left, right)
    return np.array([labels[index[r.name]] for r in records])


def main() -> None:
    from kgpipe.kg.evaluate import bcubed, pairwise_prf, purity
    from kgpipe.kg.normalize import normalize_name
    from kgpipe.kg.resolve import resolve
    from kgpipe.kg.similarity import ResolutionConfig

    parser = argparse.ArgumentParser()
    parser.add_argument("path", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("--learn", choices=["fixed", "em"], default="fixed",
                        help="fixed: the default weights; em: weights learned from the mentions")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    records, gold = load(args.path)
    config = ResolutionConfig(learn=args.learn)
    t0 = time.perf_counter()
    result = resolve(records, config)
    seconds = time.perf_counter() - t0
    rows = []
    for label, labels, secs in [
        (f"kgpipe resolve ({'defaults' if args.learn == 'fixed' else 'learn em'}, context = other mentions of "
         "the text)", result.labels, round(seconds, 1)),
        ("exact normalised name", [normalize_name(r.name) for r in records], ""),
        ("rapidfuzz token_set_ratio >= 90, connected components", fuzzy_components(records), ""),
    ]:
        pw, b3 = pairwise_prf(labels, gold), bcubed(labels, gold)
        rows.append([label, purity(labels, gold), b3["precision"], b3["recall"], b3["f1"], pw["f1"], secs])
    body = (f"{len(records)} mentions ({', '.join(KINDS)}) of {len(set(gold))} entities in "
            f"{args.path.name}. Other engineers share the 2 cores; times are indicative.\n\n"
            + table(["method", "purity", "B-cubed P", "B-cubed R", "B-cubed F1", "pairwise F1", "seconds"], rows))
    if result.learned is not None:
        body += (f"\n\nLearned: prior {result.learned.prior:.4g}, {result.learned.iterations} EM iterations "
                 f"({'converged' if result.learned.converged else 'not converged'}) on {result.learned.pairs} "
                 f"candidate pairs.")
    suffix = "" if args.learn == "fixed" else "_em"
    write_section(f"er_webnlg{suffix}", "Entity resolution: WebNLG mentions" + (", learned weights" if suffix else ""),
                  body, f"python benchmarks/er_webnlg.py {args.path}" + (" --learn em" if suffix else ""),
                  print_only=args.no_write)


if __name__ == "__main__":
    main()
