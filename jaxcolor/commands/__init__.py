"""The commands: each module's `main(argv=None)` parses a command line, calls the
library and returns the exit status (0 done, 1 some inputs failed, 2 nothing could
start). A clone runs them as `python NAME.py` (thin scripts at its top level); an
installed package as `jaxcolor-NAME` (pyproject.toml). Commands may import the
core and both wings; nothing imports them.
"""
