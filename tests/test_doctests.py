"""Every docstring example in the package runs and shows what it says (the nets' examples are also
checked in test_nets.py); a module is taken when its source holds an example, so a new one is checked
at once."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest

import medden

MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(medden.__path__, "medden.")
    if not m.name.endswith("__main__")  # runs the command line when imported
    and ">>> " in Path(importlib.util.find_spec(m.name).origin).read_text(encoding="utf-8")
)


def test_examples_were_found():
    assert len(MODULES) > 20


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0  # (an example marked +SKIP is not attempted)
