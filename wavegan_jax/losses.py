"""Loss functions for every stage: pure functions of arrays returning scalars.

Each stage's objective is a weighted sum of named terms from three groups
(`TERM_GROUPS`):
  * reconstruction: `waveform_mse`, `stft` (multi-resolution STFT total) and
    model-specific reconstruction terms (e.g. `feature_mse` of an encoder);
  * regularisation: `weight_decay`, `latent_l2`, `kl`;
  * adversarial: `adversarial` (the generator's GAN loss) and
    `feature_matching` (discriminator features, real vs generated).
A stage config names the weight of each term it uses, for example

  config.loss_weights = dict(waveform_mse=1., stft=1., weight_decay=1e-4,
                             adversarial=1., feature_matching=10.)

and the train step builds `terms = {'waveform_mse': ..., 'stft': ...}` and
calls `total, terms = weighted_sum(terms, config.loss_weights)`. A weight of 0
switches a term off; terms may be given as zero-argument callables so that a
switched-off term is never computed.

Adversarial losses take discriminator logits of any shape ([B] or [B, 1]) and
average over all of them. For WGAN-GP the discriminator objective is
`discriminator_loss('wgan-gp', ...) + lambda * gradient_penalty(...)`
(WaveGAN uses lambda = 10).
"""

from typing import Any, Callable, Dict, Mapping, Sequence, Tuple, Union

import jax
import jax.numpy as jnp
import numpy as np

from wavegan_jax import spectral

TERM_GROUPS = {
    "reconstruction": ("waveform_mse", "stft", "spectral_convergence",
                       "log_magnitude", "feature_mse", "frame_mse"),
    "regularisation": ("weight_decay", "latent_l2", "kl"),
    "adversarial": ("adversarial", "feature_matching"),
}
ADVERSARIAL_KINDS = ("wgan-gp", "hinge", "lsgan")


def _as_signals(pred: jnp.ndarray, target: jnp.ndarray, name: str):
  """Drops a trailing channel axis of 1 and checks both shapes agree."""
  pred, target = jnp.asarray(pred), jnp.asarray(target)
  if pred.ndim == 3 and pred.shape[-1] == 1:
    pred = pred[..., 0]
  if target.ndim == 3 and target.shape[-1] == 1:
    target = target[..., 0]
  if pred.shape != target.shape:
    raise ValueError(
        f"{name}: prediction shape {pred.shape} does not match target shape "
        f"{target.shape}")
  return pred, target


def _safe_norm(squares_sum: jnp.ndarray) -> jnp.ndarray:
  """sqrt with a finite gradient at 0 (needed for second-order grads)."""
  positive = squares_sum > 0
  return jnp.where(positive, jnp.sqrt(jnp.where(positive, squares_sum, 1.0)),
                   0.0)


def waveform_mse(pred: jnp.ndarray, target: jnp.ndarray) -> jnp.ndarray:
  """Mean squared error between waveforms.

  Args:
    pred: [B, N] or [B, N, 1] generated audio.
    target: the same shape (a trailing channel of 1 may differ).

  Returns:
    Scalar mean over batch and samples.
  """
  pred, target = _as_signals(pred, target, "waveform_mse")
  return jnp.mean((pred - target) ** 2)


def multi_resolution_stft_loss(
    pred: jnp.ndarray,
    target: jnp.ndarray,
    fft_sizes: Sequence[int] = (512, 256, 128),
    hop_sizes: Sequence[int] = (128, 64, 32),
    win_lengths: Sequence[int] = (512, 256, 128),
    eps: float = 1e-7) -> Dict[str, jnp.ndarray]:
  """Multi-resolution STFT loss of Parallel WaveGAN (Yamamoto et al., 2020).

  Per resolution, with magnitudes S = sqrt(max(|STFT|^2, eps)):
    spectral convergence = ||S_t - S_p||_F / ||S_t||_F  (Frobenius norms over
      the whole batch, as in Parallel WaveGAN, so one quiet clip cannot
      dominate);
    log magnitude = mean |log S_t - log S_p|.
  Both are averaged over resolutions. The floor eps keeps all-silent targets
  finite (no NaN in the value or the gradient). The defaults (frames of 64,
  32 and 16 ms at 8 kHz) suit 8192-sample clips.

  Args:
    pred: [B, N] or [B, N, 1] generated audio.
    target: real audio of the same shape.
    fft_sizes: FFT size per resolution.
    hop_sizes: hop per resolution.
    win_lengths: Hann window length per resolution.
    eps: floor on the power spectrum.

  Returns:
    dict(spectral_convergence=, log_magnitude=, total=) of scalars, where
    total = spectral_convergence + log_magnitude.
  """
  if not len(fft_sizes) == len(hop_sizes) == len(win_lengths) > 0:
    raise ValueError(
        f"multi_resolution_stft_loss needs equally many (>0) fft_sizes, "
        f"hop_sizes and win_lengths; got {fft_sizes}, {hop_sizes}, "
        f"{win_lengths}")
  pred, target = _as_signals(pred, target, "multi_resolution_stft_loss")
  convergence, log_magnitude = 0.0, 0.0
  for n_fft, hop, win in zip(fft_sizes, hop_sizes, win_lengths):
    pred_mag = spectral.magnitude(spectral.stft(pred, n_fft, hop, win), eps)
    target_mag = spectral.magnitude(
        spectral.stft(target, n_fft, hop, win), eps)
    # The safe norm keeps the gradient finite when pred == target.
    convergence += (_safe_norm(jnp.sum((target_mag - pred_mag) ** 2))
                    / jnp.sqrt(jnp.sum(target_mag ** 2)))
    log_magnitude += jnp.mean(jnp.abs(jnp.log(target_mag) - jnp.log(pred_mag)))
  count = len(fft_sizes)
  convergence, log_magnitude = convergence / count, log_magnitude / count
  return dict(spectral_convergence=convergence, log_magnitude=log_magnitude,
              total=convergence + log_magnitude)


# --- Adversarial losses ---------------------------------------------------


def wgan_discriminator_loss(real_logits, fake_logits) -> jnp.ndarray:
  """Wasserstein critic loss: E[D(fake)] - E[D(real)]."""
  return jnp.mean(fake_logits) - jnp.mean(real_logits)


def wgan_generator_loss(fake_logits) -> jnp.ndarray:
  """Wasserstein generator loss: -E[D(fake)]."""
  return -jnp.mean(fake_logits)


def gradient_penalty(critic_fn: Callable[[jnp.ndarray], jnp.ndarray],
                     real: jnp.ndarray, fake: jnp.ndarray,
                     rng: jax.Array) -> jnp.ndarray:
  """WGAN-GP penalty (Gulrajani et al., 2017), without the lambda factor.

  x_i = real_i + alpha_i (fake_i - real_i) with one alpha_i ~ U[0, 1] per
  example; penalty = mean_i (||d critic(x)_i / d x_i||_2 - 1)^2. The
  per-example gradients come from one gradient of sum_i critic(x)_i, which is
  exact only if the critic treats examples independently. A critic that
  mixes them (batch norm, the minibatch standard deviation of
  `WaveGANDiscriminator.minibatch_std_group`) adds the other examples'
  terms d critic(x)_j / d x_i, as ProGAN's penalty does.

  Args:
    critic_fn: maps a batch [B, ...] to logits [B] (or [B, 1]); close over the
      critic parameters so that the penalty is differentiable in them.
    real: [B, ...] real inputs.
    fake: generated inputs, same shape.
    rng: PRNG key for the interpolation weights.

  Returns:
    Scalar penalty.
  """
  if real.shape != fake.shape:
    raise ValueError(
        f"gradient_penalty: real shape {real.shape} does not match fake shape "
        f"{fake.shape}")
  alpha_shape = (real.shape[0],) + (1,) * (real.ndim - 1)
  alpha = jax.random.uniform(rng, alpha_shape, dtype=real.dtype)
  interpolated = real + alpha * (fake - real)
  grads = jax.grad(lambda x: jnp.sum(critic_fn(x)))(interpolated)
  squares = jnp.sum(grads.reshape(grads.shape[0], -1) ** 2, axis=-1)
  return jnp.mean((_safe_norm(squares) - 1.0) ** 2)


def hinge_discriminator_loss(real_logits, fake_logits) -> jnp.ndarray:
  """Hinge loss: E[relu(1 - D(real))] + E[relu(1 + D(fake))]."""
  return (jnp.mean(jax.nn.relu(1.0 - real_logits))
          + jnp.mean(jax.nn.relu(1.0 + fake_logits)))


def hinge_generator_loss(fake_logits) -> jnp.ndarray:
  """Hinge generator loss: -E[D(fake)]."""
  return -jnp.mean(fake_logits)


def least_squares_discriminator_loss(real_logits, fake_logits) -> jnp.ndarray:
  """LSGAN (Mao et al., 2017): 0.5 E[(D(real) - 1)^2] + 0.5 E[D(fake)^2]."""
  return 0.5 * (jnp.mean((real_logits - 1.0) ** 2)
                + jnp.mean(fake_logits ** 2))


def least_squares_generator_loss(fake_logits) -> jnp.ndarray:
  """LSGAN generator loss: 0.5 E[(D(fake) - 1)^2]."""
  return 0.5 * jnp.mean((fake_logits - 1.0) ** 2)


def _is_map_list(real_logits, fake_logits, kind: str) -> bool:
  """Whether the logits are lists of per-sub-discriminator patch maps."""
  listed = [isinstance(x, (list, tuple)) for x in (real_logits, fake_logits)]
  if listed[0] != listed[1] or (listed[0] and
                                len(real_logits) != len(fake_logits)):
    raise ValueError("real and fake logits must both be arrays or lists of "
                     "equally many maps")
  if listed[0] and (kind == "wgan-gp" or not real_logits):
    raise ValueError(f"lists of logit maps need a non-empty list and the "
                     f"'hinge' or 'lsgan' loss, got kind {kind!r} with "
                     f"{len(real_logits)} maps")
  return listed[0]


def _mean_over_maps(loss_fn, *logit_lists) -> jnp.ndarray:
  """The mean over sub-discriminators of each one's patch-wise loss."""
  return sum(loss_fn(*maps) for maps in zip(*logit_lists)) / len(
      logit_lists[0])


def mean_logit(logits) -> jnp.ndarray:
  """The mean of an array of logits or of a list of logit maps."""
  if isinstance(logits, (list, tuple)):
    return sum(jnp.mean(x) for x in logits) / len(logits)
  return jnp.mean(logits)


def _check_kind(kind: str) -> None:
  if kind not in ADVERSARIAL_KINDS:
    raise ValueError(
        f"Unknown adversarial loss kind {kind!r}; expected one of "
        f"{', '.join(ADVERSARIAL_KINDS)}")


def discriminator_loss(kind: str, real_logits, fake_logits) -> jnp.ndarray:
  """The discriminator loss of `kind` in {'wgan-gp', 'hinge', 'lsgan'}.

  For 'wgan-gp' this is the Wasserstein part only; add
  lambda * `gradient_penalty` to it.

  Args:
    kind: the adversarial loss name.
    real_logits: discriminator outputs on real data, or (hinge, lsgan) a
      list of patch maps, one per sub-discriminator: the loss is then the
      mean over sub-discriminators of each one's patch-wise loss.
    fake_logits: discriminator outputs on generated data (the same form).

  Returns:
    Scalar loss to minimise.

  Raises:
    ValueError: naming an unknown kind, or logits of mismatched forms.
  """
  _check_kind(kind)
  if _is_map_list(real_logits, fake_logits, kind):
    return _mean_over_maps(
        lambda r, f: discriminator_loss(kind, r, f), real_logits, fake_logits)
  if kind == "wgan-gp":
    return wgan_discriminator_loss(real_logits, fake_logits)
  if kind == "hinge":
    return hinge_discriminator_loss(real_logits, fake_logits)
  return least_squares_discriminator_loss(real_logits, fake_logits)


def generator_loss(kind: str, fake_logits) -> jnp.ndarray:
  """The generator loss of `kind` in {'wgan-gp', 'hinge', 'lsgan'}.

  Args:
    kind: the adversarial loss name.
    fake_logits: discriminator outputs on generated data, or (hinge, lsgan)
      a list of patch maps (see `discriminator_loss`).

  Returns:
    Scalar loss to minimise.

  Raises:
    ValueError: naming an unknown kind.
  """
  _check_kind(kind)
  if _is_map_list(fake_logits, fake_logits, kind):
    return _mean_over_maps(lambda f: generator_loss(kind, f), fake_logits)
  if kind == "wgan-gp":
    return wgan_generator_loss(fake_logits)
  if kind == "hinge":
    return hinge_generator_loss(fake_logits)
  return least_squares_generator_loss(fake_logits)


def feature_matching_loss(real_features: Sequence[jnp.ndarray],
                          fake_features: Sequence[jnp.ndarray]) -> jnp.ndarray:
  """Mean over layers of mean |real - fake| discriminator activations.

  Real activations are constants (stop_gradient): the loss trains only the
  generator, through the fake activations.

  Args:
    real_features: per-layer activations on real audio.
    fake_features: the same layers on generated audio.

  Returns:
    Scalar loss.
  """
  if len(real_features) != len(fake_features) or not real_features:
    raise ValueError(
        f"feature_matching_loss needs equally many (>0) layers, got "
        f"{len(real_features)} real and {len(fake_features)} fake")
  per_layer = []
  for index, (real, fake) in enumerate(zip(real_features, fake_features)):
    if real.shape != fake.shape:
      raise ValueError(
          f"feature_matching_loss: layer {index} real shape {real.shape} "
          f"does not match fake shape {fake.shape}")
    per_layer.append(jnp.mean(jnp.abs(jax.lax.stop_gradient(real) - fake)))
  return sum(per_layer) / len(per_layer)


# --- Regularisers -----------------------------------------------------------


def weight_decay(params: Any) -> jnp.ndarray:
  """0.5 * sum of squares of the kernel-like leaves (ndim >= 2).

  Biases, norm scales and other vectors are not decayed.

  Args:
    params: a parameter pytree.

  Returns:
    Scalar.
  """
  kernels = [leaf for leaf in jax.tree_util.tree_leaves(params)
             if jnp.ndim(leaf) >= 2]
  if not kernels:
    return jnp.zeros((), jnp.float32)
  return 0.5 * sum(jnp.sum(jnp.square(k)) for k in kernels)


def latent_l2(z: jnp.ndarray) -> jnp.ndarray:
  """Mean over the batch of 0.5 ||z_i||^2 (summed over non-batch axes).

  Equals `gaussian_kl(z, 0)` up to a constant: the KL of N(z, 1) to N(0, 1).

  Args:
    z: [B, ...] latent codes.

  Returns:
    Scalar.
  """
  z = jnp.asarray(z)
  return 0.5 * jnp.mean(jnp.sum(jnp.square(z.reshape(z.shape[0], -1)), -1))


def mode_seeking_loss(outputs: jnp.ndarray, latents: jnp.ndarray,
                      eps: float = 1e-5) -> Tuple[jnp.ndarray, jnp.ndarray]:
  """Mode seeking (Mao et al., 2019): 1 / (d(G(z1), G(z2)) / d(z1, z2) + eps).

  The batch's first half is paired with its second half; d is the mean
  absolute difference over each half's elements, as the paper's code
  computes it. Minimising the loss pushes apart the outputs of different
  latents, against a generator that maps many of them to one mode.

  Args:
    outputs: [B, ...] generator outputs, B even.
    latents: [B, ...] the latents they came from.
    eps: keeps the loss finite when the outputs coincide.

  Returns:
    (loss, ratio): scalars; ratio is d(outputs) / d(latents).

  Raises:
    ValueError: for an odd or mismatched batch.
  """
  batch = outputs.shape[0]
  if batch % 2 or latents.shape[0] != batch:
    raise ValueError(
        f"mode_seeking_loss needs an even batch of outputs and as many "
        f"latents, got {outputs.shape[0]} outputs and {latents.shape[0]} "
        f"latents")
  half = batch // 2
  output_distance = jnp.mean(jnp.abs(outputs[:half] - outputs[half:]))
  latent_distance = jnp.mean(jnp.abs(latents[:half] - latents[half:]))
  ratio = output_distance / latent_distance
  return 1.0 / (ratio + eps), ratio


def frame_loudness_db(audio: jnp.ndarray, frame_length: int,
                      floor_db: float = -70.0) -> jnp.ndarray:
  """dB RMS against full scale of non-overlapping frames, floored.

  Args:
    audio: [B, samples, C]; a last partial frame is dropped.
    frame_length: samples per frame.
    floor_db: the level of digital silence (keeps the log finite).

  Returns:
    [B, frames, C].

  Raises:
    ValueError: for clips shorter than one frame.
  """
  batch, samples, channels = audio.shape
  frames = samples // frame_length
  if frames < 1:
    raise ValueError(f"frame_loudness_db: clips of {samples} samples are "
                     f"shorter than one frame of {frame_length}")
  framed = audio[:, :frames * frame_length].reshape(
      batch, frames, frame_length, channels)
  mean_square = jnp.mean(jnp.square(framed), axis=2)
  return 10.0 * jnp.log10(mean_square + 10.0 ** (floor_db / 10.0))


def loudness_distance(generated: jnp.ndarray, real: jnp.ndarray,
                      frame_length: int, floor_db: float = -70.0
                      ) -> jnp.ndarray:
  """Wasserstein-1 distance (dB) between two batches' frame loudnesses.

  The loudness of every non-overlapping frame of every clip
  (`frame_loudness_db`) makes a one-dimensional distribution per batch;
  with as many frames on each side the distance is the mean absolute
  difference of the sorted values, and otherwise the real batch's sorted
  values are read at the generated batch's quantiles. Matching it keeps
  the generated clips' share of silence, speech and noise the real one's.

  Args:
    generated: [B, samples, C].
    real: [B', samples, C].
    frame_length: samples per frame.
    floor_db: see `frame_loudness_db`.

  Returns:
    Scalar.

  Raises:
    ValueError: for batches whose clips differ in length or channels.
  """
  if generated.shape[1:] != real.shape[1:]:
    raise ValueError(
        f"loudness_distance needs clips of one shape, got generated "
        f"{generated.shape[1:]} and real {real.shape[1:]}")
  generated_db = jnp.sort(
      frame_loudness_db(generated, frame_length, floor_db).ravel())
  real_db = jnp.sort(frame_loudness_db(real, frame_length, floor_db).ravel())
  if real_db.shape != generated_db.shape:
    count = generated_db.shape[0]
    at = ((np.arange(count) + 0.5) * real_db.shape[0] / count).astype(int)
    real_db = real_db[at]
  return jnp.mean(jnp.abs(generated_db - real_db))


def gaussian_kl(mean: jnp.ndarray, log_variance: jnp.ndarray) -> jnp.ndarray:
  """KL(N(mean, exp(log_variance)) || N(0, 1)), summed over latent axes.

  Args:
    mean: [B, ...] posterior means.
    log_variance: [B, ...] posterior log variances, same shape.

  Returns:
    Scalar mean over the batch.
  """
  mean, log_variance = jnp.asarray(mean), jnp.asarray(log_variance)
  if mean.shape != log_variance.shape:
    raise ValueError(
        f"gaussian_kl: mean shape {mean.shape} does not match log_variance "
        f"shape {log_variance.shape}")
  per_unit = 0.5 * (jnp.exp(log_variance) + mean ** 2 - 1.0 - log_variance)
  return jnp.mean(jnp.sum(per_unit.reshape(mean.shape[0], -1), axis=-1))


# --- The stage objective ----------------------------------------------------

Term = Union[jnp.ndarray, float, Callable[[], jnp.ndarray]]


def weighted_sum(terms: Mapping[str, Term], weights: Mapping[str, float]
                 ) -> Tuple[jnp.ndarray, Dict[str, jnp.ndarray]]:
  """The stage objective: sum of weights[name] * terms[name].

  A term with weight 0 (or no weight) is left out of the total, so a NaN in
  it cannot leak in; a term given as a zero-argument callable is only called
  when its weight is non-zero. Weights must be Python numbers.

  Args:
    terms: name -> scalar, or name -> callable returning a scalar.
    weights: name -> weight (a dict or ml_collections.ConfigDict).

  Returns:
    (total, values): the scalar total, and name -> unweighted value of every
    term that was computed (for logging).

  Raises:
    ValueError: for a weight naming a term that is not in `terms`, or a
      weighted objective with no term at all.
  """
  weights = dict(weights.items())
  unknown = sorted(set(weights) - set(terms))
  if unknown:
    raise ValueError(
        f"Loss weights name unknown term(s) {', '.join(unknown)}; available "
        f"terms: {', '.join(sorted(terms))}")
  total, values, used = jnp.zeros((), jnp.float32), {}, 0
  for name, term in terms.items():
    weight = weights.get(name, 0.0)
    skipped = isinstance(weight, (int, float)) and weight == 0
    if callable(term):
      if skipped:
        continue
      term = term()
    values[name] = jnp.asarray(term)
    if not skipped:
      total = total + weight * values[name]
      used += 1
  if not used:
    raise ValueError(
        f"weighted_sum: every term has weight 0 (terms: "
        f"{', '.join(sorted(terms))}; weights: {weights})")
  return total, values


def group_totals(values: Mapping[str, jnp.ndarray],
                 weights: Mapping[str, float]) -> Dict[str, jnp.ndarray]:
  """Weighted subtotals of the three `TERM_GROUPS`, for logging.

  Args:
    values: the computed term values returned by `weighted_sum`.
    weights: the same weights.

  Returns:
    dict(reconstruction=, regularisation=, adversarial=) of scalars; a term
    in no group counts as reconstruction.
  """
  weights = dict(weights.items())
  totals = {group: jnp.zeros((), jnp.float32) for group in TERM_GROUPS}
  for name, value in values.items():
    weight = weights.get(name, 0.0)
    if isinstance(weight, (int, float)) and weight == 0:
      continue
    group = next((g for g, names in TERM_GROUPS.items() if name in names),
                 "reconstruction")
    totals[group] = totals[group] + weight * value
  return totals
