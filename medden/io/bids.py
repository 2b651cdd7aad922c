"""BIDS datasets for ``medden denoise --bids``: which files are images, derivative names, sidecars.

A BIDS dataset (a folder holding ``dataset_description.json``) keeps its images as
``sub-<label>/[ses-<label>/]<datatype>/sub-<label>[_ses-<label>]…_<suffix>.nii[.gz]`` with JSON
sidecars beside them or higher up (the inheritance principle). ``medden denoise --bids`` writes a
derivative dataset, following the BIDS derivatives conventions (BIDS 1.10):

- ``OUTPUT/derivatives/medden/dataset_description.json``: ``DatasetType`` ``derivative``,
  ``GeneratedBy`` (medden, its version, the model), ``DatasetLinks`` ``raw`` pointing at INPUT;
- each image as ``sub-*/[ses-*/]<datatype>/<entities>_desc-denoised_<suffix>.nii.gz`` (the source's
  entities in their order, ``desc`` the last one, before the suffix; a source ``desc-X`` becomes
  ``desc-Xdenoised``), with a sidecar JSON: the source's sidecar fields (inherited ones included),
  ``Description``, ``Sources`` (a BIDS URI, ``bids:raw:<path>``) and ``GeneratedBy`` (medden,
  version, model and weights sha256).

Files that are not images (sidecars, tables, b-values, text) are recognised by their names
(:func:`non_image_kind`), so a batch skips them instead of failing them. Only the raw data are
looked at: ``sourcedata/``, ``derivatives/``, ``code/``, ``stimuli/``, ``phenotype/`` and hidden
folders are left out.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medden.errors import UsageError
from medden.io.atomic import atomic_path, is_temporary
from medden.version import __version__

DESCRIPTION = "dataset_description.json"
#: the BIDS version the derivative datasets medden writes follow
BIDS_VERSION = "1.10.0"
#: where the derivative dataset goes under OUTPUT
DERIVATIVE_ROOT = ("derivatives", "medden")
#: the ``desc`` label of a denoised image
DESC = "denoised"
#: top-level folders of a BIDS dataset that hold no raw data
NOT_RAW = frozenset({"derivatives", "sourcedata", "code", "stimuli", "phenotype"})
#: the modality of a BIDS datatype's images (the others name none: medden does not check them)
DATATYPE_MODALITY = {"anat": "MR", "func": "MR", "dwi": "MR", "fmap": "MR", "perf": "MR", "pet": "PT"}

_NON_IMAGE_SUFFIXES = {
    ".json": "JSON file",
    ".tsv": "table",
    ".csv": "table",
    ".bval": "b-values",
    ".bvec": "b-vectors",
    ".txt": "text",
    ".md": "text",
    ".rst": "text",
    ".html": "text",
    ".yml": "text",
    ".yaml": "text",
}
_NON_IMAGE_NAMES = {"readme": "text", "changes": "text", "license": "text", ".bidsignore": "text"}
_LABEL = re.compile(r"^[A-Za-z0-9]+$")
_IMAGE_EXTENSIONS = (".nii.gz", ".nii", ".png", ".tif", ".tiff", ".ome.tif")  # NIfTI, microscopy


def non_image_kind(path: str | os.PathLike[str]) -> str | None:
    """What a file that is not an image is, by its name (``"JSON file"``, ``"table"``, ...), or None.

    Example:
        >>> non_image_kind("sub-01/anat/sub-01_T1w.json"), non_image_kind("sub-01_T1w.nii.gz")
        ('JSON file', None)
    """
    name = Path(path).name.lower()
    if name.endswith(".tsv.gz"):  # physiological recordings, events
        return "table"
    if name in _NON_IMAGE_NAMES or name.split(".")[0] in _NON_IMAGE_NAMES:
        return _NON_IMAGE_NAMES.get(name, "text")
    return _NON_IMAGE_SUFFIXES.get(Path(name).suffix)


def is_dataset(root: str | os.PathLike[str]) -> bool:
    """Whether ``root`` is a BIDS dataset (a folder holding ``dataset_description.json``)."""
    return (Path(root) / DESCRIPTION).is_file()


@dataclass(frozen=True)
class BidsName:
    """A BIDS file name: ``key-value`` entities in their order, the suffix and the extension."""

    entities: tuple[tuple[str, str], ...]
    suffix: str
    extension: str

    @classmethod
    def parse(cls, filename: str) -> BidsName | None:
        """``sub-01_ses-1_T1w.nii.gz`` → entities ``(("sub", "01"), ("ses", "1"))``, suffix ``T1w``,
        extension ``.nii.gz``; None when the name does not follow the BIDS pattern."""
        stem, dot, rest = filename.partition(".")
        parts = stem.split("_")
        if not _LABEL.match(parts[-1]):
            return None
        entities = []
        for part in parts[:-1]:
            key, dash, value = part.partition("-")
            if not dash or not _LABEL.match(key) or not _LABEL.match(value):
                return None
            entities.append((key, value))
        return cls(tuple(entities), parts[-1], dot + rest)

    def get(self, key: str) -> str | None:
        return dict(self.entities).get(key)

    def denoised(self, extension: str | None = None) -> BidsName:
        """The derivative's name: ``desc-denoised`` added as the last entity (a ``desc-X`` of the
        source becomes ``desc-Xdenoised`` in its place), the other entities in their order."""
        if self.get("desc") is not None:
            entities = tuple((k, v + DESC if k == "desc" else v) for k, v in self.entities)
        else:
            entities = (*self.entities, ("desc", DESC))
        return BidsName(entities, self.suffix, self.extension if extension is None else extension)

    def __str__(self) -> str:
        return "_".join([*(f"{k}-{v}" for k, v in self.entities), self.suffix]) + self.extension


def raw_files(root: str | os.PathLike[str]) -> list[Path]:
    """The files of a BIDS dataset's raw data, sorted: hidden files and the folders in
    :data:`NOT_RAW` left out."""
    root = Path(root)
    found = []
    for p in root.rglob("*"):
        rel = p.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or is_temporary(p):
            continue
        if rel.parts[0] in NOT_RAW or not p.is_file():
            continue
        found.append(p)
    return sorted(found)


def derivative_path(rel: str | os.PathLike[str]) -> tuple[Path | None, str]:
    """Where the denoised image of ``rel`` (relative to the dataset root) goes, relative to the
    derivative dataset's root, or None and why it is not a BIDS image of the raw data."""
    rel = Path(rel)
    name = BidsName.parse(rel.name)
    why = "not a BIDS image (sub-<label>/[ses-<label>/]<datatype>/sub-<label>_..._<suffix>.nii[.gz])"
    if name is None or name.extension.lower() not in _IMAGE_EXTENSIONS or len(rel.parts) not in (3, 4):
        return None, why
    sub, ses = name.get("sub"), name.get("ses")
    if sub is None or name.entities[0][0] != "sub" or rel.parts[0] != f"sub-{sub}":
        return None, why
    if (len(rel.parts) == 4) != (ses is not None) or (ses is not None and rel.parts[1] != f"ses-{ses}"):
        return None, why
    nifti = name.extension.lower() in (".nii", ".nii.gz")
    return rel.parent / str(name.denoised(".nii.gz" if nifti else None)), ""


def modality_of(rel: str | os.PathLike[str]) -> str | None:
    """The modality of a raw BIDS image from its datatype folder (``anat`` → ``MR``), or None."""
    parts = Path(rel).parts
    return DATATYPE_MODALITY.get(parts[-2]) if len(parts) >= 3 else None


def _read_object(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UsageError(f"{path.name}: not a readable JSON file ({type(exc).__name__})") from None
    if not isinstance(value, dict):
        raise UsageError(f"{path.name}: a BIDS JSON file must hold an object")
    return value


def sidecar_fields(root: str | os.PathLike[str], rel: str | os.PathLike[str]) -> dict[str, Any]:
    """The metadata of the image ``rel`` by the inheritance principle: every JSON file from the
    dataset root down to the image's folder with the image's suffix and a subset of its entities,
    the deeper (and, at one level, the more specific) overriding the others."""
    root, rel = Path(root), Path(rel)
    name = BidsName.parse(rel.name)
    if name is None:
        return {}
    entities = set(name.entities)
    merged: dict[str, Any] = {}
    for depth in range(len(rel.parts)):
        folder = root.joinpath(*rel.parts[:depth])
        found = []
        for candidate in sorted(folder.glob("*.json")):
            meta = BidsName.parse(candidate.name)
            if meta and meta.suffix == name.suffix and meta.extension == ".json":
                if set(meta.entities) <= entities:
                    found.append((len(meta.entities), candidate))
        for _, path in sorted(found):
            merged.update(_read_object(path))
    return merged


def generated_by(model: Mapping[str, Any]) -> dict[str, Any]:
    """A ``GeneratedBy`` entry: medden, its version, and the model (``model`` is a provenance record)."""
    entry = {
        "Name": "medden",
        "Version": __version__,
        "Description": f"denoising with {model.get('model')} ({model.get('model_kind')})",
        "Model": model.get("model"),
    }
    if model.get("weights_sha256"):
        entry["WeightsSHA256"] = model["weights_sha256"]
    return entry


def sidecar(
    fields: Mapping[str, Any], rel: str | os.PathLike[str], provenance: Mapping[str, Any]
) -> dict[str, Any]:
    """The derivative's sidecar: the source's ``fields``, then ``Description``, ``Sources`` (the raw
    image as a BIDS URI), ``GeneratedBy`` and medden's full provenance record."""
    source = Path(rel).as_posix()
    return {
        **fields,
        "Description": f"{Path(rel).name} denoised by medden {__version__} with {provenance.get('model')}",
        "Sources": [f"bids:raw:{source}"],
        "GeneratedBy": [generated_by(provenance)],
        "MeddenProvenance": dict(provenance),
    }


def sidecar_path(image: str | os.PathLike[str]) -> Path:
    """The sidecar JSON beside a BIDS image (its extension replaced by ``.json``)."""
    image = Path(image)
    return image.with_name(image.name.partition(".")[0] + ".json")


def write_json(path: str | os.PathLike[str], record: Mapping[str, Any]) -> Path:
    """``record`` as indented JSON at ``path``, written atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return Path(path)


def dataset_description(
    raw_root: str | os.PathLike[str], root: str | os.PathLike[str], model: Mapping[str, Any]
) -> dict[str, Any]:
    """The derivative dataset's ``dataset_description.json`` for the raw dataset ``raw_root``,
    written at ``root`` by ``model`` (a provenance record)."""
    raw = _read_object(Path(raw_root) / DESCRIPTION)
    source_name = raw.get("Name")
    desc: dict[str, Any] = {
        "Name": f"medden denoised: {source_name}" if isinstance(source_name, str) else "medden denoised",
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "derivative",
        "GeneratedBy": [generated_by(model)],
        "DatasetLinks": {"raw": os.path.relpath(Path(raw_root).resolve(), Path(root).resolve())},
    }
    doi = raw.get("DatasetDOI")
    if isinstance(doi, str) and doi:
        desc["SourceDatasets"] = [{"DOI": doi}]
    return desc


def write_dataset_description(
    raw_root: str | os.PathLike[str],
    root: str | os.PathLike[str],
    model: Mapping[str, Any],
    overwrite: bool = False,
) -> Path:
    """Write the derivative dataset's description at ``root`` (atomically); an existing one that
    medden did not write is kept, and refused with a usage error unless ``overwrite``."""
    path = Path(root) / DESCRIPTION
    if path.exists() and not overwrite:
        try:
            ours = json.loads(path.read_text(encoding="utf-8"))["GeneratedBy"][0]["Name"] == "medden"
        except (OSError, ValueError, KeyError, IndexError, TypeError):
            ours = False
        if not ours:
            raise UsageError(
                f"{path} exists and was not written by medden: choose another OUTPUT (or --overwrite)"
            )
    return write_json(path, dataset_description(raw_root, root, model))
