"""Pipeline files: YAML with line numbers, validated by pydantic, resolved into typed Stage objects.

Every error names the pipeline file and the line of the offending key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kgpipe.engine.config import ExecutorConfig
from kgpipe.errors import InputError, KgpipeError, PipelineError
from kgpipe.registry import get_stage_type
from kgpipe.stage import StageParams, StageType

Loc = tuple[Any, ...]
KEEP_RUNS = 20  # run records kept in the workspace unless the pipeline file sets keep_runs


class StageConfig(BaseModel):
    """One stage as written in a pipeline file."""

    model_config = ConfigDict(extra="forbid")

    type: str
    description: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    deps: dict[str, str | list[str]] = Field(default_factory=dict)
    outs: dict[str, str] = Field(default_factory=dict)
    executor: dict[str, Any] = Field(default_factory=dict)  # overrides keys of the pipeline's executor block


class PipelineConfig(BaseModel):
    """A pipeline file. Paths are relative to `root`, which is relative to the file's folder."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    root: str = "."
    artifacts: str = "artifacts"
    workspace: str | None = None  # lock file, run lock, scratch; default .kgpipe/<pipeline file stem>
    allow_outside: list[str] = Field(default_factory=list)  # folders outside root that outs may be written to
    executor: dict[str, Any] = Field(default_factory=dict)  # kgpipe.engine.ExecutorConfig: local or ray
    keep_runs: int = Field(KEEP_RUNS, ge=0)  # records in <workspace>/runs (kgpipe runs, kgpipe diff); 0: none
    stages: dict[str, StageConfig]


@dataclass(frozen=True)
class Stage:
    """A resolved stage: its type, validated params and absolute dep/out paths."""

    name: str
    type: type[StageType]
    params: StageParams
    deps: dict[str, tuple[Path, ...]]
    outs: dict[str, Path]
    line: int | None = None
    # not part of the fingerprint: no engine changes what a stage writes
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)

    def params_dict(self) -> dict[str, Any]:
        return self.params.model_dump(mode="json")

    def dep_paths(self) -> list[Path]:
        return [p for paths in self.deps.values() for p in paths]

    def out_paths(self) -> list[Path]:
        return list(self.outs.values())


@dataclass(frozen=True)
class Pipeline:
    path: Path
    root: Path
    artifacts: Path
    stages: dict[str, Stage]
    lines: dict[Loc, int]
    workspace: Path
    allow_outside: tuple[Path, ...] = ()
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    keep_runs: int = KEEP_RUNS

    def shared(self, path: Path) -> bool:
        """Whether a path lies under the project root or an allow_outside folder: what every node of a cluster
        must see (symlinks followed)."""
        resolved = path.resolve()
        return any(resolved == base or base in resolved.parents for base in (self.root, *self.allow_outside))

    def line_of(self, *loc: Any) -> int | None:
        """Line in the pipeline file of a key path such as ('stages', 'ingest', 'deps', 'corpus')."""
        return _line_for(loc, self.lines)

    @property
    def name(self) -> str:
        return self.path.stem

    def rel(self, path: Path) -> str:
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)


# --- YAML with line numbers -------------------------------------------------------------------------


@dataclass(frozen=True)
class YamlLimits:
    """What a YAML file read by kgpipe may hold (README, "Pipeline files"): a few KB of hand-written YAML is far
    below them, a file built to exhaust memory or the stack (an alias bomb, deep nesting) is refused."""

    max_bytes: int = 1 << 20          # 1 MiB
    max_depth: int = 64               # nested mappings and lists
    max_aliases: int = 100            # *alias references
    max_values: int = 200_000         # values after expanding aliases


PIPELINE_LIMITS = YamlLimits()
# Pattern files are machine-written too (`kgpipe patterns learn`: ~1 KB a pattern, thousands of them).
PATTERN_FILE_LIMITS = YamlLimits(max_bytes=64 << 20, max_aliases=1000, max_values=5_000_000)


class _Mark(Protocol):
    line: int  # 0-based; both the pure-Python and the libyaml marks have it


def _mark_line(mark: _Mark | None) -> int | None:
    """The 1-based line of a parser mark (PyYAML's parser always sets one; the stubs allow None)."""
    return mark.line + 1 if mark is not None else None


def _check_events(text: str, limits: YamlLimits, loader: type) -> None:
    """Walk the YAML event stream (flat, no recursion) and stop at the first limit exceeded."""
    depth = aliases = 0
    for event in yaml.parse(text, Loader=loader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > limits.max_depth:
                raise PipelineError(f"nested deeper than {limits.max_depth} levels",
                                    line=_mark_line(event.start_mark), hint="flatten the structure")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
        elif isinstance(event, yaml.AliasEvent):
            aliases += 1
            if aliases > limits.max_aliases:
                raise PipelineError(f"more than {limits.max_aliases} YAML aliases (*name)",
                                    line=_mark_line(event.start_mark), hint="write the values out instead of aliasing")


def _to_python(node: yaml.Node, loc: Loc, lines: dict[Loc, int], loader: yaml.SafeLoader,
               budget: list[int] | None = None) -> Any:
    """Build plain Python from a composed YAML node, recording the line of every key path. `budget` counts down
    the values still allowed: aliases share nodes, so a small file can expand to billions of values."""
    if budget is not None:
        budget[0] -= 1
        if budget[0] < 0:
            raise PipelineError("too many values once aliases are expanded", line=node.start_mark.line + 1,
                                hint="write the values out instead of aliasing nested aliases")
    lines[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise PipelineError("a key must be a plain value, not a list or mapping",
                                    line=key_node.start_mark.line + 1)
            key = loader.construct_object(key_node, deep=True)
            if key in result:
                raise PipelineError(f"duplicate key '{key}'", line=key_node.start_mark.line + 1)
            result[key] = _to_python(value_node, (*loc, key), lines, loader, budget)
            lines[(*loc, key)] = key_node.start_mark.line + 1  # point at the key, not its value
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(item, (*loc, i), lines, loader, budget) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def read_yaml_with_lines(path: Path, *, what: str, error: type[PipelineError] | type[InputError] = PipelineError,
                         display: str | None = None, not_found_hint: str | None = None,
                         limits: YamlLimits = PIPELINE_LIMITS) -> tuple[Any, dict[Loc, int]]:
    """A YAML file as plain Python (None when empty) and the line of every key path; a missing, unreadable,
    invalid or over-limit file raises `error` naming the file (as `display`, when given) and the line."""
    name = display or path
    try:
        size = path.stat().st_size
        if size > limits.max_bytes:
            raise error(f"{what} is {size:,} bytes, more than the limit of {limits.max_bytes:,}", file=name,
                        hint=f"is this the right file? a {what} is plain, hand-sized YAML")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{what} not found", file=name, hint=not_found_hint) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"cannot read {what}: {exc}", file=name) from None
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present
    try:
        _check_events(text, limits, loader)
        node = yaml.compose(text, Loader=loader)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise error(f"invalid YAML: {exc.problem}", file=name, line=line) from None
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow (control characters)
        line = text.count("\n", 0, exc.position) + 1
        raise error(f"invalid YAML: character {exc.character!r} is not allowed in YAML", file=name, line=line,
                    hint="remove control characters from the file") from None
    except yaml.YAMLError as exc:
        raise error(f"invalid YAML: {exc}", file=name) from None
    except PipelineError as exc:
        raise error(exc.message, file=name, line=exc.line, hint=exc.hint) from None
    lines: dict[Loc, int] = {}
    if node is None:
        return None, lines
    try:
        data = _to_python(node, (), lines, yaml.SafeLoader(""), [limits.max_values])
    except PipelineError as exc:
        raise error(exc.message, file=name, line=exc.line, hint=exc.hint) from None
    except yaml.MarkedYAMLError as exc:  # a value the safe loader cannot construct (an unknown tag, a bad date)
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise error(f"invalid YAML: {exc.problem}", file=name, line=line) from None
    except (yaml.YAMLError, ValueError, TypeError) as exc:
        raise error(f"invalid YAML: {exc}", file=name) from None
    return data, lines


def load_yaml_with_lines(path: Path) -> tuple[Any, dict[Loc, int]]:
    data, lines = read_yaml_with_lines(path, what="pipeline file",
                                       not_found_hint="pass the path of a pipeline YAML, e.g. pipelines/default.yaml")
    if data is None:
        raise PipelineError("pipeline file is empty", file=path, hint="declare at least one stage under 'stages:'")
    return data, lines


def _line_for(loc: Loc, lines: dict[Loc, int]) -> int | None:
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def _raise_validation(exc: ValidationError, prefix: Loc, lines: dict[Loc, int], file: Path,
                      what: str, hint: str | None = None) -> None:
    first = exc.errors()[0]
    loc = (*prefix, *first["loc"])
    dotted = ".".join(str(part) for part in loc)
    message = first["msg"]
    if first["type"] == "extra_forbidden":
        message = f"unknown key '{first['loc'][-1]}'"
    more = f" (and {len(exc.errors()) - 1} more problem(s))" if len(exc.errors()) > 1 else ""
    where = f"{dotted}: " if dotted else ""
    raise PipelineError(f"{what}: {where}{message}{more}", file=file, line=_line_for(loc, lines), hint=hint)


# --- confinement ---------------------------------------------------------------------------------------

# A stage's name becomes a folder name under artifacts/: nothing that could climb out of it or hide.
STAGE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")


def _too_wide(folder: Path) -> bool:
    """The file system's root, the home folder or a folder above it: confining writes there confines nothing."""
    home = Path.home().resolve()
    return folder == Path(folder.anchor) or folder == home or folder in home.parents


def _check_root(root: Path, file: Path, line: int | None) -> None:
    if _too_wide(root):
        raise PipelineError(f"root {root} is too wide: kgpipe writes only inside the project folder (root)",
                            file=file, line=line,
                            hint="set root to the project's own folder, e.g. `root: ..` for a file in pipelines/")


def _resolved(path: Path, what: str, file: Path, line: int | None) -> Path:
    """path.resolve(), with a link loop on the way an input error naming the path instead of a RuntimeError."""
    try:
        return path.resolve()
    except (RuntimeError, OSError) as exc:
        raise InputError(f"{what}: {path} cannot be resolved ({exc})", file=path,
                         hint=f"fix the symbolic link, or change the path in {file.name} (line {line})") from None


@dataclass(frozen=True)
class Confinement:
    """Outs, artifacts and the workspace must lie inside root or inside a folder listed in allow_outside."""

    root: Path
    allowed: tuple[Path, ...]
    file: Path
    lines: dict[Loc, int]

    def path(self, path: Path, loc: Loc, what: str) -> Path:
        path = _resolved(path, what, self.file, _line_for(loc, self.lines))  # a link may point out of the project
        if any(path == base or base in path.parents for base in (self.root, *self.allowed)):
            if path == self.root:
                raise PipelineError(f"{what} is the project folder itself", file=self.file,
                                    line=_line_for(loc, self.lines), hint="point it at a folder inside it")
            return path
        raise PipelineError(
            f"{what} {path} lies outside the project folder {self.root}", file=self.file,
            line=_line_for(loc, self.lines),
            hint="kgpipe writes only inside root; to write to a shared path, list its folder under "
            "`allow_outside:` in the pipeline file")


# --- resolution ---------------------------------------------------------------------------------------


def _resolve_params(name: str, stage_type: type[StageType], raw: dict[str, Any],
                    lines: dict[Loc, int], file: Path) -> StageParams:
    try:
        return stage_type.Params.model_validate(raw)
    except ValidationError as exc:
        fields = ", ".join(stage_type.Params.model_fields) or "(none)"
        _raise_validation(exc, ("stages", name, "params"), lines, file, f"stage '{name}'",
                          hint=f"params of stage type '{stage_type.name}': {fields}")
        raise AssertionError("unreachable") from None


def _resolve_deps(name: str, stage_type: type[StageType], cfg: StageConfig, root: Path,
                  lines: dict[Loc, int], file: Path) -> dict[str, tuple[Path, ...]]:
    deps: dict[str, tuple[Path, ...]] = {}
    known = ", ".join(spec.name for spec in stage_type.inputs) or "(none)"
    for key, value in cfg.deps.items():
        spec = stage_type.input_spec(key)
        if spec is None:
            raise PipelineError(f"stage '{name}': unknown dep '{key}' for stage type '{stage_type.name}'",
                                file=file, line=_line_for(("stages", name, "deps", key), lines),
                                hint=f"inputs of '{stage_type.name}': {known}")
        values = value if isinstance(value, list) else [value]
        if not spec.many and len(values) != 1:
            raise PipelineError(f"stage '{name}': dep '{key}' takes one path, got {len(values)}",
                                file=file, line=_line_for(("stages", name, "deps", key), lines))
        deps[key] = tuple(_resolved(root / v, f"stage '{name}': dep '{key}'", file,
                                    _line_for(("stages", name, "deps", key), lines)) for v in values)
    for spec in stage_type.inputs:
        if spec.required and spec.name not in deps:
            raise PipelineError(f"stage '{name}': missing required dep '{spec.name}'",
                                file=file, line=_line_for(("stages", name), lines),
                                hint=f"add it under deps: ({known})")
    return deps


def _resolve_outs(name: str, stage_type: type[StageType], cfg: StageConfig, root: Path, artifacts: Path,
                  lines: dict[Loc, int], file: Path) -> dict[str, Path]:
    known = ", ".join(spec.name for spec in stage_type.outputs) or "(none)"
    for key in cfg.outs:
        if stage_type.output_spec(key) is None:
            raise PipelineError(f"stage '{name}': unknown out '{key}' for stage type '{stage_type.name}'",
                                file=file, line=_line_for(("stages", name, "outs", key), lines),
                                hint=f"outputs of '{stage_type.name}': {known}")
    return {
        spec.name: (root / cfg.outs[spec.name]).resolve() if spec.name in cfg.outs
        else artifacts / name / spec.filename
        for spec in stage_type.outputs
    }


def _resolve_executor(raw: dict[str, Any], base: ExecutorConfig, loc: Loc, root: Path, lines: dict[Loc, int],
                      file: Path) -> ExecutorConfig:
    try:
        config = base.with_overrides(raw) if loc else ExecutorConfig.model_validate(raw)
    except ValidationError as exc:
        _raise_validation(exc, (*loc, "executor"), lines, file, "executor",
                          hint=f"executor keys: {', '.join(ExecutorConfig.model_fields)}")
        raise AssertionError("unreachable") from None
    if config.temp_dir is not None:
        temp = (root / config.temp_dir).resolve()
        if temp == root or root in temp.parents:
            raise PipelineError("executor.temp_dir lies inside the project: Ray's spill files (pickles) must stay "
                                "out of it", file=file, line=_line_for((*loc, "executor", "temp_dir"), lines),
                                hint="use a folder of its own outside the project, e.g. /tmp/ray")
    return config


def load_pipeline(path: str | Path) -> Pipeline:
    """Read and validate a pipeline file (types, params, deps, outs). Graph checks live in kgpipe.dag."""
    file = Path(path)
    data, lines = load_yaml_with_lines(file)
    try:
        cfg = PipelineConfig.model_validate(data)
    except ValidationError as exc:
        _raise_validation(exc, (), lines, file, "pipeline")
        raise AssertionError("unreachable") from None
    root = (file.resolve().parent / cfg.root).resolve()
    _check_root(root, file, _line_for(("root",), lines))
    allowed = tuple((root / p).resolve() for p in cfg.allow_outside)
    for index, folder in enumerate(allowed):
        if _too_wide(folder):
            raise PipelineError(f"allow_outside: {folder} is too wide (the file system's root or the home folder)",
                                file=file, line=_line_for(("allow_outside", index), lines),
                                hint="list the one shared folder the outputs go to")
    confine = Confinement(root, allowed, file, lines)
    executor = _resolve_executor(cfg.executor, ExecutorConfig(), (), root, lines, file)
    artifacts = confine.path((root / cfg.artifacts).resolve(), ("artifacts",), "artifacts")
    stages: dict[str, Stage] = {}
    for name, stage_cfg in cfg.stages.items():
        line = _line_for(("stages", name), lines)
        if not STAGE_NAME.fullmatch(str(name)):
            raise PipelineError(f"stage name {name!r} is not a plain identifier", file=file, line=line,
                                hint="use letters, digits, '_' and '-' (starting with a letter or '_'), "
                                "at most 64 characters: it names the folder of the stage's outputs")
        try:
            stage_type = get_stage_type(stage_cfg.type)
        except PipelineError as exc:
            raise PipelineError(f"stage '{name}': {exc.message}", file=file,
                                line=_line_for(("stages", name, "type"), lines), hint=exc.hint) from None
        except (ImportError, AttributeError) as exc:
            raise PipelineError(f"stage '{name}': stage type '{stage_cfg.type}' failed to load: {exc}",
                                file=file, line=line) from None
        stages[name] = Stage(
            name=name,
            type=stage_type,
            params=_resolve_params(name, stage_type, stage_cfg.params, lines, file),
            deps=_resolve_deps(name, stage_type, stage_cfg, root, lines, file),
            outs={out: confine.path(path, ("stages", name, "outs", out), f"stage '{name}': out '{out}'")
                  for out, path in _resolve_outs(name, stage_type, stage_cfg, root, artifacts, lines,
                                                 file).items()},
            line=line,
            executor=_resolve_executor(stage_cfg.executor, executor, ("stages", name), root, lines, file),
        )
    workspace = confine.path((root / cfg.workspace).resolve() if cfg.workspace else root / ".kgpipe" / file.stem,
                             ("workspace",), "workspace")
    return Pipeline(path=file.resolve(), root=root, artifacts=artifacts, stages=stages, lines=lines,
                    workspace=workspace, allow_outside=allowed, executor=executor, keep_runs=cfg.keep_runs)


def as_pipeline(pipeline: str | Path | Pipeline) -> Pipeline:
    return pipeline if isinstance(pipeline, Pipeline) else load_pipeline(pipeline)


__all__ = ["KgpipeError", "Pipeline", "PipelineConfig", "Stage", "StageConfig", "as_pipeline", "load_pipeline"]
