"""What every config section shares: the error type, the strict base model, names, plain dicts."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
Name = Annotated[str, Field(pattern=NAME_RE)]


class ConfigError(ValueError):
    """Invalid config; the message names every offending key path."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


def plain(model: BaseModel) -> dict[str, Any]:
    """A JSON-able dict of a spec (aliases used, so ``from`` stays ``from``)."""
    return model.model_dump(mode="json", by_alias=True)


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text)
