"""Seeds derived from names, so that a run's random stream depends on what it is, not on when
it runs: every (objective, estimator) pair, sweep task and estimated reference owns one."""

from __future__ import annotations

import hashlib


def derive_seed(seed: int, *names: str) -> int:
    """A 63-bit seed from the user's seed and names, stable across processes and platforms."""
    text = "/".join([str(seed), *names]).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big") >> 1
