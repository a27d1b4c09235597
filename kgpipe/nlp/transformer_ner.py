"""The transformer NER as a spaCy component (factory `kgpipe_transformer_ner`, placed in a pipeline under the
name `ner`): a fine-tuned encoder tags spaCy's tokens with BIO tags, and Doc.ents are set from them.

Registered here with @Language.factory (kgpipe.nlp.models imports this module before loading any model) and
declared as a `spacy_factories` entry point, so plain `spacy.load(folder)` works once kgpipe is installed.
The component's folder holds the tagger (weights as safetensors, config and labels as JSON, the tokenizer);
torch and transformers are imported only when a model is loaded or built. A model that reads the words' parts
of speech must come after the components that set token.pos_ (tagger, attribute_ruler), and one that reads the
base model's own entities after that model's stock NER (BASE_NER), as training puts them; the entities this
component sets replace the stock ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from spacy.language import Language
from spacy.tokens import Doc, Span

from kgpipe.errors import ArtifactError

if TYPE_CHECKING:
    from kgpipe.lm.token_tagger import TokenTagger

FACTORY = "kgpipe_transformer_ner"
BASE_NER = "base_ner"     # the base spaCy model's own NER, renamed, when the transformer NER reads its entities


def base_ner_tags(doc: Doc) -> list[str]:
    """Each token's entity tag as the NER before this component left it: 'B-PERSON', 'I-ORG', 'O', or ''
    where none was set. Read in training (kgpipe.nlp.transformer_train) exactly as here at inference."""
    return [f"{t.ent_iob_}-{t.ent_type_}" if t.ent_iob_ in ("B", "I") else t.ent_iob_ for t in doc]


@dataclass(frozen=True)
class TokenSource:
    """Where the words' values of a word feature the tagger does not read from the text come from: what an
    earlier component sets on the tokens. Training (kgpipe.nlp.transformer_train) reads them the same way."""

    annotation: str                       # Doc.has_annotation's name: set by an earlier component
    read: Callable[[Doc], list[str]]      # each token's value
    what: str                             # what the values are, for messages
    missing: str                          # what reading it found missing, for messages
    hint: str                             # what to do then, at inference
    train_hint: str                       # ... and in training


TOKEN_SOURCES: dict[str, TokenSource] = {
    "pos": TokenSource(
        "POS", lambda doc: [t.pos_ for t in doc], "part of speech",
        "reads each word's part of speech, but no component before it set token.pos_",
        "run the whole folder written by `kgpipe ner train --transformer` (its tagger and attribute_ruler come "
        "before `ner`) without disabling them, or retrain with --no-word-pos",
        "pass --base with a model that has a tagger (and attribute_ruler), or --no-word-pos"),
    "base_ner": TokenSource(
        "ENT_IOB", base_ner_tags, "entities of its own",
        f"reads the base model's own entities, but no NER before it set any (the '{BASE_NER}' component did "
        "not run)",
        f"run the whole folder written by `kgpipe ner train --transformer` (its '{BASE_NER}' comes before `ner`) "
        "without disabling it, or retrain with --no-word-base-ner",
        "pass --base with a model that has a ner (e.g. auto), or --no-word-base-ner"),
}


def token_values(name: str, docs: Sequence[Doc]) -> list[list[str]] | None:
    """Each doc's words' values of the word feature `name` (see TOKEN_SOURCES); None where a doc with words
    lacks the annotation they come from."""
    source = TOKEN_SOURCES[name]
    if any(len(doc) and not doc.has_annotation(source.annotation) for doc in docs):
        return None
    return [source.read(doc) for doc in docs]


class TransformerNer:
    """Sets doc.ents from a TokenTagger; `batch_size` encoder windows per forward pass."""

    def __init__(self, name: str, batch_size: int = 64) -> None:
        self.name = name
        self.batch_size = batch_size
        self.tagger: TokenTagger | None = None
        self.folder: Path | None = None     # where the tagger was loaded from, for messages

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.tagger.config.labels) if self.tagger is not None else ()

    def _require(self) -> TokenTagger:
        if self.tagger is None:
            raise ArtifactError(f"the '{self.name}' component ({FACTORY}) has no trained model",
                                hint="load a model folder written by `kgpipe ner train --transformer`")
        return self.tagger

    def __call__(self, doc: Doc) -> Doc:
        self._tag([doc])
        return doc

    def pipe(self, stream: Iterable[Doc], *, batch_size: int = 128) -> Iterator[Doc]:
        """Docs in batches of `batch_size` (nlp.pipe's): the windows of a batch's docs share forward passes."""
        batch: list[Doc] = []
        for doc in stream:
            batch.append(doc)
            if len(batch) >= batch_size:
                self._tag(batch)
                yield from batch
                batch = []
        if batch:
            self._tag(batch)
            yield from batch

    def _tag(self, docs: list[Doc]) -> None:
        tagger = self._require()
        features: dict[str, list[list[str]]] = {}
        for feature in tagger.features:
            if feature.from_text:
                continue
            values = token_values(feature.name, docs)    # the stock entities: read before set_ents replaces them
            if values is None:
                raise ArtifactError(
                    f"the '{self.name}' component{f' ({self.folder})' if self.folder else ''} "
                    f"{TOKEN_SOURCES[feature.name].missing}", hint=TOKEN_SOURCES[feature.name].hint)
            features[feature.name] = values
        found = tagger.predict([(doc.text, [(t.idx, t.idx + len(t)) for t in doc]) for doc in docs],
                               batch_size=self.batch_size, features=features)
        for doc, entities in zip(docs, found, strict=True):
            # "outside": every token not in one of these entities becomes O, so no stock entity is left over
            doc.set_ents([Span(doc, e.start, e.end, label=e.label) for e in entities], default="outside")

    # --- serialisation (spaCy calls these with the component's folder) ----------------------------------

    def to_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> None:
        """The tagger's files as the folder `path`, swapped in whole (nothing of an earlier model stays)."""
        import shutil

        from kgpipe.atomic import commit_path, temp_path_for

        tagger = self._require()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_path_for(path, directory=True)
        try:
            tagger.save(tmp)
            commit_path(tmp, path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def from_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> TransformerNer:
        from kgpipe.lm.token_tagger import TokenTagger

        self.folder = Path(path)
        self.tagger = TokenTagger.load(self.folder)
        return self


@Language.factory(FACTORY, default_config={"batch_size": 64},
                  assigns=["doc.ents", "token.ent_iob", "token.ent_type"])
def make_transformer_ner(nlp: Language, name: str, batch_size: int) -> TransformerNer:
    return TransformerNer(name, batch_size)
