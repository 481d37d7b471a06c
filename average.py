"""Copy or average checkpoints into a standalone checkpoint: see `python average.py --help`.

The command is jaxcolor/commands/average.py (installed: `jaxcolor-average`).
"""
import sys

from jaxcolor.commands.average import main

if __name__ == '__main__':
  sys.exit(main())
