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

#: id(constant) → its copies; an entry goes when its constant is collected. (Keyed by id, not by
#: the tensor: tensors compare elementwise, so they cannot be dictionary keys by value.)
_copies: dict[int, dict[tuple[torch.device, torch.dtype], Tensor]] = {}


def on_device_of(constant: Tensor, like: Tensor) -> Tensor:
    """``constant`` on ``like``'s device and in its dtype, copied at most once per pair.

    ``constant`` must not change afterwards. Use the returned tensor read-only.
    """
    if constant.device == like.device and constant.dtype == like.dtype:
        return constant
    key = id(constant)
    if key not in _copies:
        _copies[key] = {}
        weakref.finalize(constant, _copies.pop, key, None)
    copies = _copies[key]
    target = (like.device, like.dtype)
    if target not in copies:
        copies[target] = constant.to(device=like.device, dtype=like.dtype)
    return copies[target]
