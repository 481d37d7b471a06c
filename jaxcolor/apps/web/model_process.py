"""The web server's model in a process of its own, replaced once it has compiled
a given number of programs past its cap.

XLA keeps a little memory for every program it compiles, even after the program
is dropped and JAX's caches are cleared: 0.3-0.8 MB each on XLA:CPU (jax 0.10,
docs/RELIABILITY.md). However few programs a server keeps, its memory grows with
every new photo size it meets. So the model runs in a child process, and the
server replaces it once it has dropped `recycle_after` programs for new sizes:
the new one loads the checkpoint, answers at once and warms up again, from XLA's
disk cache. A child that dies mid-photo (killed for memory, a crash in native
code) fails that request with a 500 and is replaced for the next. One that died
before it took a request (it says STARTED when it has one) costs that request
only the wait for a new process (a second or two): it goes to the replacement.

`ModelProcess` answers what the app asks of an `inference.Predictor`. Arrays
travel between the processes as raw bytes (pickle protocol 5's out-of-band
buffers), never as extra pickled copies, so the bytes a photo needs stay those
of the model's own arrays.
"""
import logging
import multiprocessing
import pickle
import signal
import threading
import time
import traceback

from jaxcolor import inference

# Programs dropped for new sizes before the model's process is replaced: at most
# about 0.8 MB each stays behind, so the process grows by at most some 80 MB
# between replacements, and a replacement (a second or two to load, then a
# warm-up from the disk cache) comes after 100 sizes the server does not keep.
DEFAULT_RECYCLE_AFTER = 100
# What the child publishes in shared memory, for /api/info at any time.
STATS = ('kept', 'capacity', 'compiles', 'evictions', 'warming_up', 'warmed_up')
STATS_INTERVAL = 0.2  # seconds between the child's updates of STATS while it warms up
STOP_SECONDS = 10     # a child told to stop is killed after this long
STARTED = b's'        # the child's word that it has a request: a death after it is that request's
log = logging.getLogger(__name__)


class ModelDied(RuntimeError):
  """The model's process ended during a request (it is replaced for the next)."""


class RemoteTraceback(Exception):
  """The child's traceback, as the cause of an exception raised there."""

  def __str__(self):
    return self.args[0]


def send(connection, message):
  """Sends a picklable message, its (contiguous) arrays as raw bytes after it."""
  buffers = []
  header = pickle.dumps(message, protocol=5, buffer_callback=buffers.append)
  views = [buffer.raw() for buffer in buffers]
  connection.send_bytes(pickle.dumps((header, [view.nbytes for view in views])))
  for view in views:
    connection.send_bytes(view)


def receive(connection):
  """The next message `send` sent; its arrays own the bytes received (writable)."""
  header, sizes = pickle.loads(connection.recv_bytes())
  buffers = []
  for size in sizes:
    buffer = bytearray(size)
    if size:
      connection.recv_bytes_into(buffer)
    else:
      connection.recv_bytes()
    buffers.append(buffer)
  return pickle.loads(header, buffers=buffers)


def _serve(connection, path, capacity, warm_up, stats):
  """The child: loads the model, warms it up on a thread, then runs requests
  (method name, args, kwargs) until told to stop (None) or the server is gone."""
  signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is the server's to handle
  import jaxcolor  # pylint: disable=g-import-not-at-top
  from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top
  from jaxcolor.apps.web import worker  # pylint: disable=g-import-not-at-top
  jaxcolor.enable_fast_cpu_convolutions()
  absl_logging.set_verbosity(absl_logging.ERROR)  # orbax's informational chatter
  try:
    predictor = inference.Predictor.for_command(path, command='serve.py', capacity=capacity)
  except Exception as e:  # pylint: disable=broad-except (the server reports it)
    send(connection, ('error', e, traceback.format_exc()))
    return
  send(connection, ('ready', {
      'class_names': predictor.class_names, 'label_confidence': predictor.label_confidence,
      'temperature': predictor.temperature, 'has_bins': predictor.has_bins,
      'has_hints': predictor.has_hints}))
  warming = worker.WarmUp(predictor, warm_up)

  def publish():
    programs = predictor.programs
    stats[:] = [len(programs), programs.capacity, programs.compiles, programs.evictions,
                int(warming.under_way), warming.compiled]

  def publish_while_warming():  # afterwards only requests compile: each publishes
    while warming.under_way:
      publish()
      time.sleep(STATS_INTERVAL)
    publish()

  warming.start()
  threading.Thread(target=publish_while_warming, name='jaxcolor-stats', daemon=True).start()
  while True:
    try:
      message = receive(connection)
    except (EOFError, OSError):  # the server has gone
      return
    if message is None:
      return
    try:
      connection.send_bytes(STARTED)  # from here a death is this request's
    except OSError:  # the server has gone
      return
    method, args, kwargs = message
    try:
      reply = ('ok', getattr(predictor, method)(*args, **kwargs))
    except Exception as e:  # pylint: disable=broad-except (the server answers it)
      reply = ('error', e, traceback.format_exc())
    publish()
    try:
      send(connection, reply)
    except (pickle.PicklingError, TypeError, AttributeError):  # an exception pickle refuses
      send(connection, ('error', RuntimeError(reply[-1]), reply[-1]))
    del reply
    worker.release_memory()


class _Programs:
  """The compiled programs of the model's processes, as /api/info reports them
  (compiles and evictions counted over all of them)."""

  def __init__(self, owner):
    self._owner = owner

  def __len__(self):
    return self._owner.stat('kept')

  @property
  def capacity(self):
    return self._owner.capacity

  @property
  def compiles(self):
    return self._owner.before['compiles'] + self._owner.stat('compiles')

  @property
  def evictions(self):
    return self._owner.before['evictions'] + self._owner.stat('evictions')


class _Warming:
  """The current process's warm-up, as worker.WarmUp reports one (it starts with
  the process and ends with it)."""

  def __init__(self, owner):
    self._owner = owner

  @property
  def under_way(self):
    return bool(self._owner.stat('warming_up'))

  @property
  def compiled(self):
    return self._owner.stat('warmed_up')

  def start(self):
    pass

  def stop(self):
    pass


class ModelProcess:
  """An inference.Predictor of the checkpoint `path` (None: the bundled model) in a
  child process: call it, and `distribution`, as the Predictor; `top_k`,
  `class_names`, `has_bins`, `has_hints` and `temperature` are answered here.
  `warm_up`: the buckets each process compiles first, on a thread of its own.
  Raises checkpoint.CheckpointError (or whatever loading raised) when the model
  cannot be loaded. One thread at a time may call it (the app's model worker)."""

  top_k = inference.Predictor.top_k  # reads class_names and label_confidence alone

  def __init__(self, path=None, capacity=32, warm_up=(), recycle_after=DEFAULT_RECYCLE_AFTER):
    self.path, self.capacity = path, capacity
    self.warm_up_sizes, self.recycle_after = list(warm_up), recycle_after
    self.restarts = 0  # processes replaced, or started again after one died
    self.taken = 0     # requests a model process has said STARTED to
    self.before = {'compiles': 0, 'evictions': 0}  # counted by the processes replaced
    self._context = multiprocessing.get_context('spawn')  # JAX's threads do not survive fork
    self._stats = self._context.RawArray('q', len(STATS))
    self._lock = threading.Lock()  # one request, or one replacement, at a time
    self._process = self._connection = None
    self._closed = False
    self.programs, self.warming = _Programs(self), _Warming(self)
    description = self._start()
    for name, value in description.items():
      setattr(self, name, value)

  @property
  def pid(self):
    """The current model process's id (None while there is none)."""
    process = self._process  # read once: a request may replace it meanwhile
    return process.pid if process else None

  def stat(self, name):
    return self._stats[STATS.index(name)]

  def _start(self):
    """Starts a process and waits until its model is loaded: its description."""
    self._stats[:] = [0, self.capacity, 0, 0, int(bool(self.warm_up_sizes)), 0]
    ours, theirs = self._context.Pipe()
    process = self._context.Process(
        target=_serve, args=(theirs, self.path, self.capacity, self.warm_up_sizes, self._stats),
        name='jaxcolor-model', daemon=True)
    process.start()
    theirs.close()
    try:
      kind, *rest = receive(ours)
    except (EOFError, OSError):
      process.join()
      raise ModelDied(f'the model process exited (code {process.exitcode}) while loading '
                      'the model') from None
    if kind == 'error':
      process.join()
      exception, text = rest
      raise exception from RemoteTraceback(text)
    self._process, self._connection = process, ours
    return rest[0]

  def _stop(self):
    """Stops the current process (asks, then kills), keeping its counts: its exit code."""
    process, connection = self._process, self._connection
    if process is None:
      return
    self.before['compiles'] += self.stat('compiles')
    self.before['evictions'] += self.stat('evictions')
    self._stats[:] = [0, self.capacity, 0, 0, 0, 0]
    self._process = self._connection = None
    try:
      send(connection, None)
    except OSError:  # it has gone already
      pass
    process.join(STOP_SECONDS)
    if process.is_alive():
      process.kill()
      process.join()
    connection.close()
    return process.exitcode

  def _replace(self):
    with self._lock:
      if self._closed:
        return
      if self._process is None or self.stat('evictions') >= self.recycle_after:
        log.info('replacing the model process after %d compiles', self.stat('compiles'))
        self._stop()
        self._start()
        self.restarts += 1

  def _call(self, method, *args, **kwargs):
    with self._lock:
      for attempt in range(2):
        if self._process is not None and not self._process.is_alive():  # died while idle
          self._stop()
        if self._process is None:  # the last one died
          self._start()
          self.restarts += 1
        try:
          send(self._connection, (method, args, kwargs))
          if self._connection.recv_bytes(len(STARTED)) != STARTED:
            raise OSError('the model process answered out of turn')
          self.taken += 1
          break
        except (EOFError, OSError):  # it was dying before it saw this request: a new one
          code = self._stop()
          if attempt:
            raise ModelDied(f'the model\'s process ended (exit code {code}) while it read '
                            'this image (out of memory?); the next request starts a new '
                            'one') from None
        except BaseException:  # half a message may be in the pipe: start afresh next time
          self._stop()
          raise
      try:
        kind, *rest = receive(self._connection)
      except (EOFError, OSError):
        code = self._stop()
        raise ModelDied(f'the model\'s process ended (exit code {code}) while it worked on '
                        'this image (out of memory?); the next request starts a new one') from None
      except BaseException:  # e.g. MemoryError amid a reply: the pipe is out of step
        self._stop()
        raise
    if self.stat('evictions') >= self.recycle_after:  # replaced before the next request
      threading.Thread(target=self._replace, name='jaxcolor-model-replace',
                       daemon=True).start()
    if kind == 'error':
      exception, text = rest
      raise exception from RemoteTraceback(text)
    return rest[0]

  def __call__(self, l_HxW, style_l=None, temperature=None, hints=None):
    return self._call('__call__', l_HxW, style_l, temperature, hints=hints)

  def distribution(self, l_HxW, row, col, style_l=None, hints=None):
    return self._call('distribution', l_HxW, row, col, style_l, hints=hints)

  def close(self):
    """Stops the model's process (and any replacement yet to start)."""
    with self._lock:
      self._closed = True
      self._stop()
