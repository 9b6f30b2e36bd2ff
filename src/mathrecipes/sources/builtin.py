"""The ``builtin`` source: procedural problems generated offline."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from mathrecipes.builtin.arithmetic import generate
from mathrecipes.config import BuiltinSource as BuiltinSpec


class BuiltinSource:
    def __init__(self, name: str, spec: BuiltinSpec | Mapping[str, Any]) -> None:
        self.name = name
        self.spec = BuiltinSpec.model_validate(spec)  # its one generator: arithmetic

    def _args(self) -> dict[str, Any]:
        keys = ("n", "seed", "split", "style", "min_steps", "max_steps", "max_value")
        return {k: getattr(self.spec, k) for k in keys}

    def rows(self) -> Iterator[tuple[str, dict[str, Any]]]:
        args = self._args()
        for p in generate(**args):
            row = {
                "id": f"{self.name}/{p.index:06d}",
                "source": self.name,
                "problem": p.problem,
                "solution": p.solution,
                "answer": p.answer,
                "answer_type": "integer",
                "meta": {
                    "generator": "arithmetic",
                    "split": args["split"],
                    "style": args["style"],
                    "steps": len(p.program.ops),
                    "max_value": args["max_value"],
                },
            }
            yield f"builtin:{self.name} row {p.index}", row

    def describe(self) -> dict[str, Any]:
        return {"source": "builtin", "generator": "arithmetic", **self._args()}
