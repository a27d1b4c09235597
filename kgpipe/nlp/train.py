"""Domain adaptation of the spaCy NER (`kgpipe ner train`): update a pretrained pipeline's NER on labelled
sentences with spaCy's own training API (Example, Language.resume_training, Language.update, minibatch),
keep the epoch that scores best on a validation set, and save a model folder that the extract stage loads
with `spacy_model: path/to/folder`. The validation set is a held-out slice of the training file unless a
separate one is given, so that an evaluation set stays unseen by model selection.

Only the NER is updated; the tagger, parser and lemmatizer are saved unchanged (in the small English
model the NER has its own token-to-vector layer, so nothing it learns disturbs the parser).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kgpipe.errors import KgpipeError
from kgpipe.nlp.labelled import LabelledSentence, make_doc

if TYPE_CHECKING:
    from spacy.language import Language
    from spacy.training import Example

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainOptions:
    base_model: str = "auto"
    epochs: int = 30
    dropout: float = 0.2
    batch_start: float = 4.0       # compounding batch size, as in spaCy's own examples
    batch_stop: float = 32.0
    batch_compound: float = 1.001
    learn_rate: float | None = None  # None: the optimizer's default
    patience: int = 6              # epochs without dev improvement before stopping
    max_minutes: float = 15.0      # wall-clock budget; the best model so far is kept
    seed: int = 0
    holdout: float = 0.1           # share of train held out for early stopping when no validation set is given
    label_renames: Mapping[str, str] = field(default_factory=dict)  # data label -> model label


@dataclass
class EpochScore:
    epoch: int
    loss: float
    seconds: float
    dev_f: float | None = None
    dev_p: float | None = None
    dev_r: float | None = None


@dataclass
class TrainReport:
    train_sentences: int
    dev_sentences: int
    labels: list[str]
    epochs: list[EpochScore] = field(default_factory=list)
    best_epoch: int | None = None
    stopped: str = "epochs"
    output: str = ""
    validation: str = "none"       # where the early-stopping scores come from
    resumed_after: int | None = None  # transformer NER: the epoch a checkpoint was resumed after

    @property
    def best(self) -> EpochScore | None:
        return next((e for e in self.epochs if e.epoch == self.best_epoch), None)


def make_examples(nlp: Language, sentences: Sequence[LabelledSentence],
                  renames: Mapping[str, str] | None = None) -> list[Example]:
    """spaCy Examples: the sentence unannotated, and its gold entities (entity spans that do not fit the
    tokens of a text-format sentence are left out, as spaCy's own converters do)."""
    from spacy.training import Example

    renames = renames or {}
    examples = []
    for sentence in sentences:
        predicted = make_doc(nlp, sentence)
        if sentence.tokens is not None:
            reference = make_doc(nlp, sentence)
            from spacy.tokens import Span

            reference.ents = [Span(reference, e.start, e.end, label=renames.get(e.type, e.type))
                              for e in sentence.entities]
            examples.append(Example(predicted, reference))
        else:
            spans = [(e.start, e.end, renames.get(e.type, e.type)) for e in sentence.entities]
            examples.append(Example.from_dict(predicted, {"entities": spans}))
    return examples


def split_holdout(sentences: Sequence[LabelledSentence], share: float, seed: int
                  ) -> tuple[list[LabelledSentence], list[LabelledSentence]]:
    """(train, held out): a seeded random `share` of the sentences held out, at least one on each side
    when there are two or more sentences; share 0 holds out nothing."""
    if share <= 0 or len(sentences) < 2:
        return list(sentences), []
    order = list(range(len(sentences)))
    random.Random(seed).shuffle(order)
    n_held = min(len(sentences) - 1, max(1, round(share * len(sentences))))
    held = set(order[:n_held])
    return ([s for i, s in enumerate(sentences) if i not in held],
            [s for i, s in enumerate(sentences) if i in held])


def train_ner(train: Sequence[LabelledSentence], output: Path, options: TrainOptions | None = None, *,
              dev: Sequence[LabelledSentence] = (),
              progress: Callable[[EpochScore], None] | None = None) -> TrainReport:
    """Update the base model's NER on `train`; save the best pipeline to `output`. The epoch kept is the
    best on `dev` if given, else on a held-out slice (options.holdout) of `train`, else the last."""
    from spacy.util import compounding, fix_random_seed, minibatch

    from kgpipe.nlp.models import load_model

    options = options or TrainOptions()
    if not train:
        raise KgpipeError("no training sentences", hint="pass a JSON lines file with labelled sentences")
    fix_random_seed(options.seed)
    rng = random.Random(options.seed)
    if dev:
        validation = f"given validation set ({len(dev)} sentences)"
    else:
        train, dev = split_holdout(train, options.holdout, options.seed)
        validation = (f"held-out {options.holdout:g} of the training file ({len(dev)} sentences, seed "
                      f"{options.seed})" if dev else "none (last epoch kept)")
    nlp = load_model(options.base_model, cache=False)
    if "ner" not in nlp.pipe_names:
        raise KgpipeError(f"base model '{options.base_model}' has no NER component to update")
    train_examples = make_examples(nlp, train, options.label_renames)
    dev_examples = make_examples(nlp, dev, options.label_renames) if dev else []
    ner: Any = nlp.get_pipe("ner")  # spaCy's EntityRecognizer (typed as a plain Doc -> Doc callable)
    labels = sorted({ent.label_ for ex in train_examples for ent in ex.reference.ents})
    for label in labels:
        ner.add_label(label)
    optimizer = nlp.resume_training()
    if options.learn_rate is not None:
        optimizer.learn_rate = options.learn_rate
    report = TrainReport(len(train_examples), len(dev_examples), labels, output=str(output),
                         validation=validation)
    nlp.meta["name"] = nlp.meta.get("name", "model") + "_kgpipe_ner"
    started = time.monotonic()
    best_f = -1.0
    since_best = 0
    output.mkdir(parents=True, exist_ok=True)
    with nlp.select_pipes(enable=["ner"]):
        for epoch in range(1, options.epochs + 1):
            epoch_start = time.monotonic()
            rng.shuffle(train_examples)
            losses: dict[str, float] = {}
            sizes = compounding(options.batch_start, options.batch_stop, options.batch_compound)
            for batch in minibatch(train_examples, size=sizes):
                nlp.update(batch, drop=options.dropout, sgd=optimizer, losses=losses)
            score = EpochScore(epoch, round(losses.get("ner", 0.0), 3), round(time.monotonic() - epoch_start, 1))
            improved = True
            if dev_examples:
                with nlp.use_params(optimizer.averages):
                    scores = nlp.evaluate(dev_examples)
                score.dev_f, score.dev_p, score.dev_r = (round(float(scores[k] or 0.0), 4)
                                                         for k in ("ents_f", "ents_p", "ents_r"))
                improved = score.dev_f > best_f
            report.epochs.append(score)
            if progress is not None:
                progress(score)
            if improved:
                best_f = score.dev_f if score.dev_f is not None else best_f
                report.best_epoch = epoch
                since_best = 0
                with nlp.use_params(optimizer.averages):
                    _save(nlp, output, report, options)
            else:
                since_best += 1
            if dev_examples and since_best >= options.patience:
                report.stopped = f"no validation improvement for {options.patience} epochs"
                break
            if (time.monotonic() - started) / 60 > options.max_minutes:
                report.stopped = f"time budget of {options.max_minutes:g} minutes"
                break
    _save_meta_only(output, report, options)
    return report


def _training_meta(report: TrainReport, options: TrainOptions) -> dict[str, Any]:
    best = report.best
    return {"base_model": options.base_model, "labels": report.labels, "train_sentences": report.train_sentences,
            "dev_sentences": report.dev_sentences, "best_epoch": report.best_epoch,
            "epochs_run": len(report.epochs), "stopped": report.stopped, "seed": options.seed,
            "dev_ents_f": best.dev_f if best else None, "validation": report.validation,
            "label_renames": dict(options.label_renames),
            "dropout": options.dropout, "max_epochs": options.epochs, "patience": options.patience}


def _save(nlp: Language, output: Path, report: TrainReport, options: TrainOptions) -> None:
    nlp.meta["kgpipe_training"] = _training_meta(report, options)
    nlp.to_disk(output)


def _save_meta_only(output: Path, report: TrainReport, options: TrainOptions) -> None:
    """Record how training ended (epochs run, why it stopped) next to the saved best model."""
    import json

    meta_path = output / "meta.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        meta["kgpipe_training"] = _training_meta(report, options)
        meta_path.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
