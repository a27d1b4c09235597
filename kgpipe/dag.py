"""The stage graph (derived from deps and outs, as in DVC) and staleness: what would run, and why.

Checks run before anything executes: cycles, two stages writing the same out, and deps that no stage
produces and that do not exist are rejected with the pipeline file's line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import networkx as nx

from kgpipe.config import Pipeline, Stage
from kgpipe.errors import InputError, PipelineError
from kgpipe.hashing import HashCache, hash_params
from kgpipe.lockfile import LockEntry


def _overlaps(a: Path, b: Path) -> bool:
    return a == b or a in b.parents or b in a.parents


def _check_out_place(pipeline: Pipeline, stage: Stage, out_name: str, out: Path) -> None:
    """An out may not be or contain the pipeline file, the project folder or the workspace, nor lie in the
    workspace (kgpipe's own files)."""
    def refuse(what: str) -> PipelineError:
        return PipelineError(f"stage '{stage.name}': out '{out_name}' ({pipeline.rel(out)}) {what}",
                             file=pipeline.path,
                             line=pipeline.line_of("stages", stage.name, "outs", out_name) or stage.line,
                             hint="point the out at a path of its own, e.g. under artifacts/")
    if _overlaps(out, pipeline.path):
        raise refuse("would overwrite the pipeline file")
    if out == pipeline.root or out in pipeline.root.parents:
        raise refuse("would replace the project folder")
    if _overlaps(out, pipeline.workspace):
        raise refuse(f"overlaps the workspace {pipeline.rel(pipeline.workspace)} (lock file, scratch)")


def build_graph(pipeline: Pipeline) -> nx.DiGraph:
    """Stages as nodes; an edge producer -> consumer for each dep that lies on (or in) another's out."""
    graph = nx.DiGraph()
    for index, stage in enumerate(pipeline.stages.values()):
        graph.add_node(stage.name, order=index, type=stage.type.name)

    producers: list[tuple[Path, Stage, str]] = []
    for stage in pipeline.stages.values():
        for out_name, out in stage.outs.items():
            _check_out_place(pipeline, stage, out_name, out)
            for other_path, other, _ in producers:
                if _overlaps(out, other_path):
                    raise PipelineError(
                        f"stages '{other.name}' and '{stage.name}' both write {pipeline.rel(out)}"
                        + ("" if out == other_path else f" (overlaps {pipeline.rel(other_path)})"),
                        file=pipeline.path, line=pipeline.line_of("stages", stage.name, "outs", out_name)
                        or stage.line,
                        hint="give each stage its own outs",
                    )
            producers.append((out, stage, out_name))

    for stage in pipeline.stages.values():
        for dep_name, paths in stage.deps.items():
            for dep in paths:
                made_by = [(producer, out) for out, producer, _ in producers if _overlaps(dep, out)]
                line = pipeline.line_of("stages", stage.name, "deps", dep_name) or stage.line
                for producer, out in made_by:
                    if producer.name == stage.name:
                        raise PipelineError(
                            f"cycle: stage '{stage.name}' reads its own out {pipeline.rel(out)}",
                            file=pipeline.path, line=line)
                    if graph.has_edge(producer.name, stage.name):
                        graph.edges[producer.name, stage.name]["paths"].append(out)
                    else:
                        graph.add_edge(producer.name, stage.name, paths=[out])
                inside_an_out = any(dep == out or out in dep.parents for out, _, _ in producers)
                holds = [(producer, out) for out, producer, _ in producers if dep in out.parents]
                if holds and not inside_an_out:
                    producer, out = holds[0]
                    raise PipelineError(
                        f"stage '{producer.name}' writes {pipeline.rel(out)} inside {pipeline.rel(dep)}, "
                        f"a source dep of stage '{stage.name}' (a folder no stage produces)",
                        file=pipeline.path,
                        line=pipeline.line_of("stages", producer.name, "outs") or producer.line,
                        hint="outputs go to their own folders (by default under artifacts/); never into input data")
                if not made_by and not dep.exists():
                    raise PipelineError(
                        f"stage '{stage.name}': dep '{dep_name}' {pipeline.rel(dep)} does not exist "
                        "and no stage produces it",
                        file=pipeline.path, line=line,
                        hint="fix the path (relative to the pipeline root "
                        f"{pipeline.root}) or add the stage that writes it",
                    )
    try:
        cycle = nx.find_cycle(graph)
    except nx.NetworkXNoCycle:
        return graph
    names = " -> ".join([u for u, _ in cycle] + [cycle[0][0]])
    raise PipelineError(f"cycle between stages: {names}", file=pipeline.path,
                        line=pipeline.stages[cycle[0][0]].line, hint="a stage cannot depend on its own outputs")


def topological_order(graph: nx.DiGraph) -> list[str]:
    """Topological order, ties broken by the order stages appear in the pipeline file."""
    return list(nx.lexicographical_topological_sort(graph, key=lambda n: graph.nodes[n]["order"]))


def select_stages(pipeline: Pipeline, graph: nx.DiGraph, *, until: str | None = None,
                  only: str | None = None) -> list[str]:
    """The stages a run may touch, in topological order."""
    if until and only:
        raise PipelineError("--until and --only cannot be combined")
    for name in (until, only):
        if name is not None and name not in pipeline.stages:
            raise PipelineError(f"no stage named '{name}' in {pipeline.path}",
                                hint=f"stages: {', '.join(pipeline.stages)}")
    if only:
        return [only]
    chosen = set(graph.nodes) if until is None else nx.ancestors(graph, until) | {until}
    return [n for n in topological_order(graph) if n in chosen]


@dataclass
class StageStatus:
    """Whether a stage is up to date against its lock entry, and every reason it is not."""

    name: str
    reasons: list[str] = field(default_factory=list)
    dep_hashes: dict[str, str | None] = field(default_factory=dict)
    fingerprint: str = ""
    summary: dict = field(default_factory=dict)  # what the last successful run reported

    @property
    def stale(self) -> bool:
        return bool(self.reasons)

    @property
    def word(self) -> str:
        """'up to date', 'never run' or 'stale' (the report's and the explorer's status)."""
        if not self.stale:
            return "up to date"
        return "never run" if self.reasons == ["never run"] else "stale"


UNSET = "<unset>"


def changed_leaves(old: object, new: object, path: str = "") -> list[tuple[str, object, object]]:
    """(dotted key, old, new) for every value that differs, descending into nested mappings so a change
    deep inside a params block names that key, not the whole block."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new), key=str):
            out += changed_leaves(old.get(key, UNSET), new.get(key, UNSET), f"{path}.{key}" if path else str(key))
        return out
    return [] if old == new else [(path, old, new)]


def _params_diff(old: dict, new: dict) -> str:
    changes = changed_leaves(old, new)
    parts = [f"{key}: {before!r} -> {after!r}" for key, before, after in changes[:3]]
    more = f"; +{len(changes) - 3} more" if len(changes) > 3 else ""
    return "params changed (" + "; ".join(parts) + more + ")"


def _dep_hash(pipeline: Pipeline, stage: Stage, path: Path, hasher: HashCache) -> str | None:
    """A dep's content hash; a dep that exists but cannot be read (permissions, a link loop, a dangling link)
    is an input error naming it and the stage, not a traceback."""
    try:
        return hasher.path_hash(path)
    except OSError as exc:
        name = next((n for n, paths in stage.deps.items() if path in paths), "?")
        raise InputError(f"stage '{stage.name}': dep '{name}' cannot be read: {exc.strerror or exc}", file=path,
                         hint="fix the file's permissions or the link, or point the dep elsewhere in "
                         f"{pipeline.path.name} (line {pipeline.line_of('stages', stage.name, 'deps', name)})"
                         ) from None


def stage_status(pipeline: Pipeline, stage: Stage, entry: LockEntry | None, hasher: HashCache) -> StageStatus:
    """Compare a stage with its lock entry: type version, params, deps, outs (cheapest checks first)."""
    params = stage.params_dict()
    deps = {pipeline.rel(p): _dep_hash(pipeline, stage, p, hasher) for p in stage.dep_paths()}
    status = StageStatus(stage.name, dep_hashes=deps, fingerprint=hash_params(
        {"type": stage.type.name, "version": stage.type.version, "params": params, "deps": deps}))
    reasons = status.reasons
    status.summary = entry.summary if entry is not None else {}
    if entry is None:
        reasons.append("never run")
        return status
    if entry.type != stage.type.name or entry.type_version != stage.type.version:
        reasons.append(f"stage type changed ({entry.type} v{entry.type_version} -> "
                       f"{stage.type.name} v{stage.type.version})")
    if entry.params != params:
        reasons.append(_params_diff(entry.params, params))
    if set(entry.deps) != set(deps):
        reasons.append("deps changed (" + ", ".join(sorted(set(entry.deps) ^ set(deps))) + ")")
    outs = {pipeline.rel(p): p for p in stage.out_paths()}
    if set(entry.outs) != set(outs):
        reasons.append("outs changed (" + ", ".join(sorted(set(entry.outs) ^ set(outs))) + ")")
    reasons.extend(f"out missing: {rel}" for rel, path in outs.items() if not path.exists())
    reasons.extend(f"dep changed: {rel}" for rel, digest in deps.items()
                   if rel in entry.deps and entry.deps[rel] != digest)
    reasons.extend(f"out modified: {rel}" for rel, path in outs.items()
                   if path.exists() and rel in entry.outs and hasher.path_hash(path) != entry.outs[rel])
    return status


def plan(pipeline: Pipeline, graph: nx.DiGraph, selected: list[str], lock: dict[str, LockEntry],
         hasher: HashCache, *, force: bool = False) -> list[StageStatus]:
    """Status of each selected stage; a stage downstream of one that will run is stale too."""
    will_run: set[str] = set()
    statuses = []
    for name in selected:
        status = stage_status(pipeline, pipeline.stages[name], lock.get(name), hasher)
        if force:
            status.reasons.insert(0, "forced")
        status.reasons.extend(f"upstream stage '{up}' will run"
                              for up in sorted(set(graph.predecessors(name)) & will_run))
        if status.stale:
            will_run.add(name)
        statuses.append(status)
    return statuses
