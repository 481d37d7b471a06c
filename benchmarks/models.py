"""Trained models' inference cost side by side, in one run: a table and a JSON line.

  python -m benchmarks.models --checkpoints bundled runs/mine/checkpoints
  python -m benchmarks.models --checkpoints bundled runs/a runs/b --sizes 224,1024 \
      --memory-sizes 4096,8192

For each checkpoint ('bundled': the bundled model): the median end-to-end
Predictor time (one photo in, colours out, as infer.py runs it) at each size, its
ratio to the first checkpoint's, and the peak RSS of a fresh process that
colorizes one photo at each memory size (tiled as infer.py tiles). Models are
measured in turns within each size, so drift in this machine's speed hits them alike.
"""
import argparse
import json
import os
import pathlib
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

import jaxcolor
from jaxcolor import checkpoint
from jaxcolor import inference

ROOT = pathlib.Path(__file__).resolve().parent.parent


def resolve(name):
  return checkpoint.BUNDLED if name == 'bundled' else name


def seconds_per_photo(predictor, size, reps):
  l = np.random.default_rng(size).random((size, size), np.float32)
  predictor(l)  # compiles for the size
  times = []
  for _ in range(reps):
    start = time.perf_counter()
    predictor(l)
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def child(path, size):
  """Runs in a fresh process: the peak RSS of colorizing one size x size photo."""
  predictor = inference.Predictor.from_checkpoint(resolve(path))
  predictor(np.random.default_rng(0).random((size, size), np.float32))
  print(json.dumps({'peak_rss_gb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}))


def peak_rss_gb(path, size):
  out = subprocess.run([sys.executable, '-m', 'benchmarks.models', '--child', path,
                        '--child-size', str(size)], capture_output=True, text=True,
                       check=True, cwd=ROOT, env={**os.environ, 'JAXCOLOR_CACHE_DIR': ''}).stdout
  return json.loads(out.strip().splitlines()[-1])['peak_rss_gb']


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--checkpoints', nargs='+', default=['bundled'])
  parser.add_argument('--sizes', default='224,1024')
  parser.add_argument('--reps', type=int, default=5)
  parser.add_argument('--memory-sizes', default='4096,8192')
  parser.add_argument('--child', help=argparse.SUPPRESS)
  parser.add_argument('--child-size', type=int, help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  jaxcolor.enable_fast_cpu_convolutions()
  if args.child:
    return child(args.child, args.child_size)
  sizes = [int(s) for s in args.sizes.split(',') if s]
  memory_sizes = [int(s) for s in args.memory_sizes.split(',') if s]
  predictors = {name: inference.Predictor.from_checkpoint(resolve(name))
                for name in args.checkpoints}
  rows = {name: {'checkpoint': name, 'seconds': {}, 'peak_rss_gb': {}} for name in predictors}
  for size in sizes:
    for name, predictor in predictors.items():
      rows[name]['seconds'][size] = seconds_per_photo(predictor, size, args.reps)
  for size in memory_sizes:
    for name in predictors:
      rows[name]['peak_rss_gb'][size] = peak_rss_gb(name, size)
  first = rows[args.checkpoints[0]]
  print(f'{"checkpoint":40}' + ''.join(f'{f"{s} s":>10}{"ratio":>7}' for s in sizes)
        + ''.join(f'{f"{s} GB":>10}{"ratio":>7}' for s in memory_sizes))
  for name, row in rows.items():
    row['time_ratio'] = {s: row['seconds'][s] / first['seconds'][s] for s in sizes}
    row['memory_ratio'] = {s: row['peak_rss_gb'][s] / first['peak_rss_gb'][s]
                           for s in memory_sizes}
    print(f'{name[-40:]:40}'
          + ''.join(f'{row["seconds"][s]:10.3f}{row["time_ratio"][s]:7.2f}' for s in sizes)
          + ''.join(f'{row["peak_rss_gb"][s]:10.2f}{row["memory_ratio"][s]:7.2f}'
                    for s in memory_sizes))
  print(json.dumps({'date': time.strftime('%Y-%m-%d'), 'models': list(rows.values())}))
  return 0


if __name__ == '__main__':
  sys.exit(main())
