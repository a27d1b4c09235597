"""The `kgpipe` command: thin typer commands over the library. The only place that exits."""

from __future__ import annotations

import logging
import sys
import traceback
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from kgpipe.errors import KgpipeError

app = typer.Typer(help="kgpipe: text + seed KGs -> fused KG -> embeddings -> knowledge-enhanced encoders.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
console = Console()
err_console = Console(stderr=True)

PipelineArg = Annotated[Path, typer.Argument(help="pipeline YAML file")]
DEFAULT_PIPELINE = Path("pipelines/default.yaml")


class ProgressReporter:
    """Renders runner events: a line per stage, a progress bar while a stage reports progress."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[tuple[str, str], Any] = {}

    def __call__(self, event: Any) -> None:
        if event.kind == "start":
            self.progress.console.print(f"[bold cyan]>[/] {event.stage}: {'; '.join(event.reasons)}")
        elif event.kind == "skip":
            self.progress.console.print(f"[dim]= {event.stage}: up to date[/]")
        elif event.kind == "progress":
            key = (event.stage, event.description)
            if key not in self.tasks:
                self.tasks[key] = self.progress.add_task(f"{event.stage}: {event.description}",
                                                         total=event.total)
            self.progress.update(self.tasks[key], completed=event.completed, total=event.total)
        elif event.kind == "done":
            for (stage, _), task in list(self.tasks.items()):
                if stage == event.stage:
                    self.progress.remove_task(task)
                    del self.tasks[(stage, _)]
            self.progress.console.print(f"[green]✓[/] {event.stage} ({event.duration_s:.2f}s) "
                                        f"{_summary_text(event.summary)}", highlight=False)
        elif event.kind == "fail":
            self.progress.console.print(f"[red]✗ {event.stage} failed[/]")
        elif event.kind == "note":
            self.progress.console.print(f"[yellow]![/] {_plain('; '.join(event.reasons))}", highlight=False)


def _summary_text(summary: dict[str, Any]) -> str:
    """A stage's counts on one line (nested values are left to `kgpipe show`)."""
    return ", ".join(f"{k}={v}" for k, v in summary.items() if not isinstance(v, dict | list))


def _fail(exc: KgpipeError) -> None:
    if exc.__cause__ is not None and _state["verbose"]:
        err_console.print("".join(traceback.format_exception(exc.__cause__)), highlight=False, markup=False)
    where = f"stage '{exc.stage}' failed: " if exc.stage and f"stage '{exc.stage}'" not in exc.message else ""
    # messages quote file names and data: neither rich markup nor terminal control sequences in them act
    err_console.print(f"[bold red]error:[/] {_plain(where + exc.message)}", highlight=False, soft_wrap=True)
    if exc.hint:
        err_console.print(f"  [yellow]hint:[/] {_plain(exc.hint)}", highlight=False, soft_wrap=True)
    raise typer.Exit(exc.exit_code)


def _plain(text: str) -> str:
    """Text from data made safe for the terminal: control characters shown escaped, rich markup escaped."""
    from rich.markup import escape

    from kgpipe.export.safe_text import terminal_safe

    return escape(terminal_safe(text, keep_newlines=True))


_state = {"verbose": False}
INTERNAL_ERROR = 70  # kgpipe.errors.EXIT_CODES


def _print_version(value: bool) -> None:
    if value:
        from kgpipe import __version__

        console.print(f"kgpipe {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="log details and tracebacks")] = False,
          version: Annotated[bool, typer.Option("--version", help="print kgpipe's version and exit",
                                                callback=_print_version, is_eager=True)] = False,
          ) -> None:
    _state["verbose"] = verbose
    level = logging.INFO if verbose else logging.WARNING
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("kgpipe").setLevel(level)
    for handler in logging.getLogger().handlers:  # libraries (PyKEEN) set INFO on their own loggers
        handler.setLevel(level)


@app.command()
def run(
    pipeline: PipelineArg = DEFAULT_PIPELINE,
    until: Annotated[str | None, typer.Option(help="run this stage and what it depends on")] = None,
    only: Annotated[str | None, typer.Option(help="run this one stage")] = None,
    force: Annotated[bool, typer.Option("--force", help="run selected stages even if up to date")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="say what would run, run nothing")] = False,
    wait: Annotated[float, typer.Option(help="seconds to wait if another run holds the workspace")] = 0.0,
    engine: Annotated[str | None, typer.Option(help="local or ray: overrides every stage's executor "
                                                    "(never changes what a stage writes)")] = None,
    address: Annotated[str | None, typer.Option(help="with --engine ray: auto (this node's cluster), local "
                                                     "(start Ray here) or the head's host:port")] = None,
    set_: Annotated[list[str], typer.Option("--set", "-S", help="STAGE.PARAM=VALUE (YAML value): override a param "
                                            "for this run only, e.g. -S fuse.resolution.threshold=0.6 "
                                            "(repeatable)")] = [],  # noqa: B006
) -> None:
    """Run the stale stages of PIPELINE, in dependency order; each run is recorded (kgpipe runs, kgpipe diff)."""
    from kgpipe.overrides import parse_override
    from kgpipe.runner import run as run_pipeline

    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=console, transient=True)
    try:
        overrides = [parse_override(text) for text in set_]
        with progress:
            result = run_pipeline(pipeline, until=until, only=only, force=force, dry_run=dry_run,
                                  wait=wait, on_event=ProgressReporter(progress), engine=engine,
                                  address=address, overrides=overrides)
    except KgpipeError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        err_console.print("[red]interrupted[/]: earlier artifacts and the lock file are untouched")
        raise typer.Exit(130) from None
    if dry_run:
        for stage, reasons in result.would_run.items():
            console.print(f"would run [bold]{stage}[/]: {'; '.join(reasons)}")
        if not result.would_run:
            console.print("nothing to run: every stage is up to date")
        return
    console.print(f"ran {len(result.ran)} stage(s), {len(result.skipped)} up to date; "
                  f"outputs (relative to {result.root}):", highlight=False)
    table = Table("stage", "output", "path", box=None, pad_edge=False)
    for stage, outs in result.outputs.items():
        for name, path in outs.items():
            table.add_row(stage, name, _rel(path, result.root))
    console.print(table, soft_wrap=True)
    if result.run_id:
        console.print(f"[dim]recorded as run {result.run_id} (kgpipe runs, kgpipe diff)[/]", highlight=False)


def _rel(path: Path, base: Path | None = None) -> str:
    try:
        return str(path.relative_to(base or Path.cwd()))
    except ValueError:
        return str(path)


@app.command()
def status(pipeline: PipelineArg = DEFAULT_PIPELINE) -> None:
    """Each stage: up to date, or stale and why."""
    from kgpipe.runner import status as pipeline_status

    try:
        statuses = pipeline_status(pipeline)
    except KgpipeError as exc:
        _fail(exc)
    for st in statuses:
        if st.stale:
            console.print(f"[yellow]stale[/]       {st.name}: {'; '.join(st.reasons)}", highlight=False)
        else:
            summary = _summary_text(st.summary)
            console.print(f"[green]up to date[/]  {st.name}" + (f"  ({summary})" if summary else ""),
                          highlight=False)


# --- run history: kgpipe runs, kgpipe diff ----------------------------------------------------------------------

JsonFlag = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]


def _cell(value: Any) -> Any:
    """A table cell from recorded data: no markup, control characters escaped; a list: one line per item."""
    import json

    from rich.text import Text

    from kgpipe.export.safe_text import terminal_safe

    lines = value if isinstance(value, list) else [value]
    return Text("\n".join(terminal_safe(v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, default=str))
                          for v in lines))


def _override_items(overrides: dict[str, Any]) -> list[str]:
    import json

    return [f"{key}={json.dumps(value, ensure_ascii=False)}" for key, value in overrides.items()]


def _history(pipeline: Path) -> Any:
    from kgpipe.config import load_pipeline
    from kgpipe.history import History

    history = History.of(load_pipeline(pipeline))
    records, damaged = history.read()
    for line in damaged:
        err_console.print(f"[yellow]warning:[/] {_plain(line)} (skipped)", highlight=False, soft_wrap=True)
    return history, records


@app.command()
def runs(pipeline: PipelineArg = DEFAULT_PIPELINE, json_: JsonFlag = False) -> None:
    """The recorded runs of PIPELINE, oldest first: id, start, outcome, stages run and up to date, -S overrides."""
    import json

    from kgpipe.history import RAN, UP_TO_DATE

    try:
        history, records = _history(pipeline)
    except KgpipeError as exc:
        _fail(exc)
    if json_:
        print(json.dumps([record.as_json() for record in records], indent=1, default=str))
        return
    if not records:
        console.print(f"no runs recorded in {history.folder} yet", highlight=False)
        return
    # the -S overrides go under the run's id, one a line: the table fits 80 columns
    table = Table(box=None, pad_edge=False)
    table.add_column("run id (-S overrides)", overflow="fold")
    for column in ("started (UTC)", "status", "ran", "skipped", "took"):
        table.add_column(column, no_wrap=True)
    for record in records:
        status = record.status + (f" ({record.failed_stage})" if record.failed_stage else "")
        style = {"success": None, "failed": "red"}.get(record.status, "yellow")
        named = _cell([record.id, *(f"  {item}" for item in _override_items(record.overrides))])
        table.add_row(named, record.started_at[:16].replace("T", " "), _cell(status),
                      str(len(record.with_status(RAN))), str(len(record.with_status(UP_TO_DATE))),
                      f"{record.duration_s:.1f}s", style=style)
    console.print(table, soft_wrap=True)


def _value(value: Any) -> str:
    import json

    if isinstance(value, float):
        return f"{value:.6g}"
    if value == "":
        return '""'
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


@app.command(context_settings={"ignore_unknown_options": True})
def diff(
    run_a: Annotated[str | None, typer.Argument(help="the older run: id, unique id prefix, or -2 (-1: newest); "
                                                     "default: the one before the newest")] = None,
    run_b: Annotated[str | None, typer.Argument(help="the newer run (default: the newest)")] = None,
    pipeline: Annotated[Path, typer.Option(help="pipeline whose runs are compared")] = DEFAULT_PIPELINE,
    json_: JsonFlag = False,
) -> None:
    """What changed between two recorded runs, per stage: params, counts and metrics (with deltas), which
    outputs' hashes changed, and what each run in between changed in the outputs of a stage that compares them
    (fuse: entities added, removed, merged, split, relabelled; triples added, removed); the last two runs by
    default."""
    import json

    from kgpipe.history import resolve_run
    from kgpipe.run_diff import diff_runs

    try:
        history, records = _history(pipeline)
        if run_a is None and len(records) < 2:
            raise KgpipeError(f"kgpipe diff compares two runs; {len(records)} recorded in {history.folder}",
                              hint="run the pipeline again (e.g. with -S STAGE.PARAM=VALUE) and retry")
        old = resolve_run(records, run_a or "-2", history.folder)
        new = resolve_run(records, run_b or "-1", history.folder)
    except KgpipeError as exc:
        _fail(exc)
    result = diff_runs(old, new, records)
    if json_:
        print(json.dumps(result.as_json(), indent=1, ensure_ascii=False, default=str))
        return
    for which, record in (("A", old), ("B", new)):
        extra = "".join(f", -S {item}" for item in _override_items(record.overrides))
        console.print(_cell(f"{which}: {record.id} ({record.status}{extra})"), highlight=False)
    table = Table(box=None, pad_edge=False)
    for column in ("stage", "what", "key", "A", "B", "change"):
        table.add_column(column, overflow="fold")
    for stage in result.stages:
        if not stage.changed:
            table.add_row(stage.stage, _cell("no change"), "", "", "", "", style="dim")
            continue
        for what, changes in (("param", stage.params), ("count", stage.counts), ("metric", stage.metrics)):
            for change in changes:
                delta = f"{change.delta:+.6g}" if change.delta is not None else ""
                table.add_row(stage.stage, what, _cell(change.key), _cell(_value(change.old)),
                              _cell(_value(change.new)), delta)
        for out in stage.outs:
            if out.changed:
                table.add_row(stage.stage, "out", _cell(out.path), (out.old or "-")[:12], (out.new or "-")[:12],
                              "changed")
        same = sum(not out.changed for out in stage.outs)
        if same:
            table.add_row(stage.stage, "out", _cell(f"{same} unchanged"), "", "", "", style="dim")
    console.print(table, soft_wrap=True)
    for stage in result.stages:
        for step in stage.deltas:
            _print_delta(stage.stage, step.run, step.delta)


def _print_delta(stage: str, run_id: str, delta: Any) -> None:
    """What a run changed in a stage's outputs (kgpipe.delta.StageDelta): counts, then examples per kind."""
    console.print()
    console.print(_cell(f"{stage}: changes in its outputs, {delta.describe(run_id)}"), highlight=False, soft_wrap=True)
    if not delta.compared:
        return
    counts = Table(box=None, pad_edge=False)
    counts.add_column("change")
    counts.add_column("count", justify="right")
    for part in delta.parts:
        counts.add_row(_cell(part.kind), str(part.count), style=None if part.count else "dim")
    console.print(counts, soft_wrap=True)
    for part in delta.parts:
        if part.examples:
            examples = Table(title=f"{part.kind} ({len(part.examples)} of {part.count})", title_justify="left",
                             box=None, pad_edge=False)
            for column in part.columns:
                examples.add_column(column, overflow="fold")
            for row in part.examples:
                examples.add_row(*(_cell(value) for value in row))
            console.print(examples, soft_wrap=True)


@app.command()
def dag(
    pipeline: PipelineArg = DEFAULT_PIPELINE,
    mermaid: Annotated[bool, typer.Option("--mermaid", help="print a mermaid flowchart")] = False,
) -> None:
    """Show the stage graph."""
    from kgpipe.config import load_pipeline
    from kgpipe.dag import build_graph, topological_order

    try:
        pipe = load_pipeline(pipeline)
        graph = build_graph(pipe)
    except KgpipeError as exc:
        _fail(exc)
    order = topological_order(graph)
    if mermaid:
        print("flowchart LR")
        for name in order:
            print(f"    {name}[\"{name}<br/><small>{pipe.stages[name].type.name}</small>\"]")
        for up, down, data in graph.edges(data=True):
            label = ", ".join(p.name for p in data["paths"])
            print(f"    {up} -->|{label}| {down}")
        return
    for name in order:
        stage = pipe.stages[name]
        ups = sorted(graph.predecessors(name))
        console.print(f"[bold]{name}[/] ({stage.type.name} v{stage.type.version})"
                      + (f"  <- {', '.join(ups)}" if ups else ""), highlight=False)
        for dep in stage.dep_paths():
            console.print(f"    dep  {pipe.rel(dep)}", highlight=False)
        for out in stage.out_paths():
            console.print(f"    out  {pipe.rel(out)}", highlight=False)


@app.command()
def show(
    artifact: Annotated[str, typer.Argument(help="a path, or STAGE.OUT of the pipeline")],
    pipeline: Annotated[Path, typer.Option(help="pipeline that names the artifact")] = DEFAULT_PIPELINE,
    rows: Annotated[int, typer.Option(help="rows to preview")] = 5,
) -> None:
    """Describe an artifact: schema, row count and first rows of a table; size of a graph."""
    from kgpipe.config import load_pipeline
    from kgpipe.inspect import describe_artifact, resolve_artifact

    try:
        pipe = load_pipeline(pipeline) if pipeline.exists() else None
        desc = describe_artifact(resolve_artifact(artifact, pipe), rows)
    except KgpipeError as exc:
        _fail(exc)
    # everything below comes from the data: control characters are shown escaped, never sent to the
    # terminal, and rich markup or emoji codes in it are printed as they are
    from rich.text import Text

    from kgpipe.export.safe_text import terminal_safe

    title = Text(terminal_safe(_rel(desc.path)), style="bold")
    console.print(title + Text(f" ({desc.kind})"), highlight=False)
    for key, value in desc.facts.items():
        _print_data(f"  {key}: {value}")
    if desc.schema:
        console.print("  schema:")
        for name, dtype in desc.schema:
            _print_data(f"    {name}: {dtype}")
    if desc.preview is not None:
        from kgpipe.inspect import preview_text

        _print_data(preview_text(desc.preview), keep_newlines=True)


def _print_data(text: str, *, keep_newlines: bool = False) -> None:
    """Print text that comes from data: escaped control characters, no markup, no emoji codes."""
    from kgpipe.export.safe_text import terminal_safe

    console.print(terminal_safe(text, keep_newlines=keep_newlines), markup=False, highlight=False, emoji=False)


@app.command()
def explain(
    head: Annotated[str, typer.Argument(help="a mention text or entity label of the last fuse run")],
    tail: Annotated[str, typer.Argument(help="another one")],
    pipeline: Annotated[Path, typer.Option(help="pipeline whose fuse run to explain")] = DEFAULT_PIPELINE,
) -> None:
    """Why the last fuse run scored two names as it did: the learned weights' waterfall (prior, each comparison's
    log2(m/u), the match probability). Needs resolution.learn: em."""
    from kgpipe.fuse_explain import explain_pair

    try:
        found = explain_pair(pipeline, head, tail)
    except KgpipeError as exc:
        _fail(exc)
    from kgpipe.export.safe_text import terminal_safe

    # names come from data (escaped, no markup); long lines are not wrapped, so the table stays one per line
    console.print(terminal_safe(found.text(), keep_newlines=True), markup=False, highlight=False, emoji=False,
                  soft_wrap=True)


@app.command()
def report(
    pipeline: PipelineArg = DEFAULT_PIPELINE,
    out: Annotated[Path | None, typer.Option(help="HTML file to write (default <artifacts>/reports/...)")] = None,
) -> None:
    """Write a self-contained HTML report of the pipeline's last run."""
    from kgpipe.report import build_report

    try:
        path = build_report(pipeline, out)
    except KgpipeError as exc:
        _fail(exc)
    console.print(f"report written to {path}", highlight=False)


@app.command()
def explore(
    pipeline: PipelineArg = DEFAULT_PIPELINE,
    port: Annotated[int, typer.Option(min=1, max=65535, help="port to serve on")] = 8765,
    host: Annotated[str, typer.Option(help="address to bind; anything but a loopback address (127.0.0.1, ::1, "
                                           "localhost) disables the review's corrections")] = "127.0.0.1",
) -> None:
    """Serve a local, read-only web app over the last run's artifacts: search, entity pages with evidence,
    the neighbourhood graph, documents and pattern review, the embedding map, SPARQL, the run."""
    from kgpipe.errors import DependencyMissingError

    try:
        try:
            import uvicorn

            from kgpipe.web.app import create_app
            from kgpipe.web.corrections import is_loopback
        except ImportError as exc:
            raise DependencyMissingError(f"kgpipe explore needs the web extra ({exc.name} is not installed)",
                                         hint="pip install 'kgpipe[web]' (or make setup)") from None
        web_app = create_app(pipeline, host=host, port=port)
    except KgpipeError as exc:
        _fail(exc)
    if not is_loopback(host):
        err_console.print(f"[yellow]warning:[/] bound to {_plain(host)}, not a loopback address: anyone who can "
                          "reach it reads the graph, and corrections (marking relations wrong) are disabled",
                          highlight=False)
    shown = f"[{host}]" if ":" in host else host
    console.print(f"kgpipe explore: http://{_plain(shown)}:{port}/  (Ctrl+C stops it)", highlight=False)
    uvicorn.run(web_app, host=host, port=port, log_level="warning")


def _known_formats(formats: list[str]) -> list[str]:
    """--format values checked before anything is read: an unknown one is a usage error (exit 2)."""
    from kgpipe.stages.export import EMBEDDING_FORMAT_NAMES, GRAPH_FORMAT_NAMES

    unknown = [f for f in formats if f not in EMBEDDING_FORMAT_NAMES + GRAPH_FORMAT_NAMES]
    if unknown:
        raise typer.BadParameter(
            f"unknown format {', '.join(repr(f) for f in unknown)}; choose from embedding formats "
            f"{', '.join(EMBEDDING_FORMAT_NAMES)} or graph formats {', '.join(GRAPH_FORMAT_NAMES)}")
    return formats


@app.command()
def export(
    format: Annotated[list[str], typer.Option("--format", "-f", callback=_known_formats,
                      help="format (repeatable): npy, safetensors, "
                      "parquet, word2vec, projector, torch, int8, turtle, ntriples, graphml, neo4j")],
    out: Annotated[Path, typer.Option(help="folder to write into")] = Path("export"),
    pipeline: Annotated[Path, typer.Option(help="pipeline whose vectors (or embed) and fuse outputs are exported")]
    = DEFAULT_PIPELINE,
) -> None:
    """Export the pipeline's embeddings and fused graph in the formats downstream tools read."""
    from kgpipe.config import load_pipeline
    from kgpipe.roles import Role, existing_output
    from kgpipe.stages.export import ExportParams, export_all

    try:
        pipe = load_pipeline(pipeline)
        formats = ExportParams(formats=format).formats
        # the vectors stage's table where the pipeline has one: every entity, the inductive flag carried
        entity_vectors = (existing_output(pipe, Role.ENTITY_VECTORS)
                          or existing_output(pipe, Role.ENTITY_EMBEDDINGS))
        counts = export_all(formats, out, embeddings=entity_vectors,
                            relation_embeddings=existing_output(pipe, Role.RELATION_EMBEDDINGS),
                            entities=existing_output(pipe, Role.ENTITIES),
                            triples=existing_output(pipe, Role.TRIPLES),
                            graph=existing_output(pipe, Role.GRAPH_TTL))
    except KgpipeError as exc:
        _fail(exc)
    console.print(f"wrote {counts['files']} file(s) in {counts['formats']} format(s) to {out}", highlight=False)


@app.command()
def encode(
    text: Annotated[str, typer.Argument(help="text to link and encode")],
    model: Annotated[Path | None, typer.Option(help="knowledge model folder (default: the inject stage's)")] = None,
    pipeline: Annotated[Path, typer.Option(help="pipeline whose inject stage made the model")] = DEFAULT_PIPELINE,
    spacy_model: Annotated[str, typer.Option(help="spaCy model that finds the mentions")] = "auto",
) -> None:
    """Link the entities in TEXT and show how their token vectors differ from the plain model's."""
    from kgpipe.config import load_pipeline
    from kgpipe.errors import InputError
    from kgpipe.lm.knowledge_model import encode_text, spacy_mention_finder
    from kgpipe.roles import Role, find_output

    try:
        if not text.strip():
            raise InputError("TEXT is empty: there is nothing to link or encode",
                             hint='pass a sentence, e.g. kgpipe encode "Marie Curie was born in Warsaw."')
        folder = model or find_output(load_pipeline(pipeline), Role.KNOWLEDGE_MODEL)
        mentions, _, _ = encode_text(text, folder, spacy_mention_finder(spacy_model))
    except KgpipeError as exc:
        _fail(exc)
    from rich.text import Text

    from kgpipe.export.safe_text import terminal_safe

    def cell(value: str) -> Text:  # text and ids come from the user and the data: no markup, no escapes
        return Text(terminal_safe(value))

    table = Table("mention", "span", "type", "entity", "score", "how", "tokens", "cosine to plain")
    for item in mentions:
        m = item.mention
        table.add_row(cell(m.text), f"{m.start}-{m.end}", cell((m.kg_type or "").rsplit("/", 1)[-1]),
                      cell(m.entity_id or "NIL"), f"{m.score:.2f}", cell(m.method), str(len(item.tokens)),
                      "" if item.cosine_to_plain is None else f"{item.cosine_to_plain:.3f}")
    console.print(table)
    linked = [i for i in mentions if i.cosine_to_plain is not None]
    console.print(f"{len(linked)} of {len(mentions)} mention(s) linked; their token vectors differ from the "
                  "plain model's where cosine < 1", highlight=False)


@app.command()
def generate(
    text: Annotated[str, typer.Argument(help="the text to continue")],
    model: Annotated[Path | None, typer.Option(help="knowledge decoder folder (default: the inject stage's)")] = None,
    pipeline: Annotated[Path, typer.Option(help="pipeline whose inject stage made the model")] = DEFAULT_PIPELINE,
    base: Annotated[str | None, typer.Option(help="the decoder base, when it is not a packaged one (default: the "
                                                  "inject stage's base_model)")] = None,
    no_knowledge: Annotated[bool, typer.Option("--no-knowledge", help="only the base model's continuation")] = False,
    max_new_tokens: Annotated[int, typer.Option(min=1, max=256)] = 16,
    chat: Annotated[bool, typer.Option("--chat", help="wrap TEXT in the model's chat template")] = False,
    spacy_model: Annotated[str, typer.Option(help="spaCy model that finds the mentions")] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Continue TEXT with a knowledge decoder: the linked entities, the knowledge used, and the greedy continuation
    with and without knowledge side by side."""
    import json as _json
    from dataclasses import asdict

    from kgpipe.config import load_pipeline
    from kgpipe.errors import InputError
    from kgpipe.lm.decoders import decoder_source
    from kgpipe.lm.generation import continue_text
    from kgpipe.lm.knowledge_model import spacy_mention_finder
    from kgpipe.roles import Role, find_output, output_of

    try:
        if not text.strip():
            raise InputError("TEXT is empty: there is nothing to continue",
                             hint='pass a prompt, e.g. kgpipe generate "Marie Curie was born in"')
        folder = model
        if folder is None or (base is None and pipeline.exists()):  # the pipeline's inject stage: model, base
            pipe = load_pipeline(pipeline)
            made = output_of(pipe, Role.KNOWLEDGE_MODEL)
            if made is None and folder is None:
                raise InputError(f"{pipeline}: no stage of the pipeline makes a knowledge model (an inject stage)",
                                 hint="pass --model FOLDER")
            if made is not None:
                inject = made[0]
                folder = folder or find_output(pipe, Role.KNOWLEDGE_MODEL)
                base = base or decoder_source(getattr(inject.params, "base_model", ""), pipe.root)
        result = continue_text(text, folder, spacy_mention_finder(spacy_model), base=base,
                               knowledge=not no_knowledge, max_new_tokens=max_new_tokens, chat=chat)
    except KgpipeError as exc:
        _fail(exc)
    if as_json:
        typer.echo(_json.dumps(asdict(result), ensure_ascii=False, indent=2))
        return
    from rich.text import Text

    from kgpipe.export.safe_text import terminal_safe

    def cell(value: str) -> Text:  # prompts, labels and generated text: no markup, no terminal escapes
        return Text(terminal_safe(value))

    table = Table("mention", "span", "entity", "label", "score", "how")
    for m in result.mentions:
        table.add_row(cell(m.text), f"{m.start}-{m.end}", cell(m.entity_id or "NIL"), cell(m.label or ""),
                      f"{m.score:.2f}", cell(m.method))
    console.print(table)
    used = ", ".join(f"{u.label} ({u.entity_id})" for u in result.knowledge) or "none (no mention linked)"
    console.print(Text("knowledge used: " + terminal_safe(used)))
    side = Table("", "continuation")
    side.add_row("without knowledge", cell(result.without_knowledge))
    if result.with_knowledge is not None:
        side.add_row("with knowledge", cell(result.with_knowledge))
    console.print(side)


@app.command()
def stages() -> None:
    """List the registered stage types with their params, inputs and outputs."""
    from kgpipe.registry import get_stage_type, stage_type_names

    for name in stage_type_names():
        cls = get_stage_type(name)
        console.print(f"[bold]{name}[/] v{cls.version}: {cls.description}", highlight=False)
        console.print("    inputs:  " + ", ".join(s.name + ("" if s.required else "?") for s in cls.inputs))
        console.print("    outputs: " + ", ".join(f"{s.name} ({s.filename})" for s in cls.outputs))
        console.print("    params:  " + ", ".join(cls.Params.model_fields), highlight=False)


# --- kgpipe patterns / kgpipe ner: the extract stage's pattern files and NER model ------------------------

patterns_app = typer.Typer(help="relation pattern files: check them, learn new ones from labelled sentences",
                           no_args_is_help=True)
ner_app = typer.Typer(help="the spaCy NER used by the extract stage: adapt it to labelled sentences",
                      no_args_is_help=True)
rel_app = typer.Typer(help="a trained relation classifier (a fine-tuned encoder) beside the patterns",
                      no_args_is_help=True)
app.add_typer(patterns_app, name="patterns")
app.add_typer(ner_app, name="ner")
app.add_typer(rel_app, name="rel")


def _renames(pairs: list[str], option: str) -> dict[str, str]:
    renames = {}
    for pair in pairs:
        old, sep, new = pair.partition("=")
        if not sep or not old or not new:
            err_console.print(f"[bold red]error:[/] {option} takes OLD=NEW, got '{pair}'")
            raise typer.Exit(2)
        renames[old] = new
    return renames


@patterns_app.command("check")
def patterns_check(
    paths: Annotated[list[Path], typer.Argument(help="pattern files or folders")],
) -> None:
    """Validate pattern files; errors name the file, line, pattern id and field."""
    from kgpipe.nlp.patterns import load_patterns

    try:
        library = load_patterns(paths)
    except KgpipeError as exc:
        _fail(exc)
    by_relation: dict[str, int] = {}
    for pattern in library.patterns:
        by_relation[pattern.relation] = by_relation.get(pattern.relation, 0) + 1
    console.print(f"{len(library)} valid pattern(s): "
                  + ", ".join(f"{rel} {n}" for rel, n in sorted(by_relation.items())), highlight=False)


@patterns_app.command("learn")
def patterns_learn(
    train: Annotated[Path, typer.Argument(help="labelled JSON lines (CoNLL04 style: tokens, entities, relations)")],
    output: Annotated[Path, typer.Argument(help="pattern file (YAML) to write")],
    model: Annotated[str, typer.Option(help="spaCy model that parses the sentences")] = "auto",
    min_precision: Annotated[float, typer.Option(
        help="keep patterns at least this precise on the training pairs")] = 0.6,
    min_support: Annotated[int, typer.Option(help="keep patterns right at least this many times")] = 2,
    max_path: Annotated[int, typer.Option(help="longest dependency path, in edges")] = 5,
    cv_folds: Annotated[int, typer.Option(min=0, help="choose min precision and support per relation by k-fold "
                                                      "cross-validation on TRAIN (0 or 1: use the options above)")] = 0,
    relation: Annotated[list[str], typer.Option(help="rename a training relation, e.g. Work_For=works_for "
                                                     "(repeatable)")] = [],  # noqa: B006
    negatives: Annotated[Path | None, typer.Option(help="labelled JSON lines whose relations are wrong: each "
                                                        "counts against the patterns that would give it")] = None,
) -> None:
    """Induce DependencyMatcher patterns from labelled sentences: the shortest dependency path between
    the two entities' heads, generalised over lemmas, kept when precise enough on the training data."""
    from kgpipe.nlp.labelled import read_labelled
    from kgpipe.nlp.learn import LearnOptions, describe, learn_patterns
    from kgpipe.nlp.models import load_model
    from kgpipe.nlp.patterns import dump_patterns

    options = LearnOptions(min_precision=min_precision, min_support=min_support, max_path_edges=max_path,
                           cv_folds=cv_folds, relation_names=_renames(relation, "--relation"))
    try:
        sentences = read_labelled(train)
        wrong = read_labelled(negatives) if negatives is not None else []
        nlp = load_model(model)
        patterns, report = learn_patterns(nlp, sentences, options, negatives=wrong)
    except KgpipeError as exc:
        _fail(exc)
    thresholds = ", ".join(f"{label} {p:g}/{s}" for label, (p, s) in report.thresholds.items())
    header = (f"Learned by `kgpipe patterns learn` from {train.name} ({report.sentences} sentences) with "
              f"{nlp.meta.get('name')}, max path {max_path} edges; min precision/support per relation"
              + (f" (by {cv_folds}-fold cross-validation)" if report.cv else "") + f": {thresholds}.\n"
              "confidence = smoothed precision on the training pairs; stats: support (right), matches (all "
              "pairs the path joins), level (lemma, trigger, function, skeleton or dependency generalisation)."
              + (f"\nmatches include {report.negatives} wrong relation(s) from {negatives.name}."
                 if negatives is not None else ""))
    dump_patterns(patterns, output, header=header)
    console.print(describe(report), highlight=False)
    console.print(f"wrote {len(patterns)} pattern(s) to {output}", highlight=False)


def _say_resumed(after: int | None, output: Path) -> None:
    """A fine-tuning run that picked up its checkpoint says from which epoch."""
    if after is not None:
        console.print(f"(resumed after epoch {after} from the checkpoint in {output})", highlight=False)


def _show_ner_epoch(score: Any) -> None:
    dev_text = (f"  validation P {score.dev_p:.3f} R {score.dev_r:.3f} F {score.dev_f:.3f}"
                if score.dev_f is not None else "")
    console.print(f"epoch {score.epoch:3d}  loss {score.loss:10.4f}  {score.seconds:6.1f}s{dev_text}", highlight=False)


def _ner_train_transformer(train: Path, output: Path, dev: Path | None, holdout: float, base: str, epochs: int,
                           patience: int, max_minutes: float, seed: int, renames: dict[str, str], base_model: str,
                           lr: float, batch_size: int, max_length: int | None, restart: bool, word_shapes: bool,
                           constrained_decoding: bool, word_pos: bool, head_lr: float, word_base_ner: bool) -> None:
    from kgpipe.nlp.labelled import read_labelled
    from kgpipe.nlp.transformer_train import TransformerTrainOptions, train_transformer_ner

    options = TransformerTrainOptions(spacy_base=base, base_model=base_model, epochs=epochs, batch_size=batch_size,
                                      learning_rate=lr, patience=patience, max_minutes=max_minutes, seed=seed,
                                      holdout=holdout, max_length=max_length, label_renames=renames,
                                      word_shapes=word_shapes, constrained_decoding=constrained_decoding,
                                      word_pos=word_pos, head_learning_rate=head_lr or None,
                                      word_base_ner=word_base_ner)
    try:
        report = train_transformer_ner(read_labelled(train), output, options,
                                       dev=read_labelled(dev) if dev else (), restart=restart,
                                       progress=_show_ner_epoch)
    except KgpipeError as exc:
        _fail(exc)
    _say_resumed(report.resumed_after, output)
    best = report.best
    console.print(f"saved epoch {report.best_epoch} to {output} (stopped: {report.stopped}); labels: "
                  f"{', '.join(report.labels)}; validation: {report.validation}"
                  + (f"; validation F {best.dev_f:.3f}" if best and best.dev_f is not None else ""),
                  highlight=False)


@ner_app.command("train")
def ner_train(
    train: Annotated[Path, typer.Argument(help="labelled JSON lines (CoNLL04 style, or text + char spans)")],
    output: Annotated[Path, typer.Argument(help="model folder to write (load it with spacy_model: FOLDER)")],
    dev: Annotated[Path | None, typer.Option(help="labelled validation sentences for early stopping (default: "
                                                  "a held-out slice of TRAIN, see --holdout)")] = None,
    holdout: Annotated[float, typer.Option(min=0.0, max=0.5, help="share of TRAIN held out for early "
                                           "stopping when no --dev is given (0: keep the last epoch)")] = 0.1,
    base: Annotated[str, typer.Option(help="spaCy model whose NER is updated (with --transformer: replaced; "
                                           "its tagger, parser and lemmatizer are kept)")] = "auto",
    epochs: Annotated[int | None, typer.Option(min=1, help="default 30 (10 with --transformer)")] = None,
    dropout: Annotated[float, typer.Option(min=0.0, max=0.9, help="CNN only")] = 0.2,
    patience: Annotated[int | None, typer.Option(min=1, help="stop after this many epochs without dev gain "
                                                             "(default 6, 3 with --transformer)")] = None,
    max_minutes: Annotated[float, typer.Option(help="wall-clock budget; the best model so far is kept")] = 15.0,
    seed: Annotated[int, typer.Option()] = 0,
    label: Annotated[list[str], typer.Option(help="rename a data label for the model, e.g. Peop=PERSON "
                                                  "(repeatable)")] = [],  # noqa: B006
    transformer: Annotated[bool, typer.Option(help="fine-tune an encoder for BIO token classification instead "
                                                   "(slower; its measured accuracy is in the README)")] = False,
    base_model: Annotated[str, typer.Option(help="--transformer: all-MiniLM-L6-v2 (packaged) or a local "
                                                 "BERT-family model folder")] = "all-MiniLM-L6-v2",
    lr: Annotated[float, typer.Option(help="--transformer: AdamW learning rate (peak, after warm-up)")] = 5e-5,
    batch_size: Annotated[int, typer.Option(min=1, help="--transformer: sentences per step")] = 16,
    max_length: Annotated[int | None, typer.Option(min=16, help="--transformer: tokens per window (default: "
                                                                "the encoder's limit)")] = None,
    restart: Annotated[bool, typer.Option(help="--transformer: discard a checkpoint in OUTPUT instead of "
                                               "resuming it")] = False,
    word_shapes: Annotated[bool, typer.Option(help="--transformer: embed each word's case and shape (digits, "
                                                   "punctuation), which an uncased encoder does not see")] = True,
    constrained_decoding: Annotated[bool, typer.Option(help="--transformer: predict only valid BIO sequences "
                                                            "(Viterbi) instead of each word's best tag")] = True,
    word_pos: Annotated[bool, typer.Option(help="--transformer: embed each word's part of speech (from the base "
                                                "model's tagger; PROPN against NOUN is a name cue)")] = True,
    head_lr: Annotated[float, typer.Option(min=0.0, help="--transformer: peak learning rate of the layers "
                                                         "trained from scratch (classifier, shape, POS and "
                                                         "stock-NER embeddings); 0: the same as --lr")] = 1e-3,
    word_base_ner: Annotated[bool, typer.Option(help="--transformer: embed each word's tag from the base model's "
                                                     "own NER (kept in the folder as base_ner; cased evidence "
                                                     "of names' bounds and types)")] = False,
) -> None:
    """Update a spaCy model's NER on labelled sentences with spaCy's training API and save the model; with
    --transformer, fine-tune an encoder as the NER (a spaCy component named `ner` in the saved folder); an
    interrupted --transformer run resumes from OUTPUT's checkpoint when rerun with the same data and options."""
    from kgpipe.nlp.labelled import read_labelled
    from kgpipe.nlp.train import TrainOptions, train_ner

    if transformer:
        _ner_train_transformer(train, output, dev, holdout, base, epochs or 10, patience or 3, max_minutes, seed,
                               _renames(label, "--label"), base_model, lr, batch_size, max_length, restart,
                               word_shapes, constrained_decoding, word_pos, head_lr, word_base_ner)
        return
    options = TrainOptions(base_model=base, epochs=epochs or 30, dropout=dropout, patience=patience or 6,
                           max_minutes=max_minutes, seed=seed, holdout=holdout,
                           label_renames=_renames(label, "--label"))

    def show_epoch(score: Any) -> None:
        dev_text = (f"  validation P {score.dev_p:.3f} R {score.dev_r:.3f} F {score.dev_f:.3f}"
                    if score.dev_f is not None else "")
        console.print(f"epoch {score.epoch:3d}  loss {score.loss:10.2f}  {score.seconds:6.1f}s{dev_text}",
                      highlight=False)

    try:
        report = train_ner(read_labelled(train), output, options, dev=read_labelled(dev) if dev else (),
                           progress=show_epoch)
    except KgpipeError as exc:
        _fail(exc)
    best = report.best
    console.print(f"saved epoch {report.best_epoch} to {output} (stopped: {report.stopped}); labels: "
                  f"{', '.join(report.labels)}; validation: {report.validation}"
                  + (f"; validation F {best.dev_f:.3f}" if best and best.dev_f is not None else ""),
                  highlight=False)


@rel_app.command("train")
def rel_train(
    train: Annotated[Path, typer.Argument(help="labelled JSON lines (CoNLL04 style, or text + char spans)")],
    output: Annotated[Path, typer.Argument(help="model folder to write (also holds the checkpoint while training)")],
    negatives: Annotated[Path | None, typer.Option(help="labelled JSON lines whose relations are wrong: each "
                                                        "becomes a \"no relation\" example for its pair")] = None,
    base_model: Annotated[str, typer.Option(help="all-MiniLM-L6-v2 (packaged) or a local BERT-family model "
                                                 "folder")] = "all-MiniLM-L6-v2",
    epochs: Annotated[int, typer.Option(min=1)] = 10,
    seed: Annotated[int, typer.Option()] = 0,
    max_minutes: Annotated[float, typer.Option(help="wall-clock budget; the best model so far is kept")] = 30.0,
    batch_size: Annotated[int, typer.Option(min=1, help="sentences per step")] = 8,
    lr: Annotated[float, typer.Option(help="AdamW learning rate (peak, after warm-up)")] = 5e-5,
    holdout: Annotated[float, typer.Option(min=0.0, max=0.5, help="share of TRAIN held out for early stopping "
                                           "(0: keep the last epoch)")] = 0.1,
    patience: Annotated[int, typer.Option(min=1, help="stop after this many epochs without held-out gain")] = 3,
    max_length: Annotated[int | None, typer.Option(min=16, help="tokens per window (default: the encoder's "
                                                                "limit); longer sentences are windowed")] = None,
    restart: Annotated[bool, typer.Option(help="discard a checkpoint in OUTPUT instead of resuming it")] = False,
) -> None:
    """Fine-tune an encoder as a relation classifier over ordered pairs of gold entities (one encoder pass per
    sentence, span pooling of both entities and the context between them, NER-label embeddings). An
    interrupted run resumes from OUTPUT's checkpoint when rerun with the same data and options."""
    from kgpipe.lm.relation_train import RelTrainOptions, train_relation_model
    from kgpipe.nlp.labelled import read_labelled

    options = RelTrainOptions(base_model=base_model, epochs=epochs, batch_size=batch_size, learning_rate=lr,
                              patience=patience, max_minutes=max_minutes, seed=seed, holdout=holdout,
                              max_length=max_length)

    def show_epoch(score: Any) -> None:
        held = (f"  held-out P {score.precision:.3f} R {score.recall:.3f} F1 {score.f1:.3f}"
                if score.f1 is not None else "")
        console.print(f"epoch {score.epoch:3d}  loss {score.loss:8.4f}  {score.seconds:7.1f}s  "
                      f"{score.sentences_per_second:6.1f} sentences/s{held}", highlight=False)

    try:
        sentences = read_labelled(train)
        wrong = read_labelled(negatives) if negatives is not None else []
        report = train_relation_model(sentences, output, options, negatives=wrong, restart=restart,
                                      progress=show_epoch)
    except KgpipeError as exc:
        _fail(exc)
    _say_resumed(report.resumed_after, output)
    best = report.best
    console.print(f"{report.train_sentences} training sentences, {report.pairs} pairs ({report.related_pairs} "
                  f"related, {report.negatives_added} from --negatives), {report.skipped_pairs} pair(s) skipped "
                  f"(no window holds both spans); {report.heldout_sentences} held out", highlight=False)
    console.print(f"saved epoch {report.best_epoch} to {output} (stopped: {report.stopped}); relations: "
                  f"{', '.join(report.relation_labels)}"
                  + (f"; held-out F1 {best.f1:.3f}" if best and best.f1 is not None else ""), highlight=False)


# --- kgpipe cache: the extract stage's per-document cache ------------------------------------------------

CACHE_ACTIONS = ("show", "prune", "clear")


@app.command()
def cache(
    action: Annotated[str, typer.Argument(help="show, prune or clear (a pipeline file here: show it)")] = "show",
    pipeline: Annotated[Path | None, typer.Argument(help=f"pipeline YAML file [default: {DEFAULT_PIPELINE}]",
                                                    show_default=False)] = None,
    max_size: Annotated[str | None, typer.Option("--max-size", help="prune: keep at most this much (e.g. 500MB, "
                                                 "1GB); default: the extract stages' cache_max_size")] = None,
) -> None:
    """The extract stage's per-document cache in PIPELINE's workspace: entries and size per extractor
    fingerprint; `prune` removes the entries least recently used beyond a size, `clear` removes them all."""
    from pydantic import ByteSize, TypeAdapter, ValidationError

    from kgpipe.config import load_pipeline
    from kgpipe.stages.extract import ExtractParams
    from kgpipe.stages.extract_cache import DEFAULT_MAX_BYTES, cache_path, clear, prune, workspace_held

    if action not in CACHE_ACTIONS:
        if pipeline is not None:
            err_console.print(f"[bold red]error:[/] unknown action '{_plain(action)}' (show, prune or clear)")
            raise typer.Exit(2)
        action, pipeline = "show", Path(action)
    limit: int | None = None
    if max_size is not None:
        try:
            limit = int(TypeAdapter(ByteSize).validate_python(max_size))
        except ValidationError:
            err_console.print(f"[bold red]error:[/] --max-size: '{_plain(max_size)}' is not a size (e.g. 500MB, 1GB)")
            raise typer.Exit(2) from None
    try:
        pipe = load_pipeline(pipeline or DEFAULT_PIPELINE)
        path = cache_path(pipe.workspace)
        limits = [int(stage.params.cache_max_size) for stage in pipe.stages.values()
                  if isinstance(stage.params, ExtractParams)]
        if action == "show":
            _show_cache(path, min(limits, default=DEFAULT_MAX_BYTES))
            return
        with workspace_held(pipe):
            done = clear(path) if action == "clear" else prune(path, limit or min(limits, default=DEFAULT_MAX_BYTES))
    except KgpipeError as exc:
        _fail(exc)
    verb = "cleared" if action == "clear" else "pruned"
    console.print(f"{verb} {_rel(path)}: {done.entries} entries removed ({_size(done.bytes)})", highlight=False)


def _show_cache(path: Path, limit: int) -> None:
    from datetime import datetime

    from kgpipe.stages.extract_cache import usage

    listed = usage(path)
    if not listed:
        console.print(f"no extract cache entries in {_rel(path)}", highlight=False)
        return
    console.print(f"extract cache {_rel(path)}: {sum(u.entries for u in listed)} entries, "
                  f"{_size(sum(u.bytes for u in listed))} (limit {_size(limit)})", highlight=False)
    table = Table("fingerprint", "stage", "entries", "size", "last used", box=None, pad_edge=False)
    for u in listed:
        used = datetime.fromtimestamp(u.last_used).isoformat(sep=" ", timespec="seconds") if u.last_used else "-"
        table.add_row(u.fingerprint[:16], _plain(u.stage), str(u.entries), _size(u.bytes), used)
    console.print(table, soft_wrap=True)


def _size(n: int) -> str:
    from pydantic import ByteSize

    return ByteSize(n).human_readable(decimal=True)


def main() -> None:
    try:
        app()
    except KgpipeError as exc:  # errors raised outside a command body
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, markup=False)
        sys.exit(exc.exit_code)
    except Exception as exc:  # a bug in kgpipe: say so, with the traceback only under -v
        if _state["verbose"]:
            traceback.print_exc()
        err_console.print(f"error: internal error ({type(exc).__name__}: {exc}); this is a bug in kgpipe",
                          highlight=False, markup=False)
        err_console.print("  hint: run again with -v for the traceback, and report it", highlight=False,
                          markup=False)
        sys.exit(INTERNAL_ERROR)


if __name__ == "__main__":
    main()
