"""The inject stage through the runner, on hand-made entity and embedding tables and a tiny encoder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from transformers import AutoTokenizer, BertConfig, BertModel

from kgpipe.artifacts import EMBEDDINGS, ENTITIES, write_table
from kgpipe.errors import KgpipeError
from kgpipe.lm.encoder import KnowledgeEnhancedEncoder, resolve_base_model
from kgpipe.lm.knowledge_model import load_knowledge_model, load_linker
from kgpipe.runner import run

S = "http://schema.org/"
NAMES = ["Marie Curie", "Pierre Curie", "Warsaw", "Paris", "Sorbonne", "Niels Bohr", "Copenhagen", "Denmark",
         "Albert Einstein", "Ulm", "Princeton University", "Zurich"] * 2


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    tiny = BertModel(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                intermediate_size=64))
    tiny.save_pretrained(tmp_path / "tiny")
    AutoTokenizer.from_pretrained(resolve_base_model("default")).save_pretrained(tmp_path / "tiny")
    ids = [f"ex:e{i}" for i in range(len(NAMES))]
    labels = [n if i < 12 else f"{n} {i}" for i, n in enumerate(NAMES)]
    write_table([{"id": e, "label": lab, "type": S + "Thing", "aliases": [], "seed_iri": None,
                  "mention_count": i + 1, "sources": ["seed"]}
                 for i, (e, lab) in enumerate(zip(ids, labels, strict=True))],
                tmp_path / "entities.parquet", ENTITIES)
    rng = np.random.default_rng(0)
    write_table([{"id": e, "label": lab, "vector": rng.normal(size=8).astype(np.float32).tolist()}
                 for e, lab in list(zip(ids, labels, strict=True))[:-2]] + [{"id": "ex:not_an_entity", "label": "x",
                                                                "vector": [0.0] * 8}],
                tmp_path / "emb.parquet", EMBEDDINGS)
    rows = [{"text": "Marie Curie was born in Warsaw.", "subject": [0, 11], "object": [24, 30], "label": "bornIn"},
            {"text": "Niels Bohr worked in Copenhagen.", "subject": [0, 10], "object": [21, 31], "label": "worksIn"}]
    (tmp_path / "task.jsonl").write_text("\n".join(json.dumps(r) for r in rows * 4) + "\n")
    return tmp_path


def pipeline(root: Path, **params) -> Path:
    deps = {"entities": "entities.parquet", "embeddings": "emb.parquet"}
    if params.get("mode") == "fusion" and params.pop("with_task", True):
        deps["task"] = "task.jsonl"
    stage = {"type": "inject", "deps": deps, "params": {"base_model": str(root / "tiny"), **params}}
    path = root / "p.yaml"
    path.write_text(yaml.safe_dump({"stages": {"inject": stage}}))
    return path


def test_align_writes_a_loadable_knowledge_model(workspace: Path) -> None:
    result = run(pipeline(workspace, storage="int8"))
    folder = result.outputs["inject"]["model"]
    metrics = json.loads(result.outputs["inject"]["metrics"].read_text())
    assert metrics["entities_with_vectors"] == 22 and metrics["anchors"] == 22   # the stray vector is ignored
    assert metrics["knowledge_bytes"] == 22 * 8 + 22 * 4                         # int8 codes + scales
    encoder, tokenizer = load_knowledge_model(folder)
    assert encoder.config.embedding_sha256 and encoder.config.embedding_artifact == "emb.parquet"
    assert encoder.knowledge.storage == "int8" and len(encoder.knowledge) == 22
    linker = load_linker(folder)
    assert linker.link("marie curie").entity_id == "ex:e0"
    enc = tokenizer("Marie Curie", return_tensors="pt")
    rows = torch.tensor([[-1, 0, 0, 0, -1]])
    with torch.no_grad():
        assert encoder(enc["input_ids"], enc["attention_mask"], entity_rows=rows).last_hidden_state.shape == (1, 5, 32)


def test_align_anchors_only_on_trained_vectors(workspace: Path) -> None:
    """The vectors stage's table: rows predicted from text (inductive) get knowledge but are no anchors of the map."""
    from kgpipe.artifacts import ENTITY_VECTORS, read_table

    table = read_table(workspace / "emb.parquet", EMBEDDINGS)
    table["inductive"] = [i >= 15 for i in range(len(table))]
    write_table(table, workspace / "emb.parquet", ENTITY_VECTORS)
    metrics = json.loads(run(pipeline(workspace)).outputs["inject"]["metrics"].read_text())
    assert metrics["entities_with_vectors"] == 22 and metrics["inductive_vectors"] == 7
    assert metrics["anchors"] == 15


def test_fusion_trains_on_the_task_file(workspace: Path) -> None:
    result = run(pipeline(workspace, mode="fusion", epochs=2, batch_size=4))
    metrics = json.loads(result.outputs["inject"]["metrics"].read_text())
    assert metrics["task_examples"] == 8 and metrics["task_labels"] == 2
    assert metrics["task_mentions_linked"] == 16 and len(metrics["train_loss"]) == 2
    folder = result.outputs["inject"]["model"]
    assert json.loads((folder / "task_labels.json").read_text()) == ["bornIn", "worksIn"]
    assert KnowledgeEnhancedEncoder.from_pretrained(folder).config.layers == [1]


def test_fusion_without_a_task_file_fails_clearly(workspace: Path) -> None:
    with pytest.raises(KgpipeError, match="mode 'fusion' trains on a task file") as err:
        run(pipeline(workspace, mode="fusion", with_task=False))
    assert err.value.stage == "inject" and "deps" in (err.value.hint or "")


def test_encode_text_links_and_changes_only_what_it_links(workspace: Path) -> None:
    from kgpipe.lm.knowledge_model import encode_text

    folder = run(pipeline(workspace)).outputs["inject"]["model"]
    text = "Marie Curie met Ada Lovelace in Paris."

    def find(t: str) -> list[dict]:  # stands in for spaCy: the three names, no seed IRIs
        return [{"start_char": t.index(n), "end_char": t.index(n) + len(n), "text": n, "kg_type": None}
                for n in ("Marie Curie", "Ada Lovelace", "Paris")]

    mentions, enhanced, plain = encode_text(text, folder, find)
    by_text = {m.mention.text: m for m in mentions}
    assert by_text["Marie Curie"].mention.entity_id == "ex:e0" and by_text["Paris"].mention.entity_id == "ex:e3"
    assert by_text["Ada Lovelace"].mention.entity_id is None and by_text["Ada Lovelace"].cosine_to_plain is None
    assert by_text["Marie Curie"].cosine_to_plain < 0.999
    assert enhanced.shape == plain.shape


# --- decoder bases ------------------------------------------------------------------------------------------


@pytest.fixture
def decoder_workspace(workspace: Path) -> Path:
    """The encoder workspace plus a tiny random LLaMA, the graph's triples and relation vectors."""
    from kgpipe.artifacts import RELATION_EMBEDDINGS, TRIPLES
    from tests.tiny_encoder import make_tiny_llama

    make_tiny_llama(workspace / "llama")
    born, works = "http://x.org/bornIn", "http://x.org/worksIn"
    write_table([{"head": f"ex:e{h}", "relation": r, "tail": f"ex:e{t}", "count": 1, "sources": ["seed"],
                  "confidence": 1.0} for h, r, t in [(0, born, 2), (1, born, 3), (5, works, 6), (8, born, 9)]],
                workspace / "triples.parquet", TRIPLES)
    rng = np.random.default_rng(1)
    write_table([{"id": r, "label": r, "vector": rng.normal(size=6).astype(np.float32).tolist(), "inverse": inverse}
                 for r, inverse in [(born, False), (works, False), (born + "_inverse", True)]],
                workspace / "rel.parquet", RELATION_EMBEDDINGS)
    return workspace


def decoder_pipeline(root: Path, deps: dict[str, str], **params) -> Path:
    stage = {"type": "inject", "deps": {"entities": "entities.parquet", "embeddings": "emb.parquet", **deps},
             "params": {"base_model": "llama", "prefix_layers": 2, "epochs": 2, "batch_size": 2, **params}}
    path = root / "p.yaml"
    path.write_text(yaml.safe_dump({"root": ".", "stages": {"inject": stage}}))
    return path


def test_prefix_trains_for_generation_on_the_graph_triples(decoder_workspace: Path) -> None:
    from kgpipe.lm.decoder_model import KnowledgeDecoder

    root = decoder_workspace
    result = run(decoder_pipeline(root, {"triples": "triples.parquet", "relation_embeddings": "rel.parquet"},
                                  mode="prefix", storage="int8"))
    metrics = json.loads(result.outputs["inject"]["metrics"].read_text())
    assert metrics["base"] == "decoder" and metrics["objective"] == "generation"
    assert metrics["generation_examples"] == 4 and len(metrics["train_loss"]) == 2
    assert metrics["relations_with_vectors"] == 2   # the reciprocal row is not a relation of the graph
    folder = result.outputs["inject"]["model"]
    config = json.loads((folder / "kgpipe_decoder.json").read_text())
    assert config["base"] == {"package": None, "file": "llama", "sha256": None} and config["base_model"] is None
    assert config["embedding_artifact"] == "emb.parquet" and str(root) not in json.dumps(config)
    decoder, _ = KnowledgeDecoder.from_pretrained(folder, base=str(root / "llama"))
    assert decoder.knowledge.storage == "int8" and decoder.relations is not None
    assert load_linker(folder).link("marie curie").entity_id == "ex:e0"
    again = run(decoder_pipeline(root, {"triples": "triples.parquet", "relation_embeddings": "rel.parquet"},
                                 mode="prefix", storage="int8"), force=True)
    assert again.outputs["inject"]["metrics"].read_bytes() == result.outputs["inject"]["metrics"].read_bytes()


def test_prefix_and_align_for_a_decoder_classify_or_map(decoder_workspace: Path) -> None:
    result = run(decoder_pipeline(decoder_workspace, {"task": "task.jsonl"}, mode="prefix", objective="task"))
    metrics = json.loads(result.outputs["inject"]["metrics"].read_text())
    assert metrics["task_examples"] == 8 and metrics["task_mentions_linked"] == 16
    assert json.loads((result.outputs["inject"]["model"] / "task_labels.json").read_text()) == ["bornIn", "worksIn"]
    result = run(decoder_pipeline(decoder_workspace, {}, mode="align"))
    metrics = json.loads(result.outputs["inject"]["metrics"].read_text())
    assert metrics["anchors"] == 22 and metrics["mode"] == "align"


def test_modes_that_do_not_suit_the_base_are_pipeline_errors(decoder_workspace: Path) -> None:
    from kgpipe.errors import PipelineError

    with pytest.raises(PipelineError, match=r"p.yaml:\d+: stage 'inject': params.mode: fusion is for BERT"):
        run(decoder_pipeline(decoder_workspace, {}, mode="fusion"))
    with pytest.raises(PipelineError, match=r"trains on deps\.triples, which is not given"):
        run(decoder_pipeline(decoder_workspace, {}, mode="prefix"))
    with pytest.raises(PipelineError, match=r"mode prefix is for decoders; .*tiny' is not one"):
        run(pipeline(decoder_workspace, mode="prefix"))


def test_kgpipe_generate_shows_linked_entities_and_both_continuations(decoder_workspace: Path) -> None:
    from typer.testing import CliRunner

    from kgpipe.cli import app

    root = decoder_workspace
    path = decoder_pipeline(root, {"triples": "triples.parquet"}, mode="prefix")
    run(path)
    runner = CliRunner()
    result = runner.invoke(app, ["generate", "Marie Curie was born in", "--pipeline", str(path), "--json",
                                 "--max-new-tokens", "3"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)  # stderr carries the model loader's progress bars
    assert shown["knowledge"] == [{"entity_id": "ex:e0", "label": "Marie Curie", "mention": "Marie Curie"}]
    assert isinstance(shown["with_knowledge"], str) and isinstance(shown["without_knowledge"], str)
    plain = runner.invoke(app, ["generate", "Marie Curie was born in", "--pipeline", str(path), "--json",
                                "--max-new-tokens", "3", "--no-knowledge"])
    assert json.loads(plain.stdout)["with_knowledge"] is None
    assert json.loads(plain.stdout)["without_knowledge"] == shown["without_knowledge"]
    table = runner.invoke(app, ["generate", "Marie Curie was born in", "--pipeline", str(path)])
    assert table.exit_code == 0 and "knowledge used: Marie Curie (ex:e0)" in table.output
    assert "with knowledge" in table.output and "without knowledge" in table.output
    # the model folder alone does not say where a local base lies
    alone = runner.invoke(app, ["generate", "Marie Curie", "--model", str(root / "artifacts/inject/knowledge_model"),
                                "--pipeline", str(root / "missing.yaml")])
    assert alone.exit_code == 3 and "not a packaged model" in alone.output
    empty = runner.invoke(app, ["generate", " ", "--pipeline", str(path)])
    assert empty.exit_code == 3 and "TEXT is empty" in empty.output
