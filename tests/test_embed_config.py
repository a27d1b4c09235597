"""kgpipe.embed without training: per-model defaults merged with what a pipeline sets, names and kwargs
checked against PyKEEN's resolvers, stage params, PYSTOW_HOME, and the pipeline file errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kgpipe.config import load_pipeline
from kgpipe.embed.config import EarlyStopping, TrainingConfig, validate
from kgpipe.embed.defaults import GENERIC, MODEL_DEFAULTS, training_config
from kgpipe.errors import PipelineError
from tests.conftest import REPO


def test_naming_only_the_model_gives_its_tuned_defaults() -> None:
    config, note = training_config("ComplEx")
    table = MODEL_DEFAULTS["complex"]
    assert config.model == "complex" and note == "kgpipe defaults for complex"
    assert config.training_loop == table["training_loop"] and config.loss == table["loss"]
    assert dict(config.model_kwargs) == table["model_kwargs"]
    assert config.early_stopping == table["early_stopping"] and config.batch_size == table["batch_size"]


def test_a_model_without_a_table_entry_gets_generic_defaults_and_its_own_loss() -> None:
    from pykeen.losses import loss_resolver
    from pykeen.models import TransH

    assert "transh" not in MODEL_DEFAULTS
    config, note = training_config("TransH")
    assert "generic" in note
    assert config.training_loop == GENERIC["training_loop"] and config.optimizer == GENERIC["optimizer"]
    assert config.loss == loss_resolver.normalize_cls(TransH.loss_default)
    assert dict(config.loss_kwargs) == dict(TransH.loss_default_kwargs)


def test_user_values_win_and_kwargs_merge() -> None:
    config, _ = training_config("TransE", {"embedding_dim": 32, "learning_rate": 0.5, "epochs": 3,
                                           "model_kwargs": {"scoring_fct_norm": 1},
                                           "negative_sampler_kwargs": {"num_negs_per_pos": 2}})
    defaults = MODEL_DEFAULTS["transe"]
    assert config.model_kwargs["embedding_dim"] == 32 and config.model_kwargs["scoring_fct_norm"] == 1
    assert config.model_kwargs["entity_initializer"] == defaults["model_kwargs"]["entity_initializer"]
    assert config.optimizer_kwargs == {"lr": 0.5} and config.epochs == 3
    assert config.negative_sampler_kwargs == {**defaults["negative_sampler_kwargs"], "num_negs_per_pos": 2}


def test_changing_a_component_drops_the_defaults_kwargs_for_the_old_one() -> None:
    config, _ = training_config("ComplEx", {"optimizer": "Adam", "regularizer": "lp"})
    assert config.optimizer == "adam" and config.optimizer_kwargs == {}
    assert config.regularizer == "lp" and config.regularizer_kwargs == {}
    same, _ = training_config("ComplEx", {"optimizer": "AdaGrad"})  # the same optimizer, spelled differently
    assert same.optimizer_kwargs == MODEL_DEFAULTS["complex"]["optimizer_kwargs"]


def test_switching_the_training_loop_brings_or_removes_the_negative_sampler() -> None:
    to_slcwa, _ = training_config("ComplEx", {"training_loop": "sLCWA"})
    assert to_slcwa.negative_sampler == GENERIC["negative_sampler"]
    assert to_slcwa.negative_sampler_kwargs == GENERIC["negative_sampler_kwargs"]
    to_lcwa, _ = training_config("TransE", {"training_loop": "LCWA"})
    assert to_lcwa.negative_sampler is None and to_lcwa.negative_sampler_kwargs == {}
    validate(to_slcwa)
    validate(to_lcwa)


def test_early_stopping_can_be_switched_off_or_tuned() -> None:
    off, _ = training_config("TransE", {"early_stopping": False})
    assert off.early_stopping is None
    tuned, _ = training_config("TransE", {"early_stopping": {"patience": 7, "metric": "hits@10"}})
    assert tuned.early_stopping == EarlyStopping(metric="hits@10", patience=7,
                                                 frequency=MODEL_DEFAULTS["transe"]["early_stopping"].frequency)


def test_config_round_trips_through_json_values() -> None:
    config, _ = training_config("RotatE", {"seed": 3})
    assert TrainingConfig.from_dict(config.as_dict()) == config


@pytest.mark.parametrize(("overrides", "message"), [
    ({"negative_sampler": "bernoulli", "training_loop": "LCWA"}, "uses no negative sampler"),
    ({"optimizer_kwargs": {"params": []}}, "set by kgpipe itself"),
    ({"loss_kwargs": {"margin": 2.0}, "loss": "crossentropy"}, "takes no argument"),
    ({"early_stopping": {"metric": "accuracy"}}, "unknown rank-based metric 'accuracy'"),
])
def test_invalid_combinations_are_pipeline_errors(overrides, message) -> None:
    with pytest.raises(PipelineError, match=message):
        validate(training_config("TransE", overrides)[0])


def test_unknown_names_list_the_resolvers_choices() -> None:
    from pykeen.training import training_loop_resolver

    with pytest.raises(PipelineError, match="unknown PyKEEN training loop 'owa'") as info:
        training_config("TransE", {"training_loop": "owa"})
    assert info.value.hint == "valid: " + ", ".join(sorted(training_loop_resolver.lookup_dict))


def _pipeline(tmp_path: Path, params: dict) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({"root": ".", "stages": {"embed": {
        "type": "embed", "params": params, "deps": {"triples": "t.tsv"}}}}), encoding="utf-8")
    return path


@pytest.mark.parametrize(("params", "message"), [
    ({"validation_fraction": 0.5, "test_fraction": 0.5}, "sum < 1"),
    ({"batch_size": 0}, "greater than or equal to 1"),
    ({"early_stopping": {"patience": 2, "paitence": 3}}, "unknown key 'paitence'"),
    ({"epocs": 3}, "unknown key 'epocs'"),
])
def test_stage_params_are_checked_when_the_pipeline_loads(tmp_path: Path, params, message) -> None:
    (tmp_path / "t.tsv").write_text("a\tr\tb\n", encoding="utf-8")
    with pytest.raises(PipelineError, match=message):
        load_pipeline(_pipeline(tmp_path, params))


def test_pystow_home_defaults_inside_the_workspace(tmp_path: Path) -> None:
    code = ("import os, sys; from kgpipe.embed import use_workspace_pystow; "
            "print(use_workspace_pystow()); import pykeen.constants as c; print(c.PYKEEN_HOME)")
    env = {k: v for k, v in os.environ.items() if k != "PYSTOW_HOME"}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={**env, "PYTHONPATH": str(REPO)},
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == [str(tmp_path / ".pystow"), str(tmp_path / ".pystow" / "pykeen")]
    chosen = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True,
                            env={**env, "PYTHONPATH": str(REPO), "PYSTOW_HOME": str(tmp_path / "elsewhere")}).stdout
    assert chosen.split()[0] == str(tmp_path / "elsewhere")


# --- validation before any stage runs (EmbedStage.validate, called for `kgpipe run`, dry runs too) --------


def _default_pipeline_with(tmp_path: Path, **embed_params: object) -> Path:
    """pipelines/default.yaml in a copy of the demo data, its embed stage (fourth, after ingest, extract and
    fuse) with embed_params added."""
    import shutil

    shutil.copytree(REPO / "sample_kg", tmp_path / "sample_kg")
    shutil.copytree(REPO / "pipelines/patterns", tmp_path / "pipelines/patterns")
    document = yaml.safe_load((REPO / "pipelines/default.yaml").read_text(encoding="utf-8"))
    document["root"] = ".."
    document["stages"]["embed"]["params"].update(embed_params)
    path = tmp_path / "pipelines/default.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def _line_of(path: Path, text: str) -> int:
    """The line of `text` in the embed stage's part of the file."""
    lines = path.read_text(encoding="utf-8").splitlines()
    start = lines.index("  embed:")
    return next(i for i, line in enumerate(lines, 1) if i > start and text in line)


@pytest.mark.parametrize(("params", "key", "fragments"), [
    ({"model": "NoSuchModel"}, "model:", ["params.model: unknown PyKEEN model 'NoSuchModel'", "valid: ", "transe"]),
    ({"model": "TransQ"}, "model:", ["unknown PyKEEN model 'TransQ'", "did you mean: trans"]),
    ({"loss": "marginrankin"}, "loss:", ["params.loss: unknown PyKEEN loss", "did you mean: marginranking"]),
    ({"regularizer": "lpp"}, "regularizer:", ["params.regularizer: unknown PyKEEN regularizer 'lpp'", "lp"]),
    ({"optimizer": "adamm"}, "optimizer:", ["params.optimizer: unknown PyKEEN optimizer 'adamm'",
                                            "did you mean: adam"]),
    ({"training_loop": "slcw"}, "training_loop:", ["params.training_loop: unknown PyKEEN training loop 'slcw'",
                                                   "did you mean: slcwa"]),
    ({"training_loop": "sLCWA", "negative_sampler": "bernouli"}, "negative_sampler:",
     ["params.negative_sampler: unknown PyKEEN negative sampler 'bernouli'", "did you mean: bernoulli"]),
    ({"early_stopping": {"metric": "mrrr"}}, "metric:", ["params.early_stopping.metric: unknown rank-based "
                                                         "metric 'mrrr'"]),
    ({"dataset": "Nation"}, "dataset:", ["params.dataset: unknown PyKEEN dataset 'Nation'",
                                         "did you mean: nations"]),
    ({"model_kwargs": {"embeding_dim": 8}}, "model_kwargs:", ["params.model_kwargs: ComplEx takes no argument(s) "
                                                              "embeding_dim", "embedding_dim"]),
    ({"device": "tpu"}, "device:", ["params.device: 'tpu' is not a torch device"]),
])
def test_a_bad_embed_setting_fails_the_run_before_any_stage_runs(tmp_path: Path, params, key, fragments) -> None:
    from typer.testing import CliRunner

    from kgpipe.cli import app
    from tests.hostile.cases import assert_clear_error

    pipeline = _default_pipeline_with(tmp_path, **params)
    line = _line_of(pipeline, key) if key != "metric:" else _line_of(pipeline, "metric: mrrr")
    for extra in (["--dry-run"], []):
        result = CliRunner().invoke(app, ["run", str(pipeline), *extra])
        assert_clear_error(result, 2, f"default.yaml:{line}: stage 'embed':", *fragments)
        assert not (tmp_path / "artifacts").exists()  # ingest, extract and fuse never ran
        assert not (tmp_path / "pipelines/.kgpipe").exists() or not any(
            (tmp_path / "pipelines/.kgpipe").rglob("lock.json"))


def test_a_missing_cuda_device_is_an_environment_error_naming_the_devices_there(tmp_path: Path) -> None:
    import torch
    from typer.testing import CliRunner

    from kgpipe.cli import app
    from kgpipe.embed.runtime import available_devices
    from tests.hostile.cases import assert_clear_error

    pipeline = _default_pipeline_with(tmp_path, device="cuda:9")
    assert torch.cuda.device_count() < 10
    line = _line_of(pipeline, "device: cuda:9")
    for extra in (["--dry-run"], []):
        result = CliRunner().invoke(app, ["run", str(pipeline), *extra])
        assert_clear_error(result, 7, f"default.yaml:{line}: stage 'embed': params.device: 'cuda:9' asked for, "
                           f"but this machine has {', '.join(available_devices())}")
        assert not (tmp_path / "artifacts").exists()


def test_valid_settings_pass_validation(tmp_path: Path) -> None:
    from kgpipe.runner import run

    pipeline = _default_pipeline_with(tmp_path, model="TransE", loss="softplus", optimizer="Adam",
                                      training_loop="sLCWA", negative_sampler="bernoulli", dataset=None,
                                      early_stopping={"metric": "hits@10"}, device="cpu")
    result = run(pipeline, dry_run=True)
    assert "embed" in result.would_run and not (tmp_path / "artifacts").exists()


def test_params_that_passed_are_remembered_so_a_no_op_run_does_not_import_pykeen(tmp_path: Path) -> None:
    from kgpipe.embed.validation import params_key

    pipeline = _default_pipeline_with(tmp_path, model="TransE")
    code = ("import sys; from kgpipe.config import load_pipeline; from kgpipe.runner import validate_stages; "
            "validate_stages(load_pipeline(sys.argv[1]), ['embed']); "
            "print(sorted(m for m in ('pykeen', 'torch') if m in sys.modules))")
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYSTOW_HOME": str(tmp_path / "pystow")}

    def imported() -> str:
        return subprocess.run([sys.executable, "-c", code, str(pipeline)], env=env, capture_output=True,
                              text=True, check=True, timeout=300).stdout.strip()

    assert imported() == "['pykeen', 'torch']"   # checked through PyKEEN's resolvers
    assert imported() == "[]"                    # the same params again: remembered
    remembered = tmp_path / "pystow/kgpipe/validated-embed.json"
    assert len(yaml.safe_load(remembered.read_text(encoding="utf-8"))) == 1
    remembered.write_text("{not json", encoding="utf-8")
    assert imported() == "['pykeen', 'torch']"   # a damaged memory is no memory
    assert params_key({"model": "TransE"}) != params_key({"model": "TransE", "epochs": 3})
