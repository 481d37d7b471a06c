"""What size buckets cost and save: a table and JSON.

  python -m benchmarks.buckets                       # the bundled model
  python -m benchmarks.buckets --checkpoint runs/mine/checkpoints --sizes 1024x1024 333x517

For each size, in one process: the Predictor (the photo padded to its bucket,
jaxcolor/buckets.py) against the same network compiled for the photo's own size
(inference.colorize_l, what Predictor ran before buckets): the compile time of
each, the median of --repeats runs of each, and the largest difference of their
results in 8-bit levels.
"""
import argparse
import json
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

import jaxcolor
from jaxcolor import buckets
from jaxcolor import checkpoint
from jaxcolor import images
from jaxcolor import inference


def timed(function, repeats):
  """(seconds of the first call, median seconds of `repeats` more, the last result)."""
  start = time.perf_counter()
  result = jax.block_until_ready(function())
  first = time.perf_counter() - start
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    result = jax.block_until_ready(function())
    times.append(time.perf_counter() - start)
  return first, statistics.median(times), result


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--checkpoint', help='default: the bundled model')
  parser.add_argument('--sizes', nargs='+', default=['224x224', '512x512', '1024x1024',
                                                     '1030x1000', '1100x1300', '2048x2048'],
                      help='WIDTHxHEIGHT of each photo (default: %(default)s)')
  parser.add_argument('--repeats', type=int, default=5)
  parser.add_argument('--json', help='also write the rows here')
  args = parser.parse_args(argv)
  jaxcolor.enable_fast_cpu_convolutions()
  # Without the compilation cache: compile times as they are.
  predictor = inference.Predictor.from_checkpoint(checkpoint.model_or_bundled(args.checkpoint))
  exact = jax.jit(lambda v, x, g: inference.colorize_l(predictor.model, v, x, g, predictor.tile))
  rng = np.random.default_rng(0)
  rows = []
  print(f'{"photo":>10} {"bucket":>10} {"pixels x":>8} {"compile s":>10} {"(own size)":>10} '
        f'{"run s":>7} {"(own size)":>10} {"/ own":>6} {"levels":>6}')
  for size in args.sizes:
    width, height = (int(v) for v in size.split('x'))
    yy, xx = np.mgrid[:height, :width]
    l = np.clip(0.5 + 0.3 * np.sin(yy / 37) * np.cos(xx / 53) + 0.05 * rng.random((height, width)),
                0, 1).astype(np.float32)
    l_HxWx1 = jnp.asarray(l)[..., None]
    l_global = None if l.shape == (predictor.global_size,) * 2 else (
        inference.resize_to_square(l_HxWx1, predictor.global_size))
    bucket = tuple(buckets.bucket(buckets.padded_side(n)) for n in (height, width))
    compile_b, run_b, got = timed(lambda: predictor(l).rgb, args.repeats)
    compile_e, run_e, (want, _) = timed(lambda: exact(predictor.variables, l_HxWx1, l_global),
                                        args.repeats)
    levels = int(np.abs(images.to_uint8(got).astype(int) - images.to_uint8(np.asarray(want))).max())
    row = {'width': width, 'height': height, 'bucket': f'{bucket[1]}x{bucket[0]}',
           'padded_pixels': bucket[0] * bucket[1] / (width * height),
           'first_s': compile_b, 'first_own_size_s': compile_e, 'run_s': run_b,
           'run_own_size_s': run_e, 'ratio': run_b / run_e, 'max_levels': levels}
    rows.append(row)
    print(f'{size:>10} {row["bucket"]:>10} {row["padded_pixels"]:8.2f} {compile_b:10.2f} '
          f'{compile_e:10.2f} {run_b:7.3f} {run_e:10.3f} {row["ratio"]:6.2f} {levels:6d}')
  print('(compile s: the first call, compiling included; run s: the median of '
        f'{args.repeats} more)')
  if args.json:
    with open(args.json, 'w') as f:
      json.dump(rows, f, indent=1)
  print(json.dumps(rows))
  return 0


if __name__ == '__main__':
  sys.exit(main())
