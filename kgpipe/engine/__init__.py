"""Engines that run stages: local (in-process) and ray (a Ray cluster). A registry maps the `engine:` name of a
pipeline's `executor:` block to its class; stages ask the executor they are handed, never which one it is."""

from __future__ import annotations

from kgpipe.engine.base import BatchLost, Executor, Shared, Worker
from kgpipe.engine.config import ExecutorConfig
from kgpipe.engine.local import LocalExecutor

ENGINES: dict[str, str] = {"local": "kgpipe.engine.local:LocalExecutor", "ray": "kgpipe.engine.ray:RayExecutor"}


def executor_class(engine: str) -> type[Executor]:
    import importlib

    module, _, name = ENGINES[engine].partition(":")
    return getattr(importlib.import_module(module), name)


__all__ = ["ENGINES", "BatchLost", "Executor", "ExecutorConfig", "LocalExecutor", "Shared", "Worker", "executor_class"]
