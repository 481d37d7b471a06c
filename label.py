"""Label a folder of photos with an ImageNet classifier (data preparation): see `python label.py --help`.

The command is jaxcolor/commands/label.py (installed: `jaxcolor-label`).
"""
import sys

from jaxcolor.commands.label import main

if __name__ == '__main__':
  sys.exit(main())
