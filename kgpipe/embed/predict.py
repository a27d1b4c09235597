"""Link prediction on a saved embed model, by entity and relation label (or id): the k most plausible tails
of (head, relation, ?) or heads of (?, relation, tail), scored by PyKEEN, with known training triples marked.

>>> from kgpipe.embed import LinkPredictor
>>> predictor = LinkPredictor.load("artifacts/embed/model")                    # doctest: +SKIP
>>> predictor.predict_tails("Marie Curie", "spouse", k=3)                       # doctest: +SKIP
             id          label     score  in_training
0  ex:Pierre_Curie  Pierre Curie  12.3     True
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from kgpipe.embed.runtime import use_workspace_pystow
from kgpipe.errors import InputError


class LinkPredictor:
    """A trained model with its id maps; build it with LinkPredictor.load(model folder)."""

    def __init__(self, model: Any, info: Any, factory: Any) -> None:
        self.model = model
        self.info = info
        self.factory = factory
        self._entities = _Names("entity", info.entity_ids, info.entity_labels)
        self._relations = _Names("relation", info.relation_ids, info.relation_labels)

    @classmethod
    def load(cls, folder: str | Path, device: str = "cpu") -> LinkPredictor:
        """The model the embed stage saved in `folder` (its `model` output)."""
        use_workspace_pystow()
        from kgpipe.embed.model_io import load_model

        return cls(*load_model(folder, device=device))

    def entity_id(self, name: str) -> str:
        """An entity's id from its id or its label (a label shared by several entities must be an id)."""
        return self._entities.resolve(name)

    def relation_id(self, name: str) -> str:
        return self._relations.resolve(name)

    def predict_tails(self, head: str, relation: str, k: int = 10, *, exclude_known: bool = False) -> Any:
        """The k best tails for (head, relation, ?): a DataFrame of id, label, score, in_training."""
        return self._predict(target="tail", first=self.entity_id(head), relation=self.relation_id(relation),
                             k=k, exclude_known=exclude_known)

    def predict_heads(self, relation: str, tail: str, k: int = 10, *, exclude_known: bool = False) -> Any:
        """The k best heads for (?, relation, tail): a DataFrame of id, label, score, in_training."""
        return self._predict(target="head", first=self.entity_id(tail), relation=self.relation_id(relation),
                             k=k, exclude_known=exclude_known)

    def _predict(self, *, target: str, first: str, relation: str, k: int, exclude_known: bool) -> Any:
        import torch
        from pykeen.predict import predict_target

        if k < 1:
            raise ValueError("k must be at least 1")
        with torch.inference_mode():
            if target == "tail":
                predictions = predict_target(model=self.model, head=first, relation=relation,
                                             triples_factory=self.factory)
            else:
                predictions = predict_target(model=self.model, relation=relation, tail=first,
                                             triples_factory=self.factory)
        with warnings.catch_warnings():  # PyKEEN builds a tensor from a read-only numpy view; harmless
            warnings.simplefilter("ignore", UserWarning)
            predictions = predictions.add_membership_columns(training=self.factory)
        frame = predictions.df
        if exclude_known:
            frame = frame[~frame["in_training"]]
        frame = frame.sort_values("score", ascending=False, kind="stable").head(k)
        ids = frame[f"{target}_label"].tolist()
        labels = [self.info.entity_labels[self.info.entity_to_id[i]] for i in ids]
        import pandas as pd

        return pd.DataFrame({"id": ids, "label": labels, "score": frame["score"].to_numpy(),
                             "in_training": frame["in_training"].to_numpy()})


class _Names:
    """id-or-label lookup for one kind of thing, with suggestions when a name is not found."""

    def __init__(self, kind: str, ids: list[str], labels: list[str]) -> None:
        self.kind = kind
        self.ids = set(ids)
        self.by_label: dict[str, list[str]] = {}
        for entity, label in zip(ids, labels, strict=True):
            self.by_label.setdefault(label, []).append(entity)
        self.folded: dict[str, list[str]] = {}
        for label, owners in self.by_label.items():
            self.folded.setdefault(label.casefold(), []).extend(owners)

    def resolve(self, name: str) -> str:
        if name in self.ids:
            return name
        owners = self.by_label.get(name) or self.folded.get(name.casefold())
        if owners and len(owners) == 1:
            return owners[0]
        if owners:
            raise InputError(f"{self.kind} label '{name}' is shared by {len(owners)} {self.kind}s",
                             hint=f"give one of their ids: {', '.join(sorted(owners)[:10])}")
        from kgpipe.lookup import UnknownNameError

        raise UnknownNameError(self.kind, name, self.by_label)
