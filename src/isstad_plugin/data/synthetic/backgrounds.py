"""The normal pictures: one procedural surface per category, in :data:`SURFACES`.

Every painter is called as ``painter(rng, size)``: it draws from ``rng``, the generator of the image's surface stream,
in a fixed order (the same generator state always gives the same picture), paints a square of side ``size`` pixels
(scaled to look alike at every size) and returns a :class:`Surface`, the clean picture clipped to ``[0, 1]`` together
with what the defect painters need to know about it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from isstad_plugin.data.synthetic.fields import (
    fbm,
    gaussian_blur,
    grain,
    grid,
    illumination,
    jitter_colour,
    scale,
    shift,
    smoothstep,
    specks,
    streaks,
)
from isstad_plugin.data.synthetic.spec import band_rows

Image = np.ndarray
"""Float32 ``(H, W, 3)`` RGB image in ``[0, 1]``."""

_TEXTURE_MARGIN = 0.1
"""Border, as a fraction of the size, where no defect of a texture is centred."""


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


SurfacePainter = Callable[[np.random.Generator, int], Surface]


def _unit(image: np.ndarray) -> Image:
    """Clip to ``[0, 1]`` as float32."""
    return np.clip(image, 0, 1).astype(np.float32)


def _texture_surface(image: np.ndarray, backing: np.ndarray, rows: slice | None = None) -> Surface:
    """Wrap a texture (defects anywhere in ``rows``, all rows by default, but near the border) as a :class:`Surface`.

    Args:
        image: Float RGB image.
        backing: Float RGB substrate revealed by ``missing`` defects.
        rows: The rows the image keeps (:func:`~isstad_plugin.data.synthetic.spec.band_rows`), or ``None`` for all.

    Returns:
        The surface, clipped to ``[0, 1]``.
    """
    size = image.shape[0]
    top, bottom = (0, size) if rows is None else (rows.start, rows.stop)
    margin, row_margin = round(_TEXTURE_MARGIN * size), max(1, round(_TEXTURE_MARGIN * (bottom - top)))
    support = np.zeros((size, size), bool)
    support[top + row_margin : bottom - row_margin, margin : size - margin] = True
    return Surface(_unit(image), _unit(backing), support, support, np.ones((size, size), np.float32))


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
    blotches = 1 + roughness * fbm(rng, size, max(2.0, size / 20))[..., None]
    return np.asarray(rgb, np.float32) * blotches + grain(rng, size, roughness / 5)


def tiles_surface(rng: np.random.Generator, size: int) -> Surface:
    """Glazed ceramic tile: warm off-white, soft mottling, grey/brown speckles; grey cement under missing pieces."""
    s = scale(size)
    base = jitter_colour(rng, (0.80, 0.77, 0.71), 0.03)
    image = base * (1 + 0.05 * fbm(rng, size, 24 * s))[..., None]
    tones = ((0.55, 0.53, 0.50), (0.64, 0.52, 0.40), (0.97, 0.96, 0.94))
    for tone, density in zip(tones, (1 / 150, 1 / 200, 1 / 300), strict=True):
        dots = specks(rng, size, density, 0.8 * max(s, 0.5))
        image = image + (base * np.asarray(tone, dtype=np.float32) / 0.78 - image) * dots[..., None]
    image = image * illumination(rng, size, 0.10) + grain(rng, size, 0.012)
    return _texture_surface(image, _substrate(rng, size, (0.30, 0.29, 0.28), 0.2))


def metal_surface(rng: np.random.Generator, size: int) -> Surface:
    """Brushed steel: slightly tilted horizontal brushing, a broad sheen band; a dark cavity under missing pieces."""
    base = jitter_colour(rng, (0.58, 0.60, 0.62), 0.04)
    angle = rng.normal(0, math.radians(3))
    fine = streaks(rng, size, size // 3, angle)
    coarse = streaks(rng, size, size, angle)
    yy, xx = grid(size)
    across = -math.sin(angle) * xx + math.cos(angle) * yy
    sheen = 0.09 * np.cos(2 * math.pi * across / (1.7 * size) + rng.uniform(0, 2 * math.pi))
    brightness = 1 + 0.035 * fine + 0.025 * coarse + sheen
    image = base * brightness[..., None] * illumination(rng, size, 0.06) + grain(rng, size, 0.008)
    return _texture_surface(image, _substrate(rng, size, (0.11, 0.11, 0.12), 0.25))


def fabric_surface(rng: np.random.Generator, size: int) -> Surface:
    """Denim-like 2/1 twill: indigo warp floats over light weft, thread tone jitter; dark background through holes."""
    period = max(3.0, size / 20 * rng.uniform(0.96, 1.04))
    angle = rng.normal(0, math.radians(1.5))
    yy, xx = grid(size)
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
    warp_colour = jitter_colour(rng, (0.22, 0.31, 0.52), 0.04)
    weft_colour = jitter_colour(rng, (0.66, 0.67, 0.70), 0.03)
    shade = np.where(warp_on_top, warp_profile * warp_tone, weft_profile * weft_tone)
    colour = np.where(warp_on_top[..., None], warp_colour, weft_colour)
    fibres = 1 + 0.08 * fbm(rng, size, max(1.5, period / 3), octaves=2)
    image = colour * (0.30 + 0.70 * shade * fibres)[..., None]
    image = gaussian_blur(image.astype(np.float32), 0.5)
    image = image * illumination(rng, size, 0.08) + grain(rng, size, 0.015)
    return _texture_surface(image, _substrate(rng, size, (0.05, 0.05, 0.07), 0.3))


def wood_surface(rng: np.random.Generator, size: int) -> Surface:
    """Planed wood: long wavy growth rings from a far pith, fibres along the grain; rough darker wood under pieces."""
    angle = math.pi / 2 + rng.normal(0, math.radians(4))
    yy, xx = grid(size)
    along = math.cos(angle) * xx + math.sin(angle) * yy
    across = -math.sin(angle) * xx + math.cos(angle) * yy
    pith_across = rng.uniform(-2.5, -1.0) * size
    pith_along = rng.uniform(0.2, 0.8) * size
    radius = np.sqrt((across - pith_across) ** 2 + (0.12 * (along - pith_along)) ** 2)
    period = size / rng.uniform(8, 12)
    radius = radius + 0.35 * period * fbm(rng, size, size / 2, octaves=2)
    phase = np.mod(radius / period, 1.0)
    latewood = smoothstep(0.45, 0.75, phase) * (1 - smoothstep(0.85, 1.0, phase))
    early = jitter_colour(rng, (0.80, 0.62, 0.42), 0.03)
    late = early * np.array([0.72, 0.62, 0.55], np.float32)
    image = early + (late - early) * latewood[..., None]
    fibres = 1 + 0.05 * streaks(rng, size, size // 3, angle) + 0.03 * fbm(rng, size, size / 6)
    image = image * fibres[..., None] * illumination(rng, size, 0.08) + grain(rng, size, 0.01)
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
    rings = gaussian_blur(rng.standard_normal((1, size)), 0.8).ravel()
    lathe = np.interp(dist, np.arange(size), rings)
    face = 0.58 + 0.10 * np.cos(2 * (phi - light)) + 0.05 * np.cos(phi - light) + 0.025 * lathe
    chamfer = smoothstep(0.80 * outer, 0.88 * outer, dist)
    face = face * (1 - chamfer) + (0.50 + 0.25 * np.cos(phi - light)) * chamfer
    thread = smoothstep(1.25 * bore, 1.05 * bore, dist)
    thread_lines = 0.06 * np.cos(2 * math.pi * dist / (2.2 * scale(size)))
    return face * (1 - thread) + (0.30 + thread_lines - 0.1 * np.cos(phi - light)) * thread


def parts_surface(rng: np.random.Generator, size: int) -> Surface:
    """A machined hex nut, centred with small pose jitter, on a dark conveyor belt with a soft drop shadow.

    Defects are centred on the nut's top face, ``missing`` ones on its rim, and the belt shows where a piece is
    missing.
    """
    s = scale(size)
    belt = _substrate(rng, size, np.asarray([0.20, 0.21, 0.23], dtype=np.float32) * rng.uniform(0.9, 1.1), 0.08)
    yy, xx = grid(size)
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
    steel = jitter_colour(rng, (0.74, 0.75, 0.77), 0.03)
    nut = steel * face[..., None] * illumination(rng, size, 0.05) + grain(rng, size, 0.01)
    shadow = gaussian_blur(shift(body.astype(np.float32), 2.5 * s, 2.5 * s), 2.5 * s)
    background = belt * (1 - 0.55 * shadow)[..., None]
    image = background + (nut - background) * coverage[..., None]
    margin = 0.04 * size
    top_face = (hex_dist < apothem - margin) & (dist < 0.96 * outer - margin) & (dist > 1.25 * bore + margin)
    rim = (hex_dist > apothem - 2.5 * margin) & (body > 0.99)
    return Surface(_unit(image), _unit(belt), top_face, rim, coverage.astype(np.float32))


def strip_surface(rng: np.random.Generator, size: int) -> Surface:
    """Cold-rolled steel strip from above: rolling marks along it, a soft sheen across it, faint roll-mark blotches.

    Painted on the square canvas; the renderer keeps the band of :func:`~isstad_plugin.data.synthetic.spec.band_rows`
    (8 / 3 times as wide as high), and defects are centred inside it.
    """
    rows = band_rows("strip", size)
    base = jitter_colour(rng, (0.55, 0.56, 0.58), 0.03)
    marks = streaks(rng, size, size // 2, rng.normal(0, math.radians(0.5)))
    yy, _ = grid(size)
    across = (yy - rows.start) / (rows.stop - rows.start)
    sheen = 0.07 * np.cos(2 * math.pi * (across - rng.uniform(0.3, 0.7)))
    blotches = 0.025 * fbm(rng, size, size / 5, octaves=2)
    image = base * (1 + 0.03 * marks + sheen + blotches)[..., None] * illumination(rng, size, 0.04)
    return _texture_surface(image + grain(rng, size, 0.01), _substrate(rng, size, (0.12, 0.12, 0.13), 0.25), rows)


SURFACES: dict[str, SurfacePainter] = {
    "tiles": tiles_surface,
    "metal": metal_surface,
    "fabric": fabric_surface,
    "wood": wood_surface,
    "parts": parts_surface,
    "strip": strip_surface,
}
"""Surface painter per category (see the module docstring)."""
