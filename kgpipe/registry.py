"""Stage types by name. Built-ins are listed in kgpipe.stages and imported only when used, so that
`kgpipe status` never imports spaCy, torch or PyKEEN; third-party stages register through the
`kgpipe.stages` entry-point group or register_stage().
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from kgpipe.errors import PipelineError
from kgpipe.stage import StageType

_loaded: dict[str, type[StageType]] = {}
_lazy: dict[str, str] = {}


def register_stage(cls: type[StageType]) -> type[StageType]:
    """Register a stage type class (usable as a decorator). Re-registering a name replaces it."""
    if not getattr(cls, "name", None):
        raise TypeError(f"{cls.__qualname__} must set a class attribute 'name'")
    _loaded[cls.name] = cls
    return cls


def register_lazy(name: str, target: str) -> None:
    """Register 'package.module:ClassName' under name without importing it yet."""
    _lazy[name] = target


def _lazy_targets() -> dict[str, str]:
    from kgpipe.stages import BUILTIN_STAGES

    targets = dict(BUILTIN_STAGES)
    for ep in entry_points(group="kgpipe.stages"):
        targets.setdefault(ep.name, ep.value)
    targets.update(_lazy)
    return targets


def stage_type_names() -> list[str]:
    return sorted(set(_loaded) | set(_lazy_targets()))


def get_stage_type(name: str) -> type[StageType]:
    if name in _loaded:
        return _loaded[name]
    target = _lazy_targets().get(name)
    if target is None:
        raise PipelineError(
            f"unknown stage type '{name}'",
            hint=f"registered stage types: {', '.join(stage_type_names())}",
        )
    module_name, _, attr = target.partition(":")
    cls = getattr(importlib.import_module(module_name), attr)
    if not (isinstance(cls, type) and issubclass(cls, StageType)):
        raise PipelineError(f"stage type '{name}' points to {target}, which is not a StageType subclass")
    if getattr(cls, "name", name) != name:
        raise PipelineError(f"stage type registered as '{name}' declares name '{cls.name}'")
    _loaded[name] = cls
    return cls
