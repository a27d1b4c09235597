"""Hostile pipeline files: writes confined to the project, kgpipe's own paths protected, YAML limits."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from kgpipe.cli import app
from tests import toy_stages  # noqa: F401  (registers the toy stage types)
from tests.hostile.cases import Case, assert_clear_error, assert_untouched, parametrize, snapshot
from tests.toy_stages import write

runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def project(tmp_path: Path, config: dict | str) -> Path:
    """A project folder with input files, a pipeline file p.yaml (from a dict, or raw YAML text) and one earlier
    good run's artifacts, so that each case can check what it must not touch."""
    root = tmp_path / "proj"
    write(root / "in/a.txt", "alpha")
    write(root / "data/keep.txt", "user data")
    good = root / "good.yaml"
    good.write_text(yaml.safe_dump({"stages": {"a": {"type": "toy_upper", "deps": {"source": "in/a.txt"}}}}))
    assert invoke("run", good).exit_code == 0
    pipeline = root / "p.yaml"
    pipeline.write_text(config if isinstance(config, str) else yaml.safe_dump(config, sort_keys=False))
    return pipeline


def one_stage(**stage: object) -> dict:
    return {"stages": {"s": {"type": "toy_upper", "deps": {"source": "in/a.txt"}, **stage}}}


CONFINED = [
    Case("pipe-out-pipeline-file", "pipeline", "an out that names the pipeline file itself", "refused", 2),
    Case("pipe-out-dotdot", "pipeline", "an out `../../x.txt` climbing out of the project", "refused", 2),
    Case("pipe-out-absolute", "pipeline", "an out with an absolute path outside the project", "refused", 2),
    Case("pipe-out-project-root", "pipeline", "an out `.`: the project folder itself", "refused", 2),
    Case("pipe-out-workspace", "pipeline", "an out inside the workspace (.kgpipe/, the lock file's folder)",
         "refused", 2),
    Case("pipe-out-in-source-dep", "pipeline", "an out inside a folder another stage reads as input data",
         "refused", 2),
    Case("pipe-root-slash", "pipeline", "`root: /`", "refused", 2),
    Case("pipe-root-home", "pipeline", "`root:` the home folder", "refused", 2),
    Case("pipe-artifacts-outside", "pipeline", "`artifacts: ../elsewhere`", "refused", 2),
    Case("pipe-workspace-outside", "pipeline", "`workspace:` an absolute path outside the project", "refused", 2),
    Case("pipe-allow-outside-root", "pipeline", "`allow_outside: [/]`, allowing everything", "refused", 2),
    Case("pipe-artifacts-symlink-out", "pipeline", "an artifacts folder that is a link to a folder outside the "
         "project", "refused", 2),
    Case("pipe-stage-name-dotdot", "pipeline", "a stage named `../../x` (its default outs would climb out)",
         "refused", 2),
    Case("pipe-stage-name-slash", "pipeline", "a stage named `a/b`", "refused", 2),
    Case("pipe-stage-name-hidden", "pipeline", "a stage named `.hidden`", "refused", 2),
    Case("pipe-stage-name-control", "pipeline", "a stage name with a newline and an escape sequence", "refused", 2),
]


def _confined_config(case_id: str, tmp_path: Path) -> tuple[dict | str, str]:
    """The pipeline file of a confinement case and a fragment its error must contain."""
    outside = tmp_path / "outside"
    if case_id == "pipe-out-pipeline-file":
        return one_stage(outs={"result": "p.yaml"}), "would overwrite the pipeline file"
    if case_id == "pipe-out-dotdot":
        return one_stage(outs={"result": "../../x.txt"}), "outside the project folder"
    if case_id == "pipe-out-absolute":
        return one_stage(outs={"result": str(outside / "x.txt")}), "outside the project folder"
    if case_id == "pipe-out-project-root":
        return one_stage(outs={"result": "."}), "is the project folder itself"
    if case_id == "pipe-out-workspace":
        return one_stage(outs={"result": ".kgpipe/p/lock.json"}), "overlaps the workspace"
    if case_id == "pipe-out-in-source-dep":
        return {"stages": {"s": {"type": "toy_upper", "deps": {"source": "in/a.txt"},
                                 "outs": {"result": "data/new.txt"}},
                           "t": {"type": "toy_concat", "deps": {"parts": ["data"]}}}}, "a source dep of stage 't'"
    if case_id == "pipe-root-slash":
        return {"root": "/", **one_stage()}, "is too wide"
    if case_id == "pipe-root-home":
        return {"root": str(Path.home()), **one_stage()}, "is too wide"
    if case_id == "pipe-artifacts-outside":
        return {"artifacts": "../elsewhere", **one_stage()}, "artifacts"
    if case_id == "pipe-workspace-outside":
        return {"workspace": str(outside / "ws"), **one_stage()}, "workspace"
    if case_id == "pipe-allow-outside-root":
        return {"allow_outside": ["/"], **one_stage()}, "allow_outside: / is too wide"
    if case_id == "pipe-artifacts-symlink-out":
        outside.mkdir(parents=True, exist_ok=True)
        (tmp_path / "proj/linked").symlink_to(outside, target_is_directory=True)
        return {"artifacts": "linked", **one_stage()}, "outside the project folder"
    if case_id == "pipe-stage-name-dotdot":
        return {"stages": {"../../x": one_stage()["stages"]["s"]}}, "not a plain identifier"
    if case_id == "pipe-stage-name-slash":
        return {"stages": {"a/b": one_stage()["stages"]["s"]}}, "not a plain identifier"
    if case_id == "pipe-stage-name-hidden":
        return {"stages": {".hidden": one_stage()["stages"]["s"]}}, "not a plain identifier"
    if case_id == "pipe-stage-name-control":
        return {"stages": {"a\n\x1b[2Jb": one_stage()["stages"]["s"]}}, "not a plain identifier"
    raise AssertionError(case_id)


@parametrize(*CONFINED)
def test_writes_outside_the_project_or_onto_kgpipe_files_are_refused(case: Case, tmp_path: Path) -> None:
    pipeline = project(tmp_path, "")
    config, fragment = _confined_config(case.id, tmp_path)
    pipeline.write_text(yaml.safe_dump(config, sort_keys=False))
    before = snapshot(tmp_path)
    pipeline_text = pipeline.read_bytes()
    for command in (["run", pipeline], ["run", pipeline, "--dry-run"], ["status", pipeline]):
        result = invoke(*command)
        assert_clear_error(result, case.exit_code, "p.yaml:", fragment)
        assert "\x1b[2J" not in result.output  # a control sequence from the file is shown escaped
    assert pipeline.read_bytes() == pipeline_text
    assert_untouched(before, tmp_path)
    assert not (tmp_path / "outside").exists() or not any((tmp_path / "outside").iterdir())
    assert not (tmp_path / "x.txt").exists() and not (tmp_path / "proj/data/new.txt").exists()


@parametrize(Case("pipe-allow-outside", "pipeline", "an out in a folder listed under `allow_outside:` (a shared "
                  "cluster path)", "handled"))
def test_allow_outside_lets_outs_go_to_the_listed_folder_only(case: Case, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    pipeline = project(tmp_path, {"allow_outside": [str(shared)],
                                  **one_stage(outs={"result": str(shared / "r.txt")})})
    result = invoke("run", pipeline)
    assert result.exit_code == 0, result.output
    assert (shared / "r.txt").read_text() == "ALPHA"
    pipeline.write_text(yaml.safe_dump({"allow_outside": [str(shared)],
                                        **one_stage(outs={"result": str(tmp_path / "other/r.txt")})}))
    assert_clear_error(invoke("run", pipeline), 2, "outside the project folder", "allow_outside")


# --- YAML limits -----------------------------------------------------------------------------------------

BOMB = "".join(f"{a}: &{a} [{', '.join([f'*{p}'] * 9 if p else ['x'] * 9)}]\n"
               for a, p in zip("abcdefgh", ["", *"abcdefg"], strict=True)) + "stages: {}\n"

YAML_CASES = [
    Case("pipe-yaml-deep-nesting", "pipeline", "a list nested 900 levels deep in params", "error", 2),
    Case("pipe-yaml-alias-bomb", "pipeline", "a billion-laughs alias bomb (9^8 values from 1 KB)", "error", 2),
    Case("pipe-yaml-many-aliases", "pipeline", "500 alias references", "error", 2),
    Case("pipe-yaml-huge-file", "pipeline", "a 2 MB pipeline file", "error", 2),
    Case("pipe-yaml-not-utf8", "pipeline", "a pipeline file in Latin-1 with a non-ASCII byte", "error", 2),
    Case("pipe-yaml-python-tag", "pipeline", "a `!!python/object/apply:os.system` tag", "error", 2),
    Case("pipe-yaml-duplicate-key", "pipeline", "a stage declared twice", "error", 2),
    Case("pipe-yaml-stages-list", "pipeline", "`stages:` a list instead of a mapping", "error", 2),
    Case("pipe-yaml-unknown-key", "pipeline", "an unknown top-level key", "error", 2),
    Case("pipe-yaml-tab-indent", "pipeline", "a tab used for indentation", "error", 2),
    Case("pipe-yaml-empty", "pipeline", "an empty pipeline file", "error", 2),
    Case("pipe-yaml-binary", "pipeline", "NUL bytes and binary garbage", "error", 2),
]


def _yaml_text(case_id: str, tmp_path: Path) -> tuple[str | bytes, str]:
    stage = "stages:\n  s:\n    type: toy_upper\n    deps: {source: in/a.txt}\n"
    if case_id == "pipe-yaml-deep-nesting":
        return stage + "    params: {prefix: " + "[" * 900 + "]" * 900 + "}\n", "nested deeper than 64 levels"
    if case_id == "pipe-yaml-alias-bomb":
        return BOMB, "too many values once aliases are expanded"
    if case_id == "pipe-yaml-many-aliases":
        return "x: &x 1\ny: [" + ", ".join(["*x"] * 500) + "]\n" + stage, "more than 100 YAML aliases"
    if case_id == "pipe-yaml-huge-file":
        return stage + "# " + "x" * (2 << 20) + "\n", "more than the limit of 1,048,576"
    if case_id == "pipe-yaml-not-utf8":
        return (stage + "    description: caf\xe9\n").encode("latin-1"), "cannot read pipeline file"
    if case_id == "pipe-yaml-python-tag":
        marker = tmp_path / "pwned"
        # the safe loader never constructs Python objects: the tag is inert, the value a plain (wrong) list
        return stage + f"    params: !!python/object/apply:os.system ['touch {marker}']\n", "p.yaml:5"
    if case_id == "pipe-yaml-duplicate-key":
        return stage + stage[len("stages:\n"):], "duplicate key 's'"
    if case_id == "pipe-yaml-stages-list":
        return "stages: [a, b]\n", "stages"
    if case_id == "pipe-yaml-unknown-key":
        return "rm_rf: true\n" + stage, "unknown key 'rm_rf'"
    if case_id == "pipe-yaml-tab-indent":
        return "stages:\n\ts:\n", "invalid YAML"
    if case_id == "pipe-yaml-empty":
        return "", "pipeline file is empty"
    if case_id == "pipe-yaml-binary":
        return b"\x00\x01\x02stages\xff\xfe", "cannot read pipeline file"
    raise AssertionError(case_id)


@parametrize(*YAML_CASES)
def test_malformed_or_oversized_pipeline_files_fail_fast_with_the_line(case: Case, tmp_path: Path) -> None:
    text, fragment = _yaml_text(case.id, tmp_path)
    pipeline = project(tmp_path, "")
    (pipeline.write_bytes if isinstance(text, bytes) else pipeline.write_text)(text)  # type: ignore[operator]
    before = snapshot(tmp_path)
    started = time.perf_counter()
    assert_clear_error(invoke("run", pipeline), case.exit_code, "p.yaml", fragment)
    assert time.perf_counter() - started < 10  # no exponential blow-up
    assert not (tmp_path / "pwned").exists()
    assert_untouched(before, tmp_path)


def test_alias_and_depth_limits_leave_ordinary_yaml_alone(tmp_path: Path) -> None:
    """Anchors for shared params and a few levels of nesting are ordinary YAML and still load."""
    pipeline = project(tmp_path, "stages:\n"
                       "  s: {type: toy_upper, deps: {source: in/a.txt}, params: &common {prefix: '>'}}\n"
                       "  t: {type: toy_upper, deps: {source: in/a.txt}, params: *common}\n")
    result = invoke("run", pipeline)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "proj/artifacts/t/result.txt").read_text() == ">ALPHA"


@parametrize(Case("pattern-yaml-deep-nesting", "pipeline", "a relation pattern file nested 900 levels deep",
                  "error", 3))
def test_pattern_files_have_limits_of_their_own(case: Case, tmp_path: Path) -> None:
    """Pattern files may be machine-written and large (a 2 MB file loads), but not deep or explosive."""
    from kgpipe.errors import InputError
    from kgpipe.nlp.patterns import load_pattern_file

    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * (2 << 20) + "\npatterns: []\n")
    assert load_pattern_file(big) == []
    deep = tmp_path / "deep.yaml"
    deep.write_text("patterns:\n  - " + "[" * 900 + "]" * 900 + "\n")
    with pytest.raises(InputError) as err:
        load_pattern_file(deep)
    assert err.value.exit_code == case.exit_code and err.value.line == 2
    assert "nested deeper than 64 levels" in str(err.value) and "deep.yaml:2" in str(err.value)


@parametrize(Case("pipe-missing-spacy-model", "pipeline", "extract's spacy_model names a package that is not "
                  "installed", "error", 7),
             Case("pipe-missing-base-model", "pipeline", "inject's base_model names neither a folder nor a cached "
                  "model (nothing is downloaded)", "error", 7))
def test_a_missing_model_stops_the_run_before_ingest(case: Case, tmp_path: Path) -> None:
    """The validate hooks of extract and inject run before any stage: nothing is written."""
    from tests.test_embed_config import _default_pipeline_with

    pipeline = _default_pipeline_with(tmp_path)
    document = yaml.safe_load(pipeline.read_text())
    stage, param, value = (("extract", "spacy_model", "xx_no_such_model") if case.id.endswith("spacy-model")
                           else ("inject", "base_model", "no/such/encoder"))
    document["stages"][stage]["params"][param] = value
    pipeline.write_text(yaml.safe_dump(document, sort_keys=False))
    before = snapshot(tmp_path)
    for command in (["run", pipeline], ["run", pipeline, "--dry-run"]):
        assert_clear_error(invoke(*command), case.exit_code, value, "hint:")
    assert_untouched(before, tmp_path)
    assert not (tmp_path / "artifacts").exists()
