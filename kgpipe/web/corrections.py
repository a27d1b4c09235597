"""The explorer's only write: a relation marked wrong, appended to a corrections file in the workspace as a
labelled sentence (the format `kgpipe patterns learn --negatives` and `kgpipe rel train --negatives` read:
text, the two mentions as character spans with their labels, the relation between them).

Guarded against other sites and other machines: a per-start CSRF token (sent back in the X-CSRF-Token
header), a Host and an Origin check (loopback names and the bound port only), and no writes at all when the
app is bound to a non-loopback address.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import secrets
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kgpipe.atomic import atomic_write_text
from kgpipe.evidence import TextEvidence

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})
TOKEN_HEADER = "X-CSRF-Token"


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and localhost; not 0.0.0.0 (every interface)."""
    name = host.strip("[]").casefold()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class WriteGuard:
    """Who may write: a request from a page this app served, on a loopback-bound app."""

    host: str
    port: int | None
    token: str = field(default_factory=lambda: secrets.token_urlsafe(32))

    @property
    def enabled(self) -> bool:
        return is_loopback(self.host)

    def _own(self, netloc: str) -> bool:
        """A Host header or an Origin's host[:port] naming this app: a loopback name and the bound port."""
        parsed = urlsplit(f"//{netloc}")
        try:
            port = parsed.port
        except ValueError:
            return False
        return parsed.hostname is not None and is_loopback(parsed.hostname) and (
            self.port is None or port == self.port)

    def refusal(self, headers: Any) -> str | None:
        """Why a write request is refused (None: allowed). `headers`: the request's headers (a mapping)."""
        if not self.enabled:
            return (f"corrections are disabled: the explorer is bound to {self.host}, not a loopback address "
                    "(restart it with --host 127.0.0.1 to review relations)")
        if not self._own(headers.get("host", "")):
            return "refused: the Host header does not name this app on a loopback address"
        origin = headers.get("origin") or headers.get("referer")
        if not origin:
            return "refused: no Origin header"
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not self._own(parts.netloc):
            return f"refused: requests from {origin} may not write"
        if not hmac.compare_digest(headers.get(TOKEN_HEADER.lower(), ""), self.token):
            return f"refused: missing or wrong {TOKEN_HEADER} (reload the page)"
        return None


def labelled_row(evidence: TextEvidence, *, verdict: str, snapshot: str) -> dict[str, Any]:
    """A relation as a labelled sentence whose one relation is wrong, plus where it came from."""
    if evidence.sentence is None:
        raise ValueError(f"relation {evidence.relation_id}: its document's text is not available")
    return {
        "text": evidence.sentence,
        "entities": [{"start": evidence.subject_span[0], "end": evidence.subject_span[1],
                      "type": evidence.subject_label},
                     {"start": evidence.object_span[0], "end": evidence.object_span[1],
                      "type": evidence.object_label}],
        "relations": [{"head": 0, "tail": 1, "type": evidence.relation}],
        "verdict": verdict, "relation_id": evidence.relation_id, "doc_id": evidence.doc_id,
        "pattern_id": evidence.pattern_id, "confidence": evidence.confidence, "snapshot": snapshot,
        "marked_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def append_correction(path: Path, row: dict[str, Any]) -> None:
    """Append one JSON line: under a file lock, the file read, extended and replaced atomically (a reader
    never sees half a line; two writers never lose each other's rows)."""
    from filelock import FileLock

    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock", timeout=10):
        before = path.read_text(encoding="utf-8") if path.exists() else ""
        if before and not before.endswith("\n"):
            before += "\n"
        atomic_write_text(path, before + json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")


def read_corrections(path: Path) -> list[dict[str, Any]]:
    """The rows written so far (lines that are not JSON objects are skipped: the file is the user's too)."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def wrong_by_pattern(path: Path) -> Counter[str]:
    """How many distinct relations of each pattern were marked wrong."""
    seen = {(r.get("relation_id"), r.get("pattern_id")) for r in read_corrections(path) if r.get("verdict") == "wrong"}
    return Counter(str(pattern) for _, pattern in seen if pattern is not None)


def marked_wrong(path: Path) -> frozenset[str]:
    return frozenset(str(r["relation_id"]) for r in read_corrections(path)
                     if r.get("verdict") == "wrong" and "relation_id" in r)
