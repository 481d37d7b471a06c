"""Checks jaxcolor on an accelerator against the CPU, then times it: a table and a JSON line.

  python -m benchmarks.device_check                    # on a GPU / TPU (not yet run on one)
  python -m benchmarks.device_check --sizes 64 --quick  # anywhere, as a smoke test

1. Agreement. The bundled model (trained weights: a random network's outputs
   swing by tens of 8-bit levels when its input moves by 1e-3, so it could not
   tell rounding from a fault) colorizes the example photos at G x G (trunk
   shared with the global path) and 192x288 (global input rescaled) on the
   default device, in float32 and bfloat16 compute, with the kernels that
   backend picks (`ops.kernels_for`, or --kernels). The reference is float32
   on the CPU device (`jax.devices('cpu')`, CPU kernels). Compared: sRGB in
   8-bit levels (largest and mean difference) and scene probabilities, against
   TOLERANCE.
2. Inference: the paper network (random weights; --width scales it), one
   image at each --sizes, per dtype: the network as bench.py times it (rescale
   for the global path + forward), median seconds, TFLOP/s (`model.flops`) and
   MFU.
3. Training: the pmapped step on one device, --batch crops of 224x224, per
   dtype: images/s and MFU (3x the forward FLOPs per image).

MFU is model FLOP/s over the device's peak for the dtype: PEAK_TFLOPS by device
kind (dense datasheet numbers; float32 runs as TF32 on NVIDIA GPUs and as bf16
passes on TPUs by default) or --peak-tflops. Exits 1 when a check fails.
"""
import argparse
import json
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.bench import bench_train, median_time, network_fn  # noqa: E402
from benchmarks.bench import paper_config, paper_variables  # noqa: E402
import jaxcolor  # noqa: E402
from jaxcolor import checkpoint  # noqa: E402
from jaxcolor import images  # noqa: E402
from jaxcolor import inference  # noqa: E402
from jaxcolor import model as model_lib  # noqa: E402
from jaxcolor import ops  # noqa: E402

DTYPES = ('float32', 'bfloat16')
# Largest allowed difference from the CPU float32 reference: sRGB max and mean
# in 8-bit levels, probabilities max. bfloat16 on CPU differs by up to 3.3 /
# 0.26 / 2.3e-3; float32 allows for TF32 convolutions (the GPU default).
TOLERANCE = {'float32': {'rgb_max': 3.0, 'rgb_mean': 0.25, 'prob_max': 5e-3},
             'bfloat16': {'rgb_max': 12.0, 'rgb_mean': 1.0, 'prob_max': 2e-2}}
# Dense peak TFLOP/s (float32, bfloat16) by device_kind prefix; the longest match wins.
PEAK_TFLOPS = {
    'NVIDIA H200': (494.0, 989.0),   # TF32, BF16 (SXM)
    'NVIDIA H100': (494.0, 989.0),   # SXM
    'NVIDIA H100 PCIe': (378.0, 756.0),
    'NVIDIA A100': (156.0, 312.0),
    'NVIDIA L4': (60.0, 121.0),
    'TPU v4': (275.0, 275.0),
    'TPU v5 lite': (197.0, 197.0),   # v5e
    'TPU v5': (459.0, 459.0),        # v5p
    'TPU v6 lite': (918.0, 918.0),   # v6e (Trillium)
}


def peak_tflops(device_kind, override):
  """{dtype: peak TFLOP/s or None} for a device kind; `override` applies to both dtypes."""
  if override:
    return dict.fromkeys(DTYPES, override)
  matches = [kind for kind in PEAK_TFLOPS if device_kind.startswith(kind)]
  peaks = PEAK_TFLOPS[max(matches, key=len)] if matches else (None, None)
  return dict(zip(DTYPES, peaks))


def model_config(dtype, width):
  config = paper_config()
  config.model.dtype = dtype
  config.model.width = width
  return config


def example_photos(shape):
  """The example photos' L at `shape`, N x H x W in [0, 1]."""
  paths = sorted((ROOT / 'examples').glob('*.jpg'))
  return np.stack([np.asarray(jax.image.resize(images.load_luminance(p).l, shape, 'linear',
                                               antialias=True)) for p in paths])


def colorize_all(predictor, photos):
  predictions = [predictor(l) for l in photos]
  return (np.stack([p.rgb for p in predictions]),
          np.stack([p.probabilities for p in predictions]))


def with_dtype(model_config, dtype):
  config = model_config.copy_and_resolve_references()
  config.dtype = dtype
  return config


def check_agreement(args):
  """One row per (dtype, shape): the default device's differences from the CPU reference."""
  variables, config, _ = checkpoint.load(checkpoint.BUNDLED)
  cpu = jax.devices('cpu')[0]
  with jax.default_device(cpu):
    reference = inference.Predictor(jax.device_put(variables, cpu), with_dtype(config, 'float32'),
                                    kernels=ops.kernels_for('cpu'))
  predictors = {dtype: inference.Predictor(variables, with_dtype(config, dtype),
                                           kernels=args.kernels) for dtype in args.dtypes}
  rows = []
  for shape in ((config.global_size,) * 2, (192, 288)):
    photos = example_photos(shape)
    with jax.default_device(cpu):
      rgb_ref, prob_ref = colorize_all(reference, photos)
    for dtype, predictor in predictors.items():
      rgb, prob = colorize_all(predictor, photos)
      levels = 255 * np.abs(rgb - rgb_ref)
      row = {'dtype': dtype, 'shape': list(shape), 'rgb_max': float(levels.max()),
             'rgb_mean': float(levels.mean()), 'prob_max': float(np.abs(prob - prob_ref).max())}
      row['ok'] = all(row[k] <= limit for k, limit in TOLERANCE[dtype].items())
      rows.append(row)
  return rows


def utilisation(flops_per_s, peak_tflops):
  return {'tflops': flops_per_s / 1e12, 'mfu': peak_tflops and flops_per_s / (peak_tflops * 1e12)}


def time_inference(args, peaks):
  """One row per (dtype, size): the network's median seconds for one image."""
  variables = paper_variables(model_config('float32', args.width).model)
  rows = []
  for dtype in args.dtypes:
    predictor = inference.Predictor(variables, model_config(dtype, args.width).model,
                                    kernels=args.kernels)
    forward = network_fn(predictor)
    for size in args.sizes:
      l = jnp.asarray(np.random.default_rng(size).random((size, size, 1), np.float32))
      seconds = median_time(lambda: forward(predictor.variables, l), 1, args.reps)
      flops = model_lib.flops(size, size, multiplier=args.width)
      rows.append({'dtype': dtype, 'size': size, 'median_s': seconds,
                   **utilisation(flops / seconds, peaks[dtype])})
  return rows


def time_training(args, peaks, size=224):
  """One row per dtype: images/s of the training step on size x size crops."""
  rows = []
  for dtype in args.dtypes:
    result = bench_train(args.batch, size, args.reps, model_config(dtype, args.width),
                         args.kernels)
    flops = 3 * model_lib.flops(size, size, multiplier=args.width)  # forward + backward
    rows.append({'dtype': dtype, 'batch': args.batch, 'img_per_s': result['img_per_s'],
                 **utilisation(flops * result['img_per_s'], peaks[dtype])})
  return rows


def percent(fraction):
  return '-' if fraction is None else f'{100 * fraction:.1f}%'


def print_tables(result):
  print(f'jaxcolor {result["jax"]} on {result["device_kind"]} ({result["platform"]}), '
        f'{result["kernels"]} kernels; peak TFLOP/s {result["peak_tflops"]}')
  print(f'{"check":10} {"shape":>9} {"rgb max":>8} {"mean":>6} {"prob max":>9}  ok')
  for row in result['checks']:
    print(f'{row["dtype"]:10} {"x".join(map(str, row["shape"])):>9} {row["rgb_max"]:8.2f} '
          f'{row["rgb_mean"]:6.3f} {row["prob_max"]:9.2e}  {row["ok"]}')
  print(f'{"inference":10} {"size":>9} {"s":>8} {"TF/s":>6} {"MFU":>9}')
  for row in result['infer']:
    print(f'{row["dtype"]:10} {row["size"]:9d} {row["median_s"]:8.4f} {row["tflops"]:6.1f} '
          f'{percent(row["mfu"]):>9}')
  print(f'{"training":10} {"batch":>9} {"img/s":>8} {"TF/s":>6} {"MFU":>9}')
  for row in result['train']:
    print(f'{row["dtype"]:10} {row["batch"]:9d} {row["img_per_s"]:8.1f} {row["tflops"]:6.1f} '
          f'{percent(row["mfu"]):>9}')


def main(argv=None):
  parser = argparse.ArgumentParser()
  parser.add_argument('--sizes', default='224,512,1024,2048')
  parser.add_argument('--dtypes', default=','.join(DTYPES), help='of: ' + ', '.join(DTYPES))
  parser.add_argument('--batch', type=int, default=32, help='training crops per step')
  parser.add_argument('--reps', type=int, default=10)
  parser.add_argument('--width', type=float, default=1.0)
  parser.add_argument('--kernels', choices=ops.KERNELS,
                      help="the default device's kernels (default: its backend's)")
  parser.add_argument('--peak-tflops', type=float, help='the device peak, for every dtype')
  parser.add_argument('--no-train', action='store_true')
  parser.add_argument('--quick', action='store_true',
                      help='a smoke test: width 1/8, training batch 2, 2 repetitions')
  args = parser.parse_args(argv)
  jaxcolor.enable_fast_cpu_convolutions()  # the CPU reference (and --quick on CPU)
  if args.quick:
    args.width, args.batch, args.reps = 0.125, 2, 2
  device = jax.devices()[0]
  args.kernels = args.kernels or ops.kernels_for(device.platform)
  args.sizes = [int(s) for s in args.sizes.split(',') if s]
  args.dtypes = args.dtypes.split(',')
  peaks = peak_tflops(device.device_kind, args.peak_tflops)
  start = time.perf_counter()
  result = {'jax': jax.__version__, 'device_kind': device.device_kind,
            'platform': device.platform, 'kernels': args.kernels, 'width': args.width,
            'peak_tflops': peaks, 'date': time.strftime('%Y-%m-%d'),
            'checks': check_agreement(args), 'infer': time_inference(args, peaks),
            'train': [] if args.no_train else time_training(args, peaks)}
  result['ok'] = all(row['ok'] for row in result['checks'])
  result['seconds'] = time.perf_counter() - start
  print_tables(result)
  print(json.dumps(result))
  return 0 if result['ok'] else 1


if __name__ == '__main__':
  sys.exit(main())
