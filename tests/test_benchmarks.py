"""The benchmark scripts describe the network the package builds, and run."""
import json

import jax
import jax.numpy as jnp

from jaxcolor import model as model_lib

from benchmarks import layers
from benchmarks import models


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


def test_models_benchmark_compares_checkpoints_in_one_run(tiny_checkpoint, hint_checkpoint, capsys):
  assert models.main(['--checkpoints', str(tiny_checkpoint), str(hint_checkpoint),
                      '--sizes', '40', '--reps', '1', '--memory-sizes', '64']) == 0
  lines = capsys.readouterr().out.strip().splitlines()
  rows = json.loads(lines[-1])['models']
  assert [row['checkpoint'] for row in rows] == [str(tiny_checkpoint), str(hint_checkpoint)]
  assert rows[0]['time_ratio'] == {'40': 1.0} and rows[0]['memory_ratio'] == {'64': 1.0}
  assert all(row['seconds']['40'] > 0 and row['peak_rss_gb']['64'] > 0.1 for row in rows)
  assert len(lines) == 4  # header, two rows, JSON
