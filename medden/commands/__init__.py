"""Subcommands of the ``medden`` command line: one module each, light at import time (no torch or
MONAI: a ``run`` function imports the heavy workflow it calls)."""
