"""jaxcolor against the PyTorch peer on this machine, in one run: a table and a JSON line.

  python -m benchmarks.bench                      # everything (~10 min on 2 cores)
  python -m benchmarks.bench --sizes 224,512 --no-train --no-peer

Rows: one-image inference of the paper-size network (fp32, random weights) at
each size: median seconds, GFLOP/s (model.flops: the direct convolutions'
FLOPs, so Winograd layers count more than they compute), fraction of the GEMM
rate measured in this run, and the ratio to the peer's median (< 1 is faster),
the peer measured just before and just after each jaxcolor row;
a batch-8 224x224 training step; compile time of a new resolution, cold and
with the persistent compilation cache in a second process; peak RSS.
The peer (../shared/peer) runs in its own process with its venv's python
(--peer-python) when it is there.
"""
import argparse
import json
import os
import pathlib
import resource
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from configs import default  # noqa: E402
import jaxcolor  # noqa: E402
from jaxcolor import inference  # noqa: E402
from jaxcolor import model as model_lib  # noqa: E402
from jaxcolor.training import train_step as step_lib  # noqa: E402

PEER = ROOT.parent / 'shared' / 'peer'


def median_time(fn, warmup, reps):
  for _ in range(warmup):
    jax.block_until_ready(fn())
  times = []
  for _ in range(reps):
    start = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def gemm_gflops(n=4096, reps=5):
  """Best of numpy's and XLA's median fp32 n x n matmul rate."""
  a = np.random.default_rng(0).standard_normal((n, n), np.float32)
  a_jax = jnp.asarray(a)
  matmul = jax.jit(jnp.matmul)
  flop = 2 * n ** 3 / 1e9
  return max(flop / median_time(lambda: a @ a, 1, reps),
             flop / median_time(lambda: matmul(a_jax, a_jax), 1, reps))


def paper_config():
  config = default.get_config()
  config.model.num_classes = 205  # as the peer (Places205)
  return config


def paper_model_config():
  return paper_config().model


def init_key():
  """The random weights' key. rbg, not threefry: XLA:CPU compiles the network's
  initialisation 3-4x faster with it (3.8 vs 13.5 s CPU at width 1/8), and
  timings do not depend on the weights' values."""
  return jax.random.key(0, impl='rbg')


def paper_variables(model_config):
  model = model_lib.from_config(model_config)
  return jax.jit(model.init, static_argnames='train')(
      init_key(), jnp.zeros((1, 224, 224, 1)), train=False)


def network_fn(predictor):
  """The network as the peer times it: rescale for the global path + forward."""
  @jax.jit
  def forward(variables, l_HxWx1):
    size = predictor.global_size
    shared = l_HxWx1.shape[:2] == (size, size)
    l_global = None if shared else inference.resize_to_square(l_HxWx1, size)[None]
    return predictor.model.apply(variables, l_HxWx1[None], l_global, train=False)
  return forward


def bench_inference(predictor, sizes, reps):
  forward = network_fn(predictor)
  rows = []
  for size in sizes:
    l = jnp.asarray(np.random.default_rng(size).random((size, size, 1), np.float32))
    big = size >= 2048
    seconds = median_time(lambda: forward(predictor.variables, l), 1, 3 if big else reps)
    end_to_end = median_time(lambda: predictor(l[..., 0]).rgb, 1, 3 if big else reps)
    rows.append({'size': size, 'median_s': seconds, 'end_to_end_s': end_to_end,
                 'gflops': model_lib.flops(size, size) / seconds / 1e9})
  return rows


def bench_train(batch=8, size=224, reps=7, config=None, kernels=None):
  """One device's training step on random batch x size x size crops (default: the
  paper config, with the default backend's kernels)."""
  config = config or paper_config()
  state = step_lib.create_train_state(config, init_key(), kernels)
  p_train_step = step_lib.parallel(step_lib.train_step, config, donate=True,
                                   devices=jax.devices()[:1])
  rng = np.random.default_rng(0)
  labels = rng.integers(0, config.model.num_classes, (1, batch)).astype(np.int32)
  # Hard labels as the input pipeline gives them: one class per image, probability 1.
  data = {'l': rng.random((1, batch, size, size, 1), np.float32),
          'ab': rng.random((1, batch, size, size, 2), np.float32),
          'label': labels, 'label_ids': labels[..., None],
          'label_probs': np.ones((1, batch, 1), np.float32)}
  state = step_lib.replicate(state, jax.devices()[:1])
  holder = [state]

  def step():
    holder[0], metrics = p_train_step(holder[0], data)
    return metrics
  for _ in range(2):
    jax.block_until_ready(step())
  before = resource.getrusage(resource.RUSAGE_SELF)
  seconds = median_time(step, 0, reps)
  after = resource.getrusage(resource.RUSAGE_SELF)
  # XLA:CPU allocates each call's temporary buffers afresh; glibc maps chunks
  # this large from the kernel, so every step pays their page faults again.
  return {'batch': batch, 'median_step_s': seconds, 'img_per_s': batch / seconds,
          'minor_faults_per_step': (after.ru_minflt - before.ru_minflt) / reps,
          'system_cpu_s_per_step': (after.ru_stime - before.ru_stime) / reps}


def child(args):
  """Runs in a fresh process: compile time or peak memory of one colorization."""
  inference.enable_compilation_cache(os.environ.get('BENCH_CACHE_DIR'))
  predictor = inference.Predictor(paper_variables(paper_model_config()), paper_model_config(),
                                  tile=args.child_tile or None)
  l = np.random.default_rng(0).random((args.child_size, args.child_size), np.float32)
  start = time.perf_counter()
  predictor(l)
  first = time.perf_counter() - start
  start = time.perf_counter()
  predictor(l)
  second = time.perf_counter() - start
  rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
  print(json.dumps({'first_call_s': first, 'second_call_s': second, 'peak_rss_gb': rss_gb}))


def run_child(size, env=None, tile=inference.DEFAULT_TILE):
  out = subprocess.run([sys.executable, '-m', 'benchmarks.bench', '--child-size', str(size),
                        '--child-tile', str(tile or 0)],
                       capture_output=True, text=True, env={**os.environ, **(env or {})},
                       cwd=ROOT, check=True).stdout
  return json.loads(out.strip().splitlines()[-1])


def run_peer(python, sizes, train):
  args = [python, 'bench_torch.py', '--sizes', ','.join(map(str, sizes)), '--channels-last',
          '--wait-quiet', '5', '--row-tries', '1']
  if not train:
    args.append('--no-train')
  out = subprocess.run(args, cwd=PEER, capture_output=True, text=True, check=True).stdout
  lines = out.strip().splitlines()
  print('\n'.join(line for line in lines[:-1] if not line.startswith(('params', 'GEMM'))))
  return json.loads(lines[-1])


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--sizes', default='224,512,1024,2048')
  parser.add_argument('--reps', type=int, default=5)
  parser.add_argument('--no-train', action='store_true')
  parser.add_argument('--no-peer', action='store_true')
  parser.add_argument('--no-child', action='store_true', help='skip compile / memory rows')
  parser.add_argument('--memory-sizes', default='2048,4096,8192')
  parser.add_argument('--max-untiled', type=int, default=4096,
                      help='largest size also colorized whole in the memory rows')
  parser.add_argument('--peer-python', default='/tmp/peer-venv/bin/python')
  parser.add_argument('--child-size', type=int, help=argparse.SUPPRESS)
  parser.add_argument('--child-tile', type=int, default=0, help=argparse.SUPPRESS)
  args = parser.parse_args()
  jaxcolor.enable_fast_cpu_convolutions()
  if args.child_size:
    return child(args)
  sizes = [int(s) for s in args.sizes.split(',') if s]
  result = {'jax': jax.__version__, 'device': jax.devices()[0].device_kind,
            'date': time.strftime('%Y-%m-%d'), 'xla_flags': os.environ.get('XLA_FLAGS', '')}

  use_peer = (not args.no_peer and PEER.is_dir()
              and pathlib.Path(args.peer_python).exists())

  def bracketed(measure, peer_sizes, peer_train, pick):
    """The peer just before and just after jaxcolor: this machine's speed drifts
    by 10-20% over minutes, so each ratio uses the mean of the two peer runs."""
    if not use_peer:
      return measure(), None, []
    before = run_peer(args.peer_python, peer_sizes, peer_train)
    ours = measure()
    after = run_peer(args.peer_python, peer_sizes, peer_train)
    runs = [pick(before), pick(after)]
    return ours, statistics.mean(runs), runs

  result['gemm_gflops'] = gemm = gemm_gflops()
  predictor = inference.Predictor(paper_variables(paper_model_config()), paper_model_config())
  rows = []
  for size in sizes:
    row, peer_s, peer_runs = bracketed(
        lambda: bench_inference(predictor, [size], args.reps)[0], [size], False,
        lambda peer: peer['infer'][0]['median_s'])
    row.update(gemm_fraction=row['gflops'] / gemm, peer_s=peer_s, peer_runs_s=peer_runs,
               ratio_to_peer=peer_s and row['median_s'] / peer_s)
    rows.append(row)
  print(f'\njaxcolor {jax.__version__} on {result["device"]}; GEMM {gemm:.0f} GFLOP/s '
        '(GF/s: the direct convolutions\' FLOPs / time)')
  print(f'{"size":>5} {"net_s":>7} {"GF/s":>6} {"%GEMM":>6} {"peer_s":>7} {"ratio":>6} '
        f'{"e2e_s":>7}  peer before/after')
  for row in rows:
    print(f'{row["size"]:>5} {row["median_s"]:7.3f} {row["gflops"]:6.1f} '
          f'{100 * row["gemm_fraction"]:5.0f}% {row["peer_s"] or float("nan"):7.3f} '
          f'{row["ratio_to_peer"] or float("nan"):6.2f} {row["end_to_end_s"]:7.3f}  '
          + ' / '.join(f'{s:.3f}' for s in row['peer_runs_s']))
  result['infer'] = rows

  if not args.no_train:
    train, peer_rate, peer_runs = bracketed(bench_train, [], True,
                                            lambda peer: peer['train']['img_per_s'])
    train.update(peer_img_per_s=peer_rate, peer_runs_img_per_s=peer_runs,
                 ratio_to_peer=peer_rate and train['img_per_s'] / peer_rate)
    print(f'train b8 224: {train["median_step_s"]:.3f} s/step, {train["img_per_s"]:.2f} img/s'
          + (f', peer {peer_rate:.2f} img/s (before/after: '
             f'{" / ".join(f"{r:.2f}" for r in peer_runs)}), speed ratio '
             f'{train["ratio_to_peer"]:.2f}x' if peer_rate else ''))
    print(f'  per step: {train["minor_faults_per_step"]:.0f} minor page faults, '
          f'{train["system_cpu_s_per_step"]:.2f} s system CPU')
    result['train'] = train

  if not args.no_child:
    with tempfile.TemporaryDirectory() as cache:
      env = {'BENCH_CACHE_DIR': cache}
      cold, warm = run_child(512, env), run_child(512, env)
    result['compile'] = {'size': 512, 'first_call_cold_s': cold['first_call_s'],
                         'first_call_cached_s': warm['first_call_s'],
                         'steady_call_s': cold['second_call_s']}
    print(f'first call at 512: {cold["first_call_s"]:.2f} s cold, {warm["first_call_s"]:.2f} s '
          f'from the persistent cache (steady state {cold["second_call_s"]:.2f} s)')
    result['memory'] = []
    for size in (int(s) for s in args.memory_sizes.split(',')):
      for tile in (inference.DEFAULT_TILE, None):
        if tile and size <= tile or not tile and size > args.max_untiled:
          continue  # not tiled anyway / would not fit this machine
        run = run_child(size, {'JAXCOLOR_CACHE_DIR': ''}, tile)
        result['memory'].append({'size': size, 'tile': tile, 'peak_rss_gb': run['peak_rss_gb'],
                                 'seconds': run['second_call_s']})
        print(f'colorizing {size}x{size} {f"in tiles of {tile}" if tile else "whole"}: '
              f'peak RSS {run["peak_rss_gb"]:.2f} GB, {run["second_call_s"]:.2f} s')
  print(json.dumps(result))


if __name__ == '__main__':
  main()
