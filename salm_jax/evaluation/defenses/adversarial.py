"""PGD adversarial training's inner maximization (Madry et al. 2018).

Adversarial training is the defense that error-minimizing noise is weakest
against: each victim step trains on the worst-case L∞ perturbation of its
batch, and a perturbation of radius ε ≥ the noise's budget can undo the noise.
The attack here is model-agnostic: it sees only a loss of the input.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp


def pgd(loss_of_input: Callable[[jax.Array], jax.Array], x: jax.Array, key: jax.Array, *,
        eps: float = 8 / 255, steps: int = 7, step_size: float = 2 / 255,
        random_start: bool = True) -> jax.Array:
  """x + δ maximizing `loss_of_input` over ||δ||∞ ≤ eps, images kept in [0, 1].

  Signed-gradient ascent from a uniform random start, `steps` steps of
  `step_size`, projected onto the ε-ball. The result carries no gradient.
  """
  x = jax.lax.stop_gradient(x)
  delta = (jax.random.uniform(key, x.shape, minval=-eps, maxval=eps)
           if random_start else jnp.zeros_like(x))
  delta = jnp.clip(x + delta, 0.0, 1.0) - x
  grad = jax.grad(loss_of_input)

  def body(_, delta):
    g = grad(x + delta)
    delta = jnp.clip(delta + step_size * jnp.sign(g), -eps, eps)
    return jnp.clip(x + delta, 0.0, 1.0) - x

  delta = jax.lax.fori_loop(0, int(steps), body, delta)
  return jax.lax.stop_gradient(x + delta)
