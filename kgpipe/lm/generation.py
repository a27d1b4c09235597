"""Training a knowledge decoder's adapter for generation, and measuring it: the graph's triples verbalised as
"Marie Curie | award received -> Nobel Prize in Physics", next-token loss on the tail only, the head's KG vector
(and, for half the examples, the relation's) in the knowledge slots; greedy generation of the tail, compared with
the gold label exactly and after normalisation.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from kgpipe.lm.alignment import require_fast, tokens_for_span
from kgpipe.lm.decoder_model import KnowledgeDecoder
from kgpipe.lm.task import TrainConfig, optimise, states_below_items

ARROW = " ->"


def relation_words(relation: str) -> str:
    """A relation IRI as words: 'http://x.org/awardReceived' -> 'award received', '.../birth_place' -> 'birth
    place'."""
    from kgpipe.embed.data import relation_label

    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", relation_label(relation)).lower()


@dataclass(frozen=True)
class VerbalisedTriple:
    head: str
    relation: str
    tail: str
    prompt: str     # "Marie Curie | award received ->"
    target: str     # " Nobel Prize in Physics"
    head_span: tuple[int, int]

    @property
    def text(self) -> str:
        return self.prompt + self.target


def verbalise(triples: Iterable[tuple[str, str, str]], label_of: Mapping[str, str]) -> list[VerbalisedTriple]:
    """Each (head, relation, tail) of ids as a prompt and a target, labels from label_of (the entities table);
    triples whose head or tail has no label are left out."""
    out = []
    for head, relation, tail in triples:
        if head not in label_of or tail not in label_of:
            continue
        head_label = label_of[head]
        prompt = f"{head_label} | {relation_words(relation)}{ARROW}"
        out.append(VerbalisedTriple(head, relation, tail, prompt, " " + label_of[tail], (0, len(head_label))))
    return out


def encode_generation(tokenizer: Any, examples: Sequence[VerbalisedTriple], entity_row: Callable[[str], int],
                      relation_row: Callable[[str], int] | None = None, *, max_length: int = 48
                      ) -> list[dict[str, Any]]:
    """Token ids of prompt + target (+ end of sequence), the positions whose next token is a target token, the
    head's entity row at its mention tokens and the relation's row; examples longer than max_length are left out."""
    require_fast(tokenizer)
    eos = tokenizer.eos_token_id
    items = []
    for ex in examples:
        prompt = tokenizer(ex.prompt, return_offsets_mapping=True)
        target = tokenizer(ex.target, add_special_tokens=False)["input_ids"] + ([eos] if eos is not None else [])
        ids = list(prompt["input_ids"]) + target
        if len(ids) > max_length:
            continue
        rows = [-1] * len(ids)
        for t in tokens_for_span(prompt["offset_mapping"], *ex.head_span):
            rows[t] = entity_row(ex.head)
        n_prompt = len(prompt["input_ids"])
        items.append({"input_ids": ids, "attention_mask": [1] * len(ids), "entity_rows": rows,
                      "predict_from": list(range(n_prompt - 1, len(ids) - 1)), "targets": target,
                      "relation_row": relation_row(ex.relation) if relation_row is not None else -1})
    return items


def _mask_and_rows(items: Sequence[dict[str, Any]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention mask and entity rows of a batch, padded to its longest item."""
    width = max(len(i["input_ids"]) for i in items)
    mask = torch.tensor([i["attention_mask"] + [0] * (width - len(i["attention_mask"])) for i in items])
    rows = torch.tensor([i["entity_rows"] + [-1] * (width - len(i["entity_rows"])) for i in items])
    return mask, rows


def generation_loss(decoder: KnowledgeDecoder, items: Sequence[dict[str, Any]], states: Sequence[torch.Tensor],
                    relation_rows: torch.Tensor | None) -> torch.Tensor:
    """Mean next-token cross-entropy over the target tokens of a batch, from cached lower states."""
    mask, entity_rows = _mask_and_rows(items)
    hidden = decoder.forward_from(nn.utils.rnn.pad_sequence(list(states), batch_first=True), mask, entity_rows,
                                  relation_rows)
    rows = torch.tensor([b for b, item in enumerate(items) for _ in item["predict_from"]])
    positions = torch.tensor([p for item in items for p in item["predict_from"]])
    targets = torch.tensor([t for item in items for t in item["targets"]])
    return nn.functional.cross_entropy(decoder.stack.head(hidden[rows, positions]), targets)


def train_generation(decoder: KnowledgeDecoder, items: Sequence[dict[str, Any]], config: TrainConfig, *,
                     states: Sequence[torch.Tensor] | None = None, relation_dropout: float = 0.5,
                     progress: Callable[[int, int], None] | None = None) -> list[float]:
    """AdamW over the adapter (and LoRA); the relation slot is left empty for a `relation_dropout` share of the
    examples in every batch, so that generation from free text, where no relation is named, works too. Returns
    the mean loss per epoch."""
    torch.manual_seed(config.seed)
    dropout_rng = random.Random(config.seed + 1)
    states = list(states) if states is not None else states_below_items(decoder, items, batch_size=32)

    def batch_loss(chosen: list[int]) -> torch.Tensor:
        relations = torch.tensor([items[i]["relation_row"] if dropout_rng.random() >= relation_dropout else -1
                                  for i in chosen])
        return generation_loss(decoder, [items[i] for i in chosen], [states[i] for i in chosen],
                               relations if bool((relations >= 0).any()) else None)

    decoder.train()
    losses = optimise(decoder, len(items), config, batch_loss, progress)
    decoder.eval()
    return losses


def first_line(text: str) -> str:
    """A generated tail ends at the first line break (the model's own end-of-sequence ends it earlier)."""
    return text.split("\n", 1)[0].strip()


@dataclass
class TailAccuracy:
    examples: int
    exact: float
    normalised: float
    generated: list[str]


def tail_accuracy(decoder: KnowledgeDecoder, tokenizer: Any, examples: Sequence[VerbalisedTriple],
                  label_of: Mapping[str, str], entity_row: Callable[[str], int],
                  relation_row: Callable[[str], int] | None = None, *, knowledge: bool = True,
                  max_new_tokens: int = 16) -> TailAccuracy:
    """Greedy tail for each prompt; exact match with the tail's label, and match after kgpipe's name
    normalisation (case, punctuation, accents)."""
    from kgpipe.kg.normalize import normalize_name

    generated, exact, normal = [], 0, 0
    for ex in examples:
        enc = tokenizer(ex.prompt, return_offsets_mapping=True, return_tensors="pt")
        rows = torch.full_like(enc["input_ids"], -1)
        rows[0, tokens_for_span(enc["offset_mapping"][0].tolist(), *ex.head_span)] = entity_row(ex.head)
        relation = torch.tensor([relation_row(ex.relation)]) if relation_row is not None else None
        tokens = decoder.generate(enc["input_ids"], rows, relation, max_new_tokens=max_new_tokens,
                                  knowledge=knowledge, eos_token_id=tokenizer.eos_token_id)
        text = first_line(tokenizer.decode(tokens, skip_special_tokens=True))
        generated.append(text)
        gold = label_of[ex.tail]
        exact += text == gold
        normal += normalize_name(text) == normalize_name(gold)
    n = max(len(examples), 1)
    return TailAccuracy(len(examples), exact / n, normal / n, generated)


@dataclass
class KnowledgeUsed:
    entity_id: str
    label: str
    mention: str


@dataclass
class Continuation:
    """What `kgpipe generate` shows: the linked mentions, the knowledge that went into the slots, and the
    greedy continuation with knowledge and without (the base alone)."""

    prompt: str
    mentions: list[Any]                 # knowledge_model.LinkedMention
    knowledge: list[KnowledgeUsed]
    with_knowledge: str | None
    without_knowledge: str


def continue_text(text: str, folder: Any, find_mentions: Callable[[str], list[dict[str, Any]]], *,
                  base: str | None = None, knowledge: bool = True, max_new_tokens: int = 16,
                  chat: bool = False) -> Continuation:
    """Link the mentions of `text`, put the linked entities' vectors in the knowledge slots of the decoder saved
    in `folder`, and continue the text greedily with and without them. `chat` wraps the text in the
    tokenizer's chat template first (mention spans move with it)."""
    from pathlib import Path

    from kgpipe.lm.knowledge_model import link_text, load_linker

    decoder, tokenizer = KnowledgeDecoder.from_pretrained(Path(folder), base=base)
    linker = load_linker(Path(folder))
    mentions = link_text(text, linker, find_mentions, lambda e: e in decoder.knowledge.index)
    prompt, shift = text, 0
    if chat:
        prompt = tokenizer.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                               tokenize=False)
        shift = prompt.index(text)
    enc = tokenizer(prompt, return_offsets_mapping=True, return_tensors="pt")
    rows = torch.full_like(enc["input_ids"], -1)
    label_of = {entity: label for entity, label, _ in linker.entities}
    used: list[KnowledgeUsed] = []
    for m in mentions:
        if m.entity_id is None or m.entity_id not in decoder.knowledge.index:
            continue
        tokens = tokens_for_span(enc["offset_mapping"][0].tolist(), m.start + shift, m.end + shift)
        rows[0, tokens] = decoder.knowledge.index[m.entity_id]
        if tokens and m.entity_id not in {u.entity_id for u in used}:
            used.append(KnowledgeUsed(m.entity_id, m.label or label_of.get(m.entity_id, m.entity_id), m.text))

    def run(with_knowledge: bool) -> str:
        tokens = decoder.generate(enc["input_ids"], rows, max_new_tokens=max_new_tokens, knowledge=with_knowledge,
                                  eos_token_id=tokenizer.eos_token_id)
        return tokenizer.decode(tokens, skip_special_tokens=True)

    return Continuation(text, mentions, used[:decoder.config.max_entities] if decoder.config.mode == "prefix" else used,
                        run(True) if knowledge else None, run(False))
