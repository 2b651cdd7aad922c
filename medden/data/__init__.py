"""Datasets and sample data that need no download."""
