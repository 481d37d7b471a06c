"""The training and evaluation math: pure functions of (state, batch).

Both steps run under a parallel map with axis `AXIS`: every device sees its
slice of the global batch, losses are normalised by global counts and
gradients summed, so N devices compute exactly the one-device step on the
whole batch. `parallel` wraps them in `jax.pmap`.
"""
import functools
from typing import Any

from flax.training import train_state
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxcolor import bins as bins_lib
from jaxcolor import color
from jaxcolor import encoder as encoder_lib
from jaxcolor import model as model_lib
from jaxcolor import ops
from jaxcolor.training import rarity

AXIS = 'batch'


class TrainState(train_state.TrainState):
  batch_stats: Any


def create_train_state(config, rng, kernels=None):
  """Freshly initialised parameters and Adadelta state for `config`; the step
  computes convolutions with `kernels` (`ops.KERNELS`; None: those for JAX's
  default backend, where `parallel` runs)."""
  model = model_lib.from_config(config.model, axis_name=AXIS,
                                kernels=kernels or ops.kernels_for())
  size = config.model.global_size
  variables = jax.jit(model.init, static_argnames='train')(
      rng, jnp.zeros((1, size, size, model.input_channels)), train=False)
  if model.encoder:
    variables = encoder_lib.with_pretrained(variables)
  tx = adadelta(config.learning_rate, rho=config.adadelta_rho, eps=config.adadelta_eps)
  return TrainState.create(apply_fn=model.apply, params=variables['params'], tx=tx,
                           batch_stats=variables['batch_stats'])


def adadelta(learning_rate, rho, eps):
  """`optax.adadelta(learning_rate, rho, eps)` in fewer passes over memory.

  Same state (so checkpoints are interchangeable) and the same update up to
  rounding, written so XLA fuses it: the squared update that E[dx^2] tracks is
  (E[dx^2] + eps) / (E[g^2] + eps) * g^2, which needs no second pass over the
  update, and the learning rate is folded in. optax's chain of three
  transformations took ~5 separate passes per parameter array, over 0.3 s of
  a 2 s step for the paper network on CPU.
  """
  base = optax.adadelta(learning_rate, rho=rho, eps=eps)

  def update(grads, state, params=None):
    del params
    decay, moments, scale = state

    def one(g, e_g, e_x):
      e_g = rho * e_g + (1 - rho) * g * g
      ratio = (e_x + eps) / (e_g + eps)
      return -learning_rate * jnp.sqrt(ratio) * g, e_g, rho * e_x + (1 - rho) * ratio * g * g

    out = jax.tree.map(one, grads, moments.e_g, moments.e_x)
    updates, e_g, e_x = jax.tree.transpose(jax.tree.structure(grads),
                                           jax.tree.structure((0, 0, 0)), out)
    return updates, (decay, optax.ScaleByAdaDeltaState(e_g=e_g, e_x=e_x), scale)

  return optax.GradientTransformation(base.init, update)


def network_input(batch):
  """What the network's local path reads: L, and the hint planes when the batch
  has them (a model with hints)."""
  if 'hints' in batch:
    return jnp.concatenate([batch['l'], batch['hints']], axis=-1)
  return batch['l']


def global_input(batch, size):
  """The global path's input: the batch's own whole-photo view ('l_global', with
  its hint planes), else the crop resized to size, or None (share the trunk) when
  crops are size x size."""
  if 'l_global' in batch:
    return batch['l_global']
  x = network_input(batch)
  b, s, _, c = x.shape
  if s == size:
    return None
  return jax.image.resize(x, (b, size, size, c), 'linear', antialias=True)


def half_resolution(ab_BxHxWx2):
  """2x2 average: the target at the network's output resolution."""
  b, h, w, c = ab_BxHxWx2.shape
  return ab_BxHxWx2.reshape(b, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


def _forward(state, params, batch, global_size, train):
  variables = {'params': params, 'batch_stats': state.batch_stats}
  l_global = global_input(batch, global_size)
  if train:
    return state.apply_fn(variables, network_input(batch), l_global, train=True,
                          mutable=['batch_stats'])
  return state.apply_fn(variables, network_input(batch), l_global, train=False), {}


def _loss_sums(output, logits, batch, weight_B, ab_weights=None):
  """Per-device sums of the colour loss, squared a*b* error and cross-entropy, and
  their counts.

  The colour loss is the squared a*b* error (the paper's head), or the
  cross-entropy against soft-encoded bins (`bins` head; its squared error is that
  of the distribution's mean, for comparison). The scene cross-entropy is against
  each example's target distribution (label_probs over label_ids: one class for
  hard labels, the teacher's top classes for soft ones); examples with all-zero
  probabilities have no label. With `ab_weights` (a `rarity.weights` table)
  each pixel's squared error, and a bins head's cross-entropy, is weighted by the
  rarity of its true colour.
  """
  target = half_resolution(batch['ab'])
  ab_half = bins_lib.to_chrominance(output, temperature=1.0)
  squared_BxHxWx2 = (ab_half - target) ** 2
  if ab_weights is not None:
    squared_BxHxWx2 *= rarity.pixel_weights(target, ab_weights)[..., None]
  squared = jnp.sum(weight_B[:, None, None, None] * squared_BxHxWx2)
  if output.shape[-1] == 2:
    colour, colour_count = squared, jnp.sum(weight_B) * target[0].size
  else:
    per_pixel = bins_lib.cross_entropy(output, color.denormalize_ab(target), mean=False)
    if ab_weights is not None:  # Zhang et al.'s class rebalancing
      per_pixel *= rarity.pixel_weights(target, ab_weights)
    colour = jnp.sum(weight_B[:, None, None] * per_pixel)
    colour_count = jnp.sum(weight_B) * per_pixel[0].size
  probs_BxK = batch['label_probs']
  labelled_B = weight_B * (jnp.sum(probs_BxK, -1) > 0)
  log_p_BxK = jnp.take_along_axis(jax.nn.log_softmax(logits), batch['label_ids'], axis=-1)
  xent = -jnp.sum(labelled_B[:, None] * probs_BxK * log_p_BxK)
  correct = jnp.sum(labelled_B * (jnp.argmax(logits, -1) == batch['label']))
  return {'colour': colour, 'colour_count': colour_count, 'squared': squared, 'xent': xent,
          'correct': correct, 'pixels': jnp.sum(weight_B) * target[0].size,
          'labelled': jnp.sum(labelled_B)}


def summarize(totals, alpha):
  """Means from summed counts (of one step, or of many eval batches)."""
  labelled = jnp.maximum(totals['labelled'], 1)
  means = {'mse': totals['squared'] / totals['pixels'], 'xent': totals['xent'] / labelled,
           'accuracy': totals['correct'] / labelled,
           'colour_loss': totals['colour'] / totals['colour_count']}
  means['loss'] = means['colour_loss'] + alpha * means['xent']
  if 'psnr' in totals:
    means['psnr'] = totals['psnr'] / totals['images']
  return means


def train_step(state, batch, *, alpha, global_size, ab_weights=None):
  """One Adadelta step on the colour loss (MSE of a*b*, or the bins' cross-entropy)
  + alpha * the scene cross-entropy (labelled examples only); the MSE weighted by
  colour rarity when `ab_weights` is given (for the bins' cross-entropy too)."""
  weight_B = jnp.ones(batch['l'].shape[0])

  def loss_fn(params):
    (output, logits), updates = _forward(state, params, batch, global_size, train=True)
    sums = _loss_sums(output, logits, batch, weight_B, ab_weights)
    # Normalised by global counts, so the psum of per-device gradients is the
    # gradient of the global-batch loss.
    count = jax.lax.psum(sums['colour_count'], AXIS)
    labelled = jnp.maximum(jax.lax.psum(sums['labelled'], AXIS), 1)
    loss = sums['colour'] / count + alpha * sums['xent'] / labelled
    return loss, (sums, updates['batch_stats'])

  (_, (sums, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  if jax.lax.axis_size(AXIS) > 1:  # XLA:CPU copies every gradient even for one device
    grads = jax.lax.psum(grads, AXIS)
  # BatchNorm already averages over AXIS; the pmean makes replicas bit-identical.
  state = state.apply_gradients(grads=grads,
                                batch_stats=jax.lax.pmean(batch_stats, AXIS))
  metrics = summarize(jax.lax.psum(sums, AXIS), alpha)
  metrics['grad_norm'] = optax.global_norm(grads)
  metrics['param_norm'] = optax.global_norm(state.params)  # of the updated weights
  return state, metrics


def eval_step(state, batch, *, alpha, global_size):
  """Summed loss terms and per-image sRGB PSNR, with running BatchNorm statistics.

  `batch['weight']` is 0 for padding examples that fill the last batch; pass
  the sums of many batches to `summarize`.
  """
  del alpha  # the same signature as train_step
  (output, logits), _ = _forward(state, state.params, batch, global_size, train=False)
  weight_B = batch['weight']
  sums = _loss_sums(output, logits, batch, weight_B)
  b, h, w, _ = batch['ab'].shape
  ab = jax.image.resize(bins_lib.to_chrominance(output, bins_lib.TEMPERATURE), (b, h, w, 2),
                        'linear')  # as inference does
  predicted = color.network_to_rgb(batch['l'], ab)
  truth = color.network_to_rgb(batch['l'], batch['ab'])
  mse_B = jnp.mean((predicted - truth) ** 2, axis=(1, 2, 3))
  psnr_B = 10 * jnp.log10(1.0 / jnp.maximum(mse_B, 1e-10))
  sums['psnr'] = jnp.sum(weight_B * psnr_B)
  sums['images'] = jnp.sum(weight_B)
  return jax.lax.psum(sums, AXIS)


def replicate(tree, devices=None):
  """One copy of `tree` per (local) device, placed as `parallel`'s outputs are.

  flax's jax_utils.replicate places arrays on a mesh axis of another name, so
  the first step's output state did not match its input and the second step
  traced and compiled the whole step again.
  """
  devices = devices or jax.local_devices()
  sharding = jax.sharding.NamedSharding(jax.sharding.Mesh(np.array(devices), (AXIS,)),
                                        jax.sharding.PartitionSpec(AXIS))
  return jax.device_put(
      jax.tree.map(lambda x: np.broadcast_to(x, (len(devices), *np.shape(x))), tree), sharding)


def parallel(step, config, donate=False, devices=None, **constants):
  """`step` pmapped over (local) devices with the config's (and other) constants bound."""
  bound = functools.partial(step, alpha=config.alpha, global_size=config.model.global_size,
                            **constants)
  return jax.pmap(bound, axis_name=AXIS, donate_argnums=(0,) if donate else (),
                  devices=devices)
