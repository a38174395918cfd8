import json

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from nbhosting_core import InvalidNotebook
from nbhosting_core.notebooks import validated_notebook_bytes


def test_a_valid_notebook_is_returned_byte_for_byte():
    raw = nbformat.writes(new_notebook(cells=[new_code_cell("1+1")])).encode()
    assert validated_notebook_bytes(raw, name="x.ipynb") is raw


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"\xff\xfe",
        json.dumps({"cells": "nope"}).encode(),
        json.dumps([1, 2]).encode(),
        json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [{"cell_type": "bogus"}]}).encode(),
    ],
)
def test_invalid_notebooks_are_refused_with_their_name(raw):
    with pytest.raises(InvalidNotebook, match="w1/x.ipynb"):
        validated_notebook_bytes(raw, name="w1/x.ipynb")
