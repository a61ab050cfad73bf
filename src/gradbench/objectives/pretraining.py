"""The deterministic pre-training that made the shipped VAE weights.

    python -m gradbench.objectives.pretraining      # rewrites objectives/pretrained/*.pt

Each VAE starts from PyTorch's default initialisation under ``torch.manual_seed(SEED)`` and takes
``STEPS`` full-batch Adam steps (learning rate ``LEARNING_RATE``) on the ELBO per image of the
first ``TRAINING_IMAGES`` binary digit images, in float64 on the CPU:

* ``vae-gaussian``: one pathwise sample per image per step, from a generator seeded with SEED,
  and the analytic KL;
* ``vae-bernoulli`` and ``vae-categorical``: the exact ELBO, a sum over the 2⁸ (the 4⁴) latent
  states of each image.

Nothing else is random, so the same torch build reproduces the files bit for bit. The point is
a network a short way into training, where gradients are large and estimators differ — not a
good generative model.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from gradbench.objectives.datasets import binary_digits
from gradbench.objectives.vae import (
    BernoulliVAE,
    CategoricalVAE,
    DiscreteVAE,
    GaussianVAE,
    build_networks,
    gaussian_kl,
    gaussian_posterior,
    log_likelihood,
)

SEED = 0
STEPS = 300
LEARNING_RATE = 0.01
TRAINING_IMAGES = 512
#: Where the package reads the weights from.
DIRECTORY = Path(__file__).parent / "pretrained"

VAE = type[GaussianVAE] | type[DiscreteVAE]


def pretrain(cls: VAE, steps: int = STEPS) -> dict[str, dict[str, Tensor]]:
    """The state ``{"encoder": ..., "decoder": ...}`` after ``steps`` of training ``cls``."""
    with torch.random.fork_rng():
        torch.manual_seed(SEED)
        encoder, decoder = build_networks(cls.decoder_inputs, cls.encoder_outputs)
    generator = torch.Generator().manual_seed(SEED)
    images = binary_digits()[:TRAINING_IMAGES]
    optimiser = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=LEARNING_RATE)
    for _ in range(steps):
        optimiser.zero_grad()
        (-training_elbo(cls, encoder, decoder, images, generator)).backward()
        optimiser.step()
    return {"encoder": encoder.state_dict(), "decoder": decoder.state_dict()}


def training_elbo(
    cls: VAE, encoder: nn.Module, decoder: nn.Module, images: Tensor, generator: torch.Generator
) -> Tensor:
    """The ELBO per image of ``images`` ``[N, 64]`` that training ascends."""
    output = encoder(images)
    weights = dict(decoder.named_parameters())
    if issubclass(cls, DiscreteVAE):
        return cls.exact_elbo(output, decoder, weights, images).mean()
    mean, scale = gaussian_posterior(output, cls.latent)
    z = mean + scale * torch.randn(mean.shape, generator=generator, dtype=mean.dtype)
    reconstruction = log_likelihood(decoder, weights, images, z)
    return (reconstruction - gaussian_kl(mean, scale)).mean()


def main() -> None:
    DIRECTORY.mkdir(exist_ok=True)
    for cls in (GaussianVAE, BernoulliVAE, CategoricalVAE):
        path = DIRECTORY / cls.weights_file
        torch.save(pretrain(cls), path)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
