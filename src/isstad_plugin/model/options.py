"""Flat keyword options of :class:`~isstad_plugin.Isstad`, derived from the groups of :mod:`isstad_plugin.model.config`.

``Isstad(image_size=128, stage1_steps=1600, ...)``, ``--model.image_size`` and the YAML keys name fields of the groups
directly. :class:`IsstadConfig` splits such options into the groups and joins them again (the hyperparameters a
checkpoint stores); :func:`options_signature` and :func:`options_doc` give ``Isstad`` its signature (which the
anomalib CLI reads) and the ``Args`` of its docstring.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import textwrap
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import docstring_parser

from isstad_plugin.model.config import (
    CorruptionOptions,
    LossConfig,
    NetworkConfig,
    RuntimeConfig,
    TrainingConfig,
)
from isstad_plugin.validation import nearest_hint

logger = logging.getLogger(__name__)

CONFIGS = (NetworkConfig, CorruptionOptions, LossConfig, TrainingConfig, RuntimeConfig)
"""The option groups of :class:`~isstad_plugin.Isstad`, in the order of its signature."""
REMOVED = {"fusion_error_weight": 0.5, "load_decoder_weights": True}
"""Removed options and the one value that still means what the package does (checkpoints written before store them)."""


@dataclass(frozen=True)
class IsstadConfig:
    """All options of an :class:`~isstad_plugin.Isstad`, one group per concern.

    Attributes:
        network: The network and its anomaly map.
        corruption: The stage-2 corruption.
        loss: The stage-2 loss weights.
        training: Stage lengths and optimisers.
        runtime: Initial weights, cache and compilation.
    """

    network: NetworkConfig = field(default_factory=NetworkConfig)
    corruption: CorruptionOptions = field(default_factory=CorruptionOptions)
    loss: LossConfig = field(default_factory=LossConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> IsstadConfig:
        """Build the groups from flat keyword options (``Isstad``'s arguments, a checkpoint's hyperparameters).

        Raises:
            TypeError: An option that no group has, naming it.
            ValueError: A bad value, naming the option.
        """
        for name in set(options) & set(REMOVED):
            if options[name] != REMOVED[name]:
                msg = f"option {name} was removed (CHANGELOG.md); only the old default {REMOVED[name]} still applies"
                raise ValueError(msg)
        options = {k: v for k, v in options.items() if k not in REMOVED}
        unknown = sorted(set(options) - set(option_defaults()))
        if unknown:
            hint = nearest_hint(unknown[0], list(option_defaults()))
            msg = f"Isstad got unknown option(s) {', '.join(unknown)}: {hint}see `isstad_plugin.Isstad` for the options"
            raise TypeError(msg)
        groups: list[Any] = [group(**_given(group, options)) for group in CONFIGS]
        return cls(*groups)

    def options(self) -> dict[str, Any]:
        """The flat keyword options, every one (the hyperparameters a checkpoint stores)."""
        return {k: v for group in dataclasses.asdict(self).values() for k, v in group.items()}

    def with_checkpoint_network(self, hyperparameters: Mapping[str, Any], resuming: bool) -> IsstadConfig:
        """This config with the network options of a checkpoint's ``hyperparameters`` (``self`` when they agree).

        A checkpoint may also hold keys of the CLI or of other versions: only options count.

        Raises:
            ValueError: ``resuming`` a fit from a checkpoint written with other network options, naming them.
        """
        known = option_defaults()
        saved = IsstadConfig.from_options({k: v for k, v in hyperparameters.items() if k in known})
        changed = sorted(changed_network_options(saved.network, self.network))
        if not changed:
            return self
        if resuming:
            msg = (
                f"--ckpt_path was written with other model options ({', '.join(changed)}): resume with the options "
                "of that run (e.g. its config.yaml)"
            )
            raise ValueError(msg)
        logger.info("Isstad: building the network of the checkpoint (%s differ)", ", ".join(changed))
        return dataclasses.replace(self, network=saved.network)


def changed_network_options(saved: NetworkConfig, current: NetworkConfig) -> list[str]:
    """Names of the network options that differ between two configurations (checkpoint compatibility)."""
    return [f.name for f in fields(NetworkConfig) if getattr(saved, f.name) != getattr(current, f.name)]


def option_defaults() -> dict[str, Any]:
    """Every option of :class:`~isstad_plugin.Isstad` and its default, in signature order."""
    return {f.name: f.default for group in CONFIGS for f in fields(group)}


def options_signature(init: Any) -> inspect.Signature:
    """``init``'s signature with its ``**options`` replaced by every option, keyword-only, with type and default."""
    signature = inspect.signature(init)
    params = [p for p in signature.parameters.values() if p.kind != inspect.Parameter.VAR_KEYWORD]
    hints = {k: v for group in CONFIGS for k, v in typing.get_type_hints(group).items()}
    options = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=hints[name])
        for name, default in option_defaults().items()
    ]
    return signature.replace(parameters=[params[0], *options, *params[1:]])


def options_doc(indent: str = "        ") -> str:
    """The ``Args`` lines of every option, from the ``Attributes`` of the groups' docstrings."""
    lines = []
    for group in CONFIGS:
        docs = {p.arg_name: p.description for p in docstring_parser.parse(group.__doc__ or "").params}
        for f in fields(group):
            text = f"{f.name}: {' '.join((docs.get(f.name) or '').split())}"
            lines.append(textwrap.fill(text, 120, initial_indent=indent, subsequent_indent=indent + "    "))
    return "\n".join(lines)


def _given(group: Any, options: Mapping[str, Any]) -> dict[str, Any]:
    """``group``'s fields among ``options``; ``None`` for a field whose default is not ``None`` is the default.

    Checkpoints written before the corruption options were typed store ``corrupt_prob: None`` for "the default".
    """
    return {
        f.name: options[f.name]
        for f in fields(group)
        if f.name in options and not (options[f.name] is None and f.default is not None)
    }
