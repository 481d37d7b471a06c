"""A pretrained ImageNet encoder beside the paper's global path (not the paper's).

The paper's global path learns what a scene is from the colorization data alone;
on a small CPU budget it learns little (docs/QUALITY.md). This module lends the
global path an ImageNet classifier (EfficientNet-Lite0, jaxcolor/efficientnet.py)
that sees the same grey global input: its pooled features join the global
vector, and its own 1,000-class head names the scene. Frozen by default: its
weights stay ImageNet's and it runs in inference mode.
"""
import functools
import pathlib

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcolor import color
from jaxcolor import efficientnet

ENCODERS = ('efficientnet_lite0',)
CLASS_NAMES = pathlib.Path(__file__).parent / 'assets' / 'imagenet_classes.txt'
# Scene labels are shown only at this probability or above. Chosen on the 800
# holdout photos (grey, squashed to 224 as inference sees them): 32% of them get a
# label, and 83% of those labels are the ImageNet teacher's top-1 on the colour
# original (42% of all top-1 labels are; docs/QUALITY.md).
LABEL_CONFIDENCE = 0.4


class SceneEncoder(nn.Module):
  """Grey L in [0, 1], B x G x G x 1 -> pooled ImageNet features B x 1280;
  `classify` turns them into B x 1000 ImageNet logits."""
  kind: str = 'efficientnet_lite0'
  trainable: bool = False
  kernels: str = 'xla'

  def setup(self):
    if self.kind not in ENCODERS:
      raise ValueError(f'encoder {self.kind!r}: expected one of {ENCODERS}')
    # Depthwise convolutions as shifted slices: the same numbers, ~20x faster on XLA:CPU.
    self.network = efficientnet.EfficientNetLite0(
        depthwise='shifts' if self.kernels == 'cpu' else 'grouped')

  def __call__(self, l_BxGxGx1, train=False):
    pooled = self.network.features(network_input(l_BxGxGx1),
                                   train=train and self.trainable)['pooled']
    return pooled if self.trainable else jax.lax.stop_gradient(pooled)

  def classify(self, pooled_Bx1280):
    return self.network.fc(pooled_Bx1280)


def network_input(l_BxGxGx1):
  """What the encoder sees of grey L in [0, 1]: its grey sRGB, 0..255, preprocessed
  as EfficientNet's (x - 127) / 128, B x G x G x 3."""
  rgb_BxGxGx3 = color.grey_rgb(l_BxGxGx1[..., 0].astype(jnp.float32)) * 255.0
  return efficientnet.preprocess(rgb_BxGxGx3)


@functools.cache
def class_names():
  """The 1,000 ImageNet class names, in the order of the encoder's logits."""
  return tuple(CLASS_NAMES.read_text().splitlines())


def with_pretrained(variables):
  """Colorizer variables whose encoder is the ImageNet one (training starts so)."""
  pretrained = efficientnet.load_pretrained()
  params = {**variables['params'], 'encoder': {'network': pretrained['params']}}
  stats = {**variables['batch_stats'], 'encoder': {'network': pretrained['batch_stats']}}
  return {**variables, 'params': params, 'batch_stats': stats}
