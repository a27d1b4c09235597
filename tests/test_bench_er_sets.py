"""benchmarks/_er_sets.py's pipe_set: any two-source set in pyJedAI's layout, its columns' kinds given, becomes
records with attribute rules and gold pairs, and er_vs_splink reads each attribute by its kind; a missing column
or an unknown kind stops with the file and what to do."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.benchmark_modules import import_benchmark

SHOP_A = ("id|title|modelno|brand|price\n1|Sony Turntable - PSLX350H|PSLX350H|Sony|99.00\n"
          "2|Lexar 16GB card|LX16|Lexar|$12\n")
SHOP_B = ("id|http://x.org/o#title|http://x.org/o#modelno|http://x.org/o#brand|http://x.org/o#price\n"
          "7|Sony PS-LX350H Belt-Drive Turntable|PS-LX350H|Sony|101\n8|Lexar 16 GB SD|LX16|Lexar Media|\n"
          "9|Apollo 8 poster||NASA|5\n")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    data = tmp_path / "shops"
    data.mkdir()
    (data / "a.csv").write_text(SHOP_A, encoding="utf-8")
    (data / "b.csv").write_text(SHOP_B, encoding="utf-8")
    (data / "gt.csv").write_text("D1|D2\n1|7\n2|8\n", encoding="utf-8")
    return data


KINDS = {"modelno": "code", "brand": "exact", "price": "price"}


@pytest.fixture(autouse=True)
def siblings() -> None:
    import_benchmark("make_er_audits")   # _er_sets imports it inside pipe_set


def test_a_pipe_set_is_records_rules_and_gold(folder: Path) -> None:
    sets = import_benchmark("_er_sets")
    data = sets.pipe_set(folder, "title", KINDS)
    assert data.name == "shops" and data.sources == ("a", "b")
    assert [r.id for r in data.records] == ["a:1", "a:2", "b:7", "b:8", "b:9"]
    assert data.records[2].name == "Sony PS-LX350H Belt-Drive Turntable"   # an IRI header's last part
    assert data.records[4].attributes == {"brand": "NASA", "price": "5"}    # empty values are left out
    assert data.gold == {("a:1", "b:7"), ("a:2", "b:8")}
    assert data.kinds == KINDS
    assert {c: r.weight for c, r in data.attributes.items()} == {"modelno": 0.5, "brand": 0.25, "price": 0.25}
    assert data.keep is None


def test_splink_reads_each_attribute_by_its_kind(folder: Path) -> None:
    import_benchmark("_er_sets")
    bench = import_benchmark("er_vs_splink")
    frame = bench.splink_frame(bench.pipe_set(folder, "title", KINDS), rare=100).set_index("unique_id")
    assert frame.at["b:7", "modelno"] == "pslx350h" == frame.at["a:1", "modelno"]   # a code's letters and digits
    assert frame.at["b:8", "brand"] == "lexar media"
    assert frame.at["a:2", "price"] == 12.0 and frame.at["b:8", "price"] != frame.at["b:8", "price"]   # NaN
    assert bench._number("1999.0") == "1999" == bench._number(" 1999 ") and bench._number("n/a") == "n/a"


def test_a_missing_column_or_an_unknown_kind_says_what_to_do(folder: Path) -> None:
    sets = import_benchmark("_er_sets")
    with pytest.raises(SystemExit, match=r"a\.csv: no column weight .*it has id, title"):
        sets.pipe_set(folder, "title", {"weight": "numeric"})
    with pytest.raises(SystemExit, match="unknown attribute kinds \\['colour'\\]"):
        sets.pipe_set(folder, "title", {"brand": "colour"})
    (folder / "c.csv").write_text(SHOP_A, encoding="utf-8")
    with pytest.raises(SystemExit, match="expected two csv files"):
        sets.pipe_set(folder, "title", KINDS)
    assert sets.pipe_set(folder, "title", KINDS, files=("a.csv", "b.csv")).sources == ("a", "b")
