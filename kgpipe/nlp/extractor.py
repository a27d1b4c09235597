"""Documents in, mention and relation rows out: long texts split below nlp.max_length, nlp.pipe over the
pieces, entities (NER merged with the gazetteer) as mentions, relation patterns over the parse.

Rows follow kgpipe.artifacts.MENTIONS and RELATIONS; every offset indexes the original document text.
"""

from __future__ import annotations

import hashlib
import logging
import re
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kgpipe.nlp.documents import split_text
from kgpipe.vocab import (
    DEFAULT_LABEL_MAP,
    DEFAULT_RELATION_MAP,
    DEFAULT_TYPE_PARENTS,
    ancestors,
)

if TYPE_CHECKING:
    from spacy.language import Language
    from spacy.tokens import Doc, Token

    from kgpipe.nlp.gazetteer import SeedGazetteer
    from kgpipe.nlp.model_relations import ModelRelations
    from kgpipe.nlp.patterns import PatternLibrary

log = logging.getLogger(__name__)

RELATIVE_PRONOUN_TAGS = frozenset({"WP", "WDT", "WP$"})
RUNS_KEY = "kgpipe_long_runs"  # Doc.user_data: character spans of runs without whitespace over max_mention_chars
ZONE_CHARS = 1_000_000  # characters parsed in one spaCy memory zone (see Extractor.parsed)


def mention_id(doc_id: str, start: int, end: int) -> str:
    """Stable: the same document and offsets give the same id in every run."""
    return "m" + hashlib.sha1(f"{doc_id}\x1f{start}\x1f{end}".encode()).hexdigest()[:16]


def relation_id(subject_id: str, relation: str, object_id: str) -> str:
    return "r" + hashlib.sha1(f"{subject_id}\x1f{relation}\x1f{object_id}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ExtractOptions:
    label_map: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_LABEL_MAP))
    relation_map: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_RELATION_MAP))
    type_parents: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_TYPE_PARENTS))
    keep_unmapped_labels: bool = False  # DATE, CARDINAL, ... are attributes, not KG entities
    max_chunk_chars: int = 100_000
    batch_size: int = 64
    n_process: int = 1
    # characters parsed at once: the statistical components hold activations for every token of a batch,
    # some 3 KB a character with en_core_web_sm, so a batch is counted in characters as well as in texts
    max_batch_chars: int = 100_000
    # longer entity spans (a run of text without spaces read as one entity) are dropped and counted
    max_mention_chars: int = 200
    min_confidence: float = 0.0
    # (first relation, second relation) -> derived relation, e.g. (lives_in, located_in) -> lives_in
    compose: Mapping[tuple[str, str], str] = field(default_factory=dict)
    # when several relations (or both directions) fire on one pair of mentions, keep only the most confident
    one_relation_per_pair: bool = False
    # with a relation model: "patterns", "model", "union" or "model_then_patterns" (see Extractor._combine)
    relation_policy: str = "patterns"
    relation_threshold: float = 0.5
    max_pairs_per_sentence: int = 64
    # mention label -> the relation model's NER label, before the label itself and the label map are tried
    relation_label_map: Mapping[str, str] = field(default_factory=dict)


@dataclass
class DocumentResult:
    doc_id: str
    mentions: list[dict[str, Any]]
    relations: list[dict[str, Any]]
    sentences: int = 0
    dropped_mentions: int = 0   # labels outside label_map
    long_mentions: int = 0      # spans longer than max_mention_chars
    pairs_scored: int = 0       # ordered mention pairs the relation model scored
    pairs_dropped: int = 0      # beyond max_pairs_per_sentence
    pairs_skipped: int = 0      # no encoder window held both mentions whole
    unknown_labels: int = 0     # mentions the relation model saw as "<unknown>" (no NER label of its own)
    last: bool = True           # from Extractor.stream: the document's last piece


@dataclass
class _Mention:
    row: dict[str, Any]
    root: int              # token index of the span's syntactic head
    sentence: int          # sentence index within the document
    sentence_span: tuple[int, int]


class Extractor:
    """Holds the configured nlp (gazetteer included) and the compiled relation patterns."""

    def __init__(self, nlp: Language, options: ExtractOptions | None = None,
                 patterns: PatternLibrary | None = None, gazetteer: SeedGazetteer | None = None,
                 model: ModelRelations | None = None) -> None:
        from kgpipe.nlp.model_relations import LabelMapper
        from kgpipe.nlp.patterns import PatternLibrary, RelationMatcher

        self.nlp = nlp
        self.options = options or ExtractOptions()
        self.library = patterns or PatternLibrary()
        self.matcher = RelationMatcher(nlp.vocab, self.library, stop_words=getattr(nlp.Defaults, "stop_words", ()))
        self.gazetteer = gazetteer
        # the policy decides which sources run: a model under "patterns" is never asked, patterns under "model" never
        self.model = model if self.options.relation_policy != "patterns" else None
        self.use_patterns = self.options.relation_policy != "model" and len(self.library) > 0
        self.model_label = LabelMapper(model.model.config.entity_labels[1:], self.options.label_map,
                                       self.options.relation_label_map, self.options.type_parents) \
            if model is not None else None
        max_chars = min(self.options.max_chunk_chars, nlp.max_length - 1)
        self.max_chars = max(1, max_chars)
        self._allowed_types: dict[tuple[str, ...], frozenset[str]] = {}
        self._long_run = re.compile(rf"\S{{{self.options.max_mention_chars + 1},}}")

    # --- the stream ---------------------------------------------------------------------------------

    def pieces(self, documents: Iterable[tuple[str, str]]) -> Iterator[tuple[str, tuple[str, int, bool]]]:
        """(piece text, (doc_id, offset, last piece of its document)) for nlp.pipe(as_tuples=True); lazy, so
        only the piece being parsed and the next one exist beside the document text."""
        for doc_id, text in documents:
            chunks = ((o, c) for o, c in split_text(text, self.max_chars) if not c.isspace())
            held = next(chunks, None)
            if held is None:  # an empty or blank document still yields its (empty) result
                yield "", (doc_id, 0, True)
                continue
            for following in chunks:
                yield held[1], (doc_id, held[0], False)
                held = following
            yield held[1], (doc_id, held[0], True)

    def batches(self, items: Iterable[tuple[str, Any]]) -> Iterator[list[tuple[str, Any]]]:
        """Consecutive pieces, at most batch_size of them and max_batch_chars characters together (a piece
        longer than that alone)."""
        batch: list[tuple[str, Any]] = []
        size = 0
        for item in items:
            if batch and (size + len(item[0]) > self.options.max_batch_chars
                          or len(batch) >= self.options.batch_size):
                yield batch
                batch, size = [], 0
            batch.append(item)
            size += len(item[0])
        if batch:
            yield batch

    def make_doc(self, text: str) -> Doc:
        """The tokenized piece. spaCy's tokenizer takes time quadratic in the length of a run without
        whitespace made of punctuation (10,000 '!?.,;' take a minute), so a run longer than
        max_mention_chars, which no kept mention can lie in, is cut into tokens of that length and
        recorded in user_data (RUNS_KEY) for extract_doc to drop the entities touching it."""
        limit = self.options.max_mention_chars
        runs = [m.span() for m in self._long_run.finditer(text)]
        if not runs:
            return self.nlp.make_doc(text)
        from spacy.tokens import Doc

        words: list[str] = []
        spaces: list[bool] = []

        def tokenize(segment: str) -> None:
            for token in self.nlp.make_doc(segment):
                words.append(token.text)
                spaces.append(bool(token.whitespace_))

        at = 0
        for start, end in runs:
            if start > at:
                tokenize(text[at:start])
            # the run's slices are tokens as they are; whitespace after the run starts the next segment
            words.extend(text[k:min(k + limit, end)] for k in range(start, end, limit))
            spaces.extend([False] * len(range(start, end, limit)))
            at = end
        if at < len(text):
            tokenize(text[at:])
        doc = Doc(self.nlp.vocab, words=words, spaces=spaces)
        if doc.text != text:  # cannot happen with spaCy's tokenizer; the plain way is then the safe one
            return self.nlp.make_doc(text)
        doc.user_data[RUNS_KEY] = runs
        return doc

    def _prepare(self, text: str) -> str | Doc:
        """What nlp.pipe gets for a piece: the text itself (tokenized by spaCy, in the workers when there
        are several), or the Doc make_doc builds when the piece has an over-long run."""
        if self._long_run.search(text) is None:
            return text
        return self.make_doc(text)

    def texts_per_batch(self, longest: int | None = None) -> int:
        """With several processes spaCy counts batches in texts: as many as fit max_batch_chars when every
        piece is as long as the longest document allows (`longest` characters; unknown: max_chars)."""
        piece = self.max_chars if longest is None else max(1, min(longest, self.max_chars))
        return max(1, min(self.options.batch_size, self.options.max_batch_chars // piece))

    def parsed(self, documents: Iterable[tuple[str, str]], longest: int | None = None
               ) -> Iterator[tuple[Doc, tuple[str, int, bool]]]:
        """(Doc, (doc_id, offset, last)) for every piece, in order. Each Doc is valid only until the next is
        asked for: pieces are parsed inside spaCy memory zones of ZONE_CHARS characters, each of which frees
        the strings and lexemes it added to the vocabulary (text of unique words would grow it without
        bound); a zone spans several batches because every zone must look its words up afresh."""
        nlp = self.nlp
        if self.options.n_process == 1:
            items: Iterator[Any] = self.batches(self.pieces(documents))

            def parse(batch: Any) -> Iterator[tuple[Doc, Any]]:  # a list of (text, context)
                return nlp.pipe(((self._prepare(text), context) for text, context in batch), as_tuples=True,
                                batch_size=len(batch))
        else:  # the workers' vocabularies are theirs; the zones free what deserialising the Docs adds here
            pieces = ((self._prepare(text), context) for text, context in self.pieces(documents))
            items = iter(nlp.pipe(pieces, as_tuples=True, batch_size=self.texts_per_batch(longest),
                                  n_process=self.options.n_process))

            def parse(batch: Any) -> Iterator[tuple[Doc, Any]]:  # one (Doc, context) the workers parsed
                return iter((batch,))
        exhausted = False
        while not exhausted:
            with nlp.memory_zone():
                chars = 0
                for item in items:
                    for doc, context in parse(item):
                        chars += doc[-1].idx + len(doc[-1].text_with_ws) if len(doc) else 0
                        yield doc, context
                    if chars >= ZONE_CHARS:
                        break
                else:
                    exhausted = True

    def stream(self, documents: Iterable[tuple[str, str]], longest: int | None = None
               ) -> Iterator[DocumentResult]:
        """One result per piece, in order: its mentions and relations, sentence numbers continuing over the
        pieces of a document, `last` set on a document's last piece (a blank document: one empty result).
        Nothing is kept from piece to piece but the document's sentence count, so memory does not grow
        with the document."""
        sentences: dict[str, int] = {}
        for doc, (doc_id, offset, last) in self.parsed(documents, longest):
            base = sentences.pop(doc_id, 0)
            result = DocumentResult(doc_id, [], [], sentences=base)
            self.extract_doc(doc, doc_id, offset, result)
            if not last:
                sentences[doc_id] = result.sentences
            result.sentences -= base
            result.last = last
            yield result

    def extract(self, documents: Iterable[tuple[str, str]], longest: int | None = None
                ) -> Iterator[DocumentResult]:
        """One result per input document, in input order (its rows held together: for documents of any
        size use stream()); `longest`: as for stream()."""
        current: DocumentResult | None = None
        for piece in self.stream(documents, longest):
            if current is None:
                current = DocumentResult(piece.doc_id, [], [])
            current.mentions.extend(piece.mentions)
            current.relations.extend(piece.relations)
            current.sentences += piece.sentences
            current.dropped_mentions += piece.dropped_mentions
            current.long_mentions += piece.long_mentions
            current.pairs_scored += piece.pairs_scored
            current.pairs_dropped += piece.pairs_dropped
            current.pairs_skipped += piece.pairs_skipped
            current.unknown_labels += piece.unknown_labels
            if piece.last:
                yield current
                current = None

    def extract_docs(self, items: Iterable[tuple[str, Doc]]) -> Iterator[DocumentResult]:
        """Like extract(), for documents already tokenized (e.g. a corpus with its own tokens); each Doc
        goes through the pipeline as it is, so it must fit nlp.max_length."""
        stream = self.nlp.pipe(((doc, doc_id) for doc_id, doc in items), as_tuples=True,
                               batch_size=self.options.batch_size, n_process=self.options.n_process)
        for doc, doc_id in stream:
            yield self.extract_doc(doc, doc_id)

    # --- one piece ------------------------------------------------------------------------------------

    def extract_doc(self, doc: Doc, doc_id: str, offset: int = 0,
                    result: DocumentResult | None = None) -> DocumentResult:
        """Mentions and relations of one parsed piece of a document starting at character `offset`;
        sentence indexes continue from what `result` already holds."""
        from kgpipe.nlp.gazetteer import SPANS_KEY

        result = result if result is not None else DocumentResult(doc_id, [], [])
        sentence_base = result.sentences
        # a pipeline without parser or senter: the piece is one sentence
        sentences = list(doc.sents) if doc.has_annotation("SENT_START") else [doc[:]] if len(doc) else []
        sentence_starts = [sent.start for sent in sentences]
        result.sentences += len(sentences)
        gazetteer_spans = {(s.start, s.end) for s in doc.spans.get(SPANS_KEY, [])} if doc.spans else set()
        runs = doc.user_data.get(RUNS_KEY) or []
        run_ends = [end for _, end in runs]
        label_map = self.options.label_map
        by_root: dict[int, _Mention] = {}
        for ent in doc.ents:
            label = ent.label_
            if not label:
                continue
            if label not in label_map and not self.options.keep_unmapped_labels:
                result.dropped_mentions += 1
                continue
            k = bisect_right(run_ends, ent.start_char)  # the first over-long run ending after the span starts
            if ent.end_char - ent.start_char > self.options.max_mention_chars or (
                    k < len(runs) and runs[k][0] < ent.end_char):
                result.long_mentions += 1
                continue
            seed_iri = ent.kb_id_ or None
            source = "gazetteer" if (ent.start, ent.end) in gazetteer_spans else "ner"
            kg_type = label_map.get(label)
            if source == "gazetteer" and seed_iri and self.gazetteer is not None:
                kg_type = self.gazetteer.kg_types.get(seed_iri) or kg_type
            start, end = offset + ent.start_char, offset + ent.end_char
            sentence_index = bisect_right(sentence_starts, ent.start) - 1 if sentences else 0
            sent = sentences[sentence_index] if sentences else ent
            row = {"mention_id": mention_id(doc_id, start, end), "doc_id": doc_id,
                   "sentence": sentence_base + sentence_index, "start_char": start, "end_char": end,
                   "text": ent.text, "label": label, "kg_type": kg_type, "source": source, "seed_iri": seed_iri}
            result.mentions.append(row)
            by_root[ent.root.i] = _Mention(row, ent.root.i, sentence_index,
                                           (offset + sent.start_char, offset + sent.end_char))
        if len(by_root) >= 2 and (self.use_patterns or self.model is not None):
            result.relations.extend(self._relations(doc, doc_id, offset, by_root, result))
        return result

    def _relations(self, doc: Doc, doc_id: str, offset: int, by_root: dict[int, _Mention],
                   result: DocumentResult) -> list[dict[str, Any]]:
        patterns = self._pattern_relations(doc, doc_id, by_root) if self.use_patterns else {}
        found = self._model_relations(doc.text, doc_id, offset, by_root, result) if self.model is not None else {}
        best = self._combine(patterns, found)
        if self.options.one_relation_per_pair:
            best = self._most_confident_per_pair(best)
        if self.options.compose:
            self._compose(best)
        return sorted(best.values(), key=lambda r: (r["sentence_start"], r["subject_id"], r["relation"],
                                                    r["object_id"]))

    def _combine(self, patterns: dict[tuple[str, str, str], dict[str, Any]],
                 found: dict[tuple[str, str, str], dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
        """The relation policy: "patterns" or "model" alone; "union": both, a relation found by both (same
        subject, object and relation IRI) kept once, the more confident row (a tie: the pattern's);
        "model_then_patterns": the model's, and the patterns' only for pairs of mentions (either direction)
        the model gave no relation."""
        policy = self.options.relation_policy
        if policy == "patterns" or not found:
            return patterns
        if policy == "model" or not patterns:
            return found
        best = dict(patterns)
        if policy == "model_then_patterns":
            decided = {frozenset((row["subject_id"], row["object_id"])) for row in found.values()}
            best = {key: row for key, row in patterns.items()
                    if frozenset((row["subject_id"], row["object_id"])) not in decided}
            best.update(found)
            return best
        fact = {(row["subject_id"], row["relation_iri"] or row["relation"], row["object_id"]): key
                for key, row in best.items()}
        for key, row in found.items():
            held = fact.get((row["subject_id"], row["relation_iri"] or row["relation"], row["object_id"]))
            if held is None:
                best[key] = row
            elif row["confidence"] > best[held]["confidence"]:
                del best[held]
                best[key] = row
        return best

    def _model_relations(self, text: str, doc_id: str, offset: int, by_root: dict[int, _Mention],
                         result: DocumentResult) -> dict[tuple[str, str, str], dict[str, Any]]:
        """The relation model's relations between mentions of one sentence, every sentence of the piece scored
        in one call (one encoder pass per sentence for all its pairs)."""
        from kgpipe.nlp.model_relations import SentenceMentions

        assert self.model is not None and self.model_label is not None
        by_sentence: dict[int, list[_Mention]] = {}
        for mention in by_root.values():
            by_sentence.setdefault(mention.sentence, []).append(mention)
        groups = [sorted(group, key=lambda m: (m.row["start_char"], m.row["end_char"]))
                  for _, group in sorted(by_sentence.items()) if len(group) >= 2]
        sentences = []
        for group in groups:
            start, end = group[0].sentence_span
            sentences.append(SentenceMentions(
                text[start - offset:end - offset],
                tuple((m.row["start_char"] - start, m.row["end_char"] - start) for m in group),
                tuple(self.model_label(m.row["label"], m.row["kg_type"]) for m in group)))
        found, counts = self.model.find(sentences)
        result.pairs_scored += counts.scored
        result.pairs_dropped += counts.dropped
        result.pairs_skipped += counts.skipped
        result.unknown_labels += counts.unknown_labels
        rows: dict[tuple[str, str, str], dict[str, Any]] = {}
        for group, relations in zip(groups, found, strict=True):
            for r in relations:
                subj, obj = group[r.subject], group[r.object]
                rows[(subj.row["mention_id"], r.relation, obj.row["mention_id"])] = self._row(
                    doc_id, subj, obj, r.relation, self.model.pattern_id, r.probability)
        return rows

    def _pattern_relations(self, doc: Doc, doc_id: str, by_root: dict[int, _Mention]
                           ) -> dict[tuple[str, str, str], dict[str, Any]]:
        best: dict[tuple[str, str, str], dict[str, Any]] = {}
        for match in self.matcher(doc):
            pattern = match.pattern
            if pattern.confidence < self.options.min_confidence:
                continue
            subjects = self._mentions_at(doc[match.subject_token], by_root)
            objects = self._mentions_at(doc[match.object_token], by_root)
            for subj in subjects:
                if not self._allowed(subj, pattern.subject.labels):
                    continue
                for obj in objects:
                    if obj is subj or obj.sentence != subj.sentence or not self._allowed(obj, pattern.object.labels):
                        continue
                    key = (subj.row["mention_id"], pattern.relation, obj.row["mention_id"])
                    held = best.get(key)
                    if held is not None and (held["confidence"] > pattern.confidence or (
                            held["confidence"] == pattern.confidence and held["pattern_id"] <= pattern.id)):
                        continue  # keep the most confident pattern; ties go to the first id
                    best[key] = self._row(doc_id, subj, obj, pattern.relation, pattern.id,
                                          float(pattern.confidence))
        return best

    @staticmethod
    def _most_confident_per_pair(best: dict[tuple[str, str, str], dict[str, Any]]
                                 ) -> dict[tuple[str, str, str], dict[str, Any]]:
        """One relation per unordered pair of mentions: the most confident; ties go to the first pattern id."""
        winners: dict[frozenset[str], tuple[tuple[str, str, str], dict[str, Any]]] = {}
        for key, row in best.items():
            pair = frozenset((row["subject_id"], row["object_id"]))
            held = winners.get(pair)
            if held is None or (-row["confidence"], row["pattern_id"], key) < (-held[1]["confidence"],
                                                                              held[1]["pattern_id"], held[0]):
                winners[pair] = (key, row)
        return dict(winners.values())

    def _compose(self, best: dict[tuple[str, str, str], dict[str, Any]]) -> None:
        """Add the relations that composition rules derive from pairs of extracted ones in one sentence,
        e.g. lives_in(a, b) and located_in(b, c) give lives_in(a, c); one round, so derived relations do
        not feed further rules. A derived row names both source patterns in pattern_id ("p1+p2") and has
        the product of their confidences; an extracted relation is never replaced by a derived one."""
        by_subject: dict[str, list[dict[str, Any]]] = {}
        for row in best.values():
            by_subject.setdefault(row["subject_id"], []).append(row)
        derived: dict[tuple[str, str, str], dict[str, Any]] = {}
        for first in list(best.values()):
            for second in by_subject.get(first["object_id"], ()):
                gives = self.options.compose.get((first["relation"], second["relation"]))
                if gives is None or second["object_id"] == first["subject_id"]:
                    continue
                key = (first["subject_id"], gives, second["object_id"])
                confidence = first["confidence"] * second["confidence"]
                if key in best or (key in derived and derived[key]["confidence"] >= confidence):
                    continue
                derived[key] = {**first, "relation_id": relation_id(key[0], gives, key[2]), "relation": gives,
                                "relation_iri": self.options.relation_map.get(gives), "object_id": key[2],
                                "pattern_id": f"{first['pattern_id']}+{second['pattern_id']}",
                                "confidence": confidence}
        best.update(derived)

    def _row(self, doc_id: str, subj: _Mention, obj: _Mention, relation: str, pattern_id: str,
             confidence: float) -> dict[str, Any]:
        subject_id, object_id = subj.row["mention_id"], obj.row["mention_id"]
        return {"relation_id": relation_id(subject_id, relation, object_id), "subject_id": subject_id,
                "relation": relation, "relation_iri": self.options.relation_map.get(relation),
                "object_id": object_id, "doc_id": doc_id, "sentence_start": subj.sentence_span[0],
                "sentence_end": subj.sentence_span[1], "pattern_id": pattern_id, "confidence": confidence}

    @staticmethod
    def _mentions_at(token: Token, by_root: dict[int, _Mention]) -> list[_Mention]:
        """The mentions an anchor token stands for: the mention it heads, after resolving a relative
        pronoun to the noun its clause modifies ("Einstein, who was born in Ulm"), plus the mentions
        coordinated with it ("Moore and Noyce worked for ...")."""
        if token.tag_ in RELATIVE_PRONOUN_TAGS:
            clause = next((t for t in [token, *token.ancestors] if t.dep_ == "relcl"), None)
            if clause is None:
                return []
            token = clause.head
        found = []
        for t in (token, *token.conjuncts):
            mention = by_root.get(t.i)
            if mention is not None:
                found.append(mention)
        return found

    def _allowed(self, mention: _Mention, labels: tuple[str, ...]) -> bool:
        """A label listed by the pattern, or a KG type at or below one of theirs (so patterns written for
        PERSON/ORG/GPE also accept a CoNLL-trained model's Peop/Org/Loc and seed types like City)."""
        if not labels or mention.row["label"] in labels:
            return True
        kg_type = mention.row["kg_type"]
        if kg_type is None:
            return False
        allowed = self._allowed_types.get(labels)
        if allowed is None:
            allowed = frozenset(self.options.label_map[lab] for lab in labels if lab in self.options.label_map)
            self._allowed_types[labels] = allowed
        return any(t in allowed for t in ancestors(kg_type, self.options.type_parents))



def extract_documents(extractor: Extractor, documents: Sequence[tuple[str, str]]) -> list[DocumentResult]:
    """One result per (doc_id, text), in order: the per-document extraction both engines run, over whatever
    range of documents a worker is given. A document's result depends on that document alone: long ones are
    split as everywhere (Extractor.pieces), and spaCy's output for a piece does not depend on the pieces it
    shares an nlp.pipe batch with (tests/test_extract_ray.py checks that), so any split of a corpus into
    ranges gives the same rows."""
    longest = max((len(text) for _, text in documents), default=0)
    return list(extractor.extract(documents, longest or None))


@dataclass(frozen=True)
class GazetteerOptions:
    mode: str = "override"               # "override": seed names replace overlapping NER spans; "yield"
    ignore_case: bool = True             # multi-word names; single words always match their exact case
    single_token_pos: tuple[str, ...] = ("PROPN", "NOUN")
    min_alias_chars: int = 2


def build_extractor(nlp: Language, *, options: ExtractOptions | None = None,
                    seed_entities: Iterable[Mapping[str, Any]] | None = None,
                    gazetteer: GazetteerOptions | None = None,
                    patterns: PatternLibrary | None = None,
                    model: ModelRelations | None = None) -> tuple[Extractor, dict[str, Any]]:
    """Configure nlp for extraction (gazetteer installed after the NER, or removed when there are no
    seed entities) and compile the patterns; returns the extractor and facts for the stage's report."""
    from kgpipe.nlp.gazetteer import build_entries, install_gazetteer, remove_gazetteer
    from kgpipe.nlp.models import ner_labels

    options = options or ExtractOptions()
    gazetteer = gazetteer or GazetteerOptions()
    facts: dict[str, Any] = {"pipes": [], "gazetteer_names": 0}
    component = None
    if seed_entities is not None:
        entries, stats = build_entries(
            seed_entities, options.label_map, preferred_labels=ner_labels(nlp),
            ignore_case=gazetteer.ignore_case, min_chars=gazetteer.min_alias_chars,
            parents=options.type_parents, tokenize=nlp.tokenizer)
        component = install_gazetteer(nlp, entries, mode=gazetteer.mode,  # type: ignore[arg-type]
                                      ignore_case=gazetteer.ignore_case,
                                      single_token_pos=gazetteer.single_token_pos)
        facts.update(gazetteer_names=stats.names, gazetteer_ambiguous=len(stats.ambiguous_names),
                     gazetteer_untyped_entities=stats.untyped_entities)
        if stats.ambiguous_names:
            log.info("gazetteer: %d name(s) shared by seed entities of different labels left to the NER: %s",
                     len(stats.ambiguous_names), ", ".join(sorted(stats.ambiguous_names)[:20]))
    else:
        remove_gazetteer(nlp)
    facts["pipes"] = list(nlp.pipe_names)
    return Extractor(nlp, options, patterns, component, model), facts
