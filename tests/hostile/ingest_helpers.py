"""What the ingest hostile cases share: a recorder of every file opened and every connection made (a Python
audit hook), a local HTTP server that logs requests, and a `kgpipe run` through the CLI.
"""

from __future__ import annotations

import http.server
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner

from kgpipe.cli import app


@dataclass
class Recorder:
    """Files opened and network calls made while `recording()` is active (every code path: rdflib, urllib,
    pyexpat's own opens go through the same audit events)."""

    active: bool = False
    opened: list[str] = field(default_factory=list)
    network: list[tuple[str, str]] = field(default_factory=list)

    def hook(self, event: str, args: tuple[Any, ...]) -> None:
        if not self.active:
            return
        if event == "open" and args and isinstance(args[0], (str, bytes, Path)):
            self.opened.append(str(args[0]))
        elif event in ("socket.connect", "urllib.Request", "socket.getaddrinfo"):
            self.network.append((event, repr(args[1] if event == "socket.connect" else args[0])))

    @contextmanager
    def recording(self) -> Iterator[Recorder]:
        self.opened.clear()
        self.network.clear()
        self.active = True
        try:
            yield self
        finally:
            self.active = False

    def opened_any(self, *paths: Path) -> list[str]:
        wanted = {str(p) for p in paths} | {str(p.resolve()) for p in paths}
        return [p for p in self.opened if p in wanted or any(p.endswith(str(w)) for w in wanted)]


RECORDER = Recorder()
sys.addaudithook(RECORDER.hook)  # audit hooks cannot be removed; this one does nothing unless recording


class _LoggingHandler(http.server.BaseHTTPRequestHandler):
    body = b'{"@context": {"name": "http://evil.example/name"}}'

    def do_GET(self) -> None:  # the http.server API names it so
        self.server.requests.append(self.path)  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "application/ld+json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def logging_server() -> Iterator[tuple[str, list[str]]]:
    """An HTTP server on 127.0.0.1 that answers every GET with a valid JSON-LD context and logs the path."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _LoggingHandler)
    server.requests = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server.requests  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()


def write_ingest_pipeline(root: Path, *, corpus: str | None = "corpus", seeds: list[str] | None = None,
                          **params: Any) -> Path:
    """A pipeline file with one ingest stage (root: its folder)."""
    deps: dict[str, Any] = {}
    if corpus is not None:
        deps["corpus"] = corpus
    if seeds:
        deps["seeds"] = seeds
    path = root / "pipeline.yaml"
    stage = {"type": "ingest", "params": params, "deps": deps}
    path.write_text(yaml.safe_dump({"root": ".", "stages": {"ingest": stage}}, sort_keys=False), encoding="utf-8")
    return path


def cli_run(pipeline: Path) -> Any:
    """`kgpipe run PIPELINE` through typer's CliRunner."""
    return CliRunner().invoke(app, ["run", str(pipeline)])
