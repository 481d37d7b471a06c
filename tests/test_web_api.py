"""The web page's HTTP API against a real serve.py process on a free loopback port.

The server runs the tiny test network (saved as a real checkpoint) with a 2 MB
upload limit and a 2000x2000 pixel limit. Tests run in file order and share it;
the last one checks that it survived all of them. The tests after it start one
with serve.py's defaults and room for one photo request at a time.
"""
import asyncio
import concurrent.futures
import contextlib
import io
import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import numpy as np
from PIL import Image, PngImagePlugin
import pytest

pytest.importorskip('starlette', reason='the web page needs pip install -r requirements-web.txt')

from starlette import exceptions

from conftest import photo
from jaxcolor.apps.web import app
from jaxcolor.apps.web import uploads
from jaxcolor.apps.web import worker
from jaxcolor import color
from jaxcolor.commands import infer
from jaxcolor import images
from test_images import png_header_claiming
import web_server

CLASSES = ['beach', 'forest', 'street', 'room']  # the tiny checkpoint's scenes
GREY = Image.fromarray(photo('chelsea')[:40, :60]).convert('L')  # most photos: one size, one compile
COLOUR = Image.fromarray(photo('coffee')[:40, :60])


def encode(image, file_format, **options):
  data = io.BytesIO()
  image.save(data, format=file_format, **options)
  return data.getvalue()


def frames(file_format):
  return encode(GREY, file_format, save_all=True, append_images=[GREY.point(lambda v: 255 - v)])


def camera():
  """A JPEG with a second picture after it (MPO), as many phones and cameras write."""
  return frames('MPO')


def rotated():
  exif = Image.Exif()
  exif[0x0112] = 6  # stored sideways: shown rotated 90 degrees clockwise
  return encode(GREY, 'JPEG', exif=exif)


def with_big_chunk():
  """A valid 60x40 PNG of 1.2 MB (a text chunk): the server spools it to a temporary file."""
  info = PngImagePlugin.PngInfo()
  info.add_text('padding', 'x' * 1_200_000)
  return encode(GREY, 'PNG', pnginfo=info)


# name: (content, the result's format, its width x height)
GOOD = {
    'grey.png': (encode(GREY, 'PNG'), 'PNG', (60, 40)),
    'colour photo.jpg': (encode(COLOUR, 'JPEG'), 'JPEG', (60, 40)),
    'cmyk.jpg': (encode(COLOUR.convert('CMYK'), 'JPEG'), 'JPEG', (60, 40)),
    'rgba.png': (encode(COLOUR.convert('RGBA'), 'PNG'), 'PNG', (60, 40)),
    'la.png': (encode(GREY.convert('LA'), 'PNG'), 'PNG', (60, 40)),
    'one bit.png': (encode(GREY.convert('1'), 'PNG'), 'PNG', (60, 40)),
    'palette.png': (encode(COLOUR.convert('P'), 'PNG'), 'PNG', (60, 40)),
    'scan.bmp': (encode(GREY, 'BMP'), 'BMP', (60, 40)),
    'scan.tif': (encode(GREY, 'TIFF'), 'TIFF', (60, 40)),
    'scan.webp': (encode(GREY, 'WEBP'), 'WEBP', (60, 40)),
    'deep.png': (encode(Image.fromarray(np.asarray(GREY).astype(np.uint16) * 257), 'PNG'),
                 'PNG', (60, 40)),
    'deep.tif': (encode(Image.fromarray(np.asarray(GREY).astype(np.uint16) * 257), 'TIFF'),
                 'TIFF', (60, 40)),
    'actually_png.jpg': (encode(GREY, 'PNG'), 'JPEG', (60, 40)),  # the name decides
    'camera.jpg': (camera(), 'JPEG', (60, 40)),
    'no extension': (encode(GREY, 'JPEG'), 'PNG', (60, 40)),
    'animated.gif': (frames('GIF'), 'PNG', (60, 40)),
    'pages.tif': (frames('TIFF'), 'TIFF', (60, 40)),
    'bad exif.png': (encode(GREY, 'PNG', exif=b'\xff\xff\xbeZ\x17#\xff\xff' + b'\x00' * 32),
                     'PNG', (60, 40)),
    'big chunk.png': (with_big_chunk(), 'PNG', (60, 40)),
    'rotated.jpg': (rotated(), 'JPEG', (40, 60)),
    'dot.png': (encode(Image.new('L', (1, 1), 90), 'PNG'), 'PNG', (1, 1)),
    'small é.png': (encode(Image.new('L', (7, 5), 200), 'PNG'), 'PNG', (7, 5)),
}


def truncated(file_format, keep):
  data = encode(GREY, file_format)
  return data[:keep(len(data))]


# name: (content, HTTP status, what the error says)
HOSTILE = {
    'empty.jpg': (b'', 400, 'empty file'),
    'truncated.jpg': (truncated('JPEG', lambda n: n // 3), 400, 'damaged'),
    'truncated.png': (truncated('PNG', lambda n: 60), 400, 'damaged'),
    'random.jpg': (bytes(range(256)) * 4, 400, 'not an image'),
    'notes.jpg': (b'this is a text file', 400, 'not an image'),
    'bomb.png': (png_header_claiming(100_000, 100_000), 413, 'limit'),
    'over the limit.png': (png_header_claiming(2001, 2000), 413, 'limit'),
}


@pytest.fixture(scope='module')
def server(tmp_path_factory, tiny_checkpoint):
  folder = tmp_path_factory.mktemp('web_api')
  (folder / 'tmp').mkdir()
  with web_server.serve(folder, '--checkpoint', tiny_checkpoint, '--max-upload-mb', 2,
                        '--max-pixels', 2000 * 2000, env={'TMPDIR': str(folder / 'tmp')}) as s:
    yield s


def colorize(server, name, data, **fields):
  status, headers, body = server.post('/api/colorize', {'image': (name, data)}, fields)
  assert status == 200, body[:300]
  return headers, Image.open(io.BytesIO(body))


@pytest.mark.parametrize('name', GOOD)
def test_good_photos_come_back_at_their_size_in_their_format(server, name):
  data, file_format, size = GOOD[name]
  headers, result = colorize(server, name, data)
  assert (result.format, result.size, result.mode) == (file_format, size, 'RGB')
  assert headers['Content-Type'] == Image.MIME[file_format]
  stem = name.rsplit('.', 1)[0].encode('ascii', 'replace').decode().replace('?', '_')
  download_name = re.search('filename="([^"]*)"', headers['Content-Disposition']).group(1)
  assert download_name.startswith(f'{stem}-colorized.')
  assert images.output_format(download_name) == file_format


@pytest.mark.parametrize('name', HOSTILE)
def test_hostile_files_get_an_error_naming_the_file_and_the_problem(server, name):
  data, expected_status, problem = HOSTILE[name]
  start = time.perf_counter()
  status, message = server.error('/api/colorize', {'image': (name, data)})
  assert status == expected_status and message.startswith(f'{name}: ') and problem in message
  assert time.perf_counter() - start < 10  # a forged header is refused without decoding


@pytest.mark.parametrize('fields,files,problem', [
    ({}, {}, 'no image'),
    ({'image': 'text, not a file'}, {}, 'no image'),
    ({'strength': 'strong'}, {'image': ('grey.png', GOOD['grey.png'][0])}, 'strength'),
    ({'strength': '2.5'}, {'image': ('grey.png', GOOD['grey.png'][0])}, 'strength'),
    ({'strength': 'nan'}, {'image': ('grey.png', GOOD['grey.png'][0])}, 'strength'),
    ({'temperature': '0.5'}, {'image': ('grey.png', GOOD['grey.png'][0])},
     'colour-distribution head'),  # the tiny model predicts colours directly
    ({}, {'image': ('grey.png', GOOD['grey.png'][0]), 'style': ('mood.jpg', b'no')},
     'mood.jpg: not an image'),
])
def test_bad_requests_say_what_is_wrong(server, fields, files, problem):
  status, message = server.error('/api/colorize', files, fields)
  assert status == 400 and problem in message, message


def test_requests_that_are_not_forms(server):
  status, headers, body = server.request('POST', '/api/colorize', b'{"image": 1}',
                                         {'Content-Type': 'application/json'})
  assert status == 400 and 'no image' in json.loads(body)['error']
  status, headers, body = server.request('POST', '/api/colorize', b'--x\r\ngarbage',
                                         {'Content-Type': 'multipart/form-data'})
  assert 400 <= status < 500 and json.loads(body)['error']
  status, _, body = server.request('GET', '/api/colorize')
  assert status == 405 and json.loads(body)['error']


def test_an_upload_over_the_limit_is_refused(server):
  data = bytes(3 * 2**20)  # over the 2 MB limit
  status, message = server.error('/api/colorize', {'image': ('huge.png', data)})
  assert status == 413 and 'more than the limit of 2 MB' in message
  # Without a Content-Length (chunked), counted as it arrives.
  body, content_type = web_server.multipart({'image': ('huge.png', data)}, {})
  chunks = (body[i:i + 2**16] for i in range(0, len(body), 2**16))
  status, _, answer = server.request('POST', '/api/colorize', chunks,
                                     {'Content-Type': content_type})  # sent chunked
  assert status == 413 and 'limit' in json.loads(answer)['error']


def test_strength_and_side_by_side_are_what_infer_writes(server, tiny_checkpoint, tmp_path):
  source = tmp_path / 'photo.png'
  source.write_bytes(GOOD['grey.png'][0])
  for strength, side_by_side in [(1.5, False), (0.6, True)]:
    out = tmp_path / f'cli_{strength}.png'
    assert infer.main(['--image', str(source), '--checkpoint', str(tiny_checkpoint),
                       '--output', str(out), '--strength', str(strength)]
                      + ['--side-by-side'] * side_by_side) == 0
    _, result = colorize(server, 'photo.png', source.read_bytes(), strength=strength,
                         side_by_side=int(side_by_side))
    np.testing.assert_array_equal(np.asarray(result), np.asarray(Image.open(out)))
  _, grey = colorize(server, 'photo.png', source.read_bytes(), strength=0)
  channels = np.asarray(grey, np.int16)
  assert np.abs(channels - channels[..., :1]).max() <= 1  # strength 0: grey


def test_downloads_are_the_files_infer_writes(server, tiny_checkpoint, tmp_path):
  # upload name: (its content from GOOD, the file infer.py writes for it)
  uploads = {'IMG_0001.JPG': ('camera.jpg', 'IMG_0001.JPG'),
             'actually_png.jpg': ('actually_png.jpg', 'actually_png.jpg'),
             'animated.gif': ('animated.gif', 'animated.png'),
             'no extension': ('no extension', 'no extension.png')}
  (tmp_path / 'in').mkdir()
  for name, (content, _) in uploads.items():
    (tmp_path / 'in' / name).write_bytes(GOOD[content][0])
  assert infer.main(['--image', *[str(tmp_path / 'in' / name) for name in uploads],
                     '--checkpoint', str(tiny_checkpoint), '--output', str(tmp_path / 'out')]) == 0
  for name, (content, written) in uploads.items():
    status, headers, body = server.post('/api/colorize', {'image': (name, GOOD[content][0])})
    written = tmp_path / 'out' / written
    assert status == 200 and body == written.read_bytes(), name
    assert f'filename="{written.stem}-colorized{written.suffix}"' in (
        headers['Content-Disposition'])


def test_lab_gives_labels_and_the_colours_at_any_strength(server):
  data = GOOD['colour photo.jpg'][0]
  status, headers, body = server.post('/api/lab', {'image': ('colour photo.jpg', data)})
  assert status == 200 and headers['Content-Type'] == 'application/octet-stream'
  meta, l, ab = web_server.read_lab(body)
  assert (meta['width'], meta['height'], meta['format']) == (60, 40, 'JPEG')
  assert meta['download_name'] == 'colour photo-colorized.jpg'
  assert any('colour photo' in note for note in meta['notes'])
  names = [label['name'] for label in meta['labels']]
  probabilities = [label['probability'] for label in meta['labels']]
  assert len(names) == 3 and set(names) <= set(CLASSES)
  assert probabilities == sorted(probabilities, reverse=True) and sum(probabilities) <= 1
  np.testing.assert_allclose(l / color.L_MAX, images.load_luminance(data).l, atol=1e-5)
  # What the page draws from these planes is the file the API writes, within
  # one 8-bit level (the planes are 16-bit).
  for strength in (0.0, 1.0, 1.7):
    drawn = images.to_uint8(color.with_strength(l / color.L_MAX, ab, strength))
    _, written = colorize(server, 'photo.png', encode(Image.open(io.BytesIO(data)), 'PNG'),
                          strength=strength)
    assert np.abs(drawn.astype(int) - np.asarray(written, int)).max() <= 1


def test_a_mood_photo_changes_the_colours(server):
  data = GOOD['grey.png'][0]
  mood = encode(Image.fromarray(photo('rocket')[:90, :120]), 'JPEG')
  _, _, plain = server.post('/api/lab', {'image': ('grey.png', data)})
  status, _, styled = server.post('/api/lab', {'image': ('grey.png', data),
                                                'style': ('rocket.jpg', mood)})
  assert status == 200 and web_server.read_lab(styled)[0]['style'] == 'rocket.jpg'
  assert np.abs(web_server.read_lab(styled)[2] - web_server.read_lab(plain)[2]).mean() > 0.5


def test_eight_concurrent_uploads_all_finish_while_the_server_answers(server):
  stalled = server.stalled_upload()  # a client that stalls half-way holds no one up
  try:
    names = ['grey.png', 'colour photo.jpg', 'scan.tif', 'rotated.jpg'] * 2
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
      futures = [pool.submit(colorize, server, name, GOOD[name][0], strength=0.25 * i)
                 for i, name in enumerate(names)]
      start = time.perf_counter()
      status, _, _ = server.request('GET', '/api/info')
      assert status == 200 and time.perf_counter() - start < 10  # not behind the model
      results = [future.result(timeout=300)[1] for future in futures]
    assert [r.size for r in results] == [GOOD[name][2] for name in names]
  finally:
    stalled.close()


def test_only_the_page_and_its_assets_are_served(server):
  status, headers, page = server.request('GET', '/')
  assert status == 200 and b'/static/app.js' in page
  assert "default-src 'self'" in headers['Content-Security-Policy']
  for asset in ('app.js', 'style.css'):
    status, _, body = server.request('GET', f'/static/{asset}')
    assert status == 200 and b'http://' not in body and b'https://' not in body  # no CDN
  for path in ['/static/../serve.py', '/static/%2e%2e/app.py', '/static/..%2fapp.py',
               '/static/%2e%2e%2f%2e%2e%2fserve.py', '/../serve.py', '/serve.py',
               '/static/../../../../../../etc/passwd', '/static//etc/passwd',
               '/static/%2fetc%2fpasswd', '/jaxcolor/apps/web/app.py']:
    status, _, body = server.request('GET', path)
    assert status in (400, 404) and b'import' not in body and b'root:' not in body, path


def test_requests_for_other_host_names_are_refused(server):
  """A page elsewhere whose name is made to point at 127.0.0.1 (DNS rebinding) sends
  its own name as the Host header: the server refuses it."""
  for host in ['evil.example', f'evil.example:{server.port}', '127.0.0.1.evil.example']:
    status, _, body = server.request('GET', '/api/info', headers={'Host': host})
    assert status == 400 and b'max_pixels' not in body, host
    status, _, body = server.post('/api/lab', {'image': ('grey.png', GOOD['grey.png'][0])},
                                  headers={'Host': host})
    assert status == 400 and b'labels' not in body, host
  for host in [f'localhost:{server.port}', f'127.0.0.1:{server.port}', 'localhost', '[::1]']:
    status, _, _ = server.request('GET', '/api/info', headers={'Host': host})
    assert status == 200, host


def test_an_unexpected_failure_is_logged_and_answered_without_its_details(caplog):
  def job():
    raise RuntimeError('/home/someone/private/path')

  with pytest.raises(exceptions.HTTPException) as raised:
    asyncio.run(worker.Colorizer(predictor=None, max_pixels=1).run('photo.png', job))
  assert raised.value.status_code == 500 and raised.value.detail.startswith('photo.png: ')
  assert 'private' not in raised.value.detail
  assert 'photo.png: failed' in caplog.text and '/home/someone/private' in caplog.text


def test_a_taken_port_is_a_clear_error(server):
  result = subprocess.run([sys.executable, str(web_server.ROOT / 'serve.py'), '--port',
                           str(server.port)], capture_output=True, text=True, timeout=120)
  assert result.returncode == 2 and f'cannot listen on 127.0.0.1 port {server.port}' in (
      result.stderr)


def open_files(server):
  """Where the server process's open file descriptors point (from Linux's /proc)."""
  paths = []
  for fd in pathlib.Path(f'/proc/{server.process.pid}/fd').iterdir():
    with contextlib.suppress(FileNotFoundError):  # closed meanwhile
      paths.append(os.readlink(fd))
  return paths


def spooled(server):
  """The server's open files in its temporary folder: uploads over 1 MB."""
  tmp = os.path.realpath(server.stdout.parent / 'tmp')
  return [path for path in open_files(server) if path.startswith(tmp + os.sep)]


def wait_until(condition, what, timeout=30):
  deadline = time.monotonic() + timeout
  while not condition():
    assert time.monotonic() < deadline, f'not within {timeout} s: {what}'
    time.sleep(0.05)


def test_uploads_leave_no_file_open(server):
  if not pathlib.Path('/proc/self/fd').is_dir():
    pytest.skip('counts open files from /proc (Linux)')
  before = len(open_files(server))
  for _ in range(3):
    colorize(server, 'big chunk.png', GOOD['big chunk.png'][0])
    assert not spooled(server)
  stalled = server.stalled_upload(b'x' * 1_200_000)
  try:
    wait_until(lambda: spooled(server), 'the stalled upload is spooled to a temporary file')
  finally:
    stalled.close()
  wait_until(lambda: not spooled(server), "the abandoned upload's temporary file is closed")
  wait_until(lambda: len(open_files(server)) <= before, 'the server holds no more files')


def test_the_server_is_still_up(server):
  assert server.host == '127.0.0.1'  # loopback unless --host says otherwise
  status, _, body = server.request('GET', '/api/info')
  assert status == 200 and json.loads(body)['max_upload_bytes'] == 2 * 2**20
  assert server.process.poll() is None
  assert 'Traceback' not in server.stderr.read_text(), server.stderr.read_text()


@pytest.fixture(scope='module')
def one_place_server(tmp_path_factory, tiny_checkpoint):
  """serve.py with its defaults, but room for one photo request at a time."""
  folder = tmp_path_factory.mktemp('web_one_place')
  with web_server.serve(folder, '--checkpoint', tiny_checkpoint, '--max-queue', 1) as s:
    yield s


PROBE = {'image': ('notes.jpg', b'a text file')}  # answered 400 at once when it gets a place


def first_answer(server, status, timeout=30):
  """(status, error) of the first of repeated PROBE requests that answers `status`."""
  deadline = time.monotonic() + timeout
  while (answer := server.error('/api/colorize', PROBE))[0] != status:
    assert time.monotonic() < deadline, f'no {status} within {timeout} s: {answer}'
    time.sleep(0.05)
  return answer


def test_the_default_limits(one_place_server):
  status, _, body = one_place_server.request('GET', '/api/info')
  info = json.loads(body)
  assert (info['max_pixels'], info['max_upload_bytes'], info['max_queue']) == (
      5000 * 5000, 64 * 2**20, 1)
  assert (info['max_strength'], info['temperature'], info['max_temperature']) == (2, None, 1)
  status, message = one_place_server.error(
      '/api/colorize', {'image': ('flat.png', png_header_claiming(5001, 5000))})
  assert status == 413 and 'limit of 25000000' in message


def test_a_full_queue_answers_503_until_a_place_is_free(one_place_server):
  stalled = one_place_server.stalled_upload()  # under way: it takes the one place
  try:
    _, message = first_answer(one_place_server, 503)
    assert 'busy' in message and '--max-queue' in message
  finally:
    stalled.close()
  assert 'not an image' in first_answer(one_place_server, 400)[1]


def test_ctrl_c_stops_the_server_during_a_stalled_upload(one_place_server):
  stalled = one_place_server.stalled_upload()
  try:
    first_answer(one_place_server, 503)  # the stalled upload is under way
    one_place_server.process.send_signal(signal.SIGINT)
    assert one_place_server.process.wait(timeout=30) == 130
  finally:
    stalled.close()
  assert 'KeyboardInterrupt' not in one_place_server.stderr.read_text()


@pytest.fixture(scope='module')
def steerable_server(tmp_path_factory, steerable_checkpoint):
  """serve.py with a tiny model that takes hints and has a colour-distribution head."""
  folder = tmp_path_factory.mktemp('web_steerable')
  with web_server.serve(folder, '--checkpoint', steerable_checkpoint) as s:
    yield s


HINTS = {'version': 1, 'hints': [{'x': 10, 'y': 12, 'size': 5, 'color': '#2050e0'},
                                 {'x': 50, 'y': 30, 'ab': [40.0, 20.0]}]}


def test_hints_give_the_bytes_infer_writes_with_the_same_file(steerable_server,
                                                              steerable_checkpoint, tmp_path):
  status, _, body = steerable_server.request('GET', '/api/info')
  info = json.loads(body)
  assert info['takes_hints'] and info['max_hints'] == 1000 and info['temperature'] == 0.38
  data = GOOD['colour photo.jpg'][0]  # 60 x 40
  (tmp_path / 'photo.jpg').write_bytes(data)
  (tmp_path / 'photo.jpg.json').write_text(json.dumps(HINTS))
  assert infer.main(['--image', str(tmp_path / 'photo.jpg'), '--checkpoint',
                     str(steerable_checkpoint), '--hints', str(tmp_path / 'photo.jpg.json'),
                     '--output', str(tmp_path / 'out.jpg')]) == 0
  status, _, steered = steerable_server.post('/api/colorize', {'image': ('photo.jpg', data)},
                                             {'hints': json.dumps(HINTS)})
  assert status == 200 and steered == (tmp_path / 'out.jpg').read_bytes()
  _, _, plain = steerable_server.post('/api/colorize', {'image': ('photo.jpg', data)})
  assert plain != steered
  status, _, body = steerable_server.post('/api/lab', {'image': ('photo.jpg', data)},
                                          {'hints': json.dumps(HINTS)})
  assert status == 200 and web_server.read_lab(body)[0]['hints'] == 2


@pytest.mark.parametrize('hints, problem', [
    ('{"version": 1, "hints": [{"x": 60, "y": 0, "ab": [0, 0]}]}',
     'photo.jpg: hints: hint 0: the point (60, 0) is outside the 60x40 image'),
    ('{"version": 1, "hints": [', 'photo.jpg: hints: not valid JSON'),
    ('{"version": 1, "hints": [{"x": 1, "y": 1, "ab": [NaN, 0]}]}', 'NaN is not a number'),
    ('{"version": 7, "hints": []}', 'photo.jpg: hints: unknown version 7'),
])
def test_bad_hints_are_400_naming_the_photo_and_the_hint(steerable_server, hints, problem):
  for path in ('/api/colorize', '/api/lab'):
    status, error = steerable_server.error(path, {'image': ('photo.jpg', GOOD['colour photo.jpg'][0])},
                                           {'hints': hints})
    assert status == 400 and problem in error, error


def test_suggestions_are_the_likeliest_colours_at_a_pixel(steerable_server, server):
  data = {'image': ('photo.jpg', GOOD['colour photo.jpg'][0])}
  status, _, body = steerable_server.post('/api/suggest', data, {'x': '5', 'y': '7'})
  colours = json.loads(body)['colours']
  assert status == 200 and len(colours) == app.SUGGESTIONS
  probabilities = [c['probability'] for c in colours]
  assert probabilities == sorted(probabilities, reverse=True) and sum(probabilities) <= 1
  assert all(len(c['ab']) == 2 for c in colours)
  status, error = steerable_server.error('/api/suggest', data, {'x': '60', 'y': '0'})
  assert status == 400 and 'the point (60, 0) is outside the 60x40 image' in error
  assert steerable_server.error('/api/suggest', data, {'x': 'left'})[0] == 400
  # A model without bins has no distribution to offer; one without hints refuses them.
  status, _, body = server.post('/api/suggest', data, {'x': '5', 'y': '7'})
  assert status == 200 and json.loads(body)['colours'] == []
  status, error = server.error('/api/colorize', data, {'hints': json.dumps(HINTS)})
  assert status == 400 and 'takes no colour hints' in error
  status, error = steerable_server.error('/api/colorize', {**data, 'style': data['image']},
                                         {'hints': json.dumps(HINTS)})
  assert status == 400 and 'cannot be combined' in error


def test_the_last_photo_is_decoded_once_for_all_its_hint_changes(monkeypatch):
  """The page sends the same photo with every hint change: the worker decodes it once,
  keeps only the last photo, and not one over LAST_PHOTO_PIXELS."""
  def upload(name, array):
    data = io.BytesIO()
    Image.fromarray(array).save(data, 'PNG')
    return uploads.Upload(name, data.getvalue())

  colorizer = worker.Colorizer(predictor=None, max_pixels=images.MAX_PIXELS)
  grey = np.tile(np.arange(40, dtype=np.uint8) * 6, (30, 1))
  first = colorizer.load(upload('a.png', grey), None)[0]
  assert first.l.shape == (30, 40)
  assert colorizer.load(upload('a.png', grey), None)[0] is first  # not decoded again
  assert colorizer.load(upload('b.png', grey), None)[0] is not first  # its name is in messages
  other = colorizer.load(upload('a.png', grey[::-1]), None)[0]
  np.testing.assert_array_equal(other.l, first.l[::-1])
  again = colorizer.load(upload('a.png', grey), None)[0]
  assert again is not first and np.array_equal(again.l, first.l)  # only the last is kept
  monkeypatch.setattr(worker, 'LAST_PHOTO_PIXELS', 30 * 40)  # at most: kept
  kept = upload('c.png', grey)
  assert colorizer.load(kept, None)[0] is colorizer.load(kept, None)[0]
  monkeypatch.setattr(worker, 'LAST_PHOTO_PIXELS', 30 * 40 - 1)
  large = upload('d.png', grey)
  assert colorizer.load(large, None)[0] is not colorizer.load(large, None)[0]
