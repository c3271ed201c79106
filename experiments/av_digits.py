r"""AV-digits: video of a handwritten digit + a reference voice -> the spoken digit.

Three stages (DESIGN.md): acoustic autoencoder, visual autoencoder, then the
generator with its discriminator. Strategy 'joint': the generator stage
starts from the two autoencoders' encoders and fine-tunes them with the
generator ('separate' keeps them frozen).

Variants (`--config=experiments/av_digits.py:VARIANT`):
  tiny:    minutes-small models and a handful of steps, for tests.
  quick:   a few minutes on 2 CPU cores, to look at the whole pipeline.
  default: (no argument) the full CPU run.

Run:
  python launch/train.py --config=experiments/av_digits.py \
      --workdir=workdirs/av_digits
"""

import ml_collections


def _base_config():
  """The default (full CPU) configuration."""
  config = ml_collections.ConfigDict()
  config.seed = 0
  # 'joint': the encoders are fine-tuned by the generator's loss. The frozen
  # visual context holds the digit only as well as the pixels do (a probe
  # reads it in 0.89-0.91 of test clips); joint training raised the digit
  # accuracy from 0.85 to 0.93 (experiments/quality.md, run 9). Each step
  # is ~1.8x slower. 'separate': encoders frozen, as the stage exports.
  config.strategy = "joint"

  config.data = ml_collections.ConfigDict()
  config.data.name = "av_digits"
  config.data.data_dir = ml_collections.FieldReference(None, field_type=str)
  config.data.manual_dir = ml_collections.FieldReference(None, field_type=str)
  config.data.sample_rate = 8000
  config.data.num_samples = 8192
  config.data.num_frames = 32
  config.data.frame_size = 32
  # Each train recording drawn 8 times (own image, onset, reference): with
  # one MNIST image per recording the generator memorises image -> recording.
  # experiments/quality.md runs 10-13, 3 -> 5 -> 8 per recording: test
  # MR-STFT 1.142 -> 1.110 -> 1.099, speaker 0.867 -> 0.880 -> 0.897, digit
  # 0.933 -> 0.923 -> 0.947, FAD / floor 4.2 -> 3.5 -> 3.1.
  config.data.builder_kwargs = dict(examples_per_take=8)

  # Defaults for every stage; a stage's own `train` block overrides any key.
  config.train = ml_collections.ConfigDict()
  config.train.num_steps = 2000
  config.train.batch_size = 16
  config.train.learning_rate = 1e-3
  config.train.b1 = 0.9
  config.train.b2 = 0.999
  config.train.weight_decay = 0.0
  config.train.grad_clip_norm = 1.0
  config.train.log_every = 50
  config.train.checkpoint_every = 500
  # Audio and spectrogram previews: at every log step they made ~40 MB of
  # TensorBoard events per 12000-step run.
  config.train.summary_every = 1000
  config.train.keep_checkpoints = 2

  config.acoustic = ml_collections.ConfigDict()
  config.acoustic.model = dict(
      frontend="logmel", hop_length=256, n_fft=1024, num_mels=64,
      lstm_features=128, context_features=64, style_features=64,
      num_lstm_layers=1)
  config.acoustic.train = dict(num_steps=1500)
  config.acoustic.loss_weights = dict(feature_mse=1.0)

  config.visual = ml_collections.ConfigDict()
  config.visual.model = dict(conv_features=(16, 32, 64), lstm_features=128,
                             context_features=64)
  config.visual.train = dict(num_steps=1500)
  config.visual.loss_weights = dict(feature_mse=0.1, frame_mse=1.0)
  # Training runs the visual CNN on at most this fraction of a batch's
  # frames when its distinct frames fit (equal frames share features, so the
  # result is the same); other batches run the full step. A batch of 16
  # AV-digits clips holds 128 distinct frames of 512 on average (most are
  # all zero or the digit at one of its <= 25 positions; at most 156 in 2000
  # train batches). 0 or None: every frame, every step.
  config.visual.frame_budget = 0.3125
  # The pixel loss renders this fraction of each clip's frames, drawn at
  # random every step (an unbiased estimate of the all-frames loss): the
  # render head at 32x32 was ~60% of the visual step. 0.25: 8 of 32 frames,
  # the step 2.6x faster (experiments/quality.md, run 23). 0 or None: all.
  config.visual.render_fraction = 0.25

  config.generator = ml_collections.ConfigDict()
  config.generator.model = dict(
      # decoder='harmonic' (num_harmonics, num_noise_bands) is the
      # harmonic-plus-noise option; it did not beat 'conv' in
      # experiments/quality.md and its step is ~2x slower here.
      fusion="lstm", lstm_features=256, num_heads=4, decoder="conv",
      decoder_channels=256, kernel_len=25, noise_features=16,
      num_harmonics=32, num_noise_bands=32,
      # The conv decoder's forms and dtype (docs/performance_auto.md).
      conv_impl="fast", compute_dtype="float32")
  config.generator.discriminator = dict(kind="wavegan", dim=16,
                                        phaseshuffle_rad=2, condition=True)
  config.generator.adversarial = dict(loss="hinge", d_steps=1,
                                      gp_weight=10.0, d_learning_rate=1e-4,
                                      d_b1=0.5, d_b2=0.9)
  # No gradient clipping: with clipping at 1.0 the spikes of the log-magnitude
  # gradient (norms of 100-500) shrank every update and even a generator
  # given the digit label learned no digit (experiments/quality.md).
  # 12000 joint steps: 45.7 min for the whole run on an AVX-512 host, and
  # digit 0.96-0.98, FAD / floor 2.65-3.03 (mean 2.84) over three seeds where
  # 9000 gave means of 0.94 and 3.11 (quality.md runs 26-29); on the AVX2
  # hosts of sessions 10-17 the run would take ~71 min. The cosine decay
  # lands the last steps at a small learning rate.
  # ema_decay: an EMA of the trained weights for the export (0: off; see
  # quality.md run 14).
  # A checkpoint every 1000 steps, not 500: each cost ~2.3 s of training
  # time here (a 36 MB state); a preemption signal still saves at once.
  # encoder_learning_rate_scale: under 'joint', the encoders' learning rate
  # as a multiple of the generator's (they start trained).
  config.generator.train = dict(num_steps=12000, learning_rate=1e-3,
                                grad_clip_norm=0.0, schedule="cosine",
                                ema_decay=0.0, checkpoint_every=1000,
                                encoder_learning_rate_scale=1.0)
  # Under 'joint', encoder parameter groups kept as their stage exported
  # them, '<encoder>/<name prefix>'. Freezing the visual CNN
  # ('visual/conv_layers', 'visual/feature_projection') makes the step 1.5x
  # faster but cost 0.09 in digit accuracy (experiments/quality.md run 16):
  # the fine-tuned CNN is what carries the digit.
  config.generator.joint_frozen = ()
  # Training-time noise on the visual context: each train recording comes
  # with one MNIST image, and without it the generator memorises them.
  config.generator.visual_noise_std = 0.5
  # Reconstruction only (the critic is not run when both critic weights are
  # 0); adversarial=0.1, feature_matching=1.0 switch the critic on.
  config.generator.loss_weights = dict(
      waveform_mse=0.0, stft=1.0, adversarial=0.0, feature_matching=0.0,
      weight_decay=0.0)
  return config


def get_config(arg=None):
  """Returns the locked config for the variant named by `arg`."""
  config = _base_config()
  variant = arg or "default"
  if variant == "quick":
    config.acoustic.train.num_steps = 150
    config.visual.train.num_steps = 150
    config.generator.train.num_steps = 300
    config.train.log_every = 25
    config.train.checkpoint_every = 100
    config.generator.train.checkpoint_every = 100
    config.train.summary_every = 100
    config.data.builder_kwargs.examples_per_take = 1  # The smaller build.
  elif variant == "tiny":
    config.train.batch_size = 4
    config.train.log_every = 2
    config.train.checkpoint_every = 4
    config.generator.train.checkpoint_every = 4
    config.train.summary_every = 4
    config.data.builder_kwargs.examples_per_take = 1  # The tests' build.
    # The tests check that frozen encoders stay bit-identical; they ask for
    # 'joint' where they test it.
    config.strategy = "separate"
    config.acoustic.model.update(lstm_features=16, context_features=8,
                                 style_features=8, num_mels=16)
    config.acoustic.train.num_steps = 6
    config.visual.model.update(conv_features=(4, 8), lstm_features=16,
                               context_features=8)
    config.visual.train.num_steps = 6
    config.generator.model.update(lstm_features=16, num_heads=2,
                                  decoder_channels=16, noise_features=4)
    config.generator.discriminator.dim = 2
    # The critic path stays exercised by the tests that train this variant.
    config.generator.loss_weights.update(adversarial=0.1,
                                         feature_matching=1.0)
    config.generator.train.num_steps = 6
  elif variant != "default":
    raise ValueError(f"Unknown av_digits variant {variant!r}; "
                     "expected 'tiny', 'quick' or none.")
  config.variant = variant
  return config.lock()
