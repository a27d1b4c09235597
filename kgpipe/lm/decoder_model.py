"""KnowledgeDecoder: a LLaMA-family causal LM that reads KG vectors, the decoder counterpart of
KnowledgeEnhancedEncoder.

mode "prefix" (knowledge prefix tokens, after KoPA, placed as in prefix-tuning): the linked entities' KG vectors
(and a relation's, where the task names one) pass through a trained adapter that gives each of the top
`prefix_layers` layers extra key/value states, one per knowledge slot, which every token attends to. The layers
below never see them, so with the LM frozen their output is computed once per example (`states_below`) and only the
top layers run while the adapter trains. Optional LoRA on those top layers goes through peft.
mode "align" (E-BERT for decoders): the closed-form map from the KG space into the input-embedding space, added at
linked mention tokens.

The base runs through its own modules (embedding, layers, norm, rotary embedding, lm_head); kgpipe only orders
the layer calls, so that a layer range can start from cached states and the top layers can find the prefix in
their key/value cache (a transformers DynamicCache).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import nn

from kgpipe.errors import InputError, KgpipeError
from kgpipe.lm.decoders import PACKAGED, DecoderBase, load_decoder, resolve_decoder
from kgpipe.lm.knowledge import KnowledgeTable, Storage
from kgpipe.lm.projection import LinearMap

if TYPE_CHECKING:
    from transformers import PreTrainedModel

CONFIG_FILE = "kgpipe_decoder.json"
WEIGHTS_FILE = "knowledge.safetensors"
ENTITIES_FILE = "entities.json"
RELATIONS_FILE = "relations.json"
LORA_TARGETS = ("q_proj", "v_proj")


@dataclass
class DecoderInjectionConfig:
    mode: Literal["prefix", "align"]
    base_model: str | None = None         # a packaged name (decoders.PACKAGED); None: given when loading
    base: dict[str, str | None] = field(default_factory=dict)  # DecoderBase.describe(): package, file, sha256
    prefix_layers: int = 4                # prefix: how many top layers get knowledge slots
    max_entities: int = 4                 # prefix: entity slots per example (linked entities in text order)
    adapter_hidden: int = 256
    lora_rank: int = 0                    # > 0: LoRA (rank) on the top layers' q_proj and v_proj
    lora_alpha: int = 16
    combine: Literal["add", "replace"] = "add"   # align: add to or replace the mention's input embeddings
    storage: Storage = "float32"
    kg_dim: int = 0
    relation_dim: int = 0
    hidden_size: int = 0
    n_layers: int = 0
    embedding_artifact: str | None = None
    embedding_sha256: str | None = None


class DecoderStack:
    """The modules of a LLaMA-family decoder (`model.model`: embed_tokens, layers, norm, rotary_emb; lm_head),
    run layer range by layer range with an explicit additive attention mask."""

    def __init__(self, model: PreTrainedModel) -> None:
        inner: Any = getattr(model, "model", None)
        missing = [name for name in ("embed_tokens", "layers", "norm", "rotary_emb") if not hasattr(inner, name)]
        if missing or not hasattr(model, "lm_head"):
            raise KgpipeError(f"{type(model).__name__} is not a LLaMA-family decoder (its model lacks "
                              f"{', '.join(missing) or 'lm_head'})",
                              hint="decoder injection supports LLaMA, Mistral, Qwen2 and models built like them")
        self.model = model
        self.inner: Any = inner
        self.layers: nn.ModuleList = self.inner.layers

    def __len__(self) -> int:
        return len(self.layers)

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.inner.embed_tokens(input_ids)

    def run(self, hidden: torch.Tensor, start: int, stop: int, *, bias: torch.Tensor, past: int = 0,
            cache: Any = None) -> torch.Tensor:
        """Layers [start, stop) on hidden [B, T, H] at positions past..past+T-1; `bias` [B, 1, T, keys] is the
        additive attention mask over the keys each layer sees (its cache, then the T tokens)."""
        positions = torch.arange(past, past + hidden.shape[1], device=hidden.device).unsqueeze(0)
        rotary = self.inner.rotary_emb(hidden, position_ids=positions)
        for layer in self.layers[start:stop]:
            hidden = layer(hidden, attention_mask=bias.to(hidden.dtype), position_ids=positions,
                           position_embeddings=rotary, cache=cache, use_cache=cache is not None)
        return hidden

    def head(self, hidden: torch.Tensor) -> torch.Tensor:
        """Next-token logits from the last layer's states (after the final norm)."""
        return self.model.lm_head(hidden)


def attention_bias(attention_mask: torch.Tensor, *, past: int = 0, prefix_mask: torch.Tensor | None = None
                   ) -> torch.Tensor:
    """[B, 1, T, P + past + T] additive mask: each token sees the knowledge slots that are present (prefix_mask
    [B, P]), every cached earlier token, and itself and the real tokens before it (attention_mask [B, T])."""
    batch, length = attention_mask.shape
    steps = torch.arange(length)
    causal = steps.unsqueeze(0) <= steps.unsqueeze(1)                           # [T, T]: key <= query
    allowed = causal.unsqueeze(0) & attention_mask.bool().unsqueeze(1)           # [B, T, T]
    parts = [torch.ones(batch, length, past, dtype=torch.bool), allowed]
    if prefix_mask is not None:
        parts.insert(0, prefix_mask.bool().unsqueeze(1).expand(batch, length, prefix_mask.shape[1]))
    keep = torch.cat(parts, dim=-1).unsqueeze(1)
    return torch.zeros(keep.shape).masked_fill(~keep, torch.finfo(torch.float32).min)


class KnowledgePrefix(nn.Module):
    """KG vectors -> one key and one value state per knowledge slot in each of the top layers.

    Slot i < max_entities holds the example's i-th linked entity, the last slot the relation; each slot's input
    is its (layer-normalised) vector through its kind's projection plus a learned embedding of the slot, then
    tanh and one linear map to every layer's keys and values (prefix-tuning's reparametrisation)."""

    def __init__(self, config: DecoderInjectionConfig, kv_heads: int, head_dim: int) -> None:
        super().__init__()
        self.layers, self.kv_heads, self.head_dim = config.prefix_layers, kv_heads, head_dim
        self.max_entities = config.max_entities
        hidden = config.adapter_hidden
        self.entity_norm = nn.LayerNorm(config.kg_dim, elementwise_affine=False)
        self.entity_in = nn.Linear(config.kg_dim, hidden)
        self.relation_norm = nn.LayerNorm(config.relation_dim, elementwise_affine=False) if config.relation_dim \
            else None
        self.relation_in = nn.Linear(config.relation_dim, hidden) if config.relation_dim else None
        self.slots = nn.Embedding(config.max_entities + 1, hidden)
        self.out = nn.Linear(hidden, self.layers * 2 * kv_heads * head_dim)
        # zero keys and values at first: the slots then take almost no attention and add nothing, so training
        # starts from the frozen LM's own behaviour (random slots would disturb every layer's states at once)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, entities: torch.Tensor, entity_mask: torch.Tensor, relations: torch.Tensor | None = None,
                relation_mask: torch.Tensor | None = None) -> tuple[list[tuple[torch.Tensor, torch.Tensor]],
                                                                     torch.Tensor]:
        """entities [B, E, kg_dim] with entity_mask [B, E]; relations [B, relation_dim] with relation_mask [B].
        Returns per top layer (keys, values) [B, kv_heads, S, head_dim], and the slot mask [B, S]."""
        slots = torch.arange(entities.shape[1])
        inputs = [self.entity_in(self.entity_norm(entities)) + self.slots(slots)]
        masks = [entity_mask]
        if relations is not None and relation_mask is not None:
            if self.relation_in is None or self.relation_norm is None:
                raise KgpipeError("this knowledge decoder was built without relation vectors",
                                  hint="build it with a relation table to give relation slots")
            relation_slot = self.slots(torch.tensor(self.max_entities))
            inputs.append((self.relation_in(self.relation_norm(relations)) + relation_slot).unsqueeze(1))
            masks.append(relation_mask.unsqueeze(1))
        states = self.out(torch.tanh(torch.cat(inputs, dim=1)))                 # [B, S, L * 2 * kv * hd]
        batch, n_slots = states.shape[:2]
        states = states.view(batch, n_slots, self.layers, 2, self.kv_heads, self.head_dim)
        states = states.permute(2, 3, 0, 4, 1, 5)                               # [L, 2, B, kv, S, hd]
        return [(states[i, 0], states[i, 1]) for i in range(self.layers)], torch.cat(masks, dim=1).float()


@dataclass
class DecoderOutput:
    last_hidden_state: torch.Tensor   # after the final norm, as the base's own forward gives it


class KnowledgeDecoder(nn.Module):
    """forward(input_ids, attention_mask, entity_rows=[B, T] (-1: none), relation_rows=[B] (-1: none)) ->
    DecoderOutput; `logits` and `generate` for text. The base stays frozen (LoRA weights excepted)."""

    def __init__(self, base: PreTrainedModel, knowledge: KnowledgeTable, config: DecoderInjectionConfig, *,
                 relations: KnowledgeTable | None = None, linear_map: LinearMap | None = None) -> None:
        super().__init__()
        self.base = base
        self.stack = DecoderStack(base)
        self.knowledge = knowledge
        self.relations = relations
        self.config = config
        base_config = base.config
        config.kg_dim, config.hidden_size, config.n_layers = knowledge.dim, base_config.hidden_size, len(self.stack)
        config.relation_dim = relations.dim if relations is not None else 0
        config.storage = knowledge.storage
        self.base.requires_grad_(False)
        if config.mode == "prefix":
            if not 1 <= config.prefix_layers <= len(self.stack):
                raise KgpipeError(f"prefix_layers {config.prefix_layers} is outside 1..{len(self.stack)}",
                                  hint=f"the base has {len(self.stack)} layers; the issue's default is 2-4")
            head_dim = getattr(base_config, "head_dim", None) or base_config.hidden_size // \
                base_config.num_attention_heads
            self.prefix = KnowledgePrefix(config, base_config.num_key_value_heads, head_dim)
            if config.lora_rank:
                self._add_lora()
        elif config.mode == "align":
            self.projection = nn.Linear(knowledge.dim, config.hidden_size)
            self.projection.requires_grad_(False)  # closed-form, not trained
            if linear_map is not None:
                with torch.no_grad():
                    self.projection.weight.copy_(linear_map.weight.T)
                    self.projection.bias.copy_(linear_map.bias)
        else:
            raise KgpipeError(f"unknown decoder injection mode '{config.mode}'", hint="use 'prefix' or 'align'")

    def _add_lora(self) -> None:
        from peft import LoraConfig, inject_adapter_in_model

        top = list(range(len(self.stack) - self.config.prefix_layers, len(self.stack)))
        lora = LoraConfig(r=self.config.lora_rank, lora_alpha=self.config.lora_alpha, lora_dropout=0.0,
                          target_modules=list(LORA_TARGETS), layers_to_transform=top)
        inject_adapter_in_model(lora, self.base)
        for name, parameter in self.base.named_parameters():
            parameter.requires_grad_("lora_" in name)

    def train(self, mode: bool = True) -> KnowledgeDecoder:
        super().train(mode)
        self.base.eval()  # the LM is frozen: no dropout in it either
        return self

    @property
    def resume_layer(self) -> int | None:
        """The first layer that knowledge changes (prefix mode); the states entering it can be cached."""
        return len(self.stack) - self.config.prefix_layers if self.config.mode == "prefix" else None

    # --- knowledge slots ------------------------------------------------------------------------------------

    def _slots(self, entity_rows: torch.Tensor | None, relation_rows: torch.Tensor | None, batch: int
               ) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], torch.Tensor] | None:
        """Prefix keys/values and slot mask for a batch: each example's distinct linked entities in text order
        (at most max_entities), and its relation when relation_rows names one; None when nothing is linked."""
        limit = self.config.max_entities
        rows = torch.full((batch, limit), -1, dtype=torch.long)
        if entity_rows is not None:
            for b in range(batch):
                seen: list[int] = []
                for row in entity_rows[b].tolist():
                    if row >= 0 and row not in seen:
                        seen.append(row)
                rows[b, :min(len(seen), limit)] = torch.tensor(seen[:limit], dtype=torch.long)
        has_relation = relation_rows is not None and bool((relation_rows >= 0).any())
        if not bool((rows >= 0).any()) and not has_relation:
            return None
        entities = self.knowledge.lookup(rows.clamp_min(0))
        relations = relation_mask = None
        if has_relation and relation_rows is not None:
            if self.relations is None:
                raise KgpipeError("relation rows were given, but this knowledge decoder has no relation table")
            relations = self.relations.lookup(relation_rows.clamp_min(0))
            relation_mask = relation_rows >= 0
        return self.prefix(entities, rows >= 0, relations, relation_mask)

    def _prefilled_cache(self, slots: tuple[list[tuple[torch.Tensor, torch.Tensor]], torch.Tensor] | None) -> Any:
        """A DynamicCache whose top layers start with the knowledge slots' keys and values."""
        from transformers import DynamicCache

        cache = DynamicCache(config=self.base.config)
        if slots is not None:
            start = self.resume_layer or 0
            layers: list[Any] = cache.layers  # DynamicLayer for every layer of a LLaMA-family config
            for offset, (keys, values) in enumerate(slots[0]):
                layers[start + offset].update(keys, values)
        return cache

    # --- forward --------------------------------------------------------------------------------------------

    def _input_states(self, input_ids: torch.Tensor, entity_rows: torch.Tensor | None) -> torch.Tensor:
        embeds = self.stack.embed(input_ids)
        if self.config.mode == "align" and entity_rows is not None and bool((entity_rows >= 0).any()):
            mask = (entity_rows >= 0).unsqueeze(-1)
            mapped = self.projection(self.knowledge.lookup(entity_rows.clamp_min(0)))
            embeds = (torch.where(mask, mapped, embeds) if self.config.combine == "replace"
                      else embeds + mapped * mask.to(embeds.dtype))
        return embeds

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                entity_rows: torch.Tensor | None = None, relation_rows: torch.Tensor | None = None,
                **kwargs: Any) -> DecoderOutput:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        hidden = self._input_states(input_ids, entity_rows)
        start = self.resume_layer
        if start is None:
            hidden = self.stack.run(hidden, 0, len(self.stack), bias=attention_bias(attention_mask))
            return DecoderOutput(self.stack.inner.norm(hidden))
        hidden = self.stack.run(hidden, 0, start, bias=attention_bias(attention_mask))
        return DecoderOutput(self.forward_from(hidden, attention_mask, entity_rows, relation_rows))

    @torch.no_grad()
    def states_below(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The states entering the first knowledge layer [B, T, H]: they do not depend on knowledge."""
        start = self.resume_layer
        if start is None:
            raise KgpipeError("states_below needs prefix mode (align changes the input embeddings)")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        return self.stack.run(self.stack.embed(input_ids), 0, start, bias=attention_bias(attention_mask))

    def forward_from(self, states: torch.Tensor, attention_mask: torch.Tensor | None,
                     entity_rows: torch.Tensor | None, relation_rows: torch.Tensor | None = None) -> torch.Tensor:
        """The last hidden state (after the final norm) for inputs whose `states_below` are `states`."""
        start = self.resume_layer
        if start is None:
            raise KgpipeError("forward_from needs prefix mode")
        if attention_mask is None:
            attention_mask = torch.ones(states.shape[:2], dtype=torch.long)
        slots = self._slots(entity_rows, relation_rows, states.shape[0])
        cache = self._prefilled_cache(slots)
        bias = attention_bias(attention_mask, prefix_mask=slots[1] if slots is not None else None)
        hidden = self.stack.run(states, start, len(self.stack), bias=bias, cache=cache)
        return self.stack.inner.norm(hidden)

    def logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
               entity_rows: torch.Tensor | None = None, relation_rows: torch.Tensor | None = None) -> torch.Tensor:
        return self.stack.head(self(input_ids, attention_mask, entity_rows, relation_rows).last_hidden_state)

    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, entity_rows: torch.Tensor | None = None,
                 relation_rows: torch.Tensor | None = None, *, max_new_tokens: int = 16, knowledge: bool = True,
                 eos_token_id: int | None = None) -> list[int]:
        """Greedy continuation of one prompt ([1, T] ids), with a key/value cache: the knowledge slots sit at
        the front of the top layers' caches; knowledge=False is the base alone."""
        if input_ids.shape[0] != 1:
            raise ValueError("generate takes one prompt at a time")
        if not knowledge:
            entity_rows = relation_rows = None
        start = self.resume_layer
        if start is None:  # align: no knowledge layers, the whole stack at once
            start = len(self.stack)
        slots = self._slots(entity_rows, relation_rows, 1) if self.config.mode == "prefix" else None
        cache = self._prefilled_cache(slots)
        prefix_mask = slots[1] if slots is not None else None
        hidden = self._input_states(input_ids, entity_rows if knowledge else None)
        past, produced = 0, []
        for _ in range(max_new_tokens):
            ones = torch.ones(hidden.shape[:2], dtype=torch.long)
            below = self.stack.run(hidden, 0, start, bias=attention_bias(ones, past=past), past=past, cache=cache)
            above = self.stack.run(below, start, len(self.stack), past=past, cache=cache,
                                   bias=attention_bias(ones, past=past, prefix_mask=prefix_mask))
            token = int(self.stack.head(self.stack.inner.norm(above[:, -1])).argmax(-1))
            past += hidden.shape[1]
            if token == eos_token_id:
                break
            produced.append(token)
            hidden = self.stack.embed(torch.tensor([[token]]))
        return produced

    # --- persistence ------------------------------------------------------------------------------------------

    def save_pretrained(self, folder: str | Path, base: DecoderBase | None = None) -> Path:
        """Config JSON, knowledge weights (adapter or map, entity and relation tables, LoRA) in safetensors, and
        the table ids; the base is named by package, file and sha256, never copied and never by local path."""
        from kgpipe.atomic import atomic_write_text
        from kgpipe.tensorfile import write_torch

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if base is not None:
            self.config.base = base.describe()
            self.config.base_model = next((name for name, (pip_name, _, _) in PACKAGED.items()
                                           if pip_name == base.package), None)
        weights = {k: v for k, v in self.state_dict().items() if not k.startswith("base.") or "lora_" in k}
        write_torch(folder / WEIGHTS_FILE, weights)
        atomic_write_text(folder / ENTITIES_FILE, json.dumps(self.knowledge.ids))
        if self.relations is not None:
            atomic_write_text(folder / RELATIONS_FILE, json.dumps(self.relations.ids))
        atomic_write_text(folder / CONFIG_FILE, json.dumps(asdict(self.config), indent=2) + "\n")
        return folder

    @classmethod
    def from_pretrained(cls, folder: str | Path, base: str | None = None) -> tuple[KnowledgeDecoder, Any]:
        """The saved model and its base's tokenizer. A packaged base is found by its name; any other base is
        given as `base` (a folder or .gguf file), and a GGUF base must have the recorded sha256."""
        from safetensors.torch import load_file

        folder = Path(folder)
        if not (folder / CONFIG_FILE).is_file():
            encoder = (folder / "kgpipe_encoder.json").is_file()
            raise InputError(f"{folder}: not a kgpipe knowledge decoder folder (no {CONFIG_FILE})",
                             hint="it holds an encoder's knowledge model; a decoder's comes from an inject stage with "
                             "base_model: smollm2 (or another decoder)" if encoder else
                             "give the model folder an inject stage wrote for a decoder base")
        config = DecoderInjectionConfig(**json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8")))
        source = config.base_model or base  # a packaged base is found by its name; any other must be given
        if source is None:
            raise InputError(f"{folder}: its base ({config.base.get('file')}) is not a packaged model",
                             hint="pass the base model's folder or .gguf file (base=...)")
        located = resolve_decoder(source)
        recorded = config.base.get("sha256")
        if recorded and located.gguf_file and located.describe()["sha256"] != recorded:
            raise InputError(f"{located.folder / located.gguf_file}: not the base this model was trained on "
                             f"(sha256 differs from {recorded[:12]}...)",
                             hint=f"use the base file {config.base.get('file')} it names")
        model, tokenizer = load_decoder(located)
        ids = json.loads((folder / ENTITIES_FILE).read_text(encoding="utf-8"))
        knowledge = KnowledgeTable(ids, torch.zeros(len(ids), config.kg_dim), config.storage)
        relations = None
        if (folder / RELATIONS_FILE).is_file():
            relation_ids = json.loads((folder / RELATIONS_FILE).read_text(encoding="utf-8"))
            relations = KnowledgeTable(relation_ids, torch.zeros(len(relation_ids), config.relation_dim),
                                       config.storage)
        decoder = cls(model, knowledge, config, relations=relations)
        missing, unexpected = decoder.load_state_dict(load_file(str(folder / WEIGHTS_FILE)), strict=False)
        missing = [k for k in missing if not k.startswith("base.") or "lora_" in k]
        if missing or unexpected:
            raise InputError(f"{folder / WEIGHTS_FILE}: weights do not match the config "
                             f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
        return decoder.eval(), tokenizer
