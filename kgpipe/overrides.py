"""Param overrides for one run (`kgpipe run -S fuse.resolution.threshold=0.6`): a dotted path into a stage's params
and a value, applied to the parsed pipeline and re-validated by the stage type's params model. The pipeline file
is never edited; an unknown stage or param path, or a value of the wrong type, is a pipeline-file error.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from kgpipe.config import Pipeline, Stage
from kgpipe.errors import PipelineError

Overrides = Sequence["ParamOverride"] | Mapping[str, Any]
ErrorAt = Callable[[str, str | None], PipelineError]  # (message, hint) -> the error at the stage's params


@dataclass(frozen=True)
class ParamOverride:
    """`stage.path.to.param=value`: the stage's name, the keys below its params, and the value (parsed)."""

    stage: str
    path: tuple[str, ...]
    value: Any

    @property
    def key(self) -> str:
        """The dotted path as given: 'fuse.resolution.threshold'."""
        return ".".join((self.stage, *self.path))


def parse_key(key: str, value: Any) -> ParamOverride:
    """A dotted key and its value; a key without a param path is a pipeline-file error."""
    stage, _, rest = key.strip().partition(".")
    path = tuple(rest.split(".")) if rest else ()
    if not stage or not path or not all(path):
        raise PipelineError(f"-S {key}: expected STAGE.PARAM[.KEY...]=VALUE",
                            hint="e.g. -S fuse.resolution.threshold=0.6")
    return ParamOverride(stage, path, value)


def parse_override(text: str) -> ParamOverride:
    """`STAGE.PARAM=VALUE` from the command line; VALUE is read as YAML (0.6, true, null, [a, b], a text)."""
    key, sep, raw = text.partition("=")
    if not sep:
        raise PipelineError(f"-S {text}: expected STAGE.PARAM=VALUE", hint="e.g. -S fuse.resolution.threshold=0.6")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise PipelineError(f"-S {text}: the value is not valid YAML ({exc})",
                            hint="quote it for the shell, e.g. -S 'extract.label_map={PER: Person}'") from None
    return parse_key(key, value)


def as_overrides(overrides: Overrides | None) -> list[ParamOverride]:
    """Overrides given as ParamOverride objects or as a {'stage.param': value} mapping (the Python API)."""
    if overrides is None:
        return []
    if isinstance(overrides, Mapping):
        return [parse_key(str(key), value) for key, value in overrides.items()]
    return list(overrides)


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model a field holds (also inside `Model | None`), else None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return next((m for m in map(_model_in, typing.get_args(annotation)) if m is not None), None)
    return None


def _is_mapping(annotation: Any) -> bool:
    """Whether a field holds a free-form mapping (dict[str, ...], also inside `dict | None`)."""
    if annotation is dict or typing.get_origin(annotation) in (dict, Mapping):
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(_is_mapping(arg) for arg in typing.get_args(annotation))
    return False


def type_name(annotation: Any) -> str:
    """A field's type as a reader writes it: float, int | None, Literal['document', 'none']."""
    if isinstance(annotation, type) and typing.get_origin(annotation) is None:
        return annotation.__name__
    return str(annotation).replace("typing.", "").replace("NoneType", "None")


def _set(model: type[BaseModel] | None, data: dict[str, Any], override: ParamOverride, depth: int,
         error: ErrorAt) -> str:
    """Set override.value at override.path[depth:] in data (the params as written, nested dicts); returns the
    expected type of the leaf. `model` is the params model at this level (None: a free-form mapping)."""
    key, last = override.path[depth], depth == len(override.path) - 1
    where = ".".join((override.stage, *override.path[:depth])) or override.stage
    annotation: Any = Any
    if model is not None:
        fields = model.model_fields
        if key not in fields:
            raise error(f"unknown param path {override.key}: {where} has no key '{key}'",
                        f"keys of {where}: {', '.join(sorted(fields)) or '(none)'}")
        annotation = fields[key].annotation
    if last:
        data[key] = override.value
        return type_name(annotation)
    inner = _model_in(annotation)
    if model is not None and inner is None and not _is_mapping(annotation):
        raise error(f"unknown param path {override.key}: {where}.{key} is a {type_name(annotation)}, not a "
                    "block of keys", f"set it whole: -S {where}.{key}=VALUE")
    child = data.get(key)
    data[key] = child = dict(child) if isinstance(child, dict) else {}
    return _set(inner, child, override, depth + 1, error)


def override_stage(pipeline: Pipeline, stage: Stage, overrides: list[ParamOverride]) -> Stage:
    """The stage with its params overridden, validated by its params model as the file's would be."""
    line = pipeline.line_of("stages", stage.name, "params") or stage.line

    def error(message: str, hint: str | None = None) -> PipelineError:
        return PipelineError(f"stage '{stage.name}': {message}", file=pipeline.path, line=line, hint=hint)

    # the params as written in the file (unset fields stay unset: some stage types read which ones are set)
    data = stage.params.model_dump(exclude_unset=True)
    expected = {o.key: _set(stage.type.Params, data, o, 0, error) for o in overrides}
    try:
        params = stage.type.Params.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        at = ".".join(str(part) for part in (stage.name, *first["loc"]))
        given = next((o for o in overrides if at.startswith(o.key)), overrides[-1])
        where = f" (at {at})" if at not in (given.key, stage.name) else ""
        raise error(f"-S {given.key}={given.value!r}: {first['msg']}{where}; expected {expected[given.key]}",
                    "fix the value, or drop the -S to use the pipeline file's") from None
    return dataclasses.replace(stage, params=params)


def apply_overrides(pipeline: Pipeline, overrides: Overrides | None) -> Pipeline:
    """The pipeline with each override applied to its stage's params (the pipeline file is not touched)."""
    items = as_overrides(overrides)
    if not items:
        return pipeline
    for item in items:
        if item.stage not in pipeline.stages:
            raise PipelineError(f"-S {item.key}: no stage named '{item.stage}'", file=pipeline.path,
                                hint=f"stages: {', '.join(pipeline.stages)}")
    stages = dict(pipeline.stages)
    for name in dict.fromkeys(item.stage for item in items):
        stages[name] = override_stage(pipeline, stages[name], [item for item in items if item.stage == name])
    return dataclasses.replace(pipeline, stages=stages)


def recorded_values(pipeline: Pipeline, overrides: Overrides | None) -> dict[str, Any]:
    """Each override's key and the value it set, as the validated params hold it (JSON-ready)."""
    values: dict[str, Any] = {}
    for item in as_overrides(overrides):
        value: Any = pipeline.stages[item.stage].params_dict()
        for key in item.path:
            value = value.get(key) if isinstance(value, dict) else None
        values[item.key] = value
    return values
