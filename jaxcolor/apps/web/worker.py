"""The model's worker: one thread that runs photo requests one at a time (each
takes memory in proportion to its photo), the count of requests under way, the
dropping of abandoned ones, and the warm-up that compiles programs ahead."""
import asyncio
import concurrent.futures
import contextlib
import ctypes
import hashlib
import json
import logging
import threading
import time

from starlette.exceptions import HTTPException

from jaxcolor import hints as hints_lib
from jaxcolor import images
from jaxcolor.apps.web import model_process
from jaxcolor.apps.web import uploads

DEFAULT_MAX_QUEUE = 16
# The last photo decoded is kept if it has at most this many pixels (16 MB of L*): the
# preview's limit (app.MAX_PREVIEW_PIXELS); a larger one is decoded again for every change.
LAST_PHOTO_PIXELS = 2048 * 2048
log = logging.getLogger(__name__)


def _malloc_trim():
  """glibc's malloc_trim, or None where the C library has none."""
  try:
    return ctypes.CDLL(None).malloc_trim
  except (OSError, AttributeError, TypeError):
    return None


_MALLOC_TRIM = _malloc_trim()


def release_memory():
  """Hands the heap's free pages back to the system after a job. Without it glibc keeps
  much of what a large photo's buffers freed: four photos of about 3000x2500 px left
  the bundled model's process at 620 MB, 430 MB once trimmed."""
  if _MALLOC_TRIM is not None:
    _MALLOC_TRIM(0)


class Colorizer:
  """The model, run on one worker thread so that requests queue for it."""

  def __init__(self, predictor, max_pixels, max_queue=DEFAULT_MAX_QUEUE):
    self.predictor, self.max_pixels, self.max_queue = predictor, max_pixels, max_queue
    self.under_way = 0  # photo requests from their start to their answer (event loop only)
    self.given = 0       # jobs given to the worker (event loop only)
    self.taken = 0       # of them, those it has taken up, run or skipped (worker only)
    self.model_runs = 0  # requests that have run the model (worker only)
    self._last_photo = None  # (digest and name, LoadedImage) of the last photo decoded
    self.worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix='jaxcolor-model')

  @property
  def waiting(self):
    """Jobs queued for the worker that it has not taken up yet."""
    return self.given - self.taken

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

  async def run(self, name, job, receive=None):
    """job() on the worker thread; its problems become HTTP errors naming `name`.

    `receive`: the request's, once its body has been read (a read then waits for
    the client to leave). A job whose client leaves before the worker takes it up
    is skipped; one already running finishes (the request keeps its place in the
    queue, and its upload, until then) and its answer is dropped.
    """
    left, started = threading.Event(), threading.Event()

    def unless_left():
      self.taken += 1
      started.set()
      if left.is_set():
        return None
      try:
        return job()
      finally:
        release_memory()

    self.given += 1
    future = asyncio.get_running_loop().run_in_executor(self.worker, unless_left)
    gone = asyncio.ensure_future(uploads.client_left(receive)) if receive else asyncio.Future()
    try:
      await asyncio.wait((future, gone), return_when=asyncio.FIRST_COMPLETED)
    finally:  # also when this request is cancelled (the server stops)
      gone.cancel()
      left.set()  # after the job has been taken up, this changes nothing
    if not future.done():  # the client has gone
      log.debug('%s: the client left before its answer', name)
      if started.is_set():
        await asyncio.wait((future,))
        with contextlib.suppress(HTTPException):  # an unexpected failure is still logged
          self._answer(name, future)
      raise HTTPException(400, f'{name}: the client left before its answer')  # unread
    return self._answer(name, future)

  @staticmethod
  def _answer(name, future):
    """The result of a finished job; its problems as HTTP errors naming `name`."""
    try:
      return future.result()
    except images.TooManyPixels as e:
      raise HTTPException(413, str(e)) from None
    except (images.ImageError, hints_lib.HintError) as e:
      raise HTTPException(400, str(e)) from None
    except model_process.ModelDied as e:
      log.warning('%s: %s', name, e)
      raise HTTPException(500, f'{name}: {e}') from None
    except Exception:  # the server stays up whatever one image does to it
      log.exception('%s: failed', name)  # the details stay in the server's log
      raise HTTPException(500, f'{name}: could not be colorized (internal error; the '
                               'server log says why)') from None

  def load(self, image, style, hint_text=''):
    """(LoadedImage, style's L or None, [hints.Hint] or None) of the uploads."""
    loaded = self._decoded(image)
    style_l = (None if style is None else
               images.load_luminance(style.data, self.max_pixels, style.name).l)
    marks = parse_hints(hint_text, image.name, *loaded.l.shape) if hint_text else None
    return loaded, style_l, marks

  def _decoded(self, upload):
    """images.load_luminance of a photo upload. The last photo of at most LAST_PHOTO_PIXELS
    is kept (its bytes' digest and name, then its LoadedImage, which nothing
    changes): the page sends the same photo again with every hint change, and
    decoding a 1024x1024 JPEG takes about 0.1 s of the 1 s such a change may take.
    Jobs run one at a time on the worker thread, so the cache needs no lock."""
    key = hashlib.sha256(upload.data).digest(), upload.name
    if self._last_photo and self._last_photo[0] == key:
      return self._last_photo[1]
    loaded = images.load_luminance(upload.data, self.max_pixels, upload.name)
    if loaded.l.size <= LAST_PHOTO_PIXELS:
      self._last_photo = key, loaded
    return loaded

  def predict(self, image, style, temperature=None, hint_text=''):
    """(LoadedImage, Prediction, model seconds, hints or None) of two Uploads (style
    may be None) and the text of a hint file ('' for none)."""
    loaded, style_l, marks = self.load(image, style, hint_text)
    self.model_runs += 1
    start = time.perf_counter()
    prediction = self.predictor(loaded.l, style_l, temperature, hints=marks)
    return loaded, prediction, time.perf_counter() - start, marks


def parse_hints(text, name, height, width):
  """The hint file `text` for the photo `name` -> [hints.Hint]; HintError says why not."""
  try:
    document = json.loads(text, parse_constant=hints_lib.reject_constant)
  except ValueError as e:
    raise hints_lib.HintError(f'{name}: hints: not valid JSON: {e}') from None
  return hints_lib.parse(document, height, width, name=f'{name}: hints')


class WarmUp:
  """Compiles the programs of some buckets on a thread of its own (Predictor.warm_up),
  so that the first photos of those sizes need no compile; requests are answered
  meanwhile (one that needs a program being compiled waits for it)."""

  def __init__(self, predictor, sizes):
    self.predictor, self.sizes = predictor, list(sizes)[:predictor.programs.capacity]
    self.compiled = 0
    self._stopping = threading.Event()
    self._thread = threading.Thread(target=self._run, name='jaxcolor-warm-up', daemon=True)

  @property
  def under_way(self):
    return self._thread.is_alive()

  def start(self):
    if self.sizes:
      self._thread.start()

  def stop(self):
    self._stopping.set()

  def _run(self):
    try:
      for size in self.sizes:
        if self._stopping.is_set():
          return
        self.compiled += self.predictor.warm_up([size])
    except Exception:  # a failed warm-up leaves the compiles to the photos that need them
      log.exception('warming up failed')
