"""wavegan-jax: audio-visual WaveGAN and the original WaveGAN in JAX/Flax.

Importing the package registers the TFDS builders (`av_digits`, `av_folder`,
`audio_folder`) so that `tfds.builder(name)` finds them.
"""

import os

# TensorFlow only reads data here; its C++ start-up chatter (and the oneDNN
# notice, printed even at level 2) is noise on every command's stderr.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

from wavegan_jax import data  # pylint: disable=unused-import  # registers builders

__version__ = "0.1.0"
