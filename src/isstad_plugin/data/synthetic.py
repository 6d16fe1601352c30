"""Deterministic procedural dataset in the MVTec AD folder layout.

:func:`generate_dataset` paints industrial-looking RGB images (ceramic tiles, brushed metal, woven fabric, wood, a
hex nut on a conveyor) and five defect types (``scratch``, ``hole``, ``crack``, ``stain``, ``missing``) with exact
ground-truth masks, and writes them where anomalib's ``MVTecAD`` and ``Folder`` datamodules look for them::

    root/category/train/good/000.png
    root/category/test/good/000.png
    root/category/test/<defect>/000.png
    root/category/ground_truth/<defect>/000_mask.png
    root/category/manifest.json

Determinism: every image draws from its own ``numpy.random.Generator`` seeded with
``[seed, category, split, defect, index, stream]``, so a given set of parameters always gives byte-identical PNGs, and
changing one count or the list of defects leaves the other images untouched.

Mask semantics: a defect is painted on the clean image with a soft alpha; the mask holds exactly the pixels whose
8-bit value moved by at least :data:`MIN_CHANGE` grey levels in some channel, and every other pixel is reset to the
clean image. So pixels outside the mask are byte-identical to the clean image (see :func:`render_sample`), and every
pixel inside it changed noticeably. The faint fringe of soft-edged defects (below :data:`MIN_CHANGE`) is dropped.

Only numpy and OpenCV are used; nothing is downloaded.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

DEFECT_TYPES: tuple[str, ...] = ("scratch", "hole", "crack", "stain", "missing")
"""Defect types, in the order used for seeding and folder listing."""

CATEGORIES: tuple[str, ...] = ("tiles", "metal", "fabric", "wood", "parts")
"""Surface categories: ceramic tiles, brushed metal, woven fabric, wood grain, a hex nut on a conveyor belt."""

MIN_IMAGE_SIZE = 32
MAX_IMAGE_SIZE = 1024
MIN_DEFECT_AREA = 0.002
"""Smallest fraction of the image a defect mask covers."""
MAX_DEFECT_AREA = 0.05
"""Largest fraction of the image a defect mask covers (all defects of the image together)."""
MIN_CHANGE = 8
"""A pixel belongs to the mask when some channel differs from the clean image by at least this many grey levels."""
GENERATOR_VERSION = 1
"""Bumped whenever the pictures change, so that cached datasets are not reused across versions."""
MANIFEST_NAME = "manifest.json"

_SPLIT_IDS = {"train": 0, "test": 1}
_TWO_DEFECT_PROBABILITY = 0.2
_MAX_ATTEMPTS = 60
_LAYOUT_DIRS = ("train", "test", "ground_truth")
_TEXTURE_MARGIN = 0.1

Image = np.ndarray
"""Float32 ``(H, W, 3)`` RGB image in ``[0, 1]``."""


@dataclass(frozen=True)
class Surface:
    """A clean procedural surface and what defects need to know about it.

    Attributes:
        image: Float32 ``(H, W, 3)`` RGB image in ``[0, 1]``.
        backing: Float32 ``(H, W, 3)`` image revealed where a piece is missing (substrate or background).
        support: Boolean ``(H, W)`` map of where defect centres may be placed.
        edge_support: Boolean ``(H, W)`` map of where ``missing`` defects are centred (the rim of an object).
        body: Float32 ``(H, W)`` coverage of the inspected material (all ones for textures); defects only paint there.
    """

    image: Image
    backing: Image
    support: np.ndarray
    edge_support: np.ndarray
    body: np.ndarray


@dataclass(frozen=True)
class SyntheticSample:
    """One rendered image.

    Attributes:
        image: Uint8 ``(H, W, 3)`` RGB image as written to disk.
        clean: Uint8 ``(H, W, 3)`` RGB image before the defects were painted (equal to ``image`` for good samples).
        mask: Uint8 ``(H, W)`` mask with values 0 and 255, or ``None`` for good samples.
        defect_type: The defect type, or ``None`` for good samples.
        n_defects: Number of defects painted (0, 1 or 2).
    """

    image: np.ndarray
    clean: np.ndarray
    mask: np.ndarray | None
    defect_type: str | None
    n_defects: int


# ----------------------------------------------------------------------------------------------------------------------
# Small numeric helpers
# ----------------------------------------------------------------------------------------------------------------------


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the ``(yy, xx)`` pixel-centre coordinates of a square image.

    Args:
        size: Side length in pixels.

    Returns:
        Two float32 ``(size, size)`` arrays.
    """
    coords = np.arange(size, dtype=np.float32)
    yy, xx = np.meshgrid(coords, coords, indexing="ij")
    return yy, xx


def _value_noise(rng: np.random.Generator, size: int, cell: float) -> np.ndarray:
    """Smooth random field with blobs of about ``cell`` pixels (roughly unit variance).

    Args:
        rng: Random generator.
        size: Side length in pixels.
        cell: Feature size in pixels.

    Returns:
        Float32 ``(size, size)`` array.
    """
    n = max(2, math.ceil(size / max(cell, 1.0)) + 1)
    coarse = rng.standard_normal((n, n)).astype(np.float32)
    return cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)


def _fbm(rng: np.random.Generator, size: int, cell: float, octaves: int = 3) -> np.ndarray:
    """Fractal noise: a sum of value-noise octaves, each half the feature size and half the amplitude.

    Args:
        rng: Random generator.
        size: Side length in pixels.
        cell: Feature size of the coarsest octave in pixels.
        octaves: Number of octaves.

    Returns:
        Float32 ``(size, size)`` array with values of order 1.
    """
    total = np.zeros((size, size), np.float32)
    amplitude, norm = 1.0, 0.0
    for octave in range(octaves):
        total += amplitude * _value_noise(rng, size, cell / 2**octave)
        norm += amplitude
        amplitude *= 0.5
    return total / norm


def _streaks(rng: np.random.Generator, size: int, length: int, angle: float) -> np.ndarray:
    """White noise smeared along a direction (brushing marks, wood fibres), normalised to unit variance.

    Args:
        rng: Random generator.
        size: Side length in pixels.
        length: Streak length in pixels.
        angle: Streak direction in radians (0 is horizontal).

    Returns:
        Float32 ``(size, size)`` array.
    """
    length = max(3, length | 1)
    pad = length
    noise = rng.standard_normal((size + 2 * pad, size + 2 * pad)).astype(np.float32)
    kernel = np.zeros((length, length), np.float32)
    half = length // 2
    dx, dy = half * math.cos(angle), half * math.sin(angle)
    cv2.line(kernel, (round(half - dx), round(half - dy)), (round(half + dx), round(half + dy)), 1.0, 1)
    kernel /= kernel.sum()
    smeared = cv2.filter2D(noise, -1, kernel)[pad : pad + size, pad : pad + size]
    return smeared / (smeared.std() + 1e-6)


def _specks(rng: np.random.Generator, size: int, density: float, sigma: float) -> np.ndarray:
    """Alpha map of small round soft dots of random size and strength.

    Args:
        rng: Random generator.
        size: Side length in pixels.
        density: Expected dots per pixel.
        sigma: Typical dot radius in pixels.

    Returns:
        Float32 ``(size, size)`` alpha in ``[0, 1]``.
    """
    n_dots = int(density * size * size)
    impulses = np.zeros((size, size), np.float32)
    ys, xs = rng.integers(0, size, (2, n_dots))
    np.add.at(impulses, (ys, xs), rng.uniform(0.4, 1.6, n_dots).astype(np.float32))
    dots = cv2.GaussianBlur(impulses, (0, 0), sigma) * (2 * math.pi * sigma**2)
    return np.clip(dots, 0, 1)


def _illumination(rng: np.random.Generator, size: int, strength: float) -> np.ndarray:
    """Gentle multiplicative lighting: a linear ramp in a random direction plus an off-centre vignette.

    Args:
        rng: Random generator.
        size: Side length in pixels.
        strength: Peak relative brightness change.

    Returns:
        Float32 ``(size, size, 1)`` array around 1.
    """
    yy, xx = _grid(size)
    y, x = 2 * yy / size - 1, 2 * xx / size - 1
    angle = rng.uniform(0, 2 * math.pi)
    cy, cx = rng.uniform(-0.6, 0.6, 2)
    ramp = math.cos(angle) * x + math.sin(angle) * y
    vignette = (x - cx) ** 2 + (y - cy) ** 2
    field = 1 + strength * (0.5 * ramp - 0.3 * vignette + 0.2)
    return field[..., None].astype(np.float32)


def _grain(rng: np.random.Generator, size: int, sigma: float) -> np.ndarray:
    """Fine per-pixel sensor/material noise shared by the three channels.

    Args:
        rng: Random generator.
        size: Side length in pixels.
        sigma: Standard deviation.

    Returns:
        Float32 ``(size, size, 1)`` array.
    """
    return (sigma * rng.standard_normal((size, size, 1))).astype(np.float32)


def _jitter_colour(rng: np.random.Generator, rgb: Sequence[float], amount: float) -> np.ndarray:
    """A base colour with small random brightness and hue jitter.

    Args:
        rng: Random generator.
        rgb: Nominal RGB colour in ``[0, 1]``.
        amount: Relative jitter.

    Returns:
        Float32 ``(3,)`` colour.
    """
    colour = np.asarray(rgb, np.float32) * rng.uniform(1 - amount, 1 + amount)
    return (colour + rng.normal(0, amount / 8, 3)).astype(np.float32)


def _smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    """Hermite step from 0 at ``edge0`` to 1 at ``edge1`` (either order).

    Args:
        edge0: Where the result is 0.
        edge1: Where the result is 1.
        x: Input values.

    Returns:
        Array like ``x``.
    """
    t = np.clip((x - edge0) / (edge1 - edge0), 0, 1)
    return t * t * (3 - 2 * t)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    """Round a ``[0, 1]`` float image to uint8.

    Args:
        image: Float image.

    Returns:
        Uint8 image of the same shape.
    """
    return np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _inner(size: int, margin: int) -> np.ndarray:
    """Support map that is true except within ``margin`` pixels of the image border.

    Args:
        size: Side length in pixels.
        margin: Border width in pixels.

    Returns:
        Boolean ``(size, size)`` array.
    """
    support = np.zeros((size, size), bool)
    support[margin : size - margin, margin : size - margin] = True
    return support


def _texture_surface(image: np.ndarray, backing: np.ndarray) -> Surface:
    """Wrap a texture (defects anywhere) as a :class:`Surface`.

    Args:
        image: Float RGB image.
        backing: Float RGB substrate revealed by ``missing`` defects.

    Returns:
        The surface, clipped to ``[0, 1]``.
    """
    size = image.shape[0]
    support = _inner(size, round(_TEXTURE_MARGIN * size))
    return Surface(
        image=np.clip(image, 0, 1).astype(np.float32),
        backing=np.clip(backing, 0, 1).astype(np.float32),
        support=support,
        edge_support=support,
        body=np.ones((size, size), np.float32),
    )


def _substrate(rng: np.random.Generator, size: int, rgb: Sequence[float] | np.ndarray, roughness: float) -> np.ndarray:
    """Dark rough material revealed under a missing piece.

    Args:
        rng: Random generator.
        size: Side length in pixels.
        rgb: Mean colour.
        roughness: Relative amplitude of the blotches and grain.

    Returns:
        Float32 ``(size, size, 3)`` image.
    """
    blotches = 1 + roughness * _fbm(rng, size, max(2.0, size / 20))[..., None]
    return np.asarray(rgb, np.float32) * blotches + _grain(rng, size, roughness / 5)


# ----------------------------------------------------------------------------------------------------------------------
# Surfaces (one per category)
# ----------------------------------------------------------------------------------------------------------------------


def tiles_surface(rng: np.random.Generator, size: int) -> Surface:
    """Glazed ceramic tile: warm off-white with soft mottling, grey/brown speckles, grain and lighting.

    Args:
        rng: Random generator.
        size: Side length in pixels.

    Returns:
        The clean surface; a grey cement substrate shows under missing pieces.
    """
    s = size / 128
    base = _jitter_colour(rng, (0.80, 0.77, 0.71), 0.03)
    image = base * (1 + 0.05 * _fbm(rng, size, 24 * s))[..., None]
    tones = ((0.55, 0.53, 0.50), (0.64, 0.52, 0.40), (0.97, 0.96, 0.94))
    for tone, density in zip(tones, (1 / 150, 1 / 200, 1 / 300), strict=True):
        specks = _specks(rng, size, density, 0.8 * max(s, 0.5))
        image = image + (base * np.asarray(tone, dtype=np.float32) / 0.78 - image) * specks[..., None]
    image = image * _illumination(rng, size, 0.10) + _grain(rng, size, 0.012)
    return _texture_surface(image, _substrate(rng, size, (0.30, 0.29, 0.28), 0.2))


def metal_surface(rng: np.random.Generator, size: int) -> Surface:
    """Brushed steel: horizontal brushing marks with a slight angle jitter, a broad sheen band, grain and lighting.

    Args:
        rng: Random generator.
        size: Side length in pixels.

    Returns:
        The clean surface; a dark cavity shows under missing pieces.
    """
    base = _jitter_colour(rng, (0.58, 0.60, 0.62), 0.04)
    angle = rng.normal(0, math.radians(3))
    fine = _streaks(rng, size, size // 3, angle)
    coarse = _streaks(rng, size, size, angle)
    yy, xx = _grid(size)
    across = -math.sin(angle) * xx + math.cos(angle) * yy
    sheen = 0.09 * np.cos(2 * math.pi * across / (1.7 * size) + rng.uniform(0, 2 * math.pi))
    brightness = 1 + 0.035 * fine + 0.025 * coarse + sheen
    image = base * brightness[..., None] * _illumination(rng, size, 0.06) + _grain(rng, size, 0.008)
    return _texture_surface(image, _substrate(rng, size, (0.11, 0.11, 0.12), 0.25))


def fabric_surface(rng: np.random.Generator, size: int) -> Surface:
    """Denim-like 2/1 twill: indigo warp floats over light weft along diagonals, thread tone jitter and fibre noise.

    Args:
        rng: Random generator.
        size: Side length in pixels.

    Returns:
        The clean surface; a dark background shows through missing pieces.
    """
    period = max(3.0, size / 20 * rng.uniform(0.96, 1.04))
    angle = rng.normal(0, math.radians(1.5))
    yy, xx = _grid(size)
    u = math.cos(angle) * xx + math.sin(angle) * yy + rng.uniform(0, 3 * period)
    v = -math.sin(angle) * xx + math.cos(angle) * yy + rng.uniform(0, 3 * period)
    iu, iv = np.floor(u / period), np.floor(v / period)
    fu, fv = u / period - iu, v / period - iv
    warp_on_top = np.mod(iu - iv, 3) < 2
    float_pos = np.where(np.mod(iu - iv, 3) == 0, fv / 2, (1 + fv) / 2)
    warp_profile = np.sin(math.pi * fu) ** 0.7 * (0.75 + 0.25 * np.sin(math.pi * float_pos))
    weft_profile = np.sin(math.pi * fv) ** 0.7 * (0.75 + 0.25 * np.sin(math.pi * fu))
    n_threads = int(size / period) + 8
    warp_tone = 1 + rng.normal(0, 0.06, n_threads).astype(np.float32)[np.mod(iu, n_threads).astype(int)]
    weft_tone = 1 + rng.normal(0, 0.04, n_threads).astype(np.float32)[np.mod(iv, n_threads).astype(int)]
    warp_colour = _jitter_colour(rng, (0.22, 0.31, 0.52), 0.04)
    weft_colour = _jitter_colour(rng, (0.66, 0.67, 0.70), 0.03)
    shade = np.where(warp_on_top, warp_profile * warp_tone, weft_profile * weft_tone)
    colour = np.where(warp_on_top[..., None], warp_colour, weft_colour)
    fibres = 1 + 0.08 * _fbm(rng, size, max(1.5, period / 3), octaves=2)
    image = colour * (0.30 + 0.70 * shade * fibres)[..., None]
    image = cv2.GaussianBlur(image.astype(np.float32), (0, 0), 0.5)
    image = image * _illumination(rng, size, 0.08) + _grain(rng, size, 0.015)
    return _texture_surface(image, _substrate(rng, size, (0.05, 0.05, 0.07), 0.3))


def wood_surface(rng: np.random.Generator, size: int) -> Surface:
    """Planed wood: elongated growth rings from a far-away pith, wavy distortion, fibres along the grain.

    Args:
        rng: Random generator.
        size: Side length in pixels.

    Returns:
        The clean surface; darker rough wood shows under missing pieces.
    """
    angle = math.pi / 2 + rng.normal(0, math.radians(4))
    yy, xx = _grid(size)
    along = math.cos(angle) * xx + math.sin(angle) * yy
    across = -math.sin(angle) * xx + math.cos(angle) * yy
    pith_across = rng.uniform(-2.5, -1.0) * size
    pith_along = rng.uniform(0.2, 0.8) * size
    radius = np.sqrt((across - pith_across) ** 2 + (0.12 * (along - pith_along)) ** 2)
    period = size / rng.uniform(8, 12)
    radius = radius + 0.35 * period * _fbm(rng, size, size / 2, octaves=2)
    phase = np.mod(radius / period, 1.0)
    latewood = _smoothstep(0.45, 0.75, phase) * (1 - _smoothstep(0.85, 1.0, phase))
    early = _jitter_colour(rng, (0.80, 0.62, 0.42), 0.03)
    late = early * np.array([0.72, 0.62, 0.55], np.float32)
    image = early + (late - early) * latewood[..., None]
    fibres = 1 + 0.05 * _streaks(rng, size, size // 3, angle) + 0.03 * _fbm(rng, size, size / 6)
    image = image * fibres[..., None] * _illumination(rng, size, 0.08) + _grain(rng, size, 0.01)
    return _texture_surface(image, _substrate(rng, size, (0.33, 0.21, 0.12), 0.2))


def _hex_distance(dx: np.ndarray, dy: np.ndarray, rotation: float) -> np.ndarray:
    """Distance-like field of a regular hexagon: the largest projection on its three face normals.

    Args:
        dx: X offsets from the centre.
        dy: Y offsets from the centre.
        rotation: Hexagon rotation in radians.

    Returns:
        Array like ``dx``; the hexagon with apothem ``a`` is where the result is below ``a``.
    """
    normals = [rotation + k * math.pi / 3 for k in range(3)]
    return np.max([np.abs(dx * math.cos(n) + dy * math.sin(n)) for n in normals], axis=0)


def _nut_shading(rng: np.random.Generator, dist: np.ndarray, phi: np.ndarray, outer: float, bore: float) -> np.ndarray:
    """Brightness of a turned nut face: anisotropic lathe reflection, lit chamfer, dark threaded bore.

    Args:
        rng: Random generator.
        dist: Distance from the nut centre in pixels.
        phi: Polar angle around the nut centre.
        outer: Outer (corner) radius of the hexagon.
        bore: Radius of the bore.

    Returns:
        Brightness array like ``dist``.
    """
    size = dist.shape[0]
    light = math.radians(-135) + rng.normal(0, 0.2)
    rings = cv2.GaussianBlur(rng.standard_normal((1, size)), (0, 0), 0.8).ravel()
    lathe = np.interp(dist, np.arange(size), rings)
    face = 0.58 + 0.10 * np.cos(2 * (phi - light)) + 0.05 * np.cos(phi - light) + 0.025 * lathe
    chamfer = _smoothstep(0.80 * outer, 0.88 * outer, dist)
    face = face * (1 - chamfer) + (0.50 + 0.25 * np.cos(phi - light)) * chamfer
    thread = _smoothstep(1.25 * bore, 1.05 * bore, dist)
    thread_lines = 0.06 * np.cos(2 * math.pi * dist / (2.2 * _scale(size)))
    return face * (1 - thread) + (0.30 + thread_lines - 0.1 * np.cos(phi - light)) * thread


def parts_surface(rng: np.random.Generator, size: int) -> Surface:
    """A machined hex nut, centred with small pose jitter, on a dark conveyor belt with a soft drop shadow.

    Args:
        rng: Random generator.
        size: Side length in pixels.

    Returns:
        The clean surface; defects are centred on the nut's top face, ``missing`` ones on its rim, and the belt
        shows where a piece is missing.
    """
    s = _scale(size)
    belt = _substrate(rng, size, np.asarray([0.20, 0.21, 0.23], dtype=np.float32) * rng.uniform(0.9, 1.1), 0.08)
    yy, xx = _grid(size)
    cy, cx = size / 2 - 0.5 + rng.normal(0, 0.02 * size, 2)
    rotation = rng.uniform(-1, 1) * math.radians(10)
    outer = 0.38 * size * rng.uniform(0.98, 1.02)
    bore = 0.15 * size * rng.uniform(0.98, 1.02)
    dy, dx = yy - cy, xx - cx
    dist = np.sqrt(dx**2 + dy**2)
    hex_dist = _hex_distance(dx, dy, rotation)
    apothem = outer * math.cos(math.pi / 6)
    body = np.clip(apothem - hex_dist + 0.5, 0, 1) * np.clip(0.96 * outer - dist + 0.5, 0, 1)
    coverage = body * np.clip(dist - bore + 0.5, 0, 1)
    face = _nut_shading(rng, dist, np.arctan2(dy, dx), outer, bore)
    steel = _jitter_colour(rng, (0.74, 0.75, 0.77), 0.03)
    nut = steel * face[..., None] * _illumination(rng, size, 0.05) + _grain(rng, size, 0.01)
    shift = np.asarray([[1, 0, 2.5 * s], [0, 1, 2.5 * s]], dtype=np.float32)
    shadow = cv2.GaussianBlur(cv2.warpAffine(body.astype(np.float32), shift, (size, size)), (0, 0), 2.5 * s)
    background = belt * (1 - 0.55 * shadow)[..., None]
    image = background + (nut - background) * coverage[..., None]
    margin = 0.04 * size
    top_face = (hex_dist < apothem - margin) & (dist < 0.96 * outer - margin) & (dist > 1.25 * bore + margin)
    rim = (hex_dist > apothem - 2.5 * margin) & (body > 0.99)
    return Surface(
        image=np.clip(image, 0, 1).astype(np.float32),
        backing=np.clip(belt, 0, 1).astype(np.float32),
        support=top_face,
        edge_support=rim,
        body=coverage.astype(np.float32),
    )


SURFACES: dict[str, Callable[[np.random.Generator, int], Surface]] = {
    "tiles": tiles_surface,
    "metal": metal_surface,
    "fabric": fabric_surface,
    "wood": wood_surface,
    "parts": parts_surface,
}
"""Surface painter per category."""

# ----------------------------------------------------------------------------------------------------------------------
# Defects (one per type): each returns the painted target image and its soft alpha footprint
# ----------------------------------------------------------------------------------------------------------------------

Defect = tuple[np.ndarray, np.ndarray]
"""A painted ``(target, alpha)`` pair: target is a float RGB image, alpha a float ``(H, W)`` footprint in [0, 1]."""


def _sample_point(rng: np.random.Generator, support: np.ndarray) -> tuple[float, float]:
    """Pick a random ``(y, x)`` position inside a support map, with sub-pixel jitter.

    Args:
        rng: Random generator.
        support: Boolean map of allowed positions (must not be empty).

    Returns:
        The ``(y, x)`` position in pixels.
    """
    flat = np.flatnonzero(support)
    y, x = divmod(int(flat[rng.integers(len(flat))]), support.shape[1])
    return y + rng.uniform(-0.5, 0.5), x + rng.uniform(-0.5, 0.5)


def _polyline_alpha(size: int, points: np.ndarray, thickness: int) -> np.ndarray:
    """Anti-aliased footprint of an open polyline.

    Args:
        size: Side length in pixels.
        points: Float ``(N, 2)`` array of ``(x, y)`` vertices.
        thickness: Line thickness in pixels.

    Returns:
        Float32 ``(size, size)`` alpha in ``[0, 1]``.
    """
    alpha = np.zeros((size, size), np.float32)
    fixed = np.round(points * 16).astype(np.int32).reshape(-1, 1, 2)
    cv2.polylines(alpha, [fixed], False, 1.0, thickness, cv2.LINE_AA, 4)
    return np.clip(alpha, 0, 1)


def _scale(size: int) -> float:
    """Pixel scale relative to a 128 px image.

    Args:
        size: Side length in pixels.

    Returns:
        ``size / 128``.
    """
    return size / 128


def scratch_defect(rng: np.random.Generator, surface: Surface, image: Image) -> Defect:
    """A thin bright (polished) or dark (gouged) curved line with uneven depth.

    Args:
        rng: Random generator.
        surface: The clean surface (for the support map).
        image: The current image to paint on.

    Returns:
        The painted target and its alpha.
    """
    size = image.shape[0]
    y0, x0 = _sample_point(rng, surface.support)
    angle = rng.uniform(0, math.pi)
    length = rng.uniform(0.2, 0.55) * size
    bend = rng.uniform(-0.15, 0.15) * length
    t = np.linspace(-0.5, 0.5, 24)[:, None]
    direction = np.array([math.cos(angle), math.sin(angle)])
    normal = np.array([-direction[1], direction[0]])
    points = np.array([x0, y0]) + t * length * direction + (1 - 4 * t**2) * bend * normal
    thickness = max(1, round(rng.uniform(1.0, 2.0) * _scale(size)))
    alpha = _polyline_alpha(size, points, thickness)
    alpha *= np.clip(0.75 + 0.5 * _value_noise(rng, size, length / 3), 0.35, 1.0)
    alpha *= surface.body
    target = image + (1 - image) * 0.65 if rng.random() < 0.6 else image * 0.35
    return target, alpha


def hole_defect(rng: np.random.Generator, surface: Surface, image: Image) -> Defect:
    """A dark round pit with a lit inner wall and a raised rim that catches the light on one side.

    Args:
        rng: Random generator.
        surface: The clean surface (for the support map).
        image: The current image to paint on.

    Returns:
        The painted target and its alpha.
    """
    size = image.shape[0]
    cy, cx = _sample_point(rng, surface.support)
    radius = max(1.2, rng.uniform(0.022, 0.07) * size)
    yy, xx = _grid(size)
    squash = rng.uniform(0.85, 1.15)
    dist = np.sqrt((xx - cx) ** 2 + ((yy - cy) * squash) ** 2) / radius
    phi = np.arctan2(yy - cy, xx - cx)
    light = rng.uniform(0, 2 * math.pi)
    wall = 0.12 + 0.25 * dist**2 + 0.20 * np.clip(np.cos(phi - light - math.pi), 0, None) * dist**3
    rim_profile = np.sin(math.pi * np.clip((dist - 1) / 0.45, 0, 1))
    rim = 1 + rim_profile * (0.12 + 0.30 * np.cos(phi - light))
    factor = np.where(dist < 1, wall, rim)
    alpha = np.clip((1.45 - dist) * radius + 0.5, 0, 1)
    return image * factor[..., None], alpha


def crack_defect(rng: np.random.Generator, surface: Surface, image: Image) -> Defect:
    """A thin dark jagged polyline with one or two side branches.

    Args:
        rng: Random generator.
        surface: The clean surface (for the support map).
        image: The current image to paint on.

    Returns:
        The painted target and its alpha.
    """
    size = image.shape[0]
    step = 2.0 * max(_scale(size), 0.5)
    y0, x0 = _sample_point(rng, surface.support)
    n_steps = max(4, round(rng.uniform(0.25, 0.55) * size / step))
    main = _random_walk(rng, np.array([x0, y0]), rng.uniform(0, 2 * math.pi), n_steps, step)
    thickness = max(1, round(1.3 * _scale(size)))
    alpha = _polyline_alpha(size, main, thickness)
    for _ in range(rng.integers(1, 3)):
        start = main[rng.integers(n_steps // 4, n_steps)]
        heading = math.atan2(*(main[-1] - main[0])[::-1]) + rng.choice([-1, 1]) * rng.uniform(0.5, 1.1)
        branch = _random_walk(rng, start, heading, max(3, round(n_steps * rng.uniform(0.2, 0.45))), step)
        alpha = np.maximum(alpha, _polyline_alpha(size, branch, max(1, thickness - 1)))
    alpha *= surface.body
    return image * 0.28, alpha


def _random_walk(rng: np.random.Generator, start: np.ndarray, heading: float, n_steps: int, step: float) -> np.ndarray:
    """A jagged path: constant step length, heading perturbed at each step.

    Args:
        rng: Random generator.
        start: ``(x, y)`` start point.
        heading: Initial direction in radians.
        n_steps: Number of steps.
        step: Step length in pixels.

    Returns:
        Float ``(n_steps + 1, 2)`` array of ``(x, y)`` points.
    """
    turns = heading + np.cumsum(rng.normal(0, 0.45, n_steps)) * 0.6
    steps = step * np.stack([np.cos(turns), np.sin(turns)], axis=1)
    return np.vstack([start, start + np.cumsum(steps, axis=0)])


def stain_defect(rng: np.random.Generator, surface: Surface, image: Image) -> Defect:
    """A soft-edged irregular discoloration (rust, oil, or dye) with a darker tide line, texture shows through.

    Args:
        rng: Random generator.
        surface: The clean surface (for the support map).
        image: The current image to paint on.

    Returns:
        The painted target and its alpha.
    """
    size = image.shape[0]
    cy, cx = _sample_point(rng, surface.support)
    radius = max(2.0, rng.uniform(0.05, 0.11) * size)
    yy, xx = _grid(size)
    tilt, aspect = rng.uniform(0, math.pi), rng.uniform(0.55, 1.0)
    a = (xx - cx) * math.cos(tilt) + (yy - cy) * math.sin(tilt)
    b = -(xx - cx) * math.sin(tilt) + (yy - cy) * math.cos(tilt)
    dist = np.sqrt(a**2 + (b / aspect) ** 2) / radius
    dist = dist * (1 + 0.3 * _fbm(rng, size, radius, octaves=2))
    body = _smoothstep(1.0, 0.55, dist) * rng.uniform(0.6, 0.9)
    tide = 0.3 * np.exp(-(((dist - 0.85) / 0.1) ** 2))
    alpha = np.clip(body + tide, 0, 1) * (surface.body)
    tints = np.array([[0.95, 0.55, 0.30], [0.40, 0.37, 0.33], [0.55, 0.75, 0.45], [0.45, 0.50, 0.95]], np.float32)
    tint = tints[rng.integers(len(tints))]
    return image * tint, alpha


def missing_defect(rng: np.random.Generator, surface: Surface, image: Image) -> Defect:
    """A chipped-off piece: an irregular polygon showing the backing, with a cast shadow and a lit broken edge.

    Args:
        rng: Random generator.
        surface: The clean surface (for the backing, the rim support map and the body).
        image: The current image to paint on.

    Returns:
        The painted target and its alpha.
    """
    size = image.shape[0]
    s = max(_scale(size), 0.5)
    cy, cx = _sample_point(rng, surface.edge_support)
    radius = max(2.0, rng.uniform(0.06, 0.11) * size)
    n_vertices = int(rng.integers(7, 13))
    angles = np.sort(rng.uniform(0, 2 * math.pi, n_vertices))
    radii = radius * rng.uniform(0.6, 1.2, n_vertices)
    points = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], axis=1)
    fixed = np.round(points * 16).astype(np.int32).reshape(-1, 1, 2)
    alpha = np.zeros((size, size), np.float32)
    cv2.fillPoly(alpha, [fixed], 1.0, cv2.LINE_AA, 4)
    alpha = np.clip(alpha, 0, 1)
    light = rng.uniform(0, 2 * math.pi)
    offset = np.asarray([[1, 0, 2.5 * s * math.cos(light)], [0, 1, 2.5 * s * math.sin(light)]], dtype=np.float32)
    lit = cv2.warpAffine(alpha, offset, (size, size))
    shade = 0.35 + 0.65 * cv2.GaussianBlur(lit, (0, 0), 0.7 * s)
    target = surface.backing * shade[..., None]
    edge = _polyline_alpha(size, np.vstack([points, points[:1]]), 1) * (1 - alpha)
    target = target + (np.minimum(image * 1.3, 1) - target) * edge[..., None]
    return target, np.maximum(alpha, edge) * surface.body


DEFECTS: dict[str, Callable[[np.random.Generator, Surface, Image], Defect]] = {
    "scratch": scratch_defect,
    "hole": hole_defect,
    "crack": crack_defect,
    "stain": stain_defect,
    "missing": missing_defect,
}
"""Defect painter per type."""

# ----------------------------------------------------------------------------------------------------------------------
# Rendering one sample
# ----------------------------------------------------------------------------------------------------------------------


def _sample_rng(
    seed: int, category: str, split: str, defect: str | None, index: int, stream: int
) -> np.random.Generator:
    """The random generator of one stream (0: surface, 1: defects) of one image.

    Args:
        seed: Dataset seed.
        category: Surface category.
        split: ``"train"`` or ``"test"``.
        defect: Defect type, or ``None`` for good images.
        index: Image index within its folder.
        stream: 0 for the surface, 1 for the defects.

    Returns:
        A freshly seeded generator.
    """
    defect_id = 0 if defect is None else 1 + DEFECT_TYPES.index(defect)
    key = [seed, GENERATOR_VERSION, CATEGORIES.index(category), _SPLIT_IDS[split], defect_id, index, stream]
    return np.random.default_rng(key)


def _paint_defects(rng: np.random.Generator, surface: Surface, defect: str) -> tuple[np.ndarray, np.ndarray, int]:
    """Paint one or two defects, retrying until the changed area is within the allowed range.

    Args:
        rng: Random generator of the defect stream.
        surface: The clean surface.
        defect: Defect type.

    Returns:
        The uint8 defective image, the 0/255 uint8 mask and the number of defects painted.

    Raises:
        RuntimeError: If no attempt lands within the area range (not expected for valid image sizes).
    """
    clean = _to_uint8(surface.image)
    n_defects = 2 if rng.random() < _TWO_DEFECT_PROBABILITY else 1
    for _ in range(_MAX_ATTEMPTS):
        painted = surface.image
        for _ in range(n_defects):
            target, alpha = DEFECTS[defect](rng, surface, painted)
            painted = painted + (target - painted) * alpha[..., None]
        image = _to_uint8(painted)
        changed = np.abs(image.astype(np.int16) - clean).max(axis=2) >= MIN_CHANGE
        if MIN_DEFECT_AREA <= changed.mean() <= MAX_DEFECT_AREA:
            image = np.where(changed[..., None], image, clean)
            return image, changed.astype(np.uint8) * 255, n_defects
    msg = f"could not paint a '{defect}' defect covering {MIN_DEFECT_AREA:.1%}-{MAX_DEFECT_AREA:.0%} of the image"
    raise RuntimeError(msg)


def render_sample(
    category: str, split: str, index: int, *, defect: str | None = None, image_size: int = 128, seed: int = 0
) -> SyntheticSample:
    """Render one image exactly as :func:`generate_dataset` writes it, together with its clean version.

    Args:
        category: Surface category, one of :data:`CATEGORIES`.
        split: ``"train"`` or ``"test"``.
        index: Image index within its folder (the ``000`` in ``000.png``).
        defect: Defect type (test split only), or ``None`` for a good image.
        image_size: Side length in pixels.
        seed: Dataset seed.

    Returns:
        The rendered sample.

    Raises:
        ValueError: If an argument is out of range.
    """
    _check_choice("category", category, CATEGORIES)
    _check_choice("split", split, tuple(_SPLIT_IDS))
    if defect is not None:
        _check_choice("defect", defect, DEFECT_TYPES)
        if split != "test":
            msg = "defect images only exist in the test split"
            raise ValueError(msg)
    _check_int("index", index, 0)
    _check_int("seed", seed, 0)
    _check_int("image_size", image_size, MIN_IMAGE_SIZE, MAX_IMAGE_SIZE)
    surface = SURFACES[category](_sample_rng(seed, category, split, defect, index, 0), image_size)
    clean = _to_uint8(surface.image)
    if defect is None:
        return SyntheticSample(image=clean, clean=clean, mask=None, defect_type=None, n_defects=0)
    image, mask, n_defects = _paint_defects(_sample_rng(seed, category, split, defect, index, 1), surface, defect)
    return SyntheticSample(image=image, clean=clean, mask=mask, defect_type=defect, n_defects=n_defects)


# ----------------------------------------------------------------------------------------------------------------------
# Argument checks
# ----------------------------------------------------------------------------------------------------------------------


def _check_choice(name: str, value: object, choices: Sequence[str]) -> None:
    """Raise a ValueError unless ``value`` is one of ``choices``.

    Args:
        name: Argument name for the message.
        value: Given value.
        choices: Allowed values.

    Raises:
        ValueError: If the value is not allowed.
    """
    if value not in choices:
        msg = f"unknown {name} {value!r}; expected one of {', '.join(choices)}"
        raise ValueError(msg)


def _check_int(name: str, value: object, minimum: int, maximum: int | None = None) -> None:
    """Raise a ValueError unless ``value`` is an integer in ``[minimum, maximum]``.

    Args:
        name: Argument name for the message.
        value: Given value.
        minimum: Smallest allowed value.
        maximum: Largest allowed value, or ``None`` for no limit.

    Raises:
        ValueError: If the value is not an integer or out of range.
    """
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        msg = f"{name} must be an integer, got {value!r}"
        raise ValueError(msg)
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        msg = f"{name} must be {bound}, got {value}"
        raise ValueError(msg)


def _normalise_defects(defects: Sequence[str]) -> list[str]:
    """Validate a defect list and return it in :data:`DEFECT_TYPES` order.

    Args:
        defects: Requested defect types.

    Returns:
        The defect types, canonical order, no duplicates.

    Raises:
        ValueError: If the list is a bare string, empty, or names an unknown type.
    """
    if isinstance(defects, str):
        msg = f"defects must be a sequence of defect names, e.g. ({defects!r},), not a string"
        raise ValueError(msg)
    wanted = list(defects)
    if not wanted:
        msg = f"defects must name at least one of {', '.join(DEFECT_TYPES)}"
        raise ValueError(msg)
    for name in wanted:
        _check_choice("defect type", name, DEFECT_TYPES)
    return [name for name in DEFECT_TYPES if name in wanted]


# ----------------------------------------------------------------------------------------------------------------------
# Writing the dataset
# ----------------------------------------------------------------------------------------------------------------------


def _write_png(path: Path, array: np.ndarray) -> None:
    """Write an RGB or single-channel uint8 array as PNG (works with non-ASCII paths).

    Args:
        path: Destination file.
        array: ``(H, W, 3)`` RGB or ``(H, W)`` grey uint8 array.

    Raises:
        OSError: If encoding fails.
    """
    pixels = cv2.cvtColor(array, cv2.COLOR_RGB2BGR) if array.ndim == 3 else array
    ok, encoded = cv2.imencode(".png", pixels)
    if not ok:
        msg = f"could not encode {path}"
        raise OSError(msg)
    path.write_bytes(encoded.tobytes())


def _read_manifest(path: Path) -> dict[str, Any] | None:
    """Read a manifest, or return ``None`` when it is missing or unreadable.

    Args:
        path: Manifest file.

    Returns:
        The parsed manifest or ``None``.
    """
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def _write_manifest(path: Path, params: dict[str, Any], files: list[dict[str, Any]], *, complete: bool) -> None:
    """Write the manifest atomically (temporary file, then rename).

    Args:
        path: Manifest file.
        params: Generator parameters.
        files: One entry per written image.
        complete: Whether every file has been written.
    """
    manifest = {
        "generator": "isstad_plugin.data.synthetic",
        "complete": complete,
        "params": params,
        "mask_semantics": (
            f"mask = pixels whose 8-bit value differs from the clean image by >= {MIN_CHANGE} in some channel; "
            "all other pixels equal the clean image"
        ),
        "counts": {"images": len(files), "masks": sum(entry["mask_path"] is not None for entry in files)},
        "files": files,
    }
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    temporary.replace(path)


def _is_complete(category_root: Path, manifest: dict[str, Any]) -> bool:
    """Whether a manifest is marked complete and all the files it lists exist.

    Args:
        category_root: Dataset folder.
        manifest: Parsed manifest.

    Returns:
        ``True`` if the dataset can be reused as is.
    """
    if manifest.get("complete") is not True:
        return False
    for entry in manifest.get("files", []):
        paths = [entry["path"]] + ([entry["mask_path"]] if entry.get("mask_path") else [])
        if not all((category_root / path).is_file() for path in paths):
            return False
    return True


def _clear_layout(category_root: Path) -> None:
    """Delete the generated parts of a dataset folder (split folders and manifest), leaving anything else.

    Args:
        category_root: Dataset folder.
    """
    for name in _LAYOUT_DIRS:
        shutil.rmtree(category_root / name, ignore_errors=True)
    (category_root / MANIFEST_NAME).unlink(missing_ok=True)


def _jobs(params: dict[str, Any]) -> list[tuple[str, str | None, int]]:
    """List the ``(split, defect, index)`` of every image to write.

    Args:
        params: Generator parameters.

    Returns:
        The images, in writing order.
    """
    jobs: list[tuple[str, str | None, int]] = [("train", None, i) for i in range(params["n_train"])]
    jobs += [("test", None, i) for i in range(params["n_test_good"])]
    jobs += [("test", defect, i) for defect in params["defects"] for i in range(params["n_test_defect"])]
    return jobs


def generate_dataset(
    root: str | Path,
    category: str = "tiles",
    *,
    n_train: int = 120,
    n_test_good: int = 30,
    n_test_defect: int = 10,
    image_size: int = 128,
    defects: Sequence[str] = DEFECT_TYPES,
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Write a synthetic dataset in the MVTec AD layout and return its category folder.

    A complete dataset already at ``root/category`` with the same parameters is reused without rendering anything.
    With ``overwrite=True``, the ``train``, ``test`` and ``ground_truth`` folders and the manifest are deleted first
    (other files in the folder are left alone).

    Args:
        root: Dataset root, as passed to ``anomalib.data.MVTecAD(root=...)``.
        category: Surface category, one of :data:`CATEGORIES`.
        n_train: Number of good training images (at least 1).
        n_test_good: Number of good test images.
        n_test_defect: Number of test images per defect type.
        image_size: Side length of the square images, between :data:`MIN_IMAGE_SIZE` and :data:`MAX_IMAGE_SIZE`.
        defects: Defect types to include, from :data:`DEFECT_TYPES`.
        seed: Non-negative seed; the same parameters always give byte-identical files.
        overwrite: Replace an existing dataset generated with other parameters (or not by this function).

    Returns:
        ``Path(root) / category``.

    Raises:
        ValueError: If an argument is invalid, or the folder holds another dataset and ``overwrite`` is False.
    """
    _check_choice("category", category, CATEGORIES)
    _check_int("n_train", n_train, 1)
    _check_int("n_test_good", n_test_good, 0)
    _check_int("n_test_defect", n_test_defect, 0)
    _check_int("image_size", image_size, MIN_IMAGE_SIZE, MAX_IMAGE_SIZE)
    _check_int("seed", seed, 0)
    params: dict[str, Any] = {
        "generator_version": GENERATOR_VERSION,
        "category": category,
        "n_train": int(n_train),
        "n_test_good": int(n_test_good),
        "n_test_defect": int(n_test_defect),
        "image_size": int(image_size),
        "defects": _normalise_defects(defects),
        "seed": int(seed),
    }
    category_root = Path(root) / category
    manifest_path = category_root / MANIFEST_NAME
    existing = _read_manifest(manifest_path)
    if existing is not None and existing.get("params") == params and _is_complete(category_root, existing):
        return category_root
    same_params = existing is not None and existing.get("params") == params
    has_content = category_root.is_dir() and any(category_root.iterdir())
    if has_content and not same_params and not overwrite:
        if existing is not None and isinstance(existing.get("params"), dict):
            changed = sorted(key for key in params if existing["params"].get(key) != params[key])
            reason = f"was generated with different parameters ({', '.join(changed)})"
        else:
            reason = "is not empty and has no synthetic-dataset manifest"
        msg = f"{category_root} {reason}; pass overwrite=True or use another root"
        raise ValueError(msg)

    _clear_layout(category_root)
    category_root.mkdir(parents=True, exist_ok=True)
    _write_manifest(manifest_path, params, [], complete=False)
    jobs = _jobs(params)
    width = max(3, len(str(max(n_train, n_test_good, n_test_defect) - 1)))
    files = [_write_sample(category_root, params, split, defect, index, width) for split, defect, index in jobs]
    _write_manifest(manifest_path, params, files, complete=True)
    return category_root


def _write_sample(
    category_root: Path, params: dict[str, Any], split: str, defect: str | None, index: int, width: int
) -> dict[str, Any]:
    """Render one image (and mask) into the layout and return its manifest entry.

    Args:
        category_root: Dataset folder.
        params: Generator parameters.
        split: ``"train"`` or ``"test"``.
        defect: Defect type, or ``None`` for a good image.
        index: Image index within its folder.
        width: Zero-padded width of file names.

    Returns:
        The manifest entry.
    """
    sample = render_sample(
        params["category"], split, index, defect=defect, image_size=params["image_size"], seed=params["seed"]
    )
    label = defect or "good"
    image_path = Path(split) / label / f"{index:0{width}d}.png"
    (category_root / image_path).parent.mkdir(parents=True, exist_ok=True)
    _write_png(category_root / image_path, sample.image)
    mask_path = None
    if sample.mask is not None:
        mask_path = Path("ground_truth") / label / f"{index:0{width}d}_mask.png"
        (category_root / mask_path).parent.mkdir(parents=True, exist_ok=True)
        _write_png(category_root / mask_path, sample.mask)
    return {
        "path": image_path.as_posix(),
        "split": split,
        "label": label,
        "label_index": int(defect is not None),
        "defect_type": defect,
        "mask_path": mask_path.as_posix() if mask_path else None,
        "mask_pixels": int(np.count_nonzero(sample.mask)) if sample.mask is not None else 0,
        "n_defects": sample.n_defects,
    }
