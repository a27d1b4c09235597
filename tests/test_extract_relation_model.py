"""The extract stage with a trained relation model (deps.relation_model): the four relation policies on a corpus
where a keyword decides the relation, provenance and confidence, pairs beyond max_pairs_per_sentence, labels
the model does not know, byte-identical reruns, and the errors. A random tiny BERT trained in seconds stands in
for `kgpipe rel train`'s model.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
import yaml

from kgpipe.artifacts import DOCUMENTS, MENTIONS, RELATIONS, SEED_ENTITIES, read_table, write_table
from kgpipe.corpus import document_row
from kgpipe.errors import PipelineError
from kgpipe.lm.relation_train import train_relation_model
from kgpipe.nlp.labelled import read_labelled
from kgpipe.nlp.model_relations import UNKNOWN_ENTITY, LabelMapper, nearest_pairs
from kgpipe.runner import RunResult, run
from kgpipe.vocab import DEFAULT_LABEL_MAP, DEFAULT_TYPE_PARENTS, KGPIPE_RELATION, SCHEMA
from tests.relation_fixtures import ORGS, PEOPLE, keyword_data, options, write
from tests.tiny_encoder import make_tiny_bert

# Names the model never saw in training (it learns the rule from PEOPLE[:8]); each a seed entity, so that the
# gazetteer, not the stock NER's guess, decides the mentions.
DOCUMENTS_ = [
    ("d1", "Niklaus joined Acme. Tony visited Globex."),
    ("d2", "Radia visited Initech. Leslie joined Hooli."),
]
# a naive pattern library: X joined/visited Y is works_for (0.6) and X joined Y is member_of (0.55)
PATTERNS = {"version": 1, "patterns": [
    {"id": "test.met", "relation": "works_for", "confidence": 0.6,
     "subject": {"anchor": 0, "labels": ["PERSON"]}, "object": {"anchor": 2, "labels": ["ORG"]},
     "tokens": [{"ENT_TYPE": "PERSON"}, {"LOWER": {"IN": ["joined", "visited"]}}, {"ENT_TYPE": "ORG"}]},
    {"id": "test.joined", "relation": "member_of", "confidence": 0.55,
     "subject": {"anchor": 0, "labels": ["PERSON"]}, "object": {"anchor": 2, "labels": ["ORG"]},
     "tokens": [{"ENT_TYPE": "PERSON"}, {"LOWER": "joined"}, {"ENT_TYPE": "ORG"}]},
]}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def relation_model(tmp_path_factory) -> Path:
    """A tiny model that learned Work_For(person, org) iff 'joined' stands between them."""
    base = make_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))
    folder = tmp_path_factory.mktemp("data")
    train = read_labelled(write(folder / "train.jsonl", keyword_data(PEOPLE[:8])))
    model = tmp_path_factory.mktemp("models") / "keyword_rel"
    train_relation_model(train, model, options(base))
    return model


def seeds() -> list[dict[str, Any]]:
    people = [(name, "Person") for name in PEOPLE[8:]]
    orgs = [(name, "Organization") for name in ORGS]
    return [{"iri": f"http://example.org/{name}", "label": name, "aliases": [], "types": [SCHEMA + kind],
             "sources": ["test"]} for name, kind in people + orgs]


def pipeline(root: Path, relation_model: Path | None, documents: list[tuple[str, str]] = DOCUMENTS_,
             patterns: bool = True, **params: Any) -> Path:
    (root / "in").mkdir(parents=True, exist_ok=True)
    rows = [document_row(d, t, "test") for d, t in documents]
    write_table(rows, root / "in" / "documents.parquet", DOCUMENTS)
    write_table(seeds(), root / "in" / "seed_entities.parquet", SEED_ENTITIES)
    deps: dict[str, Any] = {"documents": "in/documents.parquet", "seed_entities": "in/seed_entities.parquet"}
    if patterns:
        (root / "patterns").mkdir(exist_ok=True)
        (root / "patterns" / "test.yaml").write_text(yaml.safe_dump(PATTERNS), encoding="utf-8")
        deps["patterns"] = "patterns"
    if relation_model is not None:
        target = root / "models" / relation_model.name
        if not target.exists():
            shutil.copytree(relation_model, target)
        deps["relation_model"] = f"models/{relation_model.name}"
    stage = {"type": "extract", "deps": deps, "params": params}
    path = root / "pipeline.yaml"
    path.write_text(yaml.safe_dump({"root": ".", "stages": {"extract": stage}}, sort_keys=False), encoding="utf-8")
    return path


def extract(root: Path, relation_model: Path | None, **kw: Any) -> tuple[RunResult, pd.DataFrame, pd.DataFrame]:
    result = run(pipeline(root, relation_model, **kw), force=True)
    outs = result.outputs["extract"]
    return result, read_table(outs["mentions"], MENTIONS), read_table(outs["relations"], RELATIONS)


def facts(mentions: pd.DataFrame, relations: pd.DataFrame) -> set[tuple[str, str, str, str]]:
    """(subject text, relation, object text, pattern_id) of every relation row."""
    text = dict(zip(mentions["mention_id"], mentions["text"], strict=True))
    return {(text[r.subject_id], r.relation, text[r.object_id], r.pattern_id) for r in relations.itertuples()}


MODEL = "model:keyword_rel"
JOINED = {("Niklaus", "Acme"), ("Leslie", "Hooli")}
VISITED = {("Tony", "Globex"), ("Radia", "Initech")}


def test_the_four_policies_give_what_they_promise(tmp_path, relation_model) -> None:
    by_policy = {}
    for policy in ("patterns", "model", "union", "model_then_patterns"):
        result, mentions, relations = extract(tmp_path / policy, relation_model, relation_policy=policy)
        by_policy[policy] = facts(mentions, relations)
        summary = result.summaries["extract"]
        if policy != "patterns":
            assert summary["relation_model"] == MODEL and summary["relation_policy"] == policy
            assert summary["relation_pairs_scored"] == 8 and summary["relation_pairs_dropped"] == 0
            assert summary["relations_model"] == 2
    patterns = {(s, "works_for", o, "test.met") for s, o in JOINED | VISITED} | \
               {(s, "member_of", o, "test.joined") for s, o in JOINED}
    model = {(s, "Work_For", o, MODEL) for s, o in JOINED}    # the reverse pairs and 'visited' get no relation
    assert by_policy["patterns"] == patterns
    assert by_policy["model"] == model
    # union: Work_For and works_for share an IRI, so on 'joined' pairs the more confident model row stands for
    # both; member_of is another relation and stays
    assert by_policy["union"] == model | {(s, "works_for", o, "test.met") for s, o in VISITED} | \
        {(s, "member_of", o, "test.joined") for s, o in JOINED}
    # model_then_patterns: the patterns speak only where the model found nothing
    assert by_policy["model_then_patterns"] == model | {(s, "works_for", o, "test.met") for s, o in VISITED}


def test_a_model_relation_carries_its_provenance_iri_and_rounded_probability(tmp_path, relation_model) -> None:
    result, _, relations = extract(tmp_path, relation_model, relation_policy="model")
    assert set(relations["pattern_id"]) == {MODEL}
    assert set(relations["relation_iri"]) == {KGPIPE_RELATION + "works_for"}   # the default map knows Work_For
    assert all(0.5 <= c <= 1.0 and round(c, 4) == c for c in relations["confidence"])
    # the confidence is the model's own probability for that pair
    from kgpipe.lm.relation_model import EntitySpan, RelationModel, TextWithEntities

    model = RelationModel.load(relation_model)
    text = DOCUMENTS_[0][1].split(". ")[0] + "."
    scores = model.score([TextWithEntities(text, (EntitySpan(0, 7, "Peop"), EntitySpan(15, 19, "Org")))])
    probability = float(scores.probabilities[0][scores.pairs[0].index((0, 1))][1])
    row = relations[(relations["doc_id"] == "d1") & (relations["sentence_start"] == 0)].iloc[0]
    assert row["confidence"] == round(probability, 4)
    # mentions go to the model under its own labels (PERSON -> Person <- Peop by the label map): none unknown
    assert result.summaries["extract"]["relation_unknown_labels"] == 0
    # relation_threshold: a pair needs at least that probability
    lowest = float(relations["confidence"].min())
    _, _, fewer = extract(tmp_path / "high", relation_model, relation_policy="model",
                          relation_threshold=lowest + 0.0001)
    assert len(fewer) == (relations["confidence"] > lowest).sum() < len(relations)


def test_one_relation_per_pair_applies_after_the_policy(tmp_path, relation_model) -> None:
    _, mentions, relations = extract(tmp_path, relation_model, relation_policy="union", one_relation_per_pair=True)
    found = facts(mentions, relations)
    assert {(s, o) for s, _, o, _ in found} == JOINED | VISITED and len(found) == 4
    assert {(s, o) for s, _, o, p in found if p == MODEL} == JOINED   # the model beats member_of (0.55)


def test_pairs_beyond_max_pairs_per_sentence_are_dropped_nearest_first_and_counted(tmp_path, relation_model) -> None:
    documents = [("d1", "Niklaus joined Acme, Globex and Initech."), ("d2", "Tony joined Hooli.")]
    result, _, _ = extract(tmp_path, relation_model, documents=documents, relation_policy="model",
                           max_pairs_per_sentence=4)
    summary = result.summaries["extract"]
    assert summary["relation_pairs_dropped"] == 12 - 4           # 4 mentions: 12 ordered pairs, 4 kept
    assert summary["relation_pairs_scored"] == 4 + 2
    spans = [(0, 7), (15, 19), (21, 27), (32, 39)]
    kept, dropped = nearest_pairs(spans, 4)
    assert dropped == 8 and kept == [(1, 2), (2, 1), (2, 3), (3, 2)]   # the closest: 2 and 5 characters apart
    assert nearest_pairs(spans, 12) == ([(s, o) for s in range(4) for o in range(4) if s != o], 0)


def test_labels_the_model_lacks_go_as_unknown_and_are_counted(tmp_path, relation_model) -> None:
    result, _, _ = extract(tmp_path, relation_model, relation_policy="model",
                           relation_label_map={"ORG": UNKNOWN_ENTITY})
    assert result.summaries["extract"]["relation_unknown_labels"] == 4   # one org in each of the 4 sentences
    mapper = LabelMapper(["Peop", "Org", "Loc", "Other"], DEFAULT_LABEL_MAP, {"NORP": "Other"}, DEFAULT_TYPE_PARENTS)
    assert mapper("PERSON", SCHEMA + "Person") == "Peop"
    assert mapper("GPE", SCHEMA + "City") == "Loc"                      # a seed type, through its parent
    assert mapper("NORP", SCHEMA + "Organization") == "Other"           # relation_label_map first
    assert mapper("Org", None) == "Org"                                 # the model's own label
    assert mapper("EVENT", SCHEMA + "Event") == UNKNOWN_ENTITY
    assert mapper("DATE", None) == UNKNOWN_ENTITY


def test_reruns_write_the_same_bytes(tmp_path, relation_model) -> None:
    first, _, _ = extract(tmp_path, relation_model)
    path = first.outputs["extract"]["relations"]
    before = path.read_bytes()
    again, _, relations = extract(tmp_path, relation_model)
    assert again.summaries["extract"]["relation_policy"] == "union"     # the default with a model
    assert path.read_bytes() == before and (relations["pattern_id"] == MODEL).sum() == 2


def test_the_default_without_a_model_is_patterns_only(tmp_path) -> None:
    result, mentions, relations = extract(tmp_path, None)
    assert "relation_model" not in result.summaries["extract"]
    assert {p for *_, p in facts(mentions, relations)} == {"test.met", "test.joined"}


def error_for(root: Path, relation_model: Path | None, **params: Any) -> PipelineError:
    with pytest.raises(PipelineError) as caught:
        run(pipeline(root, relation_model, **params), force=True)
    return caught.value


def dep_line(path: Path) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if "relation_model:" in line)


def test_errors_name_the_pipeline_file_and_line(tmp_path, relation_model) -> None:
    # a missing folder
    root = tmp_path / "missing"
    path = pipeline(root, relation_model)
    shutil.rmtree(root / "models" / relation_model.name)
    with pytest.raises(PipelineError) as caught:
        run(path, force=True)
    assert f"{path}:{dep_line(path)}:" in str(caught.value) and "does not exist" in str(caught.value)
    # a folder that is not a relation model (a spaCy or encoder folder, say)
    root = tmp_path / "not-a-model"
    path = pipeline(root, relation_model)
    (root / "models" / relation_model.name / "relation_model.json").unlink()
    error = error_for(root, relation_model)
    assert error.exit_code == 2 and error.line == dep_line(path) and "not a relation model" in str(error)
    assert "kgpipe rel train" in (error.hint or "")
    # a model trained for other NER labels than any this stage gives
    root = tmp_path / "other-labels"
    path = pipeline(root, relation_model)
    config_file = root / "models" / relation_model.name / "relation_model.json"
    config = json.loads(config_file.read_text())
    config["entity_labels"] = [UNKNOWN_ENTITY, "Gene", "Protein"]
    config_file.write_text(json.dumps(config))
    error = error_for(root, relation_model)
    assert error.line == dep_line(path) and "Gene, Protein" in str(error) and "relation_label_map" in error.hint
    # ... which relation_label_map fixes
    _, _, relations = extract(root, relation_model, relation_policy="model",
                              relation_label_map={"PERSON": "Gene", "ORG": "Protein"})
    assert set(relations["pattern_id"]) <= {MODEL}
    # a relation_label_map naming a label the model lacks
    error = error_for(tmp_path / "strange", relation_model, relation_label_map={"PERSON": "Human"})
    assert "Human" in str(error) and error.line == dep_line(tmp_path / "strange" / "pipeline.yaml")
    # a model policy without a model
    error = error_for(tmp_path / "no-model", None, relation_policy="model")
    assert "relation_policy" in str(error) and error.line is not None


def test_the_folder_check_needs_no_pipeline(tmp_path, relation_model) -> None:
    """The check the stage runs again when it starts (the folder may be another stage's output)."""
    from kgpipe.stages.extract import ExtractParams, relation_model_problem

    problem = relation_model_problem(ExtractParams(), tmp_path)
    assert problem is not None and "not a relation model" in problem[0]
    assert relation_model_problem(ExtractParams(), relation_model) is None


def test_the_ray_engine_writes_the_local_bytes(tmp_path, relation_model, ray_cluster) -> None:
    """Each Ray actor loads the model from its folder itself; one document per range, so that the two workers
    share the corpus, and still the same bytes as the local engine's one range."""
    from kgpipe.nlp import extract_worker

    documents = [*DOCUMENTS_, ("d3", "Tony joined Umbrella, Globex and Hooli. Radia visited Acme.")]
    local, _, _ = extract(tmp_path / "local", relation_model, documents=documents)
    path = pipeline(tmp_path / "ray", relation_model, documents=documents)
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    config["executor"] = {"engine": "ray", "address": ray_cluster.address, "workers": 2}
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(extract_worker, "RANGE_DOCS", 1)
        ray = run(path, force=True)
    for name in ("mentions", "relations"):
        assert ray.outputs["extract"][name].read_bytes() == local.outputs["extract"][name].read_bytes()
    summary = {k: v for k, v in ray.summaries["extract"].items() if k != "timings"}
    assert summary == {k: v for k, v in local.summaries["extract"].items() if k != "timings"}
    assert summary["relations_model"] >= 3


def test_the_model_folder_is_a_tracked_dep_and_the_thread_count_is_restored(tmp_path, relation_model) -> None:
    path = pipeline(tmp_path, relation_model)
    torch.set_num_threads(2)
    first = run(path)
    assert first.ran == ["extract"] and torch.get_num_threads() == 2   # the model scored on one, then gave it back
    assert run(path).skipped == ["extract"]
    config_file = tmp_path / "models" / relation_model.name / "relation_model.json"
    config = json.loads(config_file.read_text())
    config["training"]["note"] = "retrained"
    config_file.write_text(json.dumps(config))
    assert run(path).ran == ["extract"]                                  # a changed model folder reruns the stage


def test_one_encoder_pass_per_sentence_never_per_pair(tmp_path, relation_model, monkeypatch) -> None:
    from kgpipe.lm.relation_model import RelationModel

    sequences: list[int] = []
    forward = RelationModel.forward

    def counting(self, batch):
        sequences.append(int(batch.input_ids.shape[0]))
        return forward(self, batch)

    monkeypatch.setattr(RelationModel, "forward", counting)
    result, _, _ = extract(tmp_path, relation_model, relation_policy="model")
    assert result.summaries["extract"]["relation_pairs_scored"] == 8
    # 4 sentences of 2 ordered pairs each: 4 encoder inputs, each document's two sentences in one batch
    assert sequences == [2, 2]
