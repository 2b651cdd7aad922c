"""Write the research notebooks (``notebooks/*.ipynb``) from the cells below, without outputs.

The notebooks are the artefact users open; this file is where they are edited, so a change is a
readable diff and no output, execution count or personal metadata is ever committed. The test suite
executes every notebook with nbmake under ``MEDDEN_SMALL_WORK=1`` (a few seconds of training, a
couple of images) and checks that the committed files are exactly what this script writes. Run::

    .venv/bin/python notebooks/build.py           # rewrite the notebooks
    .venv/bin/python notebooks/build.py --check   # exit 1 if a notebook differs from its cells here
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).parent

SETUP = """import os
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

# The test suite sets MEDDEN_SMALL_WORK=1: the same steps on less data, in seconds.
# Leave it unset for the full run (minutes to an hour on a laptop CPU, see each section).
SMALL = os.environ.get("MEDDEN_SMALL_WORK") == "1"
WORK = Path(tempfile.mkdtemp(prefix="medden_notebook_"))  # everything this notebook writes
print("small-work setting" if SMALL else "full run", "| output folder:", WORK)"""

NB01 = [
    (
        "md",
        """# 1 · Denoising a DICOM folder

A clinical export is a folder of DICOM files: one or more series, any file names. This notebook
does what `medden denoise EXPORT OUT --model hmadnet_mri_rician` does, step by step:

1. build a DICOM MR series from the MNI152 template bundled with nilearn, with Rician noise
   (5 % of the maximum) — a stand-in for your export, with a clean reference to score against;
2. scan the folder (what `medden info` prints: series, geometry, no patient data);
3. denoise it with the `hmadnet_mri_rician` bundle (BM3D if the bundle's weights are absent);
4. view noisy / denoised / |difference| across slices;
5. read the *derived* series back and check its UIDs and geometry.""",
    ),
    ("code", SETUP),
    (
        "code",
        """import medden.io as mio
from medden.data.samples import write_noisy_mr_series

LEVEL = 0.05
export = WORK / "export"
sample = write_noisy_mr_series(
    export / "series_1", level=LEVEL, seed=0, step=2, clean_folder=WORK / "reference"
)
scan = mio.scan(export)
for s in scan.series:
    info = s.summary(scan.root)
    print(info["modality"], info["shape"], "spacing", info["spacing"], info["slices"], "slices")
print("skipped files:", [k.to_dict(scan.root) for k in scan.skipped])""",
    ),
    (
        "md",
        """## Denoise the folder

`run_batch` is the function behind `medden denoise`: every series of the folder becomes a derived
series under `OUT`, written atomically, with a `manifest.jsonl` (one record per series) and a
`provenance.json` beside each output.""",
    ),
    (
        "code",
        """import json

from medden.workflows.denoise import run_batch
from medden.bundle_format import available_bundles
from medden.loading import load_model

MODEL = "hmadnet_mri_rician" if "hmadnet_mri_rician" in available_bundles() else "bm3d"
model = load_model(model=MODEL)
result = run_batch(export, WORK / "denoised", model, quiet=True)
print(f"{MODEL}: {result.done} done, {result.failed} failed, {result.skipped} skipped")
records = [json.loads(line) for line in result.manifest.read_text().splitlines()]
for r in records:
    print({k: r.get(k) for k in ("key", "status", "seconds", "clipped_on_write")})
derived = Path(next(r["output"] for r in records if r["status"] == "done"))
assert result.failed == 0 and result.done == 1""",
    ),
    (
        "code",
        """from medden.metrics import foreground_mask, psnr, ssim

clean = mio.load(WORK / "reference").array
noisy = mio.load(export / "series_1").array
denoised = mio.load(derived).array
data_range = float(clean.max() - clean.min())
brain = foreground_mask(clean)
for name, arr in (("noisy", noisy), (MODEL, denoised)):
    print(
        f"{name:>20}: PSNR {psnr(clean, arr, data_range):.2f} dB, SSIM {ssim(clean, arr, data_range):.4f}, "
        f"brain PSNR {psnr(clean, arr, data_range, mask=brain):.2f} dB"
    )
assert psnr(clean, denoised, data_range, mask=brain) > psnr(clean, noisy, data_range, mask=brain) + 1""",
    ),
    (
        "code",
        """zs = [clean.shape[2] * f // 8 for f in (3, 4, 5)]
diff = np.abs(denoised - noisy)
fig, axes = plt.subplots(len(zs), 3, figsize=(9, 3 * len(zs)))
for row, z in zip(axes, zs):
    for ax, (title, img, cmap, vmax) in zip(
        row,
        (
            ("noisy", noisy, "gray", clean.max()),
            (f"denoised ({MODEL})", denoised, "gray", clean.max()),
            ("|denoised − noisy|", diff, "hot", np.percentile(diff, 99.5)),
        ),
    ):
        ax.imshow(np.rot90(img[:, :, z]), cmap=cmap, vmin=0, vmax=vmax)
        ax.set_title(f"{title}, slice {z}", fontsize=9)
        ax.axis("off")
fig.tight_layout()""",
    ),
    (
        "md",
        """## The derived series

A derived series keeps the study, patient and frame of reference, gets new Series/SOP Instance
UIDs (derived deterministically from the source's, so a rerun replaces rather than duplicates in a
PACS), `ImageType` `DERIVED\\SECONDARY`, and exactly the source's geometry.""",
    ),
    (
        "code",
        """import pydicom


def headers(folder):
    ds = [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(Path(folder).rglob("*.dcm"))]
    return sorted(ds, key=lambda d: int(d.InstanceNumber))


src, out = headers(export / "series_1"), headers(derived)
assert len(src) == len(out)
assert {d.StudyInstanceUID for d in out} == {d.StudyInstanceUID for d in src}
assert {d.FrameOfReferenceUID for d in out} == {d.FrameOfReferenceUID for d in src}
assert {d.SeriesInstanceUID for d in out}.isdisjoint({d.SeriesInstanceUID for d in src})
assert {d.SOPInstanceUID for d in out}.isdisjoint({d.SOPInstanceUID for d in src})
for a, b in zip(src, out):
    for tag in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing"):
        assert np.allclose(np.array(a.get(tag), float), np.array(b.get(tag), float)), tag
print("ImageType:", list(out[0].ImageType))
print("SeriesDescription:", out[0].SeriesDescription)
print("DerivationDescription:", out[0].DerivationDescription)
same = np.allclose(mio.load(derived).affine, mio.load(export / "series_1").affine)
print("the derived series has the source's affine:", same)
assert same""",
    ),
    (
        "md",
        """On your own export: `medden info EXPORT` lists the series (and the files skipped, with the
reason), `medden denoise EXPORT OUT --model hmadnet_mri_rician --figures` writes the derived
series and a figure per series, and a rerun resumes where an interrupted batch stopped.""",
    ),
]

NB02 = [
    (
        "md",
        """# 2 · Noise models

Every noise model of `medden.noise` at several levels on an MNI152 slice, the histograms that show
why Rician noise is not Gaussian (its bias in the air background), and the noise-level estimators
of `medden.noise.estimate` against the true level. The same models are MONAI transforms in
`medden.transforms` (array, dictionary and random variants).""",
    ),
    ("code", SETUP),
    (
        "code",
        """from medden.data.samples import mni152_slice
from medden.noise import NOISE_FUNCTIONS

clean = mni152_slice(axis=2)
clean = clean / clean.max()  # levels are relative to the maximum
LEVELS = {
    "rician": [{"level": v} for v in (0.03, 0.09)],
    "gaussian": [{"sigma": v} for v in (0.03, 0.09)],
    "salt_pepper": [{"amount": v} for v in (0.1, 0.3)],
    "poisson_gaussian": [{"peak": v} for v in (100.0, 10.0)],
    "lowlight": [{"gain": v} for v in (0.3, 0.1)],
}
fig, axes = plt.subplots(2, len(LEVELS), figsize=(3 * len(LEVELS), 6.5))
for col, (kind, settings) in enumerate(LEVELS.items()):
    for row, kwargs in enumerate(settings):
        noisy = NOISE_FUNCTIONS[kind](clean, rng=row, **kwargs)
        axes[row, col].imshow(np.rot90(np.clip(noisy[0], 0, 1)), cmap="gray", vmin=0, vmax=1)
        axes[row, col].set_title(f"{kind} {kwargs}", fontsize=8)
        axes[row, col].axis("off")
fig.tight_layout()""",
    ),
    (
        "md",
        """## The Rician bias

A magnitude MR image is `|x + n1 + i·n2|`: where the signal is zero (air) the noise is Rayleigh
distributed with mean σ·√(π/2) ≈ 1.25 σ, not zero — a bias that a Gaussian denoiser keeps and that
BM3D's bias correction `sqrt(max(x² − σ², 0))` removes on average.""",
    ),
    (
        "code",
        """from medden.metrics import foreground_mask
from medden.noise import gaussian, rician

SIGMA = 0.05
air = ~foreground_mask(clean, 0.02)[0]
r = rician(clean, SIGMA, rng=1)[0][air]
g = gaussian(clean, sigma=SIGMA, rng=1)[0][air]
fig, ax = plt.subplots(figsize=(7, 3.5))
ax.hist(g, bins=120, alpha=0.6, density=True, label=f"Gaussian: mean {g.mean():.4f}")
ax.hist(r, bins=120, alpha=0.6, density=True, label=f"Rician: mean {r.mean():.4f}")
ax.axvline(SIGMA * np.sqrt(np.pi / 2), color="k", ls="--", label="σ·√(π/2)")
ax.set_xlabel(f"value in the air background (σ = {SIGMA})")
ax.legend()
print(f"Rician mean in the air {r.mean():.4f}, theory {SIGMA * np.sqrt(np.pi / 2):.4f}")
assert abs(r.mean() - SIGMA * np.sqrt(np.pi / 2)) < 0.1 * SIGMA""",
    ),
    (
        "md",
        """## Estimating the noise level

Users rarely know σ. The estimators: Rician — a Rayleigh fit of the air background; Gaussian —
Immerkær's difference-of-Laplacians on the weakest gradients; salt and pepper — extremes counted
where a 5×5 median is not itself extreme (so MRI air is not counted as pepper).""",
    ),
    (
        "code",
        """from medden.noise import estimate_noise

cases = [("rician", "level", v) for v in (0.01, 0.03, 0.05, 0.09)]
cases += [("gaussian", "sigma", v) for v in (0.01, 0.03, 0.05, 0.09)]
cases += [("salt_pepper", "amount", v) for v in (0.05, 0.1, 0.2, 0.4)]
if SMALL:
    cases = cases[1::2]
print(f"{'kind':>12} {'true':>7} {'estimated':>10} {'error':>7}")
for i, (kind, arg, true) in enumerate(cases):
    noisy = NOISE_FUNCTIONS[kind](clean, rng=10 + i, **{arg: true})
    est = estimate_noise(noisy, kind, reference=1.0).level
    print(f"{kind:>12} {true:7.3f} {est:10.4f} {est / true - 1:+7.1%}")
    assert abs(est / true - 1) < 0.2, (kind, true, est)""",
    ),
    (
        "md",
        """## As MONAI transforms

The dictionary transforms put noise on `image` and leave the clean copy in `target`; each draw
(kind, level, seed) is recorded in the `MetaTensor`'s metadata, and `replay_noise` reproduces the
noisy image bit for bit from the clean one and that record.""",
    ),
    (
        "code",
        """from monai.data import MetaTensor
from monai.transforms import Compose, CopyItemsd

from medden.transforms import RandRicianNoised, replay_noise

pipeline = Compose(
    [
        CopyItemsd(keys="image", names="target"),
        RandRicianNoised(keys="image", prob=1.0, level_range=(0.01, 0.09)),
    ]
)
pipeline.set_random_state(seed=7)
out = pipeline({"image": MetaTensor(clean.astype(np.float32))})
record = out["image"].meta["noise"]
print(record)
again = replay_noise(out["target"], record)
assert np.array_equal(np.asarray(again), np.asarray(out["image"]))""",
    ),
]

NB03 = [
    (
        "md",
        """# 3 · Train HMAD-Net and compare it with BM3D and DnCNN

One engine (`medden.engine`) trains every net; `medden.workflows.evaluate` compares them on the
same seeded noisy images with paired statistics, as in Table 3 of the HMAD-Net paper. This notebook
trains HMAD-Net (compact) and DnCNN briefly on MNI152 slices with Rician noise, then compares them
with BM3D (with the Rician bias correction) and with the shipped `hmadnet_mri_rician` bundle
(6000 iterations) on held-out slices.

Full run: 1500 iterations per net; at the speeds measured for the bundles on one CPU core (at most
0.47 s per HMAD-Net and 1.48 s per DnCNN iteration) about 12 and 37 minutes. The small-work setting
trains a few iterations only, so its nets are far from converged.""",
    ),
    ("code", SETUP),
    (
        "code",
        """from medden.engine import TrainConfig, train

ITERATIONS = 10 if SMALL else 1500
runs = {}
for net in ("hmadnet-compact", "dncnn"):
    cfg = TrainConfig(
        net=net,
        out_dir=str(WORK / net),
        data="mni152",
        noise="rician",
        level_range=(0.01, 0.1),
        val_levels=(0.05,),
        max_iterations=ITERATIONS,
        val_interval=max(5, ITERATIONS // 5),
        batch_size=4 if SMALL else 8,
        patch_size=48 if SMALL else 64,
        lr=5e-4,
        scheduler="cosine",
        max_val_images=2 if SMALL else 8,
        progress=False,
    )
    runs[net] = train(cfg)
    print(f"{net}: best validation SSIM {runs[net].best_ssim:.4f} at iteration {runs[net].best_iteration}, "
          f"{runs[net].seconds:.0f} s")""",
    ),
    (
        "code",
        """import json

history = [json.loads(line) for line in (WORK / "hmadnet-compact" / "metrics.jsonl").read_text().splitlines()]
loss = [(h["iteration"], h["loss"]) for h in history if "loss" in h]
fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(*zip(*loss))
ax.set_xlabel("iteration")
ax.set_ylabel("training loss (0.8·MSE + 0.2·(1 − SSIM))")
ax.set_title("HMAD-Net compact");""",
    ),
    (
        "md",
        """## Paired comparison on held-out slices

Each method denoises the same noisy copies of MNI152 test slices (slabs the training never saw).
The table has PSNR/SSIM on the whole slice and the brain, seconds per slice, and each method's
difference from BM3D with its 95 % confidence interval and paired t-test / Wilcoxon p-values.""",
    ),
    (
        "code",
        """from IPython.display import Image, Markdown, display

from medden.workflows.evaluate import EvalConfig, evaluate
from medden.bundle_format import available_bundles

methods = ["noisy", "bm3d"] + [f"{net}={run.best_path}" for net, run in runs.items()]
if "hmadnet_mri_rician" in available_bundles():
    methods.append("hmadnet_mri_rician")
report = evaluate(
    EvalConfig(
        methods=tuple(methods),
        out_dir=str(WORK / "report"),
        noise="rician",
        levels=(0.05,) if SMALL else (0.03, 0.05, 0.09),
        max_images=2 if SMALL else 8,
        reference="bm3d",
        method_kwargs={"bm3d": {"rician_bias_correction": True}},
        progress=False,
    )
)
display(Markdown(report.markdown))
psnr = {(r["level"], r["method"]): r["psnr_fg_mean"] for r in report.summary}
assert all(psnr[(lv, "bm3d")] > psnr[(lv, "noisy")] for lv, m in psnr if m == "noisy")""",
    ),
    ("code", """display(Image(filename=[f for f in report.files if f.endswith(".png")][0]))"""),
    (
        "md",
        """The report is also on disk (`per_image.csv`, `summary.csv`, `summary.md`, `results.json` with the
configuration and software versions, and the figures); `medden evaluate --methods noisy bm3d
hmadnet_mri_rician --out report/` produces the same from the command line.""",
    ),
]

NB04 = [
    (
        "md",
        """# 4 · Self-supervised fine-tuning on noisy scans

Most users have noisy scans and no clean ones. `medden finetune` adapts a trained net to such data
with Neighbor2Neighbor (two sub-sampled copies of each noisy image predict each other; no clean
target) or Noise2Self masking. Here a DnCNN trained on *photographs* (the `dncnn_gray` bundle) is
fine-tuned on a noisy MRI volume alone and scored, before and after, against the clean volume that
the fine-tuning never saw. The volume it is fine-tuned on is the one it then denoises: with no clean
data, this is how a user would use it.

Full run: 400 fine-tuning iterations on the 1 mm volume, about 3 minutes on one CPU core (it
gained 2.6 dB brain PSNR over the natural-image net here with the `dncnn_gray` weights of
2026-12-05, and 1.5 dB on held-out slices in `benchmarks/selfsupervised.py` with those of
2026-12-06); the small-work setting's 10 iterations are too few to gain
anything. Measure it on your own data before relying on it.""",
    ),
    ("code", SETUP),
    (
        "code",
        """import nibabel as nib

from medden.data.samples import mni152_phantom
from medden.noise import rician
from medden.bundle_format import available_bundles

assert "dncnn_gray" in available_bundles(), "this notebook needs the dncnn_gray bundle's weights"
clean, affine = mni152_phantom(step=2 if SMALL else 1, scale=1.0)
noisy = rician(clean, 0.05, rng=3).astype(np.float32)
(WORK / "noisy_scans").mkdir()
nib.save(nib.Nifti1Image(noisy, affine), WORK / "noisy_scans" / "scan.nii.gz")  # all the user has
print("noisy volume", noisy.shape)""",
    ),
    (
        "code",
        """from medden.bundle import WEIGHTS
from medden.engine import train
from medden.workflows.train import finetune_config

natural = available_bundles()["dncnn_gray"] / WEIGHTS
ITERATIONS = 10 if SMALL else 400
cfg = finetune_config(
    natural,
    str(WORK / "noisy_scans"),
    str(WORK / "finetuned"),
    method="neighbor2neighbor",
    max_iterations=ITERATIONS,
    val_interval=ITERATIONS,
    batch_size=4 if SMALL else 8,
    patch_size=48 if SMALL else 64,
    progress=False,
)
tuned = train(cfg)
print(f"fine-tuned {ITERATIONS} iterations in {tuned.seconds:.0f} s -> {tuned.best_path}")""",
    ),
    (
        "code",
        """import medden
from medden.metrics import foreground_mask, paired_stats, psnr

zs = range(clean.shape[2] // 4, 3 * clean.shape[2] // 4, 4 if SMALL else 2)
brain = foreground_mask(clean)
weights = {"natural images only": natural, "+ self-supervised fine-tuning": tuned.best_path}
outputs = {
    name: medden.denoise(noisy, model="dncnn", checkpoint=path, mode="2d", axis=2)
    for name, path in weights.items()
}
scores = {
    name: [psnr(clean[..., z], out[..., z], 1.0, mask=brain[..., z]) for z in zs]
    for name, out in {"noisy": noisy, **outputs}.items()
}
for name, s in scores.items():
    print(f"{name:>32}: brain PSNR {np.mean(s):.2f} dB over {len(s)} slices")
stats = paired_stats(scores["+ self-supervised fine-tuning"], scores["natural images only"])
print(
    f"fine-tuned − natural only: {stats.mean_diff:+.2f} dB "
    f"(95 % CI {stats.ci_low:+.2f} to {stats.ci_high:+.2f}, Wilcoxon p = {stats.wilcoxon_pvalue:.2g})"
)
print("a gain" if stats.ci_low > 0 else "no significant gain" if stats.ci_high > 0 else "a loss")""",
    ),
    (
        "code",
        """z = clean.shape[2] // 2
fig, axes = plt.subplots(1, 4, figsize=(13, 3.6))
for ax, (name, img) in zip(axes, {"clean (never seen)": clean, "noisy": noisy, **outputs}.items()):
    ax.imshow(np.rot90(img[:, :, z]), cmap="gray", vmin=0, vmax=1)
    ax.set_title(name, fontsize=9)
    ax.axis("off")
fig.tight_layout()""",
    ),
    (
        "md",
        """From the command line: `medden finetune bundles/dncnn_gray/models/model.safetensors --data
my_noisy_scans/ --out runs/ssl`, then `medden denoise my_noisy_scans/ out/ --checkpoint
runs/ssl/best.safetensors`.""",
    ),
]

NB05 = [
    (
        "md",
        """# 5 · Natural images: GIMSANet, MGMSDNet, DnCNN and MIRNet

The natural-image bundles on the held-out `skimage.data` photographs (the training never saw
`camera` or `astronaut`): gray AWGN at σ = 25 (on 0–255) with DnCNN, GIMSANet and MGMSDNet against
BM3D, color AWGN with GIMSANet against CBM3D, and low-light enhancement with MIRNet against gamma
correction and CLAHE. Images go through files, as a user's would: `medden.denoise(path, model=…)`.
The small-work setting crops the photographs to 128².""",
    ),
    ("code", SETUP),
    (
        "code",
        """import medden
import medden.io as mio
from medden.data.samples import natural_image
from medden.io.images import save_image
from medden.metrics import psnr, ssim
from medden.noise import gaussian, lowlight
from medden.bundle_format import available_bundles


def crop(img, side=128):
    if not SMALL:
        return img
    h, w = img.shape[-2:]
    return img[..., (h - side) // 2 : (h + side) // 2, (w - side) // 2 : (w + side) // 2]


def to_file(chw01, name):
    \"\"\"An 8-bit PNG of a (C, H, W) image in [0, 1], as a noisy photograph would arrive.\"\"\"
    path = WORK / f"{name}.png"
    save_image(None, np.rint(np.clip(chw01, 0, 1) * 255).astype(np.uint8), path)
    return path


def compare(clean, noisy_path, models):
    \"\"\"Denoise the file with each model; PSNR/SSIM on 0–255 against the clean image.\"\"\"
    ref = clean * 255.0
    results = {"noisy": mio.load(noisy_path).array.astype(np.float64)}
    for m in models:
        if m in available_bundles() or m in ("bm3d", "gamma", "clahe"):
            results[m] = np.asarray(medden.denoise(str(noisy_path), model=m), dtype=np.float64)
    scores = {}
    for name, out in results.items():
        scores[name] = psnr(ref, out, 255.0)
        print(f"{name:>16}: PSNR {scores[name]:6.2f} dB  SSIM {ssim(ref, out, 255.0):.4f}")
    return results, scores


def show(results, title):
    fig, axes = plt.subplots(1, len(results), figsize=(3.2 * len(results), 3.4))
    for ax, (name, img) in zip(axes, results.items()):
        img = np.clip(img, 0, 255).astype(np.uint8)
        rgb = img.ndim == 3 and img.shape[0] == 3
        ax.imshow(np.moveaxis(img, 0, -1) if rgb else img.squeeze(), cmap="gray")
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()""",
    ),
    ("md", "## Gray AWGN, σ = 25"),
    (
        "code",
        """camera = crop(natural_image("camera"))  # (1, H, W) in [0, 1]
noisy_path = to_file(gaussian(camera, sigma=25 / 255, rng=0), "camera_sigma25")
gray, scores = compare(camera, noisy_path, ["bm3d", "dncnn_gray", "gimsanet_gray", "mgmsdnet_gray"])
show(gray, "camera, AWGN σ 25")
assert all(p > scores["noisy"] + 3 for name, p in scores.items() if name != "noisy")""",
    ),
    ("md", "## Color AWGN, σ = 25"),
    (
        "code",
        """astronaut = crop(natural_image("astronaut"))  # (3, H, W) in [0, 1]
noisy_path = to_file(gaussian(astronaut, sigma=25 / 255, rng=1), "astronaut_sigma25")
color, scores = compare(astronaut, noisy_path, ["bm3d", "gimsanet_color"])
assert all(p > scores["noisy"] + 3 for name, p in scores.items() if name != "noisy")
show(color, "astronaut, AWGN σ 25")""",
    ),
    ("md", "## Low light (brightness gain 0.2, with photon and read noise)"),
    (
        "code",
        """dark_path = to_file(lowlight(astronaut, 0.2, rng=2), "astronaut_lowlight")
bright, scores = compare(astronaut, dark_path, ["gamma", "clahe", "mirnet_lowlight"])
show(bright, "astronaut, low light")""",
    ),
    (
        "md",
        """The bundles' own evaluations (all held-out photographs, several levels, side by side with
BM3D/CBM3D) are in `bundles/<name>/docs/README.md`; `python -m monai.bundle run --config_file
bundles/gimsanet_gray/configs/inference.json --dataset_dir my_photos --output_dir out` denoises a
folder of PNG/JPEG/BMP/TIFF files in their own format and bit depth.""",
    ),
]

NOTEBOOKS = {
    "01_dicom_folder_denoising": NB01,
    "02_noise_models": NB02,
    "03_train_and_compare": NB03,
    "04_self_supervised_finetuning": NB04,
    "05_natural_images": NB05,
}


def build(cells: list[tuple[str, str]]) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    for i, (kind, text) in enumerate(cells):
        cell = nbformat.v4.new_markdown_cell(text) if kind == "md" else nbformat.v4.new_code_cell(text)
        cell["id"] = f"cell-{i:02d}"  # stable ids: a rebuild changes nothing unless a cell does
        nb.cells.append(cell)
    return nb


def render(name: str) -> str:
    return nbformat.writes(build(NOTEBOOKS[name])) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="only check that the notebooks are up to date")
    args = ap.parse_args()
    stale = []
    for name in NOTEBOOKS:
        path = HERE / f"{name}.ipynb"
        text = render(name)
        if args.check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(path.name)
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    if stale:
        print(f"out of date (run python notebooks/build.py): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
