"""The trained relation classifier (`kgpipe rel train`): learning, windowing, negatives, save/load in a fresh
interpreter, resuming from a checkpoint, and the command's errors. A random tiny BERT keeps training to seconds;
one test trains the packaged MiniLM for an epoch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from kgpipe.cli import app
from kgpipe.errors import InputError, WorkspaceError
from kgpipe.lm import relation_train
from kgpipe.lm.relation_model import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    EntitySpan,
    RelationModel,
    TextWithEntities,
)
from kgpipe.lm.relation_train import RelTrainOptions, RelTrainReport, train_relation_model
from kgpipe.nlp.labelled import read_labelled
from tests.relation_fixtures import PEOPLE, keyword_data, options, sentence, write
from tests.tiny_encoder import make_tiny_bert

REPO = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory) -> Path:
    return make_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


def test_the_model_learns_a_keyword_rule_and_scores_every_ordered_pair(tmp_path, tiny_base) -> None:
    train = read_labelled(write(tmp_path / "train.jsonl", keyword_data(PEOPLE[:8])))
    test = read_labelled(write(tmp_path / "test.jsonl", keyword_data(PEOPLE[8:])))
    report = train_relation_model(train, tmp_path / "model", options(tiny_base))
    assert report.pairs == 2 * len(train) == 192 and report.related_pairs == 48
    losses = [e.loss for e in report.epochs]
    assert losses[-1] < 0.3 * losses[0]
    model = RelationModel.load(tmp_path / "model")
    texts = [relation_train.as_text(s) for s in test]
    predicted = {(n, p.subject, p.object, p.label) for n, found in enumerate(model.predict(texts)) for p in found}
    gold = {(n, r.head, r.tail, r.type) for n, s in enumerate(test) for r in s.relations}
    assert len(gold) == 24 and predicted == gold      # all 96 ordered pairs of unseen names right
    scores = model.score(texts[:2])
    assert scores.pairs == [[(0, 1), (1, 0)]] * 2 and scores.skipped == 0
    assert torch.allclose(scores.probabilities[0].sum(1), torch.ones(2))


def test_held_out_slice_scores_each_epoch_and_stops_early(tmp_path, tiny_base) -> None:
    train = read_labelled(write(tmp_path / "train.jsonl", keyword_data(PEOPLE[:8])))
    report = train_relation_model(train, tmp_path / "model", options(tiny_base, epochs=30, holdout=0.25, patience=2))
    assert report.heldout_sentences == 24 and report.train_sentences == 72
    assert all(e.f1 is not None for e in report.epochs) and report.best.f1 >= 0.9
    assert report.stopped.startswith("no held-out improvement") and len(report.epochs) < 30
    saved = json.loads((tmp_path / "model" / CONFIG_FILE).read_text())
    assert saved["training"]["best_epoch"] == report.best_epoch
    assert saved["training"]["epochs_run"] == len(report.epochs)
    assert not (tmp_path / "model" / relation_train.CHECKPOINT_FILE).exists()


def test_a_fresh_interpreter_loads_the_folder_offline_and_gives_the_same_probabilities(tmp_path, tiny_base) -> None:
    train = read_labelled(write(tmp_path / "train.jsonl", keyword_data(PEOPLE[:4])))
    train_relation_model(train, tmp_path / "model", options(tiny_base, epochs=2))
    config = json.loads((tmp_path / "model" / CONFIG_FILE).read_text())
    assert config["base_model"] == tiny_base.name and str(tiny_base.parent) not in json.dumps(config)
    assert config["relation_labels"] == ["<none>", "Work_For"]
    assert config["entity_labels"] == ["<unknown>", "Org", "Peop"]
    text = "Tony joined Hooli and later Radia visited Acme."
    entities = [(0, 4, "Peop"), (12, 17, "Org"), (28, 33, "Peop"), (42, 46, "Org")]
    here = RelationModel.load(tmp_path / "model").score(
        [TextWithEntities(text, tuple(EntitySpan(*e) for e in entities))])
    script = (
        "import json, sys, torch\n"
        "torch.set_num_threads(1)\n"
        "from kgpipe.lm.relation_model import RelationModel, TextWithEntities, EntitySpan\n"
        "assert 'kgpipe.lm.relation_train' not in sys.modules\n"
        f"m = RelationModel.load({str(tmp_path / 'model')!r})\n"
        f"s = m.score([TextWithEntities({text!r}, tuple(EntitySpan(*e) for e in {entities!r}))])\n"
        "assert 'kgpipe.lm.relation_train' not in sys.modules\n"
        "print(json.dumps({'pairs': s.pairs[0], 'p': s.probabilities[0].tolist()}))\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": str(REPO),
           "OMP_NUM_THREADS": "1"}
    # the base model folder is gone: loading needs only the model folder
    moved = tiny_base.with_name(tiny_base.name + "-moved")
    tiny_base.rename(moved)
    try:
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    finally:
        moved.rename(tiny_base)
    there = json.loads(done.stdout.strip().splitlines()[-1])
    assert [tuple(p) for p in there["pairs"]] == here.pairs[0] and len(here.pairs[0]) == 12
    assert torch.allclose(torch.tensor(there["p"]), here.probabilities[0], atol=1e-6)


def test_an_interrupted_run_resumes_from_its_checkpoint_to_the_same_weights(tmp_path, tiny_base) -> None:
    train = read_labelled(write(tmp_path / "train.jsonl", keyword_data(PEOPLE[:3])))
    settings = options(tiny_base, epochs=3, dropout=0.1, warmup=0.2)   # dropout: the torch RNG state matters
    whole = train_relation_model(train, tmp_path / "whole", settings)

    def interrupt(score) -> None:
        if score.epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_relation_model(train, tmp_path / "cut", settings, progress=interrupt)
    assert (tmp_path / "cut" / relation_train.CHECKPOINT_FILE).exists()
    with pytest.raises(WorkspaceError, match="other data or options"):
        train_relation_model(train, tmp_path / "cut", options(tiny_base, epochs=3, seed=2))
    resumed = train_relation_model(train, tmp_path / "cut", settings)
    assert resumed.resumed_after == 1 and [e.epoch for e in resumed.epochs] == [1, 2, 3]
    assert [e.loss for e in resumed.epochs] == [e.loss for e in whole.epochs]
    assert (tmp_path / "cut" / WEIGHTS_FILE).read_bytes() == (tmp_path / "whole" / WEIGHTS_FILE).read_bytes()
    # deterministic for a seed: a second uninterrupted run writes the same bytes; another seed does not
    train_relation_model(train, tmp_path / "again", settings)
    assert (tmp_path / "again" / WEIGHTS_FILE).read_bytes() == (tmp_path / "whole" / WEIGHTS_FILE).read_bytes()
    # --restart: a checkpoint left behind is discarded, and the run starts at epoch 1
    with pytest.raises(KeyboardInterrupt):
        train_relation_model(train, tmp_path / "cut", settings, progress=interrupt)
    fresh = train_relation_model(train, tmp_path / "cut", options(tiny_base, epochs=1), restart=True)
    assert fresh.resumed_after is None and [e.epoch for e in fresh.epochs] == [1]
    assert not (tmp_path / "cut" / relation_train.CHECKPOINT_FILE).exists()


def test_loading_names_what_is_wrong_with_a_model_folder(tmp_path, tiny_base) -> None:
    from kgpipe.errors import ArtifactError, DependencyMissingError

    with pytest.raises(DependencyMissingError, match="not a relation model folder"):
        RelationModel.load(tmp_path / "absent")
    folder = RelationModel.from_base(str(tiny_base), ["Work_For"], ["Peop"]).save(tmp_path / "m")
    other = RelationModel.from_base(str(tiny_base), ["Work_For", "Live_In"], ["Peop"]).save(tmp_path / "other")
    (folder / WEIGHTS_FILE).write_bytes((other / WEIGHTS_FILE).read_bytes())
    with pytest.raises(ArtifactError, match="weights do not match"):
        RelationModel.load(folder)
    config = json.loads((folder / CONFIG_FILE).read_text())
    (folder / CONFIG_FILE).write_text(json.dumps({**config, "format": "something-else/9"}))
    with pytest.raises(ArtifactError, match="cannot rebuild the relation model"):
        RelationModel.load(folder)


def test_long_sentences_are_windowed_and_pairs_no_window_holds_are_counted(tiny_base) -> None:
    model = RelationModel.from_base(str(tiny_base), ["Work_For"], ["Org", "Loc", "Peop"], max_length=24)
    assert model.config.stride == 6       # 22 words a window (one token each), windows start at words 0, 16, 32
    words = ["then"] * 40
    words[2], words[18], words[30] = "Smith", "London", "Paris"   # London sits in the overlap of windows 1 and 2
    words[21], words[22] = "New", "York"                            # cut by window 1's end: whole only in 2
    text = " ".join(words)
    spans = [(text.index(w), text.index(w) + len(w)) for w in ("Smith", "London", "Paris", "New York")]
    sentence = TextWithEntities(text, tuple(EntitySpan(a, b, "Loc") for a, b in spans))
    units, skipped = model.encode([sentence])
    assert len(units) == 2 and all(len(u.input_ids) <= 24 for u in units)
    assert [u.pairs for u in units] == [[(0, 1), (1, 0)], [(1, 2), (1, 3), (2, 1), (2, 3), (3, 1), (3, 2)]]
    assert skipped == 4                                 # Smith shares no window with Paris or New York
    decode = model.tokenizer.decode
    for unit in units:
        for k, (s, o) in enumerate(unit.pairs):
            assert decode([unit.input_ids[t] for t in unit.subject_tokens[k]]) == text[slice(*spans[s])].lower()
            assert decode([unit.input_ids[t] for t in unit.object_tokens[k]]) == text[slice(*spans[o])].lower()
    scores = model.score([sentence], batch_size=1)
    assert scores.pairs == [[(0, 1), (1, 0), (1, 2), (1, 3), (2, 1), (2, 3), (3, 1), (3, 2)]]
    assert scores.skipped == 4
    short = TextWithEntities("Smith saw London", (EntitySpan(0, 5, "Peop"), EntitySpan(10, 16, "Loc")))
    batched = model.score([sentence, short], batch_size=8)            # three sequences in one padded pass
    assert torch.allclose(batched.probabilities[0], scores.probabilities[0], atol=1e-5)
    assert torch.allclose(batched.probabilities[1], model.score([short]).probabilities[0], atol=1e-5)


def test_negatives_become_no_relation_examples_for_their_pairs(tmp_path, tiny_base) -> None:
    train = read_labelled(write(tmp_path / "train.jsonl", keyword_data(PEOPLE[:2])))
    wrong = sentence("Grace", "visited", "Acme", True)   # the explorer marked Work_For(Grace, Acme) wrong
    wrong_file = write(tmp_path / "wrong.jsonl", [wrong, {**wrong, "relations": []}])
    negatives = read_labelled(wrong_file)
    model = RelationModel.from_base(str(tiny_base), ["Work_For"], ["Org", "Peop"])
    report = RelTrainReport(len(train), 0, ["Work_For"], ["Org", "Peop"])
    plain = relation_train._examples(model, train, (), RelTrainReport(len(train), 0, [], []))
    data = relation_train._examples(model, train, negatives, report)
    assert report.negatives_added == 1
    assert data.sentences[:-1] == plain.sentences and data.targets[:-1] == plain.targets
    assert data.sentences[-1].text == "Grace visited Acme ." and data.pairs[-1] == [(0, 1)]
    assert data.targets[-1] == [0]                       # "no relation"
    trained = train_relation_model(train, tmp_path / "m", options(tiny_base, epochs=1), negatives=negatives)
    assert trained.negatives_added == 1 and trained.pairs == 2 * len(train) + 1


def test_rel_train_command_prints_epochs_and_writes_the_model(tmp_path, tiny_base) -> None:
    train = write(tmp_path / "train.jsonl", keyword_data(PEOPLE[:4]))
    out = tmp_path / "model"
    result = CliRunner().invoke(app, ["rel", "train", str(train), str(out), "--base-model", str(tiny_base),
                                      "--epochs", "2", "--lr", "3e-3", "--batch-size", "8", "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert result.output.count("held-out P ") == 2 and "epoch   2" in result.output
    assert "saved epoch" in result.output and "relations: Work_For" in result.output
    assert (out / "tokenizer" / "tokenizer.json").is_file()
    # no checkpoint and no temporary files are left behind
    assert sorted(p.name for p in out.iterdir()) == [CONFIG_FILE, WEIGHTS_FILE, "tokenizer"]


@pytest.mark.parametrize("case", ["missing", "garbled", "no-base", "not-a-model", "not-an-encoder", "negatives"])
def test_rel_train_errors_name_the_file_and_exit_3(tmp_path, tiny_base, case) -> None:
    train = write(tmp_path / "train.jsonl", keyword_data(PEOPLE[:2]))
    args = ["rel", "train", str(train), str(tmp_path / "out"), "--base-model", str(tiny_base)]
    expected = "train.jsonl"
    if case == "missing":
        args[2] = str(tmp_path / "absent.jsonl")
        expected = "absent.jsonl"
    elif case == "garbled":
        train.write_text(train.read_text() + '{"tokens": ["a"], "entities": [{"start": 0}]}\n')
        expected = "train.jsonl:25: not a labelled sentence"
    elif case == "no-base":
        args[-1] = str(tmp_path / "no-such-model")
        expected = "no-such-model: base model folder"
    elif case == "not-a-model":
        (tmp_path / "empty").mkdir()
        args[-1] = str(tmp_path / "empty")
        expected = "empty: not a Hugging Face model folder"
    elif case == "not-an-encoder":
        (tmp_path / "odd").mkdir()
        (tmp_path / "odd" / "config.json").write_text('{"model_type": "no-such-architecture"}')
        args[-1] = str(tmp_path / "odd")
        expected = "odd: cannot load an encoder"
    else:
        args += ["--negatives", str(write(tmp_path / "wrong.jsonl", [{"tokens": ["x"], "relations": [
            {"head": 0, "tail": 1, "type": "Work_For"}]}]))]
        expected = "wrong.jsonl:1: not a labelled sentence"
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 3, result.output
    assert expected in " ".join(result.output.split()), result.output
    assert "hint:" in result.output


def test_input_errors_keep_file_and_line(tmp_path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"tokens": ["a", "b"], "entities": [{"start": 0, "end": 5, "type": "X"}]}\n')
    with pytest.raises(InputError) as info:
        read_labelled(bad)
    assert info.value.line == 1 and "bad.jsonl:1" in str(info.value)


def test_the_packaged_minilm_trains_saves_and_loads(tmp_path) -> None:
    rows = keyword_data(PEOPLE[:2])
    train = read_labelled(write(tmp_path / "train.jsonl", rows))
    report = train_relation_model(train, tmp_path / "minilm", RelTrainOptions(epochs=1, holdout=0.0, batch_size=6))
    assert report.epochs[0].loss > 0 and report.best_epoch == 1
    model = RelationModel.load(tmp_path / "minilm")
    assert model.config.base_model == "all-MiniLM-L6-v2" and model.config.encoder["hidden_size"] == 384
    scores = model.score([relation_train.as_text(s) for s in train[:3]])
    assert [len(p) for p in scores.pairs] == [2, 2, 2] and scores.probabilities[0].shape == (2, 2)


def test_batches_cover_every_sentence_once_with_similar_lengths_in_a_seeded_order() -> None:
    import random

    length = {s: (s * 7919) % 97 + 3 for s in range(1000)}
    batches = relation_train._batches(list(range(1000)), length, 8, random.Random(0))
    assert sorted(s for b in batches for s in b) == list(range(1000)) and len(batches) == 125
    padded = sum(max(length[s] for s in b) * len(b) for b in batches)
    assert padded < 1.1 * sum(length.values())                        # sorted within blocks: little padding
    again = relation_train._batches(list(range(1000)), length, 8, random.Random(0))
    other = relation_train._batches(list(range(1000)), length, 8, random.Random(1))
    assert again == batches and other != batches
    assert [max(length[s] for s in b) for b in batches[:20]] != sorted(max(length[s] for s in b) for b in batches[:20])
