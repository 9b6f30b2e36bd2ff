"""``recipes``: how pools are filtered, deduplicated, decontaminated and mixed."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from mathrecipes.config.base import Name, Strict


class NearDedup(Strict):
    """MinHash near-duplicate removal: a recipe's selection option (off by default)."""

    enabled: bool = Field(False, description="remove near duplicates after exact dedup")
    threshold: float = Field(0.8, gt=0, le=1, description="estimated Jaccard of word shingles")
    num_perm: int = Field(128, ge=16, le=1024, description="MinHash permutations")
    ngram: int = Field(5, ge=1, description="words per shingle")


class MixPart(Strict):
    """One part of a recipe's mix: a pool and its share."""

    from_: Name = Field(alias="from", description="a dataset or a synthesis entry")
    weight: float | None = Field(
        None, gt=0, description="relative share; leave out on every part to take the pools whole"
    )

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Volume(Strict):
    """How many rows a recipe selects: exactly one of ``fraction`` and ``count``."""

    fraction: float | None = Field(
        None, gt=0, le=1, description="a share of the largest mix the pools allow"
    )
    count: int | None = Field(
        None, gt=0, description="this many rows (an error if the pools cannot supply them)"
    )

    @model_validator(mode="after")
    def _one(self) -> Volume:
        if (self.fraction is None) == (self.count is None):
            raise ValueError("give exactly one of 'fraction' or 'count'")
        return self


class Decontamination(Strict):
    """Rows matching a benchmark problem (verbatim, normalized text, or n-gram overlap) are
    removed and listed in contamination.parquet."""

    enabled: bool = Field(True, description="decontaminate against the benchmarks")
    ngram: int = Field(13, ge=3, le=50, description="13 by default; 8 is the stricter preset")
    min_overlap: float = Field(
        0.7,
        ge=0,
        le=1,
        description="share of the shorter text's n-grams that must be shared; 0 = any shared n-gram",
    )
    benchmarks: list[Name] | Literal["all"] = Field(
        "all", description="the benchmarks to check against: all, or a list of names"
    )


class RowFilters(Strict):
    """Rows failing any set bound are dropped (and listed in removed.parquet)."""

    min_problem_chars: int | None = Field(None, ge=0, description="shortest problem kept")
    max_problem_chars: int | None = Field(None, ge=0, description="longest problem kept")
    min_solution_chars: int | None = Field(None, ge=0, description="shortest solution kept")
    max_solution_chars: int | None = Field(None, ge=0, description="longest solution kept")
    answer_types: list[str] | None = Field(None, description="keep only these answer types")
    min_pass_rate: float | None = Field(
        None, ge=0, le=1, description="meta.pass_rate (distill with samples) at least this"
    )
    max_pass_rate: float | None = Field(
        None, ge=0, le=1, description="meta.pass_rate at most this (a row without one fails)"
    )


class RecipeSpec(Strict):
    """One training set: pools mixed, filtered, deduplicated, decontaminated, subsampled."""

    mix: list[MixPart] = Field(
        min_length=1,
        description="the parts, each {from: pool, weight: w}; weights are relative shares",
    )
    volume: Volume = Field(
        default_factory=lambda: Volume(fraction=1.0), description="how many rows in all"
    )
    filters: RowFilters = Field(
        default_factory=RowFilters, description="drop rows before dedup (all bounds unset)"
    )
    dedup: bool = Field(True, description="exact dedup on the normalized problem text")
    near_dedup: NearDedup = Field(
        default_factory=NearDedup, description="MinHash near-duplicate removal"
    )
    decontaminate: Decontamination = Field(
        default_factory=Decontamination, description="removal of benchmark problems"
    )
    seed: int = Field(0, description="selection seed: same seed, nested volume subsets")


class SelectionSpec(Strict):
    """How selection runs (not what it selects: both ways give the same training sets)."""

    shards: int = Field(
        1,
        ge=1,
        le=4096,
        description="1: each recipe is one select_recipe job (pools up to a few million rows); "
        "N > 1: each pool's filters, dedup, near dedup and decontamination run as N "
        "select_signatures jobs (a row range each, in parallel) and one select_union job, "
        "shared by the recipes that remove the same rows, and select_recipe only ranks and "
        "takes the rows (docs/selection.md)",
    )


def pool_settings(spec: RecipeSpec, benchmarks: Sequence[str]) -> dict[str, Any]:
    """The settings of recipe ``spec`` that decide which rows of a pool are removed,
    ``benchmarks`` being its decontamination benchmarks (none when it is off): recipes with
    equal settings share their pools' sharded selection jobs (seed, volume and weights do not
    enter)."""
    near, decon = spec.near_dedup, spec.decontaminate
    return {
        "filters": spec.filters.model_dump(exclude_none=True),
        "dedup": spec.dedup,
        "near_dedup": near.model_dump() if near.enabled else {"enabled": False},
        "decontaminate": {
            "enabled": True,
            "ngram": decon.ngram,
            "min_overlap": decon.min_overlap,
            "benchmarks": sorted(benchmarks),
        }
        if decon.enabled and benchmarks
        else {"enabled": False},
    }


def settings_key(settings: dict[str, Any], shards: int) -> str:
    """12 hex digits of a hash of :func:`pool_settings` and the shard count: the ``key`` of a
    pool's sharded selection jobs."""
    text = json.dumps({**settings, "shards": shards}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]
