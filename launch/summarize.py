r"""Prints every model of an experiment with its parameter count and FLOPs.

  python launch/summarize.py --config=experiments/wavegan.py:paper

One line per model: `NAME params=N flops_per_example=F` (F from XLA's cost
analysis of one forward pass at batch 1; 'n/a' where the backend gives none;
'>=' where the model has loops (LSTMs), whose body XLA counts only once).
"""

from absl import app
from absl import logging
from ml_collections import config_flags

from wavegan_jax import errors
from wavegan_jax.launching import sweeps

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config file, optionally with ':VARIANT'.")


errors.define_debug_flag()


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.WARNING)
  from wavegan_jax.models import summary  # pylint: disable=g-import-not-at-top
  for model in summary.summarize(_CONFIG.value):
    flops = ("n/a" if model.flops_per_example is None
             else f"{model.flops_per_example:.4g}")
    if model.flops_lower_bound and model.flops_per_example is not None:
      flops = ">=" + flops
    print(f"{model.name} params={model.params} flops_per_example={flops}")


if __name__ == "__main__":
  app.run(errors.cli_main(main), flags_parser=sweeps.parse_flags)
