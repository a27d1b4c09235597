"""Link prediction on a saved embed model, by entity and relation label (or id): the k most plausible tails
of (head, relation, ?) or heads of (?, relation, tail), scored by PyKEEN, with known training triples marked.
Given the vectors stage's table, an entity the model never trained is scored from its inductive vector by the
model's own interaction function; such answers carry inductive_query = True and a note in frame.attrs.

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
from kgpipe.export.embeddings import Embeddings


class LinkPredictor:
    """A trained model with its id maps; build it with LinkPredictor.load(model folder)."""

    def __init__(self, model: Any, info: Any, factory: Any) -> None:
        self.model = model
        self.info = info
        self.factory = factory
        self._entities = _Names("entity", info.entity_ids, info.entity_labels)
        self._relations = _Names("relation", info.relation_ids, info.relation_labels)
        self.vectors: Embeddings | None = None

    @classmethod
    def load(cls, folder: str | Path, device: str = "cpu", *,
             vectors: str | Path | Embeddings | None = None) -> LinkPredictor:
        """The model the embed stage saved in `folder` (its `model` output); with `vectors` (the vectors
        stage's entity_vectors.parquet), entities the model never trained are answered from their vectors."""
        use_workspace_pystow()
        from kgpipe.embed.model_io import load_model

        predictor = cls(*load_model(folder, device=device))
        if vectors is not None:
            predictor.use_vectors(vectors)
        return predictor

    def use_vectors(self, vectors: str | Path | Embeddings) -> LinkPredictor:
        """Take the vectors stage's table for the entities the model has no row for. Its trained rows must be
        this model's own (the same values), so that an inductive vector lives in the same space."""
        import numpy as np

        from kgpipe.embed.export import representation_matrix
        from kgpipe.errors import ArtifactError
        from kgpipe.export.embeddings import load_embeddings

        table = vectors if isinstance(vectors, Embeddings) else load_embeddings(vectors)
        where = "the vectors table" if isinstance(vectors, Embeddings) else str(vectors)
        if "layout" not in table.metadata:
            raise ArtifactError(f"{where}: no vector layout in its metadata",
                                hint="give the vectors stage's entity_vectors.parquet")
        own = representation_matrix(self.model.entity_representations[0]).values
        rows = [i for i, entity in enumerate(table.ids) if entity in self.info.entity_to_id]
        model_rows = [self.info.entity_to_id[table.ids[i]] for i in rows]
        if table.dim != own.shape[1] or not rows or not np.array_equal(table.vectors[rows], own[model_rows]):
            raise ArtifactError(f"{where}: its trained rows are not this model's vectors",
                                hint="give the entity_vectors.parquet made from this model's embed run")
        self.vectors = table
        return self

    def is_inductive(self, name: str) -> bool:
        """True for an entity the model has no row for but the vectors table has a (predicted) vector for."""
        return self._inductive_row(name) is not None

    def _inductive_row(self, name: str) -> int | None:
        from kgpipe.lookup import UnknownNameError

        if self.vectors is None or self.vectors.inductive is None:
            return None
        try:
            self._entities.resolve(name)
            return None
        except UnknownNameError:
            pass
        try:
            row = self.vectors.row(name)
        except KeyError:
            return None
        return row if self.vectors.inductive[row] else None

    def entity_id(self, name: str) -> str:
        """An entity's id from its id or its label (a label shared by several entities must be an id)."""
        return self._entities.resolve(name)

    def relation_id(self, name: str) -> str:
        return self._relations.resolve(name)

    def predict_tails(self, head: str, relation: str, k: int = 10, *, exclude_known: bool = False) -> Any:
        """The k best tails for (head, relation, ?): a DataFrame of id, label, score, in_training (plus
        inductive_query where the head's vector is inductive)."""
        row = self._inductive_row(head)
        if row is not None:
            return self._predict_from_vector(row, target="tail", relation=self.relation_id(relation), k=k)
        return self._predict(target="tail", first=self.entity_id(head), relation=self.relation_id(relation),
                             k=k, exclude_known=exclude_known)

    def predict_heads(self, relation: str, tail: str, k: int = 10, *, exclude_known: bool = False) -> Any:
        """The k best heads for (?, relation, tail): a DataFrame of id, label, score, in_training (plus
        inductive_query where the tail's vector is inductive)."""
        row = self._inductive_row(tail)
        if row is not None:
            return self._predict_from_vector(row, target="head", relation=self.relation_id(relation), k=k)
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


    def score_with_vector(self, vector: Any, relation: str, target: str) -> Any:
        """Scores of every model entity as the tail (target "tail": vector is the head) or the head (target
        "head": vector is the tail) of relation, by the model's own interaction; a 1-d float tensor."""
        import json

        import torch

        from kgpipe.embed.export import complex_from_real

        if self.vectors is None:
            raise InputError("no vectors table: call use_vectors() (the vectors stage's entity_vectors.parquet)")
        model = self.model
        if len(model.entity_representations) != 1:
            raise InputError(f"{self.info.model} has {len(model.entity_representations)} entity representations; "
                             "an inductive vector stands for one", hint="use a model with one (ComplEx, TransE)")
        layout = json.loads(self.vectors.metadata["layout"])
        values = complex_from_real(vector.reshape(1, -1), layout).reshape(1, *layout["shape"])
        query = torch.as_tensor(values).to(model.device)
        relation_index = self.info.relation_to_id[relation]
        with torch.inference_mode():
            if target == "tail" or model.use_inverse_triples:
                # (?, r, t) is (t, r_inverse, ?) for a model trained with reciprocal relations, as PyKEEN's predict_h
                batch = torch.tensor([[0, relation_index]], device=model.device)
                batch = model.relation_inverter.map(batch=batch, index=1, invert=target == "head")
                _, r, entities = model._get_representations(h=batch[:, 0], r=batch[:, 1], t=None, mode=None)
                scores = model.interaction.score_t(h=query, r=r, all_entities=entities)
            else:
                batch = torch.tensor([[relation_index, 0]], device=model.device)
                batch = model.relation_inverter.map(batch=batch, index=0, invert=False)
                entities, r, _ = model._get_representations(h=None, r=batch[:, 0], t=batch[:, 1], mode=None)
                scores = model.interaction.score_h(all_entities=entities, r=r, t=query)
            if model.predict_with_sigmoid:
                scores = torch.sigmoid(scores)
        return scores[0].cpu()

    def _predict_from_vector(self, row: int, *, target: str, relation: str, k: int) -> Any:
        import pandas as pd
        import torch

        if k < 1:
            raise ValueError("k must be at least 1")
        assert self.vectors is not None  # _inductive_row found the row in it
        scores = self.score_with_vector(self.vectors.vectors[row], relation, target)
        order = torch.argsort(-scores, stable=True)[:k].tolist()
        frame = pd.DataFrame({"id": [self.info.entity_ids[i] for i in order],
                              "label": [self.info.entity_labels[i] for i in order],
                              "score": scores[order].numpy(), "in_training": False, "inductive_query": True})
        side = "head" if target == "tail" else "tail"
        frame.attrs["note"] = (f"the {side} {self.vectors.ids[row]} occurs in no training triple: its vector is "
                               "inductive (predicted from its text by the vectors stage), not trained")
        return frame


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
