"""Constant tensors of an objective (data, fixed weights, tables), on the run's device.

An objective keeps its constants as CPU float64 tensors and needs them on the device and in the
dtype of every call. Copying them inside the sampling loop would make each chunk wait for a
host-to-device transfer; :func:`on_device_of` copies each constant once per (device, dtype) and
hands back the same copy afterwards.
"""

from __future__ import annotations

import weakref

import torch
from torch import Tensor

_copies: weakref.WeakKeyDictionary[Tensor, dict[tuple[torch.device, torch.dtype], Tensor]] = (
    weakref.WeakKeyDictionary()
)


def on_device_of(constant: Tensor, like: Tensor) -> Tensor:
    """``constant`` on ``like``'s device and in its dtype, copied at most once per pair.

    ``constant`` must not change afterwards (copies are keyed by the tensor object, which the
    cache does not keep alive). Use the returned tensor read-only.
    """
    if constant.device == like.device and constant.dtype == like.dtype:
        return constant
    copies = _copies.setdefault(constant, {})
    key = (like.device, like.dtype)
    if key not in copies:
        copies[key] = constant.to(device=like.device, dtype=like.dtype)
    return copies[key]
