"""The web page's HTTP server: one Predictor behind a Starlette app.

  GET  /               the page (static/index.html; its script and styles under /static/)
  GET  /api/info       the limits, and whether the model names scenes
  POST /api/colorize   multipart `image` [+ `style`, `strength`, `side_by_side`, `temperature`,
                       `hints`] -> the result file at the input's size and in its format, as
                       infer.py writes it
  POST /api/lab        multipart `image` [+ `style`, `temperature`, `hints`] -> scene labels,
                       and the lightness and chrominance from which the page draws any
                       colour strength itself
  POST /api/suggest    multipart `image`, `x`, `y` [+ `style`, `hints`] -> colours to offer
                       for that pixel: the likeliest of a bins model's distribution there

`hints` is the text of a hint file (jaxcolor/hints.py), for a model that takes them.

A problem answers 4xx with JSON {"error": "<file>: <problem>"}: 413 for an upload
over the size limit or an image over the pixel limit (refused from its header),
400 for anything else wrong with the request or the file; 503 when `max_queue`
photo requests are already under way. A request whose Host header is not one of
`allowed_hosts` gets a plain 400 (a web page elsewhere cannot drive the server
through a name it rebinds to this computer).

Decoding, the model and encoding are CPU bound and take memory in proportion to
the photo, so they run one request at a time on one worker thread: concurrent
requests queue there, while the event loop goes on receiving uploads and
answering the rest. Each holds its upload in memory from its start to its
answer, hence the bound on how many there are.
"""
import asyncio
import concurrent.futures
import contextlib
import dataclasses
import json
import logging
import pathlib
import struct
import time
import urllib.parse

import numpy as np
from PIL import Image
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import ClientDisconnect
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from jaxcolor import bins
from jaxcolor import color
from jaxcolor import hints as hints_lib
from jaxcolor import images
from jaxcolor import inference

STATIC = pathlib.Path(__file__).parent / 'static'
DEFAULT_MAX_UPLOAD_MB = 64
DEFAULT_MAX_QUEUE = 16
TOP_K = 3
SUGGESTIONS = 5  # colours /api/suggest offers
MAX_FIELD_BYTES = 256 * 1024  # a text field: a hint file of 1,000 hints is ~80 kB
# The browser itself refuses anything the page would load from elsewhere.
PAGE_HEADERS = {
    'Content-Security-Policy': "default-src 'self'; img-src 'self' blob: data:; "
                               "object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
    'X-Content-Type-Options': 'nosniff',
}
log = logging.getLogger(__name__)


@dataclasses.dataclass
class Upload:
  name: str    # the file's name as sent, without folders
  data: bytes  # its content


class UploadLimit:
  """ASGI middleware: a request body over `max_bytes` (as declared, or as it
  arrives) ends the request with 413 at the first read; nothing over it is kept."""

  def __init__(self, app, max_bytes):
    self.app, self.max_bytes = app, max_bytes

  async def __call__(self, scope, receive, send):
    if scope['type'] != 'http':
      return await self.app(scope, receive, send)
    declared = dict(scope['headers']).get(b'content-length', b'')
    too_large = declared.isdigit() and int(declared) > self.max_bytes
    received = 0

    async def counted_receive():
      nonlocal received
      if not too_large and received <= self.max_bytes:
        message = await receive()
        received += len(message.get('body', b''))
        if received <= self.max_bytes:
          return message
      raise HTTPException(413, f'the upload is more than the limit of '
                               f'{self.max_bytes / 2**20:g} MB (serve.py --max-upload-mb)')

    return await self.app(scope, counted_receive, send)


class Colorizer:
  """The model, run on one worker thread so that requests queue for it."""

  def __init__(self, predictor, max_pixels, max_queue=DEFAULT_MAX_QUEUE):
    self.predictor, self.max_pixels, self.max_queue = predictor, max_pixels, max_queue
    self.under_way = 0  # photo requests from their start to their answer (event loop only)
    self.worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix='jaxcolor-model')

  def queued(self, handler):
    """`handler` counted from the request's start (before its upload is read) to its
    answer; 503 when `max_queue` requests are already counted."""
    async def counted(request):
      if self.under_way >= self.max_queue:
        raise HTTPException(503, f'the server is busy with {self.under_way} photos, its limit '
                                 '(serve.py --max-queue): try again when one is done')
      self.under_way += 1
      try:
        return await handler(request)
      finally:
        self.under_way -= 1
    return counted

  async def run(self, name, job):
    """job() on the worker thread; its problems become HTTP errors naming `name`."""
    try:
      return await asyncio.get_running_loop().run_in_executor(self.worker, job)
    except images.TooManyPixels as e:
      raise HTTPException(413, str(e)) from None
    except (images.ImageError, hints_lib.HintError) as e:
      raise HTTPException(400, str(e)) from None
    except Exception:  # the server stays up whatever one image does to it
      log.exception('%s: failed', name)  # the details stay in the server's log
      raise HTTPException(500, f'{name}: could not be colorized (internal error; the '
                               'server log says why)') from None

  def load(self, image, style, hint_text=''):
    """(LoadedImage, style's L or None, [hints.Hint] or None) of the uploads."""
    loaded = images.load_luminance(image.data, self.max_pixels, image.name)
    style_l = (None if style is None else
               images.load_luminance(style.data, self.max_pixels, style.name).l)
    marks = parse_hints(hint_text, image.name, *loaded.l.shape) if hint_text else None
    return loaded, style_l, marks

  def predict(self, image, style, temperature=None, hint_text=''):
    """(LoadedImage, Prediction, model seconds, hints or None) of two Uploads (style
    may be None) and the text of a hint file ('' for none)."""
    loaded, style_l, marks = self.load(image, style, hint_text)
    start = time.perf_counter()
    prediction = self.predictor(loaded.l, style_l, temperature, hints=marks)
    return loaded, prediction, time.perf_counter() - start, marks


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


def parse_hints(text, name, height, width):
  """The hint file `text` for the photo `name` -> [hints.Hint]; HintError says why not."""
  try:
    document = json.loads(text, parse_constant=hints_lib.reject_constant)
  except ValueError as e:
    raise hints_lib.HintError(f'{name}: hints: not valid JSON: {e}') from None
  return hints_lib.parse(document, height, width, name=f'{name}: hints')


async def read_form(request):
  """(image, style or None, the text fields) of a multipart request."""
  try:
    async with request.form(max_files=2, max_fields=10, max_part_size=MAX_FIELD_BYTES) as form:
      image = await _read_file(form, 'image', required=True)
      style = await _read_file(form, 'style')
      fields = {key: value for key, value in form.items() if isinstance(value, str)}
  except ClientDisconnect:  # nobody is left to answer; nothing was kept
    raise HTTPException(400, 'the upload stopped before its end') from None
  return image, style, fields


async def _read_file(form, field, required=False):
  value = form.get(field)
  if isinstance(value, UploadFile):
    name = pathlib.PurePath((value.filename or '').replace('\\', '/')).name
    return Upload(name or field, await value.read())
  if value or required:
    raise HTTPException(400, f'no {field}: send a file as the multipart field "{field}"')
  return None


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


def lab_payload(meta, l_HxW, ab_HxWx2):
  """The body of /api/lab: little-endian uint32 n, n bytes of JSON `meta` (padded
  with spaces so the planes start at a multiple of 8), then uint16 planes of H x W:
  L* as round(L*/100 * 65535), a* and b* as round((v + 128) / 256 * 65535)."""
  header = json.dumps(meta).encode()
  header += b' ' * (-(len(header) + 4) % 8)
  l_16 = np.round(np.clip(l_HxW, 0, 1) * 65535)
  ab_16 = np.round(np.clip(color.normalize_ab(np.moveaxis(ab_HxWx2, -1, 0)), 0, 1) * 65535)
  return b''.join([struct.pack('<I', len(header)), header,
                   l_16.astype('<u2').tobytes(), ab_16.astype('<u2').tobytes()])


def create_app(predictor, max_upload_bytes=DEFAULT_MAX_UPLOAD_MB * 2**20,
               max_pixels=images.MAX_PIXELS, max_queue=DEFAULT_MAX_QUEUE, allowed_hosts=('*',)):
  """The Starlette app that serves the page and its API around `predictor`;
  `allowed_hosts` as TrustedHostMiddleware takes them ('*': any)."""
  model = Colorizer(predictor, max_pixels, max_queue)

  async def page(request):
    return FileResponse(STATIC / 'index.html', headers=PAGE_HEADERS)

  async def info(request):
    return JSONResponse({'max_upload_bytes': max_upload_bytes, 'max_pixels': max_pixels,
                         'max_queue': max_queue, 'max_strength': color.MAX_STRENGTH, 'top_k': TOP_K,
                         'names_scenes': bool(predictor.class_names),
                         'temperature': predictor.temperature if predictor.has_bins else None,
                         'max_temperature': bins.MAX_TEMPERATURE,
                         'takes_hints': predictor.has_hints, 'max_hints': hints_lib.MAX_HINTS,
                         'max_hint_size': hints_lib.MAX_SIZE})

  async def colorize(request):
    image, style, fields = await read_form(request)
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

    data, seconds = await model.run(image.name, job)
    return Response(data, media_type=Image.MIME[file_format], headers={
        'Content-Disposition': attachment(download_name),
        'Server-Timing': f'model;dur={seconds * 1000:.0f}'})

  async def lab(request):
    image, style, fields = await read_form(request)
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
      meta = {'name': image.name, 'width': loaded.l.shape[1], 'height': loaded.l.shape[0],
              'format': images.output_format(download_name), 'download_name': download_name,
              'labels': [{'name': name, 'probability': p}
                         for name, p in labels],
              'notes': notes, 'style': style and style.name, 'seconds': seconds,
              'hints': None if marks is None else len(marks)}
      return lab_payload(meta, loaded.l, prediction.ab)

    return Response(await model.run(image.name, job), media_type='application/octet-stream')

  async def suggest(request):
    image, style, fields = await read_form(request)
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
      distribution = predictor.distribution(loaded.l, y, x, style_l, hints=marks)
      return [{'ab': [a, b], 'probability': p}
              for a, b, p in bins.likeliest(distribution, SUGGESTIONS)]

    return JSONResponse({'x': x, 'y': y, 'colours': await model.run(image.name, job)})

  async def error(request, exc):
    return JSONResponse({'error': exc.detail}, exc.status_code, headers=exc.headers)

  async def crash(request, exc):
    return JSONResponse({'error': 'internal error; the server log says why'}, 500)

  @contextlib.asynccontextmanager
  async def lifespan(app):
    yield
    model.worker.shutdown(cancel_futures=True)

  return Starlette(
      routes=[Route('/', page), Route('/api/info', info),
              Route('/api/colorize', model.queued(colorize), methods=['POST']),
              Route('/api/lab', model.queued(lab), methods=['POST']),
              Route('/api/suggest', model.queued(suggest), methods=['POST']),
              Mount('/static', StaticFiles(directory=STATIC))],
      middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts)),
                  Middleware(UploadLimit, max_bytes=max_upload_bytes)],
      exception_handlers={HTTPException: error, Exception: crash}, lifespan=lifespan)
