"""The last run's artifacts as one read-only snapshot: tables read lazily (pyarrow, pandas) and kept for as long
as the run they come from is the last one.

A snapshot is named by the lock file (a hash of every stage's output hashes). When a run commits new outputs,
the next request gets a fresh snapshot; a request that was reading while files were replaced is refused with
SnapshotChanged (the page reloads) rather than mixing tables of two runs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from kgpipe.config import Pipeline, as_pipeline
from kgpipe.errors import ArtifactError
from kgpipe.hashing import hash_params
from kgpipe.lockfile import LockFile
from kgpipe.roles import Role, existing_output, find_output, output_of, stage_for

if TYPE_CHECKING:
    import pandas as pd

    from kgpipe.dag import StageStatus
    from kgpipe.embed.model_io import ModelInfo
    from kgpipe.embed.predict import LinkPredictor
    from kgpipe.evidence import EvidenceIndex
    from kgpipe.export.embeddings import Embeddings
    from kgpipe.web.search import SearchIndex

T = TypeVar("T")
STALE_CHECK_SECONDS = 5.0   # /api/status hashes changed files at most this often


class SnapshotChanged(ArtifactError):
    """The artifacts were replaced (a run committed) while a request read them."""

    def __init__(self) -> None:
        super().__init__("the artifacts changed while they were read (a run is committing its outputs)",
                         hint="reload the page")


@dataclass(frozen=True)
class ArtifactPaths:
    """Where the explorer's inputs are (None: the pipeline has no stage that writes it)."""

    entities: Path
    triples: Path
    graph_ttl: Path | None = None
    fusion_report: Path | None = None
    mention_entities: Path | None = None
    mentions: Path | None = None
    relations: Path | None = None
    documents: Path | None = None
    embeddings: Path | None = None     # the vectors stage's table (every entity), else embed's
    model: Path | None = None

    def existing(self) -> dict[str, Path]:
        return {f.name: p for f in fields(self) if isinstance(p := getattr(self, f.name), Path) and p.exists()}


def artifact_paths(pipe: Pipeline) -> ArtifactPaths:
    """The one place that knows what the explorer reads: artifacts by role (kgpipe.roles), the mentions and
    relations as the stage that made the triples read them."""
    from kgpipe.explore import documents_of

    fuse = stage_for(pipe, Role.TRIPLES)
    mentions = fuse.deps.get("mentions", (None,))[0]
    vectors = existing_output(pipe, Role.ENTITY_VECTORS)

    def out(role: Role) -> Path | None:
        found = output_of(pipe, role)
        return found[0].outs[found[1]] if found is not None else None

    return ArtifactPaths(
        entities=find_output(pipe, Role.ENTITIES, exists=False),
        triples=find_output(pipe, Role.TRIPLES, exists=False),
        graph_ttl=out(Role.GRAPH_TTL), fusion_report=out(Role.FUSION_REPORT),
        mention_entities=out(Role.MENTION_ENTITIES), mentions=mentions,
        relations=fuse.deps.get("relations", (None,))[0],
        documents=documents_of(pipe, mentions) if mentions is not None else None,
        embeddings=vectors if vectors is not None else out(Role.ENTITY_EMBEDDINGS), model=out(Role.MODEL))


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino)


def snapshot_id(lock: LockFile) -> str:
    """A hash of every stage's output hashes in the lock file: changes exactly when a run commits outputs."""
    return hash_params({name: entry.outs for name, entry in lock.stages.items()})[:16]


class Snapshot:
    """One run's artifacts; every table is read at most once, on first use, under a lock."""

    def __init__(self, pipe: Pipeline, paths: ArtifactPaths, id: str) -> None:
        self.pipe, self.paths, self.id = pipe, paths, id
        self.signatures = {name: _signature(path) for name, path in paths.existing().items()}
        self._cache: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    def changed(self) -> bool:
        """Whether any artifact file differs from when this snapshot was made."""
        return any(_signature(getattr(self.paths, name)) != sig for name, sig in self.signatures.items()) or \
            set(self.paths.existing()) != set(self.signatures)

    def cached(self, key: str, build: Callable[[], T]) -> T:
        """build() once per snapshot (tables, indexes, projections); refused if the files moved meanwhile.
        One lock per key: loading the model does not hold up a search."""
        if key in self._cache:
            return self._cache[key]
        with self._lock:
            key_lock = self._locks.setdefault(key, threading.Lock())
        with key_lock:
            if key not in self._cache:
                value = build()
                if self.changed():
                    raise SnapshotChanged()
                self._cache[key] = value
            return self._cache[key]

    def _table(self, name: str, schema: Any) -> pd.DataFrame:
        from kgpipe.artifacts import read_table

        path = getattr(self.paths, name)
        if path is None or name not in self.signatures:
            raise ArtifactError(f"{name} not found (expected {path})", hint=f"run the pipeline: kgpipe run "
                                f"{self.pipe.path}")
        return read_table(path, schema)

    def has(self, name: str) -> bool:
        return name in self.signatures

    # --- tables ---------------------------------------------------------------------------------------

    @property
    def entities(self) -> pd.DataFrame:
        from kgpipe.artifacts import ENTITIES

        return self.cached("entities", lambda: self._table("entities", ENTITIES))

    @property
    def entity_row(self) -> dict[str, int]:
        return self.cached("entity_row", lambda: {e: i for i, e in enumerate(self.entities["id"])})

    def label(self, entity_id: str) -> str:
        row = self.entity_row.get(entity_id)
        return str(self.entities["label"].iat[row]) if row is not None else entity_id.rsplit("/", 1)[-1]

    def entity_type(self, entity_id: str) -> str | None:
        row = self.entity_row.get(entity_id)
        value = self.entities["type"].iat[row] if row is not None else None
        return value if isinstance(value, str) else None

    @property
    def triples(self) -> pd.DataFrame:
        from kgpipe.artifacts import TRIPLES

        return self.cached("triples", lambda: self._table("triples", TRIPLES))

    def triple_rows(self, direction: str) -> dict[str, Any]:
        """Entity id -> positions of its outgoing ('out': as head) or incoming ('in': as tail) triples."""
        column = "head" if direction == "out" else "tail"
        return self.cached(f"triples_{direction}",
                           lambda: self.triples.groupby(column, sort=False).indices if len(self.triples) else {})

    @property
    def triple_keys(self) -> frozenset[tuple[str, str, str]]:
        return self.cached("triple_keys", lambda: frozenset(zip(
            self.triples["head"], self.triples["relation"], self.triples["tail"], strict=True)))

    @property
    def relations(self) -> pd.DataFrame:
        from kgpipe.artifacts import RELATIONS

        return self.cached("relations", lambda: self._table("relations", RELATIONS))

    @property
    def mentions(self) -> pd.DataFrame:
        from kgpipe.artifacts import MENTIONS

        return self.cached("mentions", lambda: self._table("mentions", MENTIONS))

    def mention_texts(self, entity_id: str) -> list[tuple[str, int]]:
        """An entity's mention texts with how many of its mentions say each, most frequent first (ties by
        text); none without the fuse stage's mention links."""
        if not (self.has("mentions") and self.has("mention_entities")):
            return []

        def build() -> tuple[Any, dict[str, Any]]:
            from kgpipe.artifacts import MENTION_ENTITIES

            links = self._table("mention_entities", MENTION_ENTITIES)
            joined = links.merge(self.mentions[["mention_id", "text"]], on="mention_id", how="inner")
            return joined["text"].to_numpy(), joined.groupby("entity_id", sort=False).indices if len(joined) else {}
        texts, rows = self.cached("mention_texts", build)
        counts: dict[str, int] = {}
        for text in texts[rows.get(entity_id, [])].tolist():
            counts[text] = counts.get(text, 0) + 1
        return sorted(counts.items(), key=lambda item: (-item[1], item[0]))

    @property
    def documents(self) -> pd.DataFrame:
        from kgpipe.artifacts import DOCUMENTS

        return self.cached("documents", lambda: self._table("documents", DOCUMENTS))

    @property
    def evidence(self) -> EvidenceIndex | None:
        """The sentences behind text triples (None when the pipeline keeps no mention links)."""
        if not all(self.has(n) for n in ("relations", "mentions", "mention_entities")):
            return None

        def build() -> EvidenceIndex:
            from kgpipe.artifacts import MENTION_ENTITIES
            from kgpipe.evidence import EvidenceIndex, aligned_relations

            return EvidenceIndex(self.relations, self.mentions, self._table("mention_entities", MENTION_ENTITIES),
                                 aligned_relations(self.paths.fusion_report),
                                 self.documents if self.has("documents") else None)
        return self.cached("evidence", build)

    @property
    def search(self) -> SearchIndex:
        from kgpipe.web.search import SearchIndex

        return self.cached("search", lambda: SearchIndex(self.entities))

    @property
    def embeddings(self) -> Embeddings | None:
        if not self.has("embeddings"):
            return None
        from kgpipe.export.embeddings import load_embeddings

        assert self.paths.embeddings is not None
        path = self.paths.embeddings
        return self.cached("embeddings", lambda: load_embeddings(path))

    @property
    def embedding_ids(self) -> frozenset[str]:
        table = self.embeddings
        return self.cached("embedding_ids", lambda: frozenset(table.ids) if table is not None else frozenset())

    @property
    def model_info(self) -> ModelInfo | None:
        """The saved model's config and id maps (read without loading the model)."""
        if not self.has("model"):
            return None
        from kgpipe.embed.model_io import read_info

        assert self.paths.model is not None
        folder = self.paths.model
        return self.cached("model_info", lambda: read_info(folder))

    @property
    def model_entities(self) -> frozenset[str]:
        info = self.model_info
        return self.cached("model_entities", lambda: frozenset(info.entity_ids) if info else frozenset())

    @property
    def predictor(self) -> LinkPredictor | None:
        """The embed stage's saved model (loaded on the first prediction asked for)."""
        if not self.has("model"):
            return None
        from kgpipe.embed.predict import LinkPredictor

        assert self.paths.model is not None
        folder = self.paths.model
        return self.cached("predictor", lambda: LinkPredictor.load(folder))


class SnapshotStore:
    """The current snapshot of a pipeline's artifacts, renewed when the lock file names new outputs (or the
    files changed under it); and whether the lock says outputs are out of date."""

    def __init__(self, pipeline: str | Path | Pipeline) -> None:
        from kgpipe.runner import Workspace

        self.pipe = as_pipeline(pipeline)
        self.paths = artifact_paths(self.pipe)
        self.lock_path = Workspace(self.pipe).lock_path
        self._lock = threading.Lock()
        self._current: Snapshot | None = None
        self._lock_sig: tuple[int, int, int] | None = None
        self._statuses: tuple[str, float, list[StageStatus]] | None = None
        missing = [p for p in (self.paths.entities, self.paths.triples) if not p.exists()]
        if missing:
            raise ArtifactError(f"{self.pipe.rel(missing[0])} does not exist yet: the explorer shows the last run's "
                                "artifacts", hint=f"run the pipeline first: kgpipe run {self.pipe.path}")

    def current(self) -> Snapshot:
        with self._lock:
            sig = _signature(self.lock_path)
            snap = self._current
            if snap is None or sig != self._lock_sig or snap.changed():
                ident = snapshot_id(LockFile.read(self.lock_path))
                if snap is None or ident != snap.id or snap.changed():
                    snap = Snapshot(self.pipe, self.paths, ident)
                self._current, self._lock_sig = snap, sig
            return snap

    def stage_statuses(self) -> list[StageStatus]:
        """Each stage's status as `kgpipe status` decides it (re-checked at most every STALE_CHECK_SECONDS;
        the workspace's hash cache is read, never written)."""
        snap = self.current()
        now = time.monotonic()
        cached = self._statuses
        if cached is not None and cached[0] == snap.id and now - cached[1] < STALE_CHECK_SECONDS:
            return cached[2]
        from kgpipe.dag import build_graph, plan, select_stages
        from kgpipe.hashing import HashCache
        from kgpipe.runner import Workspace

        graph = build_graph(self.pipe)
        statuses = plan(self.pipe, graph, select_stages(self.pipe, graph), LockFile.read(self.lock_path).stages,
                        HashCache(Workspace(self.pipe).hash_cache_path))
        self._statuses = (snap.id, now, statuses)
        return statuses

    def stale_stages(self) -> list[str]:
        return [s.name for s in self.stage_statuses() if s.stale]


def corrections_path(pipe: Pipeline) -> Path:
    """The explorer's corrections file: in the pipeline's workspace (beside the lock file), never among the
    artifacts, which only runs write."""
    return pipe.workspace / "corrections" / "relations.jsonl"
