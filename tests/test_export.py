"""Every export format read back with the library its users would use; vectors and ids match."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from kgpipe.export.embeddings import Embeddings, load_embeddings
from kgpipe.export.formats import EMBEDDING_FORMATS, export_embeddings
from tests.conftest import REPO

IDS = ["http://kgpipe.org/sample/Marie_Curie", "http://kgpipe.org/sample/Pierre_Curie",
       "http://kgpipe.org/sample/Warsaw", "http://kgpipe.org/sample/Paris", "urn:x:with space"]
LABELS = ["Marie Curie", "Pierre Curie", "Warsaw", "Paris", "odd\tlabel"]
TYPES = ["schema:Person", "schema:Person", "schema:City", "schema:City", None]


@pytest.fixture
def emb() -> Embeddings:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(5, 6)).astype(np.float32)
    vectors[1] = vectors[0] * 2 + 0.01   # Pierre is Marie's nearest neighbour
    return Embeddings(IDS, LABELS, vectors, TYPES, {"model": "TransE"})


@pytest.fixture
def exported(emb: Embeddings, tmp_path: Path) -> dict[str, list[Path]]:
    return export_embeddings(emb, tmp_path / "out", sorted(EMBEDDING_FORMATS))


def test_lookup_and_most_similar(emb: Embeddings) -> None:
    assert np.array_equal(emb.vector("Warsaw"), emb.vectors[2])
    assert np.array_equal(emb.vector(IDS[3]), emb.vectors[3])
    nearest = emb.most_similar("Marie Curie", k=2)
    assert nearest[0][:2] == (IDS[1], "Pierre Curie") and nearest[0][2] > 0.99
    assert len(nearest) == 2 and IDS[0] not in [n[0] for n in nearest]
    brute = sorted(((float(emb.vectors[i] @ emb.vectors[0] / np.linalg.norm(emb.vectors[i])
                           / np.linalg.norm(emb.vectors[0])), IDS[i]) for i in range(1, 5)), reverse=True)
    assert [n[0] for n in emb.most_similar(IDS[0], k=4)] == [i for _, i in brute]
    with pytest.raises(KeyError):
        emb.vector("Nobody")


def test_npy_and_json(emb, exported) -> None:
    vectors = np.load(exported["npy"][0])
    id_map = json.loads(exported["npy"][1].read_text())
    assert np.array_equal(vectors, emb.vectors) and id_map["ids"] == IDS and id_map["labels"] == LABELS


def test_safetensors_round_trip(emb, exported) -> None:
    from safetensors import safe_open

    with safe_open(str(exported["safetensors"][0]), framework="numpy") as handle:
        assert np.array_equal(handle.get_tensor("entity_embeddings"), emb.vectors)
        assert json.loads(handle.metadata()["ids"]) == IDS and handle.metadata()["model"] == "TransE"
    again = load_embeddings(exported["safetensors"][0])
    assert again.ids == IDS and again.labels == LABELS and np.array_equal(again.vectors, emb.vectors)


def test_parquet_round_trip(emb, exported) -> None:
    import pyarrow.parquet as pq

    table = pq.read_table(exported["parquet"][0])
    assert table.column("id").to_pylist() == IDS and table.column("type").to_pylist() == TYPES
    again = load_embeddings(exported["parquet"][0])
    assert np.array_equal(again.vectors, emb.vectors) and again.types == TYPES
    assert again.metadata["model"] == "TransE"


def test_word2vec_loads_in_gensim(emb, exported) -> None:
    from gensim.models import KeyedVectors

    kv = KeyedVectors.load_word2vec_format(str(exported["word2vec"][0]), binary=False)
    from urllib.parse import unquote

    # whitespace, which the format cannot hold, is percent-encoded; unquote gives the id back
    assert kv.index_to_key[:4] == IDS[:4] and kv.index_to_key[4] == "urn:x:with%20space"
    assert [unquote(key) for key in kv.index_to_key] == IDS
    assert np.allclose(kv.vectors, emb.vectors, rtol=1e-6, atol=1e-7)
    assert kv.most_similar(IDS[0], topn=1)[0][0] == IDS[1]


def test_projector_tsv(emb, exported) -> None:
    vectors, metadata = exported["projector"]
    rows = [list(map(float, line.split("\t"))) for line in vectors.read_text().splitlines()]
    assert np.allclose(rows, emb.vectors, rtol=1e-6)
    meta = [line.split("\t") for line in metadata.read_text().splitlines()]
    assert meta[0] == ["label", "type", "id"] and len(meta) == 6
    assert meta[1] == ["Marie Curie", "schema:Person", IDS[0]] and meta[5] == ["odd label", "", IDS[4]]


def test_torch_embedding_state_dict(emb, exported) -> None:
    state, vocab = exported["torch"]
    layer = torch.nn.Embedding(5, 6)
    layer.load_state_dict(torch.load(state, weights_only=True))
    ids = json.loads(vocab.read_text())["ids"]
    assert torch.equal(layer(torch.tensor([ids.index(IDS[2])]))[0], torch.from_numpy(emb.vectors[2]))


def test_int8_within_half_a_step(emb, exported) -> None:
    from safetensors.torch import load_file

    tensors = load_file(str(exported["int8"][0]))
    codes, scales = tensors["codes"], tensors["scales"]
    assert codes.dtype == torch.int8 and scales.shape == (5,)
    restored = codes.float() * scales[:, None]
    assert bool(((restored - torch.from_numpy(emb.vectors)).abs() <= scales[:, None] / 2 + 1e-6).all())


def test_unknown_format_is_an_error(emb, tmp_path) -> None:
    from kgpipe.errors import KgpipeError

    with pytest.raises(KgpipeError, match=r"(?s)unknown embedding format.*choose from: int8"):
        export_embeddings(emb, tmp_path, ["hdf5"])


# --- graphs ------------------------------------------------------------------------------------------------

def _fused_tables():
    import pandas as pd

    entities = pd.DataFrame({
        "id": ["ex:Marie_Curie", "ex:Warsaw", "kg:new/Ada"], "label": ["Marie Curie", "Warsaw", "Ada, \"the\" first"],
        "type": ["http://schema.org/Person", "http://schema.org/City", None], "aliases": [[], [], []],
        "seed_iri": ["ex:Marie_Curie", "ex:Warsaw", None], "mention_count": [3, 1, 2], "sources": [[], [], []]})
    triples = pd.DataFrame({
        "head": ["ex:Marie_Curie", "kg:new/Ada"], "relation": ["http://kgpipe.org/sample/bornIn", "http://x/y#knows"],
        "tail": ["ex:Warsaw", "ex:Marie_Curie"], "count": [2, 1], "sources": [[], []], "confidence": [0.9, 0.5]})
    return entities, triples


def test_neo4j_bulk_import_csvs(tmp_path) -> None:
    import pandas as pd

    from kgpipe.export.graph import write_neo4j_csv

    nodes_path, rels_path = write_neo4j_csv(*_fused_tables(), tmp_path)
    nodes, rels = pd.read_csv(nodes_path, keep_default_na=False), pd.read_csv(rels_path)
    assert next(iter(nodes.columns)) == "id:ID" and ":LABEL" in nodes.columns
    assert nodes.set_index("id:ID").loc["ex:Marie_Curie", ":LABEL"] == "Entity;Person"
    assert nodes.set_index("id:ID").loc["kg:new/Ada", "label"] == 'Ada, "the" first'   # quoting survives
    assert nodes.set_index("id:ID").loc["kg:new/Ada", ":LABEL"] == "Entity"
    assert rels[[":START_ID", ":END_ID", ":TYPE"]].values.tolist() == [
        ["ex:Marie_Curie", "ex:Warsaw", "BORNIN"], ["kg:new/Ada", "ex:Marie_Curie", "KNOWS"]]
    assert set(rels[":START_ID"]) | set(rels[":END_ID"]) <= set(nodes["id:ID"])


def test_load_graph_from_rdf_and_graphml(tmp_path) -> None:
    import networkx as nx

    import kgpipe

    (tmp_path / "g.ttl").write_text(
        "@prefix ex: <http://ex.org/> . @prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .\n"
        "ex:a rdfs:label \"A\" ; a ex:T ; ex:r ex:b , ex:c ; ex:age 3 .\nex:b ex:r ex:c .\n")
    graph = kgpipe.load_graph(tmp_path / "g.ttl")
    assert graph.number_of_nodes() == 3 and graph.number_of_edges() == 3
    assert graph.nodes["http://ex.org/a"] == {"label": "A", "type": "http://ex.org/T"}
    nx.write_graphml(nx.MultiDiGraph(graph), tmp_path / "g.graphml")
    again = kgpipe.load_graph(tmp_path / "g.graphml")
    assert sorted(again.edges()) == sorted(graph.edges())


# --- the export stage and command ---------------------------------------------------------------------------

def test_export_stage_writes_every_format_readable_back(emb, tmp_path) -> None:
    import networkx as nx
    import rdflib
    import yaml

    from kgpipe.artifacts import ENTITIES, TRIPLES, write_table
    from kgpipe.export.formats import to_parquet
    from kgpipe.runner import run

    entities, triples = _fused_tables()
    write_table(entities, tmp_path / "entities.parquet", ENTITIES)
    write_table(triples, tmp_path / "triples.parquet", TRIPLES)
    small = Embeddings(list(entities["id"]), list(entities["label"]), emb.vectors[:3])
    to_parquet(small, tmp_path)
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(yaml.safe_dump({"stages": {"export": {"type": "export", "deps": {
        "embeddings": "embeddings.parquet", "entities": "entities.parquet", "triples": "triples.parquet"}}}}))
    result = run(pipeline)
    folder = result.outputs["export"]["export"]
    assert result.summaries["export"] == {"formats": 11, "files": 15}
    projector = (folder / "entities/metadata.tsv").read_text().splitlines()
    assert projector[1] == "Marie Curie\thttp://schema.org/Person\tex:Marie_Curie"   # types joined from entities
    turtle = rdflib.Graph().parse(folder / "graph/graph.ttl")
    ntriples = rdflib.Graph().parse(folder / "graph/graph.nt", format="nt")
    assert len(turtle) == len(ntriples) > 0
    assert (rdflib.URIRef("ex:Marie_Curie"), rdflib.URIRef("http://kgpipe.org/sample/bornIn"),
            rdflib.URIRef("ex:Warsaw")) in ntriples
    graph = nx.read_graphml(folder / "graph/graph.graphml")
    assert graph.number_of_nodes() == 3 and graph.number_of_edges() == 2
    assert np.array_equal(load_embeddings(folder / "entities/embeddings.safetensors").vectors, small.vectors)


def test_export_params_and_missing_inputs_are_clear_errors(tmp_path) -> None:
    import yaml

    from kgpipe.errors import KgpipeError, PipelineError
    from kgpipe.runner import run

    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(yaml.safe_dump({"stages": {"export": {"type": "export", "params": {"formats": ["hdf5"]}}}}))
    with pytest.raises(PipelineError, match=r"unknown format.*hdf5"):
        run(pipeline)
    pipeline.write_text(yaml.safe_dump({"stages": {"export": {"type": "export", "params": {"formats": ["neo4j"]}}}}))
    with pytest.raises(KgpipeError, match="need the fused graph"):
        run(pipeline)


def test_reciprocal_relations_get_their_own_ids(tmp_path) -> None:
    from gensim.models import KeyedVectors

    from kgpipe.artifacts import RELATION_EMBEDDINGS, write_table
    from kgpipe.errors import ArtifactError

    iri = "http://kgpipe.org/sample/bornIn"
    write_table([{"id": iri, "label": "bornIn", "vector": [1.0, 0.0], "inverse": False},
                 {"id": iri, "label": "inverse of bornIn", "vector": [0.0, 1.0], "inverse": True}],
                tmp_path / "relations.parquet", RELATION_EMBEDDINGS)
    relations = load_embeddings(tmp_path / "relations.parquet")
    assert relations.ids == [iri, iri + "_inverse"] and relations.types == ["relation", "inverse relation"]
    assert np.array_equal(relations.vector(iri + "_inverse"), [0.0, 1.0])
    (w2v,) = export_embeddings(relations, tmp_path / "out", ["word2vec"])["word2vec"]
    assert KeyedVectors.load_word2vec_format(str(w2v)).index_to_key == relations.ids
    with pytest.raises(ArtifactError, match="unique; repeated: a"):
        Embeddings(["a", "a"], ["A", "A"], np.zeros((2, 2)))


def test_graph_files_have_the_same_bytes_in_every_process(tmp_path: Path) -> None:
    """Set and dict order follow the hash seed, which differs per process: two processes with other seeds
    export the same graph to the same bytes (a test inside one process cannot see this)."""
    import subprocess
    import sys

    from kgpipe.artifacts import ENTITIES, TRIPLES, write_table

    entities, triples = _fused_tables()
    write_table(entities, tmp_path / "entities.parquet", ENTITIES)
    write_table(triples, tmp_path / "triples.parquet", TRIPLES)
    code = ("import sys; from pathlib import Path; from kgpipe.artifacts import ENTITIES, TRIPLES, read_table; "
            "from kgpipe.export.graph import GRAPH_FORMATS; d = Path(sys.argv[1]); out = Path(sys.argv[2]); "
            "out.mkdir(); e = read_table(d / 'entities.parquet', ENTITIES); t = read_table(d / 'triples.parquet', "
            "TRIPLES); [f(e, t, None, out) for f in GRAPH_FORMATS.values()]")
    outputs = []
    for seed in ("1", "2"):
        out = tmp_path / f"seed{seed}"
        subprocess.run([sys.executable, "-c", code, str(tmp_path), str(out)], check=True, cwd=REPO,
                       env={**os.environ, "PYTHONHASHSEED": seed})
        outputs.append({p.name: p.read_bytes() for p in sorted(out.iterdir())})
    assert outputs[0].keys() == outputs[1].keys() and "graph.nt" in outputs[0]
    assert outputs[0] == outputs[1]
