"""The optimizer: AdamW (Loshchilov & Hutter 2019) with linear warmup, cosine decay and clipping."""

import jax
import ml_collections
import optax


def learning_rate(config: ml_collections.ConfigDict) -> optax.Schedule:
  """Linear warmup from 0 to `lr` over `warmup_steps`, then cosine decay to `lr·end_lr_factor`."""
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=config.lr, warmup_steps=config.warmup_steps,
      decay_steps=max(config.num_steps, config.warmup_steps + 1),
      end_value=config.lr * config.end_lr_factor)


def _decay_mask(params):
  # No weight decay on 1-D parameters (biases, norm scales), as is usual for transformers.
  return jax.tree.map(lambda p: p.ndim > 1, params)


def optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """Clipping by global norm (none when clip_norm <= 0), then AdamW on `learning_rate(config)`."""
  adamw = optax.adamw(learning_rate(config), b1=config.b1, b2=config.b2, eps=config.eps,
                      weight_decay=config.weight_decay, mask=_decay_mask)
  if config.clip_norm > 0:
    return optax.chain(optax.clip_by_global_norm(config.clip_norm), adamw)
  return adamw
