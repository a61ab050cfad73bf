"""Broadcasting of shapes without importing sympy."""

from __future__ import annotations

import torch


def broadcast_shape(*shapes: torch.Size | tuple[int, ...]) -> torch.Size:
    """The shape that ``shapes`` broadcast to, as :func:`torch.broadcast_shapes` gives it
    (a ``RuntimeError`` when they do not broadcast).

    ``torch.broadcast_shapes`` goes through ``torch._refs``, whose first call imports sympy
    (34 MB of memory and 0.3 s, for a process that never uses it); expanding one scalar
    to each shape and broadcasting the views allocates nothing."""
    scalar = torch.zeros(())
    return torch.broadcast_tensors(*(scalar.expand(shape) for shape in shapes))[0].shape
