"""Converting a WebNLG split into the labelled sentences `kgpipe rel train` reads ({"text", "entities" with
character spans, "relations"}, kgpipe/nlp/labelled.py), for the relation model rows of extract_webnlg.py.

Choices, each made so that training looks like what the extract stage sees at extraction time:
  texts     - a seeded subsample (--limit N --seed S) of all the split's texts, written in the split's order.
  spans     - per entity and sentence, the first of its references of type name or description there, each
              where benchmarks/_webnlg.py located it (its first verbatim occurrence not already taken); pronouns
              and demonstratives ("it", "this") are left out, since the NER never yields them as mentions.
  literals  - WebNLG types the references of literal objects "name" too ("1976" in "completed in 1976"), so a
              literal is told by its DBpedia value instead: quoted (an RDF literal: "1927-07-23", "AMHAAJ") or a
              bare number with an optional unit (2702.0, 14.2 (square kilometres)). Literals get no span and
              their triples no relation (the extract stage drops DATE, CARDINAL, ... mentions anyway).
  sentences - each text is cut into the NER model's sentences, since the extract stage scores only mention
              pairs within one sentence; a sentence with fewer than two entities is left out.
  relations - the DBpedia property of every triple whose subject and object both have a span in the sentence,
              subject as head, object as tail.
  types     - the label of the NER's entity with exactly the span, when the extract stage keeps that label (its
              default label_map: PERSON, ORG, GPE, ...), else ENTITY: a mention with that span would carry the
              same label at extraction time (where labels reach the model unchanged, as relation_label_map is
              empty); ENTITY marks spans the NER misses or cuts differently, which are no mentions there. Pass the
              --ner-model that extract_webnlg.py will use.

Usage: python benchmarks/webnlg_relations.py SPLIT_FOLDER OUT.jsonl [--limit N] [--seed S] [--ner-model FOLDER]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _webnlg import Text, read_webnlg

from kgpipe.nlp.labelled import LabelledEntity, LabelledRelation, LabelledSentence

FALLBACK_LABEL = "ENTITY"
SPAN_TYPES = ("name", "description")
_NUMBER = re.compile(r"[-+]?\d[\d,]*(\.\d+)?(\s*\(.*\))?")


def is_literal(value: str) -> bool:
    """A WebNLG triple value that is a literal, not a DBpedia resource: quoted, or a number with an optional
    unit in parentheses ("103_Colmore_Row" and "1634:_The_Baltic_War" are resources)."""
    value = value.strip()
    return value.startswith('"') or _NUMBER.fullmatch(value) is not None


def entity_spans(text: Text) -> dict[str, list[tuple[int, int]]]:
    """Each non-literal entity's located references of type name or description, in text order."""
    spans: dict[str, list[tuple[int, int]]] = {}
    for ref in text.references:
        if ref.start is None or ref.end is None or ref.type not in SPAN_TYPES or is_literal(ref.entity):
            continue
        spans.setdefault(ref.entity, []).append((ref.start, ref.end))
    return {entity: sorted(found) for entity, found in spans.items()}


def labelled_sentences(text: Text, sentences: Sequence[tuple[int, int]], ner: Mapping[tuple[int, int], str],
                       kept_labels: frozenset[str], counts: Counter[str] | None = None) -> list[LabelledSentence]:
    """The text's sentences (character ranges) with at least two entities, each entity the first of its spans
    inside the sentence, typed by `ner` (span -> label of the NER's entity there; a label outside kept_labels,
    or none, gives FALLBACK_LABEL), with the relations of the text's triples between them; offsets are the
    sentence's."""
    counts = counts if counts is not None else Counter()
    spans = entity_spans(text)
    out = []
    related: set[tuple[str, str, str]] = set()
    for a, b in sentences:
        firsts = {entity: next((s for s in found if a <= s[0] and s[1] <= b), None) for entity, found in spans.items()}
        inside = sorted((span, entity) for entity, span in firsts.items() if span is not None)
        if len(inside) < 2:
            continue
        index = {entity: k for k, (_, entity) in enumerate(inside)}
        entities = []
        for (start, end), _ in inside:
            label = ner.get((start, end))
            entities.append(LabelledEntity(start - a, end - a, label if label in kept_labels else FALLBACK_LABEL))
            counts["spans typed by the NER" if label in kept_labels else f"spans typed {FALLBACK_LABEL}"] += 1
        relations = [LabelledRelation(index[s], index[o], p) for s, p, o in text.triples
                     if s in index and o in index and s != o]
        related.update((s, p, o) for s, p, o in text.triples if s in index and o in index and s != o)
        out.append(LabelledSentence(None, text.text[a:b], tuple(entities), tuple(relations), 0))
    for triple in text.triples:
        s, _, o = triple
        counts["triples: " + ("literal" if is_literal(s) or is_literal(o) else
                              "an entity without span" if s not in spans or o not in spans else
                              "a relation" if triple in related else "never in one sentence")] += 1
    return out


def sample_texts(texts: Sequence[Text], limit: int | None, seed: int) -> list[Text]:
    """`limit` texts drawn with the seed (all when None), in their order in the split."""
    if limit is None or limit >= len(texts):
        return list(texts)
    chosen = sorted(random.Random(seed).sample(range(len(texts)), limit))
    return [texts[i] for i in chosen]


def record(sentence: LabelledSentence, source: str) -> dict[str, Any]:
    """The sentence as a JSON object in labelled.py's text format (`source` names the WebNLG text)."""
    return {"text": sentence.text, "source": source,
            "entities": [{"start": e.start, "end": e.end, "type": e.type} for e in sentence.entities],
            "relations": [{"head": r.head, "tail": r.tail, "type": r.type} for r in sentence.relations]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("split", help="a WebNLG split folder, e.g. ../shared/data/webnlg/train")
    parser.add_argument("output", help="labelled JSON lines to write")
    parser.add_argument("--limit", type=int, default=None, help="a subsample of this many texts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ner-model", default="auto", help="the spaCy model whose NER types the spans")
    args = parser.parse_args()

    from kgpipe.atomic import atomic_write_text
    from kgpipe.nlp.models import load_model
    from kgpipe.vocab import DEFAULT_LABEL_MAP

    texts = sample_texts([t for e in read_webnlg(Path(args.split)) for t in e.texts], args.limit, args.seed)
    nlp = load_model(args.ner_model)
    kept = frozenset(DEFAULT_LABEL_MAP)
    counts: Counter[str] = Counter()
    lines = []
    for text, doc in zip(texts, nlp.pipe(t.text for t in texts), strict=True):
        ner = {(e.start_char, e.end_char): e.label_ for e in doc.ents}
        bounds = [(s.start_char, s.end_char) for s in doc.sents]
        for k, sentence in enumerate(labelled_sentences(text, bounds, ner, kept, counts)):
            lines.append(json.dumps(record(sentence, f"{text.entry_id}/{text.lid}#{k}"), ensure_ascii=False))
    atomic_write_text(args.output, "".join(line + "\n" for line in lines))
    print(f"{len(texts)} texts -> {len(lines)} sentences with two or more entities in {args.output}; "
          + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))


if __name__ == "__main__":
    main()
