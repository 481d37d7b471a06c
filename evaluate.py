"""Score a model on a folder of colour photos: see `python evaluate.py --help`.

The command is jaxcolor/commands/evaluate.py (installed: `jaxcolor-evaluate`).
"""
import sys

from jaxcolor.commands.evaluate import main

if __name__ == '__main__':
  sys.exit(main())
