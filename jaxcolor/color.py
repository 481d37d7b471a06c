"""sRGB <-> CIE L*a*b* (D65, 2-degree observer) and the network's [0, 1] scaling.

The functions accept numpy or JAX arrays with channels last and compute with the
matching library, so the input pipeline (numpy, in worker processes) and the
jitted model code share one implementation. Constants follow CIE 15 / sRGB
(IEC 61966-2-1) exactly as scikit-image uses them.
"""
import math

from jax import lax
import jax.numpy as jnp
import numpy as np

# The two ranges the network's inputs and outputs are scaled by: L* in [0, 100]
# maps to [0, 1]; a* and b* in [-AB_MAX, AB_MAX] map to [0, 1] (0.5 is grey).
L_MAX = 100.0
AB_MAX = 128.0
# Colour strength: 0 is grey, 1 the model's colours, MAX_STRENGTH twice as saturated.
MAX_STRENGTH = 2.0


def parse_strength(text):
  """A colour strength given as text -> float in [0, MAX_STRENGTH]; ValueError
  (saying the range) otherwise. infer.py, evaluate.py and the web API use it."""
  try:
    strength = float(text)
  except ValueError:
    strength = math.nan
  if not 0 <= strength <= MAX_STRENGTH:
    raise ValueError(f'{str(text)[:20]!r}: must be a number from 0 to {MAX_STRENGTH:g}')
  return strength

_XYZ_FROM_RGB = np.array([[0.412453, 0.357580, 0.180423],
                          [0.212671, 0.715160, 0.072169],
                          [0.019334, 0.119193, 0.950227]])
_RGB_FROM_XYZ = np.linalg.inv(_XYZ_FROM_RGB)
_D65_WHITE = np.array([0.95047, 1.0, 1.08883])
_EPSILON = 0.008856  # (6/29)**3 as rounded by CIE
_KAPPA = 7.787       # (29/6)**2 / 3 as rounded by CIE


def _xp(x):
  return np if isinstance(x, (np.ndarray, np.generic)) else jnp


def _matmul(x, matrix):
  """x @ matrix; under JAX at full precision (GPU/TPU default to TF32 or bf16 passes)."""
  if _xp(x) is np:
    return x @ matrix
  return jnp.matmul(x, matrix, precision=lax.Precision.HIGHEST)


def rgb_to_lab(rgb):
  """sRGB in [0, 1], shape (..., 3) -> L*a*b*, L in [0, 100]."""
  xp = _xp(rgb)
  linear = xp.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
  xyz = _matmul(linear, (_XYZ_FROM_RGB.T / _D65_WHITE).astype(linear.dtype))
  f = xp.where(xyz > _EPSILON, xp.cbrt(xp.maximum(xyz, _EPSILON)),
               _KAPPA * xyz + 16.0 / 116.0)
  fx, fy, fz = f[..., 0], f[..., 1], f[..., 2]
  return xp.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1)


def lab_to_rgb(lab):
  """L*a*b* (..., 3) -> sRGB in [0, 1]; colours outside the sRGB gamut are clipped."""
  xp = _xp(lab)
  fy = (lab[..., 0] + 16.0) / 116.0
  fx = fy + lab[..., 1] / 500.0
  fz = xp.maximum(fy - lab[..., 2] / 200.0, 0.0)  # negative Z has no colour
  f = xp.stack([fx, fy, fz], axis=-1)
  xyz = xp.where(f > 0.2068966, f ** 3, (f - 16.0 / 116.0) / _KAPPA)
  linear = _matmul(xyz * _D65_WHITE.astype(xyz.dtype), _RGB_FROM_XYZ.T.astype(xyz.dtype))
  rgb = xp.where(linear > 0.0031308,
                 1.055 * xp.maximum(linear, 0.0031308) ** (1 / 2.4) - 0.055,
                 12.92 * linear)
  return xp.clip(rgb, 0.0, 1.0)


def normalize_l(l):
  """L* in [0, 100] -> network input in [0, 1]."""
  return l / L_MAX


def normalize_ab(ab):
  """a*b* in [-AB_MAX, AB_MAX] -> network target in [0, 1]."""
  return (ab + AB_MAX) / (2 * AB_MAX)


def denormalize_ab(ab01):
  """Network output in [0, 1] -> a*b*."""
  return ab01 * (2 * AB_MAX) - AB_MAX


def rgb_to_network(rgb):
  """sRGB in [0, 1] (..., 3) -> (L (..., 1), ab (..., 2)), both scaled to [0, 1]."""
  lab = rgb_to_lab(rgb)
  return normalize_l(lab[..., :1]), normalize_ab(lab[..., 1:])


def network_to_rgb(l01, ab01):
  """(L (..., 1), ab (..., 2)) in [0, 1] -> sRGB in [0, 1]."""
  xp = _xp(l01)
  lab = xp.concatenate([l01 * L_MAX, denormalize_ab(ab01)], axis=-1)
  return lab_to_rgb(lab)


def with_strength(l01_HxW, ab_HxWx2, strength):
  """L* scaled to [0, 1] and a*b* -> sRGB in [0, 1] with a*b* times `strength`
  (0: grey, 1: unchanged, 2: twice as saturated), clipped to the gamut.

  The lightness is kept: only the chrominance is scaled. jaxcolor/apps/web/static/app.js
  computes the same for the web page's strength control.
  """
  xp = _xp(l01_HxW)
  return lab_to_rgb(xp.concatenate([l01_HxW[..., None] * L_MAX, ab_HxWx2 * strength], axis=-1))


def grey_rgb(l01):
  """L* scaled to [0, 1] (any shape) -> the neutral sRGB grey (..., 3) of that
  lightness, with R = G = B exactly."""
  xp = _xp(l01)
  fy = (l01 * L_MAX + 16.0) / 116.0
  luminance = xp.where(fy > 0.2068966, fy ** 3, (fy - 16.0 / 116.0) / _KAPPA)
  value = xp.where(luminance > 0.0031308,
                   1.055 * xp.maximum(luminance, 0.0031308) ** (1 / 2.4) - 0.055,
                   12.92 * luminance)
  return xp.repeat(xp.clip(value, 0.0, 1.0)[..., None], 3, axis=-1)
