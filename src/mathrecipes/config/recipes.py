"""``recipes``: how pools are filtered, deduplicated, decontaminated and mixed."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from mathrecipes.config.base import Name, Strict


class NearDedup(Strict):
    """MinHash near-duplicate removal: a recipe's selection option (off by default)."""

    enabled: bool = False
    threshold: float = Field(0.8, gt=0, le=1, description="estimated Jaccard of word shingles")
    num_perm: int = Field(128, ge=16, le=1024, description="MinHash permutations")
    ngram: int = Field(5, ge=1, description="words per shingle")


class MixPart(Strict):
    from_: Name = Field(alias="from")
    weight: float | None = Field(
        None, gt=0, description="relative share; leave out on every part to take the pools whole"
    )

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Volume(Strict):
    fraction: float | None = Field(None, gt=0, le=1)
    count: int | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _one(self) -> Volume:
        if (self.fraction is None) == (self.count is None):
            raise ValueError("give exactly one of 'fraction' or 'count'")
        return self


class Decontamination(Strict):
    enabled: bool = True
    ngram: int = Field(13, ge=3, le=50, description="13 by default; 8 is the stricter preset")
    min_overlap: float = Field(
        0.7,
        ge=0,
        le=1,
        description="share of the shorter text's n-grams that must be shared; 0 = any shared n-gram",
    )
    benchmarks: list[Name] | Literal["all"] = "all"


class RowFilters(Strict):
    """Rows failing any set bound are dropped (and listed in removed.parquet)."""

    min_problem_chars: int | None = Field(None, ge=0)
    max_problem_chars: int | None = Field(None, ge=0)
    min_solution_chars: int | None = Field(None, ge=0)
    max_solution_chars: int | None = Field(None, ge=0)
    answer_types: list[str] | None = Field(None, description="keep only these answer types")
    min_pass_rate: float | None = Field(
        None, ge=0, le=1, description="meta.pass_rate (distill with samples) at least this"
    )
    max_pass_rate: float | None = Field(None, ge=0, le=1)


class RecipeSpec(Strict):
    mix: list[MixPart] = Field(min_length=1)
    volume: Volume = Field(default_factory=lambda: Volume(fraction=1.0))
    filters: RowFilters = Field(default_factory=RowFilters)
    dedup: bool = True
    near_dedup: NearDedup = Field(default_factory=NearDedup)
    decontaminate: Decontamination = Field(default_factory=Decontamination)
    seed: int = Field(0, description="selection seed: same seed, nested volume subsets")
