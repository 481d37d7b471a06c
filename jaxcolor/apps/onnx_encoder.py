"""The parts of the ONNX graph that are not the paper's: the pretrained encoder
(EfficientNet-Lite0, folded by `jaxcolor.apps.folding`) and the bins head's decode.

Both take the `onnx_graph` builder under construction (its `op`, `const` and
`layer`) and add nodes in NCHW, as `folding.FoldedColorizer` and `bins.decode`
compute them: depthwise convolutions are Conv with group = channels, ReLU6 is
Clip(0, 6), TensorFlow's 'SAME' padding (stride 2: less before than after) is
given per layer, the encoder's input size being fixed (G x G, or the labels' S x S).
"""
import numpy as np

from jaxcolor.apps import folding
from jaxcolor import bins
from jaxcolor import color
from jaxcolor import efficientnet

_INT = np.int64


def _relu6(g, x):
  return g.op('Clip', x, g.const(0.0), g.const(6.0))


def _conv(g, x, folded, name, stride, size, group=1):
  """A folded K x K convolution with 'SAME' padding on a size x size input."""
  kernel = folded[name]['w'].shape[0]
  before, after = efficientnet.same_padding(size, kernel, stride)
  return g.op('Conv', x, *g.layer(folded, name), strides=[stride] * 2,
              pads=[before, before, after, after], kernel_shape=[kernel] * 2, group=group)


def grey_input(g, l_1x1xGxG):
  """encoder.SceneEncoder's input: L -> the grey sRGB 0..255 of it, (x - 127) / 128,
  replicated to 1 x 3 x G x G (color.grey_rgb, efficientnet.preprocess)."""
  fy = g.op('Div', g.op('Add', g.op('Mul', l_1x1xGxG, g.const(color.L_MAX)), g.const(16.0)),
            g.const(116.0))
  cube = g.op('Mul', g.op('Mul', fy, fy), fy)
  linear_f = g.op('Div', g.op('Sub', fy, g.const(16.0 / 116.0)), g.const(color._KAPPA))
  luminance = g.op('Where', g.op('Greater', fy, g.const(0.2068966)), cube, linear_f)
  gamma = g.op('Sub', g.op('Mul', g.const(1.055), g.op(
      'Pow', g.op('Max', luminance, g.const(0.0031308)), g.const(1 / 2.4))), g.const(0.055))
  value = g.op('Where', g.op('Greater', luminance, g.const(0.0031308)), gamma,
               g.op('Mul', luminance, g.const(12.92)))
  value = g.op('Clip', value, g.const(0.0), g.const(1.0))
  x = g.op('Div', g.op('Sub', g.op('Mul', value, g.const(255.0)), g.const(127.0)),
           g.const(128.0))
  return g.op('Concat', x, x, x, axis=1)


def encoder(g, folded, l_1x1xGxG, global_size):
  """The folded EfficientNet-Lite0 on the global input's L: pooled features 1 x 1280."""
  prefix = folding.ENCODER
  x = _relu6(g, _conv(g, grey_input(g, l_1x1xGxG), folded, f'{prefix}/stem', 2, global_size))
  size = -(-global_size // 2)
  for name, _, stride, residual in folding.encoder_blocks():
    y = x
    if f'{name}/expand' in folded:
      y = _relu6(g, _conv(g, y, folded, f'{name}/expand', 1, size))
    channels = folded[f'{name}/depthwise']['w'].shape[-1]
    y = _relu6(g, _conv(g, y, folded, f'{name}/depthwise', stride, size, group=channels))
    size = -(-size // stride)
    y = _conv(g, y, folded, f'{name}/project', 1, size)
    x = g.op('Add', x, y) if residual else y
  head = _relu6(g, _conv(g, x, folded, f'{prefix}/head', 1, size))
  return g.op('Flatten', g.op('GlobalAveragePool', head), axis=1)


def dense(g, x, folded, name):
  w, b = g.layer(folded, name)
  return g.op('Add', g.op('MatMul', x, w), b)


def scene(g, folded, global_512, global_256, l_1x1xGxG, global_size, label=None):
  """(scene logits 1 x classes, the vector fused into every local position): the
  paper's classifier and global vector, or the encoder's logits and the global
  vector followed by the encoder's projection. `label`: (1 x 1 x S x S, S), the
  view of its own the encoder names the scene from (encoder.label_size)."""
  if not folding.has_encoder(folded):
    hidden = g.op('Relu', dense(g, global_512, folded, 'classifier/fc1'))
    return dense(g, hidden, folded, 'classifier/logits'), global_256
  pooled = encoder(g, folded, l_1x1xGxG, global_size)
  projected = g.op('Relu', dense(g, pooled, folded, folding.PROJECTION))
  named = pooled if label is None else encoder(g, folded, *label)  # the same weights
  return (dense(g, named, folded, f'{folding.ENCODER}/fc'),
          g.op('Concat', global_256, projected, axis=1))


def decode_bins(g, logits_1xQxHxW, temperature):
  """bins.decode then color.normalize_ab: logits over the bins -> a*b* in [0, 1],
  1 x 2 x H x W: softmax(logits / max(T, bins.MIN_TEMPERATURE)) over the bins, its
  mean centre."""
  t = g.op('Max', temperature, g.const(bins.MIN_TEMPERATURE))
  p = g.op('Softmax', g.op('Div', logits_1xQxHxW, t), axis=1)
  centres = g.const(bins.centres().T[:, :, None, None])  # 2 x Q x 1 x 1
  ab = g.op('Conv', p, centres, kernel_shape=[1, 1])
  return g.op('Div', g.op('Add', ab, g.const(color.AB_MAX)), g.const(2 * color.AB_MAX))
