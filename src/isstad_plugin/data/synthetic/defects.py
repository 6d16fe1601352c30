"""The defect painters: one per defect type, in :data:`DEFECTS`.

Every painter is called as ``painter(rng, surface, image)`` and returns ``(target, alpha)``:

* ``rng``: the generator of the image's defect stream; the painter draws from it in a fixed order, so that the same
  generator state always gives the same defect;
* ``surface``: the clean :class:`~isstad_plugin.data.synthetic.backgrounds.Surface`: the defect is centred in
  ``support`` (``edge_support`` for ``missing``), paints only on ``body``, and a missing piece reveals ``backing``;
* ``image``: the current float RGB image (the clean image, or one with a defect painted already);
* ``target``: the image as it looks where the defect fully covers it, ``alpha``: the soft float ``(H, W)`` footprint
  in ``[0, 1]``.

The caller blends ``image + (target - image) * alpha`` and derives the mask from what changed (see
:func:`~isstad_plugin.data.synthetic.render.render_sample`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np

from isstad_plugin.data.synthetic.backgrounds import Image, Surface
from isstad_plugin.data.synthetic.fields import fbm, gaussian_blur, grid, scale, shift, smoothstep, value_noise

Defect = tuple[np.ndarray, np.ndarray]
DefectPainter = Callable[[np.random.Generator, Surface, Image], Defect]


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


def _shape_alpha(size: int, points: np.ndarray, thickness: int | None = None) -> np.ndarray:
    """Anti-aliased footprint of an open polyline of ``thickness`` pixels, or of the filled polygon when ``None``.

    Args:
        size: Side length in pixels.
        points: Float ``(N, 2)`` array of ``(x, y)`` vertices (drawn in OpenCV's fixed point, 1/16 pixel).
        thickness: Line thickness in pixels, or ``None`` to fill the polygon.

    Returns:
        Float32 ``(size, size)`` alpha in ``[0, 1]``.
    """
    alpha = np.zeros((size, size), np.float32)
    fixed = [np.round(points * 16).astype(np.int32).reshape(-1, 1, 2)]
    if thickness is None:
        cv2.fillPoly(alpha, fixed, 1.0, cv2.LINE_AA, 4)
    else:
        cv2.polylines(alpha, fixed, False, 1.0, thickness, cv2.LINE_AA, 4)
    return np.clip(alpha, 0, 1)


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


def scratch_defect(rng: np.random.Generator, surface: Surface, image: Image) -> Defect:
    """A thin bright (polished) or dark (gouged) curved line with uneven depth."""
    size = image.shape[0]
    y0, x0 = _sample_point(rng, surface.support)
    angle = rng.uniform(0, math.pi)
    length = rng.uniform(0.2, 0.55) * size
    bend = rng.uniform(-0.15, 0.15) * length
    t = np.linspace(-0.5, 0.5, 24)[:, None]
    direction = np.array([math.cos(angle), math.sin(angle)])
    normal = np.array([-direction[1], direction[0]])
    points = np.array([x0, y0]) + t * length * direction + (1 - 4 * t**2) * bend * normal
    thickness = max(1, round(rng.uniform(1.0, 2.0) * scale(size)))
    alpha = _shape_alpha(size, points, thickness)
    alpha *= np.clip(0.75 + 0.5 * value_noise(rng, size, length / 3), 0.35, 1.0)
    alpha *= surface.body
    target = image + (1 - image) * 0.65 if rng.random() < 0.6 else image * 0.35
    return target, alpha


def hole_defect(rng: np.random.Generator, surface: Surface, image: Image) -> Defect:
    """A dark round pit with a lit inner wall and a raised rim that catches the light on one side."""
    size = image.shape[0]
    cy, cx = _sample_point(rng, surface.support)
    radius = max(1.2, rng.uniform(0.022, 0.07) * size)
    yy, xx = grid(size)
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
    """A thin dark jagged polyline with one or two side branches."""
    size = image.shape[0]
    step = 2.0 * max(scale(size), 0.5)
    y0, x0 = _sample_point(rng, surface.support)
    n_steps = max(4, round(rng.uniform(0.25, 0.55) * size / step))
    main = _random_walk(rng, np.array([x0, y0]), rng.uniform(0, 2 * math.pi), n_steps, step)
    thickness = max(1, round(1.3 * scale(size)))
    alpha = _shape_alpha(size, main, thickness)
    for _ in range(rng.integers(1, 3)):
        start = main[rng.integers(n_steps // 4, n_steps)]
        heading = math.atan2(*(main[-1] - main[0])[::-1]) + rng.choice([-1, 1]) * rng.uniform(0.5, 1.1)
        branch = _random_walk(rng, start, heading, max(3, round(n_steps * rng.uniform(0.2, 0.45))), step)
        alpha = np.maximum(alpha, _shape_alpha(size, branch, max(1, thickness - 1)))
    alpha *= surface.body
    return image * 0.28, alpha


def stain_defect(rng: np.random.Generator, surface: Surface, image: Image) -> Defect:
    """A soft-edged irregular discoloration (rust, oil, or dye) with a darker tide line, texture shows through."""
    size = image.shape[0]
    cy, cx = _sample_point(rng, surface.support)
    radius = max(2.0, rng.uniform(0.05, 0.11) * size)
    yy, xx = grid(size)
    tilt, aspect = rng.uniform(0, math.pi), rng.uniform(0.55, 1.0)
    a = (xx - cx) * math.cos(tilt) + (yy - cy) * math.sin(tilt)
    b = -(xx - cx) * math.sin(tilt) + (yy - cy) * math.cos(tilt)
    dist = np.sqrt(a**2 + (b / aspect) ** 2) / radius
    dist = dist * (1 + 0.3 * fbm(rng, size, radius, octaves=2))
    body = smoothstep(1.0, 0.55, dist) * rng.uniform(0.6, 0.9)
    tide = 0.3 * np.exp(-(((dist - 0.85) / 0.1) ** 2))
    alpha = np.clip(body + tide, 0, 1) * (surface.body)
    tints = np.array([[0.95, 0.55, 0.30], [0.40, 0.37, 0.33], [0.55, 0.75, 0.45], [0.45, 0.50, 0.95]], np.float32)
    tint = tints[rng.integers(len(tints))]
    return image * tint, alpha


def missing_defect(rng: np.random.Generator, surface: Surface, image: Image) -> Defect:
    """A chipped-off piece on the rim: an irregular polygon showing the backing, a cast shadow, a lit broken edge."""
    size = image.shape[0]
    s = max(scale(size), 0.5)
    cy, cx = _sample_point(rng, surface.edge_support)
    radius = max(2.0, rng.uniform(0.06, 0.11) * size)
    n_vertices = int(rng.integers(7, 13))
    angles = np.sort(rng.uniform(0, 2 * math.pi, n_vertices))
    radii = radius * rng.uniform(0.6, 1.2, n_vertices)
    points = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], axis=1)
    alpha = _shape_alpha(size, points)
    light = rng.uniform(0, 2 * math.pi)
    lit = shift(alpha, 2.5 * s * math.cos(light), 2.5 * s * math.sin(light))
    shade = 0.35 + 0.65 * gaussian_blur(lit, 0.7 * s)
    target = surface.backing * shade[..., None]
    edge = _shape_alpha(size, np.vstack([points, points[:1]]), 1) * (1 - alpha)
    target = target + (np.minimum(image * 1.3, 1) - target) * edge[..., None]
    return target, np.maximum(alpha, edge) * surface.body


DEFECTS: dict[str, DefectPainter] = {
    "scratch": scratch_defect,
    "hole": hole_defect,
    "crack": crack_defect,
    "stain": stain_defect,
    "missing": missing_defect,
}
"""Defect painter per type, in :data:`~isstad_plugin.data.synthetic.spec.DEFECT_TYPES` order."""
