"""Write a trained model as one file that runs without jaxcolor.

  python export.py --format onnx --output colorizer.onnx       # the bundled model
  python export.py --checkpoint runs/mine/checkpoints --format stablehlo \
      --output colorizer.stablehlo --verify photo.jpg

StableHLO (jax.export; load with jax.export.deserialize) or ONNX (onnxruntime).
Inputs l and l_global (lightness in [0, 1], any sizes), plus the hint planes
`hints` for a model with hints and a scalar `temperature` for a bins model;
outputs rgb (sRGB in [0, 1]) and probabilities; see README "Export".
"""
import argparse

import jaxcolor
from jaxcolor.apps import export
from jaxcolor import checkpoint
from jaxcolor.commands import options
from jaxcolor import images
from jaxcolor import inference


def parse_args(argv):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  options.add_checkpoint(parser)
  parser.add_argument('--format', required=True, choices=export.FORMATS,
                      help='stablehlo (jax.export) or onnx')
  parser.add_argument('--output', required=True,
                      help='the file to write (StableHLO also writes OUTPUT.json)')
  parser.add_argument('--overwrite', action='store_true', help='replace existing files')
  parser.add_argument('--verify', metavar='IMAGE',
                      help='then colorize IMAGE with the file and with jaxcolor and print the '
                           'largest difference (exit 1 at one 8-bit level or more); a bins '
                           'model at the default temperature and at 1, a model with hints '
                           'without and with two hints')
  return parser.parse_args(argv)


def main(argv=None):
  args = parse_args(argv)
  jaxcolor.enable_fast_cpu_convolutions()  # for --verify's jaxcolor run, as infer.py
  try:
    export.check_outputs(args.format, args.output, args.overwrite)  # before the slow load
    model = checkpoint.load(checkpoint.model_or_bundled(args.checkpoint, 'export.py'))
    paths = export.export(model, args.format, args.output, args.overwrite)
    for path in paths:
      print(f'wrote {path} ({path.stat().st_size / 1e6:.1f} MB)')
    if args.verify:
      return verify(args.format, paths[0], model, args.verify)
  except (export.ExportError, checkpoint.CheckpointError) as e:
    options.error(e)
    return 1
  return 0


def verify(file_format, path, model, image):
  """Colorizes `image` with the written file and with `model` (checkpoint.load's
  result): a bins model at the default temperature and at 1, a model with hints with
  none and with two sample hints (export.checks); 0 if every result differs by less
  than one 8-bit level, else 1."""
  try:
    l_HxW = images.load_luminance(image).l
  except images.ImageError as e:
    raise export.ExportError(str(e)) from None
  predictor = inference.Predictor(*model, tile=None)
  run = export.LOADERS[file_format](path)
  checks = export.checks(predictor, *l_HxW.shape)
  levels = 255 * max(export.max_difference(run, predictor, l_HxW, temperature, hints)[0]
                     for temperature, hints in checks)
  print(f'{image}: largest sRGB difference from jaxcolor {levels:.4f} 8-bit levels'
        + (f' ({_described(checks)})' if len(checks) > 1 else ''))
  return 0 if levels < 1 else 1


def _described(checks):
  """What the checks covered, e.g. 'temperatures 0.38 and 1, without and with hints'."""
  parts = []
  temperatures = sorted({t for t, _ in checks if t is not None})
  if temperatures:
    parts.append('temperatures ' + ' and '.join(f'{t:g}' for t in temperatures))
  if any(h is not None for _, h in checks):
    parts.append('without and with hints')
  return ', '.join(parts)
