"""Hostile text in outputs and on the terminal: every writer gives a file its users' library reads back, and
commands print data with control characters escaped and rich markup left alone.

The policy is kgpipe/export/safe_text.py (README, "Export"): each test reads the file with the library a user
would use (rdflib, networkx, pandas, gensim, numpy, safetensors) and checks what came back.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from kgpipe.cli import app
from kgpipe.export.embeddings import Embeddings
from tests.hostile.cases import Case, assert_clear_error, assert_untouched, hostile, parametrize, snapshot

runner = CliRunner()
ESC = "\x1b"


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def tables(labels: list[str], ids: list[str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A fused graph of len(labels) entities in a chain (entity i -> i + 1), as fuse writes it."""
    ids = ids or [f"http://kgpipe.org/e/{i}" for i in range(len(labels))]
    # object columns: pandas' default string dtype (arrow) refuses lone surrogates, a caller's lists may not
    entities = pd.DataFrame({"id": pd.Series(ids, dtype=object), "label": pd.Series(labels, dtype=object),
                             "type": ["http://schema.org/Person"] * len(ids),
                             "aliases": [[label] for label in labels], "seed_iri": [None] * len(ids),
                             "mention_count": [1] * len(ids), "sources": [["extract"]] * len(ids)})
    triples = pd.DataFrame({"head": ids[:-1], "relation": ["http://kgpipe.org/r/knows"] * (len(ids) - 1),
                            "tail": ids[1:], "count": [1] * (len(ids) - 1), "sources": [["extract"]] * (len(ids) - 1),
                            "confidence": [0.5] * (len(ids) - 1)})
    return entities, triples


def graphml_labels(labels: list[str], tmp_path: Path, ids: list[str] | None = None) -> dict[str, str]:
    import networkx as nx

    from kgpipe.kg.graph_files import write_graphml

    path = tmp_path / "graph.graphml"
    write_graphml(*tables(labels, ids), path)
    graph = nx.read_graphml(path)   # raises on malformed XML
    return {node: data["label"] for node, data in graph.nodes(data=True)}


@parametrize(
    Case("output-graphml-c0-controls", "output",
         "labels with NUL, vertical tab, ESC sequences and BEL in graph.graphml",
         "handled"),
    Case("output-graphml-noncharacters", "output", "labels with U+FFFE and U+FFFF (not XML characters) in GraphML",
         "handled"),
    Case("output-graphml-lone-surrogate", "output",
         "a label with a lone surrogate (no UTF-8 file holds one) in GraphML",
         "handled"),
)
def test_graphml_holds_any_label(case: Case, tmp_path: Path) -> None:
    hostile_label = {"output-graphml-c0-controls": f"a\x00b\x0bc{ESC}[31mred\x07",
                     "output-graphml-noncharacters": "x\ufffey\uffffz",
                     "output-graphml-lone-surrogate": "Ma\ud800rie"}[case.id]
    wanted = {"output-graphml-c0-controls": "a\ufffdb\ufffdc\ufffd[31mred\ufffd",
              "output-graphml-noncharacters": "x\ufffdy\ufffdz",
              "output-graphml-lone-surrogate": "Ma\ufffdrie"}[case.id]
    labels = graphml_labels([hostile_label, "tab\tnew\nline\r\n & <b>"], tmp_path)
    assert labels["http://kgpipe.org/e/0"] == wanted
    assert labels["http://kgpipe.org/e/1"] == "tab\tnew\nline\r\n & <b>"   # legal characters kept exactly


@hostile("output-ids-not-iris", area="output", what="entity ids with spaces, <>, quotes and NUL (not IRIs) in "
         "Turtle, N-Triples, GraphML and Neo4j CSV", outcome="handled")
def test_unsafe_ids_are_percent_encoded_alike_in_every_graph_format(tmp_path: Path) -> None:
    import networkx as nx
    import rdflib

    from kgpipe.export.graph import GRAPH_FORMATS

    ids = ["urn:x:a b", 'urn:x:<q"uote>', "urn:x:nul\x00", "urn:x:plain"]
    entities, triples = tables(["A", "B", "C", "D"], ids)
    for name in ("turtle", "ntriples", "graphml", "neo4j"):
        GRAPH_FORMATS[name](entities, triples, None, tmp_path)
    encoded = ["urn:x:a%20b", "urn:x:%3Cq%22uote%3E", "urn:x:nul%00", "urn:x:plain"]
    turtle = rdflib.Graph().parse(tmp_path / "graph.ttl", format="turtle")
    ntriples = rdflib.Graph().parse(tmp_path / "graph.nt", format="nt")
    for rdf in (turtle, ntriples):
        assert sorted(str(s) for s in rdf.subjects(rdflib.RDFS.label, None)) == sorted(encoded)
    graph = nx.read_graphml(tmp_path / "graph.graphml")
    assert sorted(graph.nodes) == sorted(encoded)
    assert sorted(graph.edges()) == sorted(itertools.pairwise(encoded))
    nodes = pd.read_csv(tmp_path / "nodes.csv", keep_default_na=False)
    rels = pd.read_csv(tmp_path / "relationships.csv", keep_default_na=False)
    assert sorted(nodes["id:ID"]) == sorted(encoded)
    assert set(rels[":START_ID"]) | set(rels[":END_ID"]) <= set(nodes["id:ID"])
    assert [unquote(i) for i in encoded] == ids   # the original id is recoverable


HOSTILE_LITERALS = ["a\x00b", "v\x0bt", f"{ESC}[31mred", "x\ufffey\uffff", "new\nline\r\n", 'q"uote\\',
                    "tab\tend", "\x7f\x85\u2028", "[red]x[/]", "é ü 中文 😀"]


@parametrize(
    Case("output-turtle-literal-controls", "output", "labels with NUL, ESC, quotes, backslashes, newlines and "
         "non-characters in graph.ttl", "handled"),
    Case("output-ntriples-literal-controls", "output", "the same labels in graph.nt", "handled"),
)
def test_rdf_literals_round_trip_exactly(case: Case, tmp_path: Path) -> None:
    import rdflib

    from kgpipe.export.graph import GRAPH_FORMATS

    entities, triples = tables(HOSTILE_LITERALS)
    fmt, name = ("turtle", "graph.ttl") if "turtle" in case.id else ("nt", "graph.nt")
    GRAPH_FORMATS["turtle" if fmt == "turtle" else "ntriples"](entities, triples, None, tmp_path)
    rdf = rdflib.Graph().parse(tmp_path / name, format=fmt)
    labels = {str(s): str(o) for s, o in rdf.subject_objects(rdflib.RDFS.label)}
    assert [labels[i] for i in entities["id"]] == HOSTILE_LITERALS


@hostile("output-turtle-lone-surrogate", area="output", what="a label and an alias with lone surrogates in "
         "graph.ttl", outcome="handled")
def test_turtle_replaces_lone_surrogates(tmp_path: Path) -> None:
    import rdflib

    from kgpipe.kg.graph_files import write_turtle

    write_turtle(*tables(["a\udc80b", "ok"]), tmp_path / "g.ttl")
    rdf = rdflib.Graph().parse(tmp_path / "g.ttl", format="turtle")
    assert str(rdf.value(rdflib.URIRef("http://kgpipe.org/e/0"), rdflib.RDFS.label)) == "a\ufffdb"


@parametrize(
    Case("output-neo4j-csv-quoting", "output", "labels with commas, quotes, newlines and carriage returns in the "
         "Neo4j CSVs", "handled"),
    Case("output-neo4j-csv-nul", "output", "labels with NUL and ESC (which CSV readers reject or mangle) in the Neo4j "
         "CSVs", "handled"),
)
def test_neo4j_csv_reads_back_in_pandas(case: Case, tmp_path: Path) -> None:
    from kgpipe.export.graph import write_neo4j_csv

    if case.id == "output-neo4j-csv-quoting":
        labels = ['Ada, "the" first', "two\nlines", "cr\r\nlf", "'single'", " spaced "]
        wanted = labels
    else:
        labels = ["nul\x00here", f"{ESC}[2Jclear", "ok"]
        wanted = ["nul\ufffdhere", "\ufffd[2Jclear", "ok"]
    nodes_path, rels_path = write_neo4j_csv(*tables(labels), tmp_path)
    nodes = pd.read_csv(nodes_path, keep_default_na=False)
    assert nodes["label"].tolist() == wanted and len(nodes) == len(labels)
    assert len(pd.read_csv(rels_path)) == len(labels) - 1


def embeddings(ids: list[str], labels: list[str] | None = None) -> Embeddings:
    vectors = np.random.default_rng(0).normal(size=(len(ids), 4)).astype(np.float32)
    return Embeddings(ids, labels or list(ids), vectors, None, {"model": "TransE"})


@parametrize(
    Case("output-word2vec-whitespace-keys", "output", "ids with spaces, tabs, newlines, carriage returns and "
         "U+2028 as word2vec keys", "handled"),
    Case("output-word2vec-escape-collision", "output", "ids 'a b', 'a_b' and 'a%20b' that a naive escape would "
         "merge", "handled"),
)
def test_word2vec_keys_stay_one_token_and_distinct(case: Case, tmp_path: Path) -> None:
    from gensim.models import KeyedVectors

    from kgpipe.export.formats import to_word2vec

    ids = (["urn:a b", "urn:tab\there", "urn:new\nline", "urn:cr\rx", "urn:\u2028sep", "urn:nul\x00"]
           if case.id == "output-word2vec-whitespace-keys" else ["a b", "a_b", "a%20b", "a%b"])
    emb = embeddings(ids)
    (path,) = to_word2vec(emb, tmp_path)
    kv = KeyedVectors.load_word2vec_format(str(path), binary=False)
    assert len(kv.index_to_key) == len(ids)
    assert [unquote(key) for key in kv.index_to_key] == ids
    assert np.allclose(kv.vectors, emb.vectors, atol=1e-6)


@hostile("output-embeddings-lone-surrogate", area="output", what="ids and labels with lone surrogates in npy, "
         "safetensors, parquet, projector and torch exports", outcome="handled")
def test_embedding_files_take_lone_surrogates(tmp_path: Path) -> None:
    import pyarrow.parquet as pq
    from safetensors import safe_open

    from kgpipe.export.embeddings import load_embeddings
    from kgpipe.export.formats import EMBEDDING_FORMATS, export_embeddings

    emb = embeddings(["urn:a\ud800", "urn:b"], ["lab\udfffel", "B"])
    export_embeddings(emb, tmp_path, sorted(EMBEDDING_FORMATS))
    assert json.loads((tmp_path / "ids.json").read_text(encoding="utf-8"))["labels"] == ["lab\ufffdel", "B"]
    assert np.array_equal(np.load(tmp_path / "vectors.npy"), emb.vectors)
    with safe_open(str(tmp_path / "embeddings.safetensors"), framework="numpy") as handle:
        assert json.loads(handle.metadata()["ids"]) == ["urn:a\ufffd", "urn:b"]
    assert pq.read_table(tmp_path / "embeddings.parquet").column("label").to_pylist() == ["lab\ufffdel", "B"]
    assert load_embeddings(tmp_path / "embeddings.safetensors").labels == ["lab\ufffdel", "B"]
    rows = (tmp_path / "metadata.tsv").read_text(encoding="utf-8").splitlines()
    assert rows[1].split("\t")[0] == "lab\ufffdel"


@hostile("output-projector-cell-breaks", area="output", what="labels and types with tabs and newlines in the "
         "projector's metadata.tsv", outcome="handled")
def test_projector_metadata_keeps_one_row_per_entity(tmp_path: Path) -> None:
    from kgpipe.export.formats import to_projector

    emb = Embeddings(["urn:a", "urn:b"], ["tab\tin\nlabel", "B"], np.eye(2, dtype=np.float32),
                     ["type\twith\rbreaks", None])
    _, metadata = to_projector(emb, tmp_path)
    frame = pd.read_csv(metadata, sep="\t", keep_default_na=False)
    assert frame.values.tolist() == [["tab in label", "type with breaks", "urn:a"], ["B", "", "urn:b"]]


@hostile("output-most-similar-unknown", area="output", what="Embeddings.most_similar on a misspelt label",
         outcome="error", exit_code=3)
def test_unknown_label_suggests_close_labels_and_is_a_key_error() -> None:
    from kgpipe.lookup import UnknownNameError

    emb = embeddings(["urn:marie", "urn:pierre", "urn:warsaw"], ["Marie Curie", "Pierre Curie", "Warsaw"])
    with pytest.raises(UnknownNameError) as info:
        emb.most_similar("Mary Curie", k=2)
    assert isinstance(info.value, KeyError) and info.value.exit_code == 3
    assert info.value.suggestions[0] == "Marie Curie"
    assert "no entity with id or label 'Mary Curie'" in str(info.value) and "did you mean 'Marie Curie'" in str(
        info.value)
    with pytest.raises(KeyError):   # callers that caught KeyError still do
        emb.vector("nobody at all")


# --- the terminal -------------------------------------------------------------------------------------------


def show_table(tmp_path: Path, cells: list[str]) -> str:
    path = tmp_path / "cells.parquet"
    pd.DataFrame({"label": cells, "n": range(len(cells))}).to_parquet(path)
    result = invoke("show", path, "--pipeline", tmp_path / "none.yaml", "--rows", len(cells))
    assert result.exit_code == 0, result.output
    return result.output


@parametrize(
    Case("cli-show-escape-sequences", "cli", "table cells with ESC colour, clear-screen and OSC title sequences, BEL "
         "and backspace", "handled"),
    Case("cli-show-bidi-and-newlines", "cli", "table cells with a right-to-left override, newlines and carriage "
         "returns", "handled"),
)
def test_show_prints_control_characters_escaped(case: Case, tmp_path: Path) -> None:
    if case.id == "cli-show-escape-sequences":
        cells = [f"{ESC}[31mred", f"{ESC}[2J", f"{ESC}]0;title\x07", "back\x08space"]
        shown = ["\\x1b[31mred", "\\x1b[2J", "\\x1b]0;title\\x07", "back\\x08space"]
    else:
        cells = ["abc\u202edef", "two\nlines", "over\rwrite"]
        shown = ["abc\\u202edef", "two\\nlines", "over\\rwrite"]
    output = show_table(tmp_path, cells)
    assert ESC not in output and "\x07" not in output and "\x08" not in output and "\u202e" not in output
    assert "\r" not in output
    for text in shown:
        assert text in output
    assert len([line for line in output.splitlines() if line.strip()[:1].isdigit()]) == len(cells)  # a row a line


@hostile("cli-show-rich-markup", area="cli", what="table cells and a JSON report holding rich markup and emoji "
         "codes ('[red]x[/]', '[link=...]', ':smile:')", outcome="handled")
def test_show_prints_markup_literally(tmp_path: Path) -> None:
    output = show_table(tmp_path, ["[red]x[/]", "[link=http://evil]y[/link]", ":smile:"])
    assert "[red]x[/]" in output and "[link=http://evil]y[/link]" in output and ":smile:" in output
    (tmp_path / "r.json").write_text(json.dumps({"[bold]key[/]": f"{ESC}[1mv :smile: \u202eright-to-left"}),
                                     encoding="utf-8")
    result = invoke("show", tmp_path / "r.json", "--pipeline", tmp_path / "none.yaml")
    assert result.exit_code == 0 and "[bold]key[/]" in result.output and ":smile:" in result.output
    assert ESC not in result.output and "\u202e" not in result.output   # JSON keeps U+202E: show escapes it
    assert "\\u202eright-to-left" in result.output


@hostile("cli-show-hostile-file-names", area="cli", what="a folder whose file names hold ESC sequences and "
         "newlines", outcome="handled")
def test_show_escapes_file_names_in_a_folder(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / f"{ESC}[31mred.txt").write_text("x")
    (folder / "two\nlines.txt").write_text("y")
    result = invoke("show", folder, "--pipeline", tmp_path / "none.yaml")
    assert result.exit_code == 0 and ESC not in result.output
    assert "\\x1b[31mred.txt" in result.output and "two\\nlines.txt" in result.output


@hostile("cli-export-unknown-format", area="cli", what="kgpipe export --format foo", outcome="error", exit_code=2)
def test_export_with_an_unknown_format_lists_the_formats(tmp_path: Path) -> None:
    out = tmp_path / "export"
    out.mkdir()
    (out / "kept.txt").write_text("earlier export")
    before = snapshot(out)
    result = invoke("export", "--format", "foo", "--format", "npy", "--out", out,
                    "--pipeline", tmp_path / "missing.yaml")
    assert_clear_error(result, 2, "unknown format 'foo'", "word2vec", "neo4j", "graphml")
    assert "pydantic" not in result.output and "validation error" not in result.output
    assert_untouched(before, out)


@parametrize(
    Case("cli-encode-empty-text", "cli", 'kgpipe encode ""', "error", 3),
    Case("cli-encode-blank-text", "cli", 'kgpipe encode "  \\t\\n" (whitespace only)', "error", 3),
)
def test_encode_without_text_is_a_clear_error(case: Case, tmp_path: Path) -> None:
    text = "" if case.id == "cli-encode-empty-text" else "  \t\n"
    result = invoke("encode", text, "--pipeline", tmp_path / "missing.yaml")
    assert_clear_error(result, 3, "TEXT is empty", "hint:")


@hostile("cli-version", area="cli", what="kgpipe --version (with and without a command after it)",
         outcome="handled")
def test_version_option() -> None:
    import tomllib

    import kgpipe
    from tests.conftest import REPO

    result = invoke("--version")
    assert result.exit_code == 0 and result.output.strip() == f"kgpipe {kgpipe.__version__}"
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert kgpipe.__version__ == project["version"]
    assert invoke("--version", "status").output.strip() == f"kgpipe {kgpipe.__version__}"


@hostile("cli-encode-hostile-mentions", area="cli", what="kgpipe encode on text whose mentions and linked ids hold "
         "ESC sequences and rich markup", outcome="handled")
def test_encode_prints_mentions_escaped_and_literally(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    import kgpipe.lm.knowledge_model as knowledge_model

    text = f"[red]Marie[/] {ESC}[2JCurie"
    mention = SimpleNamespace(text=text, start=0, end=len(text), kg_type="http://schema.org/Person",
                              entity_id=f"urn:x:{ESC}]0;t\x07", score=0.9, method="exact")
    item = SimpleNamespace(mention=mention, tokens=[1, 2], cosine_to_plain=0.5)
    monkeypatch.setattr(knowledge_model, "spacy_mention_finder", lambda name: None)
    monkeypatch.setattr(knowledge_model, "encode_text", lambda text, folder, finder: ([item], None, None))
    from kgpipe import cli

    monkeypatch.setattr(cli.console, "width", 300)   # one table row on one line
    result = invoke("encode", text, "--model", tmp_path)
    assert result.exit_code == 0, result.output
    assert ESC not in result.output and "\x07" not in result.output
    assert "[red]Marie[/] \\x1b[2JCurie" in result.output and "urn:x:\\x1b]0;t\\x07" in result.output
