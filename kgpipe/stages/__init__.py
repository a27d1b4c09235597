"""Built-in stage types: one module each, registered here by name (imported only when a pipeline uses it).

To add a stage type: write kgpipe/stages/<name>.py with a StageType subclass, then add one line below.
"""

BUILTIN_STAGES: dict[str, str] = {
    "ingest": "kgpipe.stages.ingest:IngestStage",
    "extract": "kgpipe.stages.extract:ExtractStage",
    "fuse": "kgpipe.stages.fuse:FuseStage",
    "embed": "kgpipe.stages.embed:EmbedStage",
    "vectors": "kgpipe.stages.vectors:VectorsStage",
    "inject": "kgpipe.stages.inject:InjectStage",
    "export": "kgpipe.stages.export:ExportStage",
}
