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
  # No weight decay on biases and norm scales, as is usual for transformers: by name, since a
  # scanned stack of layers makes them 2-D, and on any other 1-D parameter.
  def decays(path, p):
    name = getattr(path[-1], "key", None) if path else None
    return p.ndim > 1 and name not in ("bias", "scale")
  return jax.tree_util.tree_map_with_path(decays, params)


def frozen(config: ml_collections.ConfigDict) -> frozenset[str]:
  """The top-level params `config.frozen` names: no gradient, no update, no weight decay."""
  return frozenset(config.get("frozen", ()))


def optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """Clipping by global norm (none when clip_norm <= 0), then AdamW on `learning_rate(config)`;
  the params named in `config.frozen` get zero updates (AdamW's decoupled weight decay would
  otherwise shrink them even without a gradient)."""
  tx = optax.adamw(learning_rate(config), b1=config.b1, b2=config.b2, eps=config.eps,
                   weight_decay=config.weight_decay, mask=_decay_mask)
  if config.clip_norm > 0:
    tx = optax.chain(optax.clip_by_global_norm(config.clip_norm), tx)
  names = frozen(config)
  if not names:
    return tx

  def labels(params):
    # Runs when the state is initialised on abstract shapes: a wrong name fails before compiling.
    unknown = sorted(names - set(params))
    if unknown:
      raise ValueError(f"optim.frozen: {unknown} are not params of this task; expected names "
                       f"among {sorted(params)}")
    return {k: "frozen" if k in names else "trained" for k in params}
  return optax.multi_transform({"trained": tx, "frozen": optax.set_to_zero()}, labels)
