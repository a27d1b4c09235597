"""kgpipe's notebook-facing API on the sample pipeline: provenance through the ids, the saved model's link
prediction, the fusion report and training history as tables; ego networks and PCA on small known inputs."""

from __future__ import annotations

import json
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import pytest

import kgpipe
from kgpipe.artifacts import MENTION_ENTITIES, MENTIONS, RELATIONS, read_table
from kgpipe.errors import InputError
from kgpipe.export.embeddings import Embeddings
from tests.conftest import REPO
from tests.sample_pipeline import TEST_EMBED_PARAMS


@pytest.fixture(scope="module")
def fused(sample_pipeline: Path) -> dict:
    return {"entities": kgpipe.load_artifact(sample_pipeline, "fuse.entities"),
            "triples": kgpipe.load_artifact(sample_pipeline, "fuse.triples"),
            "links": read_table(kgpipe.artifact_path(sample_pipeline, "fuse.mention_entities"), MENTION_ENTITIES),
            "mentions": read_table(kgpipe.artifact_path(sample_pipeline, "extract.mentions"), MENTIONS),
            "relations": read_table(kgpipe.artifact_path(sample_pipeline, "extract.relations"), RELATIONS)}


def test_mention_entities_link_every_related_mention_to_a_fused_entity(fused: dict) -> None:
    links = fused["links"]
    assert links["mention_id"].is_unique and set(links["entity_id"]) <= set(fused["entities"]["id"])
    related = set(fused["relations"]["subject_id"]) | set(fused["relations"]["object_id"])
    assert related <= set(links["mention_id"])
    # an entity's mention count is the number of mentions resolved to it
    counts = links["entity_id"].value_counts()
    entities = fused["entities"].set_index("id")
    assert (entities.loc[counts.index, "mention_count"] == counts).all()


def test_provenance_leads_from_every_text_triple_to_sentences_stating_it(sample_pipeline: Path,
                                                                        fused: dict) -> None:
    doc_ids = set(fused["relations"]["doc_id"])
    text_triples = fused["triples"][fused["triples"]["sources"].map(lambda s: bool(set(s) & doc_ids))]
    assert len(text_triples) >= 50
    text_triples = text_triples.iloc[::max(1, len(text_triples) // 25)]   # a spread of them keeps the test short
    entity_of = dict(zip(fused["links"]["mention_id"], fused["links"]["entity_id"], strict=True))
    mentions = fused["mentions"].set_index("mention_id")
    docs = kgpipe.load_artifact(sample_pipeline, "ingest.documents").set_index("doc_id")
    for triple in text_triples.itertuples(index=False):
        evidence = kgpipe.provenance(sample_pipeline, triple._asdict())
        text = evidence[evidence["kind"] == "text"]
        assert set(text["source"]) == set(triple.sources) & doc_ids
        assert list(evidence.loc[evidence["kind"] == "seed", "source"]) == [
            s for s in triple.sources if s not in doc_ids]
        for row in text.itertuples(index=False):
            assert entity_of[row.subject_id] == triple.head and entity_of[row.object_id] == triple.tail
            subject, obj = mentions.loc[row.subject_id], mentions.loc[row.object_id]
            assert subject["doc_id"] == obj["doc_id"] == row.source
            assert row.document == docs.loc[row.source, "source"] and (REPO / row.document).exists()
            assert subject["text"] in row.sentence and obj["text"] in row.sentence
            assert docs.loc[row.source, "text"][subject["start_char"]:subject["end_char"]] == row.subject


def test_provenance_by_label_and_local_name_and_clear_errors(sample_pipeline: Path, fused: dict) -> None:
    entities = fused["entities"].set_index("id")
    labels = entities["label"]
    unique = fused["triples"][fused["triples"]["head"].map(labels).map(lambda la: (labels == la).sum() == 1)
                              & fused["triples"]["tail"].map(labels).map(lambda la: (labels == la).sum() == 1)]
    triple = unique.sort_values("count", ascending=False).iloc[0]
    by_id = kgpipe.provenance(sample_pipeline, (triple["head"], triple["relation"], triple["tail"]))
    local = triple["relation"].rsplit("/", 1)[-1]
    by_label = kgpipe.provenance(sample_pipeline, labels[triple["head"]], local, labels[triple["tail"]])
    pd.testing.assert_frame_equal(by_id, by_label)
    assert len(by_id) == len(triple["sources"])

    with pytest.raises(InputError, match="no triple") as missing:
        kgpipe.provenance(sample_pipeline, (triple["tail"], triple["relation"], triple["head"]))
    assert "relations:" in str(missing.value)
    with pytest.raises(InputError, match=r"no entity .*Albrt Einstien") as typo:
        kgpipe.provenance(sample_pipeline, ("Albrt Einstien", local, triple["tail"]))
    assert "did you mean" in str(typo.value)
    with pytest.raises(InputError, match="no relation 'noSuchRelation'"):
        kgpipe.provenance(sample_pipeline, (triple["head"], "noSuchRelation", triple["tail"]))


def test_fusion_summary_tables_match_the_report(sample_pipeline: Path) -> None:
    summary = kgpipe.fusion_summary(sample_pipeline)
    report = json.loads(kgpipe.artifact_path(sample_pipeline, "fuse.report").read_text())
    assert summary.report == report
    merges = summary.largest_merges
    assert list(merges["id"]) == [m["id"] for m in report["merges"]["largest"]]
    assert merges["mentions"].is_monotonic_decreasing and (merges["names"] >= 1).all()
    graphs = {g for pair in report["overlap"] for g in pair["graphs"]}
    assert len(summary.overlap) == len(graphs) * (len(graphs) - 1) // 2 >= 3
    assert (summary.overlap["nodes_jaccard"] <= summary.overlap["nodes_overlap_coefficient"]).all()
    assert len(summary.conflicts) == len(report["conflicts"])
    assert kgpipe.fusion_summary(report).largest_merges.equals(merges)   # the dict works as well


def test_training_history_has_every_epoch_and_the_validations(sample_pipeline: Path) -> None:
    history = kgpipe.training_history(sample_pipeline)
    metrics = kgpipe.load_artifact(sample_pipeline, "embed.metrics")
    assert list(history["epoch"]) == list(range(1, metrics["training"]["epochs"] + 1))
    assert history["loss"].tolist() == metrics["training"]["losses"]
    every = TEST_EMBED_PARAMS["early_stopping"]["frequency"]
    assert list(history.dropna()["epoch"]) == list(range(every, len(history) + 1, every))


def test_load_model_predicts_tails_and_heads(sample_pipeline: Path, fused: dict) -> None:
    model = kgpipe.load_model(sample_pipeline)
    same = kgpipe.load_model(kgpipe.artifact_path(sample_pipeline, "embed.model"))
    triples = fused["triples"]
    trained = set(model.info.entity_ids)
    triple = triples[triples["head"].isin(trained) & triples["tail"].isin(trained)].iloc[0]
    tails = model.predict_tails(triple["head"], triple["relation"], k=len(trained))
    assert len(tails) == len(trained) and tails["score"].is_monotonic_decreasing
    pd.testing.assert_frame_equal(tails.head(5), same.predict_tails(triple["head"], triple["relation"], k=5))
    known = tails.set_index("id")["in_training"]
    assert known.any() and known.sum() < len(known)
    heads = model.predict_heads(triple["relation"], triple["tail"], k=5, exclude_known=True)
    assert len(heads) == 5 and not heads["in_training"].any()


# --- small known inputs ---------------------------------------------------------------------------------------


def test_ego_graph_keeps_the_best_connected_neighbours() -> None:
    graph = nx.MultiDiGraph()
    graph.add_node("c", label="Centre")
    for i in range(6):
        graph.add_edge("c", f"n{i}", key="r")
    for i in range(3):  # n0 has three more neighbours: it must be kept first when the graph is cut
        graph.add_edge(f"x{i}", "n0", key="s")
    graph.add_edge("n1", "c", key="back")
    ego = kgpipe.ego_graph(graph, "Centre")
    assert set(ego) == {"c", *(f"n{i}" for i in range(6))} and ego.has_edge("n1", "c")
    assert set(kgpipe.ego_graph(graph, "c", radius=2)) == set(graph)
    small = kgpipe.ego_graph(graph, "c", max_nodes=3)
    assert len(small) == 3 and {"c", "n0", "n1"} == set(small)
    graph.add_node("d", label="Centre")
    with pytest.raises(InputError, match="labels 2 nodes"):
        kgpipe.ego_graph(graph, "Centre")


def test_pca_finds_the_direction_of_largest_variance_and_types_join_by_id() -> None:
    rng = np.random.default_rng(0)
    direction = np.array([3.0, 4.0, 0.0, 0.0]) / 5
    vectors = rng.normal(size=(200, 1)) * 10 * direction + rng.normal(size=(200, 4)) * 0.1
    emb = Embeddings([f"e{i}" for i in range(200)], [f"E{i}" for i in range(200)], vectors)
    xy = emb.pca(2)
    assert xy.shape == (200, 2) and xy[:, 0].var() > 100 * xy[:, 1].var()
    assert abs(np.corrcoef(xy[:, 0], vectors @ direction)[0, 1]) > 0.999
    assert np.allclose(xy, Embeddings(emb.ids, emb.labels, vectors).pca(2))   # same signs every time
    assert abs(float(xy[:, 0] @ xy[:, 1])) < 1e-2 * float(np.abs(xy).sum())
    with pytest.raises(ValueError):
        emb.pca(5)
    typed = emb.with_types(pd.Series({"e1": "Person", "e2": float("nan")}))
    assert typed.types[:3] == [None, "Person", None]


def test_load_artifact_returns_tables_reports_and_graphs(sample_pipeline: Path) -> None:
    from kgpipe.errors import ArtifactError

    entities = kgpipe.load_artifact(sample_pipeline, "fuse.entities")
    graph = kgpipe.load_artifact(sample_pipeline, "fuse.graph_graphml")
    assert isinstance(entities, pd.DataFrame) and set(graph.nodes) == set(entities["id"])
    assert isinstance(kgpipe.load_artifact(sample_pipeline, "fuse.report"), dict)
    with pytest.raises(ArtifactError, match=r"not a table.*") as folder:
        kgpipe.load_artifact(sample_pipeline, "embed.model")
    assert "artifact_path" in str(folder.value)
