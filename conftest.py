"""pytest configuration shared by the tests and the notebooks (executed by nbmake)."""

import os

# The notebooks run their small-work setting under the test suite (a few seconds of training, a
# couple of images each); a user opening them in Jupyter gets the full run.
os.environ.setdefault("MEDDEN_SMALL_WORK", "1")
