"""Hostile documents for the extract stage: megabyte tokens, punctuation runs, floods of names or sentences,
invisible and control characters, unique words, a damaged documents table.

Every case that produces mentions checks the stage's promise: documents.text[start_char:end_char] == text,
no mention longer than max_mention_chars, and the stage's summary counts what was dropped.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd
from spacy.tokens import Span
from typer.testing import CliRunner

from kgpipe.cli import app
from kgpipe.nlp.extractor import ExtractOptions, Extractor, build_extractor
from kgpipe.nlp.patterns import load_patterns
from tests.conftest import REPO
from tests.hostile.cases import assert_clear_error, assert_untouched, hostile, snapshot
from tests.test_extract import (  # noqa: F401
    CITY,
    PERSON,
    SEEDS,
    assert_offsets_exact,
    run_extract,
    seed,
    write_inputs,
)

LIMIT = 200  # ExtractParams.max_mention_chars's default


def check(documents: list[tuple[str, str]], mentions: pd.DataFrame, *, limit: int = LIMIT) -> None:
    assert_offsets_exact(documents, mentions)
    assert (mentions["end_char"] - mentions["start_char"]).le(limit).all()


def best_of(runs: int, work: Any) -> float:
    """The least disturbed of a few timings (the machine is shared)."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        work()
        times.append(time.perf_counter() - t0)
    return min(times)


@hostile("extract-megabyte-token", area="extract", outcome="handled",
         what="a one-line document that is a 1 MiB token without spaces, with a name after it")
def test_megabyte_token(tmp_path):
    text = ("Qwertyuiop" * 104_858)[:1 << 20] + " Alan Turing was born in London."
    docs = [("token", text)]
    result, mentions, relations = run_extract(tmp_path, docs)
    check(docs, mentions)
    assert set(mentions["text"]) >= {"Alan Turing", "London"}
    assert mentions["start_char"].min() > 1 << 20  # nothing from the token, let alone a 48,576-char label
    assert len(relations) == 1
    assert result.summaries["extract"]["documents"] == 1


@hostile("extract-overlong-span-dropped", area="extract", outcome="handled",
         what="a seed name of 300 characters found in the text: a span over max_mention_chars")
def test_overlong_span_is_dropped_and_counted(tmp_path):
    name = " ".join(["Royal Society of Natural Knowledge"] * 9)[:300].strip()
    seeds = [*SEEDS, seed("Long", name, [PERSON])]
    text = f"{name} met Alan Turing in London. {name} stayed."
    docs = [("long", text)]
    result, mentions, _ = run_extract(tmp_path / "default", docs, seeds=seeds)
    check(docs, mentions)
    assert "Alan Turing" in set(mentions["text"]) and name not in set(mentions["text"])
    assert result.summaries["extract"]["dropped_long_mentions"] == 2
    result, mentions, _ = run_extract(tmp_path / "wider", docs, seeds=seeds, max_mention_chars=400)
    check(docs, mentions, limit=400)
    assert (mentions["text"] == name).sum() == 2
    assert result.summaries["extract"]["dropped_long_mentions"] == 0


@hostile("extract-punctuation-run", area="extract", outcome="handled",
         what="a document of only punctuation, no whitespace (spaCy's tokenizer is quadratic in such a run)")
def test_punctuation_run(tmp_path, nlp):
    text = ("!?.,;" * 2400)[:12_000]
    docs = [("punct", text), ("after", "Alan Turing was born in London.")]
    result, mentions, _ = run_extract(tmp_path, docs)
    check(docs, mentions)
    assert set(mentions["doc_id"]) == {"after"} and result.summaries["extract"]["documents"] == 2
    # tokenized in slices: 40,000 characters take well under a second (unsliced, minutes: 10,000 take ~50 s)
    extractor = Extractor(nlp)
    long_run = ("!?.,;" * 8000)
    took = best_of(1, lambda: extractor.make_doc(long_run))
    doc = extractor.make_doc(long_run)
    assert doc.text == long_run and took < 10, took


@hostile("extract-only-newlines", area="extract", outcome="handled",
         what="documents of only newlines (1 MB), only spaces and tabs, and carriage returns")
def test_only_whitespace(tmp_path):
    docs = [("newlines", "\n" * 1_000_000), ("spaces", " \t" * 100_000), ("cr", "\r\n\r" * 50_000),
            ("real", "\n" * 300_000 + "Alan Turing was born in London.\n" + "\n" * 300_000)]
    result, mentions, relations = run_extract(tmp_path, docs, max_chunk_chars=50_000)
    check(docs, mentions)
    assert set(mentions["doc_id"]) == {"real"} and set(mentions["text"]) == {"Alan Turing", "London"}
    assert len(relations) == 1
    assert result.summaries["extract"]["documents"] == 4


@hostile("extract-many-sentences", area="extract", outcome="handled",
         what="a one-line document of 5,000 tiny sentences, split into pieces, a name at the end")
def test_many_sentences(tmp_path):
    text = "Ada left. " * 5000 + "Alan Turing was born in London."
    docs = [("many", text)]
    result, mentions, relations = run_extract(tmp_path, docs, max_chunk_chars=7_000)
    check(docs, mentions)
    sentences = result.summaries["extract"]["sentences"]
    assert sentences >= 5000
    turing = mentions[mentions["text"] == "Alan Turing"]
    assert len(turing) == 1 and turing["sentence"].iloc[0] == sentences - 1  # numbering runs across pieces
    assert len(relations) == 1 and relations["sentence_end"].iloc[0] == len(text)


INVISIBLE = [
    ("bidi", "\u202eAlan Turing\u202c was born in London. \u200fمرحبا\u200f Max Born was born in Breslau."),
    ("zero_width", "Alan\u200bTuring\u200d was born in Lon\u200cdon. \ufeffMax Born was born in Breslau."),
    ("combining", "A\u0301\u0302lan Tu\u0308ring was born in London\u0327. Max Born was born in Breslau."),
    ("astral", "🙂" * 500 + " 𝔄𝔩𝔞𝔫 was born in London. " + "🏳️‍🌈" * 200 + " Max Born was born in Breslau."),
]


@hostile("extract-invisible-characters", area="extract", outcome="handled",
         what="RTL and bidi controls, zero-width joiners and spaces, combining marks, astral emoji")
def test_invisible_characters(tmp_path):
    _, mentions, _ = run_extract(tmp_path, INVISIBLE)
    check(INVISIBLE, mentions)
    # the clean sentence after the noise is found where it is (offsets count code points, as Python does)
    for doc_id, text in INVISIBLE:
        found = mentions[(mentions["doc_id"] == doc_id) & (mentions["text"] == "Breslau")]
        assert list(found["start_char"]) == [text.index("Breslau")], doc_id


@hostile("extract-nul-bytes", area="extract", outcome="handled",
         what="NUL and other control bytes inside and between words")
def test_nul_bytes(tmp_path):
    text = "Alan Turing\x00 was born in\x00London.\x00\x01\x1b[31m Max Born was born in Bres\x00lau.\x00" * 50
    docs = [("nul", text)]
    _, mentions, relations = run_extract(tmp_path, docs)
    check(docs, mentions)
    assert (mentions["text"] == "Max Born").sum() == 50  # (the NER reads NUL as part of a word: "Alan Turing\x00")
    assert set(relations["subject_id"]) | set(relations["object_id"]) <= set(mentions["mention_id"])


@hostile("extract-unique-words", area="extract", outcome="handled",
         what="a document of 30,000 distinct made-up words (the spaCy vocabulary would keep every one)")
def test_unique_words_do_not_grow_the_vocabulary(tmp_path, nlp):
    text = " ".join(f"Zq{i:05x}vk" for i in range(30_000)) + " Alan Turing was born in London."
    docs = [("unique", text)]
    run_extract(tmp_path / "warm", [("warm", "Alan Turing was born in London.")])  # the stage's own strings
    before = len(nlp.vocab.strings)
    _, mentions, _ = run_extract(tmp_path / "run", docs)
    check(docs, mentions)
    assert "Alan Turing" in set(mentions["text"])
    assert len(nlp.vocab.strings) - before < 1000, len(nlp.vocab.strings) - before


@hostile("extract-name-flood", area="extract", outcome="handled",
         what="a piece that is nothing but seed names: the gazetteer's merge with the NER stays linear")
def test_name_flood_gazetteer_is_linear(tmp_path, nlp):
    docs = [("flood", "London, Alan Turing, Breslau; " * 600)]
    _, mentions, _ = run_extract(tmp_path, docs)
    check(docs, mentions)
    assert (mentions["seed_iri"] == "http://kgpipe.org/sample/London").sum() >= 500
    build_extractor(nlp, seed_entities=SEEDS)  # installs the gazetteer
    gazetteer = nlp.get_pipe("kgpipe_gazetteer")

    def flood(n: int) -> Any:
        """n NER spans 'Sir Alan Turing', each holding the seed name 'Alan Turing' (built by hand: no parse)."""
        doc = nlp.make_doc("Sir Alan Turing met " * n)
        doc.ents = [Span(doc, 4 * k, 4 * k + 3, label="PERSON") for k in range(n)]
        return doc

    small, large = flood(1000), flood(4000)
    merged = gazetteer(large.copy())
    assert sum(e.kb_id_ == SEEDS[1]["iri"] for e in merged.ents) == 4000
    ratio = best_of(3, lambda: gazetteer(large.copy())) / best_of(3, lambda: gazetteer(small.copy()))
    assert ratio < 8, f"gazetteer time grows {ratio:.1f}x for 4x the names (linear: ~4x, quadratic: ~16x)"


@hostile("extract-run-on-sentence", area="extract", outcome="handled",
         what="a run-on sentence chaining hundreds of clauses: relation matching stays linear")
def test_run_on_sentence_relations_are_linear(tmp_path, nlp):
    clause = "Alan Turing was born in London and Max Born was born in Breslau and "
    docs = [("run_on", clause * 60 + "that was all.")]
    _, mentions, relations = run_extract(tmp_path, docs)
    check(docs, mentions)
    assert len(mentions) >= 240 and len(relations) >= 1
    assert set(relations["subject_id"]) | set(relations["object_id"]) <= set(mentions["mention_id"])
    library = load_patterns([REPO / "pipelines" / "patterns"])
    extractor = Extractor(nlp, ExtractOptions(), library)
    small, large = nlp(clause * 100), nlp(clause * 400)
    ratio = best_of(2, lambda: extractor.matcher(large)) / best_of(2, lambda: extractor.matcher(small))
    assert ratio < 8, f"pattern matching time grows {ratio:.1f}x for 4x the clauses"


@hostile("extract-empty-documents", area="extract", outcome="handled",
         what="a corpus of 3,000 empty and blank documents")
def test_many_empty_documents(tmp_path):
    docs = [(f"d{i}", ["", " ", "\n\n", "\t"][i % 4]) for i in range(3000)] + [("real", "Alan Turing.")]
    result, mentions, _ = run_extract(tmp_path, docs)
    summary = result.summaries["extract"]
    assert summary["documents"] == 3001 and summary["sentences"] <= 2 and set(mentions["doc_id"]) <= {"real"}


@hostile("extract-damaged-documents-table", area="extract", outcome="error", exit_code=6,
         what="documents.parquet replaced by garbage bytes after a good run")
def test_damaged_documents_table(tmp_path):
    result, _, _ = run_extract(tmp_path, [("d", "Alan Turing was born in London.")])
    outputs = Path(result.outputs["extract"]["mentions"]).parent
    before = snapshot(outputs)
    (tmp_path / "in" / "documents.parquet").write_bytes(b"PAR1 not really parquet" * 10)
    cli = CliRunner().invoke(app, ["run", str(tmp_path / "pipeline.yaml")])
    assert_clear_error(cli, 6, "documents.parquet", "not a readable parquet file")
    assert_untouched(before, outputs)
