"""benchmarks/make_er_audits.py: the gold audits of Restaurants and Walmart-Amazon are found by their stated rules
on the raw files, and an audit applies only to the files it was made from."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from tests.benchmark_modules import import_benchmark

_HEAD = "id|http://x#name|http://x#phone_number|http://x#street\n"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return import_benchmark("make_er_audits")


def _restaurants(folder: Path) -> Path:
    folder.mkdir()
    (folder / "rest1.csv").write_text(_HEAD + "0|masa's|415/989-7154|\n1|granita|310/456-0488|\n"
                                      "2|palace court|702/731-7547|\n3|lulu|415/495-5775|\n4|zuni|415/552-2522|\n")
    (folder / "rest2.csv").write_text(_HEAD + "0|masa's|415-989-7154|\n1|granita|310-456-0488|\n"
                                      "2|cafe roma|702/731-7547|\n3|lulu restaurant-bis-cafe|415-495-5775|\n"
                                      "4|zuni cafe|415-552-0000|\n5|||1 main st.\n")
    (folder / "gt.csv").write_text("D1|D2\n1|1\n")
    return folder


def test_restaurants_audit_pairs_share_a_phone_and_a_name_word_and_no_gold_record(bench: ModuleType,
                                                                                 tmp_path: Path) -> None:
    pairs = bench.restaurant_pairs(_restaurants(tmp_path / "rest"))
    # granita is in the gold; palace court / cafe roma share a phone but no word; zuni's phones differ
    assert [(p.left, p.right) for p in pairs] == [("rest1:0", "rest2:0"), ("rest1:3", "rest2:3")]
    assert pairs[0].key == "4159897154"


def test_walmart_amazon_audit_pairs_share_a_model_number_and_a_brand(bench: ModuleType, tmp_path: Path) -> None:
    folder = tmp_path / "wa"
    folder.mkdir()
    head = "id|title|modelno|price|shipweight|brand|dimensions\n"
    (folder / "walmart.csv").write_text(head + "0|Clover CCM636 Camera|CCM636|87|1|Clover|\n"
                                        "1|Da-Lite Screen|40320|2285|1|Da-Lite|\n2|Sony NP-FH50|NP-FH50|38|1|Sony|\n"
                                        "3|Koss EQ50|||1|Koss|\n")
    (folder / "amazon.csv").write_text(head + "0|Clover Electronics CCM636|ccm-636|65|1|Clover Electronics|\n"
                                       "1|Cables To Go 40320 HDMI|40320|18|1|Cables To Go|\n"
                                       "2|Sony NPFH50 battery|NPFH50|30|1|Sony|\n3|Koss EQ50 equaliser|||1|Koss|\n")
    (folder / "gt.csv").write_text("D1|D2\n2|2\n")
    pairs = bench.walmart_amazon_pairs(folder)
    assert [(p.left, p.right, p.key) for p in pairs] == [("walmart:0", "amazon:0", "ccm636")]


def test_an_audit_applies_only_to_the_files_it_was_made_from(bench: ModuleType, tmp_path: Path) -> None:
    folder = _restaurants(tmp_path / "rest")
    audit = tmp_path / "audit.tsv"
    text = bench.audit_text("restaurants", folder, "2026-01-01")
    assert "# rule: cross-source pairs with the same phone number" in text
    audit.write_text(text)
    assert bench.audited_records("restaurants", folder, audit) == {"rest1:0", "rest2:0", "rest1:3", "rest2:3"}
    (folder / "gt.csv").write_text("D1|D2\n1|1\n0|0\n")  # another version of the gold
    assert bench.audited_records("restaurants", folder, audit) is None
