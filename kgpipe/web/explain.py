"""The explorer's pair explanations: `kgpipe explain HEAD TAIL` over the last run (kgpipe.fuse_explain), with the
run's mention records and scorer built once per snapshot; and which two texts of an entity its page links to
("why merged?").

Errors keep their meaning: a name the run does not know is 404, a run without learned weights (learn fixed, or
not run with learn em) is 409, a request without both names 400, each with the message and hint `kgpipe
explain` prints.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kgpipe.errors import ArtifactError, InputError, KgpipeError
from kgpipe.web import models as m
from kgpipe.web.data import Snapshot, SnapshotChanged

if TYPE_CHECKING:
    from kgpipe.fuse_explain import FusedPairExplanation, FusedRun, Side


class NotExplainable(KgpipeError):
    """The last run stored no learned weights (or the pipeline has no fuse stage): nothing to explain with."""

    exit_code = 2


class BlankName(InputError):
    """A request without both names (400)."""


@dataclass(frozen=True)
class Refusal:
    """Why the run cannot be explained: the message and the hint (the page shows both)."""

    message: str
    hint: str | None


def refusal(snap: Snapshot) -> Refusal | None:
    """None where the last fuse run stored learned weights; else why not. Cheap (no table is read); once per
    snapshot."""
    def check() -> Refusal | None:
        from kgpipe.fuse_explain import learned_weights
        from kgpipe.roles import Role, output_of

        if output_of(snap.pipe, Role.LEARNED_WEIGHTS) is None:
            return Refusal(f"pipeline {snap.pipe.path} has no stage that learns match weights (a fuse stage)",
                           "explain needs a fuse stage run with resolution.learn: em")
        try:
            learned_weights(snap.pipe)
        except KgpipeError as exc:
            return Refusal(exc.message, exc.hint)
        return None
    return snap.cached("explain_refusal", check)


def fused_run(snap: Snapshot) -> FusedRun:
    """The last fuse run, loaded once per snapshot; NotExplainable where it stored no weights."""
    found = refusal(snap)
    if found is not None:
        raise NotExplainable(found.message, hint=found.hint)
    from kgpipe.fuse_explain import load_run

    return snap.cached("fused_run", lambda: load_run(snap.pipe))


def explain(snap: Snapshot, head: str, tail: str) -> FusedPairExplanation:
    """Two names explained as `kgpipe explain` explains them; BlankName (400) without both names, InputError
    (404) for a name the run does not know."""
    if not head.strip() or not tail.strip():
        raise BlankName("give two names to explain: head and tail (mention texts or entity labels)")
    return fused_run(snap).explain(head, tail)


def status_of(exc: KgpipeError) -> int | None:
    """The HTTP status of an explain error; None for an error that is not explain's own (a snapshot that
    changed meanwhile: the app's handler answers it)."""
    if isinstance(exc, SnapshotChanged):
        return None
    if isinstance(exc, BlankName):
        return 400
    if isinstance(exc, InputError):
        return 404
    if isinstance(exc, NotExplainable | ArtifactError):
        return 409
    return None


def _side(snap: Snapshot, side: Side) -> m.ExplainSide:
    return m.ExplainSide(asked=side.asked, text=side.text, type=side.type, mentions=side.mentions,
                         entities=[m.EntityRef(id=e, label=snap.label(e)) for e in side.entities])


def as_model(snap: Snapshot, found: FusedPairExplanation) -> m.Explanation:
    why = found.explanation
    return m.Explanation(
        stage=found.stage, head=_side(snap, found.head), tail=_side(snap, found.tail), together=found.together,
        prior=why.prior, prior_weight=why.prior_weight,
        terms=[m.ExplainTerm(comparison=t.comparison, level=t.level, m=t.m, u=t.u, weight=t.weight,
                             tf_adjusted=t.tf_adjusted) for t in why.terms],
        total=why.total, probability=why.probability, type_factor=found.type_factor)


def merged_pair(snap: Snapshot, entity_id: str) -> tuple[str, str] | None:
    """Two mention texts of an entity to ask "why merged?" about: its most frequent text and the most frequent
    one spelled otherwise (not only in case, which explain reads as the same name); None where the entity has
    one text, or the run stored no learned weights."""
    texts = snap.mention_texts(entity_id)
    if len(texts) < 2 or refusal(snap) is not None:
        return None
    first = texts[0][0]
    other = next((text for text, _ in texts[1:] if text.casefold() != first.casefold()), None)
    return (first, other) if other is not None else None
