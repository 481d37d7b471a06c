"""The package installs from a clone into a fresh virtual environment, with the
bundled model and the web page's files, and colorizes from another folder."""
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parent.parent


def run(*command, cwd, env=None):
  done = subprocess.run([str(c) for c in command], cwd=cwd, env=env, capture_output=True,
                        text=True, timeout=600)
  assert done.returncode == 0, (command, done.stdout[-2000:], done.stderr[-2000:])
  return done.stdout


def test_wheel_installs_and_colorizes_from_another_folder(tmp_path):
  # Built from a copy: pip builds in the source tree, where an old build/ could leak in.
  source = tmp_path / 'source'
  shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
      '.git', 'build', '*.egg-info', '__pycache__', '.pytest_cache', 'runs', 'colorized'))
  run(sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '--quiet',
      '--wheel-dir', tmp_path / 'wheels', source, cwd=tmp_path)
  wheel, = (tmp_path / 'wheels').glob('jaxcolor-*.whl')
  # The dependencies are this machine's (system site-packages, as the test
  # requirements installed them); jaxcolor itself only from the wheel.
  venv = tmp_path / 'venv'
  run(sys.executable, '-m', 'venv', '--system-site-packages', venv, cwd=tmp_path)
  bin_dir = venv / 'bin'
  run(bin_dir / 'python', '-m', 'pip', 'install', '--no-deps', '--quiet', wheel, cwd=tmp_path)
  elsewhere = tmp_path / 'elsewhere'
  elsewhere.mkdir()
  env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
  where = run(bin_dir / 'python', '-c',
              'import jaxcolor, jaxcolor.checkpoint as c, jaxcolor.apps.web as w, pathlib; '
              'print(jaxcolor.__file__); print(c.BUNDLED.is_dir()); '
              'print((pathlib.Path(w.__file__).parent / "static" / "index.html").is_file())',
              cwd=elsewhere, env=env).split()
  assert where[0].startswith(str(venv)) and where[1:] == ['True', 'True'], where
  Image.fromarray(np.tile(np.linspace(0, 255, 40, dtype=np.uint8), (30, 1))).save(
      elsewhere / 'grey.png')
  out = run(bin_dir / 'jaxcolor-infer', '--image', 'grey.png', cwd=elsewhere, env=env)
  assert 'colorized' in out
  result = Image.open(elsewhere / 'colorized' / 'grey.png')
  assert result.size == (40, 30) and result.mode == 'RGB'
