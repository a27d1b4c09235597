"""Build, save and use a knowledge model folder: a KnowledgeEnhancedEncoder over the fused entities'
embeddings, the linker's alias table, and (fusion mode) the task head it was trained with.

Used by the inject stage, by `kgpipe encode` and by the WebNLG benchmark.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from kgpipe.errors import KgpipeError
from kgpipe.export.embeddings import Embeddings
from kgpipe.lm.encoder import KnowledgeEnhancedEncoder, resolve_base_model
from kgpipe.lm.knowledge import KnowledgeTable
from kgpipe.lm.linker import EntityLinker
from kgpipe.lm.projection import fit_linear_map, label_embeddings

LINKER_FILE = "linker_entities.parquet"
HEAD_FILE = "task_head.safetensors"
HEAD_LABELS = "task_labels.json"


@dataclass
class AlignFit:
    anchors: int
    train_r2: float
    heldout_cosine: float   # mean cosine(mapped KG vector, label embedding) on 10% held-out anchors
    map: Any = field(repr=False, default=None)


def fit_align_map(knowledge: KnowledgeTable, labels: Sequence[str], tokenizer: Any, base: Any, *,
                  orthogonal: bool = False, ridge: float = 1e-2, seed: int = 0,
                  anchors: Sequence[int] | None = None) -> AlignFit:
    """E-BERT: map each entity's KG vector onto the mean input embedding of its label's sub-words, fitted on the
    `anchors` rows (default: all; rows whose vectors were themselves predicted from text are no anchors)."""
    rows = torch.tensor(list(anchors) if anchors is not None else range(len(labels)), dtype=torch.long)
    if len(rows) < 2:
        raise KgpipeError(f"the align map needs at least 2 anchor entities with embeddings, got {len(rows)}",
                          hint="check that entities.parquet and the embeddings share entity ids")
    kg = knowledge.dense()[rows]
    target = label_embeddings([labels[i] for i in rows.tolist()], tokenizer,
                              base.get_input_embeddings().weight.detach())
    order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed))
    held = order[: max(1, len(rows) // 10)] if len(rows) >= 20 else order[:0]
    train = order[len(held):]
    linear = fit_linear_map(kg[train], target[train], orthogonal=orthogonal, ridge=ridge)
    predicted = linear(kg[train])
    residual = ((predicted - target[train]) ** 2).sum()
    spread = ((target[train] - target[train].mean(0)) ** 2).sum().clamp_min(1e-12)
    cosine = (torch.nn.functional.cosine_similarity(linear(kg[held]), target[held]).mean().item()
              if len(held) else float("nan"))
    full = fit_linear_map(kg, target, orthogonal=orthogonal, ridge=ridge)  # the shipped map uses every anchor
    return AlignFit(len(rows), float(1 - residual / spread), float(cosine), full)


@dataclass
class EntityKnowledge:
    """The entities that have a vector, in embedding order: their table, labels, and the rows whose vectors a KG
    model trained (`trained`; the vectors stage's inductive rows are predicted from text and left out)."""

    table: KnowledgeTable
    labels: list[str]
    trained: list[int]


def knowledge_for(entities: Any, embeddings: Embeddings, storage: str) -> EntityKnowledge:
    """The entities of entities.parquet that have a vector, with their labels and which rows are trained."""
    label_of = dict(zip(entities["id"], entities["label"], strict=True))
    rows = [i for i, entity in enumerate(embeddings.ids) if entity in label_of]
    if not rows:
        raise KgpipeError("no entity of entities.parquet has an embedding",
                          hint="the embeddings must come from the same fused graph (embed stage on fuse's triples)")
    ids = [embeddings.ids[i] for i in rows]
    flags = embeddings.inductive
    trained = [n for n, i in enumerate(rows) if flags is None or not flags[i]]
    return EntityKnowledge(KnowledgeTable(ids, embeddings.vectors[rows], storage),  # type: ignore[arg-type]
                           [label_of[e] for e in ids], trained)


def relation_knowledge(path: Path, storage: str) -> KnowledgeTable:
    """The relations' KG vectors from embed's relation_embeddings.parquet (reciprocal rows left out)."""
    import numpy as np

    from kgpipe.artifacts import RELATION_EMBEDDINGS, read_table

    table = read_table(path, RELATION_EMBEDDINGS)
    table = table[~table["inverse"]]
    return KnowledgeTable(list(table["id"]), np.stack(table["vector"].to_list()), storage)  # type: ignore[arg-type]


def save_linker_table(entities: Any, folder: Path) -> None:
    columns = [c for c in ("id", "label", "type", "aliases", "mention_count") if c in entities.columns]
    entities[columns].to_parquet(folder / LINKER_FILE, index=False)


def load_linker(folder: Path, **options: Any) -> EntityLinker:
    import pandas as pd

    from kgpipe.kg.normalize import normalize_name

    table = pd.read_parquet(folder / LINKER_FILE)
    return EntityLinker(table.to_dict("records"), normalize=normalize_name, **options)


@dataclass
class LinkedMention:
    start: int
    end: int
    text: str
    kg_type: str | None
    entity_id: str | None
    label: str | None
    score: float
    method: str


def link_text(text: str, linker: EntityLinker, find_mentions: Callable[[str], list[dict[str, Any]]],
              known: Callable[[str], bool]) -> list[LinkedMention]:
    """Mentions found by the extraction components, each linked (a gazetteer match to its seed IRI when
    the KG holds it, else through the linker); entity_id None marks NIL."""
    linked = []
    for m in find_mentions(text):
        seed = m.get("seed_iri")
        if seed and known(seed):
            linked.append(LinkedMention(m["start_char"], m["end_char"], m["text"], m.get("kg_type"), seed,
                                        None, 1.0, "gazetteer"))
            continue
        best = linker.link(m["text"], m.get("kg_type"))
        linked.append(LinkedMention(m["start_char"], m["end_char"], m["text"], m.get("kg_type"),
                                    best.entity_id if best else None, best.label if best else None,
                                    best.score if best else 0.0, best.method if best else "nil"))
    return linked


def spacy_mention_finder(spacy_model: str = "auto", root: Path | None = None,
                         seed_entities: Any = None) -> Callable[[str], list[dict[str, Any]]]:
    """The extract stage's own components (NER + seed gazetteer) as a function text -> mention rows."""
    from kgpipe.nlp.extractor import build_extractor
    from kgpipe.nlp.models import load_model

    extractor, _ = build_extractor(load_model(spacy_model, root), seed_entities=seed_entities)

    def find(text: str) -> list[dict[str, Any]]:
        return extractor.extract_doc(extractor.nlp(text), "input").mentions

    return find


def load_knowledge_model(folder: Path) -> tuple[KnowledgeEnhancedEncoder, Any]:
    from transformers import AutoTokenizer

    encoder = KnowledgeEnhancedEncoder.from_pretrained(folder)
    tokenizer_dir = folder / "tokenizer"
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir if tokenizer_dir.exists()
                                                  else resolve_base_model(encoder.config.base_model)))
    return encoder, tokenizer


def save_head(head: torch.nn.Linear, labels: Sequence[str], folder: Path) -> None:
    from kgpipe.tensorfile import write_torch

    write_torch(folder / HEAD_FILE, dict(head.state_dict()))
    (folder / HEAD_LABELS).write_text(json.dumps(list(labels)), encoding="utf-8")


@dataclass
class EncodedMention:
    mention: LinkedMention
    tokens: list[int]
    cosine_to_plain: float | None   # mean over the mention's tokens; None when not linked


def encode_text(text: str, folder: Path, find_mentions: Callable[[str], list[dict[str, Any]]]
                ) -> tuple[list[EncodedMention], torch.Tensor, torch.Tensor]:
    """Link the mentions of text, run the knowledge model and the plain base on it, and compare the
    linked mentions' token vectors: (mentions, enhanced hidden states, plain hidden states)."""
    from kgpipe.lm.alignment import tokens_for_span

    encoder, tokenizer = load_knowledge_model(folder)
    linker = load_linker(folder)
    mentions = link_text(text, linker, find_mentions, lambda e: e in encoder.knowledge.index)
    enc = tokenizer(text, return_offsets_mapping=True, truncation=True, max_length=512, return_tensors="pt")
    offsets = enc["offset_mapping"][0].tolist()
    rows = torch.full_like(enc["input_ids"], -1)
    spans = []
    for m in mentions:
        tokens = tokens_for_span(offsets, m.start, m.end)
        spans.append(tokens)
        if m.entity_id is not None and m.entity_id in encoder.knowledge.index:
            rows[0, tokens] = encoder.knowledge.index[m.entity_id]
    with torch.no_grad():
        enhanced = encoder(enc["input_ids"], enc["attention_mask"], entity_rows=rows).last_hidden_state[0]
        plain = encoder.base(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state[0]
    results = []
    for m, tokens in zip(mentions, spans, strict=True):
        cosine = None
        if m.entity_id is not None and tokens:
            cosine = torch.nn.functional.cosine_similarity(enhanced[tokens], plain[tokens]).mean().item()
        results.append(EncodedMention(m, tokens, cosine))
    return results, enhanced, plain
