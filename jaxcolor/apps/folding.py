"""The trained network for inference only: BatchNorm folded into the layers, no Flax.

`fold` turns a Colorizer's variables into one weight and one bias per layer,
named by the layer's path ('low_level/conv1', 'global/fc2', ...), and
`FoldedColorizer` runs them with plain jnp and XLA's own convolutions (the
'xla' kernels: no CPU-only Winograd path). `jaxcolor.apps.export` writes this
network as StableHLO and as ONNX. The options that are not the paper's fold
alike: the bins head's output layer gives logits (no sigmoid), a model with
hints reads 1 + 3 input channels, and a pretrained encoder (EfficientNet-Lite0)
folds into 'encoder/stem', 'encoder/blocks_I/{expand,depthwise,project}',
'encoder/head', 'encoder/fc' and its projection 'encoder_projection'.

A layer followed by BatchNorm (scale g, bias c, running mean m and variance v)
computes relu(g (x W - m) / sqrt(v + eps) + c) = relu(x W' + b') with
W' = W g / sqrt(v + eps) and b' = c - m g / sqrt(v + eps).
"""
import jax
from jax import lax
import jax.numpy as jnp
import numpy as np

from jaxcolor import efficientnet
from jaxcolor import encoder as encoder_lib
from jaxcolor import model as model_lib
from jaxcolor import ops

FUSION = 'fusion/conv'
MID_LEVEL_LAST = f'mid_level/conv{len(model_lib.MID_LEVEL)}'
ENCODER = 'encoder'
PROJECTION = 'encoder_projection'
OUTPUT = 'colorization/output'


def _batch_norm_epsilon():
  return model_lib.batch_norm(False, jnp.float32, jnp.float32, None).epsilon


def _encoder_epsilon():
  return efficientnet._batch_norm().epsilon  # EfficientNet's own: 1e-3


def _float64(tree):
  return jax.tree.map(lambda a: np.asarray(a, np.float64), tree)


def _with_batch_norm(w, bn, running, epsilon):
  """(W', b') of a bias-free layer W followed by BatchNorm (see the top)."""
  scale = bn['scale'] / np.sqrt(running['var'] + epsilon)
  return {'w': w * scale, 'b': bn['bias'] - running['mean'] * scale}


def _layer(layer, stats, epsilon):
  """A model.py layer: ConvBN or DenseBN ({'conv' or 'dense', 'bn'}), or one with a bias."""
  if 'bn' not in layer:  # the output layers have their own bias
    return {'w': layer['kernel'], 'b': layer['bias']}
  w = layer['conv' if 'conv' in layer else 'dense']['kernel']
  return _with_batch_norm(w, layer['bn'], stats['bn'], epsilon)


def encoder_blocks():
  """(name, kernel, stride, residual) of EfficientNet-Lite0's inverted-residual
  blocks in order, from efficientnet.STAGES (residual: stride 1, same width)."""
  blocks, channels = [], efficientnet.STEM
  for _, kernel, stride, features, repeats in efficientnet.STAGES:
    for repeat in range(repeats):
      step = stride if repeat == 0 else 1
      blocks.append((f'{ENCODER}/blocks_{len(blocks)}', kernel, step,
                     step == 1 and channels == features))
      channels = features
  return blocks


def _fold_encoder(params, stats):
  """EfficientNetLite0's variables -> its folded layers (see the top)."""
  epsilon = _encoder_epsilon()
  fold_bn = lambda w, bn, running: _with_batch_norm(w, bn, running, epsilon)
  folded = {f'{ENCODER}/stem': fold_bn(params['conv_stem']['kernel'], params['bn0'], stats['bn0']),
            f'{ENCODER}/head': fold_bn(params['conv_head']['kernel'], params['bn1'], stats['bn1']),
            f'{ENCODER}/fc': {'w': params['fc']['kernel'], 'b': params['fc']['bias']}}
  for name, *_ in encoder_blocks():
    block, running = params[name.split('/')[1]], stats[name.split('/')[1]]
    if 'expand_conv' in block:
      folded[f'{name}/expand'] = fold_bn(block['expand_conv']['kernel'], block['bn0'],
                                         running['bn0'])
    folded[f'{name}/depthwise'] = fold_bn(block['depthwise_conv']['kernel'], block['bn1'],
                                          running['bn1'])
    folded[f'{name}/project'] = fold_bn(block['project_conv']['kernel'], block['bn2'],
                                        running['bn2'])
  return folded


def fold(variables):
  """{'params', 'batch_stats'} -> {'block/layer': {'w', 'b'}}, float32 numpy.

  Convolution weights stay HWIO (K x K x C x O; depthwise K x K x 1 x C), dense
  ones C x O. The fusion layer's 1 x 1 kernel is split in two: 'w' for the local
  features and 'w_global' (D x O) for the global vector it tiles over every
  position (the global path's, then the encoder's projection's).
  """
  params, stats = _float64(variables['params']), _float64(variables['batch_stats'])
  epsilon = _batch_norm_epsilon()
  folded = {}
  for block, layers in params.items():
    if block == ENCODER:
      folded.update(_fold_encoder(layers['network'], stats[block]['network']))
    elif block == PROJECTION:
      folded[block] = _layer(layers, stats[block], epsilon)
    else:
      for name, layer in layers.items():
        folded[f'{block}/{name}'] = _layer(layer, stats.get(block, {}).get(name), epsilon)
  folded = {name: {k: v.astype(np.float32) for k, v in layer.items()}
            for name, layer in folded.items()}
  fusion = folded[FUSION]
  local_channels = folded[MID_LEVEL_LAST]['w'].shape[3]
  fusion['w'], fusion['w_global'] = (fusion['w'][:, :, :local_channels],
                                     fusion['w'][0, 0, local_channels:])
  return folded


def has_encoder(folded):
  return f'{ENCODER}/stem' in folded


def has_bins(folded):
  """Whether the output layer gives logits over a*b* bins (else a*b* itself)."""
  return folded[OUTPUT]['w'].shape[-1] != 2


def has_hints(folded):
  """Whether the network reads hint planes after L."""
  return folded['low_level/conv1']['w'].shape[2] > 1


def num_classes(folded):
  """How many scene classes the network names (the encoder's own: ImageNet's 1,000)."""
  return folded[f'{ENCODER}/fc' if has_encoder(folded) else 'classifier/logits']['b'].shape[0]


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


def _encoder(folded, l_BxGxGx1):
  """The folded EfficientNet-Lite0: L -> pooled features B x 1280."""
  relu6 = lambda x: jnp.clip(x, 0.0, 6.0)
  pointwise = lambda x, layer: x @ layer['w'][0, 0] + layer['b']  # 1 x 1 convolution
  stem = folded[f'{ENCODER}/stem']
  x = lax.conv_general_dilated(encoder_lib.network_input(l_BxGxGx1), jnp.asarray(stem['w']),
                               (2, 2), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  x = relu6(x + stem['b'])
  for name, _, stride, residual in encoder_blocks():
    y = x
    if f'{name}/expand' in folded:
      y = relu6(pointwise(y, folded[f'{name}/expand']))
    depthwise = folded[f'{name}/depthwise']
    y = efficientnet.depthwise_conv(y, jnp.asarray(depthwise['w']), stride, 'grouped')
    y = pointwise(relu6(y + depthwise['b']), folded[f'{name}/project'])
    x = x + y if residual else y
  return relu6(pointwise(x, folded[f'{ENCODER}/head'])).mean(axis=(1, 2))


class FoldedColorizer:
  """Colorizer inference (train=False) on `fold`ed weights, as plain jnp.

  `apply` takes the arguments of `Colorizer.apply` at inference (`method`: the
  whole network, or 'scene_logits'), so
  `inference.colorize_l(FoldedColorizer(), fold(variables), ...)` colorizes
  exactly as `Predictor` does (untiled).
  """

  def apply(self, folded, *args, method='__call__', **kwargs):
    return getattr(self, method)(folded, *args, **kwargs)

  def scene_logits(self, folded, l_BxSxSx1):
    """Colorizer.scene_logits: the encoder's logits from a grey view of its own."""
    return _dense(_encoder(folded, l_BxSxSx1[..., :1]), folded[f'{ENCODER}/fc'])

  def __call__(self, folded, l_BxHxWx1, l_global_BxGxGx1=None, train=False, temperature=None):
    """L in [0, 1] (H, W multiples of 8; with hints, the planes after it) ->
    (ab B x H/2 x W/2 x 2 in [0, 1], or bins logits B x H/2 x W/2 x Q; scene logits).
    `temperature` is ignored: the logits stay whole, for the caller to decode
    (bins.to_chrominance), in a program that every export format can hold."""
    del train, temperature  # inference only: BatchNorm is folded in
    low = _stack(folded, l_BxHxWx1, 'low_level', model_lib.LOW_LEVEL)
    l_global = l_BxHxWx1 if l_global_BxGxGx1 is None else l_global_BxGxGx1
    low_global = low if l_global_BxGxGx1 is None else _stack(
        folded, l_global_BxGxGx1, 'low_level', model_lib.LOW_LEVEL)
    x = _stack(folded, low_global, 'global', model_lib.GLOBAL_CONV)
    x = x.reshape(x.shape[0], -1)
    global_512 = jax.nn.relu(_dense(jax.nn.relu(_dense(x, folded['global/fc1'])),
                                    folded['global/fc2']))
    global_vector = jax.nn.relu(_dense(global_512, folded['global/fc3']))
    if has_encoder(folded):
      pooled = _encoder(folded, l_global[..., :1])
      logits = _dense(pooled, folded[f'{ENCODER}/fc'])
      projected = jax.nn.relu(_dense(pooled, folded[PROJECTION]))
      global_vector = jnp.concatenate([global_vector, projected], axis=-1)
    else:
      logits = _dense(jax.nn.relu(_dense(global_512, folded['classifier/fc1'])),
                      folded['classifier/logits'])
    x = _stack(folded, low, 'mid_level', model_lib.MID_LEVEL)
    fusion = folded[FUSION]
    x = jax.nn.relu(_conv(x, fusion) + (global_vector @ fusion['w_global'])[:, None, None, :])
    for i, (_, upsample) in enumerate(model_lib.COLORIZATION, 1):
      x = jax.nn.relu(_conv(x, folded[f'colorization/conv{i}']))
      if upsample:
        x = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)  # nearest, x2
    output = _conv(x, folded[OUTPUT])
    return (output if has_bins(folded) else jax.nn.sigmoid(output)), logits
