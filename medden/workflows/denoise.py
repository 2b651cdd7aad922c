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

import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medden.errors import MeddenError, UsageError
from medden.io.base import count_clipped

logger = logging.getLogger("medden.denoise")

MODES = ("2d", "2.5d", "3d")
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
        bad_status: ``failed`` (a broken file) or ``skipped`` (not an image, e.g. an SR object).
    """

    key: str
    kind: str
    source: Any
    output: Path
    label: str
    error: str | None = None
    bad_status: str = "failed"


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
    from medden.io.atomic import sanitize_name

    number = f"S{series.series_number}" if series.series_number is not None else "S"
    parts = [number, series.modality, (series.description or "")[:40], series.id]
    return sanitize_name("_".join(str(p) for p in parts if p), fallback=series.id)


def series_label(series: Any) -> str:
    """A log-safe name: series number, modality and id (a hash of the UID); no patient data."""
    return f"series {series.series_number} ({series.modality or '?'}, id {series.id})"


def discover(input_path: str | os.PathLike[str], output: str | os.PathLike[str]) -> list[Unit]:
    """The units under ``input_path`` and their outputs under ``output`` (sorted by key)."""
    import medden.io as mio
    from medden.io.atomic import is_temporary, safe_join

    src, out = Path(input_path), Path(output)
    if not src.exists():
        raise UsageError(f"input not found: {src}")
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
            units.append(Unit(key, "dicom", series, target, series_label(series)))
        for path, reason, status in _skipped(scan):
            if path.resolve() not in wanted:
                continue
            rel = path.resolve().relative_to(root.resolve())
            units.append(Unit(str(rel), "bad", Path(path), out, str(rel), error=reason, bad_status=status))
    units.sort(key=lambda u: u.key)
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
        from medden.io.atomic import atomic_path

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


@dataclass
class Options:
    """How to denoise (see :func:`run_batch`)."""

    mode: str | None = None
    axis: int = -1
    noise_level: str | float | None = "auto"
    batch_size: int = 8
    overlap: float = 0.25
    roi_size: int = 64
    context: int | None = None
    intensity: str | None = None
    figures: bool = False


def _scaled_sigma(arr01: np.ndarray, noise_level: str | float | None, modality: str | None) -> float | None:
    """σ on the [0, 1] scale: given, or estimated from the scaled data (``auto``, the default)."""
    if noise_level not in (None, "auto"):
        return float(noise_level)
    from medden.noise import estimate_noise

    if modality == "MR" and arr01.ndim >= 3:
        with contextlib.suppress(ValueError):
            return float(estimate_noise(arr01, "rician").sigma)
    return float(estimate_noise(arr01, "gaussian").sigma)


LAYOUTS = ("image", "volume", "color_volume")


def layout_of(kind: str, array: np.ndarray) -> str:
    """How :func:`denoise_array` reads an array of a loaded ``kind``: a 2D image ``(C, H, W)``, a
    volume ``(X, Y, Z[, T])`` (NIfTI, gray DICOM) or a color DICOM volume ``(X, Y, Z, 3)``."""
    if kind == "image":
        return "image"
    if kind == "dicom" and array.ndim == 4:
        return "color_volume"
    return "volume"


def check_mode(model: Any, mode: str | None) -> str:
    """The mode to use with ``model`` (its own by default); a usage error when they do not fit."""
    mode = mode or model.default_mode
    if mode not in MODES:
        raise UsageError(f"--mode must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "3d" and model.spatial_dims != 3:
        raise UsageError(f"--mode 3d needs a 3D model; {model.name} is 2D")
    if mode in ("2d", "2.5d") and model.spatial_dims != 2:
        raise UsageError(f"{model.name} is a 3D model: use --mode 3d")
    if mode == "2.5d":
        context_for(model, None)
    return mode


def context_for(model: Any, context: int | None) -> int:
    """Neighbouring slices on each side in 2.5D mode: those the net was trained with (its input
    channels are ``2·context + 1``); a usage error for a model that does not take slice stacks."""
    want = model.in_channels
    if want is None or want < 3 or want % 2 == 0:
        raise UsageError(
            f"--mode 2.5d needs a net trained on 2k+1 neighbouring slices as channels; "
            f"{model.name} takes {want or 'any number of'} channel(s): use --mode 2d"
        )
    if context is not None and 2 * context + 1 != want:
        raise UsageError(f"{model.name} takes {want} slices as channels, not 2*{context}+1")
    return (want - 1) // 2


def denoise_array(
    model: Any,
    array: np.ndarray,
    layout: str,
    options: Options,
    modality: str | None = None,
    progress: Any = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Denoise one image or volume in its own units; return the result and what was measured.

    ``layout`` (see :func:`layout_of`): ``image`` ``(C, H, W)``; ``volume`` ``(X, Y, Z)``, or
    ``(X, Y, Z, T)`` with each volume of the series denoised separately, or ``(X, Y)`` (a one-slice
    volume); ``color_volume`` ``(X, Y, Z, 3)``.
    """
    from medden.inferers import IntensityScaler, infer

    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, not {layout!r}")
    arr = np.asarray(array)
    if layout == "volume" and arr.ndim == 2:
        return denoise_array(model, arr[None], "image", options, modality, progress)[0][0], {}
    if layout == "volume" and arr.ndim == 4:
        outs, infos = zip(
            *(
                denoise_array(model, arr[..., t], "volume", options, modality, progress)
                for t in range(arr.shape[-1])
            )
        )
        return np.stack(outs, axis=-1), {**infos[0], "clipped": sum(i["clipped"] for i in infos)}
    is_volume = layout != "image"
    color_volume = layout == "color_volume"
    chw = channel_first(arr, layout)
    mode = check_mode(model, options.mode)
    if not is_volume and mode != "2d":
        raise UsageError(f"--mode {mode} needs a volume; this input is a 2D image")
    scaler = IntensityScaler.fit(chw, mode=options.intensity or model.intensity)
    x = scaler.forward(chw.astype(np.float32))
    sigma = _scaled_sigma(x, options.noise_level, modality) if model.noise_aware else None
    if options.noise_level not in (None, "auto") and not model.noise_aware:
        sigma = float(options.noise_level)  # baselines that use it, nets that ignore it
    channels = chw.shape[0]
    want = model.in_channels
    if want is None or want == channels or mode == "2.5d":
        groups = [x]
    elif want == 1:
        groups = [x[c : c + 1] for c in range(channels)]  # a gray model on each channel
    else:
        raise UsageError(f"{model.name} takes {want}-channel input; this input has {channels}")
    roi = (options.roi_size,) * (chw.ndim - 1)
    outs = [
        infer(
            model.fn,
            g,
            mode=mode,
            axis=options.axis,
            batch_size=options.batch_size,
            sigma=sigma,
            roi_size=roi,
            overlap=options.overlap,
            context=context_for(model, options.context) if mode == "2.5d" else 0,
            progress=progress,
        ).numpy()
        for g in groups
    ]
    y = np.concatenate(outs, axis=0)
    result = scaler.inverse(y.astype(np.float64), chw)
    result = np.moveaxis(result, 0, -1) if color_volume else (result[0] if is_volume else result)
    return result, {"clipped": int(scaler.clipped), "sigma": sigma, "mode": mode}


def channel_first(array: np.ndarray, layout: str) -> np.ndarray:
    """An array of ``layout`` as the channel-first ``(C, ...)`` array the denoisers take; a series of
    volumes ``(X, Y, Z, T)`` gives its first volume."""
    a = np.asarray(array)
    if layout == "color_volume":
        return np.moveaxis(a, -1, 0)
    if layout == "volume":
        return (a[..., 0] if a.ndim == 4 else a)[None]
    return a


def work_size(layout: str, shape: tuple[int, ...], mode: str, axis: int) -> int:
    """Progress steps of one unit: its slices (2D modes on volumes), else 1 per volume."""
    if layout == "image" or len(shape) < 3:
        return 1
    per_volume = shape[axis % 3] if mode != "3d" else 1
    return per_volume * (shape[3] if layout == "volume" and len(shape) == 4 else 1)


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

    from medden import __version__

    return {"medden": __version__, "torch": torch.__version__, "monai": monai.__version__}


def _write_provenance(path: Path, record: dict[str, Any]) -> None:
    from medden.io.atomic import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(record, indent=1, sort_keys=True))


def provenance_path(output: Path) -> Path:
    """Where a unit's provenance JSON goes: beside the output (``<name>.provenance.json``)."""
    return output.with_name(output.name + ".provenance.json")


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
) -> BatchResult:
    """Denoise every unit under ``input_path`` into ``output`` (see the module docstring)."""
    import medden.io as mio

    options = options or Options()
    intensity = options.intensity or model.intensity  # as denoise_array resolves it: for the records
    src, out = Path(input_path), Path(output)
    check_paths(src, out)
    check_mode(model, options.mode)
    units = discover(src, out)
    if shard:
        units = [u for k, u in enumerate(units) if k % shard[1] == shard[0]]
    result = BatchResult()
    if dry_run:
        for u in units:
            state = u.error or f"-> {u.output}"
            print(f"{u.kind:6} {u.label}: {state}")
        return result
    out.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(out, shard)
    result.manifest = manifest.path
    versions = _versions()
    total_slices = len(units)
    bar = _progress(total_slices, quiet, "units")
    for unit in units:
        t0 = time.perf_counter()
        record: dict[str, Any] = {
            "key": unit.key,
            "input": str(unit.source if isinstance(unit.source, Path) else unit.source.folder),
            "output": str(unit.output) if unit.kind != "bad" else None,
            "kind": unit.kind,
            "label": unit.label,
        }
        if unit.kind == "bad":
            status = unit.bad_status
            manifest.write(
                {**record, "status": status, "error": unit.error, "seconds": 0.0, "time": time.time()}
            )
            _count(result, status)
            _log(quiet, f"{status}: {unit.label}: {unit.error}")
            bar.update(1)
            continue
        last = manifest.last(unit.key)
        exists = unit.output.exists()
        ours = bool(last) and not last.get("foreign_output")  # an earlier run of this batch wrote it
        if not overwrite and ours and last.get("status") in ("done", "skipped") and exists:
            manifest.write(
                {**record, "status": "skipped", "error": None, "seconds": 0.0, "time": time.time()}
            )
            result.skipped += 1
            bar.update(1)
            continue
        if exists and not overwrite and not ours:
            msg = "output exists and is not from an earlier run of this batch (use --overwrite)"
            manifest.write(
                {
                    **record,
                    "status": "failed",
                    "error": msg,
                    "seconds": 0.0,
                    "time": time.time(),
                    "foreign_output": True,  # stays protected on the next run too
                }
            )
            result.failed += 1
            _log(quiet, f"failed: {unit.label}: {msg}")
            bar.update(1)
            continue
        manifest.write({**record, "status": "started", "time": time.time()})
        try:
            loaded = mio.load(unit.source)
            t_read = time.perf_counter()
            modality = loaded.meta.get("modality") if unit.kind == "dicom" else None
            modality = modality or ("MR" if unit.kind == "nifti" else None)
            layout = layout_of(loaded.kind, loaded.array)
            mode = options.mode or model.default_mode
            with _progress(work_size(layout, loaded.shape, mode, options.axis), quiet, "slices", 1) as ubar:
                denoised, info = denoise_array(
                    model, loaded.array, layout, options, modality=modality, progress=ubar.update
                )
            t_denoise = time.perf_counter()
            processing = f"medden denoise {model.name} sha256={model.sha256 or 'none'} mode={info['mode']}"
            with count_clipped() as on_write:
                written = Path(
                    mio.save(
                        loaded,
                        denoised,
                        unit.output,
                        description=f"denoised {model.name}",
                        processing=processing,
                    )
                )
            if options.figures:
                save_panels(
                    figure_path(out, unit.output),
                    loaded.array,
                    denoised,
                    layout,
                    title=f"{unit.label}: {model.name}",
                    intensity=intensity,
                )
            t_write = time.perf_counter()
            seconds = round(t_write - t0, 3)
            phases = {
                "seconds_read": round(t_read - t0, 3),
                "seconds_denoise": round(t_denoise - t_read, 3),
                "seconds_write": round(t_write - t_denoise, 3),
            }
            _write_provenance(
                provenance_path(written),
                {
                    **model.provenance(),
                    **versions,
                    "mode": info["mode"],
                    "axis": options.axis,
                    "noise_level": info["sigma"],
                    "intensity": intensity,
                    "clipped_for_denoiser": info["clipped"],
                    "clipped_on_write": on_write.clipped,
                    "input": record["input"],
                    "command": command or " ".join(sys.argv),
                    "seconds": seconds,
                },
            )
            manifest.write(
                {
                    **record,
                    "output": str(written),
                    "status": "done",
                    "error": None,
                    "seconds": seconds,
                    **phases,
                    "noise_level": info["sigma"],
                    "clipped": info["clipped"],
                    "clipped_on_write": on_write.clipped,
                    "time": time.time(),
                }
            )
            result.done += 1
            clip_note = f", {on_write.clipped} value(s) clipped on write" if on_write.clipped else ""
            _log(quiet, f"done: {unit.label} ({seconds:.1f} s{clip_note})")
        except (MeddenError, ValueError, OSError, RuntimeError, MemoryError) as exc:
            # one unit's problem (unreadable, or not fit for the options: a 2D image in 3D mode...)
            # fails that unit; the batch goes on
            msg = " ".join(str(exc).split())[:400] or type(exc).__name__
            manifest.write(
                {
                    **record,
                    "status": "failed",
                    "error": f"{type(exc).__name__}: {msg}",
                    "seconds": round(time.perf_counter() - t0, 3),
                    "time": time.time(),
                }
            )
            result.failed += 1
            _log(quiet, f"failed: {unit.label}: {msg}")
        bar.update(1)
    bar.close()
    if shard and shard[1] > 1:
        manifest.write({"key": "_shard", "status": "complete", "time": time.time()})
        if manifest.merge():
            remove_temporaries(out)
    else:
        manifest.compact()
        remove_temporaries(out)
    return result


def figure_path(out: Path, unit_output: Path) -> Path:
    """Where the figure of a unit goes: ``OUT/figures/`` mirroring the unit's output path, as PNG."""
    rel = unit_output.relative_to(out)
    return out / "figures" / rel.parent / (rel.name.split(".")[0] + ".figure.png")


def save_panels(
    path: Path, noisy: np.ndarray, denoised: np.ndarray, layout: str, title: str, intensity: str = "minmax"
) -> None:
    """The three-panel figure of a denoised unit: input, output and ``|input − output|`` (``hot``: what
    was removed), both images on the input's [0, 1] scale; volumes show their middle axial slice.
    Written atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from medden.inferers import IntensityScaler
    from medden.io.atomic import atomic_path
    from medden.workflows.evaluate import display_plane

    x, y = channel_first(noisy, layout), channel_first(denoised, layout)
    scaler = IntensityScaler.fit(x, mode=intensity)
    xs, ys = (np.asarray(scaler.forward(a.astype(np.float64)), dtype=np.float32) for a in (x, y))
    rotate = layout != "image"
    diff = display_plane(np.abs(xs - ys), rotate)
    diff = diff.max(axis=-1) if diff.ndim == 3 else diff
    fig = Figure(figsize=(9.0, 3.4))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 3)
    gray = {"cmap": "gray", "vmin": 0.0, "vmax": 1.0}
    axes[0].imshow(display_plane(xs, rotate), **gray)
    axes[0].set_title("input", fontsize=9)
    axes[1].imshow(display_plane(ys, rotate), **gray)
    axes[1].set_title("denoised", fontsize=9)
    im = axes[2].imshow(diff, cmap="hot", vmin=0.0, vmax=max(float(np.percentile(diff, 99.5)), 1e-3))
    axes[2].set_title("|input − denoised|", fontsize=9)
    for ax in axes:
        ax.axis("off")
    fig.colorbar(im, ax=axes[2], fraction=0.046, pad=0.02)
    fig.suptitle(title, fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")


def remove_temporaries(out: Path) -> int:
    """Remove what an interrupted run (``kill -9``) left half-written under ``out``: the
    ``.medden-tmp-*`` files and folders of :mod:`medden.io.atomic`. Returns how many were removed."""
    import shutil

    from medden.io.atomic import is_temporary

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
) -> Any:
    """Denoise an array, a tensor, a MetaTensor or a file, for notebooks.

    Args:
        data: a numpy array — ``(H, W)`` image, ``(X, Y, Z)`` volume — or a torch tensor/MONAI
            ``MetaTensor``, channel-first (``(C, H, W)`` or ``(C, X, Y, Z)``, the MONAI convention),
            or a path (image, NIfTI, DICOM series folder) read with :func:`medden.io.load`.
        model: a model name (baseline or bundle with weights), a registered net name with
            ``checkpoint``, or a resolved model / any ``fn(x, sigma=None)`` denoiser.
        mode: ``2d`` (slice-wise for volumes), ``2.5d`` or ``3d``; the model's own by default.
        axis: slicing axis for 2D modes.
        noise_level: σ on the scaled [0, 1] data, or ``auto`` to estimate it.
        batch_size: slices per call.
        device: ``cpu`` or ``cuda``.
        checkpoint: weights for a registered net (``model`` is then the net name).
        bundle: a bundle folder instead of ``model``.

    Returns:
        the denoised data, of the input's type (a path gives a numpy array in the file's units).

    Example:
        >>> import numpy as np
        >>> from medden.noise import salt_pepper
        >>> clean = np.full((32, 32), 100.0)
        >>> noisy = salt_pepper(clean, 0.05, low=0.0, high=255.0, rng=0)
        >>> bool(np.abs(denoise(noisy, model="median") - clean).max() < 1e-6)
        True
    """
    resolved = _resolve_for_api(model, checkpoint, bundle, device)
    options = Options(mode=mode, axis=axis, noise_level=noise_level, batch_size=batch_size)
    if isinstance(data, (str, os.PathLike)):
        import medden.io as mio

        loaded = mio.load(data)
        out, _ = denoise_array(resolved, loaded.array, layout_of(loaded.kind, loaded.array), options)
        return out
    if hasattr(data, "detach"):  # torch tensor or MetaTensor, channel-first
        import torch

        arr = data.detach().cpu().numpy()
        if arr.ndim == 4:  # (C, X, Y, Z): each channel a volume
            res = np.stack(
                [denoise_array(resolved, arr[c], "volume", options)[0] for c in range(arr.shape[0])]
            )
        else:
            res, _ = denoise_array(resolved, arr, "image", options)
        tensor = torch.as_tensor(res, dtype=data.dtype if data.is_floating_point() else torch.float32)
        if hasattr(data, "meta"):
            from monai.data import MetaTensor

            return MetaTensor(tensor, meta=dict(data.meta), applied_operations=list(data.applied_operations))
        return tensor.to(data.device)
    arr = np.asarray(data)
    if arr.ndim == 2:
        res, _ = denoise_array(resolved, arr[None], "image", options)
        return res[0].astype(arr.dtype if arr.dtype.kind == "f" else np.float64)
    if arr.ndim == 3:
        res, _ = denoise_array(resolved, arr, "volume", options)
        return res.astype(arr.dtype if arr.dtype.kind == "f" else np.float64)
    raise UsageError(f"denoise takes (H, W) or (X, Y, Z) arrays, got shape {arr.shape}")


def _resolve_for_api(model: Any, checkpoint: Any, bundle: Any, device: str) -> Any:
    from medden.workflows.models import ResolvedModel, resolve

    if isinstance(model, ResolvedModel):
        return model
    if bundle is not None:
        return resolve(bundle=bundle, device=device)
    if checkpoint is not None:
        return resolve(checkpoint=checkpoint, net=model if isinstance(model, str) else None, device=device)
    if isinstance(model, str):
        return resolve(model=model, device=device)
    if callable(model):  # any fn(x, sigma=None) on (B, C, ...) tensors
        dims = int(getattr(model, "spatial_dims", 2))
        return ResolvedModel(
            name=type(model).__name__,
            fn=model,
            spatial_dims=dims,
            in_channels=getattr(model, "in_channels", None),
            noise_aware=bool(getattr(model, "noise_aware", False)),
            kind="callable",
            default_mode="3d" if dims == 3 else "2d",
        )
    raise UsageError(f"model must be a name, a resolved model or a denoiser, not {type(model).__name__}")
