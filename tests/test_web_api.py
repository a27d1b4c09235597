"""`kgpipe explore`'s JSON API and pages through FastAPI's TestClient: on the sample run (evidence, predictions,
neighbours, documents, SPARQL, corrections) and on synthetic artifacts written directly (search ranking, a hub
entity's pages of triples, escaping, snapshots)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

pytest.importorskip("fastapi", reason="the web extra is not installed (pip install 'kgpipe[web]')")

from fastapi.testclient import TestClient

from kgpipe.errors import ArtifactError
from kgpipe.nlp.labelled import read_labelled
from kgpipe.web import data as web_data
from kgpipe.web.app import create_app
from kgpipe.web.corrections import TOKEN_HEADER
from kgpipe.web.data import corrections_path
from tests.web_synthetic import NS, TYPES, commit_lock, write_synthetic

BASE = "http://127.0.0.1:8765"
EINSTEIN = "http://kgpipe.org/sample/Albert_Einstein"
ULM = "http://kgpipe.org/sample/Ulm"
BORN_IN = "http://kgpipe.org/sample/bornIn"
SCRIPT = '<script>alert("x")</script>'


def q(entity_id: str) -> str:
    return quote(entity_id, safe="")


@pytest.fixture(scope="module")
def sample(sample_pipeline: Path) -> Iterator[TestClient]:
    client = TestClient(create_app(sample_pipeline, host="127.0.0.1", port=8765), base_url=BASE)
    yield client
    corrections_path(client.app.state.store.pipe).unlink(missing_ok=True)


# Search ranking: exact label > alias > prefix (of the label or a word of it) > fuzzy; ties by mention count.
RANKED = [
    {"id": NS + "paris_small", "label": "Paris", "type": TYPES[1], "mention_count": 3},
    {"id": NS + "paris_big", "label": "Paris", "type": TYPES[1], "mention_count": 40},
    {"id": NS + "light", "label": "City of Light", "type": TYPES[1], "aliases": ["Paris"], "mention_count": 1},
    {"id": NS + "hilton", "label": "Paris Hilton", "type": TYPES[0], "mention_count": 90},
    {"id": NS + "plaster", "label": "Plaster of Paris", "type": TYPES[2], "mention_count": 2},
    {"id": NS + "parsi", "label": "Parsi", "type": TYPES[0], "mention_count": 500},
    {"id": NS + "bad", "label": SCRIPT, "type": TYPES[0], "aliases": ["<b>bold</b>"], "mention_count": 1},
]


@pytest.fixture
def synthetic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, TestClient]:
    monkeypatch.setattr(web_data, "STALE_CHECK_SECONDS", 0.0)
    pipeline = write_synthetic(tmp_path, 200, 600, hub_degree=120, extra=RANKED)
    return pipeline, TestClient(create_app(pipeline, host="127.0.0.1", port=8765), base_url=BASE)


# --- search -----------------------------------------------------------------------------------------------


def test_search_ranks_exact_then_alias_then_prefix_then_fuzzy_ties_by_mentions(synthetic) -> None:
    _, client = synthetic
    results = client.get("/api/search", params={"q": "paris", "limit": 50}).json()["results"]
    ours = {e["id"] for e in RANKED}   # the generated names may match fuzzily too: only ours are pinned
    assert [(r["id"].removeprefix(NS), r["match"]) for r in results if r["id"] in ours] == [
        ("paris_big", "exact"), ("paris_small", "exact"), ("light", "alias"), ("hilton", "prefix"),
        ("plaster", "prefix"), ("parsi", "fuzzy")]
    assert [r["match"] for r in results[:5]] == ["exact", "exact", "alias", "prefix", "prefix"]
    assert all(r["match"] == "fuzzy" for r in results[5:])
    fuzzy = [r["score"] for r in results[5:]]
    assert fuzzy == sorted(fuzzy, reverse=True)
    assert results[0]["mentions"] == 40 and results[0]["types"] == [TYPES[1]]


def test_search_tolerates_typos_and_filters_by_type(synthetic) -> None:
    _, client = synthetic
    typo = client.get("/api/search", params={"q": "Pars Hilten"}).json()["results"]
    assert typo[0]["id"] == NS + "hilton" and typo[0]["match"] == "fuzzy"
    cities = client.get("/api/search", params={"q": "paris", "type": "City"}).json()["results"]
    assert all(r["types"] == [TYPES[1]] for r in cities)
    assert [r["id"] for r in cities if r["match"] != "fuzzy"] == [NS + "paris_big", NS + "paris_small", NS + "light"]
    people = client.get("/api/search", params={"q": "paris", "type": TYPES[0]}).json()["results"]
    assert people[0]["id"] == NS + "hilton" and NS + "parsi" in {r["id"] for r in people}
    assert all(r["types"] == [TYPES[0]] for r in people)
    assert client.get("/api/search", params={"q": "qqqqzzzz"}).json()["results"] == []


def test_search_finds_einstein_by_alias_and_typo_on_the_sample(sample: TestClient) -> None:
    assert sample.get("/api/search", params={"q": "einstein"}).json()["results"][0]["id"] == EINSTEIN
    assert sample.get("/api/search", params={"q": "Albert Einstien"}).json()["results"][0]["id"] == EINSTEIN
    page = sample.get("/search", params={"q": "einstein"}).text
    assert f'href="/entity/{q(EINSTEIN)}"' in page


# --- entity pages -----------------------------------------------------------------------------------------


def test_entity_page_escapes_labels_from_data(synthetic) -> None:
    _, client = synthetic
    entity = client.get(f"/api/entity/{q(NS + 'bad')}").json()
    assert entity["label"] == SCRIPT and entity["aliases"] == ["<b>bold</b>"]
    for page in (client.get(f"/entity/{q(NS + 'bad')}").text, client.get("/search", params={"q": "script"}).text):
        assert SCRIPT not in page and "<b>bold</b>" not in page
    page = client.get(f"/entity/{q(NS + 'bad')}").text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page and "&lt;b&gt;bold&lt;/b&gt;" in page
    assert client.get(f"/api/entity/{q(NS + 'nobody')}").status_code == 404
    assert client.get(f"/entity/{q(NS + 'nobody')}").status_code == 404


def test_hub_triples_paginate_50_a_page(synthetic) -> None:
    _, client = synthetic
    url = f"/api/entity/{q(NS + 'hub')}/triples"
    pages = [client.get(url, params={"direction": "out", "page": n}).json() for n in (1, 2, 3, 4)]
    assert [p["total"] for p in pages] == [120] * 4 and pages[0]["page_size"] == 50
    assert [len(p["items"]) for p in pages] == [50, 50, 20, 0]
    tails = [t["tail"]["id"] for p in pages for t in p["items"]]
    assert len(set(tails)) == 120 and all(t["head"]["id"] == NS + "hub" for p in pages for t in p["items"])
    assert pages[0]["items"][0]["evidence"] == [{"method": "seed", "seed_file": "synthetic.tsv", "doc_id": None,
                                                 "sentence": None, "head_span": None, "tail_span": None,
                                                 "pattern": None, "confidence": None, "relation_id": None}]
    html = client.get(f"/entity/{q(NS + 'hub')}", params={"out_page": 3}).text
    assert 'id="triples-out" data-total="120"' in html and "page 3 of 3" in html
    assert html.count('<td><a href="/entity/' + q(NS + "hub")) == 20


def test_evidence_has_the_sentence_with_both_mention_spans(sample: TestClient) -> None:
    out = sample.get(f"/api/entity/{q(EINSTEIN)}/triples", params={"direction": "out"}).json()
    born = next(t for t in out["items"] if t["relation"] == BORN_IN and t["tail"]["id"] == ULM)
    text = [e for e in born["evidence"] if e["method"] == "pattern"]
    assert text and {e["method"] for e in born["evidence"]} == {"pattern", "seed"}
    for e in text:
        head, tail = e["sentence"][slice(*e["head_span"])], e["sentence"][slice(*e["tail_span"])]
        assert "Einstein" in head and tail == "Ulm" and 0 < e["confidence"] <= 1 and e["pattern"]
    page = sample.get(f"/entity/{q(EINSTEIN)}").text
    assert f'<mark class="head">{head}</mark>' in page and '<mark class="tail">Ulm</mark>' in page
    assert f'<div id="kg-graph" data-entity-id="{EINSTEIN}">' in page
    assert '<select id="predict-relation">' in page and f'<div id="predictions" data-entity-id="{EINSTEIN}">' in page


def test_predictions_load_lazily_per_relation(sample: TestClient) -> None:
    store = sample.app.state.store
    assert sample.get(f"/entity/{q(EINSTEIN)}").status_code == 200
    relations = sample.get(f"/api/entity/{q(EINSTEIN)}/relations").json()["relations"]
    assert BORN_IN in relations
    snap = store.current()
    assert "predictor" not in snap._cache                             # the page did not load the model
    everyone = len(snap.entities)
    answer = sample.get(f"/api/entity/{q(EINSTEIN)}/predictions", params={"relation": BORN_IN, "k": 100}).json()
    assert "predictor" in store.current()._cache                      # loaded by the first prediction asked for
    assert answer["relation"] == BORN_IN and 0 < len(answer["items"]) <= min(100, everyone)
    scores = [item["score"] for item in answer["items"]]
    assert scores == sorted(scores, reverse=True)
    known = {item["id"] for item in answer["items"] if item["known"]}
    assert ULM in known or ULM not in {item["id"] for item in answer["items"]}
    assert any(not item["known"] for item in answer["items"])


def test_neighbours_by_embedding_cosine(sample: TestClient) -> None:
    items = sample.get(f"/api/entity/{q(EINSTEIN)}/neighbours", params={"k": 5}).json()["items"]
    assert len(items) == 5 and EINSTEIN not in {i["id"] for i in items}
    similarity = [i["similarity"] for i in items]
    assert similarity == sorted(similarity, reverse=True) and all(-1 <= s <= 1 for s in similarity)


def test_graph_and_embedding_map(sample: TestClient) -> None:
    graph = sample.get(f"/api/graph/{q(EINSTEIN)}", params={"limit": 5}).json()
    assert graph["center"] == EINSTEIN and 2 <= len(graph["nodes"]) <= 7
    ids = {n["id"] for n in graph["nodes"]}
    assert all(e["source"] in ids and e["target"] in ids for e in graph["edges"])
    assert any(e["relation"] == "bornIn" for e in graph["edges"]) or len(graph["nodes"]) == 7
    points = sample.get("/api/embedding-map", params={"limit": 50}).json()
    assert points["method"] in ("pca", "umap") and 25 <= len(points["points"]) <= 50
    assert all(set(p) == {"id", "label", "type", "x", "y"} for p in points["points"])


# --- documents, patterns, SPARQL, run ---------------------------------------------------------------------


def test_document_page_renders_mentions_and_relations(sample: TestClient) -> None:
    listing = sample.get("/documents", params={"relation": "born_in"}).text
    assert 'href="/document/doc_013"' in listing
    page = sample.get("/document/doc_013").text
    assert 'class="entity"' in page and "Albert Einstein" in page             # displaCy's ent style
    assert 'class="mark-wrong" data-relation-id="r' in page and 'name="csrf-token"' in page
    assert sample.get("/document/no_such_doc").status_code == 404
    patterns = sample.get("/patterns").text
    assert "born_in.passive" in patterns


def test_sparql_select_links_entities_and_refuses_service_updates_and_from(sample: TestClient) -> None:
    answer = sample.post("/api/sparql", json={"query": f"SELECT ?o WHERE {{ <{EINSTEIN}> <{BORN_IN}> ?o }}"})
    assert answer.status_code == 200
    body = answer.json()
    assert body["columns"] == ["o"] and {"value": ULM, "entity_id": ULM} in [r[0] for r in body["rows"]]
    ask = sample.post("/api/sparql", json={"query": f"ASK {{ <{EINSTEIN}> ?p ?o }}"}).json()
    assert ask["rows"] == [[{"value": "true", "entity_id": None}]]
    refused = {
        "SERVICE": "SELECT * WHERE { SERVICE <http://example.org/sparql> { ?s ?p ?o } }",
        "nested SERVICE": "SELECT * WHERE { ?s ?p ?o FILTER EXISTS { SERVICE <http://e.org/q> { ?s ?p ?x } } }",
        "updates": "INSERT DATA { <http://e.org/a> <http://e.org/b> <http://e.org/c> }",
        "LOAD": "LOAD <http://example.org/data.ttl>",
        "FROM": "SELECT * FROM <http://example.org/other.ttl> WHERE { ?s ?p ?o }",
        "CONSTRUCT": "CONSTRUCT { ?s ?p ?o } WHERE { ?s ?p ?o }",
    }
    for what, text in refused.items():
        response = sample.post("/api/sparql", json={"query": text})
        assert response.status_code == 400, what
        assert what.split()[-1].lower() in response.json()["detail"].lower() or what == "LOAD", what
    page = sample.get("/query", params={"query": f"SELECT ?o WHERE {{ <{EINSTEIN}> <{BORN_IN}> ?o }}"}).text
    assert f'<a href="/entity/{q(ULM)}">{ULM}</a>' in page


def test_run_overview_and_status(sample: TestClient) -> None:
    status = sample.get("/api/status").json()
    assert status == {"snapshot": status["snapshot"], "stale": False, "stale_stages": []}
    run = sample.get("/api/run").json()
    assert [s["name"] for s in run["stages"]][:3] == ["ingest", "extract", "fuse"]
    assert all(s["status"] == "up to date" and s["duration_s"] >= 0 for s in run["stages"])
    assert ["extract", "fuse"] in run["edges"] and run["stages"][0]["counts"]
    page = sample.get("/run").text
    assert 'alt="pipeline DAG"' in page and "stale-banner" not in page


# --- corrections ------------------------------------------------------------------------------------------


def _token(client: TestClient, page: str = "/") -> str:
    html = client.get(page).text
    return html.split('<meta name="csrf-token" content="', 1)[1].split('"', 1)[0]


def test_corrections_are_refused_without_token_with_foreign_origin_or_host(sample: TestClient) -> None:
    relation_id = sample.get("/document/doc_013").text.split('data-relation-id="', 1)[1].split('"', 1)[0]
    body = {"relation_id": relation_id, "verdict": "wrong"}
    token, own = _token(sample), {"Origin": BASE}
    assert sample.post("/api/corrections", json=body, headers=own).status_code == 403
    assert sample.post("/api/corrections", json=body, headers={**own, TOKEN_HEADER: "guess"}).status_code == 403
    foreign = sample.post("/api/corrections", json=body, headers={TOKEN_HEADER: token, "Origin": "http://evil.example"})
    assert foreign.status_code == 403 and "evil.example" in foreign.json()["detail"]
    other_port = {TOKEN_HEADER: token, "Origin": "http://127.0.0.1:9999"}
    assert sample.post("/api/corrections", json=body, headers=other_port).status_code == 403
    rebound = sample.post("/api/corrections", json=body, headers={TOKEN_HEADER: token, **own,
                                                                  "Host": "attacker.example:8765"})
    assert rebound.status_code == 400 and "127.0.0.1 or localhost only" in rebound.text
    other = sample.post("/api/corrections", json=body, headers={TOKEN_HEADER: token, **own, "Host": "127.0.0.1:9999"})
    assert other.status_code == 403 and "Host" in other.json()["detail"]
    assert not corrections_path(sample.app.state.store.pipe).exists()
    # DNS rebinding: another site's name resolved to 127.0.0.1 reads nothing either
    assert sample.get("/api/status", headers={"Host": "attacker.example:8765"}).status_code == 400
    assert sample.get("/api/status", headers={"Host": "localhost:8765"}).status_code == 200


def test_corrections_are_disabled_off_loopback(sample_pipeline: Path) -> None:
    client = TestClient(create_app(sample_pipeline, host="0.0.0.0", port=8765), base_url=BASE)
    relation_id = client.get("/document/doc_013").text.split('data-relation-id="', 1)[1].split('"', 1)[0]
    response = client.post("/api/corrections", json={"relation_id": relation_id, "verdict": "wrong"},
                           headers={TOKEN_HEADER: _token(client), "Origin": BASE})
    assert response.status_code == 403 and "disabled" in response.json()["detail"]
    assert 'class="mark-wrong" data-relation-id="' in client.get("/document/doc_013").text
    assert " disabled title=" in client.get("/document/doc_013").text


def test_a_correction_is_appended_in_the_format_the_negatives_readers_take(sample: TestClient, nlp) -> None:
    out = sample.get(f"/api/entity/{q(EINSTEIN)}/triples", params={"direction": "out"}).json()["items"]
    relation_id = next(e["relation_id"] for t in out if t["relation"] == BORN_IN and t["tail"]["id"] == ULM
                       for e in t["evidence"] if e["relation_id"])
    headers = {TOKEN_HEADER: _token(sample, "/document/doc_013"), "Origin": BASE}
    for _ in range(2):
        response = sample.post("/api/corrections", json={"relation_id": relation_id, "verdict": "wrong"},
                               headers=headers)
        assert response.status_code == 204
    assert sample.post("/api/corrections", json={"relation_id": "r-none", "verdict": "wrong"},
                       headers=headers).status_code == 404
    path = corrections_path(sample.app.state.store.pipe)
    assert path.is_relative_to(sample.app.state.store.pipe.workspace)
    assert not path.is_relative_to(sample.app.state.store.pipe.artifacts)
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 2 and rows[0]["relation_id"] == relation_id and rows[0]["verdict"] == "wrong"
    sentences = read_labelled(path)                       # the reader of --negatives in both commands
    assert len(sentences) == 2
    first = sentences[0]
    (s0, e0), (s1, e1) = first.char_spans()
    assert first.relations[0].type == rows[0]["relations"][0]["type"] and first.relations[0].head == 0
    assert "Einstein" in first.surface[s0:e0] and first.surface[s1:e1] == "Ulm"
    assert first.relations[0].type == "born_in" and [e.type for e in first.entities] == ["PERSON", "GPE"]

    from kgpipe.nlp.learn import LearnOptions, LearnReport, collect_wrong_pairs

    report = LearnReport()
    pairs = collect_wrong_pairs(nlp, sentences, LearnOptions(), report)
    assert report.negatives == len(pairs) == 2 and pairs[0].wrong == first.relations[0].type
    doc = rows[0]["doc_id"]
    assert f'data-relation-id="{relation_id}"' not in sample.get(f"/document/{doc}").text
    assert "marked wrong" in sample.get(f"/document/{doc}").text
    pattern = rows[0]["pattern_id"]
    patterns = sample.get("/patterns").text
    row = patterns.split(f"<code>{pattern}</code>", 1)[1].split("</tr>", 1)[0]
    assert "<td>1</td>" in row                                        # one relation of the pattern marked wrong


# --- snapshots and missing artifacts ----------------------------------------------------------------------


def test_snapshot_changes_when_a_run_commits_new_artifacts(synthetic) -> None:
    pipeline, client = synthetic
    before = client.get("/api/status").json()
    assert before["stale"] is False
    assert client.get("/api/search", params={"q": "Brand New Name"}).json()["results"] == []
    write_synthetic(pipeline.parent, 200, 600, hub_degree=10, seed=1,
                    extra=[*RANKED, {"id": NS + "new", "label": "Brand New Name", "mention_count": 1}])
    after = client.get("/api/status").json()
    assert after["snapshot"] != before["snapshot"] and after["stale"] is False
    assert client.get("/api/search", params={"q": "Brand New Name"}).json()["results"][0]["id"] == NS + "new"
    assert client.get(f"/api/entity/{q(NS + 'hub')}/triples").json()["total"] == 10
    # outputs replaced without a commit to the lock file (a run between writing and committing, or a hand
    # edit): the tables are read again, and the lock says the outputs are stale
    write_synthetic(pipeline.parent, 200, 600, hub_degree=3, extra=RANKED, seed=2, lock=False)
    assert client.get(f"/api/entity/{q(NS + 'hub')}/triples").json()["total"] == 3
    stale = client.get("/api/status").json()
    assert stale["snapshot"] == after["snapshot"] and stale["stale"] is True and stale["stale_stages"] == ["fuse"]
    assert 'id="stale-banner"' in client.get("/map").text
    commit_lock(pipeline)
    committed = client.get("/api/status").json()
    assert committed["snapshot"] not in (before["snapshot"], after["snapshot"]) and committed["stale"] is False
    assert 'id="stale-banner"' not in client.get("/map").text


def test_explorer_without_artifacts_says_to_run_the_pipeline(tmp_path: Path) -> None:
    from tests.web_synthetic import write_pipeline

    pipeline = write_pipeline(tmp_path, embed=False)
    with pytest.raises(ArtifactError, match="does not exist yet") as missing:
        create_app(pipeline)
    assert "kgpipe run" in (missing.value.hint or "")


def test_explore_command_serves_the_app_and_warns_off_loopback(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn
    from typer.testing import CliRunner

    from kgpipe.cli import app
    from tests.web_synthetic import write_pipeline

    pipeline = write_pipeline(tmp_path, embed=False)
    missing = CliRunner().invoke(app, ["explore", str(pipeline)])
    assert missing.exit_code == ArtifactError.exit_code and "kgpipe run" in missing.output
    write_synthetic(tmp_path, 20, 40)
    served: list[tuple[str, int]] = []
    monkeypatch.setattr(uvicorn, "run", lambda web_app, host, port, **_: served.append((host, port)))
    local = CliRunner().invoke(app, ["explore", str(pipeline), "--port", "8799"])
    assert local.exit_code == 0 and "http://127.0.0.1:8799/" in local.output and "warning" not in local.output
    wide = CliRunner().invoke(app, ["explore", str(pipeline), "--host", "0.0.0.0"])
    assert wide.exit_code == 0 and "corrections" in wide.output and "disabled" in wide.output
    assert served == [("127.0.0.1", 8799), ("0.0.0.0", 8765)]


def test_a_snapshot_refuses_tables_replaced_after_it_was_made(synthetic) -> None:
    from kgpipe.web.data import SnapshotChanged, SnapshotStore

    pipeline, _ = synthetic
    store = SnapshotStore(pipeline)
    snap = store.current()
    assert len(snap.triples) > 0 and store.current() is snap          # one snapshot while nothing changes
    write_synthetic(pipeline.parent, 50, 100, extra=RANKED, seed=3, lock=False)
    with pytest.raises(SnapshotChanged, match="reload"):
        _ = snap.entities                                               # not read before the run replaced it
    fresh = store.current()
    assert fresh is not snap and fresh.id == snap.id and len(fresh.entities) == 50 + 1 + len(RANKED)


# --- pair explanations (learned weights) --------------------------------------------------------------------

MIT = "http://ex.org/MIT"


@pytest.fixture(scope="module")
def learned(learned_fuse: Path) -> TestClient:
    """The explorer over a fuse run with learned weights (tests.learned_run)."""
    return TestClient(create_app(learned_fuse / "pipeline.yaml", host="127.0.0.1", port=8765), base_url=BASE)


def test_api_explain_gives_the_numbers_kgpipe_explain_prints(learned: TestClient, learned_fuse: Path) -> None:
    from kgpipe.fuse_explain import explain_pair

    answer = learned.get("/api/explain", params={"head": "MIT", "tail": "M.I.T."})
    assert answer.status_code == 200, answer.text
    got = answer.json()
    cli = explain_pair(learned_fuse / "pipeline.yaml", "MIT", "M.I.T.")
    why = cli.explanation
    assert (got["prior"], got["prior_weight"], got["total"], got["probability"]) == (
        why.prior, why.prior_weight, why.total, why.probability)
    assert [(t["comparison"], t["level"], t["m"], t["u"], t["weight"], t["tf_adjusted"]) for t in got["terms"]] == [
        (t.comparison, t.level, t.m, t.u, t.weight, t.tf_adjusted) for t in why.terms]
    assert got["prior_weight"] + sum(t["weight"] for t in got["terms"]) == pytest.approx(got["total"])
    assert got["together"] is True and got["stage"] == "fuse" and got["type_factor"] == 1.0
    assert got["head"] == {"asked": "MIT", "text": "MIT", "type": cli.head.type, "mentions": 2,
                           "entities": [{"id": MIT, "label": "Massachusetts Institute of Technology"}]}
    apart = learned.get("/api/explain", params={"head": "Massachusetts Institute of Technology",
                                                "tail": "Ada Quill"}).json()
    assert apart["together"] is False and apart["head"]["text"] == "The Massachusetts Institute of Technology"


def test_api_explain_errors_are_404_409_and_400_with_the_message(learned: TestClient, sample: TestClient) -> None:
    unknown = learned.get("/api/explain", params={"head": "MIT", "tail": "Ada Quil"})
    assert unknown.status_code == 404
    assert "no mention or entity of the last fuse run is called 'Ada Quil'" in unknown.json()["detail"]
    assert "'Ada Quill'" in unknown.json()["detail"]                           # the close name as a hint
    assert learned.get("/api/explain", params={"head": "MIT", "tail": " "}).status_code == 400
    assert learned.get("/api/explain", params={"head": "MIT"}).status_code == 422
    fixed = sample.get("/api/explain", params={"head": "Albert Einstein", "tail": "Einstein"})
    assert fixed.status_code == 409 and "explain needs resolution.learn: em" in fixed.json()["detail"]
    assert "Traceback" not in fixed.text


def test_the_explain_page_shows_the_sides_and_the_waterfall(learned: TestClient) -> None:
    assert 'id="explain-form"' in learned.get("/explain").text and "explain-unavailable" not in learned.get(
        "/explain").text
    page = learned.get("/explain", params={"head": "MIT", "tail": "M.I.T."})
    assert page.status_code == 200
    section = page.text[page.text.index('<section id="explanation"'):]
    assert section.startswith('<section id="explanation" data-together="true"')
    assert "the run put them in one entity" in section
    assert f'<a href="/entity/{q(MIT)}">Massachusetts Institute of Technology</a>' in section
    assert section.count('<rect class="bar') == 7 and "<svg" in section and "<details open>" in section
    assert 'value="M.I.T."' in page.text                                       # the form keeps the names


def test_explain_page_errors_are_messages_in_the_page(learned: TestClient, sample: TestClient) -> None:
    unknown = learned.get("/explain", params={"head": SCRIPT, "tail": "MIT"})
    assert unknown.status_code == 404 and 'id="explain-error"' in unknown.text
    assert SCRIPT not in unknown.text and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in unknown.text
    assert "Traceback" not in unknown.text and 'id="explanation"' not in unknown.text
    form = sample.get("/explain")
    assert form.status_code == 200 and 'id="explain-unavailable"' in form.text
    assert "explain needs resolution.learn: em" in form.text
    fixed = sample.get("/explain", params={"head": "Albert Einstein", "tail": "Einstein"})
    assert fixed.status_code == 409 and "explain needs resolution.learn: em" in fixed.text


def test_an_entity_of_several_texts_links_to_why_it_merged(learned: TestClient, sample: TestClient) -> None:
    page = learned.get(f"/entity/{q(MIT)}").text
    link = '<a id="why-merged" href="/explain?head=MIT&amp;tail=M.I.T."'
    assert link in page
    assert learned.get("/explain?head=MIT&tail=M.I.T.").status_code == 200
    boston = learned.get("/api/search", params={"q": "Boston"}).json()["results"][0]["id"]
    assert 'id="why-merged"' not in learned.get(f"/entity/{q(boston)}").text      # one text: nothing merged
    assert len(sample.app.state.store.current().mention_texts(EINSTEIN)) >= 2  # merged, but under fixed weights:
    assert 'id="why-merged"' not in sample.get(f"/entity/{q(EINSTEIN)}").text   # nothing to explain with
