r"""AV-digits: a handwritten digit's video + a reference voice -> the digit.

Three stages (docs/design.md): acoustic autoencoder, visual autoencoder,
then the generator with its discriminator. Strategy 'joint': the generator
stage starts from the two autoencoders' encoders and fine-tunes them with
the generator ('separate' keeps them frozen).

Run numbers in comments refer to docs/experiment_log.md.

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
  # 'joint': the generator's loss fine-tunes both encoders (digit 0.85 ->
  # 0.93, runs 8-9; steps ~1.8x slower). 'separate': encoders frozen.
  config.strategy = "joint"

  config.data = ml_collections.ConfigDict()
  config.data.name = "av_digits"
  config.data.data_dir = ml_collections.FieldReference(None, field_type=str)
  config.data.manual_dir = ml_collections.FieldReference(None, field_type=str)
  config.data.sample_rate = 8000
  config.data.num_samples = 8192
  config.data.num_frames = 32
  config.data.frame_size = 32
  # generate / robustness: a user's video is redrawn as AV-digits draws a
  # digit (light on black, MNIST's size and centre) before the model sees
  # it (evaluation/digit_frames.py; docs/robustness.md); False: resized only.
  config.data.normalize_digits = True
  # Each train recording drawn 8 times, each with its own image, onset and
  # reference, against memorising image -> recording (runs 10-13, 24).
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
  # TensorBoard audio and image previews; at every log step they were ~40 MB.
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
  # Speed only: the visual CNN runs on a batch's distinct frames when they
  # fit in this fraction of its frames (~128 of 512 on AV-digits), else on
  # all (run 19). 0 or None: every frame.
  config.visual.frame_budget = 0.3125
  # The pixel loss on a random fraction of each clip's frames, an unbiased
  # estimate; the visual step 2.6x faster (run 23). 0 or None: all frames.
  config.visual.render_fraction = 0.25
  # Training-time re-rendering of a share (`fraction`) of the clips' videos
  # in the visual and generator stages: scale, shift, stroke width,
  # inversion, contrast (wavegan_jax/data/augment.py; docs/robustness.md).
  # Off (fraction 0): 0.5 cost 0.2 of the digit accuracy (runs 32-33).
  config.visual.augment = dict(fraction=0.0, scale=(0.5, 1.4), translate=0.2,
                               stroke=1.5, invert=0.5, contrast=0.3,
                               stages=("visual", "generator"))

  config.generator = ml_collections.ConfigDict()
  config.generator.model = dict(
      # decoder='harmonic' (num_harmonics, num_noise_bands): did not beat
      # 'conv' and runs ~2x slower (run 2).
      fusion="lstm", lstm_features=256, num_heads=4, decoder="conv",
      # fusion='lstm_transformer' only: position 'relative' | 'absolute' |
      # 'none', transformer_dropout, transformer_zero_init (the block
      # starts as the identity), reference_attention (frames also attend to
      # the reference's context sequence); measured in docs/results.md.
      position="relative", transformer_dropout=0.0,
      transformer_zero_init=False, reference_attention=False,
      decoder_channels=256, kernel_len=25, noise_features=16,
      num_harmonics=32, num_noise_bands=32,
      # The conv decoder's forms and dtype (docs/performance_auto.md).
      conv_impl="fast", compute_dtype="float32",
      # 'snake' (BigVGAN's periodic activation) against 'relu', paired on
      # the same encoders (runs 34, 38): DNSMOS OVRL 2.39 -> 2.50, voiced
      # share 0.26 -> 0.38, PocketSphinx 0.62 -> 0.69, speaker 0.90 -> 0.98,
      # FAD / floor 2.78 -> 2.21, digit 0.977 -> 0.953. Conv decoder only:
      # the other decoders need 'relu'.
      decoder_activation="snake")
  # kind 'wavegan' (dim, phaseshuffle_rad, condition), 'stft' or 'vocoder'
  # (periods, period_channels, fft_sizes, spectrogram_channels): each kind
  # reads its own keys.
  config.generator.discriminator = dict(
      kind="wavegan", dim=16, phaseshuffle_rad=2, condition=True,
      periods=(2, 3, 5), period_channels=(8, 16, 32, 32),
      fft_sizes=(512, 256, 128), spectrogram_channels=8)
  config.generator.adversarial = dict(loss="hinge", d_steps=1, start_step=0,
                                      gp_weight=10.0, d_learning_rate=1e-4,
                                      d_b1=0.5, d_b2=0.9)
  # num_steps: 12000 beat 9000 in digit and FAD (runs 26-30; 9000 keeps
  #   the run in the hour on slower hosts).
  # grad_clip_norm 0: clipping at 1 kept every generator at chance (run 4).
  # ema_decay: > 0 exports an EMA of the weights (within noise, run 14).
  # checkpoint_every: each checkpoint costs ~2.3 s of training here.
  # encoder_learning_rate_scale: the fine-tuned encoders' rate as a
  #   multiple of the generator's under 'joint' (0.3 no better, run 25).
  config.generator.train = dict(num_steps=12000, learning_rate=1e-3,
                                warmup_steps=0,
                                grad_clip_norm=0.0, schedule="cosine",
                                ema_decay=0.0, checkpoint_every=1000,
                                encoder_learning_rate_scale=1.0)
  # Encoder parameter groups ('<encoder>/<name prefix>') kept frozen under
  # 'joint'; freezing the visual CNN cost 0.09 in digit accuracy (run 16).
  config.generator.joint_frozen = ()
  # Training-time noise on the visual context, against memorising images.
  config.generator.visual_noise_std = 0.5
  # enabled: the training noise is drawn from q(z | target) (a conditional
  # VAE's encoder, models/posterior.py) with loss_weights.kl on KL(q || N(0,
  # 1)), so that the noise carries the take's pitch contour and pace, which
  # the video and reference do not; generation samples N(0, 1) as before.
  config.generator.posterior = dict(enabled=False, channels=64, n_fft=512,
                                    hop_length=128, kernel_len=5)
  # Reconstruction only (the critic is not run when both critic weights are
  # 0); the wavegan critic (run 5) and the vocoder one (runs 31-32) were no
  # better by the judges or the instruments.
  config.generator.loss_weights = dict(
      waveform_mse=0.0, stft=1.0, adversarial=0.0, feature_matching=0.0,
      weight_decay=0.0, kl=0.0)
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
    config.generator.discriminator.update(
        dim=2, periods=(2, 3), period_channels=(2, 4), fft_sizes=(128,),
        spectrogram_channels=2)
    # The critic path stays exercised by the tests that train this variant.
    config.generator.loss_weights.update(adversarial=0.1,
                                         feature_matching=1.0)
    config.generator.train.num_steps = 6
  elif variant != "default":
    raise ValueError(f"Unknown av_digits variant {variant!r}; "
                     "expected 'tiny', 'quick' or none.")
  config.variant = variant
  return config.lock()
