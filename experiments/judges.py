r"""The evaluation judges: a digit + speaker classifier of real FSDD speech.

Trains `wavegan_jax.models.judge.AudioJudge` on the real FSDD training takes
of the AV-digits train split (each example's `target`, and its `reference`,
another training take of the same speaker) and reports its accuracy on the
AV-digits test split's targets (FSDD's official test takes) in
<workdir>/judges/final_metrics.json (`test_digit_accuracy`,
`test_speaker_accuracy`). `launch/evaluate.py` then scores generated audio
with it.

Variants (`--config=experiments/judges.py:VARIANT`):
  tiny:    a small model and a handful of steps, for tests.
  default: (no argument) a few minutes on 2 CPU cores.

Run:
  python launch/train.py --config=experiments/judges.py \
      --workdir=workdirs/judges
"""

import ml_collections


def _base_config():
  """The default configuration."""
  config = ml_collections.ConfigDict()
  config.seed = 0

  # The AV-digits builder (as experiments/av_digits.py): its train split's
  # clips are FSDD training takes, its test split's targets the test takes.
  config.data = ml_collections.ConfigDict()
  config.data.name = "av_digits"
  config.data.data_dir = ml_collections.FieldReference(None, field_type=str)
  config.data.manual_dir = ml_collections.FieldReference(None, field_type=str)
  config.data.sample_rate = 8000
  config.data.num_samples = 8192
  config.data.num_frames = 32
  config.data.frame_size = 32

  config.train = ml_collections.ConfigDict()
  config.train.num_steps = 800
  config.train.batch_size = 32  # AV-digits examples: 2 clips each.
  config.train.learning_rate = 2e-3
  config.train.b1 = 0.9
  config.train.b2 = 0.999
  config.train.weight_decay = 0.0
  config.train.grad_clip_norm = 5.0
  config.train.warmup_steps = 50
  config.train.schedule = "cosine"
  config.train.log_every = 50
  config.train.checkpoint_every = 200
  config.train.keep_checkpoints = 2

  config.judges = ml_collections.ConfigDict()
  # AudioJudge keyword arguments (sample_rate comes from config.data).
  config.judges.model = dict(
      n_fft=512, hop_length=128, num_mels=64, channels=(16, 32, 64),
      embedding_features=128, dropout=0.1)
  # Train on the reference clips too (their digit is parsed from
  # reference_id '{digit}_{speaker}_{take}'): twice the clips per step.
  config.judges.use_references = True
  # Augmentation of every training clip: a circular shift by up to
  # max_shift samples either way (clips are zero padded, so this moves the
  # word in time), a gain in [min_gain_db, max_gain_db] and white noise of
  # a standard deviation up to noise_std (noise 0.003 with gains down to
  # -20 dB buried the quiet takes).
  config.judges.augment = dict(max_shift=800, min_gain_db=-6.0,
                               max_gain_db=0.0, noise_std=0.0)
  config.judges.loss_weights = dict(digit=1.0, speaker=1.0)
  config.judges.eval_split = "test"
  config.judges.train = {}
  return config


def get_config(arg=None):
  """Returns the locked config for the variant named by `arg`."""
  config = _base_config()
  variant = arg or "default"
  if variant == "tiny":
    config.train.num_steps = 4
    config.train.batch_size = 4
    config.train.warmup_steps = 0
    config.train.log_every = 2
    config.train.checkpoint_every = 2
    config.judges.model.update(channels=(4, 8), embedding_features=16,
                               num_mels=32)
  elif variant != "default":
    raise ValueError(f"Unknown judges variant {variant!r}; expected 'tiny' "
                     "or none.")
  config.variant = variant
  return config.lock()
