"""The local path tile by tile, for images larger than a tile, and one pixel's
window of it.

Every tile sees `model.LOCAL_REACH` pixels of context beyond its core on each
side, which is all its outputs depend on, so the result is the untiled one while
peak memory stays that of one tile. By the same token one pixel's output needs
only the window of that reach around it (`window`).
"""
from jax import lax
import jax.numpy as jnp

from jaxcolor import bins
from jaxcolor import model as model_lib


def layout(length, tile, reach=model_lib.LOCAL_REACH, align=model_lib.STRIDE):
  """Cuts [0, length) into equal cores of at most `tile` (multiples of `align`).

  Returns (core, window, [(window_start, core_start)]): each window covers its
  core plus `reach` on both sides, clipped to [0, length); the last core ends at
  `length` and may overlap the one before (both compute the same values).
  """
  if length <= tile:
    return length, length, [(0, 0)]
  count = -(-length // tile)
  core = -(-length // count)
  core += -core % align
  window = min(length, core + 2 * reach)
  starts = []
  for core_start in range(0, length, core):
    core_start = min(core_start, length - core)
    starts.append((min(max(core_start - reach, 0), length - window), core_start))
  return core, window, starts


def local_path(model, variables, local_HxWxC, global_256, tile, temperature, valid=None):
  """The local path's H/2 x W/2 chrominance, one fixed-size tile at a time; with
  `valid` (padded input: see model.Colorizer.local_path), each tile's share of it."""
  height, width, channels = local_HxWxC.shape
  core_h, window_h, rows = layout(height, tile)
  core_w, window_w, cols = layout(width, tile)
  table = jnp.asarray([(rw, rc, cw, cc) for rw, rc in rows for cw, cc in cols], jnp.int32)

  def one_tile(i, ab_half):
    row_window, row_core, col_window, col_core = table[i]
    window = lax.dynamic_slice(local_HxWxC, (row_window, col_window, 0),
                               (window_h, window_w, channels))
    window_valid = None if valid is None else valid - jnp.stack([row_window, col_window])
    output = model.apply(variables, window[None], global_256, valid=window_valid,
                         temperature=temperature, method='local_path')
    ab = bins.to_chrominance(output, temperature)[0]
    core = lax.dynamic_slice(ab, ((row_core - row_window) // 2, (col_core - col_window) // 2, 0),
                             (core_h // 2, core_w // 2, 2))
    return lax.dynamic_update_slice(ab_half, core.astype(ab_half.dtype),
                                    (row_core // 2, col_core // 2, 0))

  ab_half = jnp.zeros((height // 2, width // 2, 2), jnp.float32)
  return lax.fori_loop(0, len(table), one_tile, ab_half)


def window(x_HxWxC, row, col, reach=model_lib.LOCAL_REACH, align=model_lib.STRIDE):
  """The part of `x` (H and W multiples of `align`) that the local path's output at
  pixel (row, col) depends on: at most (2 reach + align)^2, starting on the stride
  grid and clipped to the image, so its output there is the whole image's. `row` and
  `col` may be traced. Returns (window, its top-left corner: int32 [2])."""
  height, width, channels = x_HxWxC.shape
  sizes = [min(length, 2 * reach + align) for length in (height, width)]
  starts = [jnp.clip(point // align * align - reach, 0, length - size)
            for point, length, size in zip((row, col), (height, width), sizes)]
  return lax.dynamic_slice(x_HxWxC, (*starts, 0), (*sizes, channels)), jnp.stack(starts)
