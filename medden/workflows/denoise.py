"""Batch denoising (``medden denoise``) and the Python API (:func:`denoise`).

A batch is a list of *units*: each DICOM series, NIfTI file or 2D image found under the input.
Each unit is read through :mod:`medden.io`, scaled into [0, 1] with an exactly invertible per-unit
map (:class:`medden.inferers.IntensityScaler`), denoised by an inferer (slice-wise 2D, 2.5D, 3D
sliding window, tiled 2D), mapped back to the input's units and written in the input's format,
atomically (a DICOM series as a derived series folder renamed as a whole). The input is never
written to.

``OUTPUT/manifest.jsonl`` gets one JSON object per unit: ``input``, ``output``, ``status``
(``done``, ``skipped`` or ``failed``), ``error`` (one line), ``seconds``, and what was measured
(values clipped for the denoiser and on writing, noise level, seconds spent reading, denoising
and writing). While the batch runs the manifest is an fsynced append-only log (a ``started``
record before each unit, so ``kill -9`` loses nothing); at the end it is rewritten atomically with
the last record of each unit. A rerun skips the units that are done (resume) unless
``overwrite``; a unit whose output exists but that no earlier run of the batch wrote is refused
(it is not ours) unless ``overwrite``, on every rerun. A unit that cannot be read or does not fit
the options fails with its reason and the batch goes on. What an interrupted run left under
temporary names is removed at the end of the next. With ``shard=(i, N)`` (or under ``torchrun``)
a process takes every N-th unit and writes ``manifest.part-i-of-N.jsonl``; the last shard to
finish merges the parts into ``manifest.jsonl``.

Logs and the manifest name series by number, modality and a hash of their UID, never by patient
name or ID.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import medden.io as mio
from medden.denoiser import LoadedModel
from medden.errors import UsageError
from medden.io import bids
from medden.io.atomic import atomic_path, is_temporary, safe_join, sanitize_name
from medden.io.base import count_clipped
from medden.io.isolate import IsolatedLoader
from medden.io.lock import output_lock
from medden.loading import load_model
from medden.version import __version__
from medden.workflows.figures import save_panels
from medden.workflows.predict import Options, check_mode, layout_of, predict, work_size

logger = logging.getLogger("medden.denoise")

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
NIFTI_SUFFIXES = (".nii", ".nii.gz")
MANIFEST = "manifest.jsonl"


@dataclass
class Unit:
    """One thing to denoise (or one thing found that cannot be).

    Attributes:
        key: stable identifier (relative path; for a series, its folder and a hash of its UID).
        kind: ``dicom``, ``nifti``, ``image`` or ``bad``.
        source: what :func:`medden.io.load` takes (a path or a series).
        output: where the result goes (inside OUTPUT).
        label: a name for logs without patient data.
        error: why a ``bad`` unit cannot be processed.
        bad_status: ``failed`` (a broken file) or ``skipped`` (not an image: an SR object, a sidecar).
        modality: what the input is known to be (a DICOM series' Modality, a BIDS datatype's), or None.
    """

    key: str
    kind: str
    source: Any
    output: Path
    label: str
    error: str | None = None
    bad_status: str = "failed"
    modality: str | None = None


# --------------------------------------------------------------------------------------------
# finding the units
# --------------------------------------------------------------------------------------------


def _is_nifti(p: Path) -> bool:
    return p.name.lower().endswith(NIFTI_SUFFIXES)


def _is_image(p: Path) -> bool:
    return p.suffix.lower() in IMAGE_SUFFIXES


def series_folder_name(series: Any) -> str:
    """``S<number>_<modality>_<description>_<id>``, sanitised (nothing from the header can add a
    path separator or ``..``); the id is a hash of the SeriesInstanceUID, so names are unique."""
    number = f"S{series.series_number}" if series.series_number is not None else "S"
    parts = [number, series.modality, (series.description or "")[:40], series.id]
    return sanitize_name("_".join(str(p) for p in parts if p), fallback=series.id)


def series_label(series: Any) -> str:
    """A log-safe name: series number, modality and id (a hash of the UID); no patient data."""
    return f"series {series.series_number} ({series.modality or '?'}, id {series.id})"


def discover(
    input_path: str | os.PathLike[str], output: str | os.PathLike[str], bids_mode: bool = False
) -> list[Unit]:
    """The units under ``input_path`` and their outputs under ``output`` (sorted by key); with
    ``bids_mode``, those of a BIDS dataset and their outputs in its derivative dataset
    (:func:`discover_bids`). Sidecars and other files that are not images are ``skipped`` units."""
    src, out = Path(input_path), Path(output)
    if not src.exists():
        raise UsageError(f"input not found: {src}")
    if bids_mode:
        return discover_bids(src, out)
    if src.is_file():
        root, files = src.parent, [src]
    else:
        root = src
        files = sorted(p for p in src.rglob("*") if p.is_file() and not is_temporary(p))
        files = [p for p in files if out.resolve() not in p.resolve().parents]
    units: list[Unit] = []
    rest: list[Path] = []
    for p in files:
        rel = p.relative_to(root)
        if _is_nifti(p) or _is_image(p):
            kind = "nifti" if _is_nifti(p) else "image"
            target = safe_join(out, *rel.parts) if src.is_dir() else out / p.name
            units.append(Unit(str(rel), kind, p, target, str(rel)))
        else:
            rest.append(p)
    if rest:
        scan = mio.scan(root, recursive=src.is_dir())
        wanted = {p.resolve() for p in rest}
        for series in scan.series:
            if not wanted & {f.resolve() for f in series.files}:
                continue  # a single-file input: only the series that file belongs to
            folder = series_folder_name(series)
            rel_dir = series.folder.resolve().relative_to(root.resolve())
            target = safe_join(out, *rel_dir.parts, folder)
            key = str(Path(*rel_dir.parts, folder)) if rel_dir.parts else folder
            units.append(Unit(key, "dicom", series, target, series_label(series), modality=series.modality))
        for path, reason, status in _skipped(scan):
            if path.resolve() not in wanted:
                continue
            rel = path.resolve().relative_to(root.resolve())
            units.append(Unit(str(rel), "bad", Path(path), out, str(rel), error=reason, bad_status=status))
    units.sort(key=lambda u: u.key)
    return units


def check_bids_input(root: Path) -> None:
    """A one-line usage error unless ``root`` is a BIDS dataset (a folder with its description)."""
    if not root.is_dir() or not bids.is_dataset(root):
        raise UsageError(f"--bids: INPUT {root} is not a BIDS dataset (no {bids.DESCRIPTION} in it)")


def discover_bids(root: Path, out: Path) -> list[Unit]:
    """The units of the BIDS dataset ``root``: each raw image, written to
    ``OUTPUT/derivatives/medden/sub-*/[ses-*/]<datatype>/…_desc-denoised_<suffix>.nii.gz``
    (:mod:`medden.io.bids`); every other file is a ``skipped`` unit with its reason."""
    check_bids_input(root)
    derivative = safe_join(out, *bids.DERIVATIVE_ROOT)
    units = []
    for path in bids.raw_files(root):
        rel = path.relative_to(root)
        target, why = bids.derivative_path(rel)
        kind = "nifti" if _is_nifti(path) else "image" if _is_image(path) else None
        if target is None or kind is None:
            what = bids.non_image_kind(path)
            reason = f"not an image ({what})" if what else why
            units.append(Unit(str(rel), "bad", path, out, str(rel), error=reason, bad_status="skipped"))
        else:
            output = safe_join(derivative, *target.parts)
            units.append(Unit(str(rel), kind, path, output, str(rel), modality=bids.modality_of(rel)))
    return units


def _skipped(scan: Any) -> Iterator[tuple[Path, str, str]]:
    """(path, reason, status) of the files a DICOM scan could not use: non-image objects (SR,
    RTSTRUCT, presentation states...) are ``skipped``, anything unreadable is ``failed``."""
    for entry in scan.skipped:
        status = "skipped" if entry.error == "NonImageObjectError" else "failed"
        yield Path(entry.path), f"{entry.error}: {entry.reason}", status


# --------------------------------------------------------------------------------------------
# the manifest
# --------------------------------------------------------------------------------------------


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:  # a line cut by a kill: ignore it
            continue
    return rows


class Manifest:
    """Append-only JSON lines, flushed and fsynced after every record (survives ``kill -9``)."""

    def __init__(self, out: Path, shard: tuple[int, int] | None) -> None:
        self.out = out
        self.shard = shard
        name = MANIFEST if not shard or shard[1] == 1 else f"manifest.part-{shard[0]}-of-{shard[1]}.jsonl"
        self.path = out / name
        self.history: dict[str, dict[str, Any]] = {}
        for f in [out / MANIFEST, *sorted(out.glob("manifest.part-*.jsonl"))]:
            for row in _read_jsonl(f):
                if "key" in row:
                    self.history[row["key"]] = row  # the last record of a unit wins

    def last(self, key: str) -> dict[str, Any] | None:
        return self.history.get(key)

    def write(self, record: dict[str, Any]) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as fh:
            fh.write(json.dumps(record) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        self.history[record["key"]] = record

    def _rewrite(self, rows: list[dict[str, Any]]) -> None:
        """``manifest.jsonl`` as one record per unit: the last of each, sorted by key."""
        last: dict[str, dict[str, Any]] = {}
        for row in sorted(rows, key=lambda r: r.get("time", 0)):
            if row.get("key", "_shard") != "_shard":
                last[row["key"]] = row
        with atomic_path(self.out / MANIFEST) as tmp:
            tmp.write_text("".join(json.dumps(last[k]) + "\n" for k in sorted(last)))

    def compact(self) -> None:
        """At the end of an unsharded batch: one record per unit (the ``started`` records that made
        the log safe against ``kill -9`` are dropped once the unit has its final status)."""
        self._rewrite(list(self.history.values()))

    def merge(self) -> bool:
        """Merge the shard parts into ``manifest.jsonl`` (one record per unit) once every part says it
        is complete; True when this call merged them."""
        if not self.shard or self.shard[1] == 1:
            return False
        n = self.shard[1]
        parts = [self.out / f"manifest.part-{i}-of-{n}.jsonl" for i in range(n)]
        rows = [_read_jsonl(p) for p in parts]
        if not all(r and r[-1].get("status") == "complete" for r in rows):
            return False
        history = [row for f in [self.out / MANIFEST] if f.is_file() for row in _read_jsonl(f)]
        self._rewrite(history + [row for part in rows for row in part])
        return True


# --------------------------------------------------------------------------------------------
# one unit
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# the batch
# --------------------------------------------------------------------------------------------


@dataclass
class BatchResult:
    """Counts of a batch and its exit code (0 all done or skipped, 3 some failed)."""

    done: int = 0
    skipped: int = 0
    failed: int = 0
    manifest: Path | None = None

    @property
    def exit_code(self) -> int:
        return 3 if self.failed else 0


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"i/N"`` → (i, N) with 0 ≤ i < N; None → the torchrun rank/world size, if any."""
    if text is None:
        rank, world = os.environ.get("RANK"), os.environ.get("WORLD_SIZE")
        if rank is not None and world is not None and int(world) > 1:
            return int(rank), int(world)
        return None
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise UsageError(f"--shard must look like i/N (e.g. 0/4), got {text!r}") from None
    if not (n >= 1 and 0 <= i < n):
        raise UsageError(f"--shard {text}: need 0 <= i < N")
    return i, n


def check_paths(input_path: Path, output: Path) -> None:
    """Usage errors: missing input, OUTPUT inside INPUT (or the same), INPUT inside OUTPUT."""
    if not input_path.exists():
        raise UsageError(f"input not found: {input_path}")
    src, out = input_path.resolve(), output.resolve()
    if out == src:
        raise UsageError("OUTPUT must not be INPUT")
    if src.is_dir() and src in out.parents:
        raise UsageError(f"OUTPUT {output} is inside INPUT {input_path}: choose a folder outside it")
    if out in src.parents:
        raise UsageError(f"INPUT {input_path} is inside OUTPUT {output}: choose another output folder")
    if output.exists() and not output.is_dir():
        raise UsageError(f"OUTPUT exists and is not a folder: {output}")


def _versions() -> dict[str, str]:
    import monai
    import torch

    return {"medden": __version__, "torch": torch.__version__, "monai": monai.__version__}


def _write_provenance(path: Path, record: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(record, indent=1, sort_keys=True))


def provenance_path(output: Path) -> Path:
    """Where a unit's provenance JSON goes: beside the output (``<name>.provenance.json``)."""
    return output.with_name(output.name + ".provenance.json")


@dataclass
class UnitRecord:
    """What happened to one unit: one line of the manifest.

    Attributes:
        key, input, output, kind, label: the unit (see :class:`Unit`); no patient data.
        status: ``started``, ``done``, ``skipped`` or ``failed``.
        error: one line, for ``failed`` (and for ``skipped`` non-image objects).
        seconds: wall time of the unit; ``phases``: seconds reading, denoising and writing.
        measured: what the unit's processing measured (noise level, values clipped, non-finite values,
            files of the series that could not be read).
        foreign_output: the output existed and no earlier run of this batch wrote it (stays protected).
    """

    key: str
    input: str
    output: str | None
    kind: str
    label: str
    status: str
    error: str | None = None
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)
    measured: dict[str, Any] = field(default_factory=dict)
    foreign_output: bool = False

    @classmethod
    def of(cls, unit: Unit, status: str, error: str | None = None, **fields: Any) -> UnitRecord:
        source = unit.source if isinstance(unit.source, Path) else unit.source.folder
        output = str(unit.output) if unit.kind != "bad" else None
        return cls(unit.key, str(source), output, unit.kind, unit.label, status, error, **fields)

    def to_json(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "key": self.key,
            "input": self.input,
            "output": self.output,
            "kind": self.kind,
            "label": self.label,
            "status": self.status,
        }
        if self.status != "started":
            row.update(error=self.error, seconds=self.seconds, **self.phases, **self.measured)
        if self.foreign_output:
            row["foreign_output"] = True
        return {**row, "time": time.time()}


#: what :func:`plan` decides for a unit
ACTIONS = ("record_bad", "skip_done", "refuse_foreign", "process")


def plan(unit: Unit, last: dict[str, Any] | None, output_exists: bool, overwrite: bool) -> str:
    """What to do with ``unit`` given its last manifest record and whether its output exists (pure).

    ``record_bad``: a file found unusable (its status is recorded); ``skip_done``: an earlier run of
    this batch finished it; ``refuse_foreign``: its output exists and no run of this batch wrote it;
    ``process``: denoise it.
    """
    if unit.kind == "bad":
        return "record_bad"
    ours = bool(last) and not last.get("foreign_output")  # an earlier run of this batch wrote it
    if not overwrite and ours and last.get("status") in ("done", "skipped") and output_exists:
        return "skip_done"
    if output_exists and not overwrite and not ours:
        return "refuse_foreign"
    return "process"


FOREIGN = "output exists and is not from an earlier run of this batch (use --overwrite)"


@dataclass
class BatchContext:
    """What every unit of a batch shares (the model, the options, OUTPUT, the reader process)."""

    model: Any
    options: Options
    out: Path
    command: str
    quiet: bool
    loader: IsolatedLoader
    versions: dict[str, str] = field(default_factory=_versions)
    bids_root: Path | None = None  # INPUT, when the outputs form a BIDS derivative dataset
    any_modality: bool = False


def process_unit(unit: Unit, batch: BatchContext, steps: Any = None) -> UnitRecord:
    """Read, denoise and write one unit; never raises for anything but an interrupt.

    Whatever goes wrong inside (an unreadable file, a unit that does not fit the options, a decoder
    that panics or crashes its worker process) fails this unit with a one-line reason. ``steps``
    (``steps(unit, batch, t0) -> UnitRecord``) replaces the read / denoise / write of
    :func:`_process`: the MONAI bundle's evaluator runs its preprocessing, inferer and postprocessing
    there (:mod:`medden.workflows.bundle_workflow`).
    """
    t0 = time.perf_counter()
    try:
        return (steps or _process)(unit, batch, t0)
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as exc:  # a decoder panic (pyo3 PanicException) is not an Exception
        text = " ".join(str(exc).split())[:400] or type(exc).__name__
        name = type(exc).__name__
        return UnitRecord.of(unit, "failed", f"{name}: {text}", seconds=round(time.perf_counter() - t0, 3))


def _process(unit: Unit, batch: BatchContext, t0: float) -> UnitRecord:
    loaded = batch.loader.load(unit.source)  # in a worker process: a crashing decoder fails this unit only
    t_read = time.perf_counter()
    denoised, info = denoise_loaded(batch.model, loaded, batch.options, batch.quiet)
    return write_unit(unit, batch, loaded, denoised, info, (t0, t_read, time.perf_counter()))


def denoise_loaded(
    model: LoadedModel, loaded: Any, options: Options, quiet: bool = True
) -> tuple[np.ndarray, dict[str, Any]]:
    """:func:`predict` on one unit as read (a :class:`medden.io.base.Loaded`): the modality (a DICOM
    series' own, MR for NIfTI) and the layout come from what was read. Returns the denoised array in the
    input's units and what :func:`predict` measured."""
    modality = loaded.meta.get("modality") if loaded.kind == "dicom" else None
    modality = modality or ("MR" if loaded.kind == "nifti" else None)
    layout = layout_of(loaded.kind, loaded.array)
    mode = options.mode or model.default_mode
    with _progress(work_size(layout, loaded.shape, mode, options.axis), quiet, "slices", 1) as ubar:
        return predict(model, loaded.array, layout, options, modality=modality, progress=ubar.update)


def write_unit(
    unit: Unit,
    batch: BatchContext,
    loaded: Any,
    denoised: np.ndarray,
    info: dict[str, Any],
    times: tuple[float, float, float],
) -> UnitRecord:
    """Write one denoised unit in its input's format (a DICOM series as a derived series), atomically,
    with its figure (``options.figures``) and provenance; return its ``done`` record. ``times``: when
    the unit started, was read and was denoised (``time.perf_counter``)."""
    model, options = batch.model, batch.options
    t0, t_read, t_denoise = times
    layout = layout_of(loaded.kind, loaded.array)
    processing = f"medden denoise {model.name} sha256={model.sha256 or 'none'} mode={info['mode']}"
    with count_clipped() as on_write:
        written = Path(
            mio.save(
                loaded, denoised, unit.output, description=f"denoised {model.name}", processing=processing
            )
        )
    intensity = options.intensity or model.intensity
    if options.figures:
        title = f"{unit.label}: {model.name}"
        save_panels(figure_path(batch.out, unit.output), loaded.array, denoised, layout, title, intensity)
    t_write = time.perf_counter()
    measured = {
        "noise_level": info["sigma"],
        "clipped": info["clipped"],
        "clipped_on_write": on_write.clipped,
        "nonfinite": info.get("nonfinite", 0),
    }
    if loaded.meta.get("missing_files"):
        measured["missing_files"] = loaded.meta["missing_files"]
    measured.update(modality_record(model, unit, batch.any_modality))
    record = UnitRecord.of(
        unit,
        "done",
        seconds=round(t_write - t0, 3),
        phases={
            "seconds_read": round(t_read - t0, 3),
            "seconds_denoise": round(t_denoise - t_read, 3),
            "seconds_write": round(t_write - t_denoise, 3),
        },
        measured=measured,
    )
    record.output = str(written)
    provenance = {
        **model.provenance(),
        **batch.versions,
        "mode": info["mode"],
        "ensemble": info["ensemble"],
        "axis": options.axis,
        "intensity": intensity,
        "clipped_for_denoiser": info["clipped"],
        "input": record.input,
        "command": batch.command,
        "seconds": record.seconds,
        **{k: v for k, v in measured.items() if k != "clipped"},
    }
    if batch.bids_root is not None:  # a BIDS derivative: the provenance goes in the image's sidecar
        rel = Path(unit.key)
        fields = bids.sidecar_fields(batch.bids_root, rel)
        bids.write_json(bids.sidecar_path(written), bids.sidecar(fields, rel, provenance))
    else:
        _write_provenance(provenance_path(written), provenance)
    return record


#: modalities that say nothing about what a model fits or what an input is (OT: other, photographs)
GENERIC_MODALITIES = ("", "OT")


def model_modality(model: LoadedModel) -> str | None:
    """The modality a model was made for (its bundle metadata's input modality: ``MR``, ``CT``...),
    or None when it names none or a generic one (baselines, checkpoints, photograph bundles)."""
    value = str(model.extra.get("bundle_modality") or "").upper()
    return value if value not in GENERIC_MODALITIES else None


def modality_mismatch(expected: str | None, actual: str | None) -> bool:
    """Whether an input of modality ``actual`` does not fit a model made for ``expected``."""
    return bool(expected) and bool(actual) and actual not in GENERIC_MODALITIES and actual != expected


def check_modality(model: LoadedModel, units: list[Unit], any_modality: bool = False) -> str | None:
    """A one-line usage error when ``model`` names a modality and a unit is of another (an MR model
    on a CT series), unless ``any_modality``; returns a note for the log when some units name no
    modality (NIfTI and image files: allowed)."""
    expected = model_modality(model)
    if expected is None:
        return None
    wrong = [u for u in units if modality_mismatch(expected, u.modality)]
    if wrong and not any_modality:
        kinds = "/".join(sorted({str(u.modality) for u in wrong}))
        raise UsageError(
            f"{model.name} is a model for {expected} images, and INPUT holds {len(wrong)} {kinds} unit(s) "
            f"(first: {wrong[0].label}): use a {kinds} model, or --any-modality to run it anyway"
        )
    unknown = sum(u.kind != "bad" and u.modality is None for u in units)
    return f"note: {unknown} unit(s) name no modality (NIfTI, images): run as {expected}" if unknown else None


def modality_record(model: LoadedModel, unit: Unit, any_modality: bool) -> dict[str, Any]:
    """What the manifest and provenance record of the modality check (nothing when the model names
    no modality)."""
    expected = model_modality(model)
    if expected is None:
        return {}
    if unit.modality is None:
        note = f"not checked: a {unit.kind} file names no modality; the model is for {expected}"
    elif modality_mismatch(expected, unit.modality):
        note = f"{unit.modality} input to a {expected} model, run by --any-modality"
    else:
        note = "ok"
    return {"modality": unit.modality, "modality_check": note}


def run_batch(
    input_path: str | os.PathLike[str],
    output: str | os.PathLike[str],
    model: Any,
    options: Options | None = None,
    overwrite: bool = False,
    dry_run: bool = False,
    shard: tuple[int, int] | None = None,
    quiet: bool = False,
    command: str | None = None,
    bids_mode: bool = False,
    any_modality: bool = False,
) -> BatchResult:
    """Denoise every unit under ``input_path`` into ``output`` (see the module docstring).

    One run at a time per OUTPUT (per shard): :func:`medden.io.atomic.output_lock`. With
    ``bids_mode`` INPUT is a BIDS dataset and OUTPUT gets a BIDS derivative dataset
    (``derivatives/medden``, :mod:`medden.io.bids`). A model made for one modality refuses inputs of
    another (:func:`check_modality`) unless ``any_modality``.
    """
    options = (options or Options()).validate()
    src, out = Path(input_path), Path(output)
    check_paths(src, out)
    check_mode(model, options.mode)
    units = discover(src, out, bids_mode)
    note = check_modality(model, units, any_modality)
    if not bids_mode and src.is_dir() and bids.is_dataset(src):
        _log(quiet, "note: INPUT is a BIDS dataset; --bids writes a BIDS derivative dataset")
    if shard:
        units = [u for k, u in enumerate(units) if k % shard[1] == shard[0]]
    result = BatchResult()
    if dry_run:
        for u in units:
            print(f"{u.kind:6} {u.label}: {u.error or f'-> {u.output}'}")
        return result
    make_output_folder(out)
    if note:
        _log(quiet, note)
    lock_name = (
        ".medden.lock" if not shard or shard[1] == 1 else f".medden-shard-{shard[0]}-of-{shard[1]}.lock"
    )
    with output_lock(out / lock_name), IsolatedLoader() as loader:
        batch = BatchContext(model, options, out, command or " ".join(sys.argv), quiet, loader)
        batch.any_modality, batch.bids_root = any_modality, src if bids_mode else None
        if bids_mode:
            derivative = safe_join(out, *bids.DERIVATIVE_ROOT)
            bids.write_dataset_description(src, derivative, model.provenance(), overwrite)
        manifest = Manifest(out, shard)
        result.manifest = manifest.path
        with _progress(len(units), quiet, "units") as bar:
            for unit in units:
                record = run_unit(unit, manifest, overwrite, batch)
                _count(result, record.status)
                if record.status == "failed" or unit.kind == "bad":
                    _log(quiet, f"{record.status}: {unit.label}: {record.error}")
                elif record.status == "done":
                    _log(quiet, f"done: {unit.label} ({record.seconds:.1f} s{_notes(record.measured)})")
                bar.update(1)
        if shard and shard[1] > 1:
            manifest.write({"key": "_shard", "status": "complete", "time": time.time()})
            if manifest.merge():
                remove_temporaries(out)
        else:
            manifest.compact()
            remove_temporaries(out)
    return result


def run_unit(
    unit: Unit, manifest: Manifest, overwrite: bool, batch: BatchContext, steps: Any = None
) -> UnitRecord:
    """Plan, process (:func:`process_unit`, with ``steps``) and record one unit."""
    action = plan(unit, manifest.last(unit.key), unit.output.exists(), overwrite)
    if action == "record_bad":
        record = UnitRecord.of(unit, unit.bad_status, unit.error)
    elif action == "skip_done":
        record = UnitRecord.of(unit, "skipped")
    elif action == "refuse_foreign":
        record = UnitRecord.of(unit, "failed", FOREIGN, foreign_output=True)
    else:
        manifest.write(UnitRecord.of(unit, "started").to_json())
        record = process_unit(unit, batch, steps)
    manifest.write(record.to_json())
    return record


def make_output_folder(out: Path) -> None:
    """Create OUTPUT (and its parents), or a one-line usage error saying why it cannot be."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".medden-write-test-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"cannot write to OUTPUT {out}: {exc.strerror or type(exc).__name__}") from None


def figure_path(out: Path, unit_output: Path) -> Path:
    """Where the figure of a unit goes: ``OUT/figures/`` mirroring the unit's output path, as PNG."""
    out = out.resolve()
    rel = unit_output.resolve().relative_to(out)
    return out / "figures" / rel.parent / (rel.name.split(".")[0] + ".figure.png")


def remove_temporaries(out: Path) -> int:
    """Remove what an interrupted run (``kill -9``) left half-written under ``out``: the
    ``.medden-tmp-*`` files and folders of :mod:`medden.io.atomic`. Returns how many were removed."""
    import shutil

    found = [  # the outermost temporaries only: what is inside a temporary folder goes with it
        p
        for p in out.rglob("*")
        if is_temporary(p) and not any(is_temporary(a) for a in p.relative_to(out).parents)
    ]
    for p in found:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    return len(found)


def _notes(measured: dict[str, Any]) -> str:
    """What a done unit's log line adds: values clipped on writing, non-finite values, missing files."""
    notes = [
        f"{measured[key]} {what}"
        for key, what in (
            ("clipped_on_write", "value(s) clipped on write"),
            ("nonfinite", "non-finite value(s) kept as they were"),
            ("missing_files", "file(s) of the series unreadable"),
        )
        if measured.get(key)
    ]
    return "".join(f", {n}" for n in notes)


def _count(result: BatchResult, status: str) -> None:
    setattr(result, status, getattr(result, status) + 1)


def _log(quiet: bool, message: str) -> None:
    if not quiet:
        print(message, file=sys.stderr)


def _progress(total: int, quiet: bool, unit: str, position: int = 0) -> Any:
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        unit=unit,
        position=position,
        leave=position == 0,
        disable=quiet or not sys.stderr.isatty(),
        file=sys.stderr,
    )


# --------------------------------------------------------------------------------------------
# the Python API
# --------------------------------------------------------------------------------------------


def denoise(
    data: Any,
    model: str | Any = "median",
    mode: str | None = None,
    axis: int = -1,
    noise_level: str | float | None = "auto",
    batch_size: int = 8,
    device: str = "cpu",
    checkpoint: str | os.PathLike[str] | None = None,
    bundle: str | os.PathLike[str] | None = None,
    any_modality: bool = False,
    ensemble: int | None = None,
) -> Any:
    """Denoise an array, a tensor, a MetaTensor or a file, for notebooks.

    Args:
        data: a numpy array — ``(H, W)`` image, ``(X, Y, Z)`` volume — or a torch tensor/MONAI
            ``MetaTensor``, channel-first (``(C, H, W)`` or ``(C, X, Y, Z)``, the MONAI convention),
            or a path (image, NIfTI, DICOM series folder) read with :func:`medden.io.load`.
        model: a model name (baseline or bundle with weights), a registered net name with
            ``checkpoint``, or a resolved model / any ``fn(x, sigma=None)`` denoiser.
        mode: ``2d`` (slice-wise for volumes), ``2.5d``, ``triplanar`` (a 2D model along the three
            axes of a volume, averaged) or ``3d``; the model's own by default.
        axis: slicing axis for 2D modes.
        noise_level: σ on the scaled [0, 1] data, or ``auto`` to estimate it.
        batch_size: slices per call.
        device: ``cpu`` or ``cuda``.
        checkpoint: weights for a registered net (``model`` is then the net name).
        bundle: a bundle folder instead of ``model``.
        any_modality: run a model made for one modality on a DICOM series of another (refused by
            default, as in :func:`check_modality`).
        ensemble: flipped copies averaged per call (1, 2, 4 or 8, as ``medden denoise --ensemble``);
            the model's own (a bundle's ``medden.ensemble``) by default, 1 turns it off.

    Returns:
        the denoised data, of the input's type (a path gives a numpy array in the file's units).

    Example:
        >>> import numpy as np
        >>> from medden.noise import salt_pepper
        >>> clean = np.full((32, 32), 100.0)
        >>> noisy = salt_pepper(clean, 0.05, low=0.0, high=255.0, rng=0)
        >>> bool(np.abs(denoise(noisy, model="median") - clean).max() < 1e-4)  # float32 inside
        True
    """
    resolved = _resolve_for_api(model, checkpoint, bundle, device)
    if isinstance(noise_level, np.generic):  # a numpy scalar from the caller's arithmetic
        noise_level = noise_level.item()
    options = Options(
        mode=mode, axis=axis, noise_level=noise_level, batch_size=batch_size, ensemble=ensemble
    ).validate()
    if isinstance(data, (str, os.PathLike)):
        loaded = mio.load(data)
        modality = loaded.meta.get("modality") if loaded.kind == "dicom" else None
        unit = Unit(str(data), loaded.kind, Path(data), Path(data), "the input", modality=modality)
        check_modality(resolved, [unit], any_modality)
        out, _ = predict(resolved, loaded.array, layout_of(loaded.kind, loaded.array), options)
        return out
    if hasattr(data, "detach"):  # torch tensor or MetaTensor, channel-first
        import torch

        arr = data.detach().cpu().numpy()
        if arr.ndim == 4:  # (C, X, Y, Z): each channel a volume
            res = np.stack([predict(resolved, arr[c], "volume", options)[0] for c in range(arr.shape[0])])
        else:
            res, _ = predict(resolved, arr, "image", options)
        tensor = torch.as_tensor(res, dtype=data.dtype if data.is_floating_point() else torch.float32)
        if hasattr(data, "meta"):
            from monai.data import MetaTensor

            return MetaTensor(tensor, meta=dict(data.meta), applied_operations=list(data.applied_operations))
        return tensor.to(data.device)
    arr = np.asarray(data)
    if arr.ndim == 2:
        res, _ = predict(resolved, arr[None], "image", options)
        return res[0].astype(arr.dtype if arr.dtype.kind == "f" else np.float64)
    if arr.ndim == 3:
        res, _ = predict(resolved, arr, "volume", options)
        return res.astype(arr.dtype if arr.dtype.kind == "f" else np.float64)
    raise UsageError(f"denoise takes (H, W) or (X, Y, Z) arrays, got shape {arr.shape}")


def _resolve_for_api(model: Any, checkpoint: Any, bundle: Any, device: str) -> LoadedModel:
    if isinstance(model, LoadedModel):
        return model
    if bundle is not None:
        return load_model(bundle=bundle, device=device)
    if checkpoint is not None:
        return load_model(checkpoint=checkpoint, net=model if isinstance(model, str) else None, device=device)
    if isinstance(model, str):
        return load_model(model=model, device=device)
    if callable(model):  # any fn(x, sigma=None) on (B, C, ...) tensors
        return LoadedModel.of_callable(model)
    raise UsageError(f"model must be a name, a resolved model or a denoiser, not {type(model).__name__}")
