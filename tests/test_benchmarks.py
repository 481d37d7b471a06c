"""The benchmark scripts describe the network the package builds, and run."""
import json
import pathlib

import jax
import jax.numpy as jnp
from PIL import Image
import pytest

from conftest import photo

from jaxcolor import model as model_lib

from benchmarks import buckets as buckets_benchmark
from benchmarks import first_result
from benchmarks import hint_reach
from benchmarks import layers
from benchmarks import models
from benchmarks import soak


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


def test_soak_benchmark_answers_every_request(tiny_checkpoint, tmp_path, capsys):
  assert soak.main(['--checkpoint', str(tiny_checkpoint), '--requests', '12', '--clients', '4',
                    '--max-side', '96', '--hostile-fraction', '0.5', '--stalled', '1',
                    '--rss-interval', '0.5', '--out', str(tmp_path),
                    '--server-arg=--warm-up=96', '--server-arg=--max-programs=3']) == 0
  summary = json.loads((tmp_path / 'soak.json').read_text())
  # It waited for the warm-up: 3 of the 4 buckets up to 96 px, as many as are kept.
  assert summary['programs']['after_warm_up']['warmed_up'] == 3
  assert summary['programs']['at_end']['kept'] <= 3
  assert sum(summary['statuses'].values()) == 12 and summary['hostile'] == 6
  assert set(summary['statuses']) <= {'200', '400', '413'}, summary['statuses']
  assert summary['lost'] == summary['server_errors_5xx'] == summary['unexpected'] == []
  assert summary['server_alive_at_end'] and summary['server_tracebacks'] == 0
  assert len(summary['stalled']) == 1
  # Every photo is colorized at its size (else it would be unexpected), and timed.
  assert summary['latency_by_band']['<=512']['n'] == summary['photos'] == 6
  if pathlib.Path('/proc/self/status').exists():
    rss = summary['rss_mb']
    assert 0 < rss['start'] <= rss['max'] and rss['after_first_answer'] > 0
  assert (tmp_path / 'soak.png').stat().st_size > 10_000
  assert 'lost answers: 0; 5xx: 0' in capsys.readouterr().out


def test_first_result_benchmark_times_new_sizes_after_the_warm_up(tiny_checkpoint, tmp_path,
                                                                 capsys):
  assert first_result.main(['--checkpoint', str(tiny_checkpoint), '--photos', '3', '--side', '80',
                            '--out', str(tmp_path), '--server-arg=--warm-up=96']) == 0
  summary = json.loads((tmp_path / 'first_result.json').read_text())
  sizes = [(a['width'], a['height']) for a in summary['answers']]
  assert len(set(sizes)) == 3 and all(72 <= side <= 88 for size in sizes for side in size)
  assert summary['programs_after_warm_up']['warmed_up'] == 4  # 64 and 96 px sides
  assert summary['median_s'] == sorted(a['seconds'] for a in summary['answers'])[1]
  assert 'median first result of 3 new sizes' in capsys.readouterr().out


def test_buckets_benchmark_compares_padded_and_own_size_runs(tiny_checkpoint, tmp_path):
  path = tmp_path / 'buckets.json'
  assert buckets_benchmark.main(['--checkpoint', str(tiny_checkpoint), '--sizes', '70x50',
                                 '64x64', '--repeats', '1', '--json', str(path)]) == 0
  rows = json.loads(path.read_text())
  assert [(r['bucket'], r['max_levels'] <= 1) for r in rows] == [('96x64', True), ('64x64', True)]
  assert rows[0]['padded_pixels'] == 96 * 64 / (70 * 50)


def test_hint_reach_benchmark_compares_one_hint_with_none(hint_checkpoint, tiny_checkpoint,
                                                        tmp_path, capsys):
  folder = tmp_path / 'photos'
  folder.mkdir()
  Image.fromarray(photo('astronaut')[:200, :240]).save(folder / 'a.png')  # far pixels
  Image.fromarray(photo('coffee')[:60, :80]).save(folder / 'b.png')  # none beyond 64 px
  hint_reach.main(['--checkpoint', str(hint_checkpoint), '--folder', str(folder),
                   '--out', str(tmp_path / 'out')])
  out = capsys.readouterr().out
  assert '2 photos, 1 with pixels beyond' in out and 'far error lower' in out
  summary = json.loads((tmp_path / 'out' / 'hint_reach.json').read_text())['summary']
  assert summary['photos_with_far_pixels'] == 1
  assert summary['near']['0'] != summary['near']['1']  # the hint changed the colours near it
  with pytest.raises(SystemExit, match='takes no hints'):
    hint_reach.main(['--checkpoint', str(tiny_checkpoint), '--folder', str(folder)])
