"""Match weights learned from the data (Fellegi-Sunter, kgpipe.kg.em) as a pydantic model: per comparison its
levels with their m and u probabilities, the prior, and how the fit went. Only pydantic is imported here, so a
pipeline's params can name a weights file and the fuse stage can store the weights beside its outputs (as JSON)
and read them back until a relearn is asked for.

>>> weights = LearnedWeights(comparisons=[ComparisonWeights(name="name", levels=["exact", "else"],
...                                                          m=[0.9, 0.1], u=[0.01, 0.99])], prior=0.2)
>>> LearnedWeights.from_json(weights.to_json()) == weights
True
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from kgpipe.errors import InputError


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ComparisonWeights(_Frozen):
    """One comparison: its levels (strongest agreement first) and the probability of each among matching pairs
    (m) and among pairs that do not match (u). A missing value is a level of its own that counts nothing, so it
    is not listed."""

    name: str
    levels: list[str]
    m: list[float]
    u: list[float]

    @model_validator(mode="after")
    def _lengths(self) -> ComparisonWeights:
        if not (len(self.levels) == len(self.m) == len(self.u)) or not self.levels:
            raise ValueError(f"comparison '{self.name}': levels, m and u must have one value per level "
                             f"({len(self.levels)}, {len(self.m)}, {len(self.u)})")
        if any(not 0 < p <= 1 for p in (*self.m, *self.u)):
            raise ValueError(f"comparison '{self.name}': m and u probabilities must be in (0, 1]")
        return self

    def weight(self, level: int) -> float:
        """log2(m / u) of a level: what agreeing at that level adds to the match weight."""
        return math.log2(self.m[level] / self.u[level])


class LearnedWeights(_Frozen):
    """Everything resolution needs to score pairs the way it learned to: reuse it (ResolutionConfig.weights_from)
    and the same pairs get the same probabilities, whatever else the corpus gained since."""

    version: Literal[1] = 1
    comparisons: list[ComparisonWeights]
    prior: float = Field(gt=0, lt=1, description="lambda: the share of candidate pairs that match")
    iterations: int = Field(0, ge=0, description="EM iterations run")
    converged: bool = True
    pairs: int = Field(0, ge=0, description="candidate pairs the m probabilities were fitted on")
    random_pairs: int = Field(0, ge=0, description="random pairs the u probabilities were counted on")
    tf_adjusted: list[str] = Field(default_factory=list, description=(
        "comparisons whose exact level takes the matched value's frequency as its u (term-frequency adjustment)"))
    tf_u: dict[str, float] = Field(default_factory=dict, description=(
        "per term-frequency adjusted comparison, its exact level's u among random pairs: a value's share of the "
        "records is scaled by u / tf_u (u fitted on candidate pairs); absent: u itself"))

    @property
    def prior_weight(self) -> float:
        return math.log2(self.prior / (1 - self.prior))

    def signature(self) -> list[tuple[str, tuple[str, ...]]]:
        """The comparisons and their levels: weights can be reused where the settings give the same."""
        return [(c.name, tuple(c.levels)) for c in self.comparisons]

    def comparison(self, name: str) -> ComparisonWeights:
        for c in self.comparisons:
            if c.name == name:
                return c
        raise KeyError(name)

    def to_json(self) -> str:
        return self.model_dump_json(indent=1)

    @classmethod
    def from_json(cls, text: str | bytes) -> LearnedWeights:
        return cls.model_validate_json(text)

    def save(self, path: str | os.PathLike[str]) -> None:
        from kgpipe.atomic import atomic_write_text

        atomic_write_text(path, self.to_json() + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> LearnedWeights:
        path = Path(path)
        try:
            return cls.from_json(path.read_bytes())
        except OSError as error:
            raise InputError(f"cannot read learned weights: {error.strerror}", file=path,
                             hint="give the weights file a fuse stage wrote, or leave weights_from out to learn "
                                  "them again") from error
        except ValidationError as error:
            raise InputError(f"not a learned-weights file: {error.errors()[0]['msg']}", file=path,
                             hint="give the weights file a fuse stage wrote, or leave weights_from out to learn "
                                  "them again") from error
