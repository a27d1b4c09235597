"""Claim: the extract stage's entities and relations, measured on CoNLL04 (real news sentences), end to end.

One summary table first: each NER (the stock spaCy model; models from `kgpipe ner train`, the CNN kind, and
from `kgpipe ner train --transformer`, told apart by their meta.json) with each relation source (patterns:
the hand-written library, patterns learned on the train split in this run, and composition; with
--relation-model, a model from `kgpipe rel train` alone and with the patterns, per extract param
relation_policy), scored end to end (predicted entities) and with gold entities. Several folders of one kind
are training seeds of one recipe: a cell is the mean with (min-max) over them.

Entities: precision/recall/F1 with exact spans, per CoNLL04 type and overall; the stock model's labels are
mapped PERSON->Peop, ORG->Org, GPE/LOC/FAC->Loc, everything else->Other. Relations (Work_For, Live_In,
Located_In, OrgBased_In, Kill): exact head and tail spans plus type. The precision of every pattern that fired
is listed. Every choice is made on the train split: the learner's per-relation thresholds by k-fold
cross-validation inside it, the trainers' early stopping on a held-out slice of it; dev is only reported.
Where several relations fire on one pair of entities, the most confident one is kept (extract param
one_relation_per_pair), as the cross-validation assumes.

Sentences are processed with their gold tokenization, as is usual for CoNLL04. The hand-written relation
names map to CoNLL04 types by the subject's type: works_for/employed_by -> Work_For, killed -> Kill, and
the place relations (lives_in, born_in, located_in, headquartered_in, capital_of) -> Live_In for a person,
OrgBased_In for an organisation, Located_In for a place. A relation model's names are CoNLL04's own.

Usage: python benchmarks/extract_conll04.py [DEV.jsonl] [--train TRAIN.jsonl] [--model STOCK]
         [--ner-model FOLDER ...] [--relation-model FOLDER ... [--relation-policy model union ...]
         [--relation-threshold 0.5]] [--train-command "kgpipe ner train ..." ...] [--train-note TEXT]
         [--patterns pipelines/patterns] [--cv-folds 5] [--max-path 5] [--min-precision 0.6] [--min-support 1]
         [--no-write]
--other-ner-models FOLDER ... is an older spelling of more --ner-model folders.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section

from kgpipe.nlp.model_relations import FoundRelation, ModelRelations, PairCounts, SentenceMentions

if TYPE_CHECKING:
    from spacy.language import Language
    from spacy.tokens import Doc

    from kgpipe.nlp.extractor import ExtractOptions
    from kgpipe.nlp.learn import LearnReport
    from kgpipe.nlp.patterns import PatternLibrary

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "conll04"
TYPES = ("Peop", "Loc", "Org", "Other")
RELATIONS = ("Work_For", "Live_In", "Located_In", "OrgBased_In", "Kill")
STOCK_TO_CONLL = {"PERSON": "Peop", "ORG": "Org", "GPE": "Loc", "LOC": "Loc", "FAC": "Loc",
                  "Peop": "Peop", "Org": "Org", "Loc": "Loc", "Other": "Other"}
PLACE_RELATIONS = {"lives_in", "born_in", "located_in", "headquartered_in", "capital_of"}
PLACE_BY_SUBJECT = {"Peop": "Live_In", "Org": "OrgBased_In", "Loc": "Located_In"}
POLICIES = ("model", "union", "model_then_patterns")

# NER kinds, in the order the summary lists them
STOCK, CNN, TRANSFORMER = "stock", "CNN-trained", "transformer"
KINDS = (STOCK, CNN, TRANSFORMER)
# the relation source of the hand-written and learned patterns with composition (the best pattern-only row)
PATTERNS = "patterns"
# issue 17's targets, means over training seeds: entity F1, relation F1 end to end, relation F1 with gold entities
TARGET_ENTITY, TARGET_END_TO_END, TARGET_GOLD = 0.84, 0.60, 0.70

T = TypeVar("T")
U = TypeVar("U")


# Composition rules for the "+ composition" rows: a place relation followed by located_in gives the place
# relation again (lives in Omaha, Omaha is in Nebraska: lives in Nebraska). How often that holds in the
# train split's gold annotation is measured and printed in the same run.
PLACE_ALL = ("Live_In", "OrgBased_In", "Located_In", "lives_in", "born_in", "located_in", "headquartered_in")
LOCATED_ALL = ("Located_In", "located_in")
COMPOSE = {(first, then): first for first in PLACE_ALL for then in LOCATED_ALL}


# --- aggregation over training seeds (pure) ---------------------------------------------------------------


def ner_kind(meta: Mapping[str, Any]) -> str | None:
    """CNN-trained or transformer, from a model's meta as `kgpipe ner train` writes it (only the transformer
    trainer records a mode); None for a model neither trainer made."""
    training = meta.get("kgpipe_training")
    if not isinstance(training, Mapping):
        return None
    return TRANSFORMER if training.get("mode") == "transformer" else CNN


@dataclass(frozen=True)
class Spread:
    """One measure over training seeds: shown as the mean with (min-max), or the value alone for one seed."""

    values: tuple[float, ...]

    @property
    def mean(self) -> float:
        return sum(self.values) / len(self.values)

    def __str__(self) -> str:
        if len(self.values) == 1:
            return f"{self.values[0]:.3f}"
        return f"{self.mean:.3f} ({min(self.values):.3f}-{max(self.values):.3f})"


def paired(first: Sequence[T], second: Sequence[U]) -> list[tuple[T, U]]:
    """Seeds of two trainings paired by position (the i-th NER model with the i-th relation model); the shorter
    list starts again from its beginning, so every seed of both is used and none twice more than another."""
    if not first or not second:
        return []
    return [(first[i % len(first)], second[i % len(second)]) for i in range(max(len(first), len(second)))]


@dataclass(frozen=True)
class EndToEnd:
    """One end-to-end measurement: one NER model with one relation source (one seed of each)."""

    kind: str                    # STOCK, CNN or TRANSFORMER
    ner: str                     # the NER model's folder (or the stock model's name)
    source: str                  # PATTERNS or a relation_policy
    relation_model: str | None   # the relation model's folder, for a policy
    entity_f1: float
    relation_f1: float


@dataclass(frozen=True)
class WithGold:
    """One relation source (one seed) with gold entities: it does not depend on the NER."""

    source: str
    relation_model: str | None
    relation_f1: float


@dataclass(frozen=True)
class SummaryRow:
    kind: str
    source: str
    ner_seeds: int
    entity_f1: Spread            # over the kind's NER models, each once
    end_to_end: Spread           # over the (NER, relation model) runs of this cell
    gold: Spread                 # over the source's relation models


def summarize(runs: Sequence[EndToEnd], gold: Sequence[WithGold]) -> list[SummaryRow]:
    """One row per NER kind and relation source (kinds in KINDS order, sources in the order first measured)."""
    sources = list(dict.fromkeys(run.source for run in runs))
    rows = []
    for kind in [k for k in KINDS if any(run.kind == k for run in runs)]:
        of_kind = [run for run in runs if run.kind == kind]
        entity = {run.ner: run.entity_f1 for run in of_kind}
        for source in sources:
            cell = [run.relation_f1 for run in of_kind if run.source == source]
            gold_cell = [g.relation_f1 for g in gold if g.source == source]
            if cell and gold_cell:
                rows.append(SummaryRow(kind, source, len(entity), Spread(tuple(entity.values())),
                                       Spread(tuple(cell)), Spread(tuple(gold_cell))))
    return rows


# --- scoring (the strict scorer: exact spans and types) --------------------------------------------------


def composition_support(train: list[Any]) -> tuple[int, int]:
    """(holds, total): gold X(a, b) and Located_In(b, c) in a train sentence, and is X(a, c) gold too?"""
    holds = total = 0
    for s in train:
        gold = {(r.head, r.tail, r.type) for r in s.relations}
        for a, b, rel in gold:
            if rel in ("Live_In", "OrgBased_In", "Located_In"):
                for b2, c, rel2 in gold:
                    if b2 == b and rel2 == "Located_In" and c != a:
                        total += 1
                        holds += (a, c, rel) in gold
    return holds, total


def conll_type(label: str) -> str:
    return STOCK_TO_CONLL.get(label, "Other")


def conll_relation(name: str, subject_type: str) -> str | None:
    if name in RELATIONS:
        return name
    if name in ("works_for", "employed_by"):
        return "Work_For"
    if name == "killed":
        return "Kill"
    if name in PLACE_RELATIONS:
        return PLACE_BY_SUBJECT.get(subject_type)
    return None


def prf(tp: int, n_pred: int, n_gold: int) -> tuple[float, float, float]:
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_gold if n_gold else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def f1(gold: set[tuple], pred: set[tuple]) -> float:
    return prf(len(gold & pred), len(pred), len(gold))[2]


def gold_sets(sentences: list[Any]) -> tuple[set[tuple], set[tuple]]:
    entities, relations = set(), set()
    for n, s in enumerate(sentences):
        spans = s.char_spans()
        for (a, b), e in zip(spans, s.entities, strict=True):
            entities.add((n, a, b, e.type))
        for r in s.relations:
            relations.add((n, *spans[r.head], *spans[r.tail], r.type))
    return entities, relations


@dataclass
class Predicted:
    """What one extractor found on dev, as the scorer's keys; per pattern id, how often it fired and was right."""

    entities: set[tuple]
    relations: set[tuple]
    per_pattern: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))


def predicted_sets(results: list[Any], gold_rel: set[tuple]) -> Predicted:
    found = Predicted(set(), set())
    for res in results:
        n = int(res.doc_id)
        by_id = {}
        for m in res.mentions:
            key = (n, m["start_char"], m["end_char"], conll_type(m["label"]))
            found.entities.add(key)
            by_id[m["mention_id"]] = key
        for r in res.relations:
            s, o = by_id[r["subject_id"]], by_id[r["object_id"]]
            rel = conll_relation(r["relation"], s[3])
            if rel is None:
                continue
            triple = (n, s[1], s[2], o[1], o[2], rel)
            found.relations.add(triple)
            found.per_pattern[r["pattern_id"]]["fired"] += 1
            found.per_pattern[r["pattern_id"]]["correct"] += triple in gold_rel
    return found


def entity_table(gold: set[tuple], pred: set[tuple]) -> str:
    rows = ["| type | gold | predicted | P | R | F1 |", "|---|---|---|---|---|---|"]
    for t in TYPES:
        g = {e for e in gold if e[3] == t}
        p = {e for e in pred if e[3] == t}
        rows.append(f"| {t} | {len(g)} | {len(p)} | " + " | ".join(f"{x:.3f}" for x in prf(len(g & p), len(p), len(g)))
                    + " |")
    overall = prf(len(gold & pred), len(pred), len(gold))
    untyped = prf(len({e[:3] for e in gold} & {e[:3] for e in pred}), len({e[:3] for e in pred}),
                  len({e[:3] for e in gold}))
    rows.append(f"| **all (typed)** | {len(gold)} | {len(pred)} | " + " | ".join(f"**{x:.3f}**" for x in overall)
                + " |")
    rows.append("| spans only (untyped) | | | " + " | ".join(f"{x:.3f}" for x in untyped) + " |")
    return "\n".join(rows)


def relation_row(name: str, mode: str, gold: set[tuple], pred: set[tuple]) -> str:
    cells = []
    for rel in RELATIONS:
        g = {x for x in gold if x[5] == rel}
        p = {x for x in pred if x[5] == rel}
        cells.append(f"{prf(len(g & p), len(p), len(g))[2]:.2f}")
    precision, recall, f = prf(len(gold & pred), len(pred), len(gold))
    return (f"| {name} | {mode} | {len(pred)} | {precision:.3f} | {recall:.3f} | **{f:.3f}** | " + " | ".join(cells)
            + " |")


# --- models and extraction ----------------------------------------------------------------------------------


@dataclass
class NerModel:
    """A NER model with dev parsed by it (gold tokens, its own entities), parsed once for every relation source."""

    kind: str
    spec: str
    nlp: Language
    docs: list[Doc]

    @property
    def training(self) -> dict[str, Any]:
        return dict(self.nlp.meta.get("kgpipe_training") or {})


@dataclass(frozen=True)
class RelationSource:
    """One way to find relations: the patterns, or a relation model (one seed) under a relation_policy."""

    name: str                    # PATTERNS or a relation_policy
    options: ExtractOptions
    patterns: PatternLibrary
    model: ModelRelations | None = None
    folder: str | None = None    # the relation model's folder


@dataclass(frozen=True)
class PatternSets:
    hand: PatternLibrary
    learned: PatternLibrary
    both: PatternLibrary
    report: LearnReport
    seconds: float


def parse(nlp: Language, sentences: list[Any], *, gold_entities: bool) -> list[Doc]:
    """Dev through `nlp` on its gold tokens; with gold_entities the NER (and any gazetteer) is off and each Doc
    gets the gold entities, so that only the parse comes from `nlp`."""
    from spacy.tokens import Span

    from kgpipe.nlp.extractor import ExtractOptions
    from kgpipe.nlp.labelled import make_doc

    if not gold_entities:
        return list(nlp.pipe((make_doc(nlp, s) for s in sentences), batch_size=ExtractOptions().batch_size))
    # base_ner: a transformer NER folder's stock NER, whose entities the gold ones replace anyway
    off = [p for p in ("base_ner", "ner", "kgpipe_gazetteer") if p in nlp.pipe_names]
    with nlp.select_pipes(disable=off):
        docs = list(nlp.pipe(make_doc(nlp, s) for s in sentences))
    for s, doc in zip(sentences, docs, strict=True):
        doc.ents = [Span(doc, e.start, e.end, label=e.type) for e in s.entities]
    return docs


def same_parse(a: Sequence[Doc], b: Sequence[Doc]) -> int:
    """How many of the sentences have the same dependency tree (heads and labels) in both."""
    return sum([(t.head.i, t.dep_) for t in x] == [(t.head.i, t.dep_) for t in y] for x, y in zip(a, b, strict=True))


def extract(nlp: Language, source: RelationSource, docs: list[Doc], gold_rel: set[tuple]) -> Predicted:
    from kgpipe.nlp.extractor import build_extractor

    extractor, _ = build_extractor(nlp, options=source.options, patterns=source.patterns, model=source.model)
    return predicted_sets([extractor.extract_doc(doc, str(n)) for n, doc in enumerate(docs)], gold_rel)


def load_ner_models(stock: str, folders: Sequence[str], dev: list[Any]) -> list[NerModel]:
    """The stock model, then each folder (its kind from its meta), each with dev parsed."""
    from kgpipe.nlp.models import load_model

    models = []
    for n, spec in enumerate([stock, *folders]):
        nlp = load_model(spec, cache=False)
        kind = STOCK if n == 0 else ner_kind(nlp.meta)
        if kind is None:
            raise SystemExit(f"--ner-model {spec}: its meta.json has no kgpipe_training entry, so it was not made "
                             "by `kgpipe ner train` (give the stock model with --model)")
        if kind == TRANSFORMER:
            import torch

            torch.set_num_threads(1)
        t0 = time.perf_counter()
        models.append(NerModel(kind, spec, nlp, parse(nlp, dev, gold_entities=False)))
        print(f"{kind} NER {spec}: dev parsed in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    return models


@dataclass
class CachedModelRelations(ModelRelations):
    """A relation model whose scores are kept per sentence input: the same sentences with the same mentions come
    back under every policy and from NER models that agree, and scoring is what costs (one torch thread)."""

    seen: dict[tuple[SentenceMentions, ...], tuple[list[list[FoundRelation]], PairCounts]] = field(
        default_factory=dict, repr=False)

    def find(self, sentences: Sequence[SentenceMentions]) -> tuple[list[list[FoundRelation]], PairCounts]:
        key = tuple(sentences)
        if key not in self.seen:
            self.seen[key] = super().find(sentences)
        return self.seen[key]


def load_relation_models(folders: Sequence[str], threshold: float) -> list[ModelRelations]:
    import torch

    from kgpipe.nlp.model_relations import load_model_relations

    torch.set_num_threads(1)
    models: list[ModelRelations] = []
    for folder in folders:
        loaded = load_model_relations(folder, threshold=threshold, max_pairs=64)
        models.append(CachedModelRelations(loaded.model, loaded.name, threshold=loaded.threshold,
                                           max_pairs=loaded.max_pairs))
    return models


def learn(nlp: Language, train: list[Any], args: argparse.Namespace) -> PatternSets:
    from kgpipe.nlp.learn import LearnOptions, learn_patterns
    from kgpipe.nlp.patterns import LoadedPattern, PatternLibrary, load_patterns

    hand = load_patterns([Path(args.patterns)])
    t0 = time.perf_counter()
    learned, report = learn_patterns(nlp, train, LearnOptions(
        min_precision=args.min_precision, min_support=args.min_support, cv_folds=args.cv_folds,
        max_path_edges=args.max_path))
    learned_lib = PatternLibrary([LoadedPattern(p, "<learned>", None) for p in learned])
    return PatternSets(hand, learned_lib, PatternLibrary([*hand.loaded, *learned_lib.loaded]), report,
                       time.perf_counter() - t0)


def relation_sources(patterns: PatternSets, models: Sequence[ModelRelations], args: argparse.Namespace
                     ) -> list[RelationSource]:
    """The patterns (hand-written + learned, composition), then each policy with each relation model."""
    from kgpipe.nlp.extractor import ExtractOptions

    sources = [RelationSource(PATTERNS, ExtractOptions(keep_unmapped_labels=True, one_relation_per_pair=True,
                                                       compose=COMPOSE), patterns.both)]
    for policy in args.relation_policy if models else ():
        options = ExtractOptions(keep_unmapped_labels=True, one_relation_per_pair=True, relation_policy=policy,
                                 relation_threshold=args.relation_threshold)
        sources += [RelationSource(policy, options, patterns.both, model, folder)
                    for model, folder in zip(models, args.relation_model, strict=True)]
    return sources


def measure_end_to_end(ner_models: Sequence[NerModel], sources: Sequence[RelationSource], gold_ent: set[tuple],
                       gold_rel: set[tuple]) -> list[EndToEnd]:
    """Each NER model with the patterns; each policy with the kind's NER models and the relation models paired
    by position (see paired)."""
    runs = []
    for kind in KINDS:
        of_kind = [m for m in ner_models if m.kind == kind]
        for name in dict.fromkeys(s.name for s in sources):
            of_name = [s for s in sources if s.name == name]
            for ner, source in paired(of_kind, of_name):
                t0 = time.perf_counter()
                found = extract(ner.nlp, source, ner.docs, gold_rel)
                runs.append(EndToEnd(kind, ner.spec, name, source.folder, f1(gold_ent, found.entities),
                                     f1(gold_rel, found.relations)))
                print(f"{kind} NER {ner.spec}, {name} {source.folder or ''}: relation F1 end to end "
                      f"{runs[-1].relation_f1:.3f} ({time.perf_counter() - t0:.1f}s)", file=sys.stderr)
    return runs


def measure_with_gold(nlp: Language, docs: list[Doc], sources: Sequence[RelationSource], gold_rel: set[tuple]
                      ) -> list[WithGold]:
    runs = []
    for source in sources:
        found = extract(nlp, source, docs, gold_rel)
        runs.append(WithGold(source.name, source.folder, f1(gold_rel, found.relations)))
        print(f"{source.name} {source.folder or ''}: relation F1 with gold entities {runs[-1].relation_f1:.3f}",
              file=sys.stderr)
    return runs


# --- the report's sections ------------------------------------------------------------------------------------


def summary_section(rows: Sequence[SummaryRow], relation_models: int, parse_from: str, agree: str) -> str:
    lines = ["| NER | models | relations | entity F1 | relation F1, end to end | relation F1, gold entities |",
             "|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row.kind} | {row.ner_seeds} | {row.source} | {row.entity_f1} | **{row.end_to_end}** | "
                     f"{row.gold} |")
    pairing = (f" A policy's end-to-end cell pairs the kind's NER models with the {relation_models} relation "
               "models by position (the first with the first, ...; the shorter list starts again), one run per "
               "pair, not every combination." if relation_models else "")
    return ("Each cell: the mean with (min-max) over training seeds (one value where there is one run). "
            f"'{PATTERNS}': hand-written + learned patterns with composition; 'model', 'union', "
            "'model_then_patterns': the relation model alone or with those patterns (extract param "
            "relation_policy; no composition)." + pairing + " Entity F1 is the NER's alone (each model once). "
            "With gold entities the NER is off, so that column depends on the relation source only: it is "
            f"computed once per relation model, on the parse of `{parse_from}` ({agree}).\n\n" + "\n".join(lines)
            + "\n")


def met(value: float, target: float) -> str:
    return f"**{value:.3f}**" + (" (met)" if value >= target else "")


def targets_17(rows: Sequence[SummaryRow]) -> str:
    """Issue 17's targets against the means: entity F1 per NER kind, the best relation source end to end per
    kind, and each relation source with gold entities."""
    kinds = list(dict.fromkeys(row.kind for row in rows))
    entity = ", ".join(f"{kind} {met(next(r for r in rows if r.kind == kind).entity_f1.mean, TARGET_ENTITY)}"
                       for kind in kinds)
    best = []
    for kind in kinds:
        row = max((r for r in rows if r.kind == kind), key=lambda r: r.end_to_end.mean)
        best.append(f"{kind} + {row.source} {met(row.end_to_end.mean, TARGET_END_TO_END)}")
    gold = {row.source: row.gold.mean for row in rows}
    with_gold = ", ".join(f"{source} {met(value, TARGET_GOLD)}"
                          for source, value in sorted(gold.items(), key=lambda item: -item[1]))
    return (f"Targets of issue 17 (means over seeds): entity F1 >= {TARGET_ENTITY:.2f}: {entity}; relation F1 end "
            f"to end >= {TARGET_END_TO_END:.2f} (the best relation source of each NER): {', '.join(best)}; relation "
            f"F1 with gold entities >= {TARGET_GOLD:.2f}: {with_gold}.")


def kept_epoch(training: Mapping[str, Any]) -> str:
    """Which epoch `kgpipe ner train` kept, and on what evidence (from the model's meta.json)."""
    if training.get("dev_ents_f") is None:
        return f"the last of {training.get('epochs_run')} epochs kept (no validation set)"
    return (f"epoch {training.get('best_epoch')} of {training.get('epochs_run')} kept (best entity F1 on the "
            f"validation set: {training.get('validation', 'dev')}, {training['dev_ents_f']:.3f}; patience "
            f"{training.get('patience')})")


def entity_section(ner: NerModel, gold_ent: set[tuple], entities: set[tuple]) -> str:
    training = ner.training
    trained = ""
    if training:
        how = ("`kgpipe ner train --transformer` from " + f"{training.get('base_model')} (spaCy base "
               f"{training.get('spacy_base')})" if ner.kind == TRANSFORMER
               else f"`kgpipe ner train` from {training.get('base_model')}")
        trained = (f"Trained by {how} on {training.get('train_sentences')} sentences, seed {training.get('seed')}: "
                   f"{kept_epoch(training)}, stopped: {training.get('stopped')}; label renames "
                   f"{training.get('label_renames') or 'none'}.\n\n")
    return (f"### Entities, {ner.kind} model (`{ner.spec}`, {ner.nlp.meta.get('name')}; pipes "
            f"{', '.join(ner.nlp.pipe_names)})\n\n{trained}{entity_table(gold_ent, entities)}\n")


def runs_section(runs: Sequence[EndToEnd], gold: Sequence[WithGold], ner_models: Sequence[NerModel],
                 relation_models: Sequence[ModelRelations], folders: Sequence[str]) -> str:
    """Every training run on its own: each NER model's entity F1 and end-to-end relation F1 per source (with the
    relation model it was paired with), and each relation model's F1 with gold entities."""
    sources = list(dict.fromkeys(run.source for run in runs))
    lines = ["| NER | model | seed | training | entity F1 | " + " | ".join(f"{s}, end to end" for s in sources) + " |",
             "|---|---|---|---|---|" + "---|" * len(sources)]
    for ner in ner_models:
        mine = [run for run in runs if run.ner == ner.spec]
        if not mine:
            continue
        cells = []
        for source in sources:
            found = [f"{r.relation_f1:.3f}" + (f" ({Path(r.relation_model).name})" if r.relation_model else "")
                     for r in mine if r.source == source]
            cells.append(", ".join(found) or "-")
        training = ner.training
        lines.append(f"| {ner.kind} | `{ner.spec}` | {training.get('seed', '-')} | "
                     + (kept_epoch(training) if training else "-") + f" | {mine[0].entity_f1:.3f} | "
                     + " | ".join(cells) + " |")
    text = "### Each training run\n\n" + "\n".join(lines) + "\n"
    if relation_models:
        policies = list(dict.fromkeys(g.source for g in gold if g.relation_model is not None))
        rel = ["| relation model | base | training | " + " | ".join(f"{p}, gold entities" for p in policies) + " |",
               "|---|---|---|" + "---|" * len(policies)]
        for model, folder in zip(relation_models, folders, strict=True):
            training = model.model.config.training
            rel.append(f"| `{folder}` | {model.model.config.base_model} | " + ", ".join(
                f"{k} {training[k]}" for k in ("seed", "epochs_run", "best_epoch", "stopped", "heldout_f1")
                if k in training) + " | " + " | ".join(
                f"{g.relation_f1:.3f}" for p in policies for g in gold if g.source == p and g.relation_model == folder)
                + " |")
        text += "\n" + "\n".join(rel) + "\n"
    return text


def relation_section(ner: NerModel, patterns: PatternSets, sources: Sequence[RelationSource], gold_docs: list[Doc],
                     gold_rel: set[tuple], train: list[Any], args: argparse.Namespace
                     ) -> tuple[str, dict[str, float], dict[str, dict[str, Counter]]]:
    """The detailed table for one NER model: each pattern set, and each policy with the first relation model,
    end to end and with gold entities, per relation type. Returns the section, the F1 of each row (key
    'name/mode') and the per-pattern counts of the patterns row."""
    from kgpipe.nlp.extractor import ExtractOptions
    from kgpipe.nlp.learn import describe

    plain = ExtractOptions(keep_unmapped_labels=True, one_relation_per_pair=True)
    composed = next(s for s in sources if s.name == PATTERNS)
    rows_for = [RelationSource("hand-written", plain, patterns.hand),
                RelationSource("learned", plain, patterns.learned),
                RelationSource("both", plain, patterns.both),
                RelationSource("both + composition", composed.options, patterns.both)]
    first_model = sources[1].folder if len(sources) > 1 else None
    rows_for += [s for s in sources if s.folder is not None and s.folder == first_model]
    rows = ["| relations | entities | predicted | P | R | F1 | " + " | ".join(RELATIONS) + " |",
            "|---|---|---|---|---|---|" + "---|" * len(RELATIONS)]
    scores: dict[str, float] = {}
    per_pattern: dict[str, dict[str, Counter]] = {}
    for source in rows_for:
        for mode, docs in (("predicted", ner.docs), ("gold", gold_docs)):
            found = extract(ner.nlp, source, docs, gold_rel)
            rows.append(relation_row(source.name, mode, gold_rel, found.relations))
            scores[f"{source.name}/{mode}"] = f1(gold_rel, found.relations)
            if source.name == "both + composition":
                per_pattern[mode] = found.per_pattern
    holds, total = composition_support(train)
    model_note = ""
    if first_model is not None:
        model = next(s.model for s in sources if s.folder == first_model)
        assert model is not None
        training = model.model.config.training
        model_note = (f"Relation model `{first_model}` (`{model.pattern_id}`, base {model.model.config.base_model}; "
                      "training: " + ", ".join(f"{k} {training[k]}" for k in ("epochs_run", "best_epoch", "stopped",
                                                                             "seed") if k in training)
                      + f"), threshold {args.relation_threshold}; rows 'model' use it alone, 'union' and "
                      "'model_then_patterns' with both pattern sets.\n\n")
    text = (f"### Relations ({len(gold_rel)} gold), entities from `{ner.spec}`\n\n"
            f"Learned on `{Path(args.train).name}` in {patterns.seconds:.1f}s (max path {args.max_path} edges; "
            + (f"thresholds by {args.cv_folds}-fold CV on train" if args.cv_folds >= 2 else
               f"min precision {args.min_precision}, min support {args.min_support}")
            + f"):\n\n```\n{describe(patterns.report)}\n```\n\n"
            "Composition (extract param `compose`): Live_In/OrgBased_In/Located_In(a, b) + "
            f"Located_In(b, c) -> the first relation (a, c); in the train split's gold annotation this "
            f"holds {holds} of {total} times. Derived rows are counted like any other prediction.\n\n"
            + model_note + "\n".join(rows) + "\n")
    return text, scores, per_pattern


def pattern_section(per_pattern: Mapping[str, Mapping[str, Counter]]) -> str:
    lines = ["| pattern | fired (end to end) | precision | fired (gold entities) | precision |",
             "|---|---|---|---|---|"]
    e2e_all, gold_all = per_pattern["predicted"], per_pattern["gold"]
    for pid in sorted(set(e2e_all) | set(gold_all), key=lambda i: (-gold_all[i]["fired"] if i in gold_all else 0, i)):
        e2e, gold = e2e_all.get(pid, Counter()), gold_all.get(pid, Counter())
        lines.append(f"| {pid} | {e2e['fired']} | {e2e['correct'] / e2e['fired'] if e2e['fired'] else 0:.2f} | "
                     f"{gold['fired']} | {gold['correct'] / gold['fired'] if gold['fired'] else 0:.2f} |")
    return ("### Precision of each pattern that fired on dev (hand-written and learned together, with "
            "composition; a derived row counts for 'p1+p2')\n\n" + "\n".join(lines) + "\n")


def older_targets(scores: Mapping[str, float], entity_f1: float, spec: str) -> str:
    return (f"Earlier targets (end to end, NER `{spec}`): entity F1 >= 0.75: **{entity_f1:.3f}**; relation F1 >= "
            f"0.50: **{scores['both/predicted']:.3f}** with the hand-written and learned patterns, "
            f"**{scores['both + composition/predicted']:.3f}** with composition added (learned patterns alone "
            f"{scores['learned/predicted']:.3f}, hand-written alone {scores['hand-written/predicted']:.3f}).")


def command_line(args: argparse.Namespace, defaults: Callable[[str], Any]) -> str:
    """The command as it would reproduce this report (options at their defaults left out)."""
    parts = ["python", "benchmarks/extract_conll04.py"]
    if args.path != defaults("path"):
        parts.append(args.path)
    for name in ("train", "model", "patterns"):
        if getattr(args, name) != defaults(name):
            parts += [f"--{name}", getattr(args, name)]
    if args.ner_models:
        parts += ["--ner-model", *args.ner_models]
    if args.relation_model:
        parts += ["--relation-model", *args.relation_model, "--relation-policy", *args.relation_policy]
        if args.relation_threshold != defaults("relation_threshold"):
            parts += ["--relation-threshold", str(args.relation_threshold)]
    if args.cv_folds < 2 and (args.min_precision != 0.6 or args.min_support != 1):
        parts += ["--min-precision", str(args.min_precision), "--min-support", str(args.min_support)]
    if args.cv_folds != 5:
        parts += ["--cv-folds", str(args.cv_folds)]
    if args.max_path != 5:
        parts += ["--max-path", str(args.max_path)]
    for made in args.train_command or ():
        parts += ["--train-command", made]
    if args.train_note:
        parts += ["--train-note", args.train_note]
    return " ".join(shlex.quote(part) for part in parts)


def parse_args() -> tuple[argparse.Namespace, Callable[[str], Any]]:
    parser = argparse.ArgumentParser()
    parser.add_argument("path", nargs="?", default=str(DATA / "conll04_dev.jsonl"))
    parser.add_argument("--train", default=str(DATA / "conll04_train.jsonl"))
    parser.add_argument("--model", default="auto", help="stock model for the entity baseline")
    parser.add_argument("--ner-model", dest="ner_models", nargs="+", action="extend", default=[],
                        help="model folders from `kgpipe ner train` (CNN) or `kgpipe ner train --transformer`, "
                             "in any mix; folders of one kind are seeds of one recipe (mean and min-max)")
    parser.add_argument("--other-ner-models", dest="ner_models", nargs="*", action="extend",
                        help="an older spelling: more --ner-model folders")
    parser.add_argument("--patterns", default=str(REPO / "pipelines" / "patterns"))
    parser.add_argument("--min-precision", type=float, default=0.6)
    parser.add_argument("--min-support", type=int, default=1)
    parser.add_argument("--cv-folds", type=int, default=5,
                        help="choose per-relation thresholds by k-fold CV on train (0: use the two above)")
    parser.add_argument("--max-path", type=int, default=5, help="longest learned dependency path, in edges")
    parser.add_argument("--train-note", default=None, help="how the models' training settings were chosen, quoted")
    parser.add_argument("--train-command", action="append", default=None,
                        help="a command that made one of the models, quoted in the report (repeatable)")
    parser.add_argument("--relation-model", nargs="+", default=[],
                        help="relation model folders from `kgpipe rel train` (seeds of one recipe)")
    parser.add_argument("--relation-policy", nargs="+", default=["model", "union"], choices=POLICIES,
                        help="the relation_policy rows to add for --relation-model (patterns are always shown)")
    parser.add_argument("--relation-threshold", type=float, default=0.5)
    parser.add_argument("--no-write", action="store_true")
    return parser.parse_args(), parser.get_default


def main() -> None:
    args, defaults = parse_args()
    from kgpipe.nlp.labelled import read_labelled

    dev = read_labelled(Path(args.path))
    train = read_labelled(Path(args.train))
    gold_ent, gold_rel = gold_sets(dev)
    ner_models = load_ner_models(args.model, args.ner_models, dev)
    # patterns are learned on, and gold entities parsed by, the first trained model (the stock one if none):
    # every trainer keeps its base model's tagger and parser, and `agree` below checks that on dev
    first = ner_models[1] if len(ner_models) > 1 else ner_models[0]
    patterns = learn(first.nlp, train, args)
    relation_models = load_relation_models(args.relation_model, args.relation_threshold)
    sources = relation_sources(patterns, relation_models, args)
    gold_docs = parse(first.nlp, dev, gold_entities=True)
    agree = "; ".join(f"`{m.spec}` parses {same_parse(m.docs, gold_docs)} of {len(dev)} sentences alike"
                      for m in ner_models if m is not first)

    runs = measure_end_to_end(ner_models, sources, gold_ent, gold_rel)
    gold = measure_with_gold(first.nlp, gold_docs, sources, gold_rel)
    rows = summarize(runs, gold)
    detail, scores, per_pattern = relation_section(first, patterns, sources, gold_docs, gold_rel, train, args)
    first_of_kind = [next(m for m in ner_models if m.kind == k) for k in KINDS if any(m.kind == k for m in ner_models)]
    entities = [entity_section(m, gold_ent, extract(m.nlp, sources[0], m.docs, gold_rel).entities)
                for m in first_of_kind]
    training = "".join(f"Model made with: `{made}`\n\n" for made in args.train_command or ())
    training += f"{args.train_note}\n\n" if args.train_note else ""
    entity_f1 = next(run.entity_f1 for run in runs if run.ner == first.spec)
    body = (f"Data: `{Path(args.path).name}` ({len(dev)} sentences, {len(gold_ent)} entities, "
            f"{len(gold_rel)} relations); gold tokenization; exact spans. Shared 2-core machine.\n\n"
            + summary_section(rows, len(relation_models), first.spec, agree or "the only model") + "\n"
            + targets_17(rows) + "\n\n" + older_targets(scores, entity_f1, first.spec) + "\n\n" + training
            + runs_section(runs, gold, ner_models, relation_models, args.relation_model) + "\n"
            + "\n".join(entities) + "\n" + detail + "\n" + pattern_section(per_pattern))
    write_section("extract_conll04", "Extraction quality on CoNLL04 dev", body, command_line(args, defaults),
                  print_only=args.no_write)


if __name__ == "__main__":
    main()
