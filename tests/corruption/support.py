"""Images and checks shared by the corruption tests."""

from __future__ import annotations

import torch

from isstad_plugin.corruption.render import CHANGE_TOLERANCE
from isstad_plugin.corruption.shapes import inside_shape

TOL = CHANGE_TOLERANCE


def textures(batch: int, channels: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    """Images with structure (gradients + checkerboard + noise), so that flips and blurs change pixels."""
    g = torch.Generator().manual_seed(seed)
    y = torch.linspace(0, 1, height).view(1, 1, -1, 1)
    x = torch.linspace(0, 1, width).view(1, 1, 1, -1)
    checker = ((torch.arange(height).view(-1, 1) // 4 + torch.arange(width).view(1, -1) // 4) % 2).float()
    base = 0.4 * y + 0.3 * x + 0.2 * checker
    noise = 0.1 * torch.rand((batch, channels, height, width), generator=g)
    return (base + noise).clamp(0, 1).expand(batch, channels, height, width).contiguous()


def block_masks(params, height: int, width: int):
    """Yield ``(b, k, mask)``: each valid block's (H, W) coverage, painted pixel by pixel from its box and shape."""
    y, x = torch.meshgrid(torch.arange(height).float(), torch.arange(width).float(), indexing="ij")
    for b in range(params.top.shape[0]):
        for k in range(int(params.num_blocks[b])):
            t, lft = int(params.top[b, k]), int(params.left[b, k])
            box = (y >= t) & (y < t + int(params.height[b, k])) & (x >= lft) & (x < lft + int(params.width[b, k]))
            yield b, k, box & inside_shape(y, x, params.shape[b, k], params.shape_geometry[b, k])


def covered_by_valid_blocks(params, height: int, width: int) -> torch.Tensor:
    """(B, 1, H, W) union of the valid blocks, by direct painting (independent of the implementations)."""
    union = torch.zeros((params.top.shape[0], 1, height, width), dtype=torch.bool)
    for b, _, mask in block_masks(params, height, width):
        union[b, 0] |= mask
    return union


def assert_labels_match_change(images, corrupted, labels, tol=TOL):
    change = (corrupted.float() - images.float()).abs().amax(dim=1, keepdim=True)
    assert labels.dtype == torch.float32
    assert set(labels.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(labels.bool(), change > tol)
    unchanged = ~labels.bool().expand_as(images)
    assert torch.equal(corrupted[unchanged], images[unchanged])


def smooth_grey(batch: int, side: int, seed: int = 0) -> torch.Tensor:
    """Grey (equal-channel) RGB images with texture at several scales, so every operation changes pixels."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.nn.functional.interpolate(torch.rand((batch, 1, side // 8, side // 8), generator=g), size=side)
    return (0.6 * coarse + 0.3 * torch.rand((batch, 1, side, side), generator=g)).expand(-1, 3, -1, -1).contiguous()
