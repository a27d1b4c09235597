"""Outputs by what they hold, not by which stage type made them: a stage type tags its outputs with a Role
(OutputSpec.role), and readers (kgpipe.explore, the CLI, the report, the web app) ask the pipeline for the
artifact of a role, so they work for any pipeline whose stages produce it, whatever the stages are called.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from kgpipe.errors import ArtifactError, InputError

if TYPE_CHECKING:
    from kgpipe.config import Pipeline, Stage


class Role(StrEnum):
    """What an output holds (a string: OutputSpec(role="entities") and Role.ENTITIES are the same)."""

    DOCUMENTS = "documents"
    SEED_ENTITIES = "seed_entities"
    SEED_TRIPLES = "seed_triples"
    MENTIONS = "mentions"
    RELATIONS = "relations"
    ENTITIES = "entities"
    TRIPLES = "triples"
    MENTION_ENTITIES = "mention_entities"
    GRAPH_TTL = "graph_ttl"
    GRAPH_GRAPHML = "graph_graphml"
    FUSION_REPORT = "fusion_report"
    LEARNED_WEIGHTS = "learned_weights"  # the fuse stage's match weights (resolution.learn: em)
    ENTITY_EMBEDDINGS = "entity_embeddings"
    RELATION_EMBEDDINGS = "relation_embeddings"
    MODEL = "model"  # the link-prediction model (kgpipe.load_model)
    EMBED_METRICS = "embed_metrics"
    LOSS_PLOT = "loss_plot"
    ENTITY_VECTORS = "entity_vectors"
    KNOWLEDGE_MODEL = "knowledge_model"  # the language model with the graph injected (kgpipe encode/generate)
    INJECT_METRICS = "inject_metrics"


def _role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise InputError(f"no artifact role '{role}'",
                         hint="one of: " + ", ".join(r.value for r in Role)) from None


def output_of(pipe: Pipeline, role: str) -> tuple[Stage, str] | None:
    """The pipeline's (first, in file order) stage with an output of this role, and that output's name."""
    wanted = _role(role)
    for stage in pipe.stages.values():
        for spec in stage.type.outputs:
            if spec.role == wanted and spec.name in stage.outs:
                return stage, spec.name
    return None


def producers(role: str) -> list[str]:
    """'type.output' of every registered stage type that declares an output of this role (for hints)."""
    from kgpipe.errors import KgpipeError
    from kgpipe.registry import get_stage_type, stage_type_names

    found = []
    for name in stage_type_names():
        try:
            outputs = get_stage_type(name).outputs
        except (KgpipeError, ImportError):  # a broken third-party stage must not hide the hint
            continue
        found += [f"{name}.{spec.name}" for spec in outputs if spec.role == role]
    return found


def stage_for(pipe: Pipeline, role: str) -> Stage:
    """The stage producing the artifact of a role; InputError naming the role and the stage types to add."""
    return _required(pipe, role)[0]


def _required(pipe: Pipeline, role: str) -> tuple[Stage, str]:
    found = output_of(pipe, role)
    if found is None:
        makers = producers(role)
        raise InputError(
            f"pipeline {pipe.path} has no stage producing the '{role}' artifact",
            hint=(f"add a stage of type {' or '.join(repr(m.split('.')[0]) for m in makers)} (output "
                  f"{', '.join(makers)}), or pass the artifact's path directly") if makers else
            "no registered stage type declares this role; pass the artifact's path directly")
    return found


def find_output(pipe: Pipeline, role: str, *, exists: bool = True) -> Path:
    """The path of the artifact of a role. InputError when no stage of the pipeline produces it (naming the stage
    types that would); with `exists`, ArtifactError when it is not written yet (run the pipeline first)."""
    stage, out = _required(pipe, role)
    path = stage.outs[out]
    if exists and not path.exists():
        raise ArtifactError(f"{pipe.rel(path)} ({stage.name}.{out}, the '{role}' artifact) does not exist yet",
                            hint=f"run the pipeline first: kgpipe run {pipe.path}")
    return path


def existing_output(pipe: Pipeline, role: str) -> Path | None:
    """The artifact of a role if the pipeline produces it and it is on disk, else None."""
    found = output_of(pipe, role)
    if found is None:
        return None
    path = found[0].outs[found[1]]
    return path if path.exists() else None
