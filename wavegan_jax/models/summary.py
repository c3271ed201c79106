"""Parameter counts and FLOPs of every model of an experiment config."""

import dataclasses
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import ml_collections

from wavegan_jax import inference


@dataclasses.dataclass
class ModelSummary:
  """One model's size and cost.

  Attributes:
    name: the model's role in the experiment.
    params: number of trainable scalars.
    flops_per_example: XLA's FLOP count of a batch-1 forward pass, or None.
    flops_lower_bound: True when the program has loops (LSTMs): XLA counts
      a loop body once, so the figure undercounts.
  """
  name: str
  params: int
  flops_per_example: Optional[float]
  flops_lower_bound: bool = False


def count_params(params: Any) -> int:
  """Number of scalars in a parameter pytree."""
  return sum(int(leaf.size) for leaf in jax.tree_util.tree_leaves(params))


def _forward_flops(apply_fn: Callable, params: Any,
                   *args) -> tuple[Optional[float], bool]:
  """(XLA's FLOP count of one forward pass or None, has loops)."""
  try:
    compiled = jax.jit(apply_fn).lower(params, *args).compile()
    analysis = compiled.cost_analysis()
    has_loops = " while(" in compiled.as_text()
  except Exception:  # pylint: disable=broad-except
    return None, False  # Cost analysis is backend-dependent; optional.
  if isinstance(analysis, (list, tuple)):
    analysis = analysis[0] if analysis else {}
  flops = (analysis or {}).get("flops")
  return (float(flops) if flops and flops > 0 else None), has_loops


def _summarize(name, module, *args, **kwargs) -> ModelSummary:
  """Initialises `module` on batch-1 inputs and measures it."""
  variables = jax.eval_shape(
      lambda: module.init(jax.random.PRNGKey(0), *args, **kwargs))
  params = variables["params"]
  concrete = module.init(jax.random.PRNGKey(0), *args, **kwargs)
  flops, has_loops = _forward_flops(
      lambda v, *a: module.apply(v, *a, **kwargs), concrete, *args)
  return ModelSummary(name, count_params(params), flops, has_loops)


def _av_models(config) -> list[ModelSummary]:
  modules = inference.av_models(config)
  inputs = inference.av_example_inputs(config)
  acoustic_params = modules["acoustic"].init(jax.random.PRNGKey(0),
                                             inputs["target"])
  visual_params = modules["visual"].init(jax.random.PRNGKey(0),
                                         inputs["video"])
  visual_context = modules["visual"].apply(
      visual_params, inputs["video"], method=modules["visual"].encode)
  acoustic_context, style = modules["acoustic"].apply(
      acoustic_params, inputs["target"], method=modules["acoustic"].encode)
  noise_features = config.generator.model.get("noise_features", 0)
  z = jnp.zeros((1, noise_features)) if noise_features else None
  summaries = [
      _summarize("acoustic", modules["acoustic"], inputs["target"]),
      _summarize("visual", modules["visual"], inputs["video"]),
      _summarize("generator", modules["generator"], visual_context,
                 acoustic_context, style, z=z),
  ]
  if config.generator.discriminator.kind == "wavegan":
    condition = (visual_context if config.generator.discriminator.get(
        "condition") else None)
    summaries.append(_summarize("discriminator", modules["discriminator"],
                                inputs["target"][..., None],
                                condition=condition))
  else:
    summaries.append(_summarize("discriminator", modules["discriminator"],
                                inputs["target"]))
  return summaries


def _wavegan_models(config) -> list[ModelSummary]:
  generator, discriminator = inference.wavegan_models(config)
  return [
      _summarize("generator", generator,
                 jnp.zeros((1, config.wavegan.latent_dim))),
      _summarize("discriminator", discriminator,
                 jnp.zeros(inference.critic_input_shape(config))),
  ]


def _judge_models(config) -> list[ModelSummary]:
  return [_summarize("judge", inference.judge_model(config),
                     jnp.zeros((1, config.data.num_samples)))]


def summarize(config: ml_collections.ConfigDict) -> list[ModelSummary]:
  """One ModelSummary per model of the experiment."""
  if "acoustic" in config:
    return _av_models(config)
  if "wavegan" in config:
    return _wavegan_models(config)
  if "judges" in config:
    return _judge_models(config)
  raise ValueError("The config has no acoustic, wavegan or judges block.")
