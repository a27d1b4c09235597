"""Hostile seed KG files: references to the network or to local files, entity bombs, bad IRIs, literal
subjects, N3 formulas, lone surrogates, deep nesting. Ingest never fetches, refuses a seed that is suspect
as a whole (exit 3, file and line), and skips a triple with one bad term, listing it with file and line.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from kgpipe.errors import InputError
from kgpipe.kg import seed_guard
from kgpipe.kg.seed import SeedOptions, read_seed
from tests.hostile.cases import Case, assert_clear_error, assert_untouched, hostile, parametrize, snapshot
from tests.hostile.ingest_helpers import RECORDER, cli_run, logging_server, write_ingest_pipeline
from tests.test_ingest import report, run_ingest, table, write

pytestmark = [pytest.mark.filterwarnings("ignore:ConjunctiveGraph is deprecated:DeprecationWarning"),
              pytest.mark.filterwarnings("ignore:Dataset.default_context is deprecated:DeprecationWarning")]

EX = "http://ex.org/"
RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
GOOD_TTL = "@prefix ex: <http://ex.org/> .\nex:a ex:knows ex:b .\n"


@dataclass(frozen=True)
class Env:
    """What a hostile seed may point at: the logging server, a real local file, the project root."""

    url: str
    local_file: Path
    root: Path


def _jsonld(context: object, **extra: object) -> str:
    """A JSON-LD seed with `context` on line 2 (json.dumps with indent puts each key on its own line)."""
    return json.dumps({"@context": context, "@id": EX + "a", EX + "name": "A", **extra}, indent=2)


def _billion_laughs(_env: Env) -> str:
    entities = "".join(f' <!ENTITY lol{i} "{("&lol%s;" % (i - 1 if i > 1 else "")) * 10}">\n' for i in range(1, 10))
    return ('<?xml version="1.0"?>\n<!DOCTYPE rdf:RDF [\n <!ENTITY lol "lol">\n' + entities + ']>\n'
            f'<rdf:RDF xmlns:rdf="{RDF}" xmlns:ex="{EX}">\n'
            '  <rdf:Description rdf:about="http://ex.org/a"><ex:p>&lol9;</ex:p></rdf:Description>\n</rdf:RDF>\n')


def _xml_with_dtd(dtd: str, body: str = "<ex:p>x</ex:p>") -> str:
    return (f'<?xml version="1.0"?>\n{dtd}\n<rdf:RDF xmlns:rdf="{RDF}" xmlns:ex="{EX}">\n'
            f'  <rdf:Description rdf:about="http://ex.org/a">{body}</rdf:Description>\n</rdf:RDF>\n')


# id, file name, content(env), line of the refusal, words in the message
REFUSED: list[tuple[Case, str, Callable[[Env], str | bytes], int | None, str]] = [
    (Case("seed-jsonld-remote-context", "seed", "JSON-LD @context is an http URL (a local server that logs "
          "requests)", "refused", 3),
     "g.jsonld", lambda e: _jsonld(f"{e.url}/context.jsonld"), 2, "remote context"),
    (Case("seed-jsonld-remote-context-in-list", "seed", "JSON-LD @context is a list holding an inline context "
          "and an http URL", "refused", 3),
     "g.jsonld", lambda e: _jsonld([{"ex": EX}, f"{e.url}/list.jsonld"]), 6, "remote context"),
    (Case("seed-jsonld-scoped-remote-context", "seed", "JSON-LD term definition with a scoped @context that is a "
          "URL", "refused", 3),
     "g.jsonld", lambda e: _jsonld({"knows": {"@id": EX + "knows", "@context": f"{e.url}/scoped.jsonld"}}), 5,
     "remote context"),
    (Case("seed-jsonld-import", "seed", "JSON-LD 1.1 @import of a context URL", "refused", 3),
     "g.jsonld", lambda e: _jsonld({"@import": f"{e.url}/import.jsonld", "ex": EX}), 3, "remote context"),
    (Case("seed-jsonld-nested-node-context", "seed", "JSON-LD node deep in the graph with its own @context URL",
          "refused", 3),
     "g.jsonld", lambda e: json.dumps({"@id": EX + "a", EX + "p": {"@id": EX + "b", EX + "q": {
         "@context": f"{e.url}/nested.jsonld", "@id": EX + "c"}}}, indent=2), 6, "remote context"),
    (Case("seed-jsonld-file-context", "seed", "JSON-LD @context is a file:// URL of a real local file",
          "refused", 3),
     "g.jsonld", lambda e: _jsonld(e.local_file.as_uri()), 2, "remote context"),
    (Case("seed-jsonld-relative-context", "seed", "JSON-LD @context is a relative path to a real file beside the "
          "seed", "refused", 3),
     "g.jsonld", lambda e: _jsonld("context.jsonld"), 2, "remote context"),
    (Case("seed-rdfxml-billion-laughs", "seed", "RDF/XML billion laughs: 10 levels of nested entities in 1 KB",
          "refused", 3),
     "lol.rdf", _billion_laughs, 4, "nested entities are refused"),
    (Case("seed-rdfxml-external-entity-file", "seed", 'RDF/XML external entity SYSTEM "file:///etc/passwd"',
          "refused", 3),
     "xxe.rdf", lambda e: _xml_with_dtd('<!DOCTYPE rdf:RDF [\n<!ENTITY xxe SYSTEM "file:///etc/passwd">\n]>',
                                        "<ex:p>&xxe;</ex:p>"), 3, "external entities are never loaded"),
    (Case("seed-rdfxml-external-entity-http", "seed", "RDF/XML external entity SYSTEM pointing at the local "
          "server", "refused", 3),
     "xxe.rdf", lambda e: _xml_with_dtd(f'<!DOCTYPE rdf:RDF [\n<!ENTITY xxe SYSTEM "{e.url}/xxe">\n]>',
                                        "<ex:p>&xxe;</ex:p>"), 3, "external entities are never loaded"),
    (Case("seed-rdfxml-external-dtd", "seed", "RDF/XML DOCTYPE with an external DTD URL", "refused", 3),
     "dtd.rdf", lambda e: _xml_with_dtd(f'<!DOCTYPE rdf:RDF SYSTEM "{e.url}/rdf.dtd">'), 2,
     "external DTDs are never loaded"),
    (Case("seed-rdfxml-parameter-entity", "seed", "RDF/XML DTD with an external parameter entity referenced in "
          "the DTD", "refused", 3),
     "pe.rdf", lambda e: _xml_with_dtd(f'<!DOCTYPE rdf:RDF [\n<!ENTITY % remote SYSTEM "{e.url}/pe.dtd">\n'
                                       '%remote;\n]>'), 3, "parameter entities are refused"),
    (Case("seed-rdfxml-utf16-quadratic-blowup", "seed", "the same 20M-character expansion in a UTF-16 file (its "
          "references hide between NUL bytes)", "refused", 3),
     "big16.rdf", lambda e: _xml_with_dtd(f'<!DOCTYPE rdf:RDF [\n<!ENTITY big "{"x" * 100_000}">\n]>',
                                          "<ex:p>" + "&big;" * 200 + "</ex:p>").encode("utf-16"), 6,
     "expand to more than"),
    (Case("seed-rdfxml-undeclared-parameter-entity", "seed", "RDF/XML DTD with an undeclared %pe; reference "
          "before nested entities (expat would stop reading declarations)", "refused", 3),
     "pe.rdf", lambda e: _xml_with_dtd('<!DOCTYPE rdf:RDF [\n%undeclared;\n<!ENTITY a "aaaa">\n'
                                       '<!ENTITY b "&a;&a;">\n]>', "<ex:p>&b;</ex:p>"), 3, "undeclared parameter"),
    (Case("seed-rdfxml-quadratic-blowup", "seed", "RDF/XML flat entity of 100k characters referenced 200 times "
          "(20M characters)", "refused", 3),
     "big.rdf", lambda e: _xml_with_dtd(f'<!DOCTYPE rdf:RDF [\n<!ENTITY big "{"x" * 100_000}">\n]>',
                                        "<ex:p>" + "&big;" * 200 + "</ex:p>"), 6, "expand to more than"),
]


@parametrize(*(case for case, *_ in REFUSED))
def test_a_seed_that_reaches_outside_itself_is_refused_without_any_fetch(tmp_path, case):
    _, name, content, line, words = next(r for r in REFUSED if r[0] == case)
    write(tmp_path / "seeds/good.ttl", GOOD_TTL)
    first = run_ingest(tmp_path, seeds=["seeds/good.ttl"])
    artifacts = snapshot(tmp_path / "artifacts")
    local_file = write(tmp_path / "seeds/context.jsonld", json.dumps({"@context": {"name": "http://evil/n"}}))
    with logging_server() as (url, requests), RECORDER.recording() as recorder:
        write(tmp_path / "seeds" / name, content(Env(url, local_file, tmp_path)))
        started = time.perf_counter()
        with pytest.raises(InputError) as info:
            run_ingest(tmp_path, seeds=[f"seeds/{name}"])
        elapsed = time.perf_counter() - started

    err = info.value
    assert (err.file, err.line) == (f"seeds/{name}", line), str(err)
    assert words in str(err) and err.hint
    assert elapsed < 1.0, f"took {elapsed:.2f} s"
    assert requests == [], requests
    assert recorder.network == [], recorder.network
    assert recorder.opened_any(local_file, Path("/etc/passwd")) == []
    assert first.ran == ["ingest"]
    assert_untouched(artifacts, tmp_path / "artifacts")


def test_the_second_fence_refuses_a_remote_context_the_scan_missed(tmp_path, monkeypatch):
    """With the document scan switched off, rdflib's own context loader still never fetches."""
    monkeypatch.setattr("kgpipe.kg.seed.remote_references", lambda document: iter(()))
    with logging_server() as (url, requests), RECORDER.recording() as recorder:
        write(tmp_path / "g.jsonld", _jsonld(f"{url}/context.jsonld"))
        with pytest.raises(InputError, match="remote context") as info:
            read_seed(tmp_path / "g.jsonld", "seeds/g.jsonld", "auto", SeedOptions())
    assert requests == [] and recorder.network == []
    assert info.value.file == "seeds/g.jsonld"


def test_the_xml_guard_is_what_stops_the_billion_laughs(tmp_path, monkeypatch):
    """Without the DTD check rdflib would start expanding: the refusal comes from kgpipe, not from expat."""
    write(tmp_path / "lol.rdf", _billion_laughs(Env("", tmp_path, tmp_path)))
    calls = []
    real = seed_guard.check_xml_declarations
    monkeypatch.setattr("kgpipe.kg.seed.check_xml_declarations",
                        lambda data, source: calls.append(source) or real(data, source))
    with pytest.raises(InputError, match="nested entities are refused"):
        read_seed(tmp_path / "lol.rdf", "seeds/lol.rdf", "auto", SeedOptions())
    assert calls == ["seeds/lol.rdf"]


@parametrize(
    Case("seed-turtle-remote-prefix-base-imports", "seed", "Turtle whose @base, @prefix and owl:imports all name "
         "the local server", "handled"),
    Case("seed-n3-remote-prefix-base-imports", "seed", "N3 whose @base, @prefix and owl:imports all name the local "
         "server", "handled"),
)
def test_turtle_base_prefix_and_owl_imports_are_names_never_fetched(tmp_path, case):
    name = "g.n3" if case.id.startswith("seed-n3") else "g.ttl"
    with logging_server() as (url, requests), RECORDER.recording() as recorder:
        write(tmp_path / "seeds" / name, f"""\
@base <{url}/base/> .
@prefix ex: <{url}/ns#> .
@prefix owl: <http://www.w3.org/2002/07/owl#> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
<{url}/onto> a owl:Ontology ; owl:imports <{url}/other.ttl> .
ex:alice rdfs:label "Alice" ; ex:knows <bob> .
""")
        result = run_ingest(tmp_path, seeds=[f"seeds/{name}"])
    assert requests == [] and recorder.network == []
    assert [(t["head"], t["relation"], t["tail"]) for t in table(result, "seed_triples")] == [
        (f"{url}/ns#alice", f"{url}/ns#knows", f"{url}/base/bob")]
    assert {e["iri"]: e["label"] for e in table(result, "seed_entities")}[f"{url}/ns#alice"] == "Alice"
    [stats] = report(result)["seeds"]
    assert stats["schema_statements_skipped"] == 2  # the ontology's type and its owl:imports


@hostile("seed-rdfxml-owl-flat-entities-and-imports", area="seed", outcome="handled",
         what="OWL RDF/XML with flat namespace entities (&owl;, &ex;) and an owl:imports of the local server")
def test_owl_rdfxml_with_flat_entities_still_parses(tmp_path):
    with logging_server() as (url, requests), RECORDER.recording() as recorder:
        write(tmp_path / "seeds/onto.owl", f"""\
<?xml version="1.0"?>
<!DOCTYPE rdf:RDF [
    <!ENTITY owl "http://www.w3.org/2002/07/owl#" >
    <!ENTITY rdfs "http://www.w3.org/2000/01/rdf-schema#" >
    <!ENTITY ex "{url}/ns#" >
]>
<rdf:RDF xmlns:rdf="{RDF}" xmlns:rdfs="&rdfs;" xmlns:owl="&owl;" xmlns:ex="&ex;">
  <owl:Ontology rdf:about="{url}/onto"><owl:imports rdf:resource="{url}/other.owl"/></owl:Ontology>
  <owl:NamedIndividual rdf:about="&ex;alice">
    <rdfs:label>Alice</rdfs:label>
    <ex:knows rdf:resource="&ex;bob"/>
  </owl:NamedIndividual>
</rdf:RDF>
""")
        result = run_ingest(tmp_path, seeds=["seeds/onto.owl"])
    assert requests == [] and recorder.network == []
    assert [(t["head"], t["tail"]) for t in table(result, "seed_triples")] == [(f"{url}/ns#alice", f"{url}/ns#bob")]
    assert {e["iri"]: e["label"] for e in table(result, "seed_entities")}[f"{url}/ns#alice"] == "Alice"
    assert report(result)["seed_skipped"] == []


RELATIVE_SEEDS = {
    "g.ttl": "@prefix ex: <http://ex.org/> .\n<alice> ex:knows <#bob> .\n",
    "g.rdf": _xml_with_dtd("", '<ex:knows rdf:resource="#bob"/>').replace('rdf:about="http://ex.org/a"',
                                                                          'rdf:about="alice"'),
    "g.jsonld": json.dumps({"@id": "alice", EX + "knows": {"@id": "#bob"}}),
}


@hostile("seed-relative-iris-machine-independent", area="seed", outcome="handled",
         what="relative IRIs in Turtle, RDF/XML and JSON-LD, the same project copied to two folders")
def test_relative_iris_resolve_against_a_base_that_does_not_depend_on_the_machine(tmp_path):
    outputs = []
    for copy in ("first/deep/project", "second"):
        root = tmp_path / copy
        for name, text in RELATIVE_SEEDS.items():
            write(root / "seeds" / name, text)
        result = run_ingest(root, seeds=[f"seeds/{name}" for name in RELATIVE_SEEDS])
        outputs.append([(t["head"], t["tail"], t["source"]) for t in table(result, "seed_triples")])
    assert outputs[0] == outputs[1]
    assert sorted(outputs[0]) == sorted(
        ("http://kgpipe.invalid/seed/seeds/alice", f"http://kgpipe.invalid/seed/seeds/{name}#bob", f"seeds/{name}")
        for name in RELATIVE_SEEDS)
    assert not any(str(tmp_path) in iri or "file:" in iri for row in outputs[0] for iri in row)


def test_seed_base_param_sets_the_base_for_relative_iris(tmp_path):
    write(tmp_path / "seeds/g.ttl", RELATIVE_SEEDS["g.ttl"])
    result = run_ingest(tmp_path, seeds=["seeds/g.ttl"], seed_base="http://example.org/kg/people")
    assert [(t["head"], t["tail"]) for t in table(result, "seed_triples")] == [
        ("http://example.org/kg/alice", "http://example.org/kg/people#bob")]


def test_seed_base_must_be_an_absolute_iri(tmp_path):
    write(tmp_path / "seeds/g.ttl", GOOD_TTL)
    result = cli_run(write_ingest_pipeline(tmp_path, corpus=None, seeds=["seeds/g.ttl"], seed_base="not a base"))
    assert_clear_error(result, 2, "params.seed_base", "no scheme")


# id, file name, text, line of the bad triple, words in the reason, a string no output may contain
TTL_HEAD = "@prefix ex: <http://ex.org/> .\nex:good ex:knows ex:other .\n"
SKIPPED: list[tuple[Case, str, str, int, str, str]] = [
    (Case("seed-turtle-iri-with-space", "seed", "Turtle IRI with a space: <http://ex.org/a b>", "skipped"),
     "g.ttl", TTL_HEAD + "<http://ex.org/a b> ex:knows ex:c .\n", 3, "contains a space", "a b"),
    (Case("seed-turtle-iri-quote-escape", "seed", 'Turtle IRI with an escaped quote <...\\u0022...>', "skipped"),
     "g.ttl", TTL_HEAD + "ex:c ex:knows <http://ex.org/q\\u0022x> .\n", 3, "contains '\"'", 'q"x'),
    (Case("seed-turtle-iri-angle-escape", "seed", "Turtle IRI with an escaped < (\\u003C)", "skipped"),
     "g.ttl", TTL_HEAD + "ex:c ex:knows <http://ex.org/q\\u003Cx> .\n", 3, "contains '<'", "q<x"),
    (Case("seed-turtle-iri-control-char", "seed", "Turtle IRI with an escaped BEL control character", "skipped"),
     "g.ttl", TTL_HEAD + "\n<http://ex.org/bell\\u0007> ex:knows ex:c .\n", 4, "control character U+0007",
     "bell\x07"),
    (Case("seed-turtle-datatype-iri-space", "seed", "Turtle literal whose datatype IRI has a space", "skipped"),
     "g.ttl", TTL_HEAD + 'ex:c ex:size "3"^^<http://ex.org/my type> .\n', 3, "datatype IRI", "my type"),
    (Case("seed-turtle-lone-surrogate-literal", "seed", 'Turtle literal "\\uD800" (half a surrogate pair)',
          "skipped"),
     "g.ttl", TTL_HEAD + 'ex:c ex:name "bad \\uD800 name" .\n', 3, "lone surrogate U+D800", "bad "),
    (Case("seed-n3-literal-subject", "seed", 'N3 triple with a literal subject: "Alice" ex:knows ex:b', "skipped"),
     "g.n3", TTL_HEAD + '"Alice" ex:knows ex:c .\n', 3, "the subject is a literal", "Alice"),
    (Case("seed-n3-formula-subject", "seed", "N3 formula { ... } as a subject", "skipped"),
     "g.n3", TTL_HEAD + "{ ex:x ex:y ex:z } ex:says ex:c .\n", 3, "N3 formula", "says"),
    (Case("seed-n3-variable", "seed", "N3 variable ?x as a subject", "skipped"),
     "g.n3", TTL_HEAD + "?someone ex:knows ex:c .\n", 3, "N3 variable ?someone", "someone"),
    (Case("seed-jsonld-id-with-space", "seed", 'JSON-LD "@id": "http://ex.org/a b" (rdflib drops it silently)',
          "skipped"),
     "g.jsonld", json.dumps({"@graph": [{"@id": EX + "good", EX + "knows": {"@id": EX + "other"}},
                                        {"@id": EX + "a b", EX + "knows": {"@id": EX + "c"}}]}, indent=1),
     10, "@id", "a b"),
    (Case("seed-jsonld-property-with-space", "seed", "JSON-LD property key with a space", "skipped"),
     "g.jsonld", json.dumps({"@id": EX + "good", EX + "knows": {"@id": EX + "other"}, EX + "has name": "x"},
                            indent=1), 6, "the predicate IRI", "has name"),
    (Case("seed-jsonld-reverse-literal-subject", "seed", "JSON-LD @reverse with a literal value (a literal "
          "subject)", "skipped"),
     "g.jsonld", json.dumps({"@id": EX + "good", EX + "knows": {"@id": EX + "other"},
                             "@reverse": {EX + "knows": "Literal Person"}}, indent=1), 7,
     "the subject is a literal", "Literal Person"),
    (Case("seed-jsonld-lone-surrogate", "seed", 'JSON-LD value "\\ud800" (half a surrogate pair)', "skipped"),
     "g.jsonld", '{\n "@id": "http://ex.org/good",\n "http://ex.org/knows": {"@id": "http://ex.org/other"},\n'
                 ' "http://ex.org/name": "x\\ud800y"\n}\n', 4, "lone surrogate", "\ud800"),
    (Case("seed-rdfxml-about-with-space", "seed", 'RDF/XML rdf:about="http://ex.org/a b"', "skipped"),
     "g.rdf", _xml_with_dtd("", '<ex:knows rdf:resource="http://ex.org/other"/>').replace("http://ex.org/a\"",
                                                                                          "http://ex.org/good\"")
     .replace("</rdf:RDF>", '  <rdf:Description rdf:about="http://ex.org/a b"><ex:knows '
                            'rdf:resource="http://ex.org/c"/></rdf:Description>\n</rdf:RDF>'), 5,
     "contains a space", "a b"),
    (Case("seed-tsv-iri-with-space", "seed", "TSV token <http://ex.org/a b>", "skipped"),
     "g.tsv", "<http://ex.org/good>\t<http://ex.org/knows>\t<http://ex.org/other>\n# c\n"
              "<http://ex.org/a b>\tknows\tc\n", 3, "head IRI", "a b"),
    (Case("seed-tsv-relative-iri", "seed", "TSV token <relative> (an IRI without a scheme)", "skipped"),
     "g.tsv", "<http://ex.org/good>\t<http://ex.org/knows>\t<http://ex.org/other>\na\t<knows-rel>\tb\n", 2,
     "relation IRI 'knows-rel' is relative", "knows-rel"),
    (Case("seed-tsv-url-with-quote", "seed", 'TSV token http://ex.org/x"y (taken as an IRI for its ://)',
          "skipped"),
     "g.tsv", '<http://ex.org/good>\t<http://ex.org/knows>\t<http://ex.org/other>\na\tknows\thttp://ex.org/x"y\n',
     2, "tail IRI", 'x"y'),
]


@parametrize(*(case for case, *_ in SKIPPED))
def test_a_triple_with_a_bad_term_is_skipped_and_listed_with_its_line(tmp_path, case):
    _, name, text, line, words, bad = next(s for s in SKIPPED if s[0] == case)
    write(tmp_path / "seeds" / name, text)

    result = run_ingest(tmp_path, seeds=[f"seeds/{name}"])

    assert result.ran == ["ingest"]
    rep = report(result)
    [skipped] = rep["seed_skipped"]
    assert (skipped["source"], skipped["line"]) == (f"seeds/{name}", line), skipped
    assert words in skipped["reason"], skipped["reason"]
    assert rep["seeds"][0]["triples_skipped"] == 1
    assert result.summaries["ingest"]["seed_triples_skipped"] == 1
    triples = [(t["head"], t["relation"], t["tail"]) for t in table(result, "seed_triples")]
    good = (EX + "good", EX + "knows", EX + "other")
    assert triples == [good]
    rows = [table(result, name) for name in ("seed_entities", "seed_triples", "seed_attributes")]
    assert not [row for rows_ in rows for row in rows_ if bad in json.dumps(row, ensure_ascii=False)]


@hostile("seed-strict-bad-iri", area="seed", outcome="error", exit_code=3,
         what="Turtle IRI with a space under strict: true, through `kgpipe run`")
def test_strict_mode_makes_a_bad_triple_an_error_through_the_cli(tmp_path):
    write(tmp_path / "seeds/g.ttl", TTL_HEAD + "<http://ex.org/a b> ex:knows ex:c .\n")
    result = cli_run(write_ingest_pipeline(tmp_path, corpus=None, seeds=["seeds/g.ttl"], strict=True))
    assert_clear_error(result, 3, "seeds/g.ttl:3:", "contains a space", "strict: false")
    assert not (tmp_path / "artifacts/ingest/seed_triples.parquet").exists()


def test_a_skipped_triple_is_not_a_failure_through_the_cli(tmp_path):
    write(tmp_path / "seeds/g.ttl", TTL_HEAD + "<http://ex.org/a b> ex:knows ex:c .\n")
    result = cli_run(write_ingest_pipeline(tmp_path, corpus=None, seeds=["seeds/g.ttl"]))
    assert result.exit_code == 0, result.output
    rep = json.loads((tmp_path / "artifacts/ingest/ingest_report.json").read_text(encoding="utf-8"))
    assert [(s["source"], s["line"]) for s in rep["seed_skipped"]] == [("seeds/g.ttl", 3)]


def test_billion_laughs_through_the_cli_is_a_quick_clear_error(tmp_path):
    write(tmp_path / "seeds/lol.rdf", _billion_laughs(Env("", tmp_path, tmp_path)))
    assert (tmp_path / "seeds/lol.rdf").stat().st_size < 1100
    started = time.perf_counter()
    result = cli_run(write_ingest_pipeline(tmp_path, corpus=None, seeds=["seeds/lol.rdf"]))
    assert time.perf_counter() - started < 2.0
    assert_clear_error(result, 3, "seeds/lol.rdf:4:", "nested entities are refused")


def test_remote_context_through_the_cli(tmp_path):
    with logging_server() as (url, requests):
        write(tmp_path / "seeds/g.jsonld", _jsonld(f"{url}/context.jsonld"))
        result = cli_run(write_ingest_pipeline(tmp_path, corpus=None, seeds=["seeds/g.jsonld"]))
    assert requests == []
    assert_clear_error(result, 3, "seeds/g.jsonld:2:", "remote context", "self-contained")


DEEP = {
    "seed-jsonld-deep-nesting": ("g.jsonld", "[" * 200_000 + "]" * 200_000, "JSON-LD with 200k nested brackets"),
    "seed-turtle-deep-nesting": ("g.ttl", "@prefix ex: <http://ex.org/> .\nex:a ex:b " + "(" * 100_000
                                 + ")" * 100_000 + " .\n", "Turtle with 100k nested collections"),
    "seed-jsonld-deep-nodes": ("g.jsonld", '{"@id": "http://ex.org/a", "http://ex.org/p": '
                               + '{"http://ex.org/p": ' * 900 + '"x"' + "}" * 901,
                               "JSON-LD with 900 nested node objects (valid JSON, too deep for rdflib)"),
}


@parametrize(*(Case(id, "seed", what, "error", 3) for id, (_, _, what) in DEEP.items()))
def test_deeply_nested_seed_is_an_input_error_through_the_cli(tmp_path, case):
    name, text, _ = DEEP[case.id]
    write(tmp_path / "seeds" / name, text)
    result = cli_run(write_ingest_pipeline(tmp_path, corpus=None, seeds=[f"seeds/{name}"]))
    assert_clear_error(result, 3, f"seeds/{name}", "nested too deeply")


@hostile("seed-unreadable-file", area="seed", outcome="error", exit_code=3,
         what="a seed file the process may not read (PermissionError on open)")
def test_unreadable_seed_file_names_it(tmp_path, monkeypatch):
    write(tmp_path / "seeds/g.ttl", GOOD_TTL)
    real_open = Path.open

    def deny(self, *args, **kwargs):
        if self.name == "g.ttl":
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", deny)
    with pytest.raises(InputError, match="cannot read the seed KG file \\(Permission denied\\)") as info:
        run_ingest(tmp_path, seeds=["seeds/g.ttl"])
    assert info.value.file == "seeds/g.ttl"
