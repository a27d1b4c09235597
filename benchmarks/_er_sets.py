"""The four record-linkage development sets as one shape, for benchmarks that run every set (er_vs_splink):
records for kgpipe's resolve with the attribute rules each set is resolved with, a table of the same records for
other tools, and the gold pairs. DBLP-ACM and the affiliation strings are read by their own benchmarks' loaders;
any other two-source set in pyJedAI's layout by pipe_set, its columns' kinds given.

Walmart-Amazon: title as the name, modelno (a code), brand and price as attributes. Restaurants: name, phone
and street. Both are `|`-separated with `D1|D2` gold files (pyJedAI's layout).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from _er import read_csv_any

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "er"


@dataclass
class ErSet:
    """One development set. `frame`: one row per record (unique_id, source_dataset, name and attribute
    columns as strings, '' where missing); `gold`: matching record-id pairs (unordered, the transitive closure
    for deduplication); `sources`: the two sources of one-to-one linkage, None for deduplication; `keep`: the
    records a second score is restricted to (those outside the set's gold audit), or None."""

    name: str
    records: list
    attributes: dict
    sources: tuple[str, str] | None
    frame: pd.DataFrame
    gold: set[tuple[str, str]]
    keep: np.ndarray | None = None

    @property
    def kinds(self) -> dict[str, str]:
        """Each attribute column's kind (kgpipe's AttributeRule.kind): what other tools compare it as."""
        return {column: rule.kind for column, rule in self.attributes.items()}


def pair(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a < b else (b, a)


def _frame(records, columns: list[str]) -> pd.DataFrame:
    rows = [{"unique_id": r.id, "source_dataset": r.source, "name": r.name,
             **{c: _text(r.attributes.get(c)) for c in columns}} for r in records]
    return pd.DataFrame(rows, columns=["unique_id", "source_dataset", "name", *columns])


def _text(value: object) -> str:
    return "" if value is None or value != value else str(value).strip()


def dblp_acm(path: Path) -> ErSet:
    from er_dblp_acm import load, records

    from kgpipe.kg.similarity import AttributeRule

    dblp, acm, gold = load(path)
    recs = records(dblp, acm, True)
    return ErSet("DBLP-ACM", recs, {"authors": AttributeRule(weight=0.5, kind="tokens"),
                                    "year": AttributeRule(weight=0.25, kind="numeric")},
                 ("dblp", "acm"), _frame(recs, ["authors", "year"]),
                 {pair(f"dblp:{a}", f"acm:{b}") for a, b in gold})


def affiliations(path: Path) -> ErSet:
    from er_affiliations import audited, load

    from kgpipe.kg.resolve import Record

    ids, names, gold = load(path)
    recs = [Record(i, name, source="affiliations") for i, name in zip(ids, names, strict=True)]
    members: dict[int, list[str]] = {}
    for i, g in zip(ids, gold, strict=True):
        members.setdefault(g, []).append(i)
    pairs = {pair(a, b) for group in members.values() for k, a in enumerate(group) for b in group[k + 1:]}
    try:
        keep = ~audited(ids)
    except SystemExit:  # another affiliation-style file: the audit is for the Leipzig one only
        keep = None
    return ErSet("affiliation strings", recs, {}, None, _frame(recs, []), pairs, keep)


def _pipe_set(name: str, path: Path, files: tuple[str, str], sources: tuple[str, str], name_column: str,
              columns: dict[str, str], attributes: dict, clean: Callable[[str], str] = lambda c: c,
              audit: str | None = None) -> ErSet:
    """A `|`-separated two-source set; `audit`: the key of its gold audit (benchmarks/make_er_audits.py), whose
    records a second score leaves out where the audit was made from these very files."""
    from make_er_audits import audited_records

    from kgpipe.kg.resolve import Record

    recs = []
    for file, source in zip(files, sources, strict=True):
        frame = read_csv_any(path / file, sep="|", dtype=str, keep_default_na=False)
        frame.columns = [clean(c) for c in frame.columns]
        missing = sorted({"id", name_column, *columns.values()} - set(frame.columns))
        if missing:
            raise SystemExit(f"{path / file}: no column {', '.join(missing)} (it has {', '.join(frame.columns)}); "
                             "name the record name and attribute columns that the file has")
        for row in frame.to_dict("records"):
            attrs = {key: row[col] for key, col in columns.items() if row[col].strip()}
            recs.append(Record(f"{source}:{row['id']}", row[name_column], source=source, attributes=attrs))
    gold_frame = read_csv_any(path / "gt.csv", sep="|", dtype=str)
    gold = {pair(f"{sources[0]}:{a}", f"{sources[1]}:{b}") for a, b in gold_frame.itertuples(index=False, name=None)}
    listed = None if audit is None else audited_records(audit, path)
    keep = None if listed is None else np.array([r.id not in listed for r in recs], dtype=bool)
    return ErSet(name, recs, attributes, sources, _frame(recs, list(columns)), gold, keep)


def walmart_amazon(path: Path) -> ErSet:
    from kgpipe.kg.similarity import AttributeRule

    return _pipe_set("Walmart-Amazon", path, ("walmart.csv", "amazon.csv"), ("walmart", "amazon"), "title",
                     {"modelno": "modelno", "brand": "brand", "price": "price"},
                     {"modelno": AttributeRule(weight=0.5, kind="code"),
                      "brand": AttributeRule(weight=0.25, kind="exact"),
                      "price": AttributeRule(weight=0.25, kind="price")}, audit="walmart_amazon")


def restaurants(path: Path) -> ErSet:
    from kgpipe.kg.similarity import AttributeRule

    return _pipe_set("Restaurants", path, ("rest1.csv", "rest2.csv"), ("rest1", "rest2"), "name",
                     {"phone": "phone_number", "street": "street"},
                     {"phone": AttributeRule(weight=0.5, kind="phone"),
                      "street": AttributeRule(weight=0.25, kind="address")},
                     clean=lambda c: c.rsplit("#", 1)[-1], audit="restaurants")


KINDS = ("tokens", "address", "exact", "code", "phone", "numeric", "price")


def pipe_set(path: Path, name_column: str, kinds: dict[str, str], files: tuple[str, str] | None = None) -> ErSet:
    """Any two-source set in pyJedAI's layout (the layout of Walmart-Amazon and Restaurants): two `|`-separated
    files with an `id` column (headers may be IRIs: the part after the last '#' counts), and `gt.csv` with the
    gold pairs (first file's id | second file's id). `kinds`: attribute column -> kgpipe attribute kind (code and
    phone weigh 0.5, the others 0.25, as in the development sets); `files`: default the two csv files other than
    gt.csv, in name order. No gold audit applies."""
    from kgpipe.kg.similarity import AttributeRule

    unknown = sorted(set(kinds.values()) - set(KINDS))
    if unknown:
        raise SystemExit(f"unknown attribute kinds {unknown}: use {', '.join(KINDS)}")
    if files is None:
        found = sorted(f.name for f in path.glob("*.csv") if f.name != "gt.csv")
        if len(found) != 2:
            raise SystemExit(f"{path}: expected two csv files besides gt.csv, found {found}; name them with --files")
        files = (found[0], found[1])
    sources = (Path(files[0]).stem, Path(files[1]).stem)
    rules = {column: AttributeRule(weight=0.5 if kind in ("code", "phone") else 0.25, kind=kind)  # type: ignore[arg-type]
             for column, kind in kinds.items()}
    return _pipe_set(path.name, path, files, sources, name_column, {c: c for c in kinds}, rules,
                     clean=lambda c: c.rsplit("#", 1)[-1])


LOADERS: dict[str, tuple[Callable[[Path], ErSet], str]] = {
    "dblp_acm": (dblp_acm, "dblp_acm"),
    "walmart_amazon": (walmart_amazon, "walmart_amazon"),
    "restaurants": (restaurants, "restaurants"),
    "affiliations": (affiliations, "affiliationstrings"),
}
