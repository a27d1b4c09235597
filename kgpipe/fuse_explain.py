"""`kgpipe explain HEAD TAIL`: why the last fuse run scored two names as it did, under the learned weights it
stored (kgpipe.kg.explain's waterfall: prior, then each comparison's log2(m/u), then the probability).

HEAD and TAIL name mentions or entities: a mention text (case-insensitively), else a normalised name (the fuse
stage's normaliser), else an entity label or alias (then that entity's most frequent mention text). The pair
is scored as the stage scored it: the records are the stage's own mention records (name, type, document
context), read from its mentions input, and the whole corpus is given, so word weights and the name frequencies
of the term-frequency adjustment are the run's. Anchors (links to seed entities) take no part in a score (they
only keep entities apart or together in clustering), so the entities each name ended in are shown beside it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kgpipe.errors import ArtifactError, InputError, PipelineError

if TYPE_CHECKING:
    from kgpipe.config import Pipeline, Stage
    from kgpipe.kg.explain import Explainer, PairExplanation
    from kgpipe.kg.learned_weights import LearnedWeights
    from kgpipe.kg.resolve import Record
    from kgpipe.lockfile import LockEntry


@dataclass(frozen=True)
class Side:
    """One named side of the pair: the text asked for, the mention text it was read as, how many mentions say
    it, and the entities those mentions are in (from the run's mention_entities)."""

    asked: str
    text: str
    type: str | None
    mentions: int
    entities: tuple[str, ...]


@dataclass(frozen=True)
class FusedPairExplanation:
    head: Side
    tail: Side
    explanation: PairExplanation
    stage: str
    type_factor: float   # the probability's factor for incompatible types (1 where they are compatible)

    @property
    def together(self) -> bool:
        """Whether the run put the two names in one entity (some mention of each in the same entity)."""
        return bool(set(self.head.entities) & set(self.tail.entities))

    def text(self) -> str:
        lines = [f"stage '{self.stage}', learned weights"]
        for what, side in (("head", self.head), ("tail", self.tail)):
            read = f" (read as '{side.text}')" if side.text != side.asked else ""
            entities = ", ".join(side.entities) or "none"
            lines.append(f"{what}: '{side.asked}'{read}, type {side.type or 'none'}: {side.mentions} mention(s); "
                         f"{'entities' if len(side.entities) > 1 else 'entity'} {entities}")
        lines.append("the run put them in one entity" if self.together else "the run kept them apart")
        out = "\n".join(lines) + "\n\n" + self.explanation.text()
        if self.type_factor != 1.0:
            out += f"\n(types incompatible: the probability is the weight's times type_mismatch, {self.type_factor:g})"
        return out


def explain_pair(pipeline: str | Path | Pipeline, head: str, tail: str) -> FusedPairExplanation:
    """The explanation of two names under the weights the pipeline's last fuse run stored. PipelineError when
    the stage does not learn its weights (learn fixed); ArtifactError when the run's files are missing;
    InputError when a name is neither a mention nor an entity of the run."""
    return load_run(pipeline).explain(head, tail)


def load_run(pipeline: str | Path | Pipeline) -> FusedRun:
    """The pipeline's last fuse run, ready to explain pairs (errors as explain_pair's)."""
    from kgpipe.config import as_pipeline

    pipe = as_pipeline(pipeline)
    stage, params, weights = learned_weights(pipe)
    return FusedRun.of_stage(stage, params, weights, pipe)


def learned_weights(pipe: Pipeline) -> tuple[Stage, Any, LearnedWeights]:
    """The fuse stage, the params of its last run and the weights it stored, or the error that says why there
    are none (PipelineError: learn fixed; ArtifactError: not run with learn em). Reads no table."""
    from kgpipe.kg.stored_weights import read_stored
    from kgpipe.lockfile import LockFile
    from kgpipe.roles import Role, stage_for
    from kgpipe.runner import Workspace

    stage = stage_for(pipe, Role.LEARNED_WEIGHTS)
    params = last_params(stage, LockFile.read(Workspace(pipe).lock_path).stages.get(stage.name))
    resolution = getattr(params, "resolution", None)
    if resolution is None or resolution.learn != "em":
        raise PipelineError(f"stage '{stage.name}': explain needs resolution.learn: em (it explains learned "
                            "match weights; the last run used the fixed ones)", file=pipe.path, line=stage.line,
                            hint=f"set learn: em under stages.{stage.name}.params.resolution (or run with "
                                 f"-S {stage.name}.resolution.learn=em) and run the pipeline")
    path = stage.outs["learned_weights"]
    if not path.exists():
        raise ArtifactError(f"{pipe.rel(path)} does not exist yet: stage '{stage.name}' has not run with learn: em",
                            hint=f"run the pipeline first: kgpipe run {pipe.path}")
    stored = read_stored(path)
    if stored.weights is None:
        raise ArtifactError(f"explain needs resolution.learn: em: {pipe.rel(path)} holds no weights ({stored.note})",
                            hint=f"run the pipeline again (kgpipe run {pipe.path}): the fuse stage then learns them")
    return stage, params, stored.weights


class FusedRun:
    """A fuse run's mention records (the stage's own: name, type, document context, no anchors), its names and
    entities, and one Explainer over all the records, so that every pair is scored as the stage scored it and
    many pairs cost one build."""

    def __init__(self, stage: str, records: Sequence[Record], names: _NameIndex, explainer: Explainer,
                 params) -> None:
        self.stage, self.records, self.names, self.explainer, self.params = stage, records, names, explainer, params
        self.position = {record.id: i for i, record in enumerate(records)}

    @classmethod
    def of_stage(cls, stage: Stage, params, weights: LearnedWeights, pipe: Pipeline | None = None) -> FusedRun:
        """The run whose outputs the stage's paths hold, under `params` (its last run's) and `weights` (the
        stored ones). pipe: only for the messages of missing files."""
        from kgpipe.artifacts import ENTITIES, MENTION_ENTITIES, MENTIONS, read_table
        from kgpipe.kg.explain import Explainer

        mentions = read_table(_dep(pipe, stage, "mentions"), MENTIONS)
        records = _records(mentions, params)
        entity_of = dict(read_table(_out(pipe, stage, "mention_entities"), MENTION_ENTITIES)
                         .itertuples(index=False, name=None))
        entities = read_table(_out(pipe, stage, "entities"), ENTITIES)
        names = _NameIndex(records, entities, entity_of, params.resolution.normalize.options())
        return cls(stage.name, records, names, Explainer(records, weights, params.resolution), params)

    def explain(self, head: str, tail: str) -> FusedPairExplanation:
        """Two names (mention texts, normalised names or entity labels) explained; InputError for a name the
        run does not know."""
        a, head_side = self.names.find(head)
        b, tail_side = self.names.find(tail)
        why = self.explainer.explain(self.position[a.id], self.position[b.id])
        return FusedPairExplanation(head_side, tail_side, why, self.stage, _type_factor(a, b, self.params))


def last_params(stage: Stage, entry: LockEntry | None):
    """The params the stage's last run used (its lock entry: -S overrides included), else the pipeline file's."""
    from pydantic import ValidationError

    if entry is None or entry.type != stage.type.name:
        return stage.params
    try:
        return stage.type.Params.model_validate(entry.params)
    except ValidationError:  # recorded by an older kgpipe: the file's params are the best guess
        return stage.params


def _type_factor(a: Record, b: Record, params) -> float:
    """type_mismatch where the two types are incompatible under the stage's type hierarchy, else 1."""
    from kgpipe.vocab import DEFAULT_TYPE_PARENTS, compatible

    parents = DEFAULT_TYPE_PARENTS if params.type_parents is None else params.type_parents
    return 1.0 if compatible(a.type, b.type, parents) else float(params.resolution.type_mismatch)


def _run_hint(pipe: Pipeline | None) -> str:
    return f"run the pipeline first: kgpipe run {pipe.path}" if pipe is not None else "run the pipeline first"


def _dep(pipe: Pipeline | None, stage: Stage, name: str) -> Path:
    paths = stage.deps.get(name) or ()
    if not paths or not paths[0].exists():
        where = (pipe.rel(paths[0]) if pipe is not None else str(paths[0])) if paths else f"deps.{name}"
        raise ArtifactError(f"stage '{stage.name}': its {name} input {where} does not exist", hint=_run_hint(pipe))
    return paths[0]


def _out(pipe: Pipeline | None, stage: Stage, name: str) -> Path:
    path = stage.outs[name]
    if not path.exists():
        where = pipe.rel(path) if pipe is not None else str(path)
        raise ArtifactError(f"{where} ({stage.name}.{name}) does not exist yet", hint=_run_hint(pipe))
    return path


def _records(mentions, params) -> list[Record]:
    """The fuse stage's resolution records of the mentions (kgpipe.kg.fusion.fuse_graph's steps), no anchors."""
    from kgpipe.kg import fusion_steps as step
    from kgpipe.vocab import DEFAULT_LABEL_MAP

    found, _ = step.read_mentions(mentions, DEFAULT_LABEL_MAP if params.label_map is None else params.label_map,
                                  params.resolution.normalize.options())
    return step.mention_records(found, [None] * len(found), step.document_keys(found, params.context))


class _NameIndex:
    """Mention records by text, by normalised name and by their entity's label and aliases."""

    def __init__(self, records: Sequence[Record], entities, entity_of: dict[str, str], options) -> None:
        from kgpipe.kg.normalize import normalize_name

        self.records = records
        self.entity_of = entity_of
        self.options = options
        self.by_text: dict[str, list[int]] = {}
        self.by_key: dict[str, list[int]] = {}
        self.by_entity: dict[str, list[int]] = {}
        for i, record in enumerate(records):
            self.by_text.setdefault(record.name.casefold(), []).append(i)
            self.by_key.setdefault(normalize_name(record.name, options), []).append(i)
            entity = entity_of.get(record.id)
            if entity is not None:
                self.by_entity.setdefault(entity, []).append(i)
        self.entity_names: dict[str, list[str]] = {}
        for row in entities.itertuples(index=False):
            for label in [row.label, *list(row.aliases)]:
                if isinstance(label, str) and row.id in self.by_entity:
                    self.entity_names.setdefault(label.casefold(), []).append(row.id)

    def find(self, asked: str) -> tuple[Record, Side]:
        from kgpipe.kg.normalize import normalize_name

        hits = self.by_text.get(asked.casefold()) or self.by_key.get(normalize_name(asked, self.options))
        if not hits:
            ids = sorted(set(self.entity_names.get(asked.casefold(), [])))
            hits = [i for entity in ids for i in self.by_entity[entity]]
        if not hits:
            raise InputError(f"no mention or entity of the last fuse run is called '{asked}'",
                             hint=self._suggest(asked))
        texts = Counter(self.records[i].name for i in hits)
        text = min(texts, key=lambda t: (-texts[t], t))
        said = [i for i in hits if self.records[i].name == text]
        types = Counter(self.records[i].type or "" for i in said)
        kind = min(types, key=lambda t: (-types[t], t))
        chosen = min((i for i in said if (self.records[i].type or "") == kind), key=lambda i: self.records[i].id)
        entities = tuple(sorted({self.entity_of[self.records[i].id] for i in said
                                 if self.records[i].id in self.entity_of}))
        return self.records[chosen], Side(asked, text, self.records[chosen].type, len(said), entities)

    def _suggest(self, asked: str) -> str:
        import difflib

        close = difflib.get_close_matches(asked, sorted({r.name for r in self.records}), n=5, cutoff=0.6)
        if close:
            return "similar mention texts: " + ", ".join(repr(c) for c in close)
        return f"give a mention text or an entity label of the run ({len(self.by_text)} distinct mention texts)"
