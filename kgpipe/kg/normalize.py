"""Name normalisation for entity resolution: one canonical key per surface form, the words that carry its
identity, and acronym keys (MIT, M.I.T. and Massachusetts Institute of Technology share one).

>>> normalize_name("The Massachusetts Inst. of Technology's")
'massachusetts institute of technology'
>>> normalize_name("M.I.T."), normalize_name("AT&T Labs, Inc.")
('mit', 'att laboratory')
>>> sorted(acronym_keys("Massachusetts Institute of Technology")), sorted(acronym_keys("M.I.T."))
(['mit'], ['mit'])
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

DEFAULT_DETERMINERS = ("the", "a", "an")
DEFAULT_CORPORATE_SUFFIXES = (
    "inc", "incorporated", "corp", "corporation", "co", "company", "ltd", "limited", "llc", "plc", "gmbh",
    "ag", "sa", "nv", "bv", "srl", "spa", "pty", "lp", "llp",
)
DEFAULT_HONORIFIC_PREFIXES = (
    "mr", "mrs", "ms", "miss", "dr", "prof", "professor", "sir", "dame", "madame", "mme", "mlle", "herr",
    "frau", "rev",
)
DEFAULT_HONORIFIC_SUFFIXES = ("phd", "md", "frs", "esq")
# Abbreviations common in organisation names; each maps to the spelled-out form (singular, so that
# 'Labs', 'Lab.' and 'Laboratories' agree).
DEFAULT_ABBREVIATIONS: dict[str, str] = {
    "univ": "university", "uni": "university", "dept": "department", "depts": "department",
    "inst": "institute", "lab": "laboratory", "labs": "laboratory", "laboratories": "laboratory",
    "tech": "technology", "natl": "national", "nat'l": "national", "intl": "international",
    "assoc": "association", "coll": "college", "ctr": "center", "centre": "center", "sci": "science",
    "sciences": "science", "eng": "engineering", "engg": "engineering", "engr": "engineering",
    "mgmt": "management", "comp": "computer", "res": "research", "div": "division", "info": "information",
}
# Function words that carry no identity: left out of token sets and acronyms (still in the key).
DEFAULT_STOPWORDS = (
    "of", "the", "and", "at", "for", "in", "on", "a", "an", "de", "del", "della", "di", "du", "des", "la",
    "le", "der", "und", "et", "y", "to", "with",
)
# Letters that NFKD does not decompose into a base letter plus a mark.
SPECIAL_LETTERS = str.maketrans({"ł": "l", "Ł": "L", "ø": "o", "Ø": "O", "æ": "ae", "Æ": "AE", "œ": "oe",
                                  "Œ": "OE", "đ": "d", "Đ": "D", "þ": "th", "Þ": "Th", "ı": "i"})
_DOTTED_INITIALS = re.compile(r"\b(?:[^\W\d_]\.\s?){2,}(?:[^\W\d_]\b\.?)?")
_AMP_IN_WORD = re.compile(r"(?<=\w)&(?=\w)")
_AMP_INITIALS = re.compile(r"\b([A-Z]{1,2})\s+&\s+([A-Z]{1,2})\b")  # 'AT & T' is the acronym AT&T
_POSSESSIVE = re.compile(r"(?<=\w)['’]s\b|(?<=s)['’](?=\s|$)")
_NON_WORD = re.compile(r"[^\w]+|_")
_SEGMENT_SPLIT = re.compile(r"[,;/()\[\]]|\s[-–—]+\s|--+")


@dataclass(frozen=True)
class NormalizeOptions:
    """What normalisation removes or rewrites; every list can be replaced (empty turns a step off)."""

    strip_accents: bool = True
    determiners: tuple[str, ...] = DEFAULT_DETERMINERS
    strip_possessives: bool = True
    corporate_suffixes: tuple[str, ...] = DEFAULT_CORPORATE_SUFFIXES
    honorific_prefixes: tuple[str, ...] = DEFAULT_HONORIFIC_PREFIXES
    honorific_suffixes: tuple[str, ...] = DEFAULT_HONORIFIC_SUFFIXES
    abbreviations: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_ABBREVIATIONS))
    stopwords: tuple[str, ...] = DEFAULT_STOPWORDS

    @cached_property
    def stopword_set(self) -> frozenset[str]:
        """The stopwords as a set, built once per options (name_tokens runs once per name)."""
        return frozenset(self.stopwords)

    def __hash__(self) -> int:  # the mapping is not hashable; options are compared by value
        return hash((self.strip_accents, self.determiners, self.strip_possessives, self.corporate_suffixes,
                     self.honorific_prefixes, self.honorific_suffixes, tuple(sorted(self.abbreviations.items())),
                     self.stopwords))


DEFAULT_OPTIONS = NormalizeOptions()


def fold_text(text: str, strip_accents: bool = True) -> str:
    """HTML entities decoded, Unicode NFKC, casefolded, accents removed ('Zürich' -> 'zurich')."""
    text = unicodedata.normalize("NFKC", html.unescape(text))
    if strip_accents:
        text = unicodedata.normalize("NFKD", text.translate(SPECIAL_LETTERS))
        text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return text.casefold()


def _collapse_initials(text: str) -> str:
    """'M.I.T.' -> 'MIT', 'U. C. Berkeley' -> 'UC Berkeley': dotted initials are one token."""
    return _DOTTED_INITIALS.sub(lambda m: re.sub(r"[.\s]", "", m.group(0)) + " ", text)


def _strip_edges(words: list[str], options: NormalizeOptions) -> list[str]:
    prefixes = set(options.determiners) | set(options.honorific_prefixes)
    suffixes = set(options.corporate_suffixes) | set(options.honorific_suffixes)
    while len(words) > 1 and words[0] in prefixes:
        words = words[1:]
    while len(words) > 1 and words[-1] in suffixes:
        words = words[:-1]
    return words


def _words(text: str, options: NormalizeOptions) -> list[str]:
    """Folded words of one piece of text, abbreviations spelled out (edges not yet stripped)."""
    text = _collapse_initials(unicodedata.normalize("NFKC", html.unescape(text)))
    text = _AMP_IN_WORD.sub("", _AMP_INITIALS.sub(r"\1\2", text))  # AT&T, AT & T -> ATT; 'Bell & Co' stays
    if options.strip_possessives:
        text = _POSSESSIVE.sub("", text)
    text = fold_text(text, options.strip_accents).replace("'", "").replace("’", "")
    abbreviations = options.abbreviations
    return [abbreviations.get(w, w) for w in _NON_WORD.sub(" ", text).split()]


def normalize_name(text: str, options: NormalizeOptions = DEFAULT_OPTIONS) -> str:
    """The exact-match key of a name: folded, punctuation as spaces, leading determiners and honorifics,
    trailing corporate and honorific suffixes removed, abbreviations spelled out."""
    segments = [seg for seg in _SEGMENT_SPLIT.split(html.unescape(text)) if seg.strip()]  # '&#228;' has a ';'
    if not segments:
        return ""
    words: list[str] = []
    for index, segment in enumerate(segments):
        seg_words = _words(segment, options)
        # a segment that is only a corporate suffix ('Oracle, Inc.') goes; otherwise strip its edges
        if index and seg_words and all(w in options.corporate_suffixes for w in seg_words):
            continue
        words.extend(_strip_edges(seg_words, options) if seg_words else [])
    return " ".join(_strip_edges(words, options)) if words else ""


def name_tokens(key: str, options: NormalizeOptions = DEFAULT_OPTIONS) -> list[str]:
    """Identity-bearing tokens of a normalised key (stopwords dropped; all of them if nothing else is left)."""
    words = key.split()
    stop = options.stopword_set
    content = [w for w in words if w not in stop]
    return content or words


# what is_acronym_like drops from an ASCII text: '.', '&' and the ASCII characters regex \s matches
_NOT_IN_ACRONYM = str.maketrans("", "", "".join(c for c in map(chr, range(128)) if c.isspace() or c in ".&"))


def is_acronym_like(text: str) -> bool:
    """'MIT', 'M.I.T.', 'UCLA', 'AT&T': one short token written in capitals or dotted initials."""
    if text.isascii():  # NFKC leaves ASCII as it is: a translate does the regex's work (a third faster)
        compact = text.translate(_NOT_IN_ACRONYM)
    else:
        compact = re.sub(r"[.\s&]", "", unicodedata.normalize("NFKC", text).strip())
    return 2 <= len(compact) <= 8 and compact.isalnum() and compact.upper() == compact and any(
        ch.isalpha() for ch in compact) and (compact.isupper() or "." in text)


def acronym_keys(text: str, options: NormalizeOptions = DEFAULT_OPTIONS) -> set[str]:
    """Acronym keys of a name: the name itself if it is written as an acronym, else the initials of its
    content words when there are at least two ('Massachusetts Institute of Technology' -> 'mit')."""
    if is_acronym_like(text):
        return {normalize_name(text, options).replace(" ", "")}
    tokens = name_tokens(normalize_name(text, options), options)
    if len(tokens) >= 2:
        return {"".join(token[0] for token in tokens)}
    return set()


def _segments(text: str) -> list[str]:
    text = _AMP_INITIALS.sub(r"\1\2", _collapse_initials(html.unescape(text)))
    return [seg for seg in _SEGMENT_SPLIT.split(text) if seg.strip()]


def name_parts(text: str, options: NormalizeOptions = DEFAULT_OPTIONS) -> list[tuple[str, list[str]]]:
    """The comma-separated parts of a name, each as (raw text, words normalised as in `normalize_name`):
    affiliation-like names list sub-unit, organisation and place as separate parts ('Dept. of CS, Univ. of
    Maryland, College Park' -> ('Dept. of CS', ['department', 'of', 'cs']), ...). Parts without words go."""
    out = []
    for segment in _segments(text):
        words = _words(segment, options)
        if words:
            out.append((segment, _strip_edges(words, options)))
    return out


def acronyms_used(text: str, options: NormalizeOptions = DEFAULT_OPTIONS) -> list[str]:
    """Words of a name written as acronyms ('UC' in 'UC Berkeley', 'MIT' in 'MIT CSAIL'), normalised."""
    return list(dict.fromkeys(normalize_name(raw, options).replace(" ", "")
                              for segment in _segments(text) for raw in segment.split() if is_acronym_like(raw)))


def acronym_definitions(text: str, options: NormalizeOptions = DEFAULT_OPTIONS,
                        key: str | None = None) -> list[tuple[str, tuple[str, ...]]]:
    """(initials, content words) of each comma-separated part with two or more content words:
    'University of California, Berkeley' -> [('uc', ('university', 'california'))]."""
    if not _SEGMENT_SPLIT.search(text) and "&" not in text and not any(is_acronym_like(w) for w in text.split()):
        tokens = name_tokens(key if key is not None else normalize_name(text, options), options)  # one part
        return [("".join(t[0] for t in tokens), tuple(tokens))] if len(tokens) >= 2 else []
    out = []
    for segment in _segments(text):
        if any(is_acronym_like(raw) for raw in segment.split()):
            continue  # 'MIT CSAIL' defines nothing
        tokens = name_tokens(" ".join(_strip_edges(_words(segment, options), options)), options)
        if len(tokens) >= 2:
            out.append(("".join(t[0] for t in tokens), tuple(tokens)))
    return out


def char_ngrams(key: str, n: int = 3) -> list[str]:
    """Character n-grams of a key padded with one space each side ('mit' -> ' mi', 'mit', 'it ')."""
    padded = f" {key} "
    if len(padded) <= n:
        return [padded]
    return [padded[i:i + n] for i in range(len(padded) - n + 1)]
