"""The graph an embedding is trained on: triples from a table, a TSV file, a folder of split files or a
PyKEEN built-in dataset, one TriplesFactory per split, and the labels every id maps back to.

Splits the user did not give are carved from the training triples, keeping every entity and relation in
training: by PyKEEN's seeded random splitter (split: pykeen), or by a hash of each triple (split: hash,
kgpipe.embed.split), which keeps a triple's split when triples are added.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from kgpipe.errors import InputError

log = logging.getLogger(__name__)

Triple = tuple[str, str, str]
TRIPLE_COLUMNS = ("head", "relation", "tail")
TABLE_SUFFIXES = (".parquet", ".pq")
SplitMethod = Literal["pykeen", "hash"]
SPLIT_FILE_STEMS = {"training": ("train", "training"), "validation": ("valid", "validation", "dev"),
                    "testing": ("test", "testing")}


@dataclass(frozen=True)
class GraphData:
    """Training, validation (optional) and testing TriplesFactory objects sharing one id map, with labels."""

    training: Any
    validation: Any | None
    testing: Any
    entity_labels: Mapping[str, str]      # entity id -> label
    relation_labels: Mapping[str, str]    # relation id (IRI) -> label
    origin: Mapping[str, str]             # split name -> where its triples came from
    warnings: tuple[str, ...] = ()
    dropped: Mapping[str, int] = field(default_factory=dict)  # evaluation triples with unknown ids
    known: Any | None = None              # further true triples, only filtered from the test ranking
    hash_split: Mapping[str, int] | None = None  # split: hash carved splits: what the coverage rule moved

    @property
    def entity_ids(self) -> list[str]:
        """Entity ids in PyKEEN id order: row i of every entity matrix is entity_ids[i]."""
        mapping = self.training.entity_to_id
        return sorted(mapping, key=mapping.__getitem__)

    @property
    def relation_ids(self) -> list[str]:
        mapping = self.training.relation_to_id
        return sorted(mapping, key=mapping.__getitem__)

    def stats(self) -> dict[str, Any]:
        return {
            "entities": self.training.num_entities,
            "relations": len(self.training.relation_to_id),
            "training_triples": self.training.num_triples,
            "validation_triples": 0 if self.validation is None else self.validation.num_triples,
            "testing_triples": self.testing.num_triples,
            "known_triples_filtered": 0 if self.known is None else self.known.num_triples,
            "splits": dict(self.origin),
            "dropped_evaluation_triples": dict(self.dropped),
            **({} if self.hash_split is None else {"hash_split": dict(self.hash_split)}),
        }


def relation_label(relation: str) -> str:
    """A readable name for a relation IRI: its local name with underscores as spaces (as for seed entities)."""
    from kgpipe.kg.seed import local_name_label

    return local_name_label(relation)


# --- reading -----------------------------------------------------------------------------------------


def read_triples(path: Path, shown: str) -> list[Triple]:
    """Triples from a parquet table with head/relation/tail columns, or a tab-separated text file."""
    if path.suffix.lower() in TABLE_SUFFIXES:
        return _read_triples_table(path, shown)
    return _read_triples_tsv(path, shown)


def _read_triples_table(path: Path, shown: str) -> list[Triple]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several unrelated types for unreadable files
        raise InputError(f"not a readable parquet file ({exc})", file=shown) from None
    missing = [c for c in TRIPLE_COLUMNS if c not in table.column_names]
    if missing:
        raise InputError(f"a triples table needs columns head, relation, tail; missing {', '.join(missing)}",
                         file=shown, hint="give fuse's triples.parquet, ingest's seed_triples.parquet or a TSV file")
    columns = [table.column(name).to_pylist() for name in TRIPLE_COLUMNS]
    triples = []
    for row, values in enumerate(zip(*columns, strict=True), start=1):
        if any(v is None or not str(v).strip() for v in values):
            raise InputError("empty head, relation or tail", file=shown, row=row,
                             hint="every triple needs all three ids")
        triples.append(tuple(str(v).strip() for v in values))
    return triples  # type: ignore[return-value]


def _read_triples_tsv(path: Path, shown: str) -> list[Triple]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", file=shown) from None
    except OSError as exc:
        raise InputError(f"cannot read ({exc.strerror})", file=shown) from None
    triples = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = [f.strip() for f in line.split("\t")]
        if len(fields) != 3 or not all(fields):
            raise InputError(f"expected head<TAB>relation<TAB>tail, got {len(fields)} field(s)",
                             file=shown, line=number, hint="one triple per line, three tab-separated ids")
        triples.append((fields[0], fields[1], fields[2]))
    return triples


def read_entity_labels(path: Path, shown: str) -> dict[str, str]:
    """id -> label from an entities table (fuse's entities.parquet: id, label; or seed_entities: iri, label)."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # see _read_triples_table
        raise InputError(f"not a readable parquet file ({exc})", file=shown) from None
    id_column = next((c for c in ("id", "iri") if c in table.column_names), None)
    if id_column is None or "label" not in table.column_names:
        raise InputError("an entities table needs columns id (or iri) and label", file=shown,
                         hint="give fuse's entities.parquet")
    labels: dict[str, str] = {}
    for entity_id, label in zip(table.column(id_column).to_pylist(), table.column("label").to_pylist(), strict=True):
        if entity_id is not None:
            labels[str(entity_id)] = str(label) if label else str(entity_id)
    return labels


def split_files(folder: Path) -> dict[str, Path]:
    """train/valid/test files in a folder (train.txt, valid.tsv, test.parquet, ...) by split name."""
    found: dict[str, Path] = {}
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        for split, stems in SPLIT_FILE_STEMS.items():
            if path.stem.lower() in stems and split not in found:
                found[split] = path
    return found


# --- building the factories --------------------------------------------------------------------------


def load_graph(
    *,
    triples: Path | None,
    entities: Path | None = None,
    validation: Path | None = None,
    testing: Path | None = None,
    known: Path | None = None,
    dataset: str | None = None,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 42,
    inverse_triples: bool = False,
    split: SplitMethod = "pykeen",
    keep_in_training: Collection[Triple] = (),
    shown: Callable[[Path], str] = str,
) -> GraphData:
    """Read the graph, build the split factories and check the graph is big enough to train on.

    known: true triples that are neither trained on nor evaluated (e.g. the test split while the testing split
    is valid), filtered from the test ranking as the filtered protocol filters every known triple.
    split: how missing splits are carved (see build_graph); keep_in_training: with split hash, triples that
    stay in training (those a warm start's previous model trained on)."""
    if dataset is not None:
        if known is not None:
            raise InputError("deps.known goes with deps.triples, not params.dataset",
                             hint="a PyKEEN dataset is evaluated on its own splits")
        if triples is not None:
            raise InputError("give either deps.triples or params.dataset, not both",
                             hint="params.dataset names a PyKEEN dataset; deps.triples a file or folder")
        return _dataset_graph(dataset, inverse_triples=inverse_triples, entities=entities,
                              validation_fraction=validation_fraction, seed=seed, split=split,
                              keep_in_training=keep_in_training, shown=shown)
    if triples is None:
        raise InputError("no triples: give deps.triples (a table, TSV file or folder of split files) "
                         "or params.dataset (a PyKEEN dataset name)")
    given: dict[str, Path] = {}
    if triples.is_dir():
        given = split_files(triples)
        if "training" not in given:
            raise InputError("a triples folder needs a train file (train.txt, train.tsv or train.parquet)",
                             file=shown(triples))
    else:
        given["training"] = triples
    for name, path in (("validation", validation), ("testing", testing), ("known", known)):
        if path is not None:
            given[name] = path
    raw = {split: read_triples(path, shown(path)) for split, path in given.items()}
    labels = read_entity_labels(entities, shown(entities)) if entities is not None else {}
    return build_graph(raw, origin={s: shown(p) for s, p in given.items()}, entity_labels=labels,
                       validation_fraction=validation_fraction, test_fraction=test_fraction, seed=seed,
                       inverse_triples=inverse_triples, split=split, keep_in_training=keep_in_training)


def build_graph(raw: Mapping[str, Sequence[Triple]], *, origin: Mapping[str, str],
                entity_labels: Mapping[str, str] | None = None, validation_fraction: float = 0.1,
                test_fraction: float = 0.1, seed: int = 42, inverse_triples: bool = False,
                split: SplitMethod = "pykeen", keep_in_training: Collection[Triple] = ()) -> GraphData:
    """Factories for labelled triples per split; missing validation/testing splits are carved from training,
    by PyKEEN's seeded random splitter (split pykeen) or by each triple's hash (split hash: a triple keeps its
    split when triples are added; keep_in_training: triples that stay in training whatever their hash)."""
    import numpy as np
    from pykeen.triples import TriplesFactory

    warnings: list[str] = []
    training = _unique(raw["training"])
    if len(training) < len(raw["training"]):
        warnings.append(f"{len(raw['training']) - len(training)} duplicate training triple(s) kept once")
    where = origin.get("training")
    if not training:
        raise InputError("the graph has no triples", file=where,
                         hint="check the input (did the upstream stage produce any triples?)")
    carve = [(split, fraction) for split, fraction in (("validation", validation_fraction),
                                                       ("testing", test_fraction))
             if split not in raw and fraction > 0]
    _check_split_sizes(len(training), carve, where)
    warnings += _single_triple_relations([t for split, part in raw.items() if split != "known" for t in part])

    hash_moves = None
    if carve and split == "hash":
        training, raw, hash_moves = _carve_by_hash(training, raw, carve, seed, keep_in_training, where)
        origin = {**origin, **{name: f"{fraction:g} of training by triple hash (seed {seed})"
                               for name, fraction in carve}}
        carve = []
    factory = TriplesFactory.from_labeled_triples(np.asarray(training, dtype=str),
                                                  create_inverse_triples=inverse_triples)
    parts: dict[str, Any] = {}
    if carve:
        ratios = [1.0 - sum(f for _, f in carve), *(f for _, f in carve)]
        try:
            pieces = factory.split(ratios, random_state=seed)
        except ValueError as exc:  # PyKEEN cannot keep every entity and relation in training
            raise InputError(f"the graph is too small to split ({len(training)} triples): {exc}", file=where,
                             hint="give more triples, lower validation_fraction/test_fraction, "
                                  "or give validation/testing files") from None
        factory = pieces[0]
        parts = {split: piece for (split, _), piece in zip(carve, pieces[1:], strict=True)}
        origin = {**origin, **{split: f"{fraction:g} of training (seed {seed})" for split, fraction in carve}}
    dropped: dict[str, int] = {}
    for name in ("validation", "testing", "known"):
        if name in raw:
            parts[name], dropped[name] = _evaluation_factory(raw[name], factory)
            if dropped[name]:
                warnings.append(f"{dropped[name]} {name} triple(s) dropped: their entity or relation "
                                "does not occur in training")
            if parts[name].num_triples == 0:
                raise InputError(f"no {name} triple shares its entities and relations with training",
                                 file=origin.get(name), hint="check that the split files belong together")
    if "testing" not in parts:
        raise InputError("no testing triples: give deps.testing or a test_fraction above 0", file=where)
    labels = {entity: (entity_labels or {}).get(entity, entity) for entity in factory.entity_to_id}
    if entity_labels:
        unlabelled = sum(1 for entity in factory.entity_to_id if entity not in entity_labels)
        if unlabelled:
            warnings.append(f"{unlabelled} entit(y/ies) not in the entities table; their id is their label")
        isolated = sum(1 for entity in entity_labels if entity not in factory.entity_to_id)
        if isolated:  # no triple mentions them, so there is nothing to embed
            warnings.append(f"{isolated} entit(y/ies) of the entities table occur in no training triple "
                            "and get no embedding")
    for message in warnings:
        log.warning(message)
    return GraphData(training=factory, validation=parts.get("validation"), testing=parts["testing"],
                     entity_labels=labels,
                     relation_labels={r: relation_label(r) for r in factory.relation_to_id},
                     origin=dict(origin), warnings=tuple(warnings), dropped=dropped, known=parts.get("known"),
                     hash_split=hash_moves)


def _carve_by_hash(training: list[Triple], raw: Mapping[str, Sequence[Triple]], carve: Sequence[tuple[str, float]],
                   seed: int, keep: Collection[Triple], where: str | None
                   ) -> tuple[list[Triple], dict[str, Sequence[Triple]], dict[str, int]]:
    """Training and the carved splits by triple hash (kgpipe.embed.split); an empty carved split is an error."""
    from kgpipe.embed.split import hash_split

    found = hash_split(training, carve, seed=seed, keep=frozenset(keep))
    for name, fraction in carve:
        if not found.carved[name]:
            raise InputError(f"the hash split put no triple into {name} ({len(training)} triples, "
                             f"{name} fraction {fraction:g}, {found.moved_to_training} moved to training to keep "
                             "their entities and relations there)", file=where,
                             hint="give more triples, raise the fraction, or give validation/testing files")
    moves = {"moved_to_training": found.moved_to_training, "kept_in_training": found.kept_in_training}
    if found.moved_to_training:
        log.info("hash split: %d carved triple(s) moved to training so that their entities and relations occur "
                 "there", found.moved_to_training)
    return found.training, {**raw, **found.carved}, moves


def dataset_class(name: str) -> Any:
    """The PyKEEN dataset class for a name (a ConfigError listing close names if there is none)."""
    from pykeen.datasets import dataset_resolver

    from kgpipe.embed.config import ConfigError, choices_hint

    try:
        return dataset_resolver.lookup(name)
    except (KeyError, ValueError, TypeError):
        raise ConfigError("dataset", f"unknown PyKEEN dataset '{name}'",
                          hint=choices_hint(name, dataset_resolver.lookup_dict,
                                            normalize=dataset_resolver.normalize)) from None


def _dataset_graph(name: str, *, inverse_triples: bool, entities: Path | None, validation_fraction: float,
                   seed: int, split: SplitMethod, keep_in_training: Collection[Triple],
                   shown: Callable[[Path], str]) -> GraphData:
    dataset_cls = dataset_class(name)
    try:
        dataset = dataset_cls(create_inverse_triples=inverse_triples)
    except Exception as exc:  # a dataset that is not inside the wheel tries to download
        raise InputError(f"PyKEEN dataset '{name}' could not be loaded ({type(exc).__name__}: {exc})",
                         hint="only datasets shipped inside PyKEEN (e.g. Nations, UMLS, Kinships) load "
                              "without network; give its files as deps.triples instead") from None
    splits = {"training": dataset.training, "testing": dataset.testing}
    if dataset.validation is not None:
        splits["validation"] = dataset.validation
    else:
        raw = {split: [tuple(t) for t in factory.triples.tolist()] for split, factory in splits.items()}
        # carve a validation split from its training triples, as for any other graph
        graph = build_graph(raw, origin={s: f"pykeen:{dataset_cls.__name__}" for s in raw},
                            validation_fraction=validation_fraction, test_fraction=0.0, seed=seed,
                            inverse_triples=inverse_triples, split=split, keep_in_training=keep_in_training)
        return graph
    labels = read_entity_labels(entities, shown(entities)) if entities is not None else {}
    training = dataset.training
    warnings = _single_triple_relations_mapped(list(splits.values()))
    for message in warnings:
        log.warning(message)
    return GraphData(
        training=training, validation=dataset.validation, testing=dataset.testing,
        entity_labels={e: labels.get(e, e) for e in training.entity_to_id},
        relation_labels={r: relation_label(r) for r in training.relation_to_id},
        origin={split: f"pykeen:{dataset_cls.__name__}" for split in splits},
        warnings=tuple(warnings),
    )


def _single_triple_relations_mapped(factories: Sequence[Any]) -> list[str]:
    """The same check on id-mapped factories (cheaper than rebuilding every labelled triple)."""
    import torch

    relation_to_id = factories[0].relation_to_id
    counts = torch.stack([torch.bincount(f.mapped_triples[:, 1], minlength=len(relation_to_id))
                          for f in factories]).sum(dim=0)
    single = sorted(name for name, index in relation_to_id.items() if int(counts[index]) == 1)
    return _describe_single(single)


def _unique(triples: Iterable[Triple]) -> list[Triple]:
    return list(dict.fromkeys(triples))


def _check_split_sizes(n: int, carve: Sequence[tuple[str, float]], where: str | None) -> None:
    """Fail before PyKEEN does when a split would be empty: each carved split needs at least one triple."""
    needed = max((math.ceil(1 / fraction) for _, fraction in carve), default=1)
    needed = max(needed, len(carve) + 1)
    if n < needed:
        what = ", ".join(f"{split} ({fraction:g})" for split, fraction in carve)
        raise InputError(f"the graph has {n} triple(s); splitting off {what} needs at least {needed}",
                         file=where, hint="give more triples, raise the fractions, "
                                          "or give validation/testing files")


def _evaluation_factory(triples: Sequence[Triple], training: Any) -> tuple[Any, int]:
    """An evaluation factory on training's id map; triples with ids training never saw are dropped."""
    import numpy as np
    from pykeen.triples import TriplesFactory

    entities, relations = training.entity_to_id, training.relation_to_id
    kept = [t for t in _unique(triples) if t[0] in entities and t[2] in entities and t[1] in relations]
    array = np.asarray(kept, dtype=str).reshape(-1, 3)
    factory = TriplesFactory.from_labeled_triples(array, entity_to_id=entities, relation_to_id=relations)
    return factory, len(_unique(triples)) - len(kept)


def _single_triple_relations(triples: Sequence[Triple]) -> list[str]:
    counts = Counter(relation for _, relation, _ in triples)
    return _describe_single(sorted(relation for relation, count in counts.items() if count == 1))


def _describe_single(single: list[str]) -> list[str]:
    if not single:
        return []
    shown = ", ".join(single[:5]) + (f" and {len(single) - 5} more" if len(single) > 5 else "")
    return [f"{len(single)} relation(s) with a single triple, kept in training (little to learn from): {shown}"]
