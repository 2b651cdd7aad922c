"""Synthetic clean training images without limit: textured dead leaves and MR-like images.

A model learns only the variety it is shown. These generators draw a new clean image from every seed,
in [0, 1] float32, channel first, 2D ``(C, H, W)`` or 3D ``(C, D, H, W)``:

- :func:`dead_leaves` — occluding random shapes (discs/ellipses, convex polygons, rectangles; balls,
  polytopes and boxes in 3D) whose radii follow the scale-invariant law ``r^-3``, each filled with a
  grey or a colour plus a texture (a ``1/f^beta`` Gaussian field, a sinusoidal grating or a smooth
  gradient), with an optional depth-of-field blur of the layers behind a sharp foreground (Achddou,
  Gousseau and Ladjal, "Synthetic images as a regularity prior for image restoration neural
  networks", SSVM 2021; "VibrantLeaves", 2025);
- :func:`synth_mr` — MR-like slices and volumes by domain randomisation of tissue maps, as SynthSeg
  (Billot et al., Medical Image Analysis 2023): labels from the grey/white matter maps shipped with
  nilearn (CSF, a skull/fat/skin shell, lesions, vessels and random blobs added), deformed, given a
  random intensity and texture per label (any contrast: the background is not always the darkest),
  then a bias field, partial-volume blur, a resolution change and Gibbs ringing;
- :class:`SyntheticImages` — a lazy, seeded, unlimited :class:`~collections.abc.Sequence` of either:
  item ``i`` is drawn from ``numpy.random.default_rng([seed, i])``, so it does not depend on the order
  of access, the data-loader workers or the process that asks for it;
- :class:`ConcatSequence` — several sequences one after another, or mixed by weight, without copying.
"""

from __future__ import annotations

import bisect
import functools
import math
import operator
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from medden.data.samples import mni152

#: the generators of :class:`SyntheticImages`
KINDS = ("deadleaves", "synthmr")
#: leaf shapes of :func:`dead_leaves` (balls/ellipsoids, convex polytopes and boxes in 3D)
LEAF_SHAPES = ("disc", "polygon", "rectangle")
#: label values of the label map :func:`synth_mr` returns with ``return_labels=True``
MR_LABELS = {
    "background": 0,
    "csf": 1,
    "gray_matter": 2,
    "white_matter": 3,
    "skull": 4,
    "fat": 5,
    "skin": 6,
    "lesion": 7,
    "vessel": 8,
    "blob1": 9,
    "blob2": 10,
    "blob3": 11,
}
#: ranges of the mean intensity of background, CSF, GM, WM, skull, fat, skin per contrast (before the
#: final min-max); lesions, vessels and blobs always draw from [0, 1], and so does every label in
#: ``random`` contrast
MR_CONTRASTS: dict[str, tuple[tuple[float, float], ...]] = {
    "t1": ((0.0, 0.1), (0.05, 0.3), (0.35, 0.55), (0.6, 0.85), (0.0, 0.15), (0.7, 1.0), (0.3, 0.6)),
    "t2": ((0.0, 0.1), (0.7, 1.0), (0.4, 0.6), (0.2, 0.4), (0.0, 0.15), (0.5, 0.9), (0.25, 0.5)),
    "flair": ((0.0, 0.1), (0.0, 0.15), (0.45, 0.7), (0.3, 0.5), (0.0, 0.15), (0.5, 0.9), (0.3, 0.6)),
    "pd": ((0.0, 0.1), (0.6, 0.9), (0.55, 0.75), (0.45, 0.6), (0.0, 0.2), (0.6, 0.9), (0.4, 0.7)),
}
_CONTRAST_ODDS = {"random": 0.4, "t1": 0.2, "t2": 0.2, "flair": 0.1, "pd": 0.1}
_N_LABELS = len(MR_LABELS)
_MAX_FACETS = 8  # half-spaces per polygon/polytope leaf


def _as_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _spatial_shape(shape: int | Sequence[int], spatial_dims: int) -> tuple[int, ...]:
    out = (int(shape),) * spatial_dims if isinstance(shape, (int, np.integer)) else tuple(map(int, shape))
    if len(out) not in (2, 3) or min(out) < 1:
        raise ValueError(f"shape must be 2 or 3 positive sizes (or one size and spatial_dims), not {shape}")
    return out


def power_law_field(
    shape: Sequence[int], rng: np.random.Generator | int | None, exponent: float = 2.0
) -> np.ndarray:
    """A random-phase Gaussian field with a ``1/f^exponent`` power spectrum, zero mean and unit std.

    Args:
        shape: spatial shape (any number of dimensions).
        rng: a numpy ``Generator`` or a seed.
        exponent: slope of the power spectrum: 0 is white noise, 2 a rough texture (a "1/f" amplitude
            spectrum, as natural images), 4 and above smooth blobs.

    Returns:
        a float32 array of ``shape``; periodic, so any shift of it is another sample of the same field.

    Example:
        >>> f = power_law_field((32, 32), 0, exponent=3.0)
        >>> f.shape, f.dtype, bool(abs(f.mean()) < 1e-5 and abs(f.std() - 1) < 1e-3)
        ((32, 32), dtype('float32'), True)
    """
    from scipy import fft

    rng = _as_rng(rng)
    noise = rng.standard_normal(tuple(shape), dtype=np.float32)
    spectrum = fft.rfftn(noise)
    freqs = [np.fft.fftfreq(n).astype(np.float32) for n in shape[:-1]] + [
        np.fft.rfftfreq(shape[-1]).astype(np.float32)
    ]
    f2 = functools.reduce(np.add.outer, [f * f for f in freqs])
    f2.flat[0] = np.inf  # no constant term
    spectrum *= (f2 ** (-exponent / 4.0)).astype(np.float32)
    out = fft.irfftn(spectrum, s=tuple(shape)).astype(np.float32)
    std = float(out.std())
    return (out - out.mean()) / (std if std > 0 else 1.0)


def sample_radii(
    rng: np.random.Generator | int | None, size: int, rmin: float, rmax: float, exponent: float = 3.0
) -> np.ndarray:
    """Radii with density proportional to ``r^-exponent`` on ``[rmin, rmax]`` (inverse CDF sampling).

    ``exponent = 3`` is the scale-invariant law of dead-leaves images in 2D (Achddou et al. 2021).

    Args:
        rng: a numpy ``Generator`` or a seed.
        size: number of radii.
        rmin, rmax: bounds, ``0 < rmin <= rmax``.
        exponent: power of the density.

    Example:
        >>> r = sample_radii(0, 10_000, 1.0, 100.0)
        >>> bool(r.min() >= 1.0 and r.max() <= 100.0 and np.median(r) < 1.5)
        True
    """
    if not 0 < rmin <= rmax:
        raise ValueError(f"need 0 < rmin <= rmax, got {rmin}, {rmax}")
    u = _as_rng(rng).random(size)
    if abs(exponent - 1.0) < 1e-9:
        return rmin * (rmax / rmin) ** u
    a = 1.0 - exponent
    return (rmin**a + u * (rmax**a - rmin**a)) ** (1.0 / a)


def _radius_moment(rmin: float, rmax: float, exponent: float, power: float) -> float:
    """E[r^power] under :func:`sample_radii`'s law."""

    def integral(q: float) -> float:  # of r^q over [rmin, rmax]
        if abs(q + 1.0) < 1e-9:
            return math.log(rmax / rmin)
        return (rmax ** (q + 1.0) - rmin ** (q + 1.0)) / (q + 1.0)

    if rmax == rmin:
        return rmin**power
    return integral(power - exponent) / integral(-exponent)


# -------------------------------------------------------------------------------------- dead leaves


class _Leaves(NamedTuple):
    """Leaf ``k`` covers pixel ``p`` if ``p - centre[k]`` is inside its shape; leaf 0 is in front."""

    centre: np.ndarray  # (n, d)
    r: np.ndarray  # (n,) radius of the ball holding the shape
    facets: np.ndarray  # (n,) 0: an ellipse/ellipsoid (quad), else the number of half-spaces (within r)
    quad: np.ndarray  # (n, q) coefficients of the quadric (diagonal, then doubled off-diagonal terms)
    normals: np.ndarray  # (n, _MAX_FACETS, d)
    offsets: np.ndarray  # (n, _MAX_FACETS); inf for unused facets


def _rotations(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    """``n`` random rotation matrices ``(n, d, d)`` (uniform angle in 2D, Haar measure in 3D)."""
    if d == 2:
        t = rng.uniform(0, 2 * np.pi, n)
        c, s = np.cos(t), np.sin(t)
        return np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)
    q, r = np.linalg.qr(rng.standard_normal((n, d, d)))
    return q * np.sign(np.diagonal(r, axis1=-2, axis2=-1))[:, None, :]


def _quadrics(rng: np.random.Generator, r: np.ndarray, d: int) -> np.ndarray:
    """Ellipses/ellipsoids inside the ball of radius ``r``: half of them discs/balls."""
    n = len(r)
    ratio = np.where(rng.random((n, 1)) < 0.5, 1.0, rng.uniform(0.25, 1.0, (n, d)))
    ratio[:, 0] = 1.0
    axes = r[:, None] * ratio
    rot = _rotations(rng, n, d)
    q = (rot / axes[:, None, :] ** 2) @ np.swapaxes(rot, 1, 2)
    pairs = [(j, k) for j in range(d) for k in range(j + 1, d)]
    return np.stack([q[:, j, j] for j in range(d)] + [2 * q[:, j, k] for j, k in pairs], -1)


def _polygons(rng: np.random.Generator, r: np.ndarray, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Convex polygons inscribed in the circle of radius ``r`` (2D) or random convex polytopes (3D)."""
    n, m_max = len(r), _MAX_FACETS
    slot = np.arange(m_max)[None]
    if d == 2:
        m = rng.integers(3, m_max + 1, (n, 1))
        angles = rng.uniform(0, 2 * np.pi, (n, 1)) + 2 * np.pi * (slot + 0.8 * rng.random((n, m_max))) / m
        following = np.take_along_axis(angles, np.where(slot + 1 < m, slot + 1, 0), 1)
        following = np.where(slot + 1 < m, following, following + 2 * np.pi)
        half_gap, mid = (following - angles) / 2, (following + angles) / 2
        normals = np.stack([np.cos(mid), np.sin(mid)], -1)
        offsets = r[:, None] * np.cos(half_gap)
    else:
        m = rng.integers(4, m_max + 1, (n, 1))
        normals = rng.standard_normal((n, m_max, d))
        normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
        offsets = r[:, None] * rng.uniform(0.3, 0.9, (n, m_max))
    return normals, np.where(slot < m, offsets, np.inf)


def _boxes(rng: np.random.Generator, r: np.ndarray, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Rotated rectangles/boxes whose half-diagonal is ``r``."""
    n = len(r)
    half = rng.uniform(0.1, 1.0, (n, d))
    half *= (r / np.linalg.norm(half, axis=1))[:, None]
    axes = np.swapaxes(_rotations(rng, n, d), 1, 2)  # rows: the box's axes
    normals = np.zeros((n, _MAX_FACETS, d))
    offsets = np.full((n, _MAX_FACETS), np.inf)
    normals[:, : 2 * d] = np.concatenate([axes, -axes], 1)
    offsets[:, : 2 * d] = np.concatenate([half, half], 1)
    return normals, offsets


def _draw_leaves(
    rng: np.random.Generator,
    n: int,
    shape: tuple[int, ...],
    radii: tuple[float, float, float],
    shapes: Sequence[str],
) -> _Leaves:
    d = len(shape)
    rmin, rmax, exponent = radii
    size = np.asarray(shape, dtype=float)
    pad = np.minimum(0.1 * size, rmax)  # leaves centred just outside also cover the borders
    centre = rng.uniform(-pad, size - 1 + pad, (n, d))
    r = sample_radii(rng, n, rmin, rmax, exponent)
    choice = np.asarray([LEAF_SHAPES.index(s) for s in shapes])[rng.integers(0, len(shapes), n)]
    normals = np.zeros((n, _MAX_FACETS, d))
    offsets = np.full((n, _MAX_FACETS), np.inf)
    quad = np.zeros((n, d * (d + 1) // 2))
    quad[choice == 0] = _quadrics(rng, r[choice == 0], d)
    for code, draw in ((1, _polygons), (2, _boxes)):
        sel = choice == code
        normals[sel], offsets[sel] = draw(rng, r[sel], d)
    return _Leaves(
        centre.astype(np.float32),
        r.astype(np.float32),
        np.where(choice == 0, 0, np.isfinite(offsets).sum(1)),
        quad.astype(np.float32),
        normals.astype(np.float32),
        offsets.astype(np.float32),
    )


def _ellipse_spans(leaves: _Leaves, get: Any, delta: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Interval of the last-axis offset inside ellipses/ellipsoids, for the other axes' offsets."""
    d = len(delta) + 1
    pairs = [(j, k) for j in range(d) for k in range(j + 1, d)]
    coef = {(j, j): get(leaves.quad[:, j]) for j in range(d)}
    coef.update({jk: get(leaves.quad[:, d + q]) for q, jk in enumerate(pairs)})
    x = d - 1  # a x^2 + b x + c <= 1
    a = coef[x, x]
    b = sum(coef[j, x] * delta[j] for j in range(x))
    c = sum(coef[j, k] * delta[j] * delta[k] for j in range(x) for k in range(j, x) if (j, k) in coef)
    disc = b * b - 4 * a * (c - 1)
    root = np.sqrt(np.maximum(disc, 0))
    empty = disc < 0
    return np.where(empty, np.inf, (-b - root) / (2 * a)), np.where(empty, -np.inf, (-b + root) / (2 * a))


def _polytope_spans(leaves: _Leaves, get: Any, delta: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Interval of the last-axis offset inside convex polytopes (half-spaces within a ball)."""
    x = len(delta)
    r = get(leaves.r)
    room = r * r - sum(v * v for v in delta)
    high = np.sqrt(np.maximum(room, 0))
    low = np.where(room < 0, np.inf, -high)
    for f in range(_MAX_FACETS):
        nx = get(leaves.normals[:, f, x])
        t = get(leaves.offsets[:, f]) - sum(get(leaves.normals[:, f, j]) * delta[j] for j in range(x))
        with np.errstate(divide="ignore", invalid="ignore"):
            bound = t / nx
        high = np.where(nx > 1e-6, np.minimum(high, bound), high)
        low = np.where(nx < -1e-6, np.maximum(low, bound), low)
        low = np.where((np.abs(nx) <= 1e-6) & (t < 0), np.inf, low)
    return low, high


def _draw_spans(leaves: _Leaves, ids: np.ndarray, fronts: list) -> None:
    """Scan-convert convex leaves of one kind at once: every row of every leaf's bounding box gets the
    interval of pixels inside the leaf (exactly), then every pixel of it its leaf index. The rows run
    leaf by leaf, so a leaf's parameter is repeated, never gathered pixel by pixel."""
    shape = fronts[0][0].shape
    centre, r = leaves.centre[ids], leaves.r[ids, None]
    lo = np.maximum(np.floor(centre[:, :-1] - r), 0).astype(np.int64)
    hi = np.minimum(np.ceil(centre[:, :-1] + r), np.asarray(shape[:-1]) - 1).astype(np.int64)
    ext = np.maximum(hi - lo + 1, 0)
    counts = ext.prod(1)

    def get(column: np.ndarray) -> np.ndarray:
        return np.repeat(column[ids], counts)

    offset = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    rows = []
    for j in range(len(shape) - 2, -1, -1):
        e = np.repeat(ext[:, j], counts)
        rows.insert(0, np.repeat(lo[:, j], counts) + offset % e)
        offset //= e
    delta = [p - get(leaves.centre[:, j]) for j, p in enumerate(rows)]
    spans = _ellipse_spans if leaves.facets[ids[0]] == 0 else _polytope_spans
    low, high = spans(leaves, get, delta)
    cx = get(leaves.centre[:, -1])
    with np.errstate(invalid="ignore"):
        x0 = np.maximum(np.ceil(cx + low), 0)
        x1 = np.minimum(np.floor(cx + high), shape[-1] - 1)
    length = np.where(x1 >= x0, x1 - x0 + 1, 0).astype(np.int64)
    start = np.ravel_multi_index(rows, shape[:-1]) * shape[-1] + np.where(length > 0, x0, 0).astype(np.int64)
    flat = np.arange(int(length.sum())) + np.repeat(start - (np.cumsum(length) - length), length)
    leaf = np.repeat(np.repeat(ids.astype(np.int32), counts), length)
    for front, first in fronts:  # the front-most (lowest) leaf index wins
        keep = slice(None) if first == 0 else leaf >= first
        np.minimum.at(front.reshape(-1), flat[keep], leaf[keep])


def _rasterise(leaves: _Leaves, shape: tuple[int, ...], split: int | None) -> tuple[np.ndarray, ...]:
    """Index of the front-most leaf at every pixel (``n`` where none falls: the background leaf), and
    with ``split`` the same among leaves ``>= split`` only (the layers behind the sharp foreground)."""
    n = len(leaves.r)
    fronts = [(np.full(shape, n, dtype=np.int32), 0)]
    if split is not None:
        fronts.append((np.full(shape, n, dtype=np.int32), split))
    for ellipse in (True, False):
        ids = np.flatnonzero((leaves.facets == 0) == ellipse)
        if len(ids):
            _draw_spans(leaves, ids, fronts)
    return tuple(f for f, _ in fronts)


class _Looks(NamedTuple):
    """Colour and texture of every leaf (plus the background leaf, last)."""

    colour: np.ndarray  # (n + 1, C)
    texture: np.ndarray  # (n + 1,) 0 flat, 1 gradient, 2 grating, 3 Gaussian field
    amplitude: np.ndarray  # (n + 1,)
    tint: np.ndarray  # (n + 1, C) texture weight per channel
    vector: np.ndarray  # (n + 1, d) gradient direction / r, or grating angular frequency
    phase: np.ndarray  # (n + 1,)
    field: np.ndarray  # (n + 1,) which field
    shift: np.ndarray  # (n + 1, d) integer shift of the (periodic) field


def _draw_looks(
    rng: np.random.Generator, leaves: _Leaves, size: tuple[int, ...], channels: int, textured: float
) -> _Looks:
    n, d = len(leaves.r) + 1, leaves.centre.shape[1]
    # a palette per image (a few base colours, jittered per leaf): histograms differ from draw to draw
    a, b = np.exp(rng.uniform(np.log(0.3), np.log(3.0), 2))
    palette = rng.beta(a, b, (int(rng.integers(2, 13)), channels))
    if channels > 1 and rng.random() < 0.3:  # a washed-out image
        palette = 0.5 * palette + 0.5 * palette.mean(1, keepdims=True)
    colour = palette[rng.integers(0, len(palette), n)] + rng.normal(0, rng.uniform(0, 0.12), (n, channels))
    texture = np.where(rng.random(n) < textured, rng.choice(3, n, p=[0.3, 0.2, 0.5]) + 1, 0)
    r = np.append(leaves.r, max(size)).astype(np.float64)  # the background leaf spans the image
    direction = rng.standard_normal((n, d))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    period = np.exp(rng.uniform(np.log(2.5), np.log(np.maximum(3.0, 2 * r))))
    vector = np.where(
        (texture == 1)[:, None], direction / r[:, None], direction * (2 * np.pi / period)[:, None]
    )
    tint = np.where(rng.random((n, 1)) < 0.5, 1.0, 1.0 + 0.5 * rng.standard_normal((n, channels)))
    return _Looks(
        np.clip(colour, 0, 1).astype(np.float32),
        texture,
        rng.uniform(0.05, 0.4, n).astype(np.float32),
        tint.astype(np.float32),
        vector.astype(np.float32),
        rng.uniform(0, 2 * np.pi, n).astype(np.float32),
        rng.integers(0, 3, n),
        rng.integers(0, 1 << 16, (n, d)),
    )


def _paint(front: np.ndarray, leaves: _Leaves, looks: _Looks, fields: np.ndarray) -> np.ndarray:
    """The image of a leaf-index map: each leaf's colour plus its texture, clipped to [0, 1]."""
    shape, d = front.shape, front.ndim
    centre = np.concatenate([leaves.centre, (np.asarray(shape, np.float32)[None] - 1) / 2])
    pattern = np.zeros(shape, dtype=np.float32)
    kind = looks.texture[front]
    for texture in (1, 2, 3):
        where = np.nonzero(kind == texture)
        k = front[where]
        if texture == 1:  # a linear ramp across the leaf
            ramp = sum(looks.vector[k, j] * (where[j] - centre[k, j]) for j in range(d))
            pattern[where] = np.clip(ramp, -1, 1)
        elif texture == 2:  # a sinusoidal grating
            pattern[where] = np.sin(sum(looks.vector[k, j] * where[j] for j in range(d)) + looks.phase[k])
        else:  # a window of a 1/f^beta field, shifted per leaf
            idx = tuple((where[j] + looks.shift[k, j]) % shape[j] for j in range(d))
            pattern[where] = fields[(looks.field[k], *idx)]
    image = looks.colour[front] + (looks.amplitude[front] * pattern)[..., None] * looks.tint[front]
    return np.clip(np.moveaxis(image, -1, 0), 0.0, 1.0)


def dead_leaves(
    shape: int | Sequence[int],
    rng: np.random.Generator | int | None,
    channels: int = 1,
    spatial_dims: int = 2,
    rmin: float = 1.0,
    rmax: float | None = None,
    exponent: float = 3.0,
    shapes: Sequence[str] = LEAF_SHAPES,
    textured: float = 0.7,
    blur_prob: float = 0.3,
    coverage: float = 0.995,
    max_leaves: int = 50_000,
    return_labels: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """A textured dead-leaves image: random shapes falling on each other, the first ones in front.

    Leaf radii follow ``r^-exponent`` on ``[rmin, rmax]`` (:func:`sample_radii`), which makes the image
    statistically scale invariant (``exponent = 3`` in 2D, as Achddou et al. 2021). Enough leaves are
    drawn that a pixel stays uncovered with probability about ``1 - coverage``; it then shows a
    background leaf. Each leaf has a colour (gray: one value) drawn around a random palette of the
    image, plus, with probability ``textured``, a texture: a shifted window of a ``1/f^beta`` Gaussian
    field, a sinusoidal grating or a linear gradient. With probability ``blur_prob`` the leaves behind
    a random depth are blurred (Gaussian, σ 1–3 pixels) as out of focus, and the front ones stay sharp.

    Leaves are scan-converted on their bounding boxes only, all at once: every row of every box gets
    the exact interval of pixels inside its (convex) leaf, and only those pixels are written.

    Args:
        shape: spatial shape ``(H, W)`` or ``(D, H, W)``, or one side (with ``spatial_dims``).
        rng: a numpy ``Generator`` or a seed (the image is a function of it).
        channels: 1 (gray) or 3 (colour).
        spatial_dims: 2 or 3 when ``shape`` is one side.
        rmin: smallest radius in pixels.
        rmax: largest radius in pixels (the longest side when None).
        exponent: power of the radius density (3: scale invariant in 2D; the scale-invariant law in
            3D is 4, which draws about ten times as many, mostly tiny, leaves: 3 keeps volumes fast).
        shapes: leaf shapes among :data:`LEAF_SHAPES`: ``disc`` (discs and ellipses; balls and
            ellipsoids in 3D), ``polygon`` (convex polygons; convex polytopes in 3D), ``rectangle``
            (rotated rectangles; boxes in 3D); drawn with equal odds.
        textured: probability that a leaf has a texture rather than a flat colour.
        blur_prob: probability of the depth-of-field blur.
        coverage: expected fraction of pixels covered by the drawn leaves.
        max_leaves: cap on the number of leaves (reached when ``rmin`` is tiny against the image).
        return_labels: also return the index of the leaf seen at each pixel (0 is the front-most leaf,
            the number of leaves is the background leaf).

    Returns:
        a float32 array ``(channels, *shape)`` in [0, 1]; with ``return_labels`` also the int32 leaf
        index map of ``shape``.

    Example:
        >>> img = dead_leaves((64, 64), np.random.default_rng(0), channels=3)
        >>> img.shape, img.dtype, bool(0 <= img.min() <= img.max() <= 1)
        ((3, 64, 64), dtype('float32'), True)
        >>> vol = dead_leaves(16, 1, spatial_dims=3)
        >>> vol.shape
        (1, 16, 16, 16)
    """
    rng = _as_rng(rng)
    size = _spatial_shape(shape, spatial_dims)
    _check_dead_leaves(channels, shapes, coverage)
    rmax = float(max(size)) if rmax is None else float(rmax)
    domain, leaf_volume = _leaf_budget(size, rmin, rmax, exponent)
    n = int(min(max_leaves, math.ceil(-math.log(1 - coverage) * domain / leaf_volume)))
    leaves = _draw_leaves(rng, n, size, (rmin, rmax, exponent), shapes)
    split = None
    if rng.random() < blur_prob:  # the sharp foreground covers 20-80 % of the image
        split = int(math.ceil(-math.log(1 - rng.uniform(0.2, 0.8)) * domain / leaf_volume))
    fronts = _rasterise(leaves, size, split)
    looks = _draw_looks(rng, leaves, size, channels, textured)
    fields = np.stack([0.5 * power_law_field(size, rng, rng.uniform(1.5, 3.5)) for _ in range(3)])
    image = _paint(fronts[0], leaves, looks, fields)
    if split is not None:
        behind = _paint(fronts[1], leaves, looks, fields)
        image = _out_of_focus(image, behind, fronts[0] < split, rng.uniform(1.0, 3.0))
    image = np.ascontiguousarray(image, dtype=np.float32)
    return (image, fronts[0]) if return_labels else image


def _check_dead_leaves(channels: int, shapes: Sequence[str], coverage: float) -> None:
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, not {channels}")
    if not shapes or any(s not in LEAF_SHAPES for s in shapes):
        raise ValueError(f"shapes must be among {LEAF_SHAPES}, not {shapes}")
    if not 0 < coverage < 1:
        raise ValueError(f"coverage must be in (0, 1), not {coverage}")


def _leaf_budget(size: tuple[int, ...], rmin: float, rmax: float, exponent: float) -> tuple[float, float]:
    """The area (volume) of the domain leaves are centred in (the image and a margin) and the mean
    area (volume) of a leaf: ``n`` leaves leave a pixel uncovered with probability about
    ``exp(-n * leaf / domain)``."""
    d = len(size)
    # mean area (volume) of a leaf: about 0.6 of its ball, discs and thin rectangles alike
    leaf_volume = 0.6 * (math.pi if d == 2 else 4 * math.pi / 3) * _radius_moment(rmin, rmax, exponent, d)
    domain = float(np.prod([s + 2 * min(0.1 * s, rmax) for s in size]))
    return domain, leaf_volume


def _out_of_focus(front: np.ndarray, behind: np.ndarray, sharp: np.ndarray, sigma: float) -> np.ndarray:
    """``front`` where ``sharp``, elsewhere ``behind`` blurred (Gaussian σ in pixels, per channel)."""
    from scipy import ndimage

    blurred = ndimage.gaussian_filter(behind, (0,) + (sigma,) * (behind.ndim - 1))
    return np.where(sharp, front, blurred)


# ------------------------------------------------------------------------------------------ synth MR

_PAD_MM = 24  # room around the brain for the skull/fat/skin shell
_OUTSIDE = 16  # atlas codes >= this: outside the brain, at (code - _OUTSIDE) / 4 mm from it


class _Atlas(NamedTuple):
    codes: np.ndarray  # uint8 (X, Y, Z) at 1 mm: 1 CSF, 2 GM, 3 WM, _OUTSIDE + 4·distance(mm) outside
    points: np.ndarray  # (K, 3) a fixed random sample of brain voxels, to centre the views on


@functools.lru_cache(maxsize=1)
def _mr_atlas() -> _Atlas:
    """Tissue codes of nilearn's bundled MNI152 maps (no download), computed once per process."""
    from scipy import ndimage

    t1, gm, wm = (mni152(kind)[0] for kind in ("t1", "gm", "wm"))
    brain = (t1 > 0) | (gm + wm > 0.1)
    where = np.argwhere(brain)
    box = tuple(slice(a, b) for a, b in zip(where.min(0), where.max(0) + 1))
    gm, wm, brain = gm[box], wm[box], np.pad(brain[box], _PAD_MM)
    tissue = np.where(wm > gm, 3, 2).astype(np.uint8)
    tissue[1 - gm - wm > np.maximum(gm, wm)] = 1  # CSF where neither tissue dominates
    # distance to the brain, on a 2 mm grid (4x faster than at 1 mm) linearly interpolated back
    coarse = ndimage.distance_transform_edt(~brain[::2, ::2, ::2], sampling=2.0)
    fine = ndimage.zoom(coarse, [(2 * n - 1) / n for n in coarse.shape], order=1, grid_mode=False)
    fine = np.pad(fine, [(0, a - b) for a, b in zip(brain.shape, fine.shape)], mode="edge")
    outside = _OUTSIDE + np.clip(np.rint(4 * fine), 2, 255 - _OUTSIDE)
    codes = np.where(brain, np.pad(tissue, _PAD_MM), outside).astype(np.uint8)
    codes.setflags(write=False)
    points = np.argwhere(brain)
    points = points[np.random.default_rng(0).choice(len(points), 50_000, replace=False)].astype(np.float32)
    return _Atlas(codes, points)


def _rotation3(rng: np.random.Generator, max_angle: float) -> np.ndarray:
    """A rotation about a random axis by an angle uniform in ``[0, max_angle]`` (Rodrigues)."""
    axis = rng.standard_normal(3)
    axis /= np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    angle = rng.uniform(0, max_angle)
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def _view(rng: np.random.Generator, d: int, spacing: tuple[float, float]) -> np.ndarray:
    """The ``3 × d`` matrix taking output pixel offsets to atlas millimetres: a slice along a random
    axis (slightly tilted) or a 3D crop, with a random rotation, anisotropic spacing and shear."""
    scale = np.exp(rng.uniform(*np.log(spacing))) * np.exp(rng.normal(0, 0.1, d))
    shear = np.eye(d) + np.triu(rng.uniform(-0.1, 0.1, (d, d)), 1)
    if d == 2:
        axis = int(rng.integers(3))
        plane = np.eye(3)[:, [j for j in range(3) if j != axis]]
        t = rng.uniform(-np.pi, np.pi)
        rotation = _rotation3(rng, 0.25) @ plane @ np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    else:
        rotation = _rotations(rng, 1, 3)[0]
    return rotation @ np.diag(scale) @ shear


def _mr_geometry(
    rng: np.random.Generator, size: tuple[int, ...], spacing: tuple[float, float], deform: float
) -> np.ndarray:
    """Atlas codes seen by a randomly placed, deformed view of ``size`` (nearest neighbour)."""
    atlas = _mr_atlas()
    matrix = _view(rng, len(size), spacing)
    grid = np.indices(size, dtype=np.float32).reshape(len(size), -1)
    grid -= ((np.asarray(size, np.float32) - 1) / 2)[:, None]
    mm = (matrix.astype(np.float32) @ grid).astype(np.float32)  # (3, N) offsets from the centre
    jitter = matrix @ rng.normal(0, 0.15 * np.asarray(size))  # within the view (a slice stays on the brain)
    centre = atlas.points[rng.integers(len(atlas.points))] + jitter
    # elastic deformation: a few smooth random waves (wavelength 15-80 mm), amplitude up to ``deform``
    waves = rng.standard_normal((6, 3))
    waves *= (2 * np.pi / rng.uniform(15, 80, 6) / np.linalg.norm(waves, axis=1))[:, None]
    amplitude = rng.standard_normal((6, 3)) * rng.uniform(0, deform) / np.sqrt(6)
    phase = rng.uniform(0, 2 * np.pi, (6, 1))
    mm += (amplitude.T @ np.cos(waves @ mm + phase)).astype(np.float32)
    index = np.rint(mm + centre[:, None].astype(np.float32)).astype(np.intp)
    ok = np.all((index >= 0) & (index < np.asarray(atlas.codes.shape)[:, None]), axis=0)
    codes = np.full(index.shape[1], 255, dtype=np.uint8)
    codes[ok] = atlas.codes[tuple(index[:, ok])]
    return codes.reshape(size)


def _shell(rng: np.random.Generator) -> np.ndarray:
    """Lookup table atlas code -> label: tissue inside the brain; outside, CSF, skull, fat and skin
    layers of random thickness (or nothing: a skull-stripped image, one time in five)."""
    lut = np.full(256, MR_LABELS["background"], dtype=np.uint8)
    lut[1:4] = [MR_LABELS["csf"], MR_LABELS["gray_matter"], MR_LABELS["white_matter"]]
    if rng.random() < 0.2:
        return lut
    mm = np.arange(256 - _OUTSIDE) / 4
    bounds = np.cumsum([rng.uniform(0.5, 3), rng.uniform(2, 8), rng.uniform(1, 6), rng.uniform(1, 4)])
    names = ("csf", "skull", "fat", "skin")
    lut[_OUTSIDE:] = np.select([mm < b for b in bounds], [MR_LABELS[k] for k in names], int(lut[0]))
    return lut


def _structures(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    """Add lesions (ellipsoids inside the brain), vessels (thin level sets of smooth fields) and random
    blobs (thresholded smooth fields) to a label map, in place."""
    size, d = labels.shape, labels.ndim
    brain = (labels >= MR_LABELS["csf"]) & (labels <= MR_LABELS["white_matter"])
    head = labels != MR_LABELS["background"]
    seeds = np.argwhere((labels == MR_LABELS["gray_matter"]) | (labels == MR_LABELS["white_matter"]))
    for _ in range(int(rng.poisson(2.5)) if len(seeds) else 0):
        centre = seeds[rng.integers(len(seeds))]
        radii = np.maximum(1.0, max(size) * rng.uniform(0.01, 0.08) * rng.uniform(0.5, 1.0, d))
        box = tuple(slice(max(0, int(c - r)), min(n, int(c + r) + 1)) for c, r, n in zip(centre, radii, size))
        grids = np.ogrid[box]
        inside = sum(((g - c) / r) ** 2 for g, c, r in zip(grids, centre, radii)) <= 1
        labels[box][inside & brain[box]] = MR_LABELS["lesion"]
    if rng.random() < 0.5:  # vessels: where smooth fields cross zero (curves in 2D, tubes in 3D)
        width = rng.uniform(0.02, 0.08)
        tube = np.ones(size, dtype=bool)
        for _ in range(d - 1):
            tube &= np.abs(power_law_field(size, rng, rng.uniform(4, 6))) < width
        labels[tube & head & (power_law_field(size, rng, 5.0) > rng.uniform(-1, 1))] = MR_LABELS["vessel"]
    for name in ("blob1", "blob2", "blob3"):
        if rng.random() < 0.5:
            field = power_law_field(size, rng, rng.uniform(3, 6))
            labels[(field > np.quantile(field, 1 - rng.uniform(0.01, 0.1))) & head] = MR_LABELS[name]
    return labels


def _intensities(rng: np.random.Generator, labels: np.ndarray, contrast: str | None) -> np.ndarray:
    """A mean, a texture amplitude and a texture field per label: any contrast, any background."""
    contrast = contrast or str(rng.choice(list(_CONTRAST_ODDS), p=list(_CONTRAST_ODDS.values())))
    mean = rng.uniform(0, 1, _N_LABELS)
    if contrast != "random":
        ranges = np.asarray(MR_CONTRASTS[contrast])
        mean[: len(ranges)] = rng.uniform(ranges[:, 0], ranges[:, 1])
    std = rng.uniform(0, 0.06, _N_LABELS)
    style = rng.random()
    background = MR_LABELS["background"]
    if style < 0.3:  # a mid-grey background, above some tissue in most contrasts
        mean[background] = rng.uniform(0.1, 0.9)
    elif style < 0.55:  # a textured background (a coil's sensitivity, a padding, a fluid bath)
        mean[background], std[background] = rng.uniform(0, 0.6), rng.uniform(0.05, 0.25)
    fields = np.stack(
        [power_law_field(labels.shape, rng, rng.uniform(lo, hi)) for lo, hi in ((2, 3), (3, 5))]
    )
    pick = rng.integers(0, 2, _N_LABELS)[labels]
    texture = np.where(pick == 0, fields[0], fields[1])
    return (mean[labels] + std[labels] * texture).astype(np.float32)


def _artefacts(
    rng: np.random.Generator, image: np.ndarray, bias: float, blur: float, lowres: float, gibbs: float
) -> np.ndarray:
    """Bias field, partial-volume blur, resolution change and Gibbs ringing (MONAI transforms) on a
    channel-first image, then min-max to [0, 1] and a random gamma."""
    import torch
    from monai.transforms import GaussianSmooth, GibbsNoise, RandBiasField, Resize

    x = torch.from_numpy(np.ascontiguousarray(image))
    size = image.shape[1:]
    # a smooth multiplicative field: exp of a degree-3 polynomial with coefficients in a random range
    strength = rng.uniform(0, bias)
    field = RandBiasField(degree=3, coeff_range=(-strength, strength), prob=1.0)
    field.set_random_state(int(rng.integers(1 << 31)))
    x = torch.as_tensor(field(x))
    sigma = rng.uniform(0, blur, len(size))
    if sigma.max() > 0.1:
        x = torch.as_tensor(GaussianSmooth(sigma=sigma.tolist())(x))
    if rng.random() < lowres:  # acquired at a lower resolution (thick slices: one axis lower still)
        factor = rng.uniform(0.4, 1.0, len(size))
        factor[rng.integers(len(size))] *= rng.uniform(0.5, 1.0)
        low = [max(2, int(round(s * f))) for s, f in zip(size, factor)]
        x = torch.as_tensor(Resize(low, mode="area")(x))
        x = torch.as_tensor(Resize(list(size), mode="bilinear" if len(size) == 2 else "trilinear")(x))
    if rng.random() < gibbs:
        x = torch.as_tensor(GibbsNoise(alpha=rng.uniform(0.2, 0.6))(x))
    out = x.numpy().astype(np.float32)
    lo, hi = float(out.min()), float(out.max())
    out = (out - lo) / (hi - lo) if hi > lo else np.zeros_like(out)
    return np.clip(out ** np.exp(rng.normal(0, 0.25)), 0, 1).astype(np.float32)


def synth_mr(
    shape: int | Sequence[int],
    rng: np.random.Generator | int | None,
    spatial_dims: int = 2,
    contrast: str | None = None,
    spacing: tuple[float, float] = (0.6, 2.0),
    deform: float = 4.0,
    structures: bool = True,
    bias: float = 0.3,
    blur: float = 1.5,
    lowres: float = 0.4,
    gibbs: float = 0.3,
    return_labels: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """An MR-like slice or volume by domain randomisation of tissue maps, as SynthSeg (Billot et al. 2023).

    Labels (:data:`MR_LABELS`) come from the 1 mm grey/white matter maps bundled with nilearn (CSF
    where neither dominates inside the brain), plus a shell of CSF, skull, fat and skin of random
    thicknesses (absent one time in five: skull-stripped), lesions (ellipsoids inside the brain),
    vessels and random blobs. A view is cut from it: a slice along any of the three axes (slightly
    tilted) or a 3D crop, centred near a random brain voxel, with a random rotation, pixel spacing,
    anisotropy, shear and a smooth elastic deformation, read by nearest neighbour in one pass. Each
    label then gets a random mean (``t1``, ``t2``, ``flair``, ``pd``-like orders or fully random: the
    background is mid-grey or textured in about half of the draws) and a random-amplitude texture (a
    ``1/f^beta`` field); then MONAI transforms add a smooth multiplicative bias field
    (``RandBiasField``), partial-volume blur (``GaussianSmooth``), a lower acquisition resolution
    (``Resize`` down, area-averaged, then up; one axis may be lower still, as thick slices) and Gibbs
    ringing (``GibbsNoise``); the result is min-max scaled to [0, 1] and given a random gamma.

    The tissue maps are loaded and prepared once per process (about 7 s), then each draw is fast.

    Args:
        shape: spatial shape ``(H, W)`` or ``(D, H, W)``, or one side (with ``spatial_dims``).
        rng: a numpy ``Generator`` or a seed (the image is a function of it).
        spatial_dims: 2 (slices) or 3 (volumes) when ``shape`` is one side.
        contrast: ``t1``, ``t2``, ``flair``, ``pd`` or ``random`` (all labels uniform); drawn per
            image when None (random 40 %, T1 and T2 20 % each, FLAIR and PD 10 % each).
        spacing: range of the pixel size in mm (drawn log-uniformly): the field of view is
            ``shape`` times it.
        deform: largest amplitude of the elastic deformation, in mm.
        structures: add lesions, vessels and blobs.
        bias: largest coefficient of the bias field's Legendre polynomial (degree 3, in the exponent;
            coefficients of 0.3 make the field vary by a factor of about 3.5 across the view).
        blur: largest σ of the partial-volume blur, in pixels (drawn per axis).
        lowres: probability of a resolution change (each axis 0.4-1 of the resolution).
        gibbs: probability of Gibbs ringing (k-space truncation, MONAI ``alpha`` 0.2-0.6).
        return_labels: also return the label map (int, ``shape``) the image was drawn from.

    Returns:
        a float32 array ``(1, *shape)`` in [0, 1]; with ``return_labels`` also the uint8 label map.

    Example:
        >>> img, labels = synth_mr(64, np.random.default_rng(0), return_labels=True)
        >>> img.shape, img.dtype, labels.shape, float(img.min()), float(img.max()) <= 1.0
        ((1, 64, 64), dtype('float32'), (64, 64), 0.0, True)
    """
    rng = _as_rng(rng)
    size = _spatial_shape(shape, spatial_dims)
    if contrast is not None and contrast not in (*MR_CONTRASTS, "random"):
        raise ValueError(f"contrast must be one of {(*MR_CONTRASTS, 'random')} or None, not {contrast!r}")
    if not 0 < spacing[0] <= spacing[1]:
        raise ValueError(f"spacing must be a range (low, high) of positive sizes, not {spacing}")
    labels = _shell(rng)[_mr_geometry(rng, size, spacing, deform)]
    if structures:
        labels = _structures(rng, labels)
    image = _artefacts(rng, _intensities(rng, labels, contrast)[None], bias, blur, lowres, gibbs)
    return (image, labels) if return_labels else image


# --------------------------------------------------------------------------------------- sequences


def _position(index: Any, length: int) -> int:
    i = operator.index(index)
    i = i + length if i < 0 else i
    if not 0 <= i < length:
        raise IndexError(f"index {index} out of range for a sequence of {length}")
    return i


class SyntheticImages(Sequence):
    """A lazy, seeded, unlimited sequence of synthetic clean images: item ``i`` is generated on access
    from ``numpy.random.default_rng([*seed, i])``, nothing is held in memory.

    An item depends only on ``(kind, seed, i)`` and the options, never on the order of access, so the
    sequence works unchanged with any number of data-loader workers, a ``DistributedSampler`` and a
    resumed run. ``length`` is only how many items an epoch has: make it large for training and give
    a validation set another ``seed``.

    Args:
        kind: ``deadleaves`` (:func:`dead_leaves`) or ``synthmr`` (:func:`synth_mr`).
        length: number of items.
        seed: an int or a sequence of ints (e.g. ``(seed, 1)`` for a validation set: its items never
            coincide with those of ``seed``).
        shape: spatial shape, or one side repeated ``spatial_dims`` times.
        spatial_dims: 2 or 3 (when ``shape`` is one side).
        channels: 1 (gray) or 3 (colour, ``deadleaves`` only).
        options: further keyword arguments of the generator (e.g. ``contrast="t1"``, ``rmin=2``).

    A slice gives a list of the items it selects (generated then).

    Example:
        >>> data = SyntheticImages("deadleaves", length=1000, seed=0, shape=32)
        >>> len(data), data[7].shape, bool((data[7] == data[7]).all())
        (1000, (1, 32, 32), True)
        >>> mr = SyntheticImages("synthmr", length=10, seed=(0, 1), shape=(24, 24, 24))
        >>> mr[-1].shape
        (1, 24, 24, 24)
    """

    def __init__(
        self,
        kind: str,
        length: int,
        seed: int | Sequence[int] = 0,
        shape: int | Sequence[int] = 64,
        spatial_dims: int = 2,
        channels: int = 1,
        **options: Any,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
        if length < 0:
            raise ValueError(f"length must be >= 0, not {length}")
        if channels not in ((1, 3) if kind == "deadleaves" else (1,)):
            raise ValueError(f"{kind} images cannot have {channels} channels")
        self.kind, self.length, self.channels, self.options = kind, int(length), int(channels), options
        self.seed = (int(seed),) if isinstance(seed, (int, np.integer)) else tuple(int(s) for s in seed)
        self.shape = _spatial_shape(shape, spatial_dims)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self.length))]
        rng = np.random.default_rng([*self.seed, _position(index, self.length)])
        if self.kind == "deadleaves":
            return dead_leaves(self.shape, rng, channels=self.channels, **self.options)
        return synth_mr(self.shape, rng, **self.options)

    def __repr__(self) -> str:
        return (
            f"SyntheticImages({self.kind!r}, length={self.length}, seed={self.seed}, shape={self.shape}, "
            f"channels={self.channels}{''.join(f', {k}={v!r}' for k, v in self.options.items())})"
        )


class ConcatSequence(Sequence):
    """Sequences one after another, or mixed by weight, without copying or generating anything.

    Without ``weights`` item ``j`` is item ``j`` of the concatenation, so a mix is in proportion to the
    lengths of the parts (as ``list`` concatenation). With ``weights`` each part gets a share of the
    positions proportional to its weight, its items cycled to fill it: the total length is the
    smallest that still holds every item of every part at least once. A finite set of images mixed
    with an unlimited synthetic source is then drawn as often as its weight says, not in proportion
    to an arbitrary virtual length.

    Args:
        parts: the sequences (lists, :class:`SyntheticImages`, other ``ConcatSequence``...).
        weights: one positive weight per part, or None for plain concatenation.

    A slice gives a list of the items it selects.

    Example:
        >>> both = ConcatSequence([["a", "b", "c"], ["x"]])
        >>> len(both), list(both)
        (4, ['a', 'b', 'c', 'x'])
        >>> half = ConcatSequence([["a", "b", "c"], ["x"]], weights=[1, 1])
        >>> len(half), list(half)
        (6, ['a', 'b', 'c', 'x', 'x', 'x'])
    """

    def __init__(self, parts: Sequence[Sequence[Any]], weights: Sequence[float] | None = None) -> None:
        self.parts = list(parts)
        lengths = [len(p) for p in self.parts]
        if weights is None:
            self.weights = None
            ends = np.cumsum(lengths, dtype=np.int64)
        else:
            w = np.asarray(weights, dtype=float)
            if len(w) != len(self.parts) or not np.all(w > 0):
                raise ValueError(f"need one positive weight per part, got {list(weights)}")
            if any(n == 0 for n in lengths):
                raise ValueError("a weighted part cannot be empty")
            self.weights = (w / w.sum()).tolist()
            total = max(math.ceil(n / s) for n, s in zip(lengths, self.weights))
            ends = np.rint(np.cumsum(self.weights) * total).astype(np.int64)
        self._ends = [int(e) for e in ends]

    def __len__(self) -> int:
        return self._ends[-1] if self._ends else 0

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        j = _position(index, len(self))
        p = bisect.bisect_right(self._ends, j)
        k = j - (self._ends[p - 1] if p else 0)
        return self.parts[p][k % len(self.parts[p])]
