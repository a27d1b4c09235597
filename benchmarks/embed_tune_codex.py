"""How kgpipe's per-model embedding defaults were chosen: one PyKEEN pipeline() run per candidate setting on
CoDEx-S, early stopping on a held-out slice of TRAIN, the result reported on EVAL (valid).

Each candidate is a JSON object of pipeline() arguments plus: inverse (reciprocal relations), batch_size,
freq/patience (early stopping), slice (the share of TRAIN held out for early stopping, default 0.05; 0: all
of TRAIN, no early stopping), training_kwargs, budget_s (stop after this many seconds of training),
dropout ({"entity": p, "relation": p}: embedding dropout during training, which PyKEEN's model classes
do not expose), and "loss": "onevsall" (kgpipe.embed.extensions.OneVsAllLoss: LCWA cross-entropy summed over
each row's true tails, i.e. 1-vs-all per training triple as in LibKGE, where PyKEEN's cross-entropy averages
them per head and relation; the script had its own copy before the stage took it over), and
"init_uniform": a (entity and relation embeddings drawn from U(-a, a), as LibKGE's `uniform_` init, which
PyKEEN's model classes take only as a callable), and "init_normal": s (entity and relation embeddings drawn
from N(0, s^2), e.g. 1e-3 as the kbc ComplEx-N3 code of Lacroix et al. that the CoDEx-S results of
Chen et al. 2021 were trained with), and "pseudo_test": n (n random TRAIN triples, seed 1, are withheld from
training as a stand-in for CoDEx-S's test file, which is not here, and EVAL is ranked twice: as always, and
with those n triples filtered too, as the published protocol filters every known triple, test included;
the difference estimates what filtering the real test file would add).
Prints the early-stopping curve and one RESULT line (and two PSEUDO lines with pseudo_test); writes nothing
to docs/ (the chosen settings are measured again, through the stage, by benchmarks/embed_codex.py).

Usage: python benchmarks/embed_tune_codex.py '{"model": "ComplEx", "inverse": true, ...}' [TRAIN] [EVAL]
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("PYSTOW_HOME", str(REPO / ".pystow"))
DATA = REPO.parent / "shared" / "data" / "kge" / "codex-s"


def with_dropout(model: str, entity: float, relation: float) -> type:
    """The PyKEEN model class with dropout on its entity and relation embeddings while training (as LibKGE's
    CoDEx configs); torch's dropout takes no complex tensors, so real and imaginary parts drop independently."""
    import torch
    from pykeen.models import model_resolver

    class ComplexSafeDropout(torch.nn.Dropout):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.is_complex():
                return torch.view_as_complex(super().forward(torch.view_as_real(x)))
            return super().forward(x)

    base = model_resolver.lookup(model)

    class WithDropout(base):
        def __init__(self, **kwargs) -> None:
            super().__init__(**kwargs)
            for representations, p in ((self.entity_representations, entity),
                                       (self.relation_representations, relation)):
                for representation in representations:
                    representation.dropout = ComplexSafeDropout(p) if p else None

    WithDropout.__name__ = f"{base.__name__}WithDropout"
    return WithDropout


def main() -> None:
    import tempfile

    from pykeen.pipeline import pipeline
    from pykeen.training.callbacks import TrainingCallback
    from pykeen.triples import TriplesFactory

    candidate = json.loads(sys.argv[1])
    train_path = Path(sys.argv[2]) if len(sys.argv) > 2 else DATA / "train.txt"
    eval_path = Path(sys.argv[3]) if len(sys.argv) > 3 else DATA / "valid.txt"
    budget = float(candidate.pop("budget_s", 840))
    dropout = candidate.pop("dropout", None)
    if "init_uniform" in candidate or "init_normal" in candidate:
        import functools

        import torch

        if "init_uniform" in candidate:
            bound = float(candidate.pop("init_uniform"))
            init = functools.partial(torch.nn.init.uniform_, a=-bound, b=bound)
        else:
            init = functools.partial(torch.nn.init.normal_, std=float(candidate.pop("init_normal")))
        candidate.setdefault("model_kwargs", {}).update(entity_initializer=init, relation_initializer=init)
    if candidate.get("loss") == "onevsall":
        from kgpipe.embed.extensions import OneVsAllLoss

        candidate["loss"] = OneVsAllLoss
    if dropout:
        candidate["model"] = with_dropout(candidate["model"], dropout.get("entity", 0.0), dropout.get("relation", 0.0))
    fraction = candidate.pop("slice", 0.05)
    pseudo_test = int(candidate.pop("pseudo_test", 0))
    full = TriplesFactory.from_path(train_path, create_inverse_triples=candidate.pop("inverse", False))
    if pseudo_test:
        share = pseudo_test / full.num_triples
        full, withheld = full.split([1 - share, share], random_state=1)
    # "slice": 0 trains on all of TRAIN for the given epochs, without early stopping
    train, early = full.split([1 - fraction, fraction], random_state=0) if fraction else (full, None)
    evaluation = TriplesFactory.from_path(eval_path, entity_to_id=full.entity_to_id,
                                          relation_to_id=full.relation_to_id)
    started = time.time()

    class Budget(TrainingCallback):
        def post_epoch(self, epoch: int, epoch_loss: float, **kwargs) -> None:
            elapsed = time.time() - started
            print(f"epoch {epoch} loss {epoch_loss:.4f} t {elapsed:.0f}s", flush=True)
            if elapsed > budget:
                self.training_loop._should_stop = True

    with tempfile.TemporaryDirectory() as tmp:
        stopper_kwargs = {"frequency": candidate.pop("freq", 5), "patience": candidate.pop("patience", 2),
                          "relative_delta": 0.002, "metric": "mrr", "best_model_path": Path(tmp) / "best.pt"}
        training_kwargs = {"batch_size": candidate.pop("batch_size", 1024), "use_tqdm": False,
                           "callbacks": Budget(), **candidate.pop("training_kwargs", {})}
        result = pipeline(
            training=train, validation=early, testing=evaluation, random_seed=candidate.pop("seed", 42),
            stopper="early" if early is not None else None,
            stopper_kwargs=stopper_kwargs if early is not None else None,
            training_kwargs=training_kwargs,
            evaluation_kwargs={"use_tqdm": False, **candidate.pop("evaluation_kwargs", {"batch_size": 256})},
            device="cpu", epochs=candidate.pop("epochs", 200), **candidate)
    print("early stopping curve", [round(x, 4) for x in getattr(result.stopper, "results", [])])
    if pseudo_test:
        from pykeen.evaluation import RankBasedEvaluator

        for label, withheld_filtered in (("plain", []), ("withheld_filtered", [withheld.mapped_triples])):
            metrics = RankBasedEvaluator().evaluate(
                result.model, evaluation.mapped_triples, batch_size=256, use_tqdm=False,
                additional_filter_triples=[train.mapped_triples, *([] if early is None else [early.mapped_triples]),
                                           *withheld_filtered])
            print("PSEUDO", label, json.dumps(summary(metrics)), flush=True)
    print("RESULT", json.dumps({**summary(result.metric_results), "train_s": round(result.train_seconds),
                                "epochs": len(result.losses)}), flush=True)


def summary(metrics) -> dict[str, float]:
    """MRR, Hits@1/10 (both sides) and MRR per side, realistic ranks."""
    names = {"mrr": "both.realistic.inverse_harmonic_mean_rank", "hits_at_1": "both.realistic.hits_at_1",
             "hits_at_10": "both.realistic.hits_at_10", "mrr_head": "head.realistic.inverse_harmonic_mean_rank",
             "mrr_tail": "tail.realistic.inverse_harmonic_mean_rank"}
    return {key: round(metrics.get_metric(name), 4) for key, name in names.items()}


if __name__ == "__main__":
    main()
