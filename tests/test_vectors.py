"""The vectors stage through the runner: a tiny graph embedded by the embed stage, entities in no triple given a
vector predicted from their label and sentences; predict_tails on such an entity."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from kgpipe.artifacts import DOCUMENTS, EMBEDDINGS, ENTITIES, MENTION_ENTITIES, MENTIONS, write_table
from kgpipe.corpus import document_row
from kgpipe.errors import ArtifactError, InputError, PipelineError
from kgpipe.export.embeddings import Embeddings, load_embeddings
from kgpipe.runner import run
from tests.tiny_encoder import make_tiny_bert

EX = "http://ex.org/"
PEOPLE = ["Marie Curie", "Niels Bohr", "Albert Einstein", "Lise Meitner", "Enrico Fermi", "Max Planck"]
CITIES = ["Warsaw", "Copenhagen", "Ulm", "Vienna", "Rome", "Kiel"]
LABS = ["Sorbonne", "Bohr Institute", "Princeton", "Kaiser Wilhelm Institute", "Columbia", "Humboldt"]
# in no triple: a twin of Marie Curie (her label and her sentence), and two others with sentences of their own
LONERS = [("twin", "Marie Curie"), ("ada", "Ada Lovelace"), ("alan", "Alan Turing")]


def iri(name: str) -> str:
    return EX + name.replace(" ", "_")


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("vectors")
    make_tiny_bert(root / "tiny")
    triples = []
    for person, city, lab in zip(PEOPLE, CITIES, LABS, strict=True):
        triples += [(person, "bornIn", city), (person, "worksAt", lab), (lab, "locatedIn", city)]
    for a, b in itertools.pairwise(PEOPLE):
        triples.append((a, "knows", b))
    (root / "kg.tsv").write_text("".join(f"{iri(h)}\t{EX}{r}\t{iri(t)}\n" for h, r, t in triples))
    names = [(iri(n), n) for n in PEOPLE + CITIES + LABS] + [(EX + key, label) for key, label in LONERS]
    write_table([{"id": e, "label": label, "type": None, "aliases": ["Ada King"] if label == "Ada Lovelace" else [],
                  "seed_iri": None, "mention_count": 1, "sources": ["kg.tsv"]} for e, label in names],
                root / "entities.parquet", ENTITIES)
    sentences = {iri(p): f"{p} was born in {c} and worked at {lab}." for p, c, lab in zip(PEOPLE, CITIES, LABS,
                                                                                             strict=True)}
    sentences[EX + "twin"] = sentences[iri("Marie Curie")]
    sentences[EX + "ada"] = "Ada Lovelace wrote the first program for the Analytical Engine."
    sentences[EX + "alan"] = "Alan Turing broke the Enigma code at Bletchley Park."
    docs, mentions, links = [], [], []
    for i, (entity, sentence) in enumerate(sentences.items()):
        text = f"A heading. {sentence} Another sentence follows here."
        docs.append(document_row(f"d{i}", text, "corpus.txt"))
        start = text.index(sentence)
        mentions.append({"mention_id": f"m{i}", "doc_id": f"d{i}", "sentence": 1, "start_char": start,
                         "end_char": start + 5, "text": text[start:start + 5], "label": "X", "kg_type": None,
                         "source": "ner", "seed_iri": None})
        links.append({"mention_id": f"m{i}", "entity_id": entity})
    write_table(docs, root / "documents.parquet", DOCUMENTS)
    write_table(mentions, root / "mentions.parquet", MENTIONS)
    write_table(links, root / "mention_entities.parquet", MENTION_ENTITIES)
    return root


def pipeline(root: Path, name: str = "p.yaml", *, deps: dict | None = None, **params: object) -> Path:
    stages = {
        "embed": {"type": "embed", "deps": {"triples": "kg.tsv", "entities": "entities.parquet"},
                  "params": {"model": "ComplEx", "embedding_dim": 8, "epochs": 20, "seed": 1,
                             "validation_fraction": 0.0, "test_fraction": 0.1, "early_stopping": False,
                             "checkpoint_minutes": 0}},
        "vectors": {"type": "vectors",
                    "deps": deps if deps is not None else {
                        "entities": "entities.parquet", "embeddings": "artifacts_p/embed/entity_embeddings.parquet",
                        "mentions": "mentions.parquet", "mention_entities": "mention_entities.parquet",
                        "documents": "documents.parquet"},
                    "params": {"encoder": "tiny", "ridge": 0.01, **params}},
    }
    if name != "p.yaml":  # a variant: the vectors stage alone on p.yaml's embeddings, in artifacts of its own
        del stages["embed"]
    path = root / name
    path.write_text(yaml.safe_dump({"root": ".", "artifacts": f"artifacts_{Path(name).stem}", "stages": stages}))
    return path


@pytest.fixture(scope="module")
def made(graph: Path) -> dict:
    result = run(pipeline(graph))
    return {"table": load_embeddings(result.outputs["vectors"]["entity_vectors"]),
            "trained": load_embeddings(result.outputs["embed"]["entity_embeddings"]),
            "metrics": json.loads(result.outputs["vectors"]["metrics"].read_text()),
            "path": result.outputs["vectors"]["entity_vectors"], "model": result.outputs["embed"]["model"]}


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_every_entity_gets_a_row_and_trained_rows_are_embed_s(made: dict) -> None:
    table, trained = made["table"], made["trained"]
    assert len(trained) == 18 and len(table) == 21
    assert table.ids[:18] == trained.ids and table.labels[:18] == trained.labels
    assert table.vectors[:18].tobytes() == trained.vectors.tobytes()
    assert table.inductive == [False] * 18 + [True] * 3
    assert table.ids[18:] == [EX + key for key, _ in LONERS]
    assert table.metadata["layout"] == trained.metadata["layout"] and table.metadata["inductive_rows"] == "3"
    metrics = made["metrics"]
    assert metrics["anchors"] == 18 and metrics["heldout_anchors"] == 2 and metrics["inductive"] == 3
    assert metrics["inductive_with_context"] == 3 and isinstance(metrics["heldout_cosine"], float)


def test_inductive_vectors_are_predicted_from_text(made: dict) -> None:
    table = made["table"]
    twin, curie = table.vector(EX + "twin"), table.vector(iri("Marie Curie"))
    # the twin has Marie Curie's label and sentence, so the map (interpolating its 18 anchors) puts it on her
    assert table.most_similar(twin, k=1)[0][0] in (iri("Marie Curie"), EX + "twin")
    assert cosine(twin, curie) > 0.95
    ada, alan = table.vector(EX + "ada"), table.vector(EX + "alan")
    assert not np.allclose(ada, alan) and np.linalg.norm(ada) > 0 and cosine(ada, curie) < cosine(twin, curie)


def test_context_changes_the_vector(graph: Path, made: dict) -> None:  # made: p.yaml's embeddings exist
    """Without the mentions the twin is predicted from its label alone: a different vector."""
    result = run(pipeline(graph, "label_only.yaml", deps={
        "entities": "entities.parquet", "embeddings": "artifacts_p/embed/entity_embeddings.parquet"}))
    label_only = load_embeddings(result.outputs["vectors"]["entity_vectors"])
    metrics = json.loads(result.outputs["vectors"]["metrics"].read_text())
    assert metrics["inductive_with_context"] == 0 and label_only.inductive == made["table"].inductive
    assert not np.allclose(label_only.vector(EX + "ada"), made["table"].vector(EX + "ada"))


def test_two_runs_write_the_same_bytes(graph: Path, made: dict) -> None:
    before = made["path"].read_bytes()
    run(pipeline(graph), only="vectors", force=True)
    assert made["path"].read_bytes() == before


def test_the_packaged_encoder(graph: Path, made: dict) -> None:
    result = run(pipeline(graph, "minilm.yaml", encoder="all-MiniLM-L6-v2"))
    table = load_embeddings(result.outputs["vectors"]["entity_vectors"])
    metrics = json.loads(result.outputs["vectors"]["metrics"].read_text())
    assert metrics["encoder"] == "all-MiniLM-L6-v2" and metrics["feature_dim"] == 768
    assert cosine(table.vector(EX + "twin"), table.vector(iri("Marie Curie"))) > 0.95
    assert table.inductive is not None and sum(table.inductive) == 3


def test_bad_inputs_are_named(graph: Path, made: dict) -> None:
    write_table([{"id": "x", "label": "x", "vector": [1.0]}], graph / "stray.parquet",
                EMBEDDINGS)
    with pytest.raises(InputError, match=r"stray\.parquet.*no entity of the entities table has an embedding"):
        run(pipeline(graph, "stray.yaml", deps={"entities": "entities.parquet", "embeddings": "stray.parquet"}))
    with pytest.raises(InputError, match=r"entities\.parquet.*not embed's entity_embeddings.*vector"):
        run(pipeline(graph, "swapped.yaml", deps={"entities": "entities.parquet",
                                                   "embeddings": "entities.parquet"}))
    with pytest.raises(InputError, match=r"entity_vectors\.parquet.*a vectors table already"):
        run(pipeline(graph, "twice.yaml", deps={"entities": "entities.parquet",
                                                "embeddings": "artifacts_p/vectors/entity_vectors.parquet"}))
    write_table([{"mention_id": "m404", "entity_id": EX + "ada"}], graph / "bad_links.parquet", MENTION_ENTITIES)
    with pytest.raises(InputError, match=r"bad_links\.parquet \(row 1\): mention 'm404'"):
        run(pipeline(graph, "links.yaml", deps={
            "entities": "entities.parquet", "embeddings": "artifacts_p/embed/entity_embeddings.parquet",
            "mentions": "mentions.parquet", "mention_entities": "bad_links.parquet",
            "documents": "documents.parquet"}))
    with pytest.raises(PipelineError, match="need mention_entities, documents"):
        run(pipeline(graph, "partial.yaml", deps={
            "entities": "entities.parquet", "embeddings": "artifacts_p/embed/entity_embeddings.parquet",
            "mentions": "mentions.parquet"}))


def test_predict_tails_from_an_inductive_vector(made: dict) -> None:
    from kgpipe.embed import LinkPredictor

    predictor = LinkPredictor.load(made["model"], vectors=made["path"])
    assert predictor.is_inductive(EX + "ada") and not predictor.is_inductive("Niels Bohr")
    answer = predictor.predict_tails(EX + "ada", "worksAt", k=5)
    assert answer["inductive_query"].all() and not answer["in_training"].any() and len(answer) == 5
    assert "inductive" in answer.attrs["note"] and list(answer["score"]) == sorted(answer["score"], reverse=True)
    with pytest.raises(KeyError, match=r"no entity with id or label 'http://ex\.org/ada'"):  # not without the table
        LinkPredictor.load(made["model"]).predict_tails(EX + "ada", "worksAt")

    # an inductive row holding Niels Bohr's trained vector must score exactly as PyKEEN scores Niels Bohr
    table = made["table"]
    vectors = table.vectors.copy()
    vectors[table.row(EX + "alan")] = table.vector(iri("Niels Bohr"))
    copy = Embeddings(table.ids, table.labels, vectors, None, dict(table.metadata), table.inductive)
    predictor.use_vectors(copy)
    for mine, own in ((predictor.predict_tails(EX + "alan", "worksAt", k=18),
                       predictor.predict_tails(iri("Niels Bohr"), "worksAt", k=18)),
                      (predictor.predict_heads("knows", EX + "alan", k=18),
                       predictor.predict_heads("knows", iri("Niels Bohr"), k=18))):
        assert np.allclose(mine["score"].to_numpy(), own["score"].to_numpy(), rtol=1e-5, atol=1e-6)
        assert set(mine["id"][:3]) == set(own["id"][:3])


def test_a_table_of_another_model_is_refused(made: dict) -> None:
    from kgpipe.embed import LinkPredictor

    table = made["table"]
    vectors = table.vectors.copy()
    vectors[0] += 1.0
    other = Embeddings(table.ids, table.labels, vectors, None, dict(table.metadata), table.inductive)
    with pytest.raises(ArtifactError, match="not this model's vectors"):
        LinkPredictor.load(made["model"], vectors=other)


def test_a_mention_s_context_is_its_sentence() -> None:
    from kgpipe.embed.inductive import entity_texts, sentence_around

    text = 'Intro here. Marie Curie (born in Warsaw) won prizes! "Then?" Pierre Curie did too.'
    start = text.index("Warsaw")
    assert sentence_around(text, start, start + 6) == "Marie Curie (born in Warsaw) won prizes!"
    assert sentence_around(text, 0, 5) == "Intro here."
    start = text.index("Pierre")
    assert sentence_around(text, start, start + 6) == "Pierre Curie did too."
    texts = entity_texts([("e", "Marie Curie", ["Curie", "Marie Curie", ""])],
                         [("e", "d", 12, 23), ("e", "d", 33, 39), ("e", "d", 0, 5)], {"d": text}, max_contexts=1)
    assert texts[0].names == ("Marie Curie", "Curie") and texts[0].contexts == ("Intro here.",)
