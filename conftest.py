"""pytest configuration shared by the tests and the notebooks (executed by nbmake)."""

import os

# The notebooks run their small-work setting under the test suite (a few seconds of training, a
# couple of images each); a user opening them in Jupyter gets the full run.
os.environ.setdefault("MEDDEN_SMALL_WORK", "1")

import pytest

#: notebooks that train for minutes even in their small-work setting: run by ``make test-slow``
SLOW_NOTEBOOKS = ("03_train_and_compare.ipynb", "04_self_supervised_finetuning.ipynb")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.nodeid.split("::")[0].endswith(SLOW_NOTEBOOKS):
            item.add_marker(pytest.mark.slow)
