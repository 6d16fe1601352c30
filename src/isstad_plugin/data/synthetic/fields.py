"""Numeric building blocks of the pictures: coordinate grids, noise fields, lighting, grain and two OpenCV filters.

Every function returns float32 arrays for a square image of side ``size``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np


def scale(size: int) -> float:
    """Pixel scale relative to a 128 px image.

    Args:
        size: Side length in pixels.

    Returns:
        ``size / 128``.
    """
    return size / 128


def grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the ``(yy, xx)`` pixel-centre coordinates of a square image.

    Args:
        size: Side length in pixels.

    Returns:
        Two float32 ``(size, size)`` arrays.
    """
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    return yy, xx


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Blur with a Gaussian of standard deviation ``sigma`` (kernel size derived from it).

    Args:
        image: 2-D or ``(H, W, C)`` array.
        sigma: Standard deviation in pixels.

    Returns:
        The blurred array, same shape and dtype.
    """
    return cv2.GaussianBlur(image, (0, 0), sigma)


def shift(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """Translate an image by ``(dx, dy)`` pixels with bilinear interpolation, filling with zeros.

    Args:
        image: Float32 ``(H, W)`` array.
        dx: Shift to the right.
        dy: Shift downwards.

    Returns:
        The shifted array, same shape.
    """
    matrix = np.asarray([[1, 0, dx], [0, 1, dy]], dtype=np.float32)
    return cv2.warpAffine(image, matrix, (image.shape[1], image.shape[0]))


def value_noise(rng: np.random.Generator, size: int, cell: float) -> np.ndarray:
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


def fbm(rng: np.random.Generator, size: int, cell: float, octaves: int = 3) -> np.ndarray:
    """Fractal noise: a sum of value-noise octaves, each half the feature size and half the amplitude.

    Args:
        rng: Random generator.
        size: Side length in pixels.
        cell: Feature size of the coarsest octave in pixels.
        octaves: Number of octaves.

    Returns:
        Float32 ``(size, size)`` array with values of order 1.
    """
    octave_noise = (0.5**octave * value_noise(rng, size, cell / 2**octave) for octave in range(octaves))
    return sum(octave_noise, np.zeros((size, size), np.float32)) / (2 - 0.5 ** (octaves - 1))


def streaks(rng: np.random.Generator, size: int, length: int, angle: float) -> np.ndarray:
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


def specks(rng: np.random.Generator, size: int, density: float, sigma: float) -> np.ndarray:
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
    dots = gaussian_blur(impulses, sigma) * (2 * math.pi * sigma**2)
    return np.clip(dots, 0, 1)


def illumination(rng: np.random.Generator, size: int, strength: float) -> np.ndarray:
    """Gentle multiplicative lighting: a linear ramp in a random direction plus an off-centre vignette.

    Args:
        rng: Random generator.
        size: Side length in pixels.
        strength: Peak relative brightness change.

    Returns:
        Float32 ``(size, size, 1)`` array around 1.
    """
    yy, xx = grid(size)
    y, x = 2 * yy / size - 1, 2 * xx / size - 1
    angle = rng.uniform(0, 2 * math.pi)
    cy, cx = rng.uniform(-0.6, 0.6, 2)
    ramp = math.cos(angle) * x + math.sin(angle) * y
    vignette = (x - cx) ** 2 + (y - cy) ** 2
    field = 1 + strength * (0.5 * ramp - 0.3 * vignette + 0.2)
    return field[..., None].astype(np.float32)


def grain(rng: np.random.Generator, size: int, sigma: float) -> np.ndarray:
    """Fine per-pixel sensor/material noise shared by the three channels.

    Args:
        rng: Random generator.
        size: Side length in pixels.
        sigma: Standard deviation.

    Returns:
        Float32 ``(size, size, 1)`` array.
    """
    return (sigma * rng.standard_normal((size, size, 1))).astype(np.float32)


def jitter_colour(rng: np.random.Generator, rgb: Sequence[float], amount: float) -> np.ndarray:
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


def smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
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
