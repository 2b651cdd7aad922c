"""Subcommands of the ``medden`` command line: one module each, argparse only at import time."""
