"""The benchmark scripts describe the network the package builds."""

import jax
import jax.numpy as jnp

from jaxcolor import model as model_lib

from benchmarks import layers


def test_layer_list_matches_the_paper_network_kernels():
  shapes = jax.eval_shape(model_lib.Colorizer().init, jax.random.key(0),
                          jnp.zeros((1, 224, 224, 1)))['params']
  kernels = {'/'.join(str(k.key) for k in path[:2]): leaf.shape
             for path, leaf in jax.tree_util.tree_leaves_with_path(shapes)
             if len(leaf.shape) == 4 and leaf.shape[:2] == (3, 3)}
  listed = {name: (3, 3, cin, cout) for name, _, cin, cout, _ in layers.conv_layers(224)}
  assert listed == kernels
  sides = {name: side for name, side, *_ in layers.conv_layers(512)}
  assert sides['low_level/conv1'] == 512 and sides['mid_level/conv1'] == 64
  assert sides['global/conv1'] == 28 and sides['colorization/output'] == 256
