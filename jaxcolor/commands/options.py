"""What the commands share: the options they have in common, and their error lines."""
import argparse
import sys

from jaxcolor import bins
from jaxcolor import color
from jaxcolor import inference

CHECKPOINT_HELP = ("a checkpoint folder, or a training run's checkpoints/ (its newest "
                   'step); default: the bundled model')


def add_checkpoint(parser):
  """--checkpoint; None means the bundled model (checkpoint.model_or_bundled decides)."""
  parser.add_argument('--checkpoint', help=CHECKPOINT_HELP)


def strength(text):
  """argparse type of --strength: color.parse_strength, with argparse's error line."""
  try:
    return color.parse_strength(text)
  except ValueError as e:
    raise argparse.ArgumentTypeError(str(e)) from None


def add_strength(parser, help_text):
  parser.add_argument('--strength', type=strength, default=1.0, metavar='S', help=help_text)


def add_temperature(parser):
  """--temperature; None keeps the model's default (bins.TEMPERATURE)."""
  parser.add_argument('--temperature', type=float, metavar='T',
                      help='for a model with a colour-distribution head: from 1 (the mean '
                           'colour: safe, pale) towards 0 (the likeliest: vivid, patchy); '
                           f'default {bins.TEMPERATURE:g}')


def load_predictor(args, command, **options):
  """The Predictor of `--checkpoint` (or the bundled model) with `--temperature`
  applied; raises checkpoint.CheckpointError or ValueError (a model without bins)."""
  predictor = inference.Predictor.for_command(args.checkpoint, command=command, **options)
  if args.temperature is not None:
    predictor.set_temperature(args.temperature)
  return predictor


def error(message):
  """One `error: ...` line on stderr."""
  print(f'error: {message}', file=sys.stderr, flush=True)
