"""The web server under load, against real serve.py processes running the tiny test network.

A stalled upload is answered 408 and gives its place back; a photo request whose
client has left while it waited for the model never runs it; /api/lab answers a
photo over app.MAX_PREVIEW_PIXELS with a preview of it.
"""
import concurrent.futures
import http.client
import io
import json
import math
import os
import signal
import socket
import time

import numpy as np
from PIL import Image
import pytest

pytest.importorskip('starlette', reason='the web page needs pip install -r requirements-web.txt')

from jaxcolor.apps.web import app
from jaxcolor.apps.web import model_process
from jaxcolor.apps.web import worker
from jaxcolor import color
from jaxcolor import images
import web_server

PROBE = {'image': ('notes.jpg', b'a text file')}  # answered 400 at once when it gets a place


def png(pixels):
  data = io.BytesIO()
  Image.fromarray(pixels).save(data, format='PNG')
  return data.getvalue()


def gradient(width, height):
  """A grey PNG whose lightness changes along both sides; a few kB at any size."""
  x, y = np.arange(width)[None, :], np.arange(height)[:, None]
  return png(((7 * x + 3 * y) % 256).astype(np.uint8))


GREY = png(np.tile(np.arange(60, dtype=np.uint8) * 4, (40, 1)))  # 60 x 40
LARGE = gradient(4101, 1101)  # 4.5 megapixels: a preview at half size, 2051 x 551


def info(server):
  status, _, body = server.request('GET', '/api/info')
  assert status == 200, body[:200]
  return json.loads(body)


def wait_until(condition, what, timeout=120):
  deadline = time.monotonic() + timeout
  while not condition():
    assert time.monotonic() < deadline, f'not within {timeout} s: {what}'
    time.sleep(0.05)


def sent(server, path, files):
  """A socket that has sent a whole multipart POST of `files` to `path`, its answer unread."""
  body, content_type = web_server.multipart(files, {})
  client = socket.create_connection((server.host, server.port))
  client.sendall(f'POST {path} HTTP/1.1\r\nHost: {server.host}\r\nContent-Type: {content_type}'
                 f'\r\nContent-Length: {len(body)}\r\n\r\n'.encode() + body)
  return client


@pytest.fixture(scope='module')
def impatient_server(tmp_path_factory, tiny_checkpoint):
  """serve.py waiting at most 1 s for the next part of an upload, one photo request at a time."""
  folder = tmp_path_factory.mktemp('web_impatient')
  with web_server.serve(folder, '--checkpoint', tiny_checkpoint, '--upload-timeout', 1,
                        '--max-queue', 1) as s:
    yield s


def test_a_stalled_upload_gets_408_and_gives_its_place_back(impatient_server):
  assert info(impatient_server)['upload_timeout'] == 1
  stalled = impatient_server.stalled_upload(b'x' * 1000)
  try:
    start = time.monotonic()
    stalled.settimeout(30)
    answer = http.client.HTTPResponse(stalled)
    answer.begin()
    waited = time.monotonic() - start
    error = json.loads(answer.read())['error']
    assert answer.status == 408 and answer.headers['Connection'] == 'close'
    assert error == 'the upload stalled for 1 s (serve.py --upload-timeout)'
    assert 0.9 < waited < 10, waited
    assert stalled.recv(1) == b''  # and the server hung up
  finally:
    stalled.close()
  # Its one place is free again: a request gets to its file (400), not 503.
  status, message = impatient_server.error('/api/colorize', PROBE)
  assert status == 400 and 'not an image' in message, message


def test_a_slow_upload_that_keeps_sending_is_not_cut_off(impatient_server):
  """The time limit is for the pauses between parts, not for the whole upload."""
  body, content_type = web_server.multipart({'image': ('grey.png', GREY)}, {})
  size = -(-len(body) // 7)
  pieces = [body[i:i + size] for i in range(0, len(body), size)]
  assert len(pieces) == 7

  def trickle():
    for i, piece in enumerate(pieces):
      if i:
        time.sleep(0.5)  # half the limit, 3 s in all
      yield piece

  start = time.monotonic()
  status, _, result = impatient_server.request(
      'POST', '/api/colorize', trickle(),
      {'Content-Type': content_type, 'Content-Length': str(len(body))})
  assert status == 200, result[:300]
  assert time.monotonic() - start > 3
  assert Image.open(io.BytesIO(result)).size == (60, 40)


@pytest.fixture(scope='module')
def server(tmp_path_factory, tiny_checkpoint):
  """serve.py with its defaults (25 megapixels a photo)."""
  folder = tmp_path_factory.mktemp('web_load')
  with web_server.serve(folder, '--checkpoint', tiny_checkpoint) as s:
    yield s


def test_photos_whose_clients_left_never_reach_the_model(server):
  before = info(server)['model_runs']
  slow = sent(server, '/api/lab', {'image': ('large.png', LARGE)})  # leaves while it runs
  leaving = []
  try:
    wait_until(lambda: info(server)['model_runs'] == before + 1, 'the large photo runs')
    leaving = [sent(server, '/api/colorize', {'image': (f'{i}.png', GREY)}) for i in range(3)]
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
      staying = pool.submit(server.post, '/api/lab', {'image': ('grey.png', GREY)})
      wait_until(lambda: info(server)['waiting'] == 4, 'four photos wait for the model')
      for client in [slow, *leaving]:
        client.close()
      # They left while the large photo still ran (and the other four still waited).
      now = info(server)
      assert (now['model_runs'], now['waiting']) == (before + 1, 4), now
      status, _, body = staying.result(timeout=300)
    assert status == 200 and web_server.read_lab(body)[0]['name'] == 'grey.png'
    wait_until(lambda: info(server)['waiting'] == 0, 'the worker has taken up every job')
    assert info(server)['model_runs'] == before + 2  # the large photo and the one still wanted
  finally:
    for client in [slow, *leaving]:
      client.close()
  assert server.process.poll() is None
  assert 'Traceback' not in server.stderr.read_text(), server.stderr.read_text()


@pytest.mark.parametrize('height, width, factor', [
    (1, 1, 1), (2048, 2048, 1), (2049, 2048, 2), (2048, 2049, 2), (1, 4_194_304, 1),
    (1, 4_194_305, 2), (4000, 6000, 3), (6000, 4000, 3), (4096, 4096, 2), (4097, 4096, 3),
    (5000, 5000, 3), (8192, 8192, 4), (8193, 8192, 5), (1101, 4101, 2)])
def test_the_preview_factor_is_the_smallest_that_fits(height, width, factor):
  assert app.MAX_PREVIEW_PIXELS == 2048 * 2048
  assert app.preview_factor(height, width) == factor

  def preview_pixels(k):
    return math.ceil(height / k) * math.ceil(width / k)

  assert preview_pixels(factor) <= app.MAX_PREVIEW_PIXELS
  assert factor == 1 or preview_pixels(factor - 1) > app.MAX_PREVIEW_PIXELS


@pytest.mark.parametrize('shape, k', [((7, 8), 3), ((7, 8, 2), 3), ((6, 9, 2), 2), ((5, 4), 1)])
def test_a_preview_pixel_is_the_mean_of_its_block(shape, k):
  x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
  rows, cols = math.ceil(shape[0] / k), math.ceil(shape[1] / k)
  expected = np.array([[x[i * k:(i + 1) * k, j * k:(j + 1) * k].mean(axis=(0, 1))
                        for j in range(cols)] for i in range(rows)])
  shrunk = app.shrink(x, k)
  assert shrunk.shape == (rows, cols) + shape[2:]
  np.testing.assert_allclose(shrunk, expected, rtol=1e-5, atol=1e-6)


def test_lab_answers_a_large_photo_with_a_preview(server):
  status, _, body = server.post('/api/lab', {'image': ('large.png', LARGE)})
  assert status == 200, body[:300]
  meta, l, ab = web_server.read_lab(body)
  assert (meta['width'], meta['height']) == (4101, 1101)
  assert meta['preview'] == {'width': 2051, 'height': 551, 'factor': 2}
  assert l.shape == (551, 2051) and ab.shape == (551, 2051, 2)
  assert len(body) == 4 + int.from_bytes(body[:4], 'little') + 3 * 2 * 2051 * 551
  # Each preview pixel is the mean of its 2 x 2 block of the photo (the last row and
  # column: of 2 x 1, 1 x 2, 1 x 1), within the 16-bit planes' rounding.
  expected = app.shrink(images.load_luminance(LARGE).l, 2)
  assert np.abs(l / color.L_MAX - expected).max() <= 0.5 / 65535 + 1e-6
  assert np.abs(ab).max() <= color.AB_MAX and ab.std() > 0
  # The download stays the photo's size.
  status, _, result = server.post('/api/colorize', {'image': ('large.png', LARGE)})
  assert status == 200 and Image.open(io.BytesIO(result)).size == (4101, 1101)


def test_the_server_warms_up_in_the_background_and_answers_meanwhile(tiny_checkpoint,
                                                                    tmp_path_factory):
  folder = tmp_path_factory.mktemp('warm')
  with web_server.serve(folder, '--checkpoint', tiny_checkpoint, '--warm-up', 128,
                        '--max-programs', 6) as s:
    assert info(s)['programs']['capacity'] == 6  # answered while it warms up
    wait_until(lambda: not info(s)['programs']['warming_up'], 'the warm-up ends')
    programs = info(s)['programs']
    # The 6 smallest of the 9 shapes up to 128 px: 64x64, 64x96, 96x64, 64x128, 128x64, 96x96.
    assert programs['warmed_up'] == programs['compiled'] == programs['kept'] == 6
    status, _, _ = s.post('/api/colorize', {'image': ('a.png', gradient(90, 60))})
    assert status == 200 and info(s)['programs']['compiled'] == 6  # 64x96: no compile
    status, _, _ = s.post('/api/colorize', {'image': ('b.png', gradient(300, 200))})
    programs = info(s)['programs']
    assert status == 200 and programs['compiled'] == 7
    assert programs['kept'] == 6 and programs['evicted'] == 1


@pytest.mark.parametrize('argv, kept', [([], 89), (['--warm-up', '1024'], 69),
                                        (['--warm-up', '0'], 32),
                                        (['--max-programs', '200'], 200)])
def test_the_server_keeps_as_many_programs_as_its_warm_up_compiles(argv, kept):
  from jaxcolor import buckets
  from jaxcolor.commands import serve
  assert serve.parse_args(argv).max_programs == kept
  assert len(buckets.common(2048)) == 89 and len(buckets.common(1024)) == 69


def _rss_mb():
  with open('/proc/self/status') as status:
    return next(int(line.split()[1]) for line in status if line.startswith('VmRSS')) / 1024


@pytest.mark.skipif(worker._MALLOC_TRIM is None, reason='glibc only')
def test_released_memory_leaves_the_process():
  chunks = [np.ones(6400) for _ in range(8000)]  # 400 MB of 50 KB blocks on the heap
  chunks = chunks[-1:]  # all but the last go: it pins the heap's top, so free() cannot shrink it
  before = _rss_mb()
  worker.release_memory()
  assert _rss_mb() < before - 200


def test_the_model_process_is_replaced_after_dropping_programs(tiny_checkpoint,
                                                              tmp_path_factory):
  """--max-programs 1 --recycle-after 2: the third new size drops a second program,
  after which the model's process is replaced; it gives the same bytes."""
  folder = tmp_path_factory.mktemp('recycle')
  photos = {f'{w}x{h}.png': gradient(w, h) for w, h in [(60, 40), (300, 200), (200, 300),
                                                       (500, 90)]}  # four buckets
  with web_server.serve(folder, '--checkpoint', tiny_checkpoint, '--max-programs', 1,
                        '--recycle-after', 2) as s:
    first = info(s)['model_process']
    assert first == {'pid': first['pid'], 'restarts': 0, 'recycle_after': 2, 'requests_taken': 0}
    answers = {}
    for name, data in photos.items():
      status, _, answers[name] = s.post('/api/colorize', {'image': (name, data)})
      assert status == 200, answers[name][:300]
    now = info(s)
    assert now['model_process']['restarts'] == 1 and now['model_process']['pid'] != first['pid']
    assert now['model_process']['requests_taken'] == 4
    # Counted over both processes: 3 compiles and 2 drops, then the fourth size's compile.
    assert (now['programs']['compiled'], now['programs']['evicted']) == (4, 2), now
    for name in ['500x90.png', '60x40.png']:  # kept by the new process; compiled again
      status, _, again = s.post('/api/colorize', {'image': (name, photos[name])})
      assert status == 200 and again == answers[name]
    assert info(s)['model_process']['restarts'] == 1
  assert 'Traceback' not in s.stderr.read_text(), s.stderr.read_text()


def test_a_request_to_a_process_that_died_unseen_goes_to_a_new_one(tiny_checkpoint,
                                                                   monkeypatch):
  """The race CI met: the process is dead, but is_alive() still says otherwise (the kernel
  has not finished with it). The request finds out when the process never says STARTED,
  and goes to a new process: the same result, nothing failed."""
  model = model_process.ModelProcess(tiny_checkpoint)
  try:
    l = np.tile(np.linspace(0.1, 0.9, 56, dtype=np.float32), (40, 1))
    first = model(l).rgb
    process = model._process
    os.kill(process.pid, signal.SIGKILL)
    process.join()  # dead, its end of the pipe closed
    monkeypatch.setattr(process, 'is_alive', lambda: True)  # as if not yet known
    again = model(l)
    assert (model.restarts, model.taken) == (1, 2) and model.pid != process.pid
    np.testing.assert_array_equal(again.rgb, first)
  finally:
    model.close()


def test_a_model_process_that_dies_is_replaced(tiny_checkpoint, tmp_path_factory):
  """Killed while it works on a photo: that request gets a 500 that says so, the
  next a new process. Killed while idle: the next request never notices."""
  folder = tmp_path_factory.mktemp('killed')
  with web_server.serve(folder, '--checkpoint', tiny_checkpoint) as s:
    first = info(s)['model_process']['pid']
    os.kill(first, signal.SIGKILL)  # idle, and asked at once: maybe still dying
    status, _, body = s.post('/api/colorize', {'image': ('grey.png', GREY)})
    assert status == 200, body[:300]
    second = info(s)['model_process']
    assert second['restarts'] == 1 and second['pid'] != first

    taken = second['requests_taken']
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
      large = pool.submit(s.error, '/api/colorize', {'image': ('large.png', LARGE)})
      wait_until(lambda: info(s)['model_process']['requests_taken'] == taken + 1,
                 'the model process has the large photo')
      os.kill(second['pid'], signal.SIGKILL)
      status, message = large.result(timeout=300)
    assert status == 500 and message.startswith("large.png: the model's process ended"), message
    status, _, body = s.post('/api/colorize', {'image': ('grey.png', GREY)})
    assert status == 200 and info(s)['model_process']['restarts'] == 2
    assert s.process.poll() is None  # the server itself stays up
