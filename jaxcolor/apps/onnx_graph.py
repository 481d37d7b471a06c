"""The folded network (`jaxcolor.apps.folding`) as an ONNX graph, built with onnx's helpers.

The graph computes what `export.colorize_function` computes, in NCHW and in
planes: edge padding to a multiple of 8, the global input's antialiased
bilinear resize (Resize with antialias and exclude_outside is jax.image.resize's
'linear' with antialias=True; a frozen encoder's labels read a resize of their
own, encoder.label_size), the network, the bilinear x2 upsampling of the
chrominance, and CIE L*a*b* -> sRGB with the constants of `jaxcolor.color`;
with hints, their planes beside L (zero-padded, resized alike for the global
path); the pretrained encoder and the bins head's decode come from
`jaxcolor.apps.onnx_encoder`.
Built with onnx's helpers, not a JAX-to-ONNX converter: jax2onnx 0.17.1 needs
orbax-checkpoint < 0.11.37, and the checkpoints here need 0.12.8.
"""
import numpy as np

from jaxcolor.apps import folding
from jaxcolor.apps import onnx_encoder
from jaxcolor import color
from jaxcolor import hints as hints_lib
from jaxcolor import model as model_lib

OPSET = 18  # Resize's antialias attribute first appears in opset 18
IR_VERSION = 8  # the oldest IR with opset 18: readable by older runtimes
_INT = np.int64


class _Graph:
  """Nodes and initializers under construction; every op gets a fresh output name."""

  def __init__(self):
    self.nodes, self.initializers, self._count = [], [], 0
    self._layers = {}  # the low-level trunk runs twice on one set of weights

  def layer(self, folded, name):
    """The (weight, bias) initializers of a folded layer, ONNX layout, made once."""
    if name not in self._layers:
      w = folded[name]['w']
      self._layers[name] = (self.const(np.transpose(w, (3, 2, 0, 1)) if w.ndim == 4 else w),
                            self.const(folded[name]['b']))
    return self._layers[name]

  def _name(self, stem):
    self._count += 1
    return f'{stem}_{self._count}'

  def const(self, value, dtype=np.float32):
    from onnx import numpy_helper
    name = self._name('const')
    self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype), name))
    return name

  def op(self, op_type, *inputs, output=None, **attributes):
    from onnx import helper
    output = output or self._name(op_type.lower())
    self.nodes.append(helper.make_node(op_type, list(inputs), [output], **attributes))
    return output


def _conv(g, x, folded, name, stride=1):
  kernel = folded[name]['w'].shape[0]
  return g.op('Conv', x, *g.layer(folded, name), strides=[stride] * 2,
              pads=[kernel // 2] * 4, kernel_shape=[kernel] * 2)


def _stack(g, folded, x, block, spec):
  for name, stride in folding.conv_layers(block, spec):
    x = g.op('Relu', _conv(g, x, folded, name, stride))
  return x


def _network(g, folded, local, global_input, l_global, global_size, temperature, label=None):
  """1 x C x H x W and 1 x C x G x G (C = 1, or 4 with hint planes; `l_global` the
  latter's L alone, for the encoder) -> (ab 1 x 2 x H/2 x W/2 in [0, 1], logits
  1 x classes); a bins head's output is decoded at `temperature`. `label`: the
  encoder's own view for the logits (onnx_encoder.scene)."""
  low = _stack(g, folded, local, 'low_level', model_lib.LOW_LEVEL)
  x = _stack(g, folded, _stack(g, folded, global_input, 'low_level', model_lib.LOW_LEVEL),
             'global', model_lib.GLOBAL_CONV)
  # Flattened in NHWC order, as the Flax model flattens it.
  x = g.op('Reshape', g.op('Transpose', x, perm=[0, 2, 3, 1]), g.const([1, -1], _INT))
  global_512 = g.op('Relu', onnx_encoder.dense(g, g.op('Relu', onnx_encoder.dense(
      g, x, folded, 'global/fc1')), folded, 'global/fc2'))
  global_256 = g.op('Relu', onnx_encoder.dense(g, global_512, folded, 'global/fc3'))
  logits, global_vector = onnx_encoder.scene(g, folded, global_512, global_256, l_global,
                                             global_size, label)
  x = _stack(g, folded, low, 'mid_level', model_lib.MID_LEVEL)
  tiled = g.op('Reshape', g.op('MatMul', global_vector,
                               g.const(folded[folding.FUSION]['w_global'])),
               g.const([1, -1, 1, 1], _INT))
  x = g.op('Relu', g.op('Add', _conv(g, x, folded, folding.FUSION), tiled))
  for i, (_, upsample) in enumerate(model_lib.COLORIZATION, 1):
    x = g.op('Relu', _conv(g, x, folded, f'colorization/conv{i}'))
    if upsample:
      x = g.op('Resize', x, '', g.const([1, 1, 2, 2]), mode='nearest',
               coordinate_transformation_mode='asymmetric', nearest_mode='floor')
  output = _conv(g, x, folded, folding.OUTPUT)
  if folding.has_bins(folded):
    return onnx_encoder.decode_bins(g, output, temperature), logits
  return g.op('Sigmoid', output), logits


def _lab_to_rgb(g, l_1xHxW, ab_2xHxW):
  """color.network_to_rgb on planes: L and a*b* in [0, 1] -> sRGB 3 x (H W) in [0, 1].

  Planes, not color.py's channels-last: onnxruntime runs element-wise ops on
  H x W x 1 tensors 20-100x slower than on 1 x H x W ones.
  """
  ab = g.op('Sub', g.op('Mul', ab_2xHxW, g.const(2 * color.AB_MAX)), g.const(color.AB_MAX))
  a = g.op('Slice', ab, g.const([0], _INT), g.const([1], _INT), g.const([0], _INT))
  b = g.op('Slice', ab, g.const([1], _INT), g.const([2], _INT), g.const([0], _INT))
  fy = g.op('Div', g.op('Add', g.op('Mul', l_1xHxW, g.const(color.L_MAX)), g.const(16.0)),
            g.const(116.0))
  fx = g.op('Add', fy, g.op('Div', a, g.const(500.0)))
  fz = g.op('Max', g.op('Sub', fy, g.op('Div', b, g.const(200.0))), g.const(0.0))
  f = g.op('Reshape', g.op('Concat', fx, fy, fz, axis=0), g.const([3, -1], _INT))
  cube = g.op('Mul', g.op('Mul', f, f), f)
  linear_f = g.op('Div', g.op('Sub', f, g.const(16.0 / 116.0)), g.const(color._KAPPA))
  xyz = g.op('Where', g.op('Greater', f, g.const(0.2068966)), cube, linear_f)
  xyz = g.op('Mul', xyz, g.const(color._D65_WHITE[:, None]))
  linear = g.op('MatMul', g.const(color._RGB_FROM_XYZ), xyz)
  gamma = g.op('Sub', g.op('Mul', g.const(1.055), g.op(
      'Pow', g.op('Max', linear, g.const(0.0031308)), g.const(1 / 2.4))), g.const(0.055))
  rgb = g.op('Where', g.op('Greater', linear, g.const(0.0031308)), gamma,
             g.op('Mul', linear, g.const(12.92)))
  return g.op('Clip', rgb, g.const(0.0), g.const(1.0))


def _resize_to(g, x, channels, size):
  """jax.image.resize 'linear' antialias=True of 1 x C x h x w to 1 x C x size x size."""
  return g.op('Resize', x, '', '', g.const([1, channels, size, size], _INT),
              mode='linear', coordinate_transformation_mode='half_pixel', antialias=1,
              exclude_outside=1)


def build(folded, global_size, num_classes, metadata, label_size=None):
  """The onnx.ModelProto: (l [H, W], l_global [h, w], then hints [H, W, 3] for a model
  with hints, then temperature [] for a bins model) -> (rgb [H, W, 3], probabilities).

  `metadata`: {key: string} stored as the model's metadata_props. `label_size`
  (encoder.label_size): the probabilities are the encoder's on l_global resized to
  label_size x label_size instead of G x G.
  """
  import onnx
  from onnx import helper
  g = _Graph()
  axes01 = g.const([0, 1], _INT)
  size_HW = g.op('Shape', 'l')
  pad_HW = g.op('Mod', g.op('Neg', size_HW), g.const([model_lib.STRIDE] * 2, _INT))
  pads = g.op('Concat', g.const([0] * 6, _INT), pad_HW, axis=0)  # only after H and W
  local = g.op('Pad', g.op('Unsqueeze', 'l', axes01), pads, mode='edge')
  l_global = _resize_to(g, g.op('Unsqueeze', 'l_global', axes01), 1, global_size)
  label = None
  if label_size:  # the encoder names the scene from a view of its own
    label = _resize_to(g, g.op('Unsqueeze', 'l_global', axes01), 1, label_size), label_size
  global_input = l_global
  if folding.has_hints(folded):  # planes 1 x 3 x H x W: zero-padded, resized as L is
    planes = g.op('Unsqueeze', g.op('Transpose', 'hints', perm=[2, 0, 1]), g.const([0], _INT))
    local = g.op('Concat', local, g.op('Pad', planes, pads), axis=1)
    global_input = g.op('Concat', l_global, _resize_to(g, planes, 3, global_size), axis=1)
  ab_half, logits = _network(g, folded, local, global_input, l_global, global_size,
                             'temperature', label)
  g.op('Reshape', g.op('Softmax', logits, axis=-1), g.const([num_classes], _INT),
       output='probabilities')
  # On 2 x H x W: as 1 x 2 x H x W onnxruntime would resize in its blocked layout,
  # 16 channels, and convert back.
  ab = g.op('Resize', g.op('Squeeze', ab_half, g.const([0], _INT)), '',
            g.const([1, 2, 2]), mode='linear', coordinate_transformation_mode='half_pixel')
  ab = g.op('Slice', ab, g.const([0, 0], _INT), size_HW, g.const([1, 2], _INT))
  if folding.has_hints(folded):  # hinted pixels keep their hints' colours (hints.keep_colours)
    planes = g.op('Transpose', 'hints', perm=[2, 0, 1])
    hint_ab = g.op('Slice', planes, g.const([0], _INT), g.const([2], _INT), g.const([0], _INT))
    mask = g.op('Slice', planes, g.const([2], _INT), g.const([3], _INT), g.const([0], _INT))
    ab = g.op('Where', g.op('Greater', mask, g.const(0.5)),
              g.op('Add', g.op('Mul', hint_ab, g.const(hints_lib.AB_SCALE / (2 * color.AB_MAX))),
                   g.const(0.5)), ab)
  rgb_3xN = _lab_to_rgb(g, g.op('Unsqueeze', 'l', g.const([0], _INT)), ab)
  g.op('Reshape', g.op('Transpose', rgb_3xN, perm=[1, 0]),
       g.op('Concat', size_HW, g.const([3], _INT), axis=0), output='rgb')
  float32 = onnx.TensorProto.FLOAT
  inputs = [helper.make_tensor_value_info('l', float32, ['height', 'width']),
            helper.make_tensor_value_info('l_global', float32, ['global_height', 'global_width'])]
  if folding.has_hints(folded):
    inputs.append(helper.make_tensor_value_info('hints', float32, ['height', 'width', 3]))
  if folding.has_bins(folded):
    inputs.append(helper.make_tensor_value_info('temperature', float32, []))
  graph = helper.make_graph(
      g.nodes, 'jaxcolor', inputs,
      [helper.make_tensor_value_info('rgb', float32, ['height', 'width', 3]),
       helper.make_tensor_value_info('probabilities', float32, [num_classes])],
      initializer=g.initializers)
  model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', OPSET)],
                            producer_name='jaxcolor', ir_version=IR_VERSION)
  helper.set_model_props(model, metadata)
  onnx.checker.check_model(model, full_check=True)
  return model
