"""wavegan-jax: audio-visual WaveGAN and the original WaveGAN in JAX/Flax.

Importing the package registers the TFDS builders (`av_digits`, `av_folder`,
`audio_folder`) so that `tfds.builder(name)` finds them.
"""

import os

# TensorFlow only reads data here; its C++ start-up chatter (and the oneDNN
# notice, printed even at level 2) is noise on every command's stderr.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
# Numba (librosa's pYIN, evaluation/instruments.py) compiled for the host
# CPU segfaults on AMD EPYC AVX-512 hosts with numba 0.68 / llvmlite 0.50 in a
# fresh environment (its first compile of pYIN's parabolic interpolation);
# generic x86-64 code runs. Read when numba is first imported.
os.environ.setdefault("NUMBA_CPU_NAME", "generic")

from wavegan_jax import data  # pylint: disable=unused-import  # registers builders

__version__ = "0.1.0"
