"""Where a training step's time goes: every 3x3 convolution of the paper network
timed alone, forward / input gradient / weight gradient, and the step's page faults.

  python -m benchmarks.layers                 # batch 8 at 224 (the training row of bench.py)
  python -m benchmarks.layers --batch 1 --size 1024

Each convolution runs as training runs it on this backend (`ops.conv` with the
kernels of `ops.kernels_for`: on CPU, XLA's convolution with the stride-2
layers' phase-split input gradient) in its own jitted function, median of
--reps calls. The step row runs the real training step and reports minor page
faults and system CPU time per step, read from getrusage. Prints a table and a
final JSON line.
"""
import argparse
import json
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.bench import bench_train, median_time  # noqa: E402
import jaxcolor  # noqa: E402
from jaxcolor import model as model_lib  # noqa: E402
from jaxcolor import ops  # noqa: E402


def conv_layers(size, global_size=224):
  """(name, input side, input channels, output channels, stride) of every 3x3 conv."""
  layers, side, cin = [], size, 1

  def stack(prefix, spec, side, cin):
    for i, (channels, stride) in enumerate(spec, 1):
      layers.append((f'{prefix}/conv{i}', side, cin, channels, stride))
      side, cin = -(-side // stride), channels
    return side, cin

  side, trunk = stack('low_level', model_lib.LOW_LEVEL, side, cin)
  side, _ = stack('mid_level', model_lib.MID_LEVEL, side, trunk)
  stack('global', model_lib.GLOBAL_CONV, global_size // model_lib.STRIDE, trunk)
  cin = model_lib.FUSION
  for i, (channels, upsample) in enumerate(model_lib.COLORIZATION, 1):
    layers.append((f'colorization/conv{i}', side, cin, channels, 1))
    side, cin = side * (2 if upsample else 1), channels
  layers.append(('colorization/output', side, cin, 2, 1))
  return layers


def time_layer(batch, side, cin, cout, stride, reps):
  rng = np.random.default_rng(side * cin + cout)
  x = jnp.asarray(rng.standard_normal((batch, side, side, cin), np.float32))
  w = jnp.asarray(rng.standard_normal((3, 3, cin, cout), np.float32) * 0.05)

  def conv(x, w):
    return ops.conv(x, w, stride, ops.kernels_for())
  g = jnp.ones_like(conv(x, w))
  forward = jax.jit(conv)
  input_grad = jax.jit(lambda x, w, g: jax.vjp(lambda x: conv(x, w), x)[1](g)[0])
  weight_grad = jax.jit(lambda x, w, g: jax.vjp(lambda w: conv(x, w), w)[1](g)[0])
  return {'fwd_s': median_time(lambda: forward(x, w), 1, reps),
          'dx_s': median_time(lambda: input_grad(x, w, g), 1, reps) if cin > 1 else 0.0,
          'dw_s': median_time(lambda: weight_grad(x, w, g), 1, reps),
          'gflop': 2 * batch * (-(-side // stride)) ** 2 * 9 * cin * cout / 1e9}


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--batch', type=int, default=8)
  parser.add_argument('--size', type=int, default=224)
  parser.add_argument('--reps', type=int, default=5)
  parser.add_argument('--no-step', action='store_true', help='skip the training-step row')
  args = parser.parse_args()
  jaxcolor.enable_fast_cpu_convolutions()
  rows = []
  print(f'{"layer":22s} {"input":>15s} {"GFLOP":>6s} {"fwd ms":>7s} {"dx ms":>7s} {"dw ms":>7s}'
        f' {"fwd/dx/dw GFLOP/s":>18s}')
  for name, side, cin, cout, stride in conv_layers(args.size):
    row = {'layer': name, 'side': side, 'cin': cin, 'cout': cout, 'stride': stride,
           **time_layer(args.batch, side, cin, cout, stride, args.reps)}
    rows.append(row)
    rates = '/'.join(f'{row["gflop"] / row[k]:.0f}' if row[k] else '-'
                     for k in ('fwd_s', 'dx_s', 'dw_s'))
    print(f'{name:22s} {f"{side}x{side}x{cin}/{stride}":>15s} {row["gflop"]:6.2f} '
          f'{row["fwd_s"] * 1e3:7.1f} {row["dx_s"] * 1e3:7.1f} {row["dw_s"] * 1e3:7.1f} {rates:>18s}',
          flush=True)
  totals = {k: sum(r[k] for r in rows) for k in ('fwd_s', 'dx_s', 'dw_s')}
  print(f'{"sum":22s} {"":15s} {sum(r["gflop"] for r in rows):6.1f} '
        + ' '.join(f'{totals[k] * 1e3:7.0f}' for k in ('fwd_s', 'dx_s', 'dw_s'))
        + f'   all three: {sum(totals.values()):.2f} s')
  result = {'jax': jax.__version__, 'batch': args.batch, 'size': args.size, 'layers': rows,
            'totals_s': totals}
  if not args.no_step:
    result['step'] = step = bench_train(args.batch, args.size, args.reps)
    print(f'training step: {step["median_step_s"]:.2f} s; per step '
          f'{step["minor_faults_per_step"]:.0f} minor page faults, '
          f'{step["system_cpu_s_per_step"]:.2f} s system CPU')
  print(json.dumps(result))


if __name__ == '__main__':
  main()
