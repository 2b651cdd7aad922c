"""Workflows: what the command line, bundles and notebooks call (one function per job)."""
