"""Pure notebook work: reading and validating a course notebook before it is given to a student, and making a
Jupyter notebook of a Jupytext text notebook (``.md``, ``.py``)."""

from __future__ import annotations

import hashlib
import json

import nbformat
from nbformat.validator import ValidationError

from .errors import InvalidNotebook

#: the kernel a Jupytext notebook opens with when it names none (else Jupyter asks the student to choose)
DEFAULT_KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


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


def notebook_bytes(raw: bytes, *, suffix: str, name: str) -> bytes:
    """The Jupyter notebook a student receives for the course file ``raw`` of extension ``suffix`` (pure).

    An ``.ipynb`` is given byte for byte (see :func:`validated_notebook_bytes`); a ``.md`` or ``.py`` is read by
    Jupytext (text processing only: nothing in it runs) and written as an ``.ipynb``, with a Python kernel when it
    names none.

    Raises:
        InvalidNotebook: the file cannot be read as a notebook of its kind.
    """
    if suffix == ".ipynb":
        return validated_notebook_bytes(raw, name=name)
    import jupytext  # only when a course has text notebooks: it is heavier to import than nbformat

    try:
        text = raw.decode("utf-8")
        fmt = suffix.lstrip(".")
        if fmt == "md" and "```{code-cell}" in text:
            fmt = "md:myst"  # MyST cells, whatever its header says (jupytext guesses it only from a full header)
        node = jupytext.reads(text, fmt=fmt)
    except UnicodeDecodeError as exc:
        raise InvalidNotebook(f"The course notebook {name!r} is not UTF-8 text.", log_detail=str(exc)) from exc
    except Exception as exc:  # jupytext raises many kinds, all meaning "not a notebook of this format"
        raise InvalidNotebook(
            f"The course notebook {name!r} cannot be read as a Jupytext notebook.", log_detail=str(exc)[:300]
        ) from exc
    node.metadata.setdefault("kernelspec", dict(DEFAULT_KERNELSPEC))
    for index, cell in enumerate(node.cells):
        # the same file always makes the same notebook (jupytext draws cell ids at random): what a trusted copy's
        # signature is computed over (see nbhosting_core.trust)
        digest = hashlib.sha256(f"{index}\0{cell.cell_type}\0{cell.source}".encode()).hexdigest()
        cell.id = f"nbh-{digest[:16]}"
    out = nbformat.writes(node)  # type: ignore[no-untyped-call]
    return validated_notebook_bytes((out + "\n").encode("utf-8"), name=name)
