"""What the commands share: the options they have in common, and their error lines."""
import argparse
import sys

from jaxcolor import color

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


def error(message):
  """One `error: ...` line on stderr."""
  print(f'error: {message}', file=sys.stderr, flush=True)
