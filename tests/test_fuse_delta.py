"""What a fuse run changed against the outputs it replaced (kgpipe.delta, kgpipe.stages.fuse_delta): the delta
on crafted tables, then through the runner on the small hand-written fuse inputs of tests/test_fuse.py: the run
record holds it, `kgpipe diff` and the report show it, and the fuse outputs keep a full run's bytes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from kgpipe.artifacts import ENTITIES, MENTION_ENTITIES, SEED_ENTITIES, TRIPLES, write_table
from kgpipe.cli import app
from kgpipe.delta import EXAMPLES, StageDelta
from kgpipe.history import History, RunRecord
from kgpipe.registry import register_stage
from kgpipe.report import build_report
from kgpipe.run_diff import diff_runs
from kgpipe.runner import run
from kgpipe.stage import OutputSpec, StageContext, StageType
from kgpipe.stages.fuse_delta import fuse_delta
from tests.test_fuse import DOCS, EX, SEED_ENTITY_ROWS, fuse, write_inputs

cli = CliRunner()
R = EX + "r"


def entity(entity_id: str, label: str, mentions: int = 1) -> dict:
    return {"id": entity_id, "label": label, "type": None, "aliases": [], "seed_iri": None,
            "mention_count": mentions, "sources": ["doc"]}


def outputs(folder: Path, entities: list[dict], mention_entities: dict[str, str],
            triples: list[tuple[str, str, str]]) -> dict[str, Path]:
    """A fuse run's three compared outputs, written with their schemas."""
    folder.mkdir(parents=True)
    paths = {name: folder / f"{name}.parquet" for name in ("entities", "mention_entities", "triples")}
    write_table(entities, paths["entities"], ENTITIES)
    write_table([{"mention_id": m, "entity_id": e} for m, e in mention_entities.items()],
                paths["mention_entities"], MENTION_ENTITIES)
    write_table([{"head": h, "relation": r, "tail": t, "count": 1, "sources": ["doc"], "confidence": 1.0}
                 for h, r, t in triples], paths["triples"], TRIPLES)
    return paths


def test_each_kind_of_change_on_crafted_tables(tmp_path: Path) -> None:
    a, b, c, d, e, f, g = (EX + x for x in "ABCDEFG")
    old = outputs(tmp_path / "old",
                  [entity(a, "Ada Quill"), entity(b, "A. Quill"), entity(c, "Oslo"), entity(d, "Bohr", 2),
                   entity(f, "Gone")],
                  {"m1": a, "m2": b, "m3": c, "m4": d, "m5": d, "m6": f},
                  [(a, R, c), (d, R, c), (b, R, c)])
    new = outputs(tmp_path / "new",
                  [entity(a, "Ada Quill", 2), entity(c, "Oslo, Norway"), entity(d, "Niels Bohr"),
                   entity(e, "Aage Bohr"), entity(g, "Zeta", 3)],
                  {"m1": a, "m2": a, "m3": c, "m4": d, "m5": e, "m7": g},
                  [(a, R, c), (d, R, c), (d, R, c), *((e, R + str(n), c) for n in range(EXAMPLES + 2))])
    delta = fuse_delta(old, new)
    assert delta.compared and delta.changed
    assert delta.counts == {"entities added": 2, "entities removed": 2, "entities merged": 1, "entities split": 1,
                            "entities relabelled": 2, "mentions moved": 2, "triples added": EXAMPLES + 2,
                            "triples removed": 1}
    parts = {part.kind: part for part in delta.parts}
    # the most mentioned first, with labels and ids
    assert parts["entities added"].examples == ((g, "Zeta", 3), (e, "Aage Bohr", 1))
    assert parts["entities removed"].examples == ((b, "A. Quill", 1), (f, "Gone", 1))
    # two earlier entities now one: the new entity with the earlier ones; one earlier entity now two
    # (the earlier or later entities by id)
    assert parts["entities merged"].examples == ((a, "Ada Quill", f"Ada Quill <{a}>; A. Quill <{b}>"),)
    assert parts["entities split"].examples == ((d, "Bohr", f"Niels Bohr <{d}>; Aage Bohr <{e}>"),)
    assert parts["entities relabelled"].examples == ((c, "Oslo", "Oslo, Norway"), (d, "Bohr", "Niels Bohr"))
    assert parts["mentions moved"].examples == (("m2", f"A. Quill <{b}>", f"Ada Quill <{a}>"),
                                                ("m5", f"Bohr <{d}>", f"Aage Bohr <{e}>"))
    # triples by (head, relation, tail), duplicates counted once; at most EXAMPLES examples of each kind
    assert parts["triples removed"].examples == ((f"A. Quill <{b}>", R, f"Oslo <{c}>"),)
    added = parts["triples added"]
    assert len(added.examples) == EXAMPLES and added.examples[0] == (f"Aage Bohr <{e}>", R + "0", f"Oslo, Norway <{c}>")
    # the same outputs on both sides: nothing changed, every kind still listed
    same = fuse_delta(new, new)
    assert same.compared and not same.changed and len(same.parts) == len(delta.parts)
    # read back from a run record as it was written
    assert StageDelta.from_json(json.loads(json.dumps(delta.as_json()))) == delta


def test_nothing_to_compare_says_why(tmp_path: Path) -> None:
    new = outputs(tmp_path / "new", [entity(EX + "A", "A")], {"m1": EX + "A"}, [])
    first = fuse_delta({}, new)
    assert not first.compared and first.parts == () and "first run" in (first.note or "")
    partial = fuse_delta({"entities": new["entities"]}, new)
    assert not partial.compared and "mention_entities, triples" in (partial.note or "")


# --- through the runner -------------------------------------------------------------------------------------


def write_seed(root: Path, *, variant: bool) -> None:
    """The seed entities of tests/test_fuse.py; the variant drops Niels Bohr's alias 'Bohr' (so the bare 'Bohr'
    of doc5 goes to Aage Bohr) and labels England 'England (country)'."""
    rows = []
    for iri, label, aliases, types in SEED_ENTITY_ROWS:
        if variant and iri == EX + "Niels_Bohr":
            aliases = []
        if variant and iri == EX + "England":
            label = "England (country)"
        rows.append({"iri": iri, "label": label, "aliases": aliases, "types": types, "sources": ["seed.ttl"]})
    write_table(rows, root / "in/seed_entities.parquet", SEED_ENTITIES)


def records(root: Path) -> list[RunRecord]:
    return History(root / ".kgpipe/pipeline/runs").records()


def fuse_outputs(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((root / "artifacts/fuse").iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory) -> Path:
    """Run 1 on the variant seed, run 2 on the seed of tests/test_fuse.py."""
    root = tmp_path_factory.mktemp("delta")
    write_inputs(root, DOCS)
    write_seed(root, variant=True)
    fuse(root)
    write_seed(root, variant=False)
    fuse(root)
    return root


def test_the_first_run_says_there_was_nothing_to_compare(two_runs: Path) -> None:
    first = records(two_runs)[0].stages["fuse"]
    assert first.delta is not None and not first.delta.compared
    assert "first run" in first.delta.describe()


def test_the_run_record_holds_the_delta_against_the_previous_run(two_runs: Path) -> None:
    one, two = records(two_runs)
    delta = two.stages["fuse"].delta
    assert delta is not None and delta.compared
    assert delta.base_run == one.id and delta.base_outs == one.stages["fuse"].outs
    assert delta.counts == {"entities added": 0, "entities removed": 0, "entities merged": 1, "entities split": 1,
                            "entities relabelled": 1, "mentions moved": 1, "triples added": 0, "triples removed": 0}
    parts = {part.kind: part for part in delta.parts}
    niels, aage = EX + "Niels_Bohr", EX + "Aage_Bohr"
    assert parts["entities merged"].examples == ((niels, "Niels Bohr", f"Aage Bohr <{aage}>; Niels Bohr <{niels}>"),)
    assert parts["entities split"].examples[0][0] == aage
    assert parts["entities relabelled"].examples == ((EX + "England", "England (country)", "England"),)
    # read back from the file: counts and examples only, a few KB
    path = History(two_runs / ".kgpipe/pipeline/runs").folder / f"{two.id}.json"
    assert json.loads(path.read_text())["stages"]["fuse"]["delta"]["base_run"] == one.id


def test_fuse_outputs_keep_a_full_runs_bytes(two_runs: Path, tmp_path: Path) -> None:
    """The second run (with a previous run to compare with) writes what a first run on its inputs writes."""
    write_inputs(tmp_path, DOCS)
    write_seed(tmp_path, variant=False)
    fuse(tmp_path)
    assert records(tmp_path)[0].stages["fuse"].delta is not None  # (not compared: a first run)
    incremental, full = fuse_outputs(two_runs), fuse_outputs(tmp_path)
    assert incremental["fusion_report.json"] == full["fusion_report.json"]
    assert incremental == full and len(full) == 7  # learned_weights.json among them (a note with learn fixed)
    assert "delta" not in json.loads(full["fusion_report.json"])


def test_kgpipe_diff_shows_the_delta(two_runs: Path) -> None:
    pipeline = two_runs / "pipeline.yaml"
    shown = cli.invoke(app, ["diff", "--pipeline", str(pipeline)])
    assert shown.exit_code == 0, shown.output
    one, two = records(two_runs)
    assert f"fuse: changes in its outputs, run {two.id} against the outputs of run {one.id}" in shown.output
    assert "entities merged" in shown.output and "England (country)" in shown.output
    as_json = cli.invoke(app, ["diff", "--pipeline", str(pipeline), "--json"])
    deltas = json.loads(as_json.output)["stages"]["fuse"]["deltas"]
    assert [d["run"] for d in deltas] == [two.id] and deltas[0]["base_run"] == one.id


def test_diff_lists_the_delta_of_each_run_in_between_and_none_for_unchanged_outputs(tmp_path: Path) -> None:
    write_inputs(tmp_path, DOCS)
    write_seed(tmp_path, variant=True)
    fuse(tmp_path)
    write_seed(tmp_path, variant=False)
    fuse(tmp_path)
    fuse(tmp_path, force=True)  # the same outputs again: compared, nothing changed
    first, second, third = history = records(tmp_path)
    assert third.stages["fuse"].delta is not None and not third.stages["fuse"].delta.changed
    assert diff_runs(second, third, history).stages[0].deltas == []
    assert [d.run for d in diff_runs(first, third, history).stages[0].deltas] == [second.id]
    assert [d.run for d in diff_runs(first, second).stages[0].deltas] == [second.id]  # no history: new's own


def test_the_report_shows_the_changes_since_the_previous_run(two_runs: Path) -> None:
    page = build_report(two_runs / "pipeline.yaml").read_text(encoding="utf-8")
    contents = page[page.index('<nav id="contents">'):page.index("</nav>")]
    assert '<a href="#changes">Changes since the previous run</a>' in contents
    changes = page[page.index('<div class="summary" id="changes">'):]
    changes = changes[:changes.index("</div>")]
    one, two = records(two_runs)
    assert f"run {two.id} against the outputs of run {one.id}" in changes
    assert "<td>entities relabelled</td><td>1</td>" in changes
    assert "<td>http://ex.org/England</td><td>England (country)</td><td>England</td>" in changes


def test_the_explorers_run_page_shows_the_changes_since_the_previous_run(two_runs: Path) -> None:
    pytest.importorskip("fastapi", reason="the explorer needs the web extra: pip install 'kgpipe[web]'")
    from fastapi.testclient import TestClient

    from kgpipe.web.app import create_app

    client = TestClient(create_app(two_runs / "pipeline.yaml", host="127.0.0.1", port=8765),
                        base_url="http://127.0.0.1:8765")
    page = client.get("/run")
    assert page.status_code == 200
    one, two = records(two_runs)
    assert "Changes since the previous run" in page.text
    assert f"run {two.id} against the outputs of run {one.id}" in page.text
    assert "<td>entities relabelled</td><td>1</td>" in page.text


# --- a stage type whose comparison fails ----------------------------------------------------------------------


@register_stage
class ToyBrokenDelta(StageType):
    """Writes its param; its delta hook raises."""

    name = "toy_broken_delta"
    outputs = (OutputSpec("result", "out.txt"),)

    def run(self, ctx: StageContext) -> dict:
        ctx.output("result").write_text("x")
        return {}

    @classmethod
    def delta(cls, old: dict[str, Path], new: dict[str, Path]) -> StageDelta | None:
        raise RuntimeError("boom")


def test_a_failing_comparison_is_a_note_not_a_failed_run(tmp_path: Path) -> None:
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(yaml.safe_dump({"stages": {"t": {"type": "toy_broken_delta"}}}))
    result = run(pipeline)
    assert result.ran == ["t"] and (tmp_path / "artifacts/t/out.txt").read_text() == "x"
    delta = History(tmp_path / ".kgpipe/p/runs").records()[0].stages["t"].delta
    assert delta is not None and not delta.compared
    assert delta.note == "could not compare with the previous outputs: RuntimeError: boom"
