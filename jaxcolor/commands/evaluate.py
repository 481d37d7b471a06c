"""Score a model on a folder of colour photos against greyscale and mean-colour baselines.

  python evaluate.py --folder ../shared/data/val --output eval/     # the bundled model
  python evaluate.py --folder photos/ --checkpoint runs/mine/checkpoints --output eval/

Writes eval/results.json (summary, per source and per photo) and eval/contact_sheet.png
(grey input | colorized | original). Sub-folders of --folder are reported as
sources. With --teacher (an ImageNet classifier, requirements-label.txt) it
also reports how often the classifier names a colorized photo as it names the
original (Zhang et al. 2016's test). Protocol: docs/EVALUATION.md.
"""
import argparse
import json
import pathlib
import sys

from absl import logging

import jaxcolor
from jaxcolor.apps import evaluation
from jaxcolor import checkpoint
from jaxcolor import hints as hints_lib
from jaxcolor.commands import options

METHODS = (('model', 'model'), ('greyscale', 'greyscale baseline (a*b* = 0)'),
           ('mean_ab', 'constant mean a*b* baseline'))


def parse_args(argv):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--folder', required=True,
                      help='colour photos, searched recursively as infer.py and training do '
                           '(hidden files and folders and the --output folder left out)')
  parser.add_argument('--output', default='eval', help='folder for results.json and the sheet')
  options.add_checkpoint(parser)
  parser.add_argument('--max-side', type=int, default=evaluation.MAX_SIDE,
                      help='photos are shrunk to this longest side (default %(default)s)')
  parser.add_argument('--sheet-rows', type=int, default=24)
  parser.add_argument('--teacher', help='folder of a .tflite ImageNet classifier, e.g. '
                      '../shared/models/mobilenet_v2_imagenet (needs ai-edge-litert)')
  options.add_temperature(parser)
  parser.add_argument('--hints', type=int, default=0, metavar='N',
                      help='steer a model that takes hints with N hints simulated from each '
                           "photo's truth: seeded positions, 6 px patches at a short side of 256 "
                           '(docs/EVALUATION.md); default 0')
  options.add_strength(parser, 'score the colours at this strength, as infer.py --strength S '
                      '(default %(default)s)')
  parser.add_argument('--overwrite', action='store_true', help='replace earlier results')
  args = parser.parse_args(argv)
  if not 0 <= args.hints <= hints_lib.MAX_HINTS:
    parser.error(f'--hints must be from 0 to {hints_lib.MAX_HINTS}')
  return args


def print_table(summary, title='all'):
  teacher = 'teacher_agrees' in summary['model']
  print(f'{title}: {summary["photos"]} photos'.ljust(34) +
        f'{"PSNR dB":>8} {"SSIM":>6} {"colourful":>9} {"mean a*":>8} {"mean b*":>8}' +
        (f' {"teacher":>8}' if teacher else ''))
  for key, name in METHODS + (('ground_truth', 'ground truth'),):
    s = summary[key]
    quality = (f'{s["psnr"]:8.2f} {s["ssim"]:6.3f}' if 'psnr' in s else ' ' * 15)
    agree = f' {s["teacher_agrees"]:8.1%}' if 'teacher_agrees' in s else ''
    print(f'  {name:32}{quality} {s["colourfulness"]:9.1f} {s["mean_ab"][0]:8.2f} '
          f'{s["mean_ab"][1]:8.2f}{agree}')
  if 'label_agrees' in summary['model']:
    model = summary['model']
    print(f'  the model\'s top-1 is the teacher\'s on the original: {model["label_agrees"]:.1%}; '
          f'shown (confident): {model["label_shown"]:.1%}'
          + (f', of which the teacher\'s: {model["shown_label_agrees"]:.1%}'
             if 'shown_label_agrees' in model else ''))
  if 'scene_accuracy' in summary['model']:
    print(f'  scene accuracy {summary["model"]["scene_accuracy"]:.1%}')


def load_teacher(model_dir):
  """(classify, class names) of the teacher in model_dir (a clear error without it)."""
  from jaxcolor import teacher  # pylint: disable=g-import-not-at-top
  try:
    return teacher.litert_teacher(model_dir)
  except ImportError:
    raise SystemExit('error: --teacher needs ai-edge-litert: '
                     "pip install 'jaxcolor[label]' (in a clone: pip install -r requirements-label.txt)") from None
  except (FileNotFoundError, ValueError) as e:
    raise SystemExit(f'error: --teacher: {e}') from None


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
  try:
    predictor = options.load_predictor(args, 'evaluate.py --folder PHOTOS')
    if args.hints and not predictor.has_hints:
      raise ValueError(f'--hints: the model {predictor.path} takes no colour hints (it was '
                       'trained without model.hints)')
  except (checkpoint.CheckpointError, ValueError) as e:
    options.error(e)
    return 2
  photos, skipped = evaluation.load_colour_photos(args.folder, args.max_side, skip=output)
  for message in skipped:
    print(f'skipped {message}', file=sys.stderr)
  if not photos:
    print(f'error: {args.folder}: no colour photos to evaluate on', file=sys.stderr)
    return 2
  teacher, teacher_names = load_teacher(args.teacher) if args.teacher else (None, ())
  results, outputs = evaluation.evaluate(predictor, photos, teacher, args.strength, args.hints,
                                         teacher_names)
  results['protocol'] = {'folder': str(args.folder), 'max_side': args.max_side,
                         'strength': args.strength, 'temperature': args.temperature,
                         'hints': args.hints,
                         'checkpoint': str(predictor.path),
                         'teacher': args.teacher, 'skipped': skipped}
  output.mkdir(parents=True, exist_ok=True)
  results_path.write_text(json.dumps(results, indent=1))
  evaluation.contact_sheet(photos, outputs, sheet_path, rows=args.sheet_rows)
  print_table(results['summary'])
  for source, summary in results['summary'].get('by_source', {}).items():
    print_table(summary, source)
  print(f'wrote {results_path} and {sheet_path}')
  return 0
