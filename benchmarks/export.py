"""The exported files against jaxcolor, in one run: a table and a JSON line.

  python -m benchmarks.export       # the bundled model at 512 and 1024 (~1.5 min on 2 cores)
  python -m benchmarks.export --checkpoint runs/mine/checkpoints --sizes 512,1024,2048

Exports the model as StableHLO and as ONNX (file sizes), then on a real photo
(examples/, its lightness resized to each size, and an odd size) times one
colorization three ways, alternating call by call so a shared machine's drift
hits all three alike: Predictor's whole call, the ONNX file in onnxruntime on
CPU, and the StableHLO file in jax (both through `jaxcolor.apps.export`'s loaders,
as the README's examples run them). Also reports each file's largest sRGB
difference from Predictor, in 8-bit levels.
"""
import argparse
import json
import pathlib
import statistics
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent

import jax  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

import jaxcolor  # noqa: E402
from jaxcolor.apps import export  # noqa: E402
from jaxcolor import checkpoint  # noqa: E402
from jaxcolor import images  # noqa: E402
from jaxcolor import inference  # noqa: E402

PHOTO = ROOT / 'examples' / 'AnselAdamsYosemite.jpg'
ODD = (333, 517)


def lightness_at(l_HxW, height, width):
  """A photo's lightness resized (bilinear) to height x width, float32."""
  resized = Image.fromarray(l_HxW).resize((width, height), Image.BILINEAR)
  return np.asarray(resized, np.float32)


def alternating_medians(runs, reps):
  """{name: median seconds}, the runs called in turn `reps` times after one warm-up."""
  times = {name: [] for name in runs}
  for name, run in runs.items():
    run()  # compiles
  for _ in range(reps):
    for name, run in runs.items():
      start = time.perf_counter()
      run()
      times[name].append(time.perf_counter() - start)
  return {name: statistics.median(seconds) for name, seconds in times.items()}


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--checkpoint', default=str(checkpoint.BUNDLED))
  parser.add_argument('--sizes', default='512,1024')
  parser.add_argument('--reps', type=int, default=7)
  args = parser.parse_args()
  jaxcolor.enable_fast_cpu_convolutions()  # as infer.py; the StableHLO file runs under it too
  folder = pathlib.Path(tempfile.mkdtemp(prefix='jaxcolor-export-'))
  files = {f: export.export(args.checkpoint, f, folder / f'model.{f}')[0]
           for f in export.FORMATS}
  predictor = inference.Predictor.from_checkpoint(args.checkpoint)
  loaded = {f: export.LOADERS[f](path) for f, path in files.items()}
  photo = images.load_luminance(PHOTO).l
  result = {'jax': jax.__version__, 'date': time.strftime('%Y-%m-%d'),
            'checkpoint': args.checkpoint,
            'file_mb': {f: path.stat().st_size / 1e6 for f, path in files.items()},
            'sizes': {}, 'max_difference_levels': {f: 0.0 for f in files}}
  shapes = [(int(s), int(s)) for s in args.sizes.split(',') if s] + [ODD]
  for height, width in shapes:
    l = lightness_at(photo, height, width)
    for f, run in loaded.items():
      difference = export.max_difference(run, predictor, l)[0] * 255
      result['max_difference_levels'][f] = max(result['max_difference_levels'][f], difference)
    if (height, width) == ODD:
      continue
    seconds = alternating_medians({
        'jaxcolor': lambda: predictor(l).rgb,
        **{f: (lambda run=run: run(l, l)) for f, run in loaded.items()}}, args.reps)
    result['sizes'][height] = seconds
  print_table(result)
  print(json.dumps(result))


def print_table(result):
  print(f"file sizes: {', '.join(f'{f} {mb:.1f} MB' for f, mb in result['file_mb'].items())}")
  print(f"largest sRGB difference from jaxcolor (8-bit levels, sizes "
        f"{', '.join(map(str, result['sizes']))} and {ODD[0]}x{ODD[1]}): "
        + ', '.join(f'{f} {d:.5f}' for f, d in result['max_difference_levels'].items()))
  print('| size | jaxcolor s | onnx s | onnx / jaxcolor | stablehlo s | stablehlo / jaxcolor |')
  print('|---:|---:|---:|---:|---:|---:|')
  for size, s in result['sizes'].items():
    print(f"| {size} | {s['jaxcolor']:.3f} | {s['onnx']:.3f} | {s['onnx'] / s['jaxcolor']:.2f} "
          f"| {s['stablehlo']:.3f} | {s['stablehlo'] / s['jaxcolor']:.2f} |")


if __name__ == '__main__':
  main()
