"""A bounded number of compiled programs, whatever photo sizes arrive.

XLA compiles one program per input shape: a few seconds each, kept in memory for
as long as the program is. Inference therefore pads every photo up to a bucket,
each side to the next size of `LADDER` (multiples of 512 above it), and runs the
bucket's program; the network zeroes everything beyond the photo before each
convolution (`model.Colorizer.local_path`'s `valid`), so the photo's pixels come
out as at its own size, up to float32 rounding. `Programs` keeps at most
`capacity` of them and drops the least recently used.

The global path's G x G rescale of the photo is two matrix products with weights
computed here (`resize_weights`) for the photo's own size, zero over the padding:
it runs in a small program per bucket, not per size, and gives what
jax.image.resize gives. The same program makes the labels' view of their own
when a model has one (encoder.label_size).
"""
import bisect
import collections
import concurrent.futures
import threading

import jax
import jax.numpy as jnp
import numpy as np

from jaxcolor import model as model_lib

# Bucket sides: 224 (the paper's size) and the powers of two are on it, so the
# sizes benchmarks time run unpadded; consecutive sides differ by at most 25% from 128 up.
LADDER = (64, 96, 128, 160, 192, 224, 256, 320, 384, 448, 512, 640, 768, 896,
          1024, 1280, 1536, 1792, 2048)
LARGE_STEP = 512  # above the ladder: multiples of this
DEFAULT_CAPACITY = 128  # compiled programs kept (a few MB each)


def bucket(length):
  """The bucket side for an image side of `length` pixels (>= length)."""
  if length > LADDER[-1]:
    return -(-length // LARGE_STEP) * LARGE_STEP
  return LADDER[bisect.bisect_left(LADDER, length)]


def padded_side(length):
  """The side the network reads for `length` pixels: the next multiple of its stride."""
  return length + -length % model_lib.STRIDE


def pad(x_HxWxC):
  """(the bucket-size input, the valid (rows, columns)): `x` (float32 H x W x C: L,
  then any hint planes) at the top left, L repeating its last row and column up to
  the next multiples of 8 (as inference.pad_to_stride does), zeros elsewhere."""
  height, width, channels = x_HxWxC.shape
  valid = padded_side(height), padded_side(width)
  out = np.zeros((bucket(valid[0]), bucket(valid[1]), channels), np.float32)
  out[:height, :width] = x_HxWxC
  out[height:valid[0], :width, 0] = x_HxWxC[-1:, :, 0]
  out[:valid[0], width:valid[1], 0] = out[:valid[0], width - 1:width, 0]
  return out, np.asarray(valid, np.int32)


def common(max_side=LADDER[-1], spread=2):
  """The buckets a server compiles when it starts: every pair of ladder sides up to
  `max_side` at most `spread` steps apart (squares and the usual photo shapes,
  4:3 and 3:2 among them), smallest first."""
  sides = [side for side in LADDER if side <= max_side]
  pairs = [(a, b) for i, a in enumerate(sides) for b in sides[max(0, i - spread):i + spread + 1]]
  return sorted(pairs, key=lambda pair: (pair[0] * pair[1], pair))


def resize_weights(length, size, padded=None):
  """size x `padded` (default `length`) float32 matrix of jax.image.resize's
  antialiased linear rescale of one axis from `length` to `size` samples (its
  formula); the columns beyond `length` are zero."""
  scale = size / length
  kernel_scale = max(1 / scale, 1.0)
  sample = (np.arange(size, dtype=np.float64) + 0.5) / scale - 0.5
  x = np.abs(sample[None, :] - np.arange(length, dtype=np.float64)[:, None]) / kernel_scale
  weights = np.maximum(0.0, 1.0 - x)
  total = weights.sum(axis=0, keepdims=True)
  weights = np.where(np.abs(total) > 1000 * np.finfo(np.float32).eps,
                     weights / np.where(total != 0, total, 1), 0)
  inside = (sample >= -0.5) & (sample <= length - 0.5)
  weights = np.where(inside[None, :], weights, 0).T.astype(np.float32)
  return np.pad(weights, ((0, 0), (0, (padded or length) - length)))


def rescale_program(bucket, size, channels, label_size=None):
  """The compiled program that rescales an image padded to `bucket` (height, width; x
  `channels`) to size x size: (x, weights, label_weights) -> (x rescaled by weights,
  the (rows, columns) resize_weights of its own size; with `label_size`, its L
  rescaled to label_size x label_size by label_weights, else None)."""
  def rescale(x_HxWxC, rows_GxH, cols_GxW):
    x = jnp.einsum('kw,hwc->hkc', cols_GxW, x_HxWxC, precision='highest')
    return jnp.einsum('gh,hkc->gkc', rows_GxH, x, precision='highest')

  def both(x_HxWxC, weights, label_weights):
    label = None if label_weights is None else rescale(x_HxWxC[..., :1], *label_weights)
    return rescale(x_HxWxC, *weights), label
  spec = lambda *shape: jax.ShapeDtypeStruct(shape, jnp.float32)
  weights = lambda side: (spec(side, bucket[0]), spec(side, bucket[1]))
  return jax.jit(both).lower(spec(*bucket, channels), weights(size),
                             weights(label_size) if label_size else None).compile()


class Programs:
  """Compiled programs by key: `build(key)` makes one the first time it is asked for;
  at most `capacity` are kept, the least recently used dropped first. Thread-safe:
  one program is built at a time, and one being built is built once (whoever else
  asks waits for it). Dropping a program also clears JAX's tracing caches, whose
  per-shape entries would otherwise grow with every size ever seen."""

  def __init__(self, build, capacity=DEFAULT_CAPACITY):
    if capacity < 1:
      raise ValueError(f'capacity {capacity}: must be at least 1')
    self.build, self.capacity = build, capacity
    self.compiles = self.evictions = 0
    self._kept = collections.OrderedDict()
    self._building = {}
    self._lock = threading.Lock()  # guards the two dicts
    self._build_lock = threading.Lock()  # one build at a time

  def __len__(self):
    return len(self._kept)

  def __contains__(self, key):
    return key in self._kept

  def get(self, key):
    """The program for `key`, built now if it is not kept."""
    with self._lock:
      if key in self._kept:
        self._kept.move_to_end(key)
        return self._kept[key]
      pending = self._building.get(key)
      builder = pending is None
      if builder:
        pending = self._building[key] = concurrent.futures.Future()
    if not builder:
      return pending.result()
    with self._build_lock:
      try:
        program = self.build(key)
      except BaseException as e:
        with self._lock:
          del self._building[key]
        pending.set_exception(e)
        raise
      with self._lock:
        del self._building[key]
        self._kept[key] = program
        self.compiles += 1
        evicted = len(self._kept) - self.capacity
        for _ in range(evicted):
          self._kept.popitem(last=False)
        self.evictions += max(0, evicted)
      if evicted > 0:
        jax.clear_caches()
    pending.set_result(program)
    return program
