"""The default pipeline on sample_kg/: the demo data ingests cleanly and holds the hard cases later
stages are tested on."""

from __future__ import annotations

import pytest
import yaml

import kgpipe
from kgpipe.artifacts import DOCUMENTS, SEED_ATTRIBUTES, SEED_ENTITIES, SEED_TRIPLES, read_table
from tests.conftest import REPO

EX = "http://kgpipe.org/sample/"


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The default pipeline, with artifacts and workspace redirected to a temporary folder."""
    tmp = tmp_path_factory.mktemp("sample")
    cfg = yaml.safe_load((REPO / "pipelines/default.yaml").read_text())
    cfg.update(root=str(REPO), artifacts=str(tmp / "artifacts"), workspace=str(tmp / "ws"), allow_outside=[str(tmp)])
    for stage in cfg["stages"].values():  # deps on other stages' outputs follow the artifacts folder
        for name, value in stage.get("deps", {}).items():
            moved = [str(tmp / v) if v.startswith("artifacts/") else v
                     for v in (value if isinstance(value, list) else [value])]
            stage["deps"][name] = moved if isinstance(value, list) else moved[0]
    pipeline = tmp / "default.yaml"
    pipeline.write_text(yaml.safe_dump(cfg))
    result = kgpipe.run(pipeline, until="ingest")
    outs = result.outputs["ingest"]
    return {
        "result": result,
        "documents": read_table(outs["documents"], DOCUMENTS),
        "entities": read_table(outs["seed_entities"], SEED_ENTITIES),
        "triples": read_table(outs["seed_triples"], SEED_TRIPLES),
        "attributes": read_table(outs["seed_attributes"], SEED_ATTRIBUTES),
        "report": kgpipe.load_artifact(pipeline, "ingest.report"),
    }


def test_sample_corpus_ingests_completely(ingested: dict) -> None:
    docs = ingested["documents"]
    assert len(docs) >= 150
    assert ingested["report"]["skipped"] == []
    assert docs["doc_id"].is_unique and (docs["n_chars"] > 0).all()
    assert docs["source"].str.startswith("sample_kg/corpus/").all()


def test_sample_seed_kg_has_the_promised_size(ingested: dict) -> None:
    entities, triples = ingested["entities"], ingested["triples"]
    ttl = triples[triples["source"] == "sample_kg/seed_kg.ttl"]
    assert (entities["types"].map(len) > 0).sum() >= 100
    assert len(ttl) >= 300
    assert set(triples["source"]) == {"sample_kg/seed_kg.ttl", "sample_kg/extra_seed.tsv"}
    # literals are attributes, never entities
    assert not entities["iri"].isin(ingested["attributes"]["value"]).any()
    assert len(ingested["attributes"]) >= 40


def test_sample_data_holds_the_hard_cases(ingested: dict) -> None:
    entities = ingested["entities"].set_index("iri")
    names = {iri: {row.label, *row.aliases} for iri, row in entities.iterrows()}
    mit = [iri for iri, n in names.items() if "Massachusetts Institute of Technology" in n]
    assert len(mit) == 1 and "MIT" in names[mit[0]]
    cambridges = [iri for iri, n in names.items() if any(x.startswith("Cambridge") for x in n)
                  and "http://schema.org/City" in entities.loc[iri, "types"]]
    assert len(cambridges) >= 2, "two different cities called Cambridge"
    bohrs = [iri for iri, n in names.items() if any("Bohr" in x for x in n)]
    assert len(bohrs) >= 2
    text = " ".join(ingested["documents"]["text"])
    for variant in ("Massachusetts Institute of Technology", "MIT", "Caltech", "Bell Labs"):
        assert variant in text
