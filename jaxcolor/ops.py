"""Convolutions as each backend should run them.

`conv` computes the network's square convolutions with one of two sets of
kernels (`kernels_for` picks one per backend; the parameters are the same):

- 'xla': XLA's own convolutions. GPU and TPU run these: cuDNN and the TPU
  compiler choose their own algorithms (cuDNN has its own Winograd), and the
  paths below were only ever measured on CPU.
- 'cpu': the paths that measured faster on XLA:CPU (docs/PERFORMANCE.md). A
  3x3, stride-2, padding-1 convolution (the downsampling layers) gets its input
  gradient from four small stride-1 convolutions, one per output phase,
  instead of XLA's input-dilated ("base-dilated") convolution, which multiplies
  by the zeros it inserts and ran up to 4x slower than the forward pass in a
  training step's profile. And `winograd_conv3x3` computes the wide stride-1
  layers (`winograd_pays`) at inference with 2.25x fewer multiplications from
  pre-transformed weights (`winograd_weights`).
"""
import jax
from jax import lax
import jax.numpy as jnp
import numpy as np

KERNELS = ('cpu', 'xla')

_NHWC = lax.ConvDimensionNumbers(lhs_spec=(0, 3, 1, 2), rhs_spec=(3, 2, 0, 1),
                                 out_spec=(0, 3, 1, 2))


def kernels_for(platform=None):
  """The kernels for a backend ('cpu', 'gpu', 'tpu'; default: JAX's default backend)."""
  return 'cpu' if (platform or jax.default_backend()) == 'cpu' else 'xla'


def conv(x_BxHxWxC, w_KxKxCxO, stride, kernels):
  """Square convolution, zero padding K // 2 (NHWC / HWIO), by `kernels` (KERNELS)."""
  if kernels not in KERNELS:
    raise ValueError(f'kernels={kernels!r}: expected one of {KERNELS}')
  if kernels == 'cpu' and stride == 2 and w_KxKxCxO.shape[:2] == (3, 3):
    return conv3x3_stride2(x_BxHxWxC, w_KxKxCxO)
  return _conv(x_BxHxWxC, w_KxKxCxO, stride)


def _conv(x, w, stride):
  pad = w.shape[0] // 2
  return lax.conv_general_dilated(x, w, (stride, stride), ((pad, pad), (pad, pad)),
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


# Winograd F(4x4, 3x3) (Lavin & Gray 2016): a 6x6 input tile d gives a 4x4
# output tile  A^T [(G g G^T) * (B^T d B)] A,  36 multiplications per channel
# pair instead of 144. Points 0, +-1, +-2 and infinity; float32 error ~2e-5
# relative to the direct convolution.
_WINOGRAD_BT = np.array([[4, 0, -5, 0, 1, 0],
                         [0, -4, -4, 1, 1, 0],
                         [0, 4, -4, -1, 1, 0],
                         [0, -2, -1, 2, 1, 0],
                         [0, 2, -1, -2, 1, 0],
                         [0, 4, 0, -5, 0, 1]], np.float64)
_WINOGRAD_G = np.array([[1 / 4, 0, 0],
                        [-1 / 6, -1 / 6, -1 / 6],
                        [-1 / 6, 1 / 6, -1 / 6],
                        [1 / 24, 1 / 12, 1 / 6],
                        [1 / 24, -1 / 12, 1 / 6],
                        [0, 0, 1]], np.float64)
_WINOGRAD_AT = np.array([[1, 1, 1, 1, 1, 0],
                         [0, 1, -1, 2, -2, 0],
                         [0, 1, 1, 4, 4, 0],
                         [0, 1, -1, 8, -8, 1]], np.float64)
# The 2-D transforms as matrices on flattened tiles: (B^T x B^T) maps a 6x6
# input tile (36 values) to its 36 transformed values, (A^T x A^T) maps the 36
# products to a 4x4 output tile, (G x G) a 3x3 kernel to 36 values.
_INPUT_TRANSFORM = np.kron(_WINOGRAD_BT, _WINOGRAD_BT)    # 36 x 36
_OUTPUT_TRANSFORM = np.kron(_WINOGRAD_AT, _WINOGRAD_AT)   # 16 x 36
_KERNEL_TRANSFORM = np.kron(_WINOGRAD_G, _WINOGRAD_G)     # 36 x 9
_OUT, _IN = _WINOGRAD_AT.shape  # 4 x 4 output tiles from 6 x 6 input tiles


# Stride-1 3x3 convolutions with at least this many input and output channels
# run as Winograd convolutions with 'cpu' kernels at inference: up to 2.2x
# faster per layer on CPU for the paper's 256/512-channel layers
# (docs/PERFORMANCE.md), slower for narrow ones.
WINOGRAD_MIN_CHANNELS = 256


def zero_beyond(x_BxHxWxC, valid, scale):
  """`x` with zeros beyond its first valid[0] // scale rows and valid[1] // scale
  columns (`valid` counted at `scale` times x's resolution; None: `x` as it is)."""
  if valid is None:
    return x_BxHxWxC
  rows = jnp.arange(x_BxHxWxC.shape[1]) < valid[0] // scale
  cols = jnp.arange(x_BxHxWxC.shape[2]) < valid[1] // scale
  return jnp.where((rows[:, None] & cols[None, :])[..., None], x_BxHxWxC, 0)


def winograd_pays(w_shape, stride):
  """Whether a layer with this HWIO kernel shape and stride runs faster as Winograd on CPU."""
  return tuple(w_shape[:2]) == (3, 3) and stride == 1 and min(w_shape[2:]) >= WINOGRAD_MIN_CHANNELS


def winograd_weights(w_3x3xCxK):
  """The transformed kernel (G w G^T for every channel pair): 36 x C x K.

  Four times the kernel's size; inference computes it once per set of weights.
  """
  _, _, c, k = w_3x3xCxK.shape
  u = jnp.tensordot(jnp.asarray(_KERNEL_TRANSFORM, jnp.float32),
                    w_3x3xCxK.astype(jnp.float32).reshape(9, c * k), axes=1,
                    precision=lax.Precision.HIGHEST)
  return u.reshape(_IN * _IN, c, k).astype(w_3x3xCxK.dtype)


def winograd_conv3x3(x_BxHxWxC, u_36xCxK):
  """3x3 convolution, stride 1, zero padding 1 (NHWC), from `winograd_weights`.

  The image is cut into 4 x 4 output tiles, each read as a 6 x 6 input tile
  (neighbours overlap by 2) by reshapes of the padded image. Three matrix
  products do the rest: the input transform (36 x 36 on every tile and
  channel), the 36 products (tiles x C) @ (C x K), and the output transform
  (16 x 36), whose 4 x 4 tiles are interleaved back into the image.
  """
  b, h, w, c = x_BxHxWxC.shape
  k = u_36xCxK.shape[-1]
  th, tw = -(-h // _OUT), -(-w // _OUT)  # tiles down and across
  # Zero padding 1 on the top and left, then up to whole 4 x 4 blocks plus one;
  # input tile (t, s) is block (t, s) plus the first two rows / columns of the
  # blocks below and to the right.
  x = jnp.pad(x_BxHxWxC, ((0, 0), (1, _OUT * (th + 1) - h - 1),
                          (1, _OUT * (tw + 1) - w - 1), (0, 0)))
  blocks = x.reshape(b, th + 1, _OUT, tw + 1, _OUT, c)
  extra = _IN - _OUT
  rows = jnp.concatenate([blocks[:, :th], blocks[:, 1:, :extra]], axis=2)
  tiles = jnp.concatenate([rows[:, :, :, :tw], rows[:, :, :, 1:, :extra]], axis=4)
  tiles = tiles.transpose(2, 4, 0, 1, 3, 5).reshape(_IN * _IN, b, th, tw, c)
  # The transforms at full precision: on GPU/TPU the default would round their
  # large sums of signed terms through TF32 or bf16 passes.
  v = jnp.tensordot(jnp.asarray(_INPUT_TRANSFORM, x.dtype), tiles, axes=1,
                    precision=lax.Precision.HIGHEST)
  v = v.reshape(_IN * _IN, b * th * tw, c)
  m = lax.dot_general(v, u_36xCxK.astype(v.dtype), (((2,), (1,)), ((0,), (0,))))
  y = jnp.tensordot(jnp.asarray(_OUTPUT_TRANSFORM, m.dtype), m, axes=1,
                    precision=lax.Precision.HIGHEST)  # 16 x tiles x K
  y = y.reshape(_OUT, _OUT, b, th, tw, k).transpose(2, 3, 0, 4, 1, 5)
  return y.reshape(b, th * _OUT, tw * _OUT, k)[:, :h, :w]
