"""Colorize black-and-white photos and videos: see `python infer.py --help`.

The command is jaxcolor/commands/infer.py (installed: `jaxcolor-infer`).
"""
import sys

from jaxcolor.commands.infer import main

if __name__ == '__main__':
  sys.exit(main())
