"""Classifier-free guidance (Ho & Salimans 2022) with negative prompts and rescale."""

import jax
import jax.numpy as jnp
import numpy as np


def check_negative_cond(cond, negative_cond) -> None:
  """The two branches must have the same structure and shapes, to share one batched call."""
  if cond is None:
    raise ValueError("cond=None is not supported with guidance; expected the conditioning pytree "
                     "whose negative_cond the unconditional branch uses")
  if jax.tree.structure(cond) != jax.tree.structure(negative_cond):
    raise ValueError(f"negative_cond has structure {jax.tree.structure(negative_cond)}; expected the "
                     f"structure of cond, {jax.tree.structure(cond)}")
  for c, n in zip(jax.tree.leaves(cond), jax.tree.leaves(negative_cond)):
    if np.shape(c) != np.shape(n):
      raise ValueError(f"negative_cond has a leaf of shape {np.shape(n)}; expected the shape of cond's "
                       f"leaf, {np.shape(c)}")


def rescale(guided, cond_pred, phi: float):
  """Lin et al. (2024), eq. 15-16: match the guided prediction's std to the conditional one's."""
  axes = tuple(range(1, guided.ndim))
  std_cond = jnp.std(cond_pred, axis=axes, keepdims=True)
  std_guided = jnp.std(guided, axis=axes, keepdims=True)
  return phi * guided * (std_cond / std_guided) + (1.0 - phi) * guided


def guided(denoiser, cond, negative_cond, guidance_rescale: float = 0.0):
  """A model f(x, t, w) evaluating both branches in one call on the doubled batch.

  denoiser(x, t, cond) -> prediction; x: [B, ...], t: [B]. Returns
  negative + w (positive - negative), rescaled when guidance_rescale > 0.
  """
  both = jax.tree.map(lambda c, n: jnp.concatenate([c, n], axis=0), cond, negative_cond)

  def model(x, t, w):
    out = denoiser(jnp.concatenate([x, x], axis=0), jnp.concatenate([t, t], axis=0), both)
    pos, neg = jnp.split(out.astype(jnp.float32), 2, axis=0)
    out = neg + w * (pos - neg)
    return rescale(out, pos, guidance_rescale) if guidance_rescale > 0 else out

  return model


def oscillating(num_steps: int, high: float = 15.0, low: float = 1.0,
                num_oscillating: int | None = None) -> np.ndarray:
  """Imagen Video's oscillating guidance (Ho et al. 2022, sec. 2.5): [N] weights.

  Alternates high, low for the first `num_oscillating` steps (default: half), then low.
  """
  if num_steps <= 0:
    raise ValueError(f"num_steps={num_steps!r} is not supported; expected an integer > 0")
  num_oscillating = num_steps // 2 if num_oscillating is None else num_oscillating
  w = np.full(num_steps, low, np.float32)
  w[:num_oscillating:2] = high
  return w
