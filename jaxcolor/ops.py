"""Drop-in replacements for lax ops whose XLA:CPU gradients are slow.

`conv_general_dilated` is `lax.conv_general_dilated` with one change: a 3x3,
stride-2, padding-1 NHWC convolution (the network's downsampling layers) gets
its input gradient from four small stride-1 convolutions, one per output
phase, instead of XLA's input-dilated ("base-dilated") convolution, which
multiplies by the zeros it inserts and ran up to 4x slower than the forward
pass in a training step's profile. Forward pass and weight gradient are XLA's.
"""
import jax
from jax import lax
import jax.numpy as jnp

_NHWC = lax.ConvDimensionNumbers(lhs_spec=(0, 3, 1, 2), rhs_spec=(3, 2, 0, 1),
                                 out_spec=(0, 3, 1, 2))


def _conv(x, w, stride):
  return lax.conv_general_dilated(x, w, (stride, stride), ((1, 1), (1, 1)),
                                  dimension_numbers=_NHWC)


@jax.custom_vjp
def conv3x3_stride2(x_BxHxWxC, w_3x3xCxK):
  """3x3 convolution, stride 2, zero padding 1 (NHWC / HWIO)."""
  return _conv(x_BxHxWxC, w_3x3xCxK, 2)


def _forward(x, w):
  return _conv(x, w, 2), (x, w)


def input_gradient_stride2(g_BxHoxWoxK, w_3x3xCxK, height, width):
  """d(loss)/dx of `conv3x3_stride2` given the output gradient g.

  Output row i reads input rows 2i-1, 2i, 2i+1 with kernel rows 0, 1, 2, so
  input row 2m gets g[m] through kernel row 1 and row 2m+1 gets g[m] through
  row 2 and g[m+1] through row 0; the same holds for columns. Each of the four
  (row, column) parities is a stride-1 convolution of g with 1x1, 1x2, 2x1 or
  2x2 taps of the kernel; the results are interleaved.
  """
  b, ho, wo, _ = g_BxHoxWoxK.shape
  w_t = jnp.swapaxes(w_3x3xCxK, 2, 3)          # 3 x 3 x K x C
  g = jnp.pad(g_BxHoxWoxK, ((0, 0), (0, 1), (0, 1), (0, 0)))  # g[Ho] = 0
  taps = {0: slice(1, 2), 1: slice(None, None, -2)}  # parity -> kernel rows (2, 0)

  def phase(row_parity, col_parity):
    kernel = w_t[taps[row_parity], taps[col_parity]]
    window = g[:, :ho + row_parity, :wo + col_parity]
    return lax.conv_general_dilated(window, kernel, (1, 1), 'VALID',
                                    dimension_numbers=_NHWC)

  rows = [jnp.stack([phase(r, 0), phase(r, 1)], axis=3) for r in (0, 1)]
  dx = jnp.stack(rows, axis=2)                 # B x Ho x 2 x Wo x 2 x C
  return dx.reshape(b, 2 * ho, 2 * wo, -1)[:, :height, :width]


def _backward(residuals, g):
  x, w = residuals
  dx = input_gradient_stride2(g, w, x.shape[1], x.shape[2])
  _, weight_vjp = jax.vjp(lambda w: _conv(x, w, 2), w)
  return dx.astype(x.dtype), weight_vjp(g)[0]


conv3x3_stride2.defvjp(_forward, _backward)


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None,
                         rhs_dilation=None, dimension_numbers=None,
                         feature_group_count=1, batch_group_count=1, precision=None,
                         preferred_element_type=None):
  """`lax.conv_general_dilated`, routing 3x3/2 NHWC convolutions to `conv3x3_stride2`."""
  plain = (lhs_dilation in (None, (1, 1)) and rhs_dilation in (None, (1, 1))
           and feature_group_count == 1 and batch_group_count == 1 and precision is None
           and preferred_element_type is None and lhs.dtype == rhs.dtype)
  if (plain and not isinstance(padding, str) and tuple(window_strides) == (2, 2) and rhs.shape[:2] == (3, 3)
      and tuple(map(tuple, padding)) == ((1, 1), (1, 1))
      and lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers) == _NHWC):
    return conv3x3_stride2(lhs, rhs)
  return lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation,
                                  rhs_dilation, dimension_numbers, feature_group_count,
                                  batch_group_count, precision, preferred_element_type)
