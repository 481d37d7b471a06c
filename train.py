"""Train jaxcolor (one machine or many hosts): see `python train.py --help`.

The command is jaxcolor/commands/train.py (installed: `jaxcolor-train`).
"""
import sys

from jaxcolor.commands.train import main

if __name__ == '__main__':
  sys.exit(main())
