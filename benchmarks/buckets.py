"""What size buckets cost and save: a table and JSON.

  python -m benchmarks.buckets                       # the bundled model
  python -m benchmarks.buckets --checkpoint runs/mine/checkpoints --sizes 1024x1024 333x517

For each size, in one process: the Predictor (the photo padded to its bucket,
jaxcolor/buckets.py) against what it ran before buckets, the same network compiled
for the photo's own size (inference.chrominance_l, its global rescale jitted too,
the outputs brought to numpy alike): the first call of each (compiling included),
the median of --repeats more of each (the two taken in turn, so that the
machine's drift reaches both), and the largest difference of their results in
8-bit levels.
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
from jaxcolor import color
from jaxcolor import images
from jaxcolor import inference


def seconds(function):
  start = time.perf_counter()
  result = function()
  return time.perf_counter() - start, result


def own_size_predictor(predictor):
  """L (H x W) -> sRGB as Predictor computed it before buckets: one program per size."""
  model, tile = predictor.model, predictor.tile

  def program(variables, l_HxWx1, l_global, temperature):
    ab01, logits = inference.chrominance_l(model, variables, l_HxWx1, l_global, tile, temperature)
    return (color.network_to_rgb(l_HxWx1, ab01), color.denormalize_ab(ab01),
            jax.nn.softmax(logits))

  program = jax.jit(program)
  to_global = jax.jit(lambda x: inference.resize_to_square(x, predictor.global_size))

  def colorize(l_HxW):
    l_HxWx1 = jnp.asarray(l_HxW)[..., None]
    shared = l_HxW.shape == (predictor.global_size,) * 2
    outputs = program(predictor.variables, l_HxWx1, None if shared else to_global(l_HxWx1),
                      jnp.float32(predictor.temperature))
    return [np.asarray(x) for x in outputs][0]
  return colorize


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
  own_size = own_size_predictor(predictor)
  rng = np.random.default_rng(0)
  rows = []
  print(f'{"photo":>10} {"bucket":>10} {"pixels x":>8} {"compile s":>10} {"(own size)":>10} '
        f'{"run s":>7} {"(own size)":>10} {"/ own":>6} {"levels":>6}')
  for size in args.sizes:
    width, height = (int(v) for v in size.split('x'))
    yy, xx = np.mgrid[:height, :width]
    l = np.clip(0.5 + 0.3 * np.sin(yy / 37) * np.cos(xx / 53) + 0.05 * rng.random((height, width)),
                0, 1).astype(np.float32)
    bucket = tuple(buckets.bucket(buckets.padded_side(n)) for n in (height, width))
    compile_b, got = seconds(lambda: predictor(l).rgb)
    compile_e, want = seconds(lambda: own_size(l))
    times_b, times_e = [], []
    for _ in range(args.repeats):
      times_b.append(seconds(lambda: predictor(l).rgb)[0])
      times_e.append(seconds(lambda: own_size(l))[0])
    run_b, run_e = statistics.median(times_b), statistics.median(times_e)
    levels = int(np.abs(images.to_uint8(got).astype(int) - images.to_uint8(want)).max())
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
