"""A TOML configuration file read into a pydantic model, a mistake reported with its line (pure)."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from .errors import InvalidConfig

M = TypeVar("M", bound=BaseModel)


def parse_toml_model(
    text: str,
    model: type[M],
    *,
    source: str,
    line_of: Callable[[str, tuple[int | str, ...]], int | None],
    what: str,
) -> M:
    """``text`` as a ``model``; ``line_of`` finds the line of a refused value, ``what`` names the whole file.

    Raises:
        InvalidConfig: not valid TOML, an unknown key, or a refused value; says which line (when found) and why.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidConfig(f"{source}: {exc}", log_detail="not valid TOML") from exc
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        line = line_of(text, tuple(first["loc"]))
        where = f"{source}, line {line}" if line else source
        field = ".".join(str(part) for part in first["loc"] if not isinstance(part, int)) or what
        message = str(first["msg"]).removeprefix("Value error, ")
        raise InvalidConfig(f"{where}: {field}: {message}", log_detail=f"{len(exc.errors())} error(s)") from exc
