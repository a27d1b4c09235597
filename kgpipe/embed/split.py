"""A split that stays put when the graph grows: each triple's split follows from a hash of the triple and the
seed alone, so adding triples never moves an existing triple from training into validation or testing.

PyKEEN's splitter draws a random permutation of all triples, so one added triple reshuffles every split.
Here sha256("seed\\thead\\trelation\\ttail") maps each triple to a number in [0, 1), compared with the split
fractions. As PyKEEN's splitter, the result keeps every entity and relation of validation and testing in
training: a validation or testing triple with an entity or relation that would not otherwise occur in
training moves to training, checked in the order of the triples' hash values (an order that adding triples
keeps, so a triple that stayed in testing stays there when the graph grows).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

Triple = tuple[str, str, str]
_SCALE = float(1 << 64)


def hash_position(triple: Triple, seed: int) -> float:
    """The triple's place in [0, 1): the first 8 bytes of sha256('seed\\thead\\trelation\\ttail')."""
    text = "\t".join((str(seed), *triple))
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big") / _SCALE


@dataclass(frozen=True)
class HashSplit:
    """Training and the carved splits (each in the input's order), and what the coverage rule changed."""

    training: list[Triple]
    carved: dict[str, list[Triple]]     # split name -> its triples
    moved_to_training: int              # carved triples moved to training to keep their entities/relations there
    kept_in_training: int               # carved triples kept in training because `keep` names them


def hash_split(triples: Sequence[Triple], fractions: Sequence[tuple[str, float]], *, seed: int,
               keep: Collection[Triple] = ()) -> HashSplit:
    """Split unique triples: fractions [(split, fraction), ...] take consecutive ranges of [0, 1) from 0, the
    rest is training. Triples in `keep` (those an earlier model trained on) stay in training."""
    bounds: list[tuple[str, float]] = []
    upper = 0.0
    for name, fraction in fractions:
        upper += fraction
        bounds.append((name, upper))
    position = {triple: hash_position(triple, seed) for triple in triples}
    assigned: dict[Triple, str] = {}
    kept = 0
    for triple, place in position.items():
        name = next((name for name, bound in bounds if place < bound), "training")
        if name != "training" and triple in keep:
            name, kept = "training", kept + 1
        assigned[triple] = name
    carved_triples = (triple for triple, name in assigned.items() if name != "training")
    moved = _cover(assigned, sorted(carved_triples, key=lambda triple: (position[triple], triple)))
    carved: dict[str, list[Triple]] = {name: [] for name, _ in fractions}
    training: list[Triple] = []
    for triple in triples:
        name = assigned[triple]
        (training if name == "training" else carved[name]).append(triple)
    return HashSplit(training=training, carved=carved, moved_to_training=moved, kept_in_training=kept)


def _cover(assigned: dict[Triple, str], candidates: Iterable[Triple]) -> int:
    """Move candidates whose head, tail or relation training lacks into training, in the given order; the
    number moved."""
    entities = {e for (h, _, t), s in assigned.items() if s == "training" for e in (h, t)}
    relations = {r for (_, r, _), s in assigned.items() if s == "training"}
    moved = 0
    for triple in candidates:
        head, relation, tail = triple
        if head in entities and tail in entities and relation in relations:
            continue
        assigned[triple] = "training"
        entities.update((head, tail))
        relations.add(relation)
        moved += 1
    return moved
