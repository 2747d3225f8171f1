"""The reference-price simulator: a seeded random walk per symbol that keeps a demo market
alive. Demo market makers quote around it and the gateway measures price bands from it.

A geometric random walk in integer ticks: each step moves the price by a normally distributed
return with the given drift and volatility (per step), rounded to the tick, never below one
tick. The generator is passed in, so the same seed gives the same path.
"""

from __future__ import annotations

import math
import random

__all__ = ["RandomWalk"]


class RandomWalk:
    def __init__(
        self,
        start: int,
        *,
        drift: float = 0.0,
        volatility: float = 0.0005,
        rng: random.Random | None = None,
    ) -> None:
        if start <= 0:
            raise ValueError("a reference price starts above zero")
        if volatility < 0:
            raise ValueError("volatility cannot be negative")
        self.rng = rng if rng is not None else random.Random(0)
        self.drift = drift
        self.volatility = volatility
        # The walk runs in log space with full precision; only the price it shows is rounded.
        self._log_price = math.log(start)
        self.price = start

    def step(self) -> int:
        """Move one step and return the new price in ticks."""
        change = self.drift - self.volatility**2 / 2 + self.volatility * self.rng.gauss(0.0, 1.0)
        self._log_price += change
        self.price = max(1, round(math.exp(self._log_price)))
        return self.price
