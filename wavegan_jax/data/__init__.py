"""Data: TFDS builders and the tf.data input pipeline.

Importing this package registers the builders `av_digits`, `av_folder` and
`audio_folder` with TFDS, and hides GPUs from TensorFlow so that tf.data never
takes accelerator memory that JAX needs.
"""

import tensorflow as tf

try:
  tf.config.set_visible_devices([], "GPU")
except RuntimeError:  # TF already initialised its devices; nothing to hide.
  pass

# pylint: disable=g-import-not-at-top,unused-import
from wavegan_jax.data import audio_folder  # registers `audio_folder`
from wavegan_jax.data import av_digits  # registers `av_digits`
from wavegan_jax.data import av_folder  # registers `av_folder`
