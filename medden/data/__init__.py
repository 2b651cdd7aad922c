"""Datasets and sample data that need no download.

- :mod:`medden.data.sources` — what a ``--data`` string stands for: the named sources (MNI152,
  photographs, synthetic images, the real scans kept for validation and testing), folders and mixes,
  split by split; used alike by the trainer and ``medden evaluate``;
- :mod:`medden.data.datasets` — the MNI152/photograph/folder readers, splits and MONAI pipelines;
- :mod:`medden.data.synthetic` — unlimited synthetic clean images (dead leaves, MR-like);
- :mod:`medden.data.samples` — the sample images shipped by installed packages.
"""
