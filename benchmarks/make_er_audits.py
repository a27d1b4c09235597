"""Gold audits of the Restaurants and Walmart-Amazon sets: cross-source record pairs that a stated, mechanical rule
finds to be the same thing although neither record is in any gold pair (the gold misses them, so a matcher that
links them is charged a false positive). As the affiliation strings' audit (benchmarks/data/
affiliations_gold_audit.tsv) does, an audit lists records to leave out of a second score ("outside the audit",
beside the score on the full gold); it never changes the gold itself.

The rules read the raw files only (no kgpipe code), so that the audit does not depend on any method it scores:
  Restaurants     the same phone number (all its digits, at least 10) and at least one word of the names in
                  common (lower case, letters and digits), neither record in any gold pair;
  Walmart-Amazon  the same non-empty model number (lower case, letters and digits only) and the same brand (the
                  brand of one, lower case letters and digits, a prefix of the other's, both non-empty), neither
                  record in any gold pair.
Each audit is written to benchmarks/data/<set>_gold_audit.tsv with a header naming the rule, what was checked by
eye, the date, and the sha256 of the files it was made from; `audited_records` reads it back and applies it only
to those very files (another version of the set is scored on its full gold alone).

Usage: python benchmarks/make_er_audits.py [--data DIR]
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _er import read_csv_any

from kgpipe.atomic import atomic_write_text
from kgpipe.hashing import sha256_bytes

HERE = Path(__file__).resolve().parent / "data"
_WORD = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class AuditPair:
    """One cross-source pair the rule finds (record ids as the benchmarks spell them: 'source:id')."""

    left: str
    right: str
    left_name: str
    right_name: str
    key: str


@dataclass(frozen=True)
class Audit:
    """How one set's audit is made: its files (the two sources and the gold), the rule in words, what a reader
    checked by eye, and the function that finds the pairs."""

    files: tuple[str, str, str]
    rule: str
    checked: str
    find: Callable[[Path], list[AuditPair]]


def _pipe(path: Path) -> list[dict[str, str]]:
    frame = read_csv_any(path, sep="|", dtype=str, keep_default_na=False)
    frame.columns = [c.rsplit("#", 1)[-1] for c in frame.columns]
    return frame.to_dict("records")


def _gold_ids(path: Path, sources: tuple[str, str]) -> set[str]:
    gold = read_csv_any(path, sep="|", dtype=str)
    return {f"{source}:{x}" for row in gold.itertuples(index=False, name=None)
            for source, x in zip(sources, row, strict=True)}


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def _key(text: str) -> str:
    return "".join(_WORD.findall(text.lower()))


def _cross_pairs(left: list[dict[str, str]], right: list[dict[str, str]], sources: tuple[str, str],
                 gold: set[str], key: Callable[[dict[str, str]], str],
                 agree: Callable[[dict[str, str], dict[str, str]], bool], name: str) -> list[AuditPair]:
    """Pairs (left row, right row) with the same non-empty key that `agree` accepts, neither record in the gold."""
    by_key: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in right:
        if f"{sources[1]}:{row['id']}" not in gold and key(row):
            by_key[key(row)].append(row)
    out = []
    for row in left:
        if f"{sources[0]}:{row['id']}" in gold or not key(row):
            continue
        for other in by_key.get(key(row), []):
            if agree(row, other):
                out.append(AuditPair(f"{sources[0]}:{row['id']}", f"{sources[1]}:{other['id']}", row[name].strip(),
                                     other[name].strip(), key(row)))
    return out


def restaurant_pairs(path: Path) -> list[AuditPair]:
    sources = ("rest1", "rest2")

    def phone(row: dict[str, str]) -> str:
        digits = re.sub(r"\D", "", row["phone_number"])
        return digits if len(digits) >= 10 else ""

    return _cross_pairs(_pipe(path / "rest1.csv"), _pipe(path / "rest2.csv"), sources,
                        _gold_ids(path / "gt.csv", sources), phone,
                        lambda a, b: bool(_words(a["name"]) & _words(b["name"])), "name")


def walmart_amazon_pairs(path: Path) -> list[AuditPair]:
    sources = ("walmart", "amazon")

    def same_brand(a: dict[str, str], b: dict[str, str]) -> bool:
        x, y = _key(a["brand"]), _key(b["brand"])
        return bool(x and y) and (x.startswith(y) or y.startswith(x))

    return _cross_pairs(_pipe(path / "walmart.csv"), _pipe(path / "amazon.csv"), sources,
                        _gold_ids(path / "gt.csv", sources), lambda row: _key(row["modelno"]), same_brand, "title")


AUDITS: dict[str, Audit] = {
    "restaurants": Audit(
        ("rest1.csv", "rest2.csv", "gt.csv"),
        "cross-source pairs with the same phone number (all its digits, at least 10) and at least one word of the "
        "names in common (lower case, letters and digits), neither record in any gold pair",
        "all pairs read: each is one restaurant (the same name, or one name inside the other: 'lulu' / 'lulu "
        "restaurant-bis-cafe', 'katsu' / 'restaurant katsu', 'art's delicatessen' / 'art's deli'), and the gold "
        "lists other restaurants of the same cities (rose pistola, masa's, fringale, patina, la folie are San "
        "Francisco and Los Angeles restaurants the gold leaves out)",
        restaurant_pairs),
    "walmart_amazon": Audit(
        ("walmart.csv", "amazon.csv", "gt.csv"),
        "cross-source pairs with the same non-empty model number (lower case, letters and digits only) and the "
        "same brand (one's brand, lower case letters and digits, a prefix of the other's: 'clover' / 'clover "
        "electronics'), neither record in any gold pair",
        "all pairs read: all but 3 are plainly one product (titles, brand and price agree); doubtful: walmart:324 "
        "(its title says 2 GB, the model number is the 4 GB kit), walmart:1843 / amazon:9691 (Imation DC6250 data "
        "cartridge against a QIC-150 one), walmart:2408 (Sima lens cleaner against Sima lens pen). Left out by "
        "the brand condition (16 pairs with the same model number): 8 different products sharing a bare number "
        "(Da-Lite 40320 / Cables To Go 40320) and 8 of one product under a reseller's or empty brand",
        walmart_amazon_pairs),
}


def audit_path(key: str) -> Path:
    return HERE / f"{key}_gold_audit.tsv"


def _digest(path: Path) -> str:
    return sha256_bytes(path.read_bytes())


def audit_text(key: str, data: Path, date: str) -> str:
    audit = AUDITS[key]
    pairs = audit.find(data)
    records = {p.left for p in pairs} | {p.right for p in pairs}
    lines = [f"# Gold audit of {data.name} (benchmarks/make_er_audits.py writes this file: rerun it to regenerate)",
             f"# rule: {audit.rule}",
             f"# checked by eye: {audit.checked}",
             f"# {len(pairs)} pairs, {len(records)} records; the benchmarks score also on the records outside them",
             f"# date: {date}",
             *(f"# file {name} sha256 {_digest(data / name)}" for name in audit.files),
             "# left\tright\tleft name\tright name\tshared key"]
    lines += [f"{p.left}\t{p.right}\t{p.left_name}\t{p.right_name}\t{p.key}" for p in pairs]
    return "\n".join(lines) + "\n"


def audited_records(key: str, data: Path, path: Path | None = None) -> set[str] | None:
    """The records the set's audit (at `path`, default audit_path(key)) lists, or None where there is no audit or
    it was made from other files (the sha256 in its header differ from `data`'s): an audit applies only to the
    files it was made from."""
    path = audit_path(key) if path is None else path
    if key not in AUDITS or not path.exists():
        return None
    text = path.read_text(encoding="utf-8").splitlines()
    digests = dict(re.findall(r"^# file (\S+) sha256 ([0-9a-f]{64})$", "\n".join(text), flags=re.M))
    if set(digests) != set(AUDITS[key].files):
        raise SystemExit(f"{path}: its header must name the sha256 of {AUDITS[key].files}; rerun "
                         "benchmarks/make_er_audits.py")
    if any(not (data / name).exists() or _digest(data / name) != digest for name, digest in digests.items()):
        print(f"{path.name}: made from other files than {data}; scoring on the full gold only", file=sys.stderr)
        return None
    return {part for line in text if line and not line.startswith("#") for part in line.split("\t")[:2]}


def main() -> None:
    from _er_sets import DATA, LOADERS

    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=DATA, help="the folder holding the er/ sets")
    args = parser.parse_args()
    date = datetime.now(UTC).strftime("%Y-%m-%d")
    for key in AUDITS:
        folder = args.data / LOADERS[key][1]
        text = audit_text(key, folder, date)
        atomic_write_text(audit_path(key), text)
        body = [line for line in text.splitlines() if not line.startswith("#")]
        print(f"{audit_path(key)}: {len(body)} pairs")


if __name__ == "__main__":
    main()
