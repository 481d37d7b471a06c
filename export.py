"""Write a trained model as one StableHLO or ONNX file: see `python export.py --help`.

The command is jaxcolor/commands/export.py (installed: `jaxcolor-export`).
"""
import sys

from jaxcolor.commands.export import main

if __name__ == '__main__':
  sys.exit(main())
