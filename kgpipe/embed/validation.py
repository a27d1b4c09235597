"""The embed stage's checks before any stage runs: every PyKEEN name and kwargs key resolves, and the device
is on this machine; params that passed are remembered so that a no-op `kgpipe run` does not import PyKEEN.

Resolving names needs PyKEEN (and torch) imported: seconds that a run with nothing to do should not pay
every time. A small JSON file beside PyKEEN's own files (under PYSTOW_HOME) keeps the sha256 of params that
passed, with the kgpipe, PyKEEN and torch versions; a damaged file is treated as empty. An explicit
device (cuda:N, mps) is checked on every run: GPUs come and go.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from kgpipe.atomic import atomic_write_text

log = logging.getLogger(__name__)

KEEP = 64  # remembered param sets; the oldest go first


def check_names(params: Any) -> None:
    """Resolve every name and kwargs key of EmbedParams through PyKEEN (ConfigError when one does not)."""
    from kgpipe.embed.config import validate
    from kgpipe.embed.data import dataset_class
    from kgpipe.embed.defaults import training_config

    config, _ = training_config(params.model, params.overrides(), defaults=params.defaults)
    validate(config)
    if params.dataset is not None:
        dataset_class(params.dataset)


def needs_device_check(device: str) -> bool:
    """auto and cpu are always there; anything else is checked against the machine on every run."""
    return device not in ("auto", "cpu")


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "missing"


def params_key(values: Mapping[str, Any]) -> str:
    from kgpipe import __version__

    text = json.dumps({"params": values, "kgpipe": __version__, "pykeen": _version("pykeen"),
                       "torch": _version("torch")}, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class PassedParams:
    """The keys of params that passed check_names (a JSON list in `path`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            keys = json.loads(path.read_text(encoding="utf-8"))
            self.keys = [k for k in keys if isinstance(k, str)] if isinstance(keys, list) else []
        except (OSError, UnicodeDecodeError, ValueError):
            self.keys = []

    def __contains__(self, key: str) -> bool:
        return key in self.keys

    def add(self, key: str) -> None:
        self.keys = [*[k for k in self.keys if k != key][-(KEEP - 1):], key]
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.path, json.dumps(self.keys) + "\n")
        except OSError as exc:  # a read-only place only costs the next run the check again
            log.debug("could not remember validated embed params in %s: %s", self.path, exc)
