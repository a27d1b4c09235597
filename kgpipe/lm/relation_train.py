"""Training the relation model (`kgpipe rel train`) on labelled sentences: every ordered pair of gold entities is
an example (its gold relation, or "no relation"), plus the wrong relations of a negatives file as "no relation".

AdamW with linear warm-up and decay, batches of sentences, early stopping on a held-out slice of the training
file, a wall-clock budget, and a checkpoint after every epoch (OUT/checkpoint.pt) that a rerun with the same
data and options resumes from, ending with the same weights as an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kgpipe.errors import KgpipeError
from kgpipe.lm.encoder import DEFAULT_BASE_MODEL
from kgpipe.lm.finetune import (
    Resumed,
    adamw_with_warmup,
    length_batches,
    resume_training,
    run_epoch,
    save_training,
    seed_everything,
)
from kgpipe.lm.relation_model import NO_RELATION, EntitySpan, RelationModel, TextWithEntities, all_pairs
from kgpipe.nlp.labelled import LabelledSentence, entity_types
from kgpipe.nlp.train import split_holdout

CHECKPOINT_FILE = "checkpoint.pt"


@dataclass(frozen=True)
class RelTrainOptions:
    base_model: str = DEFAULT_BASE_MODEL
    epochs: int = 10
    batch_size: int = 8            # sentences per optimiser step (all their pairs together)
    learning_rate: float = 5e-5
    weight_decay: float = 0.01
    warmup: float = 0.1            # share of all steps with a linearly rising learning rate
    patience: int = 3              # epochs without held-out improvement before stopping
    max_minutes: float = 30.0      # wall-clock budget of this process; the best model so far is kept
    seed: int = 0
    holdout: float = 0.1           # share of the training sentences held out for early stopping (0: none)
    max_length: int | None = None  # tokens per window (default: the encoder's limit, at most 512)
    entity_label_dim: int = 25     # NER-label embedding size (0: labels are not used)
    dropout: float = 0.1


@dataclass
class RelEpoch:
    epoch: int
    loss: float
    seconds: float
    sentences_per_second: float
    precision: float | None = None   # held-out micro scores over relations (gold entities)
    recall: float | None = None
    f1: float | None = None


@dataclass
class RelTrainReport:
    train_sentences: int
    heldout_sentences: int
    relation_labels: list[str]
    entity_labels: list[str]
    pairs: int = 0                    # training examples (ordered pairs) in units
    related_pairs: int = 0
    negatives_added: int = 0          # wrong relations of --negatives used as "no relation" examples
    skipped_pairs: int = 0            # pairs no window held whole: not trained on (held-out: counted missed)
    duplicate_relations: int = 0      # a second gold relation on the same ordered pair (first one kept)
    epochs: list[RelEpoch] = field(default_factory=list)
    best_epoch: int | None = None
    stopped: str = "epochs"
    resumed_after: int | None = None  # the epoch a checkpoint was resumed after
    output: str = ""

    @property
    def best(self) -> RelEpoch | None:
        return next((e for e in self.epochs if e.epoch == self.best_epoch), None)


@dataclass
class _Examples:
    sentences: list[TextWithEntities]
    pairs: list[list[tuple[int, int]]]
    targets: list[list[int]]


def as_text(sentence: LabelledSentence) -> TextWithEntities:
    return TextWithEntities(sentence.surface, tuple(EntitySpan(start, end, e.type) for (start, end), e
                                                    in zip(sentence.char_spans(), sentence.entities, strict=True)))


def _examples(model: RelationModel, train: Sequence[LabelledSentence], negatives: Sequence[LabelledSentence],
              report: RelTrainReport) -> _Examples:
    out = _Examples([], [], [])
    for sentence in train:
        gold: dict[tuple[int, int], str] = {}
        for r in sentence.relations:
            if (r.head, r.tail) in gold:
                report.duplicate_relations += 1
                continue
            gold[(r.head, r.tail)] = r.type
        pairs = all_pairs(len(sentence.entities))
        out.sentences.append(as_text(sentence))
        out.pairs.append(pairs)
        out.targets.append([model.relation_index(gold.get(p, NO_RELATION)) for p in pairs])
    none = model.relation_index(NO_RELATION)
    for sentence in negatives:
        pairs = [(r.head, r.tail) for r in sentence.relations if r.head != r.tail]
        if pairs:
            out.sentences.append(as_text(sentence))
            out.pairs.append(pairs)
            out.targets.append([none] * len(pairs))
            report.negatives_added += len(pairs)
    return out


def evaluate(model: RelationModel, sentences: Sequence[LabelledSentence], batch_size: int = 16
             ) -> tuple[float, float, float]:
    """Micro precision, recall and F1 over (sentence, subject, object, relation) with gold entities."""
    predicted = {(n, p.subject, p.object, p.label)
                 for n, found in enumerate(model.predict([as_text(s) for s in sentences], batch_size=batch_size))
                 for p in found}
    gold = {(n, r.head, r.tail, r.type) for n, s in enumerate(sentences) for r in s.relations}
    tp = len(predicted & gold)
    precision = tp / len(predicted) if predicted else 0.0
    recall = tp / len(gold) if gold else 0.0
    return precision, recall, (2 * precision * recall / (precision + recall) if tp else 0.0)


def _fingerprint(options: RelTrainOptions, train: Sequence[LabelledSentence],
                 negatives: Sequence[LabelledSentence]) -> str:
    """What a checkpoint must agree with to be resumed: the data and every option but the time budget."""
    settings = {k: v for k, v in asdict(options).items() if k != "max_minutes"}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for sentence in (*train, *negatives):
        digest.update(repr((sentence.tokens, sentence.text, sentence.entities, sentence.relations)).encode())
    return digest.hexdigest()


def train_relation_model(train: Sequence[LabelledSentence], output: Path, options: RelTrainOptions | None = None,
                         *, negatives: Sequence[LabelledSentence] = (), restart: bool = False,
                         progress: Callable[[RelEpoch], None] | None = None) -> RelTrainReport:
    """Fine-tune the encoder and head on `train`; the best epoch on the held-out slice (or the last, with
    holdout 0) is saved to `output`. A checkpoint of an interrupted run with the same data and options is
    resumed unless `restart`; one of other data or options is refused."""
    options = options or RelTrainOptions()
    if not any(len(s.entities) >= 2 for s in train):
        raise KgpipeError("no training sentence has two entities: there are no pairs to learn from",
                          hint="pass labelled sentences with entities and relations (CoNLL04 style)")
    seed_everything(options.seed)
    fit, held = split_holdout(train, options.holdout, options.seed)
    relation_labels = sorted({r.type for s in fit for r in s.relations})
    model = RelationModel.from_base(options.base_model, relation_labels, entity_types([*train, *negatives]),
                                    max_length=options.max_length, entity_label_dim=options.entity_label_dim,
                                    dropout=options.dropout)
    report = RelTrainReport(len(fit), len(held), relation_labels, model.config.entity_labels[1:], output=str(output))
    data = _examples(model, fit, negatives, report)
    units, report.skipped_pairs = model.encode(data.sentences, data.pairs, data.targets)
    report.pairs = sum(len(u.pairs) for u in units)
    report.related_pairs = sum(t != 0 for u in units for t in u.targets)
    if not units:
        raise KgpipeError("no entity pair of the training sentences fits the encoder's windows",
                          hint="check the entity spans, or raise --max-length")
    by_sentence: dict[int, list[int]] = {}
    for index, unit in enumerate(units):
        by_sentence.setdefault(unit.sentence, []).append(index)
    length = {s: max(len(units[i].input_ids) for i in chosen) for s, chosen in by_sentence.items()}
    steps_per_epoch = (len(by_sentence) + options.batch_size - 1) // options.batch_size
    optimiser, scheduler = adamw_with_warmup(model, options.learning_rate, options.weight_decay, options.warmup,
                                             steps_per_epoch * options.epochs)
    rng = random.Random(options.seed)
    best_f, since_best, start_epoch = -1.0, 0, 0
    fingerprint = _fingerprint(options, train, negatives)
    checkpoint = output / CHECKPOINT_FILE
    if checkpoint.exists() and not restart:
        resumed = resume_training(checkpoint, fingerprint, model, optimiser, scheduler, rng)
        best_f, since_best, start_epoch = resumed.best_f, resumed.since_best, resumed.epoch
        report.epochs = [RelEpoch(**e) for e in resumed.history]
        report.best_epoch = resumed.best_epoch
        report.resumed_after = start_epoch

    def loss_of(chosen: list[int]) -> torch.Tensor:
        batch = model.collate([units[i] for s in chosen for i in by_sentence[s]])
        return nn.functional.cross_entropy(model(batch), batch.targets)

    started = time.monotonic()
    output.mkdir(parents=True, exist_ok=True)
    for epoch in range(start_epoch + 1, options.epochs + 1):
        epoch_start = time.monotonic()
        model.train()
        batches = _batches(sorted(by_sentence), length, options.batch_size, rng)
        run = run_epoch(model, batches, loss_of, optimiser, scheduler, started, options.max_minutes)
        seconds = time.monotonic() - epoch_start
        score = RelEpoch(epoch, run.mean_loss, round(seconds, 1), round(run.items / max(seconds, 1e-9), 2))
        improved = True
        if held:
            score.precision, score.recall, score.f1 = (round(x, 4) for x in evaluate(model, held))
            improved = score.f1 > best_f
        report.epochs.append(score)
        if improved:
            best_f = score.f1 if score.f1 is not None else best_f
            report.best_epoch, since_best = epoch, 0
            model.config.training = _summary(report, options)
            model.save(output)
        else:
            since_best += 1
        if run.out_of_time:
            report.stopped = f"time budget of {options.max_minutes:g} minutes (epoch {epoch} cut short)"
        elif held and since_best >= options.patience:
            report.stopped = f"no held-out improvement for {options.patience} epochs"
        elif epoch < options.epochs:
            save_training(checkpoint, fingerprint, model, optimiser, scheduler, rng, Resumed(
                epoch, best_f, since_best, report.best_epoch, [asdict(e) for e in report.epochs]))
        if progress is not None:
            progress(score)
        if report.stopped != "epochs":
            break
    model.config.training = _summary(report, options)
    model.save_config(output)
    checkpoint.unlink(missing_ok=True)  # finished: a rerun starts afresh (and gives the same model)
    return report


_batches = length_batches  # the name the tests and older callers use


def _summary(report: RelTrainReport, options: RelTrainOptions) -> dict[str, Any]:
    best = report.best
    return {"seed": options.seed, "epochs_run": len(report.epochs), "max_epochs": options.epochs,
            "best_epoch": report.best_epoch, "stopped": report.stopped, "train_sentences": report.train_sentences,
            "heldout_sentences": report.heldout_sentences, "holdout": options.holdout,
            "heldout_f1": best.f1 if best else None, "negatives_added": report.negatives_added,
            "skipped_pairs": report.skipped_pairs, "learning_rate": options.learning_rate,
            "batch_size": options.batch_size}
