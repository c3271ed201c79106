r"""Linear probes of a run's frozen encoders: is what the generator needs there?

Fits a logistic regression from the visual context (max and mean over time)
to the digit, and from the acoustic style of the reference to the speaker,
on the AV-digits train split, and scores it on the test split. High test
accuracy with a generator that does not say the right digit means the
generator, not the encoders, is what falls short.

  python launch/probe_encoders.py --workdir=workdirs/av_digits \
      --manual_dir=../shared/data
"""

import os

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from sklearn import linear_model

from wavegan_jax import errors
from wavegan_jax import inference
from wavegan_jax.data import batches
from wavegan_jax.evaluation import evaluate

_WORKDIR = flags.DEFINE_string("workdir", None, "A trained AV run directory.",
                               required=True)
_MANUAL_DIR = flags.DEFINE_string(
    "manual_dir", os.environ.get("WAVEGAN_MANUAL_DIR"),
    "Raw FSDD + MNIST folder (default $WAVEGAN_MANUAL_DIR).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data dir.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 100, "Encoder batch.")


errors.define_debug_flag()


def encoder_features_fn(config: ml_collections.ConfigDict, workdir: str,
                        batch_size: int):
  """clips -> {'visual_max', 'visual_mean', 'style'}, from the exports."""
  modules = inference.av_models(config)
  params = inference.load_encoders(config, workdir, modules)

  @jax.jit
  def encode(video, reference):
    visual, _, style = inference.conditioning(
        modules, params, {"video": video, "reference": reference})
    return {"visual_max": jnp.max(visual, 1),
            "visual_mean": jnp.mean(visual, 1), "style": style}
  return lambda clips: evaluate.batched(
      encode, [clips["video"], clips["reference"]], batch_size)


def probe(workdir: str, manual_dir, data_dir, batch_size: int) -> dict:
  """Test accuracies of the three linear probes (and the train ones)."""
  config = evaluate.read_config(workdir)
  encoder_features = encoder_features_fn(config, workdir, batch_size)
  fields = ("video", "reference", "digit", "speaker")
  splits = {split: batches.split_clips(
      config, split, manual_dir=manual_dir, data_dir=data_dir, fields=fields)
            for split in ("train", "test")}
  features = {split: encoder_features(clips)
              for split, clips in splits.items()}
  results = {}
  for name, label in (("visual_max", "digit"), ("visual_mean", "digit"),
                      ("style", "speaker")):
    classifier = linear_model.LogisticRegression(max_iter=2000).fit(
        features["train"][name], splits["train"][label])
    for split in ("train", "test"):
      results[f"{name}_to_{label}_{split}_accuracy"] = float(
          classifier.score(features[split][name], splits[split][label]))
  return results


def main(argv):
  del argv
  results = probe(_WORKDIR.value, _MANUAL_DIR.value, _DATA_DIR.value,
                  _BATCH_SIZE.value)
  for key, value in results.items():
    print(f"{key} {np.round(value, 4)}")


if __name__ == "__main__":
  app.run(errors.cli_main(main))
