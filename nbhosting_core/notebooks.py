"""Pure notebook work: reading and validating a course notebook before it is given to a student."""

from __future__ import annotations

import json

import nbformat
from nbformat.validator import ValidationError

from .errors import InvalidNotebook


def validated_notebook_bytes(raw: bytes, *, name: str) -> bytes:
    """Return ``raw`` unchanged if it is a valid Jupyter notebook, else raise.

    The student receives the course file byte for byte; validation only guards against handing out
    something Jupyter cannot open.

    Raises:
        InvalidNotebook: naming the notebook and what is wrong with it.
    """
    try:
        node = nbformat.reads(raw.decode("utf-8"), as_version=nbformat.NO_CONVERT)  # type: ignore[no-untyped-call]
        nbformat.validate(node)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidNotebook(
            f"The course notebook {name!r} is not a readable notebook file.", log_detail=str(exc)
        ) from exc
    except (ValidationError, nbformat.reader.NotJSONError, KeyError, AttributeError) as exc:
        raise InvalidNotebook(
            f"The course notebook {name!r} is not a valid Jupyter notebook.", log_detail=str(exc)[:300]
        ) from exc
    return raw
