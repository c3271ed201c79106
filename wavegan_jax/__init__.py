"""wavegan-jax: audio-visual WaveGAN and the original WaveGAN in JAX/Flax.

Importing the package registers the TFDS builders (`av_digits`, `av_folder`,
`audio_folder`) so that `tfds.builder(name)` finds them.
"""

from wavegan_jax import data  # pylint: disable=unused-import  # registers builders

__version__ = "0.1.0"
