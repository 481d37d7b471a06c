"""One command style: every command is jaxcolor/commands/NAME.py with
`main(argv=None)` returning the exit status; a clone runs it as `python NAME.py`
(a thin script), an installed package as `jaxcolor-NAME`; the README lists it."""
import pathlib
import re
import subprocess
import sys
import tomllib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
COMMANDS = sorted(p.stem for p in (ROOT / 'jaxcolor' / 'commands').glob('*.py')
                  if p.stem not in ('__init__', 'options'))
THIN_SCRIPT = '''"""{doc}: see `python {name}.py --help`.

The command is jaxcolor/commands/{name}.py (installed: `jaxcolor-{name}`).
"""
import sys

from jaxcolor.commands.{name} import main

if __name__ == '__main__':
  sys.exit(main())
'''


def readme_commands():
  """{name: row} of the README's Commands table."""
  text = (ROOT / 'README.md').read_text()
  section = text[text.index('## Commands'):].split('\n## ')[0]
  table = next(block for block in section.split('\n\n') if block.startswith('|'))
  return {m.group(1): line for line in table.splitlines()
          if (m := re.match(r'\| `python (\w+)\.py', line))}


def test_every_command_has_its_script_entry_point_and_readme_row():
  assert set(COMMANDS) >= {'infer', 'train', 'evaluate', 'serve', 'export', 'label'}
  scripts = sorted(p.stem for p in ROOT.glob('*.py'))
  assert scripts == COMMANDS  # the clone's top level holds the commands and nothing else
  entry_points = tomllib.loads((ROOT / 'pyproject.toml').read_text())['project']['scripts']
  assert entry_points == {f'jaxcolor-{name}': f'jaxcolor.commands.{name}:main'
                          for name in COMMANDS}
  rows = readme_commands()
  assert sorted(rows) == COMMANDS
  for name in COMMANDS:
    assert f'`jaxcolor-{name}`' in rows[name], rows[name]
    script = (ROOT / f'{name}.py').read_text()
    doc = script.split(':')[0].lstrip('"')
    assert script == THIN_SCRIPT.format(doc=doc, name=name), name


@pytest.mark.parametrize('name', COMMANDS)
def test_help_describes_the_command(name):
  done = subprocess.run([sys.executable, f'{name}.py', '--help'], cwd=ROOT, capture_output=True,
                        text=True, timeout=120)
  # absl (train) ends --help with status 1, argparse with 0.
  assert done.returncode == (1 if name == 'train' else 0), done.stderr
  doc = (ROOT / 'jaxcolor' / 'commands' / f'{name}.py').read_text().split('\n')[0].strip('"')
  assert doc.split(':')[0].rstrip('.') in done.stdout, done.stdout[:300]
