"""The inference workflow of medden's MONAI bundles, built from MONAI's classes and ``medden denoise``'s.

A bundle's ``configs/inference.json`` is a standard MONAI inference workflow (the properties of
``monai.bundle.properties.InferProperties``), and every piece of it is overridable on the command line:

- ``dataset``: a MONAI ``Dataset`` over :func:`datalist`, the units ``medden denoise`` finds under
  ``dataset_dir`` (each DICOM series, NIfTI file or 2D image), with the ``preprocessing``
  :class:`LoadUnitd` (reads a unit in the isolated reader process of :mod:`medden.io.isolate`);
- ``inferer``: :class:`DenoiseInferer`, a MONAI ``Inferer`` running :func:`medden.workflows.predict.predict`
  (the per-unit intensity scaling, the noise level, slice-wise 2D / 2.5D / 3D sliding window);
- ``postprocessing``: :class:`SaveUnitd`, the writer of ``medden denoise`` (a DICOM series as a derived
  series, NIfTI and images in their format and bit depth, atomically, with provenance);
- ``evaluator``: :class:`DenoiseEvaluator`, a MONAI ``SupervisedEvaluator`` whose iteration is one unit of
  ``medden denoise``'s batch (plan, process, record in ``manifest.jsonl``), under the output lock, so a
  unit that fails fails alone; ``handlers``: :class:`UnitLog` (a line per unit and the summary).

The outputs are those of ``medden denoise --bundle`` on the same input (the steps are the same
functions: :func:`medden.workflows.denoise.denoise_loaded` and :func:`~medden.workflows.denoise.write_unit`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

from ignite.engine import Events
from monai.engines import SupervisedEvaluator
from monai.inferers import Inferer
from monai.transforms import MapTransform

import medden.io as mio
from medden.io.isolate import IsolatedLoader, load_isolated
from medden.io.lock import output_lock
from medden.workflows.denoise import (
    BatchContext,
    BatchResult,
    Manifest,
    Unit,
    check_paths,
    denoise_loaded,
    discover,
    make_output_folder,
    remove_temporaries,
    run_unit,
    write_unit,
)
from medden.workflows.predict import Options, check_mode


def datalist(dataset_dir: str | os.PathLike[str], output_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The units under ``dataset_dir`` as MONAI data items ``{"image": source, "unit": Unit}``, sorted as
    ``medden denoise`` processes them (a usage error for a missing input or an OUTPUT inside it)."""
    src, out = Path(dataset_dir), Path(output_dir)
    check_paths(src, out)
    return [{"image": unit.source, "unit": unit} for unit in discover(src, out)]


class LoadUnitd(MapTransform):
    """Read the unit of ``keys`` (a path or a DICOM series) with :func:`medden.io.load`, in the shared
    isolated reader process (``isolate``, so a decoder that crashes fails that unit only); the item's
    key then holds the :class:`medden.io.base.Loaded` (pixels, affine, source header)."""

    def __init__(self, keys: Any = "image", isolate: bool = True, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.isolate = isolate

    def __call__(self, data: Any) -> dict[str, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = load_isolated(d[key]) if self.isolate else mio.load(d[key])
        return d


class DenoiseInferer(Inferer):
    """MONAI ``Inferer`` of medden's denoisers: ``inferer(loaded, network)`` runs
    :func:`medden.workflows.predict.predict` on one unit as read (slice-wise ``2d`` along ``axis`` in
    batches of ``batch_size`` slices, ``2.5d`` with neighbouring slices as channels, ``3d`` sliding
    window of ``roi_size`` with ``overlap``), scaled per unit into [0, 1] and back, at ``noise_level``
    (``auto``: estimated) for noise-level-aware nets, averaged over ``ensemble`` flipped/rotated copies
    (None: the bundle's own, from its metadata). Returns ``(denoised array, what was measured)``.
    The arguments are those of :class:`medden.workflows.predict.Options` (validated here)."""

    def __init__(
        self,
        mode: str | None = None,
        axis: int = -1,
        noise_level: str | float | None = "auto",
        batch_size: int = 8,
        roi_size: int = 64,
        overlap: float = 0.25,
        context: int | None = None,
        intensity: str | None = None,
        ensemble: int | None = None,
    ) -> None:
        super().__init__()
        self.options = Options(
            mode=mode,
            axis=axis,
            noise_level=noise_level,
            batch_size=batch_size,
            roi_size=roi_size,
            overlap=overlap,
            context=context,
            intensity=intensity,
            ensemble=ensemble,
        ).validate()

    def __call__(self, inputs: Any, network: Any, *args: Any, **kwargs: Any) -> Any:
        return denoise_loaded(network, inputs, self.options, quiet=kwargs.get("quiet", True))


class SaveUnitd(MapTransform):
    """Write the denoised ``keys`` (``pred``) of a unit as ``medden denoise`` does
    (:func:`medden.workflows.denoise.write_unit`): in the input's format next to its mirror path under
    OUTPUT, a DICOM series as a derived series, atomically, with ``<name>.provenance.json`` (and the
    three-panel figure with ``figures``). The item gets the unit's manifest ``record``."""

    def __init__(self, keys: Any = "pred", figures: bool = False, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.figures = figures

    def __call__(self, data: Any) -> dict[str, Any]:
        d = dict(data)
        context: BatchContext = d["context"]
        if context.options.figures != self.figures:
            context = dataclasses.replace(
                context, options=dataclasses.replace(context.options, figures=self.figures)
            )
        for key in self.key_iterator(d):
            d["record"] = write_unit(d["unit"], context, d["image"], d[key], d["info"], d["times"])
        return d


class UnitLog:
    """Handler: one line per unit on stderr (``done``, ``skipped`` or ``failed`` with its reason; no
    patient data: units are named by path or series number and hash), and at the end the summary as
    one JSON line on stdout. ``quiet`` keeps only the summary."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet

    def attach(self, engine: Any) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.unit)
        engine.add_event_handler(Events.COMPLETED, self.summary)

    def unit(self, engine: Any) -> None:
        record = engine.state.output["record"]
        if self.quiet or record.status == "skipped":
            return
        detail = record.error if record.status == "failed" else f"{record.seconds:.1f} s"
        print(f"{record.status}: {record.label}: {detail}", file=sys.stderr)

    def summary(self, engine: Any) -> None:
        print(json.dumps(engine.summary()))
        if engine.result.failed:
            print(f"{engine.result.failed} unit(s) failed; see {engine.result.manifest}", file=sys.stderr)


def _unwrap_transform_error(fn: Any, data: dict[str, Any]) -> dict[str, Any]:
    """``fn(data)``, raising the error of the transform itself rather than MONAI's
    ``RuntimeError("applying transform ...")`` around it (the manifest names the real reason)."""
    try:
        return dict(fn(data))
    except RuntimeError as exc:
        cause: BaseException = exc
        while str(cause).startswith("applying transform") and cause.__cause__ is not None:
            cause = cause.__cause__
        if cause is exc:
            raise
        raise cause from None


class DenoiseEvaluator(SupervisedEvaluator):
    """MONAI ``SupervisedEvaluator`` running ``medden denoise``'s batch over a :func:`datalist` dataset.

    Each iteration is one unit: planned against ``OUTPUT/manifest.jsonl`` (skipped when an earlier run
    finished it, unless ``overwrite``; refused when its output exists and is not ours), then the
    dataset's ``preprocessing``, the ``inferer`` on ``network`` and the ``postprocessing``, and recorded
    in the manifest; anything that goes wrong fails that unit with a one-line reason and the batch
    goes on (:func:`medden.workflows.denoise.run_unit`). :meth:`run` holds the output lock and rewrites
    the manifest at the end. ``result`` counts the units (:class:`medden.workflows.denoise.BatchResult`).

    Args:
        device: the device of ``network``.
        val_data_loader: a MONAI ``Dataset`` over :func:`datalist` (its ``transform`` is the preprocessing).
        network: the loaded model (:func:`medden.bundle_format.load_network`, checksummed weights).
        inferer: a :class:`DenoiseInferer`.
        output_dir: OUTPUT.
        postprocessing: the writer (:class:`SaveUnitd`, usually in a ``Compose``; that one when None).
        val_handlers: ignite handlers (:class:`UnitLog`).
        overwrite: redo units an earlier run finished, and replace outputs that are not ours.
    """

    def __init__(
        self,
        device: Any,
        val_data_loader: Any,
        network: Any,
        inferer: DenoiseInferer,
        output_dir: str | os.PathLike[str],
        postprocessing: Any = None,
        val_handlers: Any = None,
        overwrite: bool = False,
    ) -> None:
        self.dataset = val_data_loader
        self.output_dir = Path(output_dir)
        self.overwrite = overwrite
        self.unit_postprocessing = postprocessing if postprocessing is not None else SaveUnitd()
        self.result = BatchResult()
        self.context: BatchContext | None = None
        self.manifest: Manifest | None = None
        super().__init__(
            device=device,
            val_data_loader=list(range(len(val_data_loader))),
            epoch_length=len(val_data_loader),
            network=network,
            inferer=inferer,
            val_handlers=val_handlers,
            decollate=False,
        )

    def run(self, global_epoch: int = 1) -> None:  # type: ignore[override]
        options = self.inferer.options
        check_mode(self.network, options.mode)
        out = self.output_dir
        make_output_folder(out)
        with output_lock(out / ".medden.lock"), IsolatedLoader() as loader:
            self.context = BatchContext(self.network, options, out, " ".join(sys.argv), True, loader)
            self.manifest = Manifest(out, None)
            self.result = BatchResult(manifest=self.manifest.path)
            if len(self.dataset):
                super().run(global_epoch)
            else:
                self.fire_event(Events.COMPLETED)
            self.manifest.compact()
            remove_temporaries(out)

    def _iteration(self, engine: Any, batchdata: Any) -> dict[str, Any]:
        item = self.dataset.data[int(batchdata)]
        unit: Unit = item["unit"]
        steps = partial(self._steps, item)
        record = run_unit(unit, self.manifest, self.overwrite, self.context, steps=steps)
        setattr(self.result, record.status, getattr(self.result, record.status) + 1)
        return {"record": record}

    def _steps(self, item: dict[str, Any], unit: Unit, batch: BatchContext, t0: float) -> Any:
        """preprocessing → inferer → postprocessing on one unit (what ``medden denoise`` does: read,
        denoise, write); returns its record."""
        transform = getattr(self.dataset, "transform", None)
        data = _unwrap_transform_error(transform, dict(item)) if transform is not None else dict(item)
        t_read = time.perf_counter()
        pred, info = self.inferer(data["image"], self.network)
        data.update(pred=pred, info=info, context=batch, times=(t0, t_read, time.perf_counter()))
        return _unwrap_transform_error(self.unit_postprocessing, data)["record"]

    def summary(self) -> dict[str, Any]:
        """What the run did: counts, OUTPUT and the manifest (printed by :class:`UnitLog`)."""
        return {
            "bundle": getattr(self.network, "name", None),
            "output": str(self.output_dir),
            "done": self.result.done,
            "skipped": self.result.skipped,
            "failed": self.result.failed,
            "manifest": str(self.result.manifest),
        }
