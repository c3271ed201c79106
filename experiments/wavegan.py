r"""The original, unconditional WaveGAN (Donahue et al., ICLR 2019).

Variants (`--config=experiments/wavegan.py:VARIANT`):
  default: (no argument) FSDD spoken digits at 8 kHz, 8192-sample slices,
           sized to train on a 2-core CPU; not the paper's model: Snake
           activations, nearest-neighbour upsampling, a cosine decay and
           two post-filters on what is heard (a 40 Hz high-pass, a 32 ms
           fade at the clip's end).
  paper:   the paper's setup: d=64, 16384 samples at 16 kHz, WGAN-GP with 5
           critic steps, Adam 1e-4 (0.5, 0.9), batch 64, no mode-seeking
           term.
  specgan: the paper's SpecGAN (a DCGAN over 128 x 128 normalised
           log-magnitude spectrograms, 16 Griffin-Lim iterations back to
           audio) on the default's data and training settings, without
           the mode-seeking term.
  tiny:    small widths and a few steps, for tests.

Run numbers in comments refer to docs/experiment_log.md (WaveGAN table).

Run:
  python launch/train.py --config=experiments/wavegan.py \
      --workdir=workdirs/wavegan
"""

import ml_collections


def get_config(arg=None):
  """Returns the locked config for the variant named by `arg`."""
  variant = arg or "default"
  config = ml_collections.ConfigDict()
  config.seed = 0

  # The audio_folder builder over the FSDD recordings, FSDD's official split.
  config.data = ml_collections.ConfigDict()
  config.data.name = "audio_folder"
  config.data.data_dir = ml_collections.FieldReference(None, field_type=str)
  config.data.manual_dir = ml_collections.FieldReference(None, field_type=str)
  config.data.folder = "fsdd/recordings"  # Relative to the manual dir.
  config.data.builder_kwargs = dict(
      sample_rate=8000, num_channels=1, slice_len=8192, first_slice_only=True,
      pad_end=True, normalize=True, split_by="fsdd_takes")

  config.train = ml_collections.ConfigDict()
  # num_steps: the IS peaks between 14000 and 20000 (runs 19, 35, 49);
  #   the cosine decay from 12000 holds it there (run 54, where run 49's
  #   constant rate fell from 0.70 at 14000 to 0.49 at 20000).
  # batch_size: examples per update; a step reads d_steps of them.
  config.train.num_steps = 20000
  config.train.batch_size = 16
  config.train.learning_rate = 1e-4
  config.train.b1 = 0.5
  config.train.b2 = 0.9
  # The critic's rate (its Adam reads d_* keys first): 3x the generator's
  # with one critic update per step, not the paper's 5 (runs 3-6, 29-30).
  config.train.d_learning_rate = 3e-4
  # 'constant' or 'cosine' (both networks' rates decay to 0 at num_steps).
  config.train.schedule = "cosine"
  # With 'cosine': the rates held until this step, then decayed.
  config.train.decay_start = 12000
  # > 0: the export holds an EMA of the generator (within noise, run 13).
  config.train.ema_decay = 0.0
  config.train.log_every = 50
  # TensorBoard previews; every 50 steps they cost up to 13% (run 18).
  config.train.summary_every = 1000
  config.train.checkpoint_every = 500
  config.train.keep_checkpoints = 2

  config.wavegan = ml_collections.ConfigDict()
  # 'waveform' (WaveGAN) or 'spectrogram' (SpecGAN, the 'specgan' variant).
  config.wavegan.representation = "waveform"
  # conv_impl: conv.py's forms, 'auto' per host (docs/performance_auto.md);
  # compute_dtype 'bfloat16' for GPU / TPU (params stay float32);
  # activation 'snake': a learned periodic term after each hidden layer;
  # dc_block_len: a high-pass on what is heard, not on what the critic
  #   scores (not in the paper; 201: first null at 40 Hz), so inaudible
  #   offsets and drifts cannot pass for sound in the silence (runs 52-56);
  # end_fade_len: the last samples faded to zero, also only on what is
  #   heard (not in the paper): the zero-padded edge leaves a click in the
  #   last ~25 ms (-32 dBFS, run 57); 256 (32 ms) takes it to -56.
  # edge_padding: 'reflect' or 'edge' pads the nn convolutions' inputs
  #   with the signal itself instead of zeros, against that click at its
  #   source (a retrain; untried).
  config.wavegan.model = dict(dim=16, kernel_len=25, upsample="nn",
                              post_proc_filter_len=0, conv_impl="fourier",
                              compute_dtype="float32", activation="snake",
                              dc_block_len=201, end_fade_len=256,
                              edge_padding="zeros")
  # minibatch_std_group > 0: the critic sees the features' spread over
  # groups of that many examples (ProGAN; not in the paper; run 26).
  # upsample='nn', post_proc_filter_len=512: the paper's options (run 27);
  #   'nn' with 'snake' leaves no fixed tonal lines (run 49: 5.4 dB, real
  #   5.9; zero insertion 12.6-16.1 dB), at ~0.65x the steps per second.
  config.wavegan.discriminator = dict(dim=16, phaseshuffle_rad=2,
                                      minibatch_std_group=0,
                                      conv_impl="fourier",
                                      compute_dtype="float32")
  config.wavegan.latent_dim = 100
  # gp_examples: the gradient penalty on this many of each critic update's
  # pairs (0: all of them; 2 of 16 is only 1.13x faster, run 14).
  # simultaneous: both networks' updates from one backward pass of the
  # critic loss (wgan-gp, d_steps=1; 1.19x faster, runs 17-18); False:
  # alternating, as the paper.
  # pack > 1: the critic scores packs of that many clips (PacGAN; not in
  # the paper; run 28); gp_examples then counts packs.
  # mode_seeking_weight: the mode-seeking term (Mao et al., 2019; not in
  #   the paper): with ReLU and zero insertion 0.70-0.71 of real IS against
  #   0.525 without (runs 37, 43), but noise in the silence after the word
  #   (run 40); Snake and nn reach that IS without it (runs 47-49, 54).
  # mode_seeking_space='log_mel': the term on floored log-mel frames (run
  #   41: part of the silence kept, none of the gain).
  # loudness_weight > 0: matches the generated frame loudnesses to the
  #   real batch's (run 42: silence kept, gain lost); from
  #   loudness_start_step on only (0: from the start).
  config.wavegan.adversarial = dict(loss="wgan-gp", d_steps=1, gp_weight=10.0,
                                    gp_examples=0, simultaneous=False, pack=1,
                                    mode_seeking_weight=0.0,
                                    mode_seeking_space="waveform",
                                    loudness_weight=0.0,
                                    loudness_start_step=0)
  # A least-squares patch critic beside WaveGAN's: multi-period and
  # multi-resolution spectrogram (models/vocoder_discriminators.py); off
  # while both weights are 0.
  config.wavegan.spectral_critic = dict(
      weight=0.0, feature_matching=0.0, periods=(2, 3, 5),
      period_channels=(8, 16, 32, 32), fft_sizes=(256,),
      spectrogram_channels=8)
  config.wavegan.train = {}

  if variant == "paper":
    config.data.builder_kwargs.update(sample_rate=16000, slice_len=16384)
    config.train.d_learning_rate = 1e-4
    config.wavegan.adversarial.d_steps = 5
    config.train.batch_size = 64
    config.train.num_steps = 100_000
    config.train.schedule = "constant"
    config.train.decay_start = 0
    config.wavegan.model.update(upsample="zeros", activation="relu",
                                dc_block_len=0, end_fade_len=0,
                                edge_padding="zeros")
    config.wavegan.model.dim = 64
    config.wavegan.discriminator.dim = 64
  elif variant == "specgan":
    config.wavegan.representation = "spectrogram"
    config.wavegan.model = dict(dim=16, kernel_size=5,
                                griffin_lim_iterations=16)
    config.wavegan.discriminator = dict(dim=16, kernel_size=5)
    # As measured in run 32: a constant rate, no mode-seeking term.
    config.train.schedule = "constant"
    config.train.decay_start = 0
  elif variant == "tiny":
    # Two critic updates per step: the tests cover the paper's path of
    # several (5 there) at ~0.6x the compile time of five (13.5 s against
    # 22-28 s on an AVX2 host).
    config.wavegan.adversarial.d_steps = 2
    config.train.batch_size = 2
    config.train.num_steps = 4
    config.train.decay_start = 2
    config.train.log_every = 2
    config.train.checkpoint_every = 2
    config.wavegan.model.dim = 2
    config.wavegan.discriminator.dim = 2
  elif variant != "default":
    raise ValueError(f"Unknown wavegan variant {variant!r}; expected "
                     "'paper', 'specgan', 'tiny' or none.")
  config.variant = variant
  return config.lock()
