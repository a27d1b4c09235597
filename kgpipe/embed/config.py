"""A training run as one frozen record: model, loss, regularizer, negative sampler, optimizer and training
loop by name (checked against PyKEEN's own resolvers), their kwargs, epochs, pinned batch size, seed, device
and early stopping; merged from kgpipe's per-model defaults and what the user set.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from kgpipe.errors import PipelineError


class ConfigError(PipelineError):
    """A training setting PyKEEN cannot use; `param` is its name in the stage's params (for the line)."""

    def __init__(self, param: str, detail: str, *, hint: str | None = None) -> None:
        self.param = param
        self.detail = detail
        super().__init__(f"params.{param}: {detail}", hint=hint)


def choices_hint(name: str, valid: Iterable[str], *, normalize: Any = str.lower) -> str:
    """'did you mean: a, b; valid: ...' (the close names first, then every valid name)."""
    valid = sorted(valid)
    close = difflib.get_close_matches(normalize(name), valid, n=4, cutoff=0.6)
    return (f"did you mean: {', '.join(close)}? " if close else "") + f"valid: {', '.join(valid)}"


# field name -> (PyKEEN resolver attribute path, what it is called in messages)
COMPONENTS = {
    "model": ("pykeen.models:model_resolver", "model"),
    "loss": ("pykeen.losses:loss_resolver", "loss"),
    "regularizer": ("pykeen.regularizers:regularizer_resolver", "regularizer"),
    "training_loop": ("pykeen.training:training_loop_resolver", "training loop"),
    "negative_sampler": ("pykeen.sampling:negative_sampler_resolver", "negative sampler"),
    "optimizer": ("pykeen.optimizers:optimizer_resolver", "optimizer"),
}
# the one training loop that takes a negative sampler; the others score against all entities
SLCWA = "slcwa"


@dataclass(frozen=True)
class EarlyStopping:
    """Stop when the validation metric has not improved by relative_delta for `patience` evaluations."""

    metric: str = "mrr"
    frequency: int = 5
    patience: int = 2
    relative_delta: float = 0.002


@dataclass(frozen=True)
class TrainingConfig:
    """Everything that decides a trained model, with names normalised by PyKEEN's resolvers."""

    model: str
    model_kwargs: Mapping[str, Any] = field(default_factory=dict)
    loss: str | None = None                 # None: the model's own default loss
    loss_kwargs: Mapping[str, Any] = field(default_factory=dict)
    regularizer: str | None = None          # None: the model's own default (if any)
    regularizer_kwargs: Mapping[str, Any] = field(default_factory=dict)
    training_loop: str = SLCWA
    training_loop_kwargs: Mapping[str, Any] = field(default_factory=dict)
    negative_sampler: str | None = "basic"
    negative_sampler_kwargs: Mapping[str, Any] = field(default_factory=dict)
    optimizer: str = "adam"
    optimizer_kwargs: Mapping[str, Any] = field(default_factory=dict)
    label_smoothing: float = 0.0
    inverse_triples: bool = False
    epochs: int = 100
    batch_size: int = 256
    seed: int = 42
    device: str = "auto"
    early_stopping: EarlyStopping | None = field(default_factory=EarlyStopping)
    evaluation_batch_size: int = 256

    @property
    def learning_rate(self) -> float | None:
        return self.optimizer_kwargs.get("lr")

    @property
    def embedding_dim(self) -> int | None:
        return self.model_kwargs.get("embedding_dim")

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (recorded in metrics.json and the saved model's config)."""
        return _plain(asdict(self))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainingConfig:
        values = dict(values)
        stopping = values.get("early_stopping")
        values["early_stopping"] = EarlyStopping(**stopping) if stopping else None
        return cls(**values)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


# --- names and kwargs through PyKEEN's resolvers -----------------------------------------------------


def resolver(component: str) -> Any:
    import importlib

    from kgpipe.embed.extensions import register

    register()  # kgpipe's own components (the onevsall loss, ...) resolve by name like PyKEEN's
    module, attribute = COMPONENTS[component][0].split(":")
    return getattr(importlib.import_module(module), attribute)


def normalize_name(component: str, name: str) -> str:
    """PyKEEN's normalised key for a name ('ComplEx' -> 'complex'); an unknown name lists the valid ones."""
    found = resolver(component)
    try:
        cls = found.lookup(name)
    except (KeyError, ValueError, TypeError):
        raise ConfigError(component, f"unknown PyKEEN {COMPONENTS[component][1]} '{name}'",
                          hint=choices_hint(name, found.lookup_dict, normalize=found.normalize)) from None
    return found.normalize_cls(cls)


def accepted_kwargs(cls: type) -> set[str] | None:
    """Keyword arguments a class's constructor accepts, following **kwargs up the MRO; None if open-ended."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        if klass is object:
            return names
        # the function found in vars() above (klass.__init__ is the same object, but mypy rejects the access)
        parameters = inspect.signature(vars(klass)["__init__"]).parameters.values()
        names |= {p.name for p in parameters
                  if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"}
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            return names
    return None


def check_kwargs(component: str, name: str, kwargs: Mapping[str, Any], *, injected: tuple[str, ...] = ()) -> None:
    """Fail on a keyword the component's constructor does not take (PyKEEN would raise a bare TypeError)."""
    cls = resolver(component).lookup(name)
    accepted = accepted_kwargs(cls)
    if accepted is None:
        return
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        usable = sorted(accepted - set(injected))
        raise ConfigError(f"{component}_kwargs", f"{cls.__name__} takes no argument(s) {', '.join(unknown)}",
                          hint=f"it takes: {', '.join(usable)}")


# arguments PyKEEN's pipeline passes itself; a user may not set them through *_kwargs
INJECTED = {
    "model": ("triples_factory", "loss", "regularizer", "random_seed"),
    "loss": (),
    "regularizer": (),
    "training_loop": ("model", "triples_factory", "optimizer", "lr_scheduler", "result_tracker",
                      "negative_sampler", "negative_sampler_kwargs"),
    "negative_sampler": ("mapped_triples", "num_entities", "num_relations"),
    "optimizer": ("params",),
}


def validate(config: TrainingConfig) -> None:
    """Check every name and kwargs before any data is read or any epoch is trained."""
    for component in COMPONENTS:
        name = getattr(config, component)
        if name is None:
            continue
        kwargs = dict(getattr(config, f"{component}_kwargs"))
        clash = sorted(set(kwargs) & set(INJECTED[component]))
        if clash:
            raise ConfigError(f"{component}_kwargs", f"{', '.join(clash)} is set by kgpipe itself",
                              hint="use the stage's own params (loss, regularizer, negative_sampler, ...)")
        check_kwargs(component, name, kwargs, injected=INJECTED[component])
    if config.negative_sampler is not None and config.training_loop != SLCWA:
        raise ConfigError("negative_sampler", f"the '{config.training_loop}' training loop scores every entity "
                          "and uses no negative sampler", hint="drop negative_sampler, or use training_loop: sLCWA")
    if config.early_stopping is not None:
        check_metric(config.early_stopping.metric)


def check_metric(metric: str) -> None:
    """PyKEEN's own parser of metric keys ('mrr', 'hits@10', 'tail.realistic.mrr'); unknown names list valid ones."""
    from pykeen.evaluation.rank_based_evaluator import RankBasedMetricResults
    from pykeen.metrics.ranking import rank_based_metric_resolver

    try:
        RankBasedMetricResults.string_or_key_to_key(metric)
    except (KeyError, ValueError, TypeError):
        close = difflib.get_close_matches(metric.lower(), sorted(rank_based_metric_resolver.lookup_dict), n=4)
        raise ConfigError("early_stopping.metric", f"unknown rank-based metric '{metric}'",
                          hint=(f"did you mean: {', '.join(close)}? " if close else "")
                          + "e.g. mrr or hits@10, optionally with side and rank type (tail.realistic.mrr); "
                          f"metrics: {', '.join(sorted(rank_based_metric_resolver.lookup_dict))}") from None
