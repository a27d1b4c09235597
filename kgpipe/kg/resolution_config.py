"""Settings of entity resolution as pydantic models (extra keys rejected), shared by the resolve function,
the fuse stage's params and the benchmarks. Only pydantic is imported here, so that a pipeline's params can
be validated without loading numpy or scipy."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from kgpipe.kg.institution import DEFAULT_HEADS, DEFAULT_UNIT_WORDS
from kgpipe.kg.learned_weights import LearnedWeights
from kgpipe.kg.normalize import (
    DEFAULT_ABBREVIATIONS,
    DEFAULT_CORPORATE_SUFFIXES,
    DEFAULT_DETERMINERS,
    DEFAULT_HONORIFIC_PREFIXES,
    DEFAULT_HONORIFIC_SUFFIXES,
    DEFAULT_STOPWORDS,
    NormalizeOptions,
)


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NormalizeConfig(_Frozen):
    """Which normalisation steps run (see kgpipe.kg.normalize); an empty list turns a step off."""

    strip_accents: bool = True
    determiners: list[str] = Field(default_factory=lambda: list(DEFAULT_DETERMINERS))
    strip_possessives: bool = True
    corporate_suffixes: list[str] = Field(default_factory=lambda: list(DEFAULT_CORPORATE_SUFFIXES))
    honorific_prefixes: list[str] = Field(default_factory=lambda: list(DEFAULT_HONORIFIC_PREFIXES))
    honorific_suffixes: list[str] = Field(default_factory=lambda: list(DEFAULT_HONORIFIC_SUFFIXES))
    abbreviations: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_ABBREVIATIONS))
    stopwords: list[str] = Field(default_factory=lambda: list(DEFAULT_STOPWORDS))

    def options(self) -> NormalizeOptions:
        return NormalizeOptions(
            strip_accents=self.strip_accents, determiners=tuple(self.determiners),
            strip_possessives=self.strip_possessives, corporate_suffixes=tuple(self.corporate_suffixes),
            honorific_prefixes=tuple(self.honorific_prefixes), honorific_suffixes=tuple(self.honorific_suffixes),
            abbreviations=dict(self.abbreviations), stopwords=tuple(self.stopwords))


class SignalWeights(_Frozen):
    """Weights of the name signals (averaged into the name score), of the name against attribute rules, and
    of context (which can only raise a score)."""

    token: float = Field(0.6, ge=0, description="IDF-weighted word overlap")
    char: float = Field(0.2, ge=0, description="character n-gram Jaccard")
    fuzz: float = Field(0.2, ge=0, description="rapidfuzz ratio (fuzz_scorer)")
    name: float = Field(1.0, gt=0, description="the name score's weight against the attribute rules' weights")
    context: float = Field(0.25, ge=0, le=1, description=(
        "context raises a score s to s + context * overlap * (1 - s), overlap: Jaccard of co-occurring names"))


class AttributeRule(_Frozen):
    """How one record attribute counts: its weight against the name, and how two values compare."""

    weight: float = Field(gt=0)
    kind: Literal["exact", "numeric", "tokens", "phone", "postcode", "address", "price", "code"] = Field(
        "exact", description=(
            "exact: equal after case folding; numeric: 1/(1 + |a - b| / scale); tokens, address: word Jaccard; "
            "phone: the last 7 digits equal; postcode: equal letters and digits; price: 1 - relative difference; "
            "code: an identifier column (a model number): equal letters and digits, and with learn=em its codes "
            "join those found in the names (kgpipe.kg.identifiers)"))
    scale: float = Field(1.0, gt=0, description="numeric: similarity 1/(1 + |a - b| / scale)")


class BlockingConfig(_Frozen):
    num_perm: int = Field(64, ge=8, le=512, description="MinHash permutations")
    lsh_threshold: float = Field(0.3, gt=0, lt=1, description="MinHash LSH Jaccard threshold on shingles")
    max_bucket: int = Field(50, ge=2, description="an LSH bucket larger than this pairs only neighbours")
    window: int = Field(8, ge=1, description="neighbours paired inside an oversized bucket (sorted by name)")
    common_word_share: float = Field(0.01, gt=0, le=1, description=(
        "words in more than this share of the names (and in more than max_bucket of them) are left out of the "
        "LSH shingles, so that 'University' does not put every university in one bucket"))
    common_word_names: int = Field(1_000_000_000, ge=2, description=(
        "and words in more than this many names are left out of the shingles whatever the share: an "
        "absolute cap keeps the size of the buckets, and so the pairs per name, from growing with the corpus"))
    max_candidates: int = Field(20, ge=0, description=(
        "LSH pairs kept per name: those sharing the most bands (cardinality node pruning, as in "
        "meta-blocking); a pair stays when either name keeps it. 0 keeps all"))
    acronym_blocks: bool = True
    token_block_max: int = Field(20, ge=0, description=(
        "names sharing a word (or a typo of it) that at most this many names have are paired (0: off); "
        "catches a short name inside a long one ('Harvard', 'Harvard University') and a typo in a short "
        "name, which shingle Jaccard can miss"))
    seed: int = 1


class EmConfig(_Frozen):
    """How match weights are learned when `learn` is em (kgpipe.kg.em): comparison levels, sampling and the fit."""

    threshold: float = Field(0.5, gt=0, lt=1, description="match probability at which two nodes are one entity")
    name_bands: list[float] = Field(default_factory=lambda: [0.9, 0.75, 0.55, 0.4], description=(
        "the name score's bands below an exact match, highest first: one name comparison, since the name "
        "signals are strongly correlated and Fellegi-Sunter takes comparisons as independent (the 0.4 band "
        "keeps names that share some words apart from unrelated ones: affiliation strings 0.782 -> 0.798, "
        "Walmart-Amazon 0.751 -> 0.754, DBLP-ACM, Restaurants and WebNLG mentions unchanged)"))
    tf_adjust: bool = Field(True, description=(
        "an exact name match on a value takes that value's frequency as its u: 'John Smith' says less than "
        "'Xavier Quonset'"))
    u_pairs: int = Field(200_000, ge=100, description="random pairs the u probabilities are counted on")
    m_pairs: int = Field(200_000, ge=100, description=(
        "candidate pairs EM runs on at most (a hash-sampled subset beyond that)"))
    u_from: Literal["candidates", "random"] = Field("candidates", description=(
        "candidates: u is what the candidate pairs that do not match look like (counted on the candidate pairs, "
        "refined by EM unless fix_u): blocking chose them because their names agree, and whatever goes with a "
        "name (a brand, a product line's numbers) agrees among them far more often than among random pairs, so "
        "u from random pairs makes every candidate look like a match; random: u from random pairs, as Splink "
        "does, with the comparisons in held_out kept out of deciding which candidates match"))
    fix_u: bool = Field(False, description=(
        "keep u where it started (the candidate pairs' level shares, or random pairs' with u_from random) while "
        "EM fits m and the prior; off: EM refines u on the candidates' non-matching share"))
    held_out: list[str] = Field(default_factory=list, description=(
        "comparisons that take no part in deciding which candidates match (their m is learned from the pairs "
        "the others find matching): with u_from random, the ones blocking chose pairs on ('name')"))
    bound_prior: bool = Field(True, description=(
        "in one-to-one linkage at most one pair per node of the smaller side matches: the prior among the "
        "candidates stays at or below (nodes of the smaller side with a candidate) / candidates"))
    rare_code: int = Field(5, ge=1, description=(
        "a code (model number, phone) at most this many nodes carry identifies a thing: sharing it is the "
        "identifier comparison's 'agree'; codes more nodes carry ('16GB', '1080p', 'DDR3') are specifications "
        "many things share, and sharing only those is its weaker 'common' level"))
    code_blocks: bool = Field(True, description=(
        "nodes that share a rare code (at most rare_code nodes carry it: a model number, a phone) are candidate "
        "pairs too, whatever their names: a product's titles on two sites can share little but the model number"))
    fit: Literal["rules", "em"] = Field("rules", description=(
        "rules: the share of candidate pairs that match is estimated by a deterministic rule (pairs with an exact "
        "name, a shared identifier or the same phone, taken as rule_recall of the matches), as Splink's "
        "estimate_probability_two_random_records_match does, and m by EM sessions over the pairs each such rule "
        "accepts (the rule's own comparison held out), as Splink trains on pairs blocked by a rule; em: m and "
        "the prior by one EM over all candidate pairs (bounded in one-to-one linkage)"))
    min_rule_pairs: int = Field(20, ge=1, description=(
        "with fit rules: a rule session needs this many pairs; where the rules accept fewer in all (names alone, "
        "each distinct name one node: no pair has an exact name), the prior and m are fitted as with fit em"))
    min_matches: float = Field(30, ge=0, description=(
        "with fit rules: a comparison whose m the rule sessions found on fewer matches than this (too few for "
        "shares to mean much) gets its m from EM over all candidate pairs instead, the others' m held"))
    start: Literal["fixed", "levels"] = Field("fixed", description=(
        "where one EM over all candidate pairs starts (fit em, or fit rules where no rule accepts enough pairs: "
        "names alone): fixed, each pair counted a match as much as the hand-set scorer's score says (one M-step "
        "on those shares gives the first m, u and prior); levels: matches mostly at each comparison's strongest "
        "level (em.initial_m), prior 0.1. With one comparison that says anything (names alone) EM cannot tell "
        "the prior from m and stays near where it starts"))
    rule_recall: float = Field(0.7, gt=0, le=1, description="the share of the matches the deterministic rule finds")
    pseudo_pairs: float = Field(2.0, ge=0, description=(
        "the learned m and u are shrunk towards the starting m and the random pairs' u as if this many pairs "
        "had shown them: nothing over thousands of candidate pairs, a sane fit over a handful (0: off)"))
    max_iterations: int = Field(500, ge=1)
    tolerance: float = Field(1e-5, gt=0, description="EM stops when no probability moves more than this")
    floor: float = Field(1e-6, gt=0, lt=0.01, description="smallest m or u: a level never seen is rare, not impossible")
    seed: int = 1


class ResolutionConfig(_Frozen):
    """Everything entity resolution decides with; the defaults are the ones documented in docs/benchmarks.md."""

    threshold: float = Field(0.55, gt=0, le=1, description="score at which two nodes are the same entity")
    weights: SignalWeights = SignalWeights()
    token_containment: float = Field(0.75, ge=0, le=1, description=(
        "word score = (1 - c) * weighted Jaccard + c * weighted overlap coefficient (shared words over the "
        "smaller name, so that 'Einstein' and 'Oracle' match 'Albert Einstein' and 'Oracle Corp., Redwood "
        "Shores, CA')"))
    idf_offset: float = Field(1.0, ge=0, description=(
        "word weight = log((1 + names) / (1 + names with the word)) + idf_offset: lower values let rare "
        "words (a city, a proper name) outweigh common ones (University, Department) more"))
    unmatched_part_weight: float = Field(0.25, ge=0, le=1, description=(
        "weight, in the word overlap, of a comma-separated part (after the first, which names the thing) "
        "that shares no word with the other name ('Oracle Corp., Nashua, NH' against 'Oracle': the place "
        "is left unsaid, not contradicted); 1: every word counts alike"))
    fuzz_scorer: str = Field("token_set_ratio", description="a rapidfuzz.fuzz scorer name")
    ngram: int = Field(3, ge=2, le=5)
    acronyms: bool = Field(True, description="acronym agreement and acronym tokens ('UC' in 'UC Berkeley')")
    typo_words: bool = Field(True, description=(
        "words one edit apart ('Unted', 'United'; two for words of 8+ letters) count as the same word in the "
        "token overlap, with credit 1 - edits / length (a soft TF-IDF)"))
    typo_min_length: int = Field(5, ge=3, description="shorter words must match exactly")
    acronym_token_weight: float = Field(0.5, ge=0, description="weight of acronym tokens relative to words")
    expand_acronyms: bool = Field(True, description=(
        "an acronym also stands for the words it abbreviates elsewhere among the names ('MIT' gains "
        "massachusetts, institute, technology when 'Massachusetts Institute of Technology' is present)"))
    number_mismatch: float = Field(0.5, ge=0, le=1, description=(
        "name score factor when both names contain numbers and share none ('Apollo 11', 'Apollo 8')"))
    institution_mismatch: float = Field(0.5, ge=0, le=1, description=(
        "name score factor when two names' institution phrases (kgpipe.kg.institution) share a head word but "
        "differ in its modifiers: a modifier one name never says ('City University of Hong Kong' against "
        "'University of Hong Kong'), or 'at' qualifiers neither name says of the other (Texas at Arlington, "
        "at Dallas); 1: off"))
    institution_heads: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_HEADS), description=(
        "normalised head word -> its class ('universitat' -> 'university'): phrases are compared when their "
        "heads share a class"))
    unit_words: list[str] = Field(default_factory=lambda: list(DEFAULT_UNIT_WORDS), description=(
        "words naming a sub-unit: modifiers before a head in a part that has one belong to the unit"))
    type_mismatch: float = Field(0.0, ge=0, le=1, description="score factor for incompatible types (0: never)")
    attributes: dict[str, AttributeRule] = Field(default_factory=dict)
    guard: Literal["average", "none"] = Field("average", description=(
        "anti-chaining guard: clusters are built by average link, so one strong link cannot join two groups"))
    cluster_threshold: float | None = Field(None, gt=0, le=1, description=(
        "average similarity at which the guard joins two groups inside a component (default: threshold)"))
    max_exact_component: int = Field(150, ge=10, description=(
        "components up to this size are re-clustered on all their pairs; larger ones are first cut (the "
        "guard's pairs per name stay below this, whatever the corpus size)"))
    blocking: BlockingConfig = BlockingConfig()
    normalize: NormalizeConfig = NormalizeConfig()
    learn: Literal["fixed", "em"] = Field("fixed", description=(
        "fixed: the weights and threshold above; em: match weights learned from the data (Fellegi-Sunter by "
        "expectation-maximisation, settings in `em`), their probability the score"))
    em: EmConfig = EmConfig()
    weights_from: LearnedWeights | str | None = Field(None, description=(
        "with learn=em: weights learned before (or the path of their JSON file), used instead of learning again"))
    relearn: bool = Field(False, description=(
        "the fuse stage with learn=em: learn the weights again instead of reusing the ones its last run stored "
        "(learned_weights.json, which keeps entity ids stable across incremental runs); resolve() itself learns on "
        "every call unless weights_from is given"))
    workers: int = Field(1, description="rapidfuzz worker threads (-1: all cores)")

    @model_validator(mode="after")
    def _relearn_with_em(self) -> ResolutionConfig:
        if self.relearn and self.learn != "em":
            raise ValueError("relearn applies only with learn: em (fixed weights are not learned)")
        if self.relearn and self.weights_from is not None:
            raise ValueError("relearn and weights_from contradict each other: leave one out")
        return self

    @field_validator("fuzz_scorer")
    @classmethod
    def _known_scorer(cls, value: str) -> str:
        from rapidfuzz import fuzz

        if not callable(getattr(fuzz, value, None)) or value.startswith("_"):
            raise ValueError(f"'{value}' is not a rapidfuzz.fuzz scorer (e.g. ratio, token_sort_ratio, "
                             "token_set_ratio, WRatio)")
        return value
