"""The commands: each module's `main(argv=None)` parses a command line, calls the
library and returns the exit status (0 when all went well; train's absl main
exits itself). A clone runs them as `python NAME.py` (thin scripts at its top level); an
installed package as `jaxcolor-NAME` (pyproject.toml). Commands may import the
core and both wings; nothing imports them.
"""
