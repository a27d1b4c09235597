"""Fuzz targets: the readers of untrusted files, each fed arbitrary bytes. A target may succeed or raise a
KgpipeError (a clear error); anything else (a crash, a hang past the time limit) is a finding.

benchmarks/fuzz.py drives them for as long as it is asked (hypothesis, outside CI) and saves each finding's
input under tests/data/fuzz/<target>/; tests/test_fuzz_regressions.py replays every saved input in `make test`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from kgpipe.errors import KgpipeError

FUZZ_DATA = Path(__file__).resolve().parent / "data" / "fuzz"


def _in_temp_file(data: bytes, name: str, read: Callable[[Path], object]) -> None:
    with tempfile.TemporaryDirectory(prefix="kgpipe-fuzz-") as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        read(path)


def pipeline_file(data: bytes) -> None:
    from kgpipe.config import load_pipeline

    _in_temp_file(data, "p.yaml", load_pipeline)


def _corpus(name: str) -> Callable[[bytes], None]:
    def target(data: bytes) -> None:
        from kgpipe.corpus import CorpusOptions, read_corpus

        _in_temp_file(data, name, lambda path: list(read_corpus(path, "auto", CorpusOptions())))

    return target


def _seed(name: str) -> Callable[[bytes], None]:
    def target(data: bytes) -> None:
        from kgpipe.kg.seed import SeedOptions, read_seed

        _in_temp_file(data, name, lambda path: read_seed(path, name, "auto", SeedOptions()))

    return target


def pattern_file(data: bytes) -> None:
    from kgpipe.nlp.patterns import load_pattern_file

    _in_temp_file(data, "patterns.yaml", load_pattern_file)


TARGETS: dict[str, Callable[[bytes], None]] = {
    "pipeline": pipeline_file,
    "patterns": pattern_file,
    "corpus-jsonl": _corpus("docs.jsonl"),
    "corpus-csv": _corpus("docs.csv"),
    "corpus-txt": _corpus("doc.txt"),
    "seed-turtle": _seed("seed.ttl"),
    "seed-ntriples": _seed("seed.nt"),
    "seed-rdfxml": _seed("seed.rdf"),
    "seed-jsonld": _seed("seed.jsonld"),
    "seed-tsv": _seed("seed.tsv"),
}

# Shapes a target's inputs are built from (besides raw bytes), so that the fuzzer gets past the first byte.
SEEDS: dict[str, list[bytes]] = {
    "pipeline": [b"stages:\n  a:\n    type: ingest\n    deps: {corpus: c}\n    params: {strict: false}\n"],
    "patterns": [b"patterns:\n  - id: x\n    relation: born_in\n    subject: {anchor: p, labels: [PERSON]}\n"
                 b"    object: {anchor: c, labels: [GPE]}\n    dependency:\n"
                 b"      - {RIGHT_ID: v, RIGHT_ATTRS: {LEMMA: bear}}\n"
                 b"      - {LEFT_ID: v, REL_OP: '>', RIGHT_ID: p, RIGHT_ATTRS: {DEP: nsubjpass}}\n"
                 b"      - {LEFT_ID: v, REL_OP: '>', RIGHT_ID: i, RIGHT_ATTRS: {LOWER: in}}\n"
                 b"      - {LEFT_ID: i, REL_OP: '>', RIGHT_ID: c, RIGHT_ATTRS: {DEP: pobj}}\n"],
    "corpus-jsonl": [b'{"id": "a", "text": "Marie Curie was born in Warsaw."}\n{"id": "b", "text": "x"}\n'],
    "corpus-csv": [b'id,text\na,"Marie Curie, born in Warsaw"\nb,x\n'],
    "corpus-txt": [b"Marie Curie was born in Warsaw.\n"],
    "seed-turtle": [b'@prefix ex: <http://e.org/> .\n'
                    b'ex:a ex:p ex:b ; <http://www.w3.org/2000/01/rdf-schema#label> "A" .\n'],
    "seed-ntriples": [b'<http://e.org/a> <http://e.org/p> <http://e.org/b> .\n'],
    "seed-rdfxml": [b'<?xml version="1.0"?>\n<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
                    b'xmlns:ex="http://e.org/"><rdf:Description rdf:about="http://e.org/a"><ex:p '
                    b'rdf:resource="http://e.org/b"/></rdf:Description></rdf:RDF>\n'],
    "seed-jsonld": [b'{"@id": "http://e.org/a", "http://e.org/p": {"@id": "http://e.org/b"}}'],
    "seed-tsv": [b"a\tp\tb\nc\tq\td\n"],
}


def check(target: str, data: bytes) -> BaseException | None:
    """Run one input; None when it passed (a result or a KgpipeError), else the unexpected exception."""
    try:
        TARGETS[target](data)
    except KgpipeError:
        return None
    except Exception as exc:  # the finding
        return exc
    return None
