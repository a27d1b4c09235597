"""Knowledge graph embeddings with PyKEEN: data and splits, training configs by name through PyKEEN's
resolvers with kgpipe's per-model defaults, resumable training, evaluation, export and link prediction.

>>> from kgpipe.embed import LinkPredictor
>>> predictor = LinkPredictor.load("artifacts/embed/model")          # doctest: +SKIP
>>> predictor.predict_tails("Marie Curie", "spouse", k=5)           # doctest: +SKIP
>>> vectors, ids, labels, layout = read_embeddings("artifacts/embed/embeddings.safetensors")  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from kgpipe.embed.runtime import use_workspace_pystow

__all__ = ["LinkPredictor", "read_embeddings", "use_workspace_pystow"]


def __getattr__(name: str) -> Any:
    # the heavy parts (torch, PyKEEN) load on first use, after PYSTOW_HOME has a default
    if name == "LinkPredictor":
        from kgpipe.embed.predict import LinkPredictor

        return LinkPredictor
    if name == "read_embeddings":
        from kgpipe.embed.export import read_embeddings

        return read_embeddings
    raise AttributeError(f"module 'kgpipe.embed' has no attribute {name!r}")
