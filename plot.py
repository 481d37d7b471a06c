"""Plot a training run's loss and validation curves: see `python plot.py --help`.

The command is jaxcolor/commands/plot.py (installed: `jaxcolor-plot`).
"""
import sys

from jaxcolor.commands.plot import main

if __name__ == '__main__':
  sys.exit(main())
