"""Flat views of named parameters: θ as a dict of tensors ⇄ a vector of P coordinates."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch
from torch import Tensor

Params = dict[str, Tensor]


@dataclass(frozen=True)
class ParamLayout:
    """Names and shapes of θ, in order; coordinate j of the flat vector has a label ``mu[0]``."""

    names: tuple[str, ...]
    shapes: tuple[torch.Size, ...]

    @classmethod
    def of(cls, params: Params) -> ParamLayout:
        return cls(tuple(params), tuple(p.shape for p in params.values()))

    @property
    def size(self) -> int:
        """P, the number of scalar coordinates."""
        return sum(math.prod(s) for s in self.shapes)

    def flatten(self, params: Params, batch_dims: int = 0) -> Tensor:
        """``{name: [*B, *shape]}`` → ``[*B, P]`` in declaration order."""
        parts = []
        for name in self.names:
            value = params[name]
            parts.append(value.reshape(*value.shape[:batch_dims], -1))
        return torch.cat(parts, dim=-1)

    def unflatten(self, flat: Tensor) -> Params:
        """``[*B, P]`` → ``{name: [*B, *shape]}``, the inverse of :meth:`flatten`."""
        batch = flat.shape[:-1]
        sizes = [math.prod(s) for s in self.shapes]
        pieces = torch.split(flat, sizes, dim=-1)
        return {
            name: piece.reshape(*batch, *shape)
            for name, shape, piece in zip(self.names, self.shapes, pieces, strict=True)
        }

    def labels(self) -> list[str]:
        """One label per coordinate: ``mu[0]``, ``w[1,2]``; a scalar parameter is its name."""
        labels: list[str] = []
        for name, shape in zip(self.names, self.shapes, strict=True):
            if len(shape) == 0:
                labels.append(name)
                continue
            labels.extend(
                f"{name}[{','.join(map(str, index))}]"
                for index in itertools.product(*(range(d) for d in shape))
            )
        return labels
