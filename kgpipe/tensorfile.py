"""safetensors files with the same bytes for the same tensors (every kgpipe writer of safetensors uses this):
the safetensors library writes its metadata in hash-map order, which changes from run to run; here the
header is rewritten with sorted keys, and files are written atomically with the umask's mode.

The layout stays the safetensors format (8-byte little-endian header length, JSON header padded with
spaces to a multiple of 8, then the data), so every safetensors reader reads these files.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kgpipe.atomic import atomic_write_bytes


def canonical(data: bytes) -> bytes:
    """The same safetensors file with its header's keys sorted (metadata first); the data is untouched."""
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    metadata = header.pop("__metadata__", None)
    ordered: dict[str, Any] = {}
    if metadata is not None:
        ordered["__metadata__"] = dict(sorted(metadata.items()))
    ordered.update(sorted(header.items()))
    text = json.dumps(ordered, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data[8 + length:]


def torch_bytes(tensors: Mapping[str, Any], metadata: Mapping[str, str] | None = None) -> bytes:
    """torch tensors as canonical safetensors bytes (cloned: state_dict tensors may share storage, which
    safetensors refuses)."""
    from safetensors.torch import save

    return canonical(save({k: v.detach().cpu().clone().contiguous() for k, v in tensors.items()},
                          metadata=dict(metadata) if metadata else None))


def write_torch(path: Path, tensors: Mapping[str, Any], metadata: Mapping[str, str] | None = None) -> None:
    atomic_write_bytes(path, torch_bytes(tensors, metadata))


def write_numpy(path: Path, arrays: Mapping[str, Any], metadata: Mapping[str, str] | None = None) -> None:
    from safetensors.numpy import save

    atomic_write_bytes(path, canonical(save(dict(arrays), metadata=dict(metadata) if metadata else None)))
