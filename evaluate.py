"""Score a model on a folder of colour photos against greyscale and mean-colour baselines.

  python evaluate.py --folder ../shared/data/val --output eval/     # the bundled model
  python evaluate.py --folder photos/ --checkpoint runs/mine/checkpoints --output eval/

Writes eval/results.json (summary and per-photo scores) and eval/contact_sheet.png
(grey input | colorized | original). Protocol: docs/EVALUATION.md.
"""
import argparse
import json
import pathlib
import sys

from absl import logging

import jaxcolor
from jaxcolor import checkpoint
from jaxcolor import evaluation
from jaxcolor import inference

METHODS = (('model', 'model'), ('greyscale', 'greyscale baseline (a*b* = 0)'),
           ('mean_ab', 'constant mean a*b* baseline'))


def parse_args(argv):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--folder', required=True,
                      help='colour photos, searched recursively as infer.py and training do '
                           '(hidden files and folders and the --output folder left out)')
  parser.add_argument('--output', default='eval', help='folder for results.json and the sheet')
  parser.add_argument('--checkpoint', help='default: the bundled model')
  parser.add_argument('--max-side', type=int, default=evaluation.MAX_SIDE,
                      help='photos are shrunk to this longest side (default %(default)s)')
  parser.add_argument('--sheet-rows', type=int, default=24)
  parser.add_argument('--overwrite', action='store_true', help='replace earlier results')
  return parser.parse_args(argv)


def print_table(summary):
  print(f'{summary["photos"]} photos   {"PSNR dB":>8} {"SSIM":>6} {"colourful":>9}')
  for key, name in METHODS:
    s = summary[key]
    print(f'{name:32} {s["psnr"]:8.2f} {s["ssim"]:6.3f} {s["colourfulness"]:9.1f}')
  print(f'{"ground truth":32} {"":8} {"":6} {summary["ground_truth"]["colourfulness"]:9.1f}')
  if 'scene_accuracy' in summary['model']:
    print(f'scene accuracy {summary["model"]["scene_accuracy"]:.1%}')


def main(argv=None):
  args = parse_args(argv)
  jaxcolor.enable_fast_cpu_convolutions()
  logging.set_verbosity(logging.ERROR)
  output = pathlib.Path(args.output)
  results_path, sheet_path = output / 'results.json', output / 'contact_sheet.png'
  if results_path.exists() and not args.overwrite:
    print(f'error: {results_path} already exists; use another --output or --overwrite',
          file=sys.stderr)
    return 2
  inference.enable_compilation_cache()
  try:
    predictor = inference.Predictor.from_checkpoint(args.checkpoint or checkpoint.BUNDLED)
  except checkpoint.CheckpointError as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  photos, skipped = evaluation.load_colour_photos(args.folder, args.max_side, skip=output)
  for message in skipped:
    print(f'skipped {message}', file=sys.stderr)
  if not photos:
    print(f'error: {args.folder}: no colour photos to evaluate on', file=sys.stderr)
    return 2
  results, outputs = evaluation.evaluate(predictor, photos)
  results['protocol'] = {'folder': str(args.folder), 'max_side': args.max_side,
                         'checkpoint': str(args.checkpoint or checkpoint.BUNDLED),
                         'skipped': skipped}
  output.mkdir(parents=True, exist_ok=True)
  results_path.write_text(json.dumps(results, indent=1))
  evaluation.contact_sheet(photos, outputs, sheet_path, rows=args.sheet_rows)
  print_table(results['summary'])
  print(f'wrote {results_path} and {sheet_path}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
