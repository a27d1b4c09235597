"""What a fuse run changed against the outputs it replaced (StageType.delta; see kgpipe.delta for where and
why): entities added and removed (by id), merged (mentions that were in two or more earlier entities are now
in one), split (the mentions of one earlier entity are now in two or more), relabelled (the same id, another
label), mentions moved (resolved to another entity id), and triples added and removed (by head, relation,
tail).

Merges, splits and moves are read from mention_entities.parquet, over the mentions both runs have: a mention
of an added document is in no earlier entity and moves nothing. One mention moving from entity A to entity B
is both a merge (B gathers mentions of A and B) and a split (A's mentions are now in A and B): the moved
mentions show which it was. An entity whose id changed with its label (a minted id) is removed and added, its
mentions moved. Only the columns compared are read; the work is a few joins, linear in mentions, entities and
triples.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from kgpipe.delta import DeltaPart, StageDelta
from kgpipe.summary import Cell

if TYPE_CHECKING:
    import pandas as pd

NEEDS = ("entities", "mention_entities", "triples")
TRIPLE_KEY = ["head", "relation", "tail"]


def _read(path: Path, columns: list[str]) -> pd.DataFrame:
    import pyarrow.parquet as pq

    return pq.read_table(path, columns=columns).to_pandas()


def named(entity_id: str, labels: dict[str, str]) -> str:
    """An entity as 'label <id>' (just '<id>' when the run's entities have no such id)."""
    label = labels.get(entity_id)
    return f"{label} <{entity_id}>" if label is not None else f"<{entity_id}>"


def fuse_delta(old: dict[str, Path], new: dict[str, Path]) -> StageDelta:
    """Compare the outputs a fuse run replaces (`old`, by output name) with the ones it wrote (`new`)."""
    missing = StageDelta.missing(old, NEEDS)
    if missing is not None:
        return missing
    old_entities = _read(old["entities"], ["id", "label", "mention_count"])
    new_entities = _read(new["entities"], ["id", "label", "mention_count"])
    old_labels = dict(zip(old_entities["id"], old_entities["label"], strict=True))
    new_labels = dict(zip(new_entities["id"], new_entities["label"], strict=True))
    added, removed = _entity_parts(old_entities, new_entities)
    merged, split, moved = _moves(_read(old["mention_entities"], ["mention_id", "entity_id"]),
                           _read(new["mention_entities"], ["mention_id", "entity_id"]), old_labels, new_labels)
    triples_added, triples_removed = _triple_parts(_read(old["triples"], TRIPLE_KEY),
                                                   _read(new["triples"], TRIPLE_KEY), old_labels, new_labels)
    return StageDelta((added, removed, merged, split, _relabelled(old_entities, new_entities), moved,
                       triples_added, triples_removed))


def _entity_parts(old: pd.DataFrame, new: pd.DataFrame) -> tuple[DeltaPart, DeltaPart]:
    """Added and removed ids, the most mentioned first."""
    parts = []
    for kind, these, other in (("entities added", new, old), ("entities removed", old, new)):
        only = these[~these["id"].isin(other["id"])].sort_values(["mention_count", "id"], ascending=[False, True])
        rows = ((str(r.id), str(r.label), int(r.mention_count)) for r in only.itertuples())
        parts.append(DeltaPart.of(kind, len(only), ("entity", "label", "mentions"), rows))
    return parts[0], parts[1]


def _relabelled(old: pd.DataFrame, new: pd.DataFrame) -> DeltaPart:
    both = old[["id", "label"]].merge(new[["id", "label"]], on="id", suffixes=("_old", "_new"))
    changed = both[both["label_old"] != both["label_new"]].sort_values("id")
    rows = ((str(r.id), str(r.label_old), str(r.label_new)) for r in changed.itertuples())
    return DeltaPart.of("entities relabelled", len(changed), ("entity", "old label", "new label"), rows)


def _moves(old: pd.DataFrame, new: pd.DataFrame, old_labels: dict[str, str], new_labels: dict[str, str]
           ) -> tuple[DeltaPart, DeltaPart, DeltaPart]:
    """Merges (one new entity holds the mentions of several earlier ones; the ones that gathered most first),
    splits (the reverse), and the mentions whose entity is another, over the mentions both runs resolved."""
    both = old.merge(new, on="mention_id", suffixes=("_old", "_new"))
    pairs = both[["entity_id_old", "entity_id_new"]].drop_duplicates()
    merged, merges = _fan(pairs, "entity_id_new", "entity_id_old", new_labels, old_labels)
    split, splits = _fan(pairs, "entity_id_old", "entity_id_new", old_labels, new_labels)
    moved = both[both["entity_id_old"] != both["entity_id_new"]].sort_values("mention_id")
    moves = ((str(r.mention_id), named(r.entity_id_old, old_labels), named(r.entity_id_new, new_labels))
             for r in moved.itertuples())
    return (DeltaPart.of("entities merged", merged, ("entity", "label", "earlier entities"), merges),
            DeltaPart.of("entities split", split, ("earlier entity", "label", "now"), splits),
            DeltaPart.of("mentions moved", len(moved), ("mention", "was in", "now in"), moves))


def _fan(pairs: pd.DataFrame, one: str, many: str, one_labels: dict[str, str], many_labels: dict[str, str]
         ) -> tuple[int, Iterator[tuple[Cell, ...]]]:
    """How many entities of column `one` pair with two or more of column `many`, and rows naming them (the
    widest first)."""
    fan = pairs[one].value_counts()
    ranked = sorted(((str(entity), int(n)) for entity, n in fan[fan >= 2].items()), key=lambda x: (-x[1], x[0]))

    def rows() -> Iterator[tuple[Cell, ...]]:
        for entity, _ in ranked:
            others = sorted(pairs.loc[pairs[one] == entity, many])
            yield entity, one_labels.get(entity, ""), "; ".join(named(o, many_labels) for o in others)

    return len(ranked), rows()


def _triple_parts(old: pd.DataFrame, new: pd.DataFrame, old_labels: dict[str, str], new_labels: dict[str, str]
                  ) -> tuple[DeltaPart, DeltaPart]:
    keys = old.drop_duplicates().merge(new.drop_duplicates(), on=TRIPLE_KEY, how="outer", indicator=True)
    parts = []
    for kind, side, labels in (("triples added", "right_only", new_labels),
                               ("triples removed", "left_only", old_labels)):
        only = keys[keys["_merge"] == side].sort_values(TRIPLE_KEY)
        rows = ((named(r.head, labels), str(r.relation), named(r.tail, labels)) for r in only.itertuples())
        parts.append(DeltaPart.of(kind, len(only), ("head", "relation", "tail"), rows))
    return parts[0], parts[1]
