"""benchmarks/extract_conll04.py's summary over training seeds: which trainer made a NER folder, how seeds pair,
and what each cell averages (the numbers issue 17's targets are read from).
"""

from __future__ import annotations

from types import ModuleType

import pytest

from tests.benchmark_modules import import_benchmark


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return import_benchmark("extract_conll04")


def test_the_kind_of_a_ner_model_is_read_from_the_meta_each_trainer_writes(bench: ModuleType) -> None:
    from kgpipe.nlp import train, transformer_train

    report = train.TrainReport(train_sentences=3, dev_sentences=0, labels=["Peop"])
    cnn = {"kgpipe_training": train._training_meta(report, train.TrainOptions())}
    transformer = {"kgpipe_training": transformer_train._training_meta(
        report, transformer_train.TransformerTrainOptions())}
    assert bench.ner_kind(cnn) == bench.CNN
    assert bench.ner_kind(transformer) == bench.TRANSFORMER
    assert bench.ner_kind({"name": "core_web_sm"}) is None


def test_seeds_pair_by_position_and_the_shorter_list_starts_again(bench: ModuleType) -> None:
    assert bench.paired(["n0", "n1", "n2"], ["r0"]) == [("n0", "r0"), ("n1", "r0"), ("n2", "r0")]
    assert bench.paired(["n0", "n1"], ["r0", "r1", "r2"]) == [("n0", "r0"), ("n1", "r1"), ("n0", "r2")]
    assert bench.paired([], ["r0"]) == []


def test_a_spread_shows_the_mean_and_min_max_or_the_one_value(bench: ModuleType) -> None:
    assert str(bench.Spread((0.5,))) == "0.500"
    assert str(bench.Spread((0.7, 0.5, 0.6))) == "0.600 (0.500-0.700)"


def test_the_summary_averages_each_model_once_per_cell(bench: ModuleType) -> None:
    run, gold = bench.EndToEnd, bench.WithGold
    runs = [run(bench.STOCK, "auto", "patterns", None, 0.5, 0.2),
            run(bench.CNN, "c0", "patterns", None, 0.7, 0.40),
            run(bench.CNN, "c1", "patterns", None, 0.8, 0.50),
            # two NER seeds, three relation seeds: c0 comes back for the third
            run(bench.CNN, "c0", "union", "r0", 0.7, 0.50),
            run(bench.CNN, "c1", "union", "r1", 0.8, 0.60),
            run(bench.CNN, "c0", "union", "r2", 0.7, 0.70),
            run(bench.STOCK, "auto", "union", "r0", 0.5, 0.3)]
    withgold = [gold("patterns", None, 0.64), gold("union", "r0", 0.70), gold("union", "r1", 0.72),
                gold("union", "r2", 0.74)]
    rows = bench.summarize(runs, withgold)
    assert [(r.kind, r.source) for r in rows] == [(bench.STOCK, "patterns"), (bench.STOCK, "union"),
                                                 (bench.CNN, "patterns"), (bench.CNN, "union")]
    cnn_union = rows[3]
    assert cnn_union.ner_seeds == 2
    assert cnn_union.entity_f1.mean == pytest.approx(0.75)  # c0 and c1 once each, though c0 ran twice
    assert cnn_union.end_to_end.values == (0.5, 0.6, 0.7)
    assert cnn_union.gold.mean == pytest.approx(0.72)
    assert rows[1].end_to_end.values == (0.3,) and rows[1].gold.mean == pytest.approx(0.72)
    assert rows[2].gold.values == (0.64,)
    assert "entity F1 >= 0.84: stock **0.500**, CNN-trained **0.750**" in bench.targets_17(rows)
    assert "CNN-trained + union **0.600** (met)" in bench.targets_17(rows)
