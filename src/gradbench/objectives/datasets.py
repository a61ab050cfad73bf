"""The small real datasets the model objectives use, as float64 tensors.

Both ship inside scikit-learn's wheel (``sklearn/datasets/data``), so nothing is downloaded at
run time. The files are read with numpy where scikit-learn installed them, without importing
scikit-learn (a second of start-up for two small CSV files); a test checks them against its
loaders. Each is loaded once per process.

* Wisconsin diagnostic breast cancer (Street, Wolberg & Mangasarian 1993; UCI): 569 tumours,
  30 features, labels malignant/benign — the Bayesian logistic regression case study of
  Mohamed et al. 2020, JMLR, §8.
* Optical recognition of handwritten digits (Alpaydin & Kaynak 1998; UCI): 1797 images of
  8×8 pixels with intensities 0–16.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from gradbench.core.errors import InputError


def _bundled(name: str) -> Path:
    """The path of scikit-learn's bundled data file ``name``, found without importing it."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or spec.origin is None:  # a dependency; only a broken install lacks it
        raise InputError(
            "the model objectives read their data from scikit-learn, which is not installed;"
            " install it with: pip install scikit-learn"
        )
    return Path(spec.origin).parent / "datasets" / "data" / name


@cache
def breast_cancer() -> tuple[Tensor, Tensor]:
    """Standardised features with an intercept column ``[569, 31]`` (each feature has mean 0
    and standard deviation 1 over the data; the last column is 1), labels ±1 ``[569]``
    (+1 = benign)."""
    table = np.loadtxt(_bundled("breast_cancer.csv"), delimiter=",", skiprows=1)
    features = torch.from_numpy(table[:, :-1]).to(torch.float64)
    standardised = (features - features.mean(0)) / features.std(0, correction=0)
    intercept = torch.ones(features.shape[0], 1, dtype=torch.float64)
    labels = torch.from_numpy(table[:, -1]).to(torch.float64) * 2 - 1
    return torch.cat([standardised, intercept], dim=1), labels


@cache
def binary_digits() -> Tensor:
    """The 1797 digit images as binary pixels ``[1797, 64]``: 1 where the intensity is ≥ 8 of
    16, in the dataset's order."""
    table = np.loadtxt(_bundled("digits.csv.gz"), delimiter=",")  # 64 pixels, then the digit
    images = torch.from_numpy(table[:, :-1])
    return (images >= 8).to(torch.float64)
