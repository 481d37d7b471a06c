"""The progress lines of long runs (training, videos)."""
import io

from jaxcolor import progress


class Terminal(io.StringIO):
  def isatty(self):
    return True


def test_the_time_left_counts_hours_past_a_day():
  assert progress.hours_minutes_seconds(97_389) == '27:03:09'  # not '03:03:09'
  assert progress.hours_minutes_seconds(59.9) == '0:00:59'


def test_progress_line_says_frames_per_second_and_time_left():
  clock = iter([100.0, 102.0, 102.1])
  terminal = Terminal()
  line = progress.Progress('film.mp4', total=101, stream=terminal, clock=lambda: next(clock))
  line.update(1)   # the first frame out: timing starts
  line.update(21)  # 20 more frames in 2 s
  assert terminal.getvalue().rstrip() == '\rfilm.mp4: 21/101 frames, 10.0 frames/s, ETA 0:00:08'
  line.update(22)  # within half a second of the last line: no new one
  assert terminal.getvalue().count('\r') == 1


def test_a_log_file_gets_a_line_every_thirty_seconds():
  clock = iter([0.0, 10.0, 31.0])
  log = io.StringIO()
  line = progress.Progress('film.mp4', total=0, stream=log, clock=lambda: next(clock))
  for done in (1, 2, 3):
    line.update(done)
  assert log.getvalue() == 'film.mp4: 3 frames, 0.1 frames/s'.ljust(72) + '\n'
