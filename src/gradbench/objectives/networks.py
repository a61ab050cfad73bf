"""Networks whose weights are θ: evaluate an ``nn.Module`` at batched parameter values.

An objective whose parameters are network weights receives them as ``{name: [*B, *shape]}``:
no batch dims when the engine asks for the exact gradient, ``[n, *shape]`` inside
:func:`~gradbench.core.estimator.per_sample_gradients` (θ broadcast over the samples), ``[K, 1,
*shape]`` for finite differences. :func:`batched_call` evaluates the module once per leading
index with ``torch.func.functional_call`` vectorised by ``torch.func.vmap``, so the per-sample
gradients of n surrogate losses with respect to n copies of the weights come out of one
backward pass, in the memory of one chunk.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from gradbench.core.params import Params


def batched_call(module: nn.Module, params: Params, *inputs: Tensor) -> Tensor:
    """``module(*inputs)`` with its parameters replaced by ``params``.

    ``params`` hold every parameter of ``module`` with shape ``[*B, *shape]`` (the same leading
    dims B for all, possibly none); ``inputs`` are shared by every index of B. Returns
    ``[*B, *output]``.
    """
    name, value = next(iter(params.items()))
    batch = value.shape[: value.dim() - module.get_parameter(name).dim()]
    if not batch:
        return functional_call(module, params, inputs)
    flat = {k: v.reshape(math.prod(batch), *v.shape[len(batch) :]) for k, v in params.items()}
    output = vmap(lambda p: functional_call(module, p, inputs))(flat)
    return output.reshape(*batch, *output.shape[1:])


def module_parameters(module: nn.Module) -> Params:
    """The module's parameters as detached float64 CPU tensors, in registration order."""
    return {k: v.detach().to(torch.float64).cpu().clone() for k, v in module.named_parameters()}
