"""`kgpipe ner train --transformer`: fine-tune an encoder for BIO token classification over spaCy's tokens of
labelled sentences, and save a spaCy model folder: the base spaCy model with its `ner` replaced by the
transformer NER component (kgpipe.nlp.transformer_ner), tagger, parser and lemmatizer kept for the patterns.
The words' parts of speech the model reads are set by the same base components in training as at inference;
so are the base model's own entities, from its stock NER kept in the folder as `base_ner`, before `ner`.

The epoch kept is the best on the validation set (given, or a held-out slice of the training file); a
checkpoint after each epoch lets a rerun with the same data and options resume, ending with the same weights
as an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
from kgpipe.lm.token_tagger import Entity, TaggerConfig, TokenTagger, Window, bio_tags
from kgpipe.nlp.labelled import LabelledSentence, entity_spans, make_doc
from kgpipe.nlp.train import EpochScore, TrainReport, split_holdout
from kgpipe.nlp.transformer_ner import BASE_NER, FACTORY, TOKEN_SOURCES, TransformerNer, token_values

if TYPE_CHECKING:
    from spacy.language import Language
    from spacy.tokens import Doc

CHECKPOINT_FILE = "checkpoint.pt"


@dataclass(frozen=True)
class TransformerTrainOptions:
    spacy_base: str = "auto"         # the spaCy model whose tokenizer, tagger, parser ... the folder keeps
    base_model: str = DEFAULT_BASE_MODEL
    epochs: int = 10
    batch_size: int = 16             # sentences per optimiser step
    learning_rate: float = 5e-5
    weight_decay: float = 0.01
    warmup: float = 0.1              # share of all steps with a linearly rising learning rate
    patience: int = 3                # epochs without validation improvement before stopping
    max_minutes: float = 15.0        # wall-clock budget of this process; the best model so far is kept
    seed: int = 0
    holdout: float = 0.1             # share of train held out when no validation set is given
    max_length: int | None = None    # tokens per window (default: the encoder's limit, at most 512)
    dropout: float = 0.1
    word_shapes: bool = True         # embed each word's case and shape (the packaged encoder is uncased)
    constrained_decoding: bool = True    # predict valid BIO sequences only (Viterbi), also for validation
    word_pos: bool = True            # embed each word's part of speech (token.pos_ from the base's tagger)
    word_base_ner: bool = False      # embed each word's tag from the base model's own (stock, cased) NER
    #                                 (off: on CoNLL04 dev it did not help, 0.813 against 0.821 over 3 seeds)
    # Peak rate of the randomly initialised layers (classifier, shape, POS, stock-NER embeddings); None: the same.
    # At the encoder's 1e-4 these small layers barely move from their initialisation in a 10-epoch run.
    head_learning_rate: float | None = 1e-3
    label_renames: Mapping[str, str] = field(default_factory=dict)


@dataclass
class _Sentences:
    texts: list[tuple[str, list[tuple[int, int]]]]    # (text, word character spans) per sentence
    gold: list[list[Entity]]
    # feature name -> each sentence's words' values, for the word features the model reads from the tokens
    features: dict[str, list[list[str]]] = field(default_factory=dict)


def _before_ner(nlp: Language, docs: list[Doc]) -> list[Doc]:
    """The docs through the pipeline's components that precede `ner`, in order, as at inference (where they
    set token.pos_, and `base_ner` the stock entities, before the transformer NER reads them)."""
    for name, component in nlp.pipeline:
        if name == "ner":
            break
        docs = list(component.pipe(docs)) if hasattr(component, "pipe") else [component(d) for d in docs]
    return docs


def _sentences(nlp: Language, sentences: Sequence[LabelledSentence], renames: Mapping[str, str], *,
               features: Sequence[str] = ()) -> _Sentences:
    """spaCy's words of each sentence and its gold entities on them (from the labelled sentence, never from
    doc.ents, which hold the stock NER's); an entity that overlaps an earlier one (BIO cannot hold both) or fits
    no tokens is left out. `features`: word features whose values to read from the tokens as set by the
    components before `ner`, as at inference (see TOKEN_SOURCES); a pipeline that sets one of them on no
    token is an error."""
    docs = [make_doc(nlp, sentence) for sentence in sentences]
    out = _Sentences([], [])
    if features:
        docs = _before_ner(nlp, docs)
    for name in features:
        values = token_values(name, docs)
        if values is None:
            before = nlp.pipe_names[:nlp.pipe_names.index("ner")]
            raise KgpipeError(f"the spaCy base pipeline sets no {TOKEN_SOURCES[name].what} before its "
                              f"ner (components before it: {', '.join(before) or 'none'})",
                              hint=TOKEN_SOURCES[name].train_hint)
        out.features[name] = values
    for sentence, doc in zip(sentences, docs, strict=True):
        entities: list[Entity] = []
        taken = [False] * len(doc)
        for span in entity_spans(doc, sentence):
            if span is None or len(span) == 0 or any(taken[span.start:span.end]):
                continue
            taken[span.start:span.end] = [True] * len(span)
            entities.append(Entity(span.start, span.end, renames.get(span.label_, span.label_)))
        out.texts.append((doc.text, [(t.idx, t.idx + len(t)) for t in doc]))
        out.gold.append(sorted(entities))
    return out


def entity_scores(predicted: Sequence[Sequence[Entity]], gold: Sequence[Sequence[Entity]]
                  ) -> tuple[float, float, float]:
    """Micro precision, recall and F1 over exact (sentence, start, end, label)."""
    found = {(n, *e) for n, entities in enumerate(predicted) for e in entities}
    wanted = {(n, *e) for n, entities in enumerate(gold) for e in entities}
    tp = len(found & wanted)
    precision = tp / len(found) if found else 0.0
    recall = tp / len(wanted) if wanted else 0.0
    return precision, recall, (2 * precision * recall / (precision + recall) if tp else 0.0)


def _fingerprint(options: TransformerTrainOptions, train: Sequence[LabelledSentence],
                 dev: Sequence[LabelledSentence]) -> str:
    """What a checkpoint must agree with to be resumed: the data and every option but the time budget."""
    settings = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in asdict(options).items()
                if k != "max_minutes"}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for name, part in (("train", train), ("dev", dev)):
        digest.update(name.encode())
        for sentence in part:
            digest.update(repr((sentence.tokens, sentence.text, sentence.entities)).encode())
    return digest.hexdigest()


def _output_pipeline(spacy_base: str, tagger: TokenTagger) -> Language:
    """The base spaCy pipeline as it is (all its components), its `ner` replaced by the transformer NER; for a
    tagger that reads the stock entities, the base's own NER is kept, renamed BASE_NER, right before it."""
    import spacy

    from kgpipe.nlp.models import resolve_model

    try:
        nlp = spacy.load(resolve_model(spacy_base))
    except (OSError, ValueError) as exc:
        raise KgpipeError(f"cannot load the spaCy model '{spacy_base}': {exc}",
                          hint="pass --base auto or a spaCy model folder") from None
    if BASE_NER in nlp.component_names:        # a base saved by this trainer holds its stock NER there already
        if not tagger.config.word_base_ner:
            nlp.remove_pipe(BASE_NER)
    elif tagger.config.word_base_ner:
        if "ner" not in nlp.component_names or isinstance(nlp.get_pipe("ner"), TransformerNer):
            raise KgpipeError(f"the spaCy model '{spacy_base}' has no NER of its own whose entities the transformer "
                              "NER could read (components: " + (", ".join(nlp.component_names) or "none") + ")",
                              hint="pass --base with a model that has a ner (e.g. auto), or --no-word-base-ner")
        nlp.rename_pipe("ner", BASE_NER)
    if BASE_NER in nlp.disabled:
        nlp.enable_pipe(BASE_NER)
    if "ner" in nlp.component_names:
        component = nlp.replace_pipe("ner", FACTORY)
    elif BASE_NER in nlp.component_names:
        component = nlp.add_pipe(FACTORY, name="ner", after=BASE_NER)
    else:
        component = nlp.add_pipe(FACTORY, name="ner")
    if not isinstance(component, TransformerNer):  # add_pipe is typed as returning any component
        raise TypeError(f"{FACTORY} made a {type(component).__name__}")
    component.tagger = tagger
    nlp.meta["name"] = str(nlp.meta.get("name", "model")) + "_kgpipe_transformer_ner"
    return nlp


def train_transformer_ner(train: Sequence[LabelledSentence], output: Path,
                          options: TransformerTrainOptions | None = None, *, dev: Sequence[LabelledSentence] = (),
                          restart: bool = False, progress: Callable[[EpochScore], None] | None = None
                          ) -> TrainReport:
    """Fine-tune the encoder as a BIO tagger on `train`; save the best epoch's pipeline to `output`. A checkpoint
    of an interrupted run with the same data and options is resumed unless `restart`; one of other data or
    options is refused (WorkspaceError)."""
    options = options or TransformerTrainOptions()
    if not any(s.entities for s in train):
        raise KgpipeError("no training sentence has an entity: there is nothing to learn",
                          hint="pass labelled sentences with entities (CoNLL04 style, or text + char spans)")
    fingerprint = _fingerprint(options, train, dev)
    seed_everything(options.seed)
    if dev:
        fit, held = list(train), list(dev)
        validation = f"given validation set ({len(dev)} sentences)"
    else:
        fit, held = split_holdout(train, options.holdout, options.seed)
        validation = (f"held-out {options.holdout:g} of the training file ({len(held)} sentences, seed "
                      f"{options.seed})" if held else "none (last epoch kept)")
    renames = options.label_renames
    labels = sorted({renames.get(e.type, e.type) for s in fit for e in s.entities})
    # the options' word_shapes, word_pos, ... are the tagger config's flags of the same names
    features = [f.name for f in TaggerConfig("", [], {}).word_features() if getattr(options, f.flag)]
    tagger = TokenTagger.from_base(options.base_model, labels, max_length=options.max_length,
                                   dropout=options.dropout, features=features,
                                   constrained_decoding=options.constrained_decoding)
    nlp = _output_pipeline(options.spacy_base, tagger)
    from_tokens = [f.name for f in tagger.features if not f.from_text]
    data = _sentences(nlp, fit, renames, features=from_tokens)
    checks = _sentences(nlp, held, renames, features=from_tokens) if held else None
    units: list[Window] = []
    by_sentence: dict[int, list[int]] = {}
    for number, ((text, words), gold) in enumerate(zip(data.texts, data.gold, strict=True)):
        for window in tagger.windows(text, words, number, bio_tags(len(words), gold, labels),
                                     features={name: values[number] for name, values in data.features.items()}):
            by_sentence.setdefault(number, []).append(len(units))
            units.append(window)
    if not units:
        raise KgpipeError("no training sentence has a word the encoder's tokenizer reads",
                          hint="check the training file's tokens or text")
    length = {s: max(len(units[i].input_ids) for i in chosen) for s, chosen in by_sentence.items()}
    steps_per_epoch = (len(by_sentence) + options.batch_size - 1) // options.batch_size
    optimiser, scheduler = adamw_with_warmup(tagger, options.learning_rate, options.weight_decay, options.warmup,
                                             steps_per_epoch * options.epochs,
                                             head_learning_rate=options.head_learning_rate)
    rng = random.Random(options.seed)
    report = TrainReport(len(fit), len(held), labels, output=str(output), validation=validation)
    best_f, since_best, start_epoch = -1.0, 0, 0
    checkpoint = output / CHECKPOINT_FILE
    if checkpoint.exists() and not restart:
        resumed = resume_training(checkpoint, fingerprint, tagger, optimiser, scheduler, rng)
        best_f, since_best, start_epoch = resumed.best_f, resumed.since_best, resumed.epoch
        report.epochs = [EpochScore(**e) for e in resumed.history]
        report.best_epoch = resumed.best_epoch
        report.resumed_after = start_epoch
    started = time.monotonic()
    output.mkdir(parents=True, exist_ok=True)
    saved = False
    for epoch in range(start_epoch + 1, options.epochs + 1):
        epoch_start = time.monotonic()
        tagger.train()
        run = run_epoch(tagger, length_batches(sorted(by_sentence), length, options.batch_size, rng),
                        lambda chosen: tagger.loss([units[i] for s in chosen for i in by_sentence[s]]),
                        optimiser, scheduler, started, options.max_minutes)
        score = EpochScore(epoch, run.mean_loss, round(time.monotonic() - epoch_start, 1))
        improved = True
        if checks is not None:
            precision, recall, f1 = entity_scores(tagger.predict(checks.texts, features=checks.features),
                                                  checks.gold)
            score.dev_f, score.dev_p, score.dev_r = round(f1, 4), round(precision, 4), round(recall, 4)
            improved = score.dev_f > best_f
        report.epochs.append(score)
        if improved:
            best_f = score.dev_f if score.dev_f is not None else best_f
            report.best_epoch, since_best = epoch, 0
            _save(nlp, tagger, output, report, options, whole=not saved)
            saved = True
        else:
            since_best += 1
        if run.out_of_time:
            report.stopped = f"time budget of {options.max_minutes:g} minutes (epoch {epoch} cut short)"
        elif checks is not None and since_best >= options.patience:
            report.stopped = f"no validation improvement for {options.patience} epochs"
        elif epoch < options.epochs:
            save_training(checkpoint, fingerprint, tagger, optimiser, scheduler, rng, Resumed(
                epoch, best_f, since_best, report.best_epoch, [asdict(e) for e in report.epochs]))
        if progress is not None:
            progress(score)
        if report.stopped != "epochs":
            break
    _record_ending(output, report, options)
    checkpoint.unlink(missing_ok=True)  # finished: a rerun starts afresh (and gives the same model)
    return report


def _training_meta(report: TrainReport, options: TransformerTrainOptions) -> dict[str, Any]:
    best = report.best
    return {"mode": "transformer", "spacy_base": options.spacy_base, "base_model": options.base_model,
            "labels": report.labels, "train_sentences": report.train_sentences,
            "dev_sentences": report.dev_sentences, "best_epoch": report.best_epoch,
            "epochs_run": len(report.epochs), "stopped": report.stopped, "seed": options.seed,
            "dev_ents_f": best.dev_f if best else None, "validation": report.validation,
            "label_renames": dict(options.label_renames), "max_epochs": options.epochs,
            "patience": options.patience, "learning_rate": options.learning_rate,
            "batch_size": options.batch_size, "word_shapes": options.word_shapes,
            "constrained_decoding": options.constrained_decoding, "word_pos": options.word_pos,
            "word_base_ner": options.word_base_ner,
            "head_learning_rate": options.head_learning_rate}


def _save(nlp: Language, tagger: TokenTagger, output: Path, report: TrainReport,
          options: TransformerTrainOptions, *, whole: bool) -> None:
    """The pipeline to `output`; `whole` False rewrites only the NER, config and meta (the other components
    never change during a run, and writing them again costs more than an epoch of a small model)."""
    tagger.config.training = _training_meta(report, options)
    nlp.meta["kgpipe_training"] = tagger.config.training
    unchanged = [name for name in nlp.component_names if name != "ner"] + ["vocab", "tokenizer"]
    nlp.to_disk(output, exclude=[] if whole else unchanged)


def _record_ending(output: Path, report: TrainReport, options: TransformerTrainOptions) -> None:
    """Record how training ended (epochs run, why it stopped) in meta.json next to the saved best model."""
    from kgpipe.atomic import atomic_write_text

    meta_path = output / "meta.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        meta["kgpipe_training"] = _training_meta(report, options)
        atomic_write_text(meta_path, json.dumps(meta, indent=2) + "\n")
