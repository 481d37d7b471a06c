"""A local web page that colorizes photos: see `python serve.py --help`.

The command is jaxcolor/commands/serve.py (installed: `jaxcolor-serve`).
"""
import sys

from jaxcolor.commands.serve import main

if __name__ == '__main__':
  sys.exit(main())
