"""Colorizing a stream of video frames with colours that hold still within a shot.

Every frame goes through the network as a photo would (inference.colorize_l);
with `stability` above 0 two things change (0 gives the frame-by-frame result):
- The global features, which set a frame's overall colours, are a running mean
  over the shot so far (an exponential one after its first ~20 frames), so a
  shot keeps one mood while the picture drifts. It restarts at every cut.
- The chrominance is filtered over time where the lightness stays put: a pixel
  keeps part of its previous colour in proportion to how little its (grain-
  blurred, brightness-compensated) lightness changed, so still areas stop
  flickering and moving ones keep their own colour, without ghosts.
Cuts are found from lightness alone: consecutive frames whose small
standardised thumbnails no longer correlate start a new shot.

Frames run in batches of a fixed size through one jitted step, compiled once
per resolution; the recursions carry from batch to batch, so memory does not
grow with the video's length.
"""
import functools
import itertools
from typing import NamedTuple

import jax
from jax import lax
import jax.numpy as jnp
import numpy as np

from jaxcolor import bins
from jaxcolor import color
from jaxcolor import inference

DEFAULT_STABILITY = 1.0
# At stability 1: the weight of the shot's past in its global features, once
# the shot is 1 / (1 - GLOBAL_MEMORY) = 20 frames old (a plain mean before),
GLOBAL_MEMORY = 0.95
# and the weight of a still pixel's previous colour.
AB_MEMORY = 0.9
# Lightness change (L*, 0-100) of the blurred half-resolution picture at which
# a pixel counts as moving: its colour memory falls to e^-1 of the still one's.
# The test clips' film grain (3 L*) and flicker move this measure by about 1.
STILL_LIGHTNESS = 5.0
# A frame starts a new shot when its thumbnail correlates less than this with
# the previous frame's: unrelated pictures are near 0, zooms near 0.9, and a pan
# across the picture in half a second (24 pixels a frame at 854x480) above 0.45.
CUT_CORRELATION = 0.3
THUMBNAIL = 16
# Frames per batch: as many as keep one batch under this many pixels, at most 8.
BATCH_PIXELS = 8 * 854 * 480
MAX_BATCH = 8


class State(NamedTuple):
  """What one batch hands the next (Hp, Wp: the frame padded to multiples of 8)."""
  thumbnail: jax.Array   # T x T standardised lightness thumbnail of the last frame
  global_256: jax.Array  # D: the current shot's smoothed global features, float32
  count: jax.Array       # frames of the current shot so far; 0 before the first frame
  l_half: jax.Array      # Hp/2 x Wp/2 blurred L* of the last frame
  ab_half: jax.Array     # Hp/2 x Wp/2 x 2 last output chrominance, network scale [0, 1]


def batch_size_for(height, width):
  return int(np.clip(BATCH_PIXELS // (height * width), 1, MAX_BATCH))


def thumbnail(l_HxWx1):
  """T x T antialiased thumbnail, standardised (zero mean, unit deviation), so
  brightness and contrast flicker leave it unchanged; near 0 everywhere for a
  frame without contrast (a deviation well under 1 L*: black, a fade)."""
  small = jax.image.resize(l_HxWx1[..., 0], (THUMBNAIL, THUMBNAIL), 'linear', antialias=True)
  return (small - small.mean()) / (small.std() + 0.01)


def find_cuts(last_thumbnail, thumbnails_BxTxT, first):
  """Whether each frame starts a shot: its correlation with the frame before
  is below CUT_CORRELATION, unless neither has contrast (black frames are one
  shot). `first`: the batch starts the video."""
  before = jnp.concatenate([last_thumbnail[None], thumbnails_BxTxT[:-1]])
  correlation = (before * thumbnails_BxTxT).mean(axis=(1, 2))
  contrast = (before ** 2).mean(axis=(1, 2)) + (thumbnails_BxTxT ** 2).mean(axis=(1, 2))
  cuts = (correlation < CUT_CORRELATION) & (contrast > 0.5)
  return cuts.at[0].set(cuts[0] | first)


def smooth_over_shots(global_BxD, cuts_B, state, stability):
  """Running mean of the global features within each shot -> (B x D, last, count)."""
  floor = 1.0 - stability * GLOBAL_MEMORY

  def one(carry, frame):
    mean, count = carry
    features, cut = frame
    count = jnp.where(cut, 0.0, count)
    rate = jnp.maximum(1.0 / (count + 1.0), floor)  # 1 at a cut: the frame's own
    mean = (1.0 - rate) * mean + rate * features
    return (mean, count + 1.0), mean

  (last, count), smoothed = lax.scan(one, (state.global_256, state.count), (global_BxD, cuts_B))
  return smoothed, last, count


def blurred_half(local_HpxWpx1):
  """L* at half resolution, box-blurred over 3 x 3 (6 x 6 input pixels), which
  averages film grain away: Hp/2 x Wp/2."""
  l = local_HpxWpx1[..., 0] * color.L_MAX
  height, width = l.shape
  half = l.reshape(height // 2, 2, width // 2, 2).mean(axis=(1, 3))
  padded = jnp.pad(half, 1, mode='edge')
  return lax.reduce_window(padded, 0.0, lax.add, (3, 3), (1, 1), 'VALID') / 9.0


def still_weight(l_before, l_now):
  """Per pixel in (0, 1]: 1 where the lightness did not change once the global
  brightness and contrast change (flicker) is taken out, near 0 where it moved."""
  gain = l_now.std() / (l_before.std() + 1e-3)
  expected = l_now.mean() + gain * (l_before - l_before.mean())
  change = jnp.abs(l_now - expected)
  return jnp.exp(-(change / STILL_LIGHTNESS) ** 2)


def filter_still(ab_half_Bx, l_half_Bx, cuts_B, state, stability):
  """Recursive temporal filter of the chrominance where the picture is still,
  restarted at cuts -> (filtered B x Hp/2 x Wp/2 x 2, its last frame, last L)."""
  def one(carry, frame):
    ab_before, l_before = carry
    ab, l_now, cut = frame
    memory = stability * AB_MEMORY * jnp.where(cut, 0.0, still_weight(l_before, l_now))
    ab = ab + memory[..., None] * (ab_before - ab)
    return (ab, l_now), ab

  (ab_last, l_last), filtered = lax.scan(one, (state.ab_half, state.l_half),
                                         (ab_half_Bx, l_half_Bx, cuts_B))
  return filtered, ab_last, l_last


class VideoColorizer:
  """A loaded model colorizing frames in order; see the module docstring."""

  def __init__(self, predictor, batch_size=None):
    """`predictor`: an inference.Predictor (its model and weights are used);
    `batch_size`: frames per step, None picks one per resolution."""
    self.model, self.variables = predictor.model, predictor.variables
    self.global_size = predictor.global_size
    self.temperature = predictor.temperature  # a bins model's (bins.to_chrominance)
    self.batch_size = batch_size
    self.trace_count = 0  # how often the step was traced (tests read it)
    self._step = jax.jit(self._step_traced)

  def initial_state(self, height, width):
    """The state before a video's first frame, for frames of this size."""
    padded = inference.pad_to_stride(jnp.zeros((height, width, 1)))
    l_global = jnp.zeros((1, self.global_size, self.global_size, 1))
    features = jax.eval_shape(
        functools.partial(self.model.apply, method='global_features'), self.variables,
        inference.without_hints(self.model, l_global))[1]
    half = (padded.shape[0] // 2, padded.shape[1] // 2)
    return State(thumbnail=jnp.zeros((THUMBNAIL, THUMBNAIL)),
                 global_256=jnp.zeros(features.shape[1:], jnp.float32),
                 count=jnp.zeros(()), l_half=jnp.zeros(half),
                 ab_half=jnp.full((*half, 2), 0.5, jnp.float32))

  def _step_traced(self, variables, state, rgb_BxHxWx3, stability, strength):
    """uint8 sRGB frames -> (next State, colorized uint8 frames, shot starts B)."""
    self.trace_count += 1
    l_BxHxWx1 = color.rgb_to_network(rgb_BxHxWx3.astype(jnp.float32) / 255.0)[0]
    cuts = find_cuts(state.thumbnail, jax.vmap(thumbnail)(l_BxHxWx1), state.count == 0)
    to_global = functools.partial(inference.resize_to_square, size=self.global_size)
    _, global_256 = self.model.apply(
        variables, inference.without_hints(self.model, jax.vmap(to_global)(l_BxHxWx1)),
        method='global_features')
    # A running mean in the compute dtype (bfloat16) would lose small steps.
    shared, global_last, count = smooth_over_shots(global_256.astype(jnp.float32), cuts, state,
                                                   stability)
    local = jax.vmap(inference.pad_to_stride)(l_BxHxWx1)
    ab_half = bins.to_chrominance(
        self.model.apply(variables, inference.without_hints(self.model, local), shared,
                         temperature=self.temperature, method='local_path'), self.temperature)
    ab_half, ab_last, l_last = filter_still(ab_half.astype(jnp.float32),
                                            jax.vmap(blurred_half)(local), cuts, state,
                                            stability)
    height, width = l_BxHxWx1.shape[1:3]
    ab01 = jax.vmap(inference.full_chrominance, (0, None, None))(ab_half, height, width)
    rgb = color.with_strength(l_BxHxWx1[..., 0], color.denormalize_ab(ab01), strength)
    frames = (jnp.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(jnp.uint8)  # as images.to_uint8
    thumbnail_last = thumbnail(l_BxHxWx1[-1])
    return State(thumbnail_last, global_last, count, l_last, ab_last), frames, cuts

  def colorize(self, frames, stability=DEFAULT_STABILITY, strength=1.0):
    """Iterable of H x W x 3 uint8 sRGB frames (all one size) -> iterator of
    (colorized frame, whether it starts a shot), in order. `stability` in
    [0, 1]: 0 colorizes every frame on its own; `strength` scales the colours
    as for photos (color.with_strength). Changing either does not recompile.

    Frames are read one batch ahead of what is handed back, so the next batch
    computes while the caller writes the last one.
    """
    if not 0.0 <= stability <= 1.0:
      raise ValueError(f'stability must be in [0, 1], not {stability}')
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
      return
    height, width, _ = first.shape
    size = self.batch_size or batch_size_for(height, width)
    state, pending = self.initial_state(height, width), None
    chunks = iter(lambda: list(itertools.islice(frames, size)), [])
    for chunk in itertools.chain([[first, *itertools.islice(frames, size - 1)]], chunks):
      batch = np.stack(chunk + [chunk[-1]] * (size - len(chunk)))  # the last batch padded
      state, rgb, cuts = self._step(self.variables, state, batch, stability, strength)
      if pending is not None:
        yield from _unbatch(*pending)
      pending = rgb, cuts, len(chunk)
    if pending is not None:
      yield from _unbatch(*pending)


def _unbatch(rgb, cuts, count):
  rgb, cuts = jax.device_get((rgb, cuts))
  for i in range(count):
    yield rgb[i], bool(cuts[i])
