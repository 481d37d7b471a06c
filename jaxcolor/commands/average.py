"""Copy the model of a checkpoint into a new standalone checkpoint folder, or average several.

  python average.py runs/mine/checkpoints mine/                 # the newest step, alone
  python average.py runs/mine/checkpoints/{16000,18000,20000} averaged/

Copies weights, BatchNorm statistics, config and class names (no optimizer
state), as infer.py --checkpoint and evaluate.py --checkpoint read them. Given
several checkpoints of one model, writes their element-wise mean (Polyak
averaging after the fact).
"""
import argparse

from jaxcolor import checkpoint
from jaxcolor.commands import options


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('source', nargs='+',
                      help="a checkpoint folder, or a training run's checkpoints/ (its newest "
                      'finished step); several: average them')
  parser.add_argument('destination', help='a folder that does not exist yet')
  args = parser.parse_args(argv)
  try:
    if len(args.source) == 1:
      checkpoint.export(args.source[0], args.destination)
    else:
      checkpoint.average(args.source, args.destination)
  except checkpoint.CheckpointError as e:
    options.error(e)
    return 1
  print(f'wrote {args.destination}')
  return 0
