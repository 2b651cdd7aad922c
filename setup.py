"""Build hook: the trained bundles travel in the wheel, as package data under ``medden/bundles/``.

The bundles live once, at the top of the repository (``bundles/<name>/``). :class:`BuildPy` copies
what running a bundle by name needs (``configs/``, ``models/model.safetensors``, ``docs/``,
``LICENSE``, and the metadata schema ``bundles/schema/``) into the built package, where
:func:`medden.bundle_format.bundle_search_path` finds it without a clone. Left out: ``eval/`` (sample
data, made at run time), the other weight formats of ``models/`` (``model.pt``, ``model.ts``: the same
weights again, 45 MB for the nine bundles, for MONAI model-zoo users of the repository's folders;
medden loads the safetensors), ``large_files.yml`` (which lists those) and the repository's scripts
(``bundles/generate.py``, which writes the configs).
An editable install copies nothing: medden finds the checkout's ``bundles/`` itself.

Everything else about the package is in ``pyproject.toml``; ``MANIFEST.in`` puts the bundles in the
sdist, so a wheel built from the sdist (``python -m build``) carries them too.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

#: the files of ``bundles/<name>/`` a wheel carries (``<name>`` being a folder with configs/inference.json)
BUNDLE_FILES = ("configs/*.json", "configs/*.conf", "models/model.safetensors", "docs/*", "LICENSE")
#: files of ``bundles/`` itself a wheel carries
SHARED_FILES = ("schema/*.json",)


def bundle_files(src: Path) -> list[Path]:
    """The files under ``src`` (a ``bundles/`` folder) that go into the wheel."""
    files = [p for pattern in SHARED_FILES for p in sorted(src.glob(pattern))]
    for bundle in sorted(cfg.parents[1] for cfg in src.glob("*/configs/inference.json")):
        files += [p for pattern in BUNDLE_FILES for p in sorted(bundle.glob(pattern))]
    return [p for p in files if p.is_file()]


class BuildPy(build_py):
    """setuptools' ``build_py``, then ``bundles/`` copied into the built package as ``medden/bundles/``."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        src = Path(__file__).resolve().parent / "bundles"
        dest = Path(self.build_lib) / "medden" / "bundles"
        shutil.rmtree(dest, ignore_errors=True)  # a bundle removed since the last build must not linger
        for path in bundle_files(src):
            target = dest / path.relative_to(src)
            self.mkpath(str(target.parent))
            self.copy_file(str(path), str(target))


setup(cmdclass={"build_py": BuildPy})
