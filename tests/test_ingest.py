"""The ingest stage, end to end through the runner: corpus readers, Unicode, duplicates, bad input,
strict mode, seed KGs in every supported syntax, syntax-error locations, merging and determinism.

Every input is a small file written by the test into tmp_path; outputs are read back with read_table.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from kgpipe.artifacts import DOCUMENTS, SEED_ATTRIBUTES, SEED_ENTITIES, SEED_TRIPLES, read_table
from kgpipe.config import load_pipeline
from kgpipe.errors import InputError
from kgpipe.runner import RunResult, Workspace, run

# rdflib's JSON-LD parser uses its own deprecated ConjunctiveGraph; not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:ConjunctiveGraph is deprecated:DeprecationWarning")

# --- helpers ------------------------------------------------------------------------------------------

BOM = b"\xef\xbb\xbf"
EX = "http://ex.org/"
RDF_TYPE = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"
RDFS_LABEL = "http://www.w3.org/2000/01/rdf-schema#label"
SKOS = "http://www.w3.org/2004/02/skos/core#"
XSD = "http://www.w3.org/2001/XMLSchema#"
TSV_NS = "http://kgpipe.org/seed/"
PARQUET_OUTPUTS = ("documents", "seed_entities", "seed_triples", "seed_attributes")
SCHEMAS = {"documents": DOCUMENTS, "seed_entities": SEED_ENTITIES, "seed_triples": SEED_TRIPLES,
           "seed_attributes": SEED_ATTRIBUTES}


def write(path: Path, content: str | bytes) -> Path:
    """Write content verbatim (str as UTF-8, no newline translation), creating parent folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def write_pipeline(root: Path, corpus: str = "corpus", seeds: list[str] | None = None, **params: Any) -> Path:
    stage: dict[str, Any] = {"type": "ingest", "params": params, "deps": {"corpus": corpus}}
    if seeds:
        stage["deps"]["seeds"] = list(seeds)
    path = root / "pipeline.yaml"
    path.write_text(yaml.safe_dump({"root": ".", "stages": {"ingest": stage}}, sort_keys=False), encoding="utf-8")
    return path


def run_ingest(root: Path, corpus: str = "corpus", seeds: list[str] | None = None, *, force: bool = False,
               **params: Any) -> RunResult:
    """Run the one-stage pipeline; without a corpus on disk, a one-document corpus is written first."""
    if not (root / corpus).exists():
        write(root / corpus / "doc.txt", "A placeholder document.\n")
    return run(write_pipeline(root, corpus, seeds, **params), force=force)


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, np.integer):
        return int(value)
    return value


def table(result: RunResult, name: str) -> list[dict[str, Any]]:
    """An output table as plain rows (lists for list columns, None for nulls)."""
    frame = read_table(result.outputs["ingest"][name], SCHEMAS[name])
    return [{k: _plain(v) for k, v in row.items()} for row in frame.to_dict("records")]


def report(result: RunResult) -> dict[str, Any]:
    return json.loads(result.outputs["ingest"]["report"].read_text(encoding="utf-8"))


def doc(doc_id: str, source: str, line: int | None, text: str) -> dict[str, Any]:
    """The documents row expected for a text (sha256 of its UTF-8 bytes, length in code points)."""
    return {"doc_id": doc_id, "source": source, "source_line": line, "text": text,
            "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(), "n_chars": len(text)}


def without_source(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k not in ("source", "sources")} for row in rows]


def lock_path(root: Path) -> Path:
    """Where the runner keeps the lock file of root/pipeline.yaml."""
    return Workspace(load_pipeline(root / "pipeline.yaml")).lock_path


# --- 1. corpus formats --------------------------------------------------------------------------------


def test_txt_and_md_folder_gives_one_document_per_file(tmp_path):
    write(tmp_path / "corpus/a.txt", "Marie Curie was a physicist.\n")
    write(tmp_path / "corpus/sub/b.md", "# Pierre\n\nPierre Curie was her husband.\n")
    write(tmp_path / "corpus/sub/deeper/c.txt", "  Leading and trailing space is kept.  ")
    write(tmp_path / "corpus/.hidden.txt", "hidden files are not documents")
    write(tmp_path / "corpus/.git/HEAD.txt", "nor is anything in hidden folders")

    result = run_ingest(tmp_path)

    assert result.ran == ["ingest"]
    assert table(result, "documents") == [
        doc("a", "corpus/a.txt", None, "Marie Curie was a physicist.\n"),
        doc("sub/b", "corpus/sub/b.md", None, "# Pierre\n\nPierre Curie was her husband.\n"),
        doc("sub/deeper/c", "corpus/sub/deeper/c.txt", None, "  Leading and trailing space is kept.  "),
    ]
    assert result.summaries["ingest"]["documents"] == 3
    corpus = report(result)["corpus"]
    assert (corpus["files"], corpus["hidden_files"], corpus["hidden_folders"]) == (3, 1, 1)


def test_single_txt_file_as_corpus_uses_its_stem(tmp_path):
    write(tmp_path / "data/notes.txt", "One file, one document.")

    result = run_ingest(tmp_path, corpus="data/notes.txt")

    assert table(result, "documents") == [doc("notes", "data/notes.txt", None, "One file, one document.")]
    assert report(result)["corpus"]["path"] == "data/notes.txt"


def test_jsonl_default_fields_and_line_numbers(tmp_path):
    write(tmp_path / "corpus/docs.jsonl",
          '{"id": "d1", "text": "First document."}\n'
          "\n"
          '{"text": "Third line.", "id": " d3 ", "extra": [1, 2]}\n'
          '{"id": 4, "text": "Numeric id."}\n')

    result = run_ingest(tmp_path)

    assert table(result, "documents") == [
        doc("d1", "corpus/docs.jsonl", 1, "First document."),
        doc("d3", "corpus/docs.jsonl", 3, "Third line."),
        doc("4", "corpus/docs.jsonl", 4, "Numeric id."),
    ]


def test_jsonl_configurable_id_and_text_fields(tmp_path):
    write(tmp_path / "corpus/docs.jsonl",
          '{"key": "k1", "body": "Body one.", "text": "not this"}\n'
          '{"key": "k2", "body": "Body two.", "id": "not this either"}\n')

    result = run_ingest(tmp_path, id_field="key", text_field="body")

    assert table(result, "documents") == [
        doc("k1", "corpus/docs.jsonl", 1, "Body one."),
        doc("k2", "corpus/docs.jsonl", 2, "Body two."),
    ]


def test_jsonl_without_id_field_numbers_documents_by_stem_and_line(tmp_path):
    write(tmp_path / "data.jsonl",
          '{"id": "ignored", "text": "Alpha."}\n\n{"text": "Gamma."}\n')

    result = run_ingest(tmp_path, corpus="data.jsonl", id_field=None)

    assert table(result, "documents") == [
        doc("data:1", "data.jsonl", 1, "Alpha."),
        doc("data:3", "data.jsonl", 3, "Gamma."),
    ]


def test_csv_default_columns_and_quoted_multiline_cells(tmp_path):
    write(tmp_path / "corpus/docs.csv",
          "id,text\n"
          'c1,"A cell over\ntwo lines, with a comma"\n'
          'c2,"She said ""hi""."\n'
          "\n"
          "c3,Plain text\n")

    result = run_ingest(tmp_path)

    assert table(result, "documents") == [
        doc("c1", "corpus/docs.csv", 2, "A cell over\ntwo lines, with a comma"),  # the line the record starts on
        doc("c2", "corpus/docs.csv", 4, 'She said "hi".'),
        doc("c3", "corpus/docs.csv", 6, "Plain text"),
    ]


def test_csv_configurable_columns_and_delimiter(tmp_path):
    write(tmp_path / "corpus/docs.csv",
          "lang;body;key\n"
          'en;"semi; colons; inside quotes";k1\n'
          "en;Second row;k2\n")

    result = run_ingest(tmp_path, id_field="key", text_field="body", csv_delimiter=";")

    assert table(result, "documents") == [
        doc("k1", "corpus/docs.csv", 2, "semi; colons; inside quotes"),
        doc("k2", "corpus/docs.csv", 3, "Second row"),
    ]


def test_csv_without_id_field_numbers_documents_by_line(tmp_path):
    write(tmp_path / "corpus/sub/rows.csv", "text\nfirst\nsecond\n")

    result = run_ingest(tmp_path, id_field=None)

    assert [(d["doc_id"], d["source_line"]) for d in table(result, "documents")] == [
        ("sub/rows:2", 2), ("sub/rows:3", 3)]


def test_parquet_corpus_with_configurable_columns(tmp_path):
    (tmp_path / "corpus").mkdir()
    pq.write_table(pa.table({"key": [10, 11, 12], "body": ["Row one.", None, "Row three."],
                             "other": ["x", "y", "z"]}), tmp_path / "corpus/table.parquet")

    result = run_ingest(tmp_path, id_field="key", text_field="body")

    assert table(result, "documents") == [
        doc("10", "corpus/table.parquet", 1, "Row one."),
        doc("12", "corpus/table.parquet", 3, "Row three."),
    ]
    [skipped] = report(result)["skipped"]
    assert skipped["source"] == "corpus/table.parquet"
    assert skipped["line"] == 2
    assert "'body'" in skipped["reason"]


def test_parquet_without_id_field_numbers_documents_by_row(tmp_path):
    pq.write_table(pa.table({"text": ["Alpha.", "Beta."]}), tmp_path / "table.parquet")

    result = run_ingest(tmp_path, corpus="table.parquet", id_field=None)

    assert table(result, "documents") == [
        doc("table:1", "table.parquet", 1, "Alpha."),
        doc("table:2", "table.parquet", 2, "Beta."),
    ]


def test_mixed_folder_reads_each_file_with_the_reader_for_its_suffix(tmp_path):
    write(tmp_path / "corpus/a.txt", "From text.")
    write(tmp_path / "corpus/b.jsonl", '{"id": "j", "text": "From jsonl."}\n')
    write(tmp_path / "corpus/c.csv", "id,text\nc,From csv.\n")
    pq.write_table(pa.table({"id": ["p"], "text": ["From parquet."]}), tmp_path / "corpus/d.parquet")

    result = run_ingest(tmp_path)

    assert [(d["doc_id"], d["source"], d["source_line"]) for d in table(result, "documents")] == [
        ("a", "corpus/a.txt", None), ("j", "corpus/b.jsonl", 1), ("c", "corpus/c.csv", 2),
        ("p", "corpus/d.parquet", 1)]
    assert report(result)["corpus"]["characters"] == sum(
        len(t) for t in ("From text.", "From jsonl.", "From csv.", "From parquet."))


# --- 2. Unicode ---------------------------------------------------------------------------------------


def test_nfd_text_comes_out_nfc_in_every_reader(tmp_path):
    nfd, nfc = "Zu\u0308rich", "Z\u00fcrich"
    write(tmp_path / "corpus/a.txt", f"{nfd} is a city.")
    write(tmp_path / "corpus/b.jsonl", json.dumps({"id": "j", "text": f"{nfd} (jsonl)"}) + "\n")
    write(tmp_path / "corpus/c.csv", f"id,text\nc,{nfd} (csv)\n")
    pq.write_table(pa.table({"id": ["p"], "text": [f"{nfd} (parquet)"]}), tmp_path / "corpus/d.parquet")

    docs = table(run_ingest(tmp_path), "documents")

    assert [d["text"] for d in docs] == [f"{nfc} is a city.", f"{nfc} (jsonl)", f"{nfc} (csv)", f"{nfc} (parquet)"]
    assert docs[0] == doc("a", "corpus/a.txt", None, f"{nfc} is a city.")  # sha256 and n_chars of the NFC text
    assert docs[0]["n_chars"] == 17


def test_utf8_bom_is_stripped(tmp_path):
    write(tmp_path / "corpus/a.txt", BOM + b"Text after a BOM.")
    write(tmp_path / "corpus/b.jsonl", BOM + b'{"id": "j", "text": "jsonl after a BOM"}\n')
    write(tmp_path / "corpus/c.csv", BOM + b"id,text\nc,csv after a BOM\n")  # else the column is '\ufeffid'

    result = run_ingest(tmp_path)

    assert [(d["doc_id"], d["text"]) for d in table(result, "documents")] == [
        ("a", "Text after a BOM."), ("j", "jsonl after a BOM"), ("c", "csv after a BOM")]
    assert report(result)["skipped"] == []


# --- 3. duplicates ------------------------------------------------------------------------------------


def test_duplicate_text_is_kept_once_and_reported(tmp_path):
    write(tmp_path / "corpus/a.txt", "Same text.")
    write(tmp_path / "corpus/b.md", "Same text.")
    write(tmp_path / "corpus/c.jsonl", '{"id": "c1", "text": "Same text."}\n{"id": "c2", "text": "Other."}\n')

    result = run_ingest(tmp_path)

    assert [d["doc_id"] for d in table(result, "documents")] == ["a", "c2"]
    rep = report(result)
    assert rep["duplicates"] == [
        {"doc_id": "b", "source": "corpus/b.md", "duplicate_of": "a"},
        {"doc_id": "c1", "source": "corpus/c.jsonl", "duplicate_of": "a"},
    ]
    assert rep["corpus"]["duplicates"] == result.summaries["ingest"]["duplicates"] == 2
    assert rep["skipped"] == []


def test_duplicate_text_after_nfc_is_a_duplicate(tmp_path):
    write(tmp_path / "corpus/a.txt", "Zu\u0308rich")
    write(tmp_path / "corpus/b.txt", "Z\u00fcrich")

    result = run_ingest(tmp_path)

    assert [d["doc_id"] for d in table(result, "documents")] == ["a"]
    assert report(result)["duplicates"] == [{"doc_id": "b", "source": "corpus/b.txt", "duplicate_of": "a"}]


def test_same_doc_id_with_different_text_is_skipped(tmp_path):
    write(tmp_path / "corpus/docs.jsonl", '{"id": "x", "text": "One."}\n{"id": "x", "text": "Two."}\n')
    write(tmp_path / "corpus/n.md", "Markdown n.")
    write(tmp_path / "corpus/n.txt", "Text n.")  # same doc_id 'n' from a different file

    result = run_ingest(tmp_path)

    assert [(d["doc_id"], d["text"]) for d in table(result, "documents")] == [("x", "One."), ("n", "Markdown n.")]
    first, second = report(result)["skipped"]
    assert first["source"] == "corpus/docs.jsonl" and first["line"] == 2
    assert "duplicate doc_id 'x'" in first["reason"] and "corpus/docs.jsonl" in first["reason"]
    assert second["source"] == "corpus/n.txt" and second["line"] is None
    assert "duplicate doc_id 'n'" in second["reason"] and "corpus/n.md" in second["reason"]
    assert report(result)["duplicates"] == []


# --- 4. bad input is skipped and reported -------------------------------------------------------------

GOOD = doc("good", "corpus/good.txt", None, "A good document.")

# name: (file under corpus/, its bytes, doc ids kept from that file, expected line, words in the reason)
BAD_INPUT = {
    "binary_txt": ("bin.txt", b"PK\x03\x04\x00\x00\x00binary", [], None, "binary file"),
    "binary_jsonl": ("bin.jsonl", b'{"id": "b", "text": "x"}\n\x00\x00\x00', [], None, "binary file"),
    "invalid_utf8_txt": ("latin1.txt", "line one\nline two\ncaf\xe9\n".encode("latin-1"), [], 3,
                         "invalid UTF-8"),
    "invalid_utf8_after_bom": ("bom.txt", BOM + b"line one\nline two\n\xe9t\xe9\n", [], 3, "at byte 21"),
    "invalid_utf8_jsonl_line": ("docs.jsonl", b'{"id": "j1", "text": "fine"}\n{"id": "j2", "text": "caf\xe9"}\n',
                                ["j1"], 2, "invalid UTF-8"),
    "invalid_utf8_csv": ("docs.csv", b"id,text\nc1,fine\nc2,caf\xe9\n", [], 3, "invalid UTF-8"),
    "empty_txt": ("empty.txt", b"", [], None, "empty file"),
    "whitespace_only_md": ("blank.md", b"  \n\t\n \n", [], None, "empty file"),
    "empty_jsonl": ("empty.jsonl", b"\n \n", [], None, "empty file"),
    "malformed_jsonl_line": ("docs.jsonl", b'{"id": "j1", "text": "fine"}\n\n{"id": "j3", "text": \n',
                             ["j1"], 3, "malformed JSON"),
    "jsonl_line_not_an_object": ("docs.jsonl", b'{"id": "j1", "text": "fine"}\n["a", "list"]\n',
                                 ["j1"], 2, "expected a JSON object, got list"),
    "jsonl_missing_text_field": ("docs.jsonl", b'{"id": "j1", "text": "fine"}\n{"id": "j2", "body": "x"}\n',
                                 ["j1"], 2, "no 'text' field (has: id, body)"),
    "jsonl_text_not_a_string": ("docs.jsonl", b'{"id": "j1", "text": "fine"}\n{"id": "j2", "text": 42}\n',
                                ["j1"], 2, "'text' is int"),
    "jsonl_missing_id_field": ("docs.jsonl", b'{"id": "j1", "text": "fine"}\n{"text": "no id"}\n',
                               ["j1"], 2, "no 'id' field"),
    "jsonl_empty_text": ("docs.jsonl", b'{"id": "j1", "text": "fine"}\n{"id": "j2", "text": "  "}\n',
                         ["j1"], 2, "empty 'text'"),
    "csv_missing_text_column": ("docs.csv", b"id,body\nc1,hello\n", [], 1, "no column 'text' (columns: id, body)"),
    "csv_row_with_too_many_cells": ("docs.csv", b"id,text\nc1,fine\nc2,too,many\nc3,also fine\n",
                                    ["c1", "c3"], 3, "3 cells but the header has 2"),
    "csv_malformed_quoting": ("docs.csv", b'id,text\nc1,fine\nc2,"bad"quote\nc3,lost\n',
                              ["c1"], 3, "malformed CSV"),
    "unsupported_suffix": ("paper.pdf", b"%PDF-1.4\n%...", [], None, "unsupported file type '.pdf'"),
    "unreadable_parquet": ("table.parquet", bytes(random.Random(0).randrange(256) for _ in range(512)), [], None,
                           "not a readable parquet file"),
    "parquet_missing_text_column": ("table.parquet", None, [], None, "no column 'text'"),
}


@pytest.mark.parametrize("case", BAD_INPUT.values(), ids=BAD_INPUT.keys())
def test_bad_input_is_skipped_and_reported(tmp_path, case):
    name, content, kept, line, reason = case
    write(tmp_path / "corpus/good.txt", GOOD["text"])
    if content is None:  # a valid parquet file without the text column
        (tmp_path / "corpus").mkdir(exist_ok=True)
        pq.write_table(pa.table({"id": ["p1"], "body": ["x"]}), tmp_path / "corpus" / name)
    else:
        write(tmp_path / "corpus" / name, content)

    result = run_ingest(tmp_path)

    assert result.ran == ["ingest"]
    docs = table(result, "documents")
    assert GOOD in docs
    assert sorted(d["doc_id"] for d in docs) == sorted(["good", *kept])
    rep = report(result)
    assert len(rep["skipped"]) == 1, rep["skipped"]
    [skipped] = rep["skipped"]
    assert skipped["source"] == f"corpus/{name}"
    assert skipped["line"] == line
    assert reason in skipped["reason"]
    assert rep["corpus"]["skipped"] == result.summaries["ingest"]["skipped"] == 1


def test_several_bad_files_are_all_reported_in_file_order(tmp_path):
    write(tmp_path / "corpus/a_bin.txt", b"\x00\x01")
    write(tmp_path / "corpus/b.jsonl", b'not json\n{"id": "ok", "text": "fine"}\n[]\n')
    write(tmp_path / "corpus/c.pdf", b"%PDF")

    result = run_ingest(tmp_path)

    assert [d["doc_id"] for d in table(result, "documents")] == ["ok"]
    assert [(s["source"], s["line"]) for s in report(result)["skipped"]] == [
        ("corpus/a_bin.txt", None), ("corpus/b.jsonl", 1), ("corpus/b.jsonl", 3), ("corpus/c.pdf", None)]


def test_format_param_forces_one_reader_for_every_file(tmp_path):
    write(tmp_path / "corpus/a.log", '{"id": "a", "text": "jsonl in a .log file"}\n')

    result = run_ingest(tmp_path, format="jsonl")

    assert table(result, "documents") == [doc("a", "corpus/a.log", 1, "jsonl in a .log file")]


# --- 5. strict mode -----------------------------------------------------------------------------------


def test_strict_mode_fails_on_a_bad_record_and_writes_nothing(tmp_path):
    write(tmp_path / "corpus/a.txt", "Fine.")
    write(tmp_path / "corpus/docs.jsonl", '{"id": "j1", "text": "fine"}\n{"id": "j2", "text": \n')

    with pytest.raises(InputError) as info:
        run_ingest(tmp_path, strict=True)

    err = info.value
    assert err.file == "corpus/docs.jsonl"
    assert err.line == 2
    assert "corpus/docs.jsonl:2:" in str(err) and "malformed JSON" in str(err)
    assert err.stage == "ingest"
    out_dir = tmp_path / "artifacts/ingest"
    assert not out_dir.exists() or list(out_dir.iterdir()) == []  # no outputs, no temporary leftovers
    lock = lock_path(tmp_path)
    assert not lock.exists() or "ingest" not in json.loads(lock.read_text())["stages"]


def test_strict_mode_fails_on_a_duplicate_doc_id(tmp_path):
    write(tmp_path / "corpus/docs.csv", "id,text\nx,One\nx,Two\n")

    with pytest.raises(InputError) as info:
        run_ingest(tmp_path, strict=True)

    assert info.value.line == 3
    assert "corpus/docs.csv:3:" in str(info.value) and "duplicate doc_id 'x'" in str(info.value)


def test_strict_failure_leaves_earlier_outputs_and_lock_entry_untouched(tmp_path):
    write(tmp_path / "corpus/a.txt", "Fine.")
    first = run_ingest(tmp_path)
    before = {name: path.read_bytes() for name, path in first.outputs["ingest"].items()}
    lock_before = lock_path(tmp_path).read_text()
    write(tmp_path / "corpus/b.txt", b"bad \xff byte")

    with pytest.raises(InputError, match=r"corpus/b\.txt:1: invalid UTF-8"):
        run_ingest(tmp_path, strict=True)

    assert {name: path.read_bytes() for name, path in first.outputs["ingest"].items()} == before
    assert lock_path(tmp_path).read_text() == lock_before


def test_strict_mode_does_not_reject_plain_duplicates(tmp_path):
    write(tmp_path / "corpus/a.txt", "Same.")
    write(tmp_path / "corpus/b.txt", "Same.")

    result = run_ingest(tmp_path, strict=True)

    assert [d["doc_id"] for d in table(result, "documents")] == ["a"]
    assert len(report(result)["duplicates"]) == 1


# --- 6. nothing readable ------------------------------------------------------------------------------


def test_corpus_with_nothing_readable_fails(tmp_path):
    write(tmp_path / "corpus/empty.txt", b"")
    write(tmp_path / "corpus/bin.txt", b"\x00\x00")

    with pytest.raises(InputError, match="no readable documents") as info:
        run_ingest(tmp_path)

    assert info.value.file == "corpus"
    assert "2 file(s), 2 skipped" in str(info.value)
    assert "corpus/bin.txt" in str(info.value)  # the first problem is named
    assert not (tmp_path / "artifacts/ingest/documents.parquet").exists()
    assert not lock_path(tmp_path).exists()


def test_empty_corpus_folder_fails(tmp_path):
    (tmp_path / "corpus").mkdir()

    with pytest.raises(InputError, match=r"no readable documents in the corpus \(0 file\(s\), 0 skipped\)"):
        run_ingest(tmp_path)


def test_wrong_text_field_makes_a_jsonl_corpus_unreadable(tmp_path):
    write(tmp_path / "corpus/docs.jsonl", '{"id": "a", "body": "x"}\n')

    with pytest.raises(InputError, match="no 'text' field"):
        run_ingest(tmp_path)


# --- 7. seed KGs in RDF -------------------------------------------------------------------------------

# One small graph in four syntaxes. Marie Curie has an English and a French rdfs:label, two altLabels (one
# French), a type, a typed literal, two entity relations and a blank node; Pierre Curie is named by
# skos:prefLabel, Physics by schema:name; the Nobel prize has no label (local name fallback); ex:Person
# is a class (rdf:type object) with a schema statement about it.

TURTLE = """\
@prefix ex: <http://ex.org/> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
@prefix skos: <http://www.w3.org/2004/02/skos/core#> .
@prefix schema: <http://schema.org/> .
@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .

ex:Marie_Curie a ex:Person ;
    rdfs:label "Marie Curie"@en , "Marie Curie FR"@fr ;
    skos:altLabel "Maria Sklodowska" , "Madame Curie"@fr ;
    ex:born "1867-11-07"^^xsd:date ;
    ex:spouse ex:Pierre_Curie ;
    ex:field ex:Physics ;
    ex:note [ ex:text "anonymous" ] .
ex:Pierre_Curie a ex:Person ; skos:prefLabel "Pierre Curie" .
ex:Physics schema:name "physics" .
ex:Nobel_Prize_in_Physics ex:awardedTo ex:Marie_Curie .
ex:Person rdfs:subClassOf ex:Agent .
"""

NTRIPLES = """\
<http://ex.org/Marie_Curie> <http://www.w3.org/1999/02/22-rdf-syntax-ns#type> <http://ex.org/Person> .
<http://ex.org/Marie_Curie> <http://www.w3.org/2000/01/rdf-schema#label> "Marie Curie"@en .
<http://ex.org/Marie_Curie> <http://www.w3.org/2000/01/rdf-schema#label> "Marie Curie FR"@fr .
<http://ex.org/Marie_Curie> <http://www.w3.org/2004/02/skos/core#altLabel> "Maria Sklodowska" .
<http://ex.org/Marie_Curie> <http://www.w3.org/2004/02/skos/core#altLabel> "Madame Curie"@fr .
<http://ex.org/Marie_Curie> <http://ex.org/born> "1867-11-07"^^<http://www.w3.org/2001/XMLSchema#date> .
<http://ex.org/Marie_Curie> <http://ex.org/spouse> <http://ex.org/Pierre_Curie> .
<http://ex.org/Marie_Curie> <http://ex.org/field> <http://ex.org/Physics> .
<http://ex.org/Marie_Curie> <http://ex.org/note> _:n1 .
_:n1 <http://ex.org/text> "anonymous" .
# a comment line
<http://ex.org/Pierre_Curie> <http://www.w3.org/1999/02/22-rdf-syntax-ns#type> <http://ex.org/Person> .
<http://ex.org/Pierre_Curie> <http://www.w3.org/2004/02/skos/core#prefLabel> "Pierre Curie" .
<http://ex.org/Physics> <http://schema.org/name> "physics" .
<http://ex.org/Nobel_Prize_in_Physics> <http://ex.org/awardedTo> <http://ex.org/Marie_Curie> .
<http://ex.org/Person> <http://www.w3.org/2000/01/rdf-schema#subClassOf> <http://ex.org/Agent> .
"""

RDFXML = """\
<?xml version="1.0" encoding="utf-8"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"
         xmlns:rdfs="http://www.w3.org/2000/01/rdf-schema#"
         xmlns:skos="http://www.w3.org/2004/02/skos/core#"
         xmlns:schema="http://schema.org/"
         xmlns:ex="http://ex.org/">
  <ex:Person rdf:about="http://ex.org/Marie_Curie">
    <rdfs:label xml:lang="en">Marie Curie</rdfs:label>
    <rdfs:label xml:lang="fr">Marie Curie FR</rdfs:label>
    <skos:altLabel>Maria Sklodowska</skos:altLabel>
    <skos:altLabel xml:lang="fr">Madame Curie</skos:altLabel>
    <ex:born rdf:datatype="http://www.w3.org/2001/XMLSchema#date">1867-11-07</ex:born>
    <ex:spouse rdf:resource="http://ex.org/Pierre_Curie"/>
    <ex:field rdf:resource="http://ex.org/Physics"/>
    <ex:note rdf:parseType="Resource"><ex:text>anonymous</ex:text></ex:note>
  </ex:Person>
  <ex:Person rdf:about="http://ex.org/Pierre_Curie">
    <skos:prefLabel>Pierre Curie</skos:prefLabel>
  </ex:Person>
  <rdf:Description rdf:about="http://ex.org/Physics"><schema:name>physics</schema:name></rdf:Description>
  <rdf:Description rdf:about="http://ex.org/Nobel_Prize_in_Physics">
    <ex:awardedTo rdf:resource="http://ex.org/Marie_Curie"/>
  </rdf:Description>
  <rdf:Description rdf:about="http://ex.org/Person">
    <rdfs:subClassOf rdf:resource="http://ex.org/Agent"/>
  </rdf:Description>
</rdf:RDF>
"""

JSONLD = json.dumps({
    "@context": {"ex": EX, "rdfs": "http://www.w3.org/2000/01/rdf-schema#", "skos": SKOS,
                 "schema": "http://schema.org/", "xsd": XSD},
    "@graph": [
        {"@id": "ex:Marie_Curie", "@type": "ex:Person",
         "rdfs:label": [{"@value": "Marie Curie", "@language": "en"},
                        {"@value": "Marie Curie FR", "@language": "fr"}],
         "skos:altLabel": ["Maria Sklodowska", {"@value": "Madame Curie", "@language": "fr"}],
         "ex:born": {"@value": "1867-11-07", "@type": "xsd:date"},
         "ex:spouse": {"@id": "ex:Pierre_Curie"},
         "ex:field": {"@id": "ex:Physics"},
         "ex:note": {"ex:text": "anonymous"}},
        {"@id": "ex:Pierre_Curie", "@type": "ex:Person", "skos:prefLabel": "Pierre Curie"},
        {"@id": "ex:Physics", "schema:name": "physics"},
        {"@id": "ex:Nobel_Prize_in_Physics", "ex:awardedTo": {"@id": "ex:Marie_Curie"}},
        {"@id": "ex:Person", "rdfs:subClassOf": {"@id": "ex:Agent"}},
    ],
}, indent=2)

RDF_GRAPHS = {"turtle": ("graph.ttl", TURTLE), "nt": ("graph.nt", NTRIPLES), "xml": ("graph.rdf", RDFXML),
              "json-ld": ("graph.jsonld", JSONLD)}

EXPECTED_ENTITIES = [
    {"iri": EX + "Marie_Curie", "label": "Marie Curie", "aliases": ["Maria Sklodowska"],
     "types": [EX + "Person"]},
    {"iri": EX + "Nobel_Prize_in_Physics", "label": "Nobel Prize in Physics", "aliases": [], "types": []},
    {"iri": EX + "Physics", "label": "physics", "aliases": [], "types": []},
    {"iri": EX + "Pierre_Curie", "label": "Pierre Curie", "aliases": [], "types": [EX + "Person"]},
]
EXPECTED_TRIPLES = [
    {"head": EX + "Marie_Curie", "relation": EX + "field", "tail": EX + "Physics"},
    {"head": EX + "Marie_Curie", "relation": EX + "spouse", "tail": EX + "Pierre_Curie"},
    {"head": EX + "Nobel_Prize_in_Physics", "relation": EX + "awardedTo", "tail": EX + "Marie_Curie"},
]


def _attr(entity: str, prop: str, value: str, datatype: str | None = None, lang: str | None = None) -> dict:
    return {"entity": EX + entity, "property": prop, "value": value, "datatype": datatype, "lang": lang}


EXPECTED_ATTRIBUTES = [
    _attr("Marie_Curie", EX + "born", "1867-11-07", datatype=XSD + "date"),
    _attr("Marie_Curie", RDFS_LABEL, "Marie Curie", lang="en"),
    _attr("Marie_Curie", RDFS_LABEL, "Marie Curie FR", lang="fr"),
    _attr("Marie_Curie", SKOS + "altLabel", "Madame Curie", lang="fr"),
    _attr("Marie_Curie", SKOS + "altLabel", "Maria Sklodowska"),
    _attr("Physics", "http://schema.org/name", "physics"),
    _attr("Pierre_Curie", SKOS + "prefLabel", "Pierre Curie"),
]


@pytest.fixture
def ingest_turtle_graph(tmp_path) -> RunResult:
    """The ingest stage run on the example graph as Turtle (seeds/graph.ttl)."""
    write(tmp_path / "seeds/graph.ttl", TURTLE)
    return run_ingest(tmp_path, seeds=["seeds/graph.ttl"])


@pytest.mark.parametrize("fmt", RDF_GRAPHS)
def test_rdf_syntaxes_give_the_same_rows(tmp_path, fmt):
    name, text = RDF_GRAPHS[fmt]
    write(tmp_path / "seeds" / name, text)

    result = run_ingest(tmp_path, seeds=[f"seeds/{name}"])

    entities = table(result, "seed_entities")
    triples = table(result, "seed_triples")
    attributes = table(result, "seed_attributes")
    assert without_source(entities) == EXPECTED_ENTITIES
    assert without_source(triples) == EXPECTED_TRIPLES
    assert without_source(attributes) == EXPECTED_ATTRIBUTES
    assert {s for e in entities for s in e["sources"]} == {f"seeds/{name}"}
    assert {row["source"] for row in triples + attributes} == {f"seeds/{name}"}
    [stats] = report(result)["seeds"]
    assert stats == {"source": f"seeds/{name}", "format": fmt, "statements_read": 15, "entities": 4,
                     "triples": 3, "relations": 3, "attributes": 7, "blank_node_statements_skipped": 2,
                     "schema_statements_skipped": 1, "triples_skipped": 0}
    assert report(result)["seed_skipped"] == []


def test_label_comes_from_label_properties_with_local_name_fallback(ingest_turtle_graph):
    labels = {e["iri"]: e["label"] for e in table(ingest_turtle_graph, "seed_entities")}

    assert labels[EX + "Marie_Curie"] == "Marie Curie"  # rdfs:label
    assert labels[EX + "Pierre_Curie"] == "Pierre Curie"  # skos:prefLabel
    assert labels[EX + "Physics"] == "physics"  # schema:name
    assert labels[EX + "Nobel_Prize_in_Physics"] == "Nobel Prize in Physics"  # local name, _ -> space


def test_label_in_another_language_is_neither_label_nor_alias(ingest_turtle_graph):
    [marie] = [e for e in table(ingest_turtle_graph, "seed_entities") if e["iri"] == EX + "Marie_Curie"]

    assert marie["label"] == "Marie Curie"
    assert marie["aliases"] == ["Maria Sklodowska"]  # skos:altLabel; the @fr label and @fr altLabel are not
    all_names = {n for e in table(ingest_turtle_graph, "seed_entities") for n in [e["label"], *e["aliases"]]}
    assert not all_names & {"Marie Curie FR", "Madame Curie"}


def test_languages_param_selects_the_label_language(tmp_path):
    write(tmp_path / "seeds/graph.ttl", TURTLE)

    result = run_ingest(tmp_path, seeds=["seeds/graph.ttl"], languages=["fr"])

    [marie] = [e for e in table(result, "seed_entities") if e["iri"] == EX + "Marie_Curie"]
    assert marie["label"] == "Marie Curie FR"
    assert marie["aliases"] == ["Madame Curie", "Maria Sklodowska"]  # untagged names are always accepted


def test_label_priority_follows_label_properties_then_language_tag(tmp_path):
    write(tmp_path / "seeds/g.ttl", """\
@prefix ex: <http://ex.org/> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
@prefix skos: <http://www.w3.org/2004/02/skos/core#> .
@prefix schema: <http://schema.org/> .
ex:a schema:name "Name A" ; skos:prefLabel "Pref A" ; rdfs:label "Label A" .
ex:b schema:name "Name B" ; skos:prefLabel "Pref B" .
ex:c rdfs:label "untagged C" , "tagged C"@en-GB .
""")

    entities = {e["iri"]: e for e in table(run_ingest(tmp_path, seeds=["seeds/g.ttl"]), "seed_entities")}

    assert (entities[EX + "a"]["label"], entities[EX + "a"]["aliases"]) == ("Label A", ["Name A", "Pref A"])
    assert (entities[EX + "b"]["label"], entities[EX + "b"]["aliases"]) == ("Pref B", ["Name B"])
    assert (entities[EX + "c"]["label"], entities[EX + "c"]["aliases"]) == ("tagged C", ["untagged C"])


def test_types_come_from_rdf_type_and_classes_are_not_entities(ingest_turtle_graph):
    entities = table(ingest_turtle_graph, "seed_entities")

    assert {e["iri"]: e["types"] for e in entities}[EX + "Marie_Curie"] == [EX + "Person"]
    iris = {e["iri"] for e in entities}
    assert EX + "Person" not in iris  # an rdf:type object
    assert EX + "Agent" not in iris  # only named by a schema statement
    triples = table(ingest_turtle_graph, "seed_triples")
    assert not [t for t in triples if t["relation"] in (RDF_TYPE, "http://www.w3.org/2000/01/rdf-schema#subClassOf")]


def test_literals_are_attributes_never_entities(ingest_turtle_graph):
    entities = table(ingest_turtle_graph, "seed_entities")
    attributes = table(ingest_turtle_graph, "seed_attributes")

    literal_values = {a["value"] for a in attributes}
    assert {e["iri"] for e in entities}.isdisjoint(literal_values)
    assert {t["tail"] for t in table(ingest_turtle_graph, "seed_triples")}.isdisjoint(literal_values)
    [born] = [a for a in attributes if a["property"] == EX + "born"]
    assert (born["value"], born["datatype"], born["lang"]) == ("1867-11-07", XSD + "date", None)
    assert all(a["entity"].startswith(EX) for a in attributes)


def test_subject_with_only_literal_attributes_is_an_entity(tmp_path):
    write(tmp_path / "seeds/g.ttl", """\
@prefix ex: <http://ex.org/> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
ex:Warsaw ex:population 1800000 .
ex:Paris rdfs:label "Paris (fr)"@fr .
""")

    result = run_ingest(tmp_path, seeds=["seeds/g.ttl"])

    attributes = table(result, "seed_attributes")
    assert [(a["entity"], a["value"], a["datatype"]) for a in attributes] == [
        (EX + "Paris", "Paris (fr)", None), (EX + "Warsaw", "1800000", XSD + "integer")]
    entities = table(result, "seed_entities")
    assert [(e["iri"], e["label"], e["aliases"]) for e in entities] == [
        (EX + "Paris", "Paris", []), (EX + "Warsaw", "Warsaw", [])]
    assert {a["entity"] for a in attributes} <= {e["iri"] for e in entities}


def test_schema_statements_and_blank_nodes_are_skipped_and_counted(tmp_path):
    write(tmp_path / "seeds/g.ttl", """\
@prefix ex: <http://ex.org/> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
@prefix owl: <http://www.w3.org/2002/07/owl#> .
ex:knows a owl:ObjectProperty ; rdfs:label "knows" ; rdfs:domain ex:Person .
ex:Person a owl:Class ; rdfs:label "Person" .
ex:Student rdfs:subClassOf ex:Person .
ex:alice a ex:Student ; ex:knows ex:bob ; ex:address [ ex:city "Paris" ] .
""")

    result = run_ingest(tmp_path, seeds=["seeds/g.ttl"])

    assert [(e["iri"], e["types"]) for e in table(result, "seed_entities")] == [
        (EX + "alice", [EX + "Student"]), (EX + "bob", [])]
    assert without_source(table(result, "seed_triples")) == [
        {"head": EX + "alice", "relation": EX + "knows", "tail": EX + "bob"}]
    assert table(result, "seed_attributes") == []
    [stats] = report(result)["seeds"]
    assert stats["statements_read"] == 10
    assert stats["schema_statements_skipped"] == 6
    assert stats["blank_node_statements_skipped"] == 2
    assert result.summaries["ingest"]["seed_entities"] == 2


def test_no_seeds_gives_empty_seed_tables(tmp_path):
    result = run_ingest(tmp_path)

    for name in ("seed_entities", "seed_triples", "seed_attributes"):
        assert table(result, name) == []
    assert report(result)["seeds"] == []


# --- 8. TSV seeds -------------------------------------------------------------------------------------


def test_tsv_seed_names_become_iris_and_comments_are_ignored(tmp_path):
    write(tmp_path / "seeds/kg.tsv",
          "# head\trelation\ttail\n"
          "\n"
          "Marie Curie\tspouse\tPierre Curie\n"
          "<http://ex.org/Marie_Curie>\t<http://ex.org/field>\tPhysics\n"
          "   \n")

    result = run_ingest(tmp_path, seeds=["seeds/kg.tsv"])

    assert without_source(table(result, "seed_triples")) == [
        {"head": EX + "Marie_Curie", "relation": EX + "field", "tail": TSV_NS + "Physics"},
        {"head": TSV_NS + "Marie_Curie", "relation": TSV_NS + "spouse", "tail": TSV_NS + "Pierre_Curie"},
    ]
    assert [(e["iri"], e["label"], e["sources"]) for e in table(result, "seed_entities")] == [
        (EX + "Marie_Curie", "Marie Curie", ["seeds/kg.tsv"]),
        (TSV_NS + "Marie_Curie", "Marie Curie", ["seeds/kg.tsv"]),
        (TSV_NS + "Physics", "Physics", ["seeds/kg.tsv"]),
        (TSV_NS + "Pierre_Curie", "Pierre Curie", ["seeds/kg.tsv"]),
    ]
    assert report(result)["seeds"][0]["statements_read"] == 2


def test_tsv_namespace_param(tmp_path):
    write(tmp_path / "seeds/kg.tsv", "Ada Lovelace\tworked with\tCharles Babbage\n")

    result = run_ingest(tmp_path, seeds=["seeds/kg.tsv"], tsv_namespace="urn:kg:")

    assert without_source(table(result, "seed_triples")) == [
        {"head": "urn:kg:Ada_Lovelace", "relation": "urn:kg:worked_with", "tail": "urn:kg:Charles_Babbage"}]
    assert [e["label"] for e in table(result, "seed_entities")] == ["Ada Lovelace", "Charles Babbage"]


def test_tsv_line_with_two_columns_fails_naming_file_and_line(tmp_path):
    write(tmp_path / "seeds/bad.tsv", "# comment\na\tr\tb\nonly\ttwo\nc\tr\td\n")

    with pytest.raises(InputError) as info:
        run_ingest(tmp_path, seeds=["seeds/bad.tsv"])

    assert info.value.file == "seeds/bad.tsv"
    assert info.value.line == 3
    assert "seeds/bad.tsv:3:" in str(info.value) and "found 2" in str(info.value)
    assert not (tmp_path / "artifacts/ingest/seed_triples.parquet").exists()


def test_tsv_invalid_utf8_after_bom_names_the_right_line(tmp_path):
    write(tmp_path / "seeds/bad.tsv", BOM + b"a\tr\tb\n\xe9t\xe9\tr\tc\n")

    with pytest.raises(InputError, match="invalid UTF-8") as info:
        run_ingest(tmp_path, seeds=["seeds/bad.tsv"])

    assert (info.value.file, info.value.line) == ("seeds/bad.tsv", 2)


def test_seed_file_with_an_unknown_suffix_fails_naming_it(tmp_path):
    write(tmp_path / "seeds/kg.csv", "a,r,b\n")

    with pytest.raises(InputError, match="cannot tell the format") as info:
        run_ingest(tmp_path, seeds=["seeds/kg.csv"])

    assert info.value.file == "seeds/kg.csv"
    assert str(info.value).startswith("seeds/kg.csv: ")


def test_seed_format_param_overrides_the_suffix(tmp_path):
    write(tmp_path / "seeds/kg.txt", "<http://ex.org/a> <http://ex.org/r> <http://ex.org/b> .\n")

    result = run_ingest(tmp_path, seeds=["seeds/kg.txt"], seed_format="nt")

    assert without_source(table(result, "seed_triples")) == [
        {"head": EX + "a", "relation": EX + "r", "tail": EX + "b"}]
    assert report(result)["seeds"][0]["format"] == "nt"


# --- 9. RDF syntax errors -----------------------------------------------------------------------------

def replace_line(text: str, number: int, line: str) -> str:
    """text with its line `number` (1-based) replaced."""
    lines = text.splitlines()
    lines[number - 1] = line
    return "\n".join(lines) + "\n"


BROKEN_RDF = {  # name: (file name, text, the broken line's number)
    "turtle": ("broken.ttl", replace_line(TURTLE, 6, 'ex:a ex:b "unterminated .'), 6),
    "turtle_unbound_prefix": ("broken.ttl", replace_line(TURTLE, 12, "    nope:field ex:Physics ;"), 12),
    "nt": ("broken.nt", replace_line(NTRIPLES, 6, "<http://ex.org/a> <http://ex.org/b> ."), 6),
    "xml": ("broken.rdf", replace_line(RDFXML, 8, '    <rdfs:label xml:lang="en">Marie Curie</rdfs:labl>'), 8),
    "xml_rdf_grammar": ("broken.rdf", replace_line(
        RDFXML, 7, '  <ex:Person rdf:about="http://ex.org/Marie_Curie" rdf:resource="http://ex.org/x">'), 7),
    "json-ld": ("broken.jsonld", replace_line(JSONLD, 6, '    "oops": tru,'), 6),
}


@pytest.mark.parametrize("case", BROKEN_RDF.values(), ids=BROKEN_RDF.keys())
def test_rdf_syntax_error_names_file_and_line(tmp_path, case):
    name, text, line = case
    write(tmp_path / "seeds" / name, text)

    with pytest.raises(InputError) as info:
        run_ingest(tmp_path, seeds=[f"seeds/{name}"])

    err = info.value
    assert err.file == f"seeds/{name}"
    assert err.line == line, str(err)
    assert f"seeds/{name}:{line}:" in str(err)
    assert str(tmp_path) not in str(err)  # relative paths only
    assert not (tmp_path / "artifacts/ingest").exists() or not list((tmp_path / "artifacts/ingest").iterdir())


# --- 10. several seed files ---------------------------------------------------------------------------


def test_seed_files_mentioning_the_same_iri_are_merged(tmp_path):
    write(tmp_path / "seeds/a.ttl", """\
@prefix ex: <http://ex.org/> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
@prefix skos: <http://www.w3.org/2004/02/skos/core#> .
ex:Marie_Curie rdfs:label "Marie Curie" ; skos:altLabel "Maria Sklodowska" ; a ex:Physicist ;
    ex:spouse ex:Pierre_Curie .
""")
    write(tmp_path / "seeds/b.nt", """\
<http://ex.org/Marie_Curie> <http://www.w3.org/2000/01/rdf-schema#label> "M. Curie" .
<http://ex.org/Marie_Curie> <http://www.w3.org/2004/02/skos/core#altLabel> "Maria Sklodowska" .
<http://ex.org/Marie_Curie> <http://www.w3.org/2004/02/skos/core#altLabel> "Madame Curie" .
<http://ex.org/Marie_Curie> <http://www.w3.org/1999/02/22-rdf-syntax-ns#type> <http://ex.org/Chemist> .
<http://ex.org/Marie_Curie> <http://ex.org/spouse> <http://ex.org/Pierre_Curie> .
""")
    write(tmp_path / "seeds/c.tsv",
          "<http://ex.org/Marie_Curie>\t<http://ex.org/spouse>\t<http://ex.org/Pierre_Curie>\n")

    result = run_ingest(tmp_path, seeds=["seeds/a.ttl", "seeds/b.nt", "seeds/c.tsv"])

    entities = table(result, "seed_entities")
    assert entities == [
        {"iri": EX + "Marie_Curie", "label": "Marie Curie",  # the first file's label wins
         "aliases": ["M. Curie", "Madame Curie", "Maria Sklodowska"], "types": [EX + "Chemist", EX + "Physicist"],
         "sources": ["seeds/a.ttl", "seeds/b.nt", "seeds/c.tsv"]},
        {"iri": EX + "Pierre_Curie", "label": "Pierre Curie", "aliases": [], "types": [],
         "sources": ["seeds/a.ttl", "seeds/b.nt", "seeds/c.tsv"]},
    ]
    assert table(result, "seed_triples") == [
        {"head": EX + "Marie_Curie", "relation": EX + "spouse", "tail": EX + "Pierre_Curie", "source": src}
        for src in ("seeds/a.ttl", "seeds/b.nt", "seeds/c.tsv")]
    alt = [a for a in table(result, "seed_attributes") if a["value"] == "Maria Sklodowska"]
    assert [a["source"] for a in alt] == ["seeds/a.ttl", "seeds/b.nt"]
    assert [s["source"] for s in report(result)["seeds"]] == ["seeds/a.ttl", "seeds/b.nt", "seeds/c.tsv"]


def test_seed_order_decides_which_label_wins(tmp_path):
    write(tmp_path / "seeds/a.nt", '<http://ex.org/x> <http://www.w3.org/2000/01/rdf-schema#label> "From A" .\n')
    write(tmp_path / "seeds/b.nt", '<http://ex.org/x> <http://www.w3.org/2000/01/rdf-schema#label> "From B" .\n')

    [entity] = table(run_ingest(tmp_path, seeds=["seeds/b.nt", "seeds/a.nt"]), "seed_entities")

    assert (entity["label"], entity["aliases"], entity["sources"]) == ("From B", ["From A"],
                                                                      ["seeds/b.nt", "seeds/a.nt"])


# --- 11. determinism ----------------------------------------------------------------------------------


def _deterministic_inputs(root: Path) -> list[str]:
    write(root / "corpus/a.txt", "Zu\u0308rich and Marie Curie.")
    write(root / "corpus/b.jsonl", '{"id": "j1", "text": "One."}\n{"id": "j2", "text": "One."}\nbad\n')
    write(root / "corpus/c.csv", 'id,text\nc1,"multi\nline"\n')
    for name, text in RDF_GRAPHS.values():
        write(root / "seeds" / name, text)
    write(root / "seeds/kg.tsv", "Marie Curie\tspouse\tPierre Curie\n<http://ex.org/Physics>\tpart of\tScience\n")
    return [f"seeds/{name}" for name, _ in RDF_GRAPHS.values()] + ["seeds/kg.tsv"]


def _output_bytes(result: RunResult) -> dict[str, bytes]:
    return {name: result.outputs["ingest"][name].read_bytes() for name in (*PARQUET_OUTPUTS, "report")}


def test_running_twice_gives_byte_identical_outputs(tmp_path):
    seeds = _deterministic_inputs(tmp_path)
    first = run_ingest(tmp_path, seeds=seeds)
    before = _output_bytes(first)

    again = run_ingest(tmp_path, seeds=seeds, force=True)

    assert again.ran == ["ingest"]
    assert _output_bytes(again) == before
    assert run_ingest(tmp_path, seeds=seeds).skipped == ["ingest"]  # and without force it is up to date


def test_outputs_do_not_depend_on_the_hash_seed(tmp_path):
    seeds = _deterministic_inputs(tmp_path)
    pipeline = write_pipeline(tmp_path, seeds=seeds)
    outputs = []
    for hash_seed in ("1", "2"):
        subprocess.run([sys.executable, "-c", "import sys; from kgpipe.runner import run; run(sys.argv[1], force=True)",
                        str(pipeline)], check=True, env={**os.environ, "PYTHONHASHSEED": hash_seed})
        outputs.append({name: (tmp_path / "artifacts/ingest" / f"{name}.parquet").read_bytes()
                        for name in PARQUET_OUTPUTS})
    assert outputs[0] == outputs[1]


def test_regional_language_tags(tmp_path):
    write(tmp_path / "seeds/g.ttl", """\
@prefix ex: <http://ex.org/> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
ex:a rdfs:label "Colour theory"@en-GB , "Color theory"@en-US .
""")

    def label(languages):
        [entity] = table(run_ingest(tmp_path, seeds=["seeds/g.ttl"], force=True, languages=languages),
                         "seed_entities")
        return entity["label"], entity["aliases"]

    assert label(["en-GB"]) == ("Colour theory", [])          # exactly the region asked for
    assert label(["en-US"]) == ("Color theory", [])
    assert label(["en"])[1] in (["Color theory"], ["Colour theory"])  # a bare language accepts every region


def test_seed_kgs_alone_need_no_corpus(tmp_path):
    write(tmp_path / "kg.tsv", "Ada_Lovelace\tknows\tCharles_Babbage\n")
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump({"stages": {"ingest": {"type": "ingest", "deps": {"seeds": ["kg.tsv"]}}}}))
    result = run(path)
    assert table(result, "documents") == []
    assert len(table(result, "seed_triples")) == 1
    assert report(result)["corpus"]["path"] is None
    path.write_text(yaml.safe_dump({"stages": {"ingest": {"type": "ingest"}}}))
    with pytest.raises(InputError, match="nothing to ingest"):
        run(path)
