"""kgpipe's default training settings per PyKEEN model, chosen so that naming only the model gets close to
published link-prediction quality (PyKEEN's own defaults are far below it on realistic graphs).

How they were chosen, and what they reach on CoDEx-S, is in docs/benchmarks.md (tuned on CoDEx-S train,
with a held-out slice of train for early stopping; valid only for the final check). Models not listed
here get GENERIC settings plus PyKEEN's model defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from kgpipe.embed.config import EarlyStopping, TrainingConfig, normalize_name, resolver

# For any model: sLCWA with a few negatives per positive, Adam, early stopping on validation MRR.
GENERIC: dict[str, Any] = {
    "training_loop": "slcwa",
    "negative_sampler": "basic",
    "negative_sampler_kwargs": {"num_negs_per_pos": 16},
    "optimizer": "adam",
    "optimizer_kwargs": {"lr": 1e-3},
    "epochs": 200,
    "batch_size": 256,
    "early_stopping": EarlyStopping(frequency=10, patience=2),
}

# PyKEEN's own pipeline() defaults (no loss given: PyKEEN's default loss, not the model's), for comparisons.
PYKEEN: dict[str, Any] = {
    "training_loop": "slcwa",
    "negative_sampler": "basic",
    "optimizer": "adam",
    "epochs": 5,
    "batch_size": 256,
    "early_stopping": None,
}

XAVIER = {"entity_initializer": "xavier_normal_", "relation_initializer": "xavier_normal_"}
# sLCWA as in the CoDEx paper's TransE: reciprocal relations, tail corruption only, a softmax (cross-entropy)
# over each positive and its negatives
SAMPLED: dict[str, Any] = {
    "inverse_triples": True,
    "training_loop": "slcwa",
    "negative_sampler": "basic",
    "negative_sampler_kwargs": {"num_negs_per_pos": 32, "corruption_scheme": ["tail"]},
    "loss": "crossentropy",
    "batch_size": 512,
}

# Keys are PyKEEN's normalised model names (model_resolver.normalize).
MODEL_DEFAULTS: dict[str, dict[str, Any]] = {
    # 1-N scoring (PyKEEN's LCWA: every tail of a head and relation at once) with a cross-entropy over all
    # entities per training triple (kgpipe's `onevsall`, as kbc's and LibKGE's 1vsAll), reciprocal relations
    # (inverse triples) so that head prediction is tail prediction on the inverse relation, kbc's small
    # N(0, 0.001^2) init (PyKEEN's N(0,1) at this dim diverges), N3 regularisation, Adagrad.
    "complex": {
        "model_kwargs": {"embedding_dim": 512, "entity_initializer": "small_normal_",
                         "relation_initializer": "small_normal_"},
        "inverse_triples": True,
        "training_loop": "lcwa",
        "negative_sampler": None,
        "loss": "onevsall",
        "regularizer": "powersum",
        "regularizer_kwargs": {"p": 3.0, "weight": 0.2},
        "optimizer": "adagrad",
        "optimizer_kwargs": {"lr": 0.1},
        "batch_size": 1000,
        "epochs": 60,
        "early_stopping": EarlyStopping(frequency=5, patience=3),
    },
    # Negative sampling with a softmax over the positive and its negatives (cross-entropy), L2 distance,
    # no unit-norm constraint, reciprocal relations with tail corruption.
    "transe": {
        "model_kwargs": {"embedding_dim": 256, "scoring_fct_norm": 2, "entity_constrainer": None, **XAVIER},
        **SAMPLED,
        "optimizer": "adagrad",
        "optimizer_kwargs": {"lr": 0.04},
        # 24 epochs (about 12 s of CPU each here) keep a run inside 15 minutes on a busy 2-core machine
        "epochs": 24,
        "early_stopping": EarlyStopping(frequency=3, patience=2),
    },
    # As TransE (1-N scoring in PyKEEN materialises batch x entities x dim for DistMult, too slow on CPU),
    # with weighted N3 (the regulariser sees only the sampled triples' vectors).
    "distmult": {
        "model_kwargs": {"embedding_dim": 256, **XAVIER},
        **SAMPLED,
        "regularizer": "powersum",
        "regularizer_kwargs": {"p": 3.0, "weight": 0.001},
        "optimizer": "adagrad",
        "optimizer_kwargs": {"lr": 0.1},
        "epochs": 30,
        "early_stopping": EarlyStopping(frequency=3, patience=2),
    },
    # As TransE, in the complex plane (PyKEEN's phase initialisation and unit-modulus relations kept).
    "rotate": {
        "model_kwargs": {"embedding_dim": 128},
        **SAMPLED,
        "optimizer": "adagrad",
        "optimizer_kwargs": {"lr": 0.04},
        "epochs": 30,
        "early_stopping": EarlyStopping(frequency=3, patience=2),
    },
}


def training_config(model: str, overrides: Mapping[str, Any] | None = None,
                    defaults: str = "kgpipe") -> tuple[TrainingConfig, str]:
    """The config for `model`: its kgpipe defaults (or PyKEEN's, defaults="pykeen"), with every value the
    user set taking precedence.

    overrides may hold any TrainingConfig field plus embedding_dim and learning_rate; early_stopping may
    be False (off), True (the defaults) or a mapping of EarlyStopping fields. A changed component name
    (loss, optimizer, ...) drops the default's kwargs for the old one. Returns the config and a note
    saying which defaults were used.
    """
    overrides = dict(overrides or {})
    user_set = set(overrides)
    key = normalize_name("model", model)
    if defaults == "pykeen":
        table, base = None, PYKEEN
        source = "PyKEEN's pipeline defaults"
    else:
        table, base = MODEL_DEFAULTS.get(key), GENERIC
        source = f"kgpipe defaults for {key}" if table else "kgpipe generic defaults (no tuned entry for this model)"
    values: dict[str, Any] = {**base, **(table or {})}

    default_loop = values.get("training_loop")
    for component in ("loss", "regularizer", "training_loop", "negative_sampler", "optimizer"):
        if component not in overrides:
            continue
        name = overrides.pop(component)
        name = None if name is None else normalize_name(component, name)
        if name != values.get(component):
            values[f"{component}_kwargs"] = {}
        values[component] = name
    if values.get("training_loop") != default_loop and "negative_sampler" not in user_set:
        # a different loop needs (or cannot use) a negative sampler: take the base one, or none
        sampling = values["training_loop"] == "slcwa"
        values["negative_sampler"] = base["negative_sampler"] if sampling else None
        values["negative_sampler_kwargs"] = dict(base.get("negative_sampler_kwargs", {})) if sampling else {}

    for component in ("model", "loss", "regularizer", "training_loop", "negative_sampler", "optimizer"):
        name = f"{component}_kwargs"
        values[name] = {**values.get(name, {}), **(overrides.pop(name, None) or {})}
    if overrides.get("embedding_dim") is not None:
        values["model_kwargs"]["embedding_dim"] = overrides.pop("embedding_dim")
    if overrides.get("learning_rate") is not None:
        values["optimizer_kwargs"]["lr"] = overrides.pop("learning_rate")
    overrides.pop("embedding_dim", None)
    overrides.pop("learning_rate", None)

    stopping = overrides.pop("early_stopping", values.get("early_stopping") is not None)
    if stopping is False or stopping is None:
        values["early_stopping"] = None
    elif isinstance(stopping, Mapping):
        values["early_stopping"] = replace(values.get("early_stopping") or GENERIC["early_stopping"],
                                           **{k: v for k, v in stopping.items() if v is not None})
    elif values.get("early_stopping") is None:  # True: on, with the generic settings if the base has none
        values["early_stopping"] = GENERIC["early_stopping"]
    values.update({k: v for k, v in overrides.items() if v is not None})

    if values.get("loss") is None and defaults != "pykeen":
        # make the model's own default loss explicit (PyKEEN's pipeline would use its global default)
        model_cls = resolver("model").lookup(key)
        values["loss"] = resolver("loss").normalize_cls(model_cls.loss_default)
        values["loss_kwargs"] = {**dict(model_cls.loss_default_kwargs or {}), **values.get("loss_kwargs", {})}
    return TrainingConfig(model=key, **{k: v for k, v in values.items() if k != "model"}), source
