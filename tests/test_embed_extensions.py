"""kgpipe's own PyKEEN components (kgpipe.embed.extensions): the per-triple 1-vs-all loss against torch's
cross-entropy triple by triple, the small normal initializer, both by name through PyKEEN's resolvers, and a
stage-trained model that uses them loading in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.nn import functional

from kgpipe.embed.defaults import training_config
from kgpipe.embed.extensions import OneVsAllLoss
from tests.conftest import REPO
from tests.test_embed import FAST, outputs, run_embed, toy_graph, write_graph


def rows_and_triples(seed: int = 0):
    """LCWA rows (scores over 7 entities, multi-hot true tails) and the same data as one row per triple."""
    generator = torch.Generator().manual_seed(seed)
    scores = torch.randn(4, 7, generator=generator)
    labels = torch.zeros(4, 7)
    for row, tails in enumerate([[2], [0, 5], [1, 3, 6], [4]]):
        labels[row, tails] = 1.0
    row_of_triple, tail_of_triple = labels.nonzero(as_tuple=True)
    return scores, labels, row_of_triple, tail_of_triple


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_one_vs_all_is_the_cross_entropy_of_each_triple_summed_over_a_rows_tails(smoothing: float) -> None:
    scores, labels, row_of_triple, tail_of_triple = rows_and_triples()
    per_triple = functional.cross_entropy(scores[row_of_triple], tail_of_triple, reduction="none",
                                          label_smoothing=smoothing)
    per_row = torch.zeros(len(scores)).index_add_(0, row_of_triple, per_triple)
    loss = OneVsAllLoss().process_lcwa_scores(scores, labels, label_smoothing=smoothing or None)
    torch.testing.assert_close(loss, per_row.mean())
    # PyKEEN's cross-entropy averages a row's tails into one target: equal for one-tail rows only
    pykeen = functional.cross_entropy(scores, labels / labels.sum(dim=-1, keepdim=True), reduction="none",
                                      label_smoothing=smoothing)
    single = labels.sum(dim=-1) == 1
    torch.testing.assert_close(pykeen[single], per_row[single])
    assert not torch.allclose(pykeen[~single], per_row[~single])


def test_one_vs_all_gradient_pushes_every_true_tail_up() -> None:
    scores, labels, _, _ = rows_and_triples(1)
    scores.requires_grad_(True)
    OneVsAllLoss().process_lcwa_scores(scores, labels).backward()
    assert (scores.grad[labels == 1] < 0).all() and (scores.grad[labels == 0] > 0).all()


def test_kgpipe_components_resolve_by_name_and_the_initializer_is_small() -> None:
    from pykeen.nn.init import initializer_resolver

    config, _ = training_config("ComplEx", {"loss": "OneVsAll"})
    assert config.loss == "onevsall"
    assert training_config("ComplEx")[0].model_kwargs["entity_initializer"] == "small_normal_"
    tensor = initializer_resolver.make("small_normal_")(torch.empty(20_000))
    assert 0.0009 < float(tensor.std()) < 0.0011 and abs(float(tensor.mean())) < 1e-4


def test_a_model_trained_with_them_loads_in_a_fresh_interpreter(tmp_path: Path) -> None:
    triples, labels = toy_graph()
    write_graph(tmp_path, triples, labels)
    params = {k: v for k, v in FAST.items() if k != "negative_sampler_kwargs"}
    result = run_embed(tmp_path, **{**params, "model": "ComplEx", "embedding_dim": 8, "epochs": 2,
                                    "early_stopping": False})
    folder = outputs(result)["model"]
    code = ("import sys; from kgpipe.embed.model_io import load_model; "
            "model, info, _ = load_model(sys.argv[1]); "
            "print(type(model.loss).__name__, info.model_kwargs['entity_initializer'])")
    done = subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True, text=True, cwd=REPO,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["OneVsAllLoss", "small_normal_"]
