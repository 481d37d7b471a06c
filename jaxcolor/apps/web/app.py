"""The web page's HTTP server: one model (an inference.Predictor, or serve.py's
model_process.ModelProcess: the model in a process of its own) behind a Starlette app.

  GET  /               the page (static/index.html; its script and styles under /static/)
  GET  /api/info       the limits, whether the model names scenes, and how many requests
                       wait for the model and have run it
  POST /api/colorize   multipart `image` [+ `style`, `strength`, `side_by_side`, `temperature`,
                       `hints`] -> the result file at the input's size and in its format, as
                       infer.py writes it
  POST /api/lab        multipart `image` [+ `style`, `temperature`, `hints`] -> scene labels,
                       and the lightness and chrominance from which the page draws any
                       colour strength itself, of a preview of at most MAX_PREVIEW_PIXELS
  POST /api/suggest    multipart `image`, `x`, `y` [+ `style`, `hints`] -> colours to offer
                       for that pixel: the likeliest of a bins model's distribution there

`hints` is the text of a hint file (jaxcolor/hints.py), for a model that takes them.

A problem answers 4xx with JSON {"error": "<file>: <problem>"}: 413 for an upload
over the size limit or an image over the pixel limit (refused from its header),
408 for an upload that sends nothing for `upload_timeout` seconds, 400 for
anything else wrong with the request or the file; 503 when `max_queue` photo
requests are already under way. A request whose Host header is not one of
`allowed_hosts` gets a plain 400 (a web page elsewhere cannot drive the server
through a name it rebinds to this computer).

Decoding, the model and encoding are CPU bound and take memory in proportion to
the photo, so they run one request at a time on one worker thread: concurrent
requests queue there, while the event loop goes on receiving uploads and
answering the rest. Each holds its upload in memory from its start to its
answer, hence the bound on how many there are. A request whose client leaves
while it waits for the worker is never run; one that is running finishes, and
its answer is dropped.
"""
import contextlib
import json
import logging
import math
import pathlib
import struct
import urllib.parse

import numpy as np
from PIL import Image
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from jaxcolor import bins
from jaxcolor import color
from jaxcolor import hints as hints_lib
from jaxcolor import images
from jaxcolor import inference
from jaxcolor.apps.web import model_process
from jaxcolor.apps.web import uploads
from jaxcolor.apps.web import worker

STATIC = pathlib.Path(__file__).parent / 'static'
# /api/lab answers a photo with more pixels than this with a preview: its own
# canvases need no more, and it keeps the answer (6 bytes a pixel) and the
# page's drawing fast.
MAX_PREVIEW_PIXELS = 2048 * 2048  # 4,194,304
TOP_K = 3
SUGGESTIONS = 5  # colours /api/suggest offers
# The browser itself refuses anything the page would load from elsewhere.
PAGE_HEADERS = {
    'Content-Security-Policy': "default-src 'self'; img-src 'self' blob: data:; "
                               "object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
    'X-Content-Type-Options': 'nosniff',
}
log = logging.getLogger(__name__)


def parse_temperature(fields, predictor):
  """The optional `temperature` field as a float (None: the model's default); 400
  for a model without a colour-distribution head or a value out of range."""
  text = fields.get('temperature', '')
  if not text:
    return None
  try:
    return inference.check_temperature(float(text), predictor.has_bins)
  except ValueError as e:
    raise HTTPException(400, f'temperature={text[:20]!r}: {e}') from None


def check_hints(fields, style, predictor):
  """The `hints` field's text ('' for none); 400 when this model or request cannot
  take hints."""
  text = fields.get('hints', '')
  if text and not predictor.has_hints:
    raise HTTPException(400, 'hints: this model takes no colour hints')
  if text and style is not None:
    raise HTTPException(400, 'hints and a mood photo (style) cannot be combined')
  return text


def parse_strength(fields):
  """The `strength` field as a float in [0, color.MAX_STRENGTH]; default 1."""
  try:
    return color.parse_strength(fields.get('strength', '1'))
  except ValueError as e:
    raise HTTPException(400, f'strength={e}') from None


def result_name(name):
  """'photo.gif' -> 'photo-colorized.png': the extension, and so the format, that
  infer.py gives the result of a file of this name."""
  return f'{pathlib.PurePath(name).stem}-colorized{images.result_suffix(name)}'


def attachment(name):
  """A Content-Disposition header for `name`, whatever characters it holds."""
  ascii_name = ''.join(c if c.isascii() and c.isprintable() and c not in '"\\' else '_'
                       for c in name)
  return f'attachment; filename="{ascii_name}"; filename*=UTF-8\'\'{urllib.parse.quote(name)}'


def preview_factor(height, width):
  """The smallest whole k for which ceil(height / k) x ceil(width / k), the size of
  /api/lab's preview of a height x width photo, has at most MAX_PREVIEW_PIXELS."""
  k = max(1, math.isqrt(height * width // MAX_PREVIEW_PIXELS))  # never more than needed
  while -(-height // k) * -(-width // k) > MAX_PREVIEW_PIXELS:
    k += 1
  return k


def shrink(x, k):
  """H x W [x C] -> ceil(H/k) x ceil(W/k) [x C]: each pixel the mean of its k x k
  block (those of the last row and column may be narrower); `x` itself for k = 1."""
  if k == 1:
    return x
  height, width = x.shape[:2]
  rows, cols = np.arange(0, height, k), np.arange(0, width, k)
  sums = np.add.reduceat(np.add.reduceat(x, rows, axis=0), cols, axis=1)
  counts = np.outer(np.diff(rows, append=height), np.diff(cols, append=width))
  return sums / counts.reshape(counts.shape + (1,) * (x.ndim - 2))


def lab_payload(meta, l_HxW, ab_HxWx2):
  """The body of /api/lab: little-endian uint32 n, n bytes of JSON `meta` (padded
  with spaces so the planes start at a multiple of 8), then uint16 planes of H x W
  (the preview's size): L* as round(L*/100 * 65535), a* and b* as
  round((v + 128) / 256 * 65535)."""
  header = json.dumps(meta).encode()
  header += b' ' * (-(len(header) + 4) % 8)
  l_16 = np.round(np.clip(l_HxW, 0, 1) * 65535)
  ab_16 = np.round(np.clip(color.normalize_ab(np.moveaxis(ab_HxWx2, -1, 0)), 0, 1) * 65535)
  return b''.join([struct.pack('<I', len(header)), header,
                   l_16.astype('<u2').tobytes(), ab_16.astype('<u2').tobytes()])


def create_app(predictor, max_upload_bytes=uploads.DEFAULT_MAX_UPLOAD_MB * 2**20,
               max_pixels=images.MAX_PIXELS, max_queue=worker.DEFAULT_MAX_QUEUE,
               allowed_hosts=('*',), upload_timeout=uploads.DEFAULT_UPLOAD_TIMEOUT, warm_up=()):
  """The Starlette app that serves the page and its API around `predictor`;
  `allowed_hosts` as TrustedHostMiddleware takes them ('*': any); an upload that
  sends nothing for `upload_timeout` seconds gets 408. `warm_up`: the buckets
  ((height, width) pairs) whose programs are compiled in the background from the
  start, while the server answers."""
  model = worker.Colorizer(predictor, max_pixels, max_queue)
  # A model in a process of its own warms up there, from its start.
  in_process = not isinstance(predictor, model_process.ModelProcess)
  warming = worker.WarmUp(predictor, warm_up) if in_process else predictor.warming

  async def page(request):
    return FileResponse(STATIC / 'index.html', headers=PAGE_HEADERS)

  async def info(request):
    return JSONResponse({'max_upload_bytes': max_upload_bytes, 'max_pixels': max_pixels,
                         'max_queue': max_queue, 'max_strength': color.MAX_STRENGTH, 'top_k': TOP_K,
                         'names_scenes': bool(predictor.class_names),
                         'temperature': predictor.temperature if predictor.has_bins else None,
                         'max_temperature': bins.MAX_TEMPERATURE,
                         'takes_hints': predictor.has_hints, 'max_hints': hints_lib.MAX_HINTS,
                         'max_hint_size': hints_lib.MAX_SIZE, 'upload_timeout': upload_timeout,
                         'waiting': model.waiting, 'model_runs': model.model_runs,
                         'programs': {'kept': len(predictor.programs),
                                      'capacity': predictor.programs.capacity,
                                      'compiled': predictor.programs.compiles,
                                      'evicted': predictor.programs.evictions,
                                      'warming_up': warming.under_way,
                                      'warmed_up': warming.compiled},
                         'model_process': None if in_process else {
                             'pid': predictor.pid, 'restarts': predictor.restarts,
                             'recycle_after': predictor.recycle_after,
                             'requests_taken': predictor.taken}})

  async def colorize(request):
    image, style, fields = await uploads.read_form(request)
    strength = parse_strength(fields)
    temperature = parse_temperature(fields, predictor)
    hint_text = check_hints(fields, style, predictor)
    side_by_side = fields.get('side_by_side', '').lower() in ('1', 'true', 'on', 'yes')

    download_name = result_name(image.name)
    file_format = images.output_format(download_name)

    def job():
      loaded, prediction, seconds, _ = model.predict(image, style, temperature, hint_text)
      rgb = prediction.result_rgb(loaded.l, strength, side_by_side)
      return images.encode_rgb(rgb, file_format), seconds

    data, seconds = await model.run(image.name, job, request.receive)
    return Response(data, media_type=Image.MIME[file_format], headers={
        'Content-Disposition': attachment(download_name),
        'Server-Timing': f'model;dur={seconds * 1000:.0f}'})

  async def lab(request):
    image, style, fields = await uploads.read_form(request)
    temperature = parse_temperature(fields, predictor)
    hint_text = check_hints(fields, style, predictor)
    download_name = result_name(image.name)

    def job():
      loaded, prediction, seconds, marks = model.predict(image, style, temperature, hint_text)
      labels = predictor.top_k(prediction.probabilities, TOP_K)
      notes = loaded.notes + (['a colour photo: colorized from its lightness only']
                              if loaded.had_colour else [])
      if predictor.class_names and not labels:
        notes.append('no scene is named with confidence')
      height, width = loaded.l.shape
      factor = preview_factor(height, width)
      l, ab = shrink(loaded.l, factor), shrink(prediction.ab, factor)
      meta = {'name': image.name, 'width': width, 'height': height,
              'preview': {'width': l.shape[1], 'height': l.shape[0], 'factor': factor},
              'format': images.output_format(download_name), 'download_name': download_name,
              'labels': [{'name': name, 'probability': p}
                         for name, p in labels],
              'notes': notes, 'style': style and style.name, 'seconds': seconds,
              'hints': None if marks is None else len(marks)}
      return lab_payload(meta, l, ab)

    return Response(await model.run(image.name, job, request.receive),
                    media_type='application/octet-stream')

  async def suggest(request):
    image, style, fields = await uploads.read_form(request)
    hint_text = check_hints(fields, style, predictor)
    try:
      x, y = int(fields.get('x', '')), int(fields.get('y', ''))
    except ValueError:
      raise HTTPException(400, 'x and y: send the pixel\'s column and row as integers') from None

    def job():
      loaded, style_l, marks = model.load(image, style, hint_text)
      height, width = loaded.l.shape
      if not (0 <= x < width and 0 <= y < height):
        raise images.ImageError(f'{image.name}: the point ({x}, {y}) is outside the '
                                f'{width}x{height} image')
      if not predictor.has_bins:
        return []
      model.model_runs += 1
      distribution = predictor.distribution(loaded.l, y, x, style_l, hints=marks)
      return [{'ab': [a, b], 'probability': p}
              for a, b, p in bins.likeliest(distribution, SUGGESTIONS)]

    colours = await model.run(image.name, job, request.receive)
    return JSONResponse({'x': x, 'y': y, 'colours': colours})

  async def error(request, exc):
    return JSONResponse({'error': exc.detail}, exc.status_code, headers=exc.headers)

  async def crash(request, exc):
    return JSONResponse({'error': 'internal error; the server log says why'}, 500)

  @contextlib.asynccontextmanager
  async def lifespan(app):
    warming.start()
    yield
    warming.stop()
    model.worker.shutdown(cancel_futures=True)
    if not in_process:
      predictor.close()

  return Starlette(
      routes=[Route('/', page), Route('/api/info', info),
              Route('/api/colorize', model.queued(colorize), methods=['POST']),
              Route('/api/lab', model.queued(lab), methods=['POST']),
              Route('/api/suggest', model.queued(suggest), methods=['POST']),
              Mount('/static', StaticFiles(directory=STATIC))],
      middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts)),
                  Middleware(uploads.UploadLimits, max_bytes=max_upload_bytes,
                             timeout=upload_timeout)],
      exception_handlers={HTTPException: error, Exception: crash}, lifespan=lifespan)
