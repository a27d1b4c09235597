"""Shared by the relation model's tests: CoNLL04-style sentences whose relation a keyword decides (the tiny
encoder they train on is tests/tiny_encoder.py).
"""

from __future__ import annotations

from pathlib import Path

from kgpipe.lm.relation_train import RelTrainOptions
from tests.tiny_encoder import write_jsonl as write  # noqa: F401  (the relation tests import it from here)

PEOPLE = ["Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Frances", "John", "Niklaus", "Tony", "Radia",
          "Leslie"]
ORGS = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay"]


def sentence(person: str, verb: str, org: str, related: bool, filler: int = 0) -> dict:
    """'<person> <verb> <org> .' with a Work_For relation from the person to the org iff `related`."""
    tokens = [person, verb, *["quietly"] * filler, org, "."]
    return {"tokens": tokens, "entities": [{"start": 0, "end": 1, "type": "Peop"},
                                           {"start": len(tokens) - 2, "end": len(tokens) - 1, "type": "Org"}],
            "relations": [{"head": 0, "tail": 1, "type": "Work_For"}] if related else []}


def keyword_data(people: list[str]) -> list[dict]:
    """Work_For iff the word between the spans is 'joined' (not 'visited'); the reverse pair never. Every
    person and org occurs with both verbs, so names tell nothing."""
    return [sentence(person, verb, org, verb == "joined", filler=(k + j) % 2)
            for k, person in enumerate(people) for j, org in enumerate(ORGS) for verb in ("joined", "visited")]


def options(base: Path, **kw) -> RelTrainOptions:
    settings = {"base_model": str(base), "epochs": 6, "batch_size": 8, "learning_rate": 3e-3, "holdout": 0.0,
                "warmup": 0.0, "dropout": 0.0, "seed": 1}
    settings.update(kw)
    return RelTrainOptions(**settings)
