"""The trained network for inference only: BatchNorm folded into the layers, no Flax.

`fold` turns a Colorizer's variables into one weight and one bias per layer,
named by the layer's path ('low_level/conv1', 'global/fc2', ...), and
`FoldedColorizer` runs them with plain jnp and XLA's own convolutions (the
'xla' kernels: no CPU-only Winograd path). `jaxcolor.apps.export` writes this
network as StableHLO and as ONNX.

A layer followed by BatchNorm (scale g, bias c, running mean m and variance v)
computes relu(g (x W - m) / sqrt(v + eps) + c) = relu(x W' + b') with
W' = W g / sqrt(v + eps) and b' = c - m g / sqrt(v + eps).
"""
import jax
import jax.numpy as jnp
import numpy as np

from jaxcolor import model as model_lib
from jaxcolor import ops

FUSION = 'fusion/conv'


def _batch_norm_epsilon():
  return model_lib.batch_norm(False, jnp.float32, jnp.float32, None).epsilon


def _float64(tree):
  return jax.tree.map(lambda a: np.asarray(a, np.float64), tree)


def fold(variables):
  """{'params', 'batch_stats'} -> {'block/layer': {'w', 'b'}}, float32 numpy.

  Convolution weights stay HWIO (K x K x C x O), dense ones C x O. The fusion
  layer's 1 x 1 kernel is split in two: 'w' for the local features and
  'w_global' (D x O) for the global vector it tiles over every position.
  """
  params, stats = _float64(variables['params']), _float64(variables['batch_stats'])
  epsilon = _batch_norm_epsilon()
  folded = {}
  for block, layers in params.items():
    for name, layer in layers.items():
      if 'bn' in layer:
        w = layer['conv' if 'conv' in layer else 'dense']['kernel']
        bn, running = layer['bn'], stats[block][name]['bn']
        scale = bn['scale'] / np.sqrt(running['var'] + epsilon)
        w, b = w * scale, bn['bias'] - running['mean'] * scale
      else:  # the output layers have their own bias
        w, b = layer['kernel'], layer['bias']
      folded[f'{block}/{name}'] = {'w': w.astype(np.float32), 'b': b.astype(np.float32)}
  fusion = folded[FUSION]
  local_channels = fusion['w'].shape[2] - folded['global/fc3']['w'].shape[1]
  fusion['w'], fusion['w_global'] = (fusion['w'][:, :, :local_channels],
                                     fusion['w'][0, 0, local_channels:])
  return folded


def conv_layers(block, spec):
  """(name, stride) of a block's 3 x 3 convolutions, from model.py's table."""
  return [(f'{block}/conv{i}', stride) for i, (_, stride) in enumerate(spec, 1)]


def _conv(x, layer, stride=1):
  return ops.conv(x, jnp.asarray(layer['w']), stride, 'xla') + layer['b']


def _dense(x, layer):
  return x @ layer['w'] + layer['b']


def _stack(folded, x, block, spec):
  for name, stride in conv_layers(block, spec):
    x = jax.nn.relu(_conv(x, folded[name], stride))
  return x


class FoldedColorizer:
  """Colorizer inference (train=False) on `fold`ed weights, as plain jnp.

  `apply` takes the arguments of `Colorizer.apply` at inference, so
  `inference.colorize_l(FoldedColorizer(), fold(variables), ...)` colorizes
  exactly as `Predictor` does (untiled).
  """

  def apply(self, folded, l_BxHxWx1, l_global_BxGxGx1=None, train=False):
    """L in [0, 1] (H, W multiples of 8) -> (ab B x H/2 x W/2 x 2 in [0, 1], logits)."""
    del train  # inference only: BatchNorm is folded in
    low = _stack(folded, l_BxHxWx1, 'low_level', model_lib.LOW_LEVEL)
    low_global = low if l_global_BxGxGx1 is None else _stack(
        folded, l_global_BxGxGx1, 'low_level', model_lib.LOW_LEVEL)
    x = _stack(folded, low_global, 'global', model_lib.GLOBAL_CONV)
    x = x.reshape(x.shape[0], -1)
    global_512 = jax.nn.relu(_dense(jax.nn.relu(_dense(x, folded['global/fc1'])),
                                    folded['global/fc2']))
    global_256 = jax.nn.relu(_dense(global_512, folded['global/fc3']))
    logits = _dense(jax.nn.relu(_dense(global_512, folded['classifier/fc1'])),
                    folded['classifier/logits'])
    x = _stack(folded, low, 'mid_level', model_lib.MID_LEVEL)
    fusion = folded[FUSION]
    x = jax.nn.relu(_conv(x, fusion) + (global_256 @ fusion['w_global'])[:, None, None, :])
    for i, (_, upsample) in enumerate(model_lib.COLORIZATION, 1):
      x = jax.nn.relu(_conv(x, folded[f'colorization/conv{i}']))
      if upsample:
        x = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)  # nearest, x2
    return jax.nn.sigmoid(_conv(x, folded['colorization/output'])), logits
