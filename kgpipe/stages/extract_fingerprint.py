"""What a document's extracted rows depend on besides its own id and text: the extractor fingerprint under which
the extract stage caches them (kgpipe.stages.extract_cache).

It is the hash of the stage type's version, its params (but those that only say how the work is spread), the
content hash of every dep but the documents (model folders, pattern files, seed entities, a relation model), and
the versions of the libraries that compute the rows: kgpipe, spaCy and thinc, the spaCy model package (a model
given by name), and torch and transformers where a transformer model is in play; and the schemas of the rows'
tables, which the cache's entries are read with.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kgpipe import __version__
from kgpipe.artifacts import MENTIONS, RELATIONS
from kgpipe.hashing import HashCache, hash_params, sha256_bytes

# Params that change how the work is spread, never a document's rows (see extract_documents), nor the cache's own.
EXECUTION_PARAMS = frozenset({"n_process", "cache", "cache_max_size"})
TRANSFORMER_LIBRARIES = ("torch", "transformers", "spacy-transformers", "spacy-curated-transformers")


@dataclass(frozen=True)
class Fingerprint:
    digest: str
    parts: dict[str, Any]   # what `digest` is the hash of (kept in the cache, for `kgpipe cache`)


def extractor_fingerprint(*, stage_version: int, params: dict[str, Any], deps: dict[str, Path | list[Path] | None],
                          model: str, relation_model: bool,
                          dep_hash: Callable[[Path], str | None] | None = None) -> Fingerprint:
    """`params`: the stage's params as JSON values; `deps`: its inputs but the documents; `model`: the spaCy model
    as the stage resolved it (a package name or a folder); `relation_model`: whether a relation model is used;
    `dep_hash`: a dep's content hash (StageContext.input_hash: the runner's, not computed again), by default
    computed here."""
    hasher = HashCache()
    hash_of = dep_hash or hasher.path_hash

    def content(value: Path | list[Path] | None) -> str | list[str | None] | None:
        if isinstance(value, list):
            return [hash_of(path) for path in value]
        return hash_of(value) if value is not None else None

    folder = Path(model) if Path(model).is_absolute() else None
    libraries = ["kgpipe", "spacy", "thinc"]
    if relation_model or _uses_transformer(folder if folder is not None else _package_folder(model)):
        libraries += TRANSFORMER_LIBRARIES
    parts: dict[str, Any] = {
        "stage_version": stage_version,
        "params": {k: v for k, v in sorted(params.items()) if k not in EXECUTION_PARAMS},
        "deps": {name: content(value) for name, value in sorted(deps.items())},
        "spacy_model": {"folder": hasher.path_hash(folder)} if folder is not None
        else {"package": model, "version": _version(model)},
        "versions": {name: __version__ if name == "kgpipe" else _version(name) for name in libraries},
        "tables": {table.name: sha256_bytes(str(table.arrow).encode()) for table in (MENTIONS, RELATIONS)},
    }
    return Fingerprint(hash_params(parts), parts)


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _package_folder(name: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    return Path(locations[0]) if locations else None


def _uses_transformer(folder: Path | None) -> bool:
    """Whether a spaCy pipeline folder (or package folder, its pipeline one level down) has a transformer."""
    if folder is None:
        return False
    for config in (folder / "config.cfg", *folder.glob("*/config.cfg")):
        try:
            if "transformer" in config.read_text(encoding="utf-8", errors="replace").lower():
                return True
        except OSError:
            continue
    return False
