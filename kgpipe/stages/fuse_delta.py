"""What a fuse run changed against the outputs it replaced (StageType.delta; see kgpipe.delta for where and
why): entities added and removed (by id), merged (mentions that were in two or more earlier entities are now
in one), split (the mentions of one earlier entity are now in two or more), relabelled (the same id, another
label), mentions moved (resolved to another entity id), and triples added and removed (by head, relation,
tail).

Merges, splits and moves are read from mention_entities.parquet, over the mentions both runs have: a mention
of an added document is in no earlier entity and moves nothing. One mention moving from entity A to entity B
is both a merge (B gathers mentions of A and B) and a split (A's mentions are now in A and B): the moved
mentions show which it was. An entity whose id changed with its label (a minted id) is removed and added, its
mentions moved. Only the columns compared are read; the comparison is pyarrow's hashed joins and set lookups
(synthetic tables of a million mentions and 500,000 triples: about 3 s on a 2-core machine), and labels are
looked up for the examples only.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from kgpipe.delta import EXAMPLES, DeltaPart, StageDelta

if TYPE_CHECKING:
    import pyarrow as pa

NEEDS = ("entities", "mention_entities", "triples")
TRIPLE_KEY = ["head", "relation", "tail"]


def _read(path: Path, columns: list[str]) -> pa.Table:
    import pyarrow.parquet as pq

    return pq.read_table(path, columns=columns)


def _distinct(table: pa.Table) -> pa.Table:
    return table.group_by(table.column_names).aggregate([])


def _not_in(table: pa.Table, column: str, values: pa.ChunkedArray) -> pa.Table:
    import pyarrow.compute as pc

    return table.filter(pc.invert(pc.is_in(table[column], value_set=values.combine_chunks())))


class Labels:
    """An entities table's labels, looked up for the few ids an example names."""

    def __init__(self, entities: pa.Table) -> None:
        self.entities = entities.select(["id", "label"])

    def of(self, ids: Iterable[str]) -> dict[str, str]:
        import pyarrow as pa
        import pyarrow.compute as pc

        found = self.entities.filter(pc.is_in(self.entities["id"], value_set=pa.array(sorted(set(ids)), pa.string())))
        return dict(zip(found["id"].to_pylist(), found["label"].to_pylist(), strict=True))

    def named(self, ids: Iterable[str]) -> dict[str, str]:
        """Each id as 'label <id>' (just '<id>' when the table has no such id)."""
        ids = list(ids)
        labels = self.of(ids)
        return {i: f"{labels[i]} <{i}>" if i in labels else f"<{i}>" for i in ids}


def fuse_delta(old: dict[str, Path], new: dict[str, Path]) -> StageDelta:
    """Compare the outputs a fuse run replaces (`old`, by output name) with the ones it wrote (`new`)."""
    missing = StageDelta.missing(old, NEEDS)
    if missing is not None:
        return missing
    old_entities = _read(old["entities"], ["id", "label", "mention_count"])
    new_entities = _read(new["entities"], ["id", "label", "mention_count"])
    old_labels, new_labels = Labels(old_entities), Labels(new_entities)
    merged, split, moved = _moves(_read(old["mention_entities"], ["mention_id", "entity_id"]),
                                  _read(new["mention_entities"], ["mention_id", "entity_id"]), old_labels, new_labels)
    triples_added, triples_removed = _triple_parts(_read(old["triples"], TRIPLE_KEY),
                                                   _read(new["triples"], TRIPLE_KEY), old_labels, new_labels)
    return StageDelta((_only(new_entities, old_entities, "entities added"),
                       _only(old_entities, new_entities, "entities removed"), merged, split,
                       _relabelled(old_entities, new_entities), moved, triples_added, triples_removed))


def _only(these: pa.Table, other: pa.Table, kind: str) -> DeltaPart:
    """The entities of `these` whose id `other` lacks, the most mentioned first."""
    only = _not_in(these, "id", other["id"])
    first = only.sort_by([("mention_count", "descending"), ("id", "ascending")]).slice(0, EXAMPLES)
    rows = [(r["id"], r["label"], r["mention_count"]) for r in first.to_pylist()]
    return DeltaPart.of(kind, only.num_rows, ("entity", "label", "mentions"), rows)


def _relabelled(old: pa.Table, new: pa.Table) -> DeltaPart:
    import pyarrow.compute as pc

    both = old.select(["id", "label"]).join(new.select(["id", "label"]).rename_columns(["id", "new_label"]), "id",
                                            join_type="inner")
    changed = both.filter(pc.not_equal(both["label"], both["new_label"]))
    first = changed.sort_by("id").slice(0, EXAMPLES).to_pylist()
    return DeltaPart.of("entities relabelled", changed.num_rows, ("entity", "old label", "new label"),
                        [(r["id"], r["label"], r["new_label"]) for r in first])


def _moves(old: pa.Table, new: pa.Table, old_labels: Labels, new_labels: Labels
           ) -> tuple[DeltaPart, DeltaPart, DeltaPart]:
    """Merges (one new entity holds the mentions of several earlier ones; the ones that gathered most first),
    splits (the reverse), and the mentions whose entity is another, over the mentions both runs resolved."""
    import pyarrow.compute as pc

    both = old.rename_columns(["mention_id", "was"]).join(new.rename_columns(["mention_id", "now"]), "mention_id",
                                                          join_type="inner")
    pairs = _distinct(both.select(["was", "now"]))
    merged = _fan(pairs, "now", "was", new_labels, old_labels, "entities merged",
                  ("entity", "label", "earlier entities"))
    split = _fan(pairs, "was", "now", old_labels, new_labels, "entities split", ("earlier entity", "label", "now"))
    moved = both.filter(pc.not_equal(both["was"], both["now"]))
    first = moved.sort_by("mention_id").slice(0, EXAMPLES).to_pylist()
    was = old_labels.named(r["was"] for r in first)
    now = new_labels.named(r["now"] for r in first)
    return merged, split, DeltaPart.of("mentions moved", moved.num_rows, ("mention", "was in", "now in"),
                                       [(r["mention_id"], was[r["was"]], now[r["now"]]) for r in first])


def _fan(pairs: pa.Table, one: str, many: str, one_labels: Labels, many_labels: Labels, kind: str,
         columns: tuple[str, ...]) -> DeltaPart:
    """The entities of column `one` that pair with two or more of column `many` (the widest first), each with
    its label and those others (by id)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    fan = pairs.group_by(one).aggregate([(many, "count")])
    wide = fan.filter(pc.greater_equal(fan[f"{many}_count"], 2))
    first = wide.sort_by([(f"{many}_count", "descending"), (one, "ascending")]).slice(0, EXAMPLES)[one].to_pylist()
    others: dict[str, list[str]] = {entity: [] for entity in first}
    for row in pairs.filter(pc.is_in(pairs[one], value_set=pa.array(first, pa.string()))).to_pylist():
        others[row[one]].append(row[many])
    names = many_labels.named(o for found in others.values() for o in found)
    labels = one_labels.of(first)
    rows = [(entity, labels.get(entity, ""), "; ".join(names[o] for o in sorted(others[entity]))) for entity in first]
    return DeltaPart.of(kind, wide.num_rows, columns, rows)


def _triple_parts(old: pa.Table, new: pa.Table, old_labels: Labels, new_labels: Labels
                  ) -> tuple[DeltaPart, DeltaPart]:
    old, new = _distinct(old), _distinct(new)
    parts = []
    for kind, these, other, labels in (("triples added", new, old, new_labels),
                                       ("triples removed", old, new, old_labels)):
        only = these.join(other, TRIPLE_KEY, join_type="left anti")
        first = only.sort_by([(key, "ascending") for key in TRIPLE_KEY]).slice(0, EXAMPLES).to_pylist()
        names = labels.named(i for r in first for i in (r["head"], r["tail"]))
        parts.append(DeltaPart.of(kind, only.num_rows, ("head", "relation", "tail"),
                                  [(names[r["head"]], r["relation"], names[r["tail"]]) for r in first]))
    return parts[0], parts[1]
