"""Damaged versions of real image files: each is colorized or gets one clear error.

Hypothesis damages small real files (PNG 8- and 16-bit, grey, palette and RGBA;
JPEG with EXIF orientation, progressive and CMYK; an animated GIF; BMP; TIFF
plain, deflated and 16-bit; WebP lossy and lossless; ICO, PPM, TGA and DDS, and
JPEG 2000 and AVIF where Pillow reads them) with truncations, flipped, inserted,
deleted and overwritten bytes and rewritten header sizes (also 60000x60000 and
2**32-1 wide), or replaces them with junk (behind a format's signature or not).
Each case goes through `images.load_luminance` in this process, and as an upload
to a real serve.py running the tiny model. It must give an image of the size its
header declares (turned by its EXIF orientation), or ImageError naming the file
(TooManyPixels over the pixel limit) and 400 or 413 with that JSON error; the
server answers nothing else, each case takes under 10 s, and the server outlives
them all.

JAXCOLOR_FUZZ_EXAMPLES sets the number of cases each way (default: 200 in
process and 100 over HTTP, some 30 s once the tests' tiny checkpoint exists);
the long run, outside CI (2,000 each way: some 2 minutes more):

  JAXCOLOR_FUZZ_EXAMPLES=2000 python -m pytest -q tests/test_fuzz.py

Cases are derandomized (the same ones every run) and no example database is kept.
"""
import collections
import datetime
import io
import json
import os
import threading

import numpy as np
from PIL import Image, features
import pytest

pytest.importorskip('hypothesis', reason='pip install -r requirements-test.txt')
pytest.importorskip('starlette', reason='the web page needs pip install -r requirements-web.txt')

from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from benchmarks import hostile  # noqa: E402
from conftest import photo  # noqa: E402
from jaxcolor import images  # noqa: E402
import web_server  # noqa: E402

# Pillow warns about what it skips in damaged files (EXIF, TIFF tags): expected here.
pytestmark = pytest.mark.filterwarnings('ignore:::PIL')
EXAMPLES = os.environ.get('JAXCOLOR_FUZZ_EXAMPLES')
IN_PROCESS = int(EXAMPLES or 200)
OVER_HTTP = int(EXAMPLES or 100)
SECONDS = 10  # the most one case may take
# The pixel limit of both ways (serve.py --max-pixels): decodable cases stay small,
# so the tiny model colorizes each in well under SECONDS, compiling included.
LIMIT = 256 * 256
# Header sizes to declare: the real ones, small, around the limit, and huge.
SIDES = [0, 1, 2, 7, 16, 24, 33, 255, 256, 257, 1000, 5001, 60000, 65535, 2**31 - 1, 2**32 - 1]
MAGIC = [b'', b'\x89PNG\r\n\x1a\n', b'\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR', b'\xff\xd8\xff',
         b'GIF89a', b'BM', b'II*\x00', b'MM\x00*', b'RIFF\x00\x01\x00\x00WEBPVP8 ']
OUTCOMES = collections.Counter()  # (way, outcome): what the cases did, printed at the end


def real_files():
  """{name: bytes} of small real files (24x16; the rotated JPEG shows 16x24), in
  the formats uploads come in and some that Pillow also reads."""
  colour = Image.fromarray(photo('coffee')[100:116, 200:224])
  grey = colour.convert('L')
  deep = Image.fromarray(np.asarray(grey).astype(np.uint16) * 257 + 3)
  rotated = Image.Exif()
  rotated[0x0112] = 6  # stored sideways: shown rotated 90 degrees clockwise
  palette = colour.convert('P')
  return {
      'photo.png': hostile.encode(colour, 'PNG'),
      'grey.png': hostile.encode(grey, 'PNG'),
      'deep.png': hostile.encode(deep, 'PNG'),
      'palette.png': hostile.encode(palette, 'PNG', transparency=0),
      'rgba.png': hostile.encode(colour.convert('RGBA'), 'PNG'),
      'rotated.jpg': hostile.encode(colour, 'JPEG', exif=rotated, quality=90),
      'progressive.jpg': hostile.encode(grey, 'JPEG', progressive=True),
      'cmyk.jpg': hostile.encode(colour.convert('CMYK'), 'JPEG'),
      'animated.gif': hostile.encode(grey, 'GIF', save_all=True,
                                     append_images=[grey.point(lambda v: 255 - v)]),
      'scan.bmp': hostile.encode(colour, 'BMP'),
      'scan.tif': hostile.encode(grey, 'TIFF'),
      'deflate.tif': hostile.encode(colour, 'TIFF', compression='tiff_deflate'),
      'deep.tif': hostile.encode(deep, 'TIFF'),
      'lossy.webp': hostile.encode(colour, 'WEBP', exif=rotated),
      'lossless.webp': hostile.encode(grey, 'WEBP', lossless=True),
      'icon.ico': hostile.encode(colour, 'ICO', sizes=[colour.size]),
      'photo.ppm': hostile.encode(colour, 'PPM'),
      'photo.tga': hostile.encode(colour, 'TGA', compression='tga_rle'),
      'photo.dds': hostile.encode(colour, 'DDS'),
      **({'photo.jp2': hostile.encode(colour, 'JPEG2000')} if features.check('jpg_2000') else {}),
      **({'photo.avif': hostile.encode(colour, 'AVIF')} if features.check('avif') else {}),
  }


REAL = real_files()
POSITION = st.integers(0, 4096)  # taken modulo the file's length
JUNK = st.binary(min_size=1, max_size=64)
DAMAGE = st.one_of(
    st.tuples(st.just('truncate'), POSITION),
    st.tuples(st.just('flip'), POSITION, st.integers(1, 255)),
    st.tuples(st.just('insert'), POSITION, JUNK),
    st.tuples(st.just('delete'), POSITION, st.integers(1, 64)),
    st.tuples(st.just('overwrite'), POSITION, JUNK),
    st.tuples(st.just('declare_size'), st.sampled_from(SIDES), st.sampled_from(SIDES)),
)
CASES = st.one_of(
    # A real file with one to four kinds of damage, in order.
    st.tuples(st.sampled_from(sorted(REAL)), st.lists(DAMAGE, min_size=1, max_size=4)),
    # Junk under a real file's name, behind a format's signature or not.
    st.tuples(st.sampled_from(sorted(REAL)), st.sampled_from(MAGIC), st.binary(max_size=600)),
)


def damaged(case):
  """(name, bytes) of a drawn case."""
  if isinstance(case[1], bytes):
    name, magic, junk = case
    return name, magic + junk
  name, damage = case
  data = REAL[name]
  for kind, *args in damage:
    data = getattr(hostile, kind)(data, *args)
  return name, data


def fuzz_settings(examples):
  return settings(max_examples=examples, deadline=datetime.timedelta(seconds=SECONDS),
                  derandomize=True, database=None,
                  suppress_health_check=[HealthCheck.too_slow])


def loaded_or_refused(data, name):
  """What load_luminance makes of `data`, checked: (200, H x W) for an image,
  (413 or 400, the message) for an error; any other exception propagates, and a
  case still running after SECONDS fails."""
  result = {}

  def load():
    try:
      result['loaded'] = images.load_luminance(data, LIMIT, name)
    except BaseException as e:  # handed to the test's thread
      result['error'] = e

  thread = threading.Thread(target=load, daemon=True)
  thread.start()
  thread.join(SECONDS)
  assert not thread.is_alive(), f'{name}: load_luminance still running after {SECONDS} s'
  error = result.get('error')
  if isinstance(error, images.ImageError):
    message = str(error)
    assert message.startswith(f'{name}: ') and len(message) > len(name) + 4, message
    return (413 if isinstance(error, images.TooManyPixels) else 400), message
  if error is not None:
    raise error
  l = result['loaded'].l
  assert l.ndim == 2 and l.dtype == np.float32 and 0 < l.size <= LIMIT, l.shape
  assert np.isfinite(l).all() and l.min() >= 0 and l.max() <= 1
  with Image.open(io.BytesIO(data)) as image:  # EXIF may turn it a quarter
    assert l.shape in (image.size[::-1], image.size), (l.shape, image.size)
  return 200, l.shape


def print_outcomes(way):
  """Prints what the cases did (pytest -s shows it)."""
  counts = {what: n for (w, what), n in sorted(OUTCOMES.items()) if w == way}
  print(f'\n{way}: {sum(counts.values())} cases: '
        + ', '.join(f'{n} {what}' for what, n in counts.items()))


def outcome(status):
  return {200: 'colorized', 400: 'ImageError (400)', 413: 'TooManyPixels (413)'}[status]


def test_load_luminance_reads_or_refuses_damaged_files():
  @fuzz_settings(IN_PROCESS)
  @given(CASES)
  def one(case):
    name, data = damaged(case)
    status, _ = loaded_or_refused(data, name)
    OUTCOMES['in process', outcome(status)] += 1

  one()
  print_outcomes('in process')


@pytest.fixture(scope='module')
def server(tmp_path_factory, tiny_checkpoint):
  folder = tmp_path_factory.mktemp('fuzz')
  with web_server.serve(folder, '--checkpoint', tiny_checkpoint, '--max-pixels', LIMIT,
                        '--max-upload-mb', 1) as s:
    for name, data in REAL.items():  # the undamaged files, compiling the model for their sizes
      status, _, body = s.post('/api/colorize', {'image': (name, data)})
      assert status == 200, body[:300]
    yield s


def test_the_server_colorizes_or_refuses_damaged_uploads(server):
  @fuzz_settings(OVER_HTTP)
  @given(CASES)
  def one(case):
    name, data = damaged(case)
    expected, what = loaded_or_refused(data, name)
    body, content_type = web_server.multipart({'image': (name, data)}, {})
    status, headers, answer = server.request('POST', '/api/colorize', body,
                                             {'Content-Type': content_type}, timeout=SECONDS)
    assert status in (200, 400, 413), (status, answer[:300])
    assert status == expected, (status, answer[:300], what)
    if status == 200:
      with Image.open(io.BytesIO(answer)) as result:
        result.load()
        assert result.size == what[::-1]
    else:
      assert headers['Content-Type'] == 'application/json'
      assert json.loads(answer)['error'] == what
    OUTCOMES['over HTTP', outcome(status)] += 1

  one()
  assert server.process.poll() is None, 'the server died'
  status, _, _ = server.request('GET', '/api/info', timeout=SECONDS)
  assert status == 200
  assert 'Traceback' not in server.stderr.read_text(), server.stderr.read_text()[-3000:]
  print_outcomes('over HTTP')

