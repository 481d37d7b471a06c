"""Plot a training run's loss and validation curves.

  python plot.py runs/mine        # -> runs/mine/curves.png

Training draws it when it ends; this draws it from WORKDIR/metrics.jsonl
at any time, for example while a run goes on.
"""
import argparse
import pathlib

from jaxcolor.commands import options
from jaxcolor.training import plots


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('workdir', nargs='?', default='.', help='a training run (default: here)')
  args = parser.parse_args(argv)
  metrics = pathlib.Path(args.workdir) / 'metrics.jsonl'
  if not metrics.is_file():
    options.error(f'{metrics}: no such file; is {args.workdir} a training workdir?')
    return 2
  plots.plot_curves(metrics, metrics.with_name('curves.png'))
  print(metrics.with_name('curves.png'))
  return 0
