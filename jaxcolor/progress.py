"""Progress lines for long runs: rates and the time left."""
import sys
import time


def hours_minutes_seconds(seconds):
  """'27:03:09' for 97,389 s: hours keep counting past a day."""
  minutes, seconds = divmod(int(seconds), 60)
  hours, minutes = divmod(minutes, 60)
  return f'{hours}:{minutes:02d}:{seconds:02d}'


class Progress:
  """A progress line (frames, frames/s, ETA) on a terminal; a line every
  `every` seconds elsewhere (a log file). `clock`: seconds, as time.perf_counter."""

  def __init__(self, name, total, stream=None, every=30.0, clock=time.perf_counter):
    self.name, self.total, self.stream = name, total, stream or sys.stderr
    self.tty = self.stream.isatty()
    self.every = 0.5 if self.tty else every
    self.clock = clock
    self.start = self.last = None

  def update(self, done):
    now = self.clock()
    if self.start is None:  # the first frame: compiling is over, timing starts
      self.start = self.last = now
      return
    if now - self.last < self.every:
      return
    self.last = now
    self.stream.write(('\r' if self.tty else '') + self.line(done, now) +
                      ('' if self.tty else '\n'))
    self.stream.flush()

  def rate(self, done, now=None):
    if self.start is None:
      return 0.0
    elapsed = (self.clock() if now is None else now) - self.start
    return (done - 1) / elapsed if elapsed > 0 else 0.0

  def line(self, done, now):
    rate = self.rate(done, now)
    text = f'{self.name}: {done}' + (f'/{self.total}' if self.total else '') + ' frames'
    text += f', {rate:.1f} frames/s'
    if self.total and rate > 0:
      text += f', ETA {hours_minutes_seconds(max(self.total - done, 0) / rate)}'
    return text.ljust(72)

  def clear(self):
    if self.tty and self.start is not None:
      self.stream.write('\r' + ' ' * 72 + '\r')
