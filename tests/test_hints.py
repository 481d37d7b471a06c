"""The hint file (version 1): parsing, its errors, patches, planes and simulated hints."""
import json

from hypothesis import given, settings, strategies as st
import numpy as np
import pytest

from jaxcolor import color
from jaxcolor import hints


def write(tmp_path, document, name='photo.jpg.json'):
  path = tmp_path / name
  path.write_text(document if isinstance(document, str) else json.dumps(document))
  return path


def test_the_example_file_reads_as_documented(tmp_path):
  path = write(tmp_path, {'version': 1, 'hints': [
      {'x': 120, 'y': 45, 'size': 6, 'color': '#3a6ea5'},
      {'x': 300, 'y': 210, 'ab': [12.5, -30.0]}]})
  first, second = hints.load(path, height=480, width=640)
  expected_ab = color.rgb_to_lab(np.asarray([0x3a, 0x6e, 0xa5]) / 255)[1:]
  assert (first.x, first.y, first.size) == (120, 45, 6)
  np.testing.assert_allclose(first.ab, expected_ab, atol=1e-6)
  assert second == hints.Hint(300, 210, hints.default_size(480, 640), (12.5, -30.0))
  assert hints.default_size(480, 640) == 11 and hints.default_size(256, 900) == 6
  assert hints.default_size(20, 20) == 1
  # What the page's "Save hints" writes reads back the same.
  assert hints.parse(hints.to_document([first, second]), 480, 640) == [first, second]


@pytest.mark.parametrize('size, x, expected', [
    (1, 10, (10, 11)), (2, 10, (10, 12)), (6, 10, (8, 14)), (7, 10, (7, 14)),
    (6, 0, (0, 4)), (6, 99, (97, 100))])
def test_patch_columns_and_rows(size, x, expected):
  top, bottom, left, right = hints.Hint(x, x, size, (0, 0)).patch(100, 100)
  assert (left, right) == expected and (top, bottom) == expected


@pytest.mark.parametrize('document, message', [
    ('{"version": 1, "hints": [', 'not valid JSON'),
    ('{"version": 1, "hints": [{"x": NaN, "y": 1, "ab": [0, 0]}]}', 'NaN is not a number'),
    ({'version': 2, 'hints': []}, 'unknown version 2'),
    ({'version': True, 'hints': []}, 'unknown version True'),
    ({'version': 1.0, 'hints': []}, 'unknown version 1.0'),
    ({'hints': []}, 'unknown version None'),
    ([1, 2], 'not a hint file'),
    ({'version': 1, 'hints': {}}, '"hints" must be a list'),
    ({'version': 1, 'hints': [], 'extra': 1}, "unknown key 'extra'"),
    ({'version': 1, 'hints': [{'x': 1, 'y': 1, 'ab': [0, 0]}] * 1001}, '1001 hints, more than'),
    ({'version': 1, 'hints': [[1, 2]]}, 'hint 0: must be an object'),
    ({'version': 1, 'hints': [{'x': 1, 'y': 1, 'ab': [0, 0]},
                              {'x': 64, 'y': 1, 'ab': [0, 0]}]}, 'hint 1: the point (64, 1) is outside the 64x48 image'),
    ({'version': 1, 'hints': [{'x': -1, 'y': 1, 'ab': [0, 0]}]}, 'outside'),
    ({'version': 1, 'hints': [{'x': 1.5, 'y': 1, 'ab': [0, 0]}]}, '"x" must be an integer, not 1.5'),
    ({'version': 1, 'hints': [{'x': True, 'y': 1, 'ab': [0, 0]}]}, '"x" must be an integer'),
    ({'version': 1, 'hints': [{'y': 1, 'ab': [0, 0]}]}, '"x" is missing'),
    ({'version': 1, 'hints': [{'x': 1, 'y': 1}]}, 'exactly one of'),
    ({'version': 1, 'hints': [{'x': 1, 'y': 1, 'ab': [0, 0], 'color': '#000000'}]}, 'exactly one of'),
    ({'version': 1, 'hints': [{'x': 1, 'y': 1, 'ab': [0, 0], 'colour': 'red'}]}, "unknown key 'colour'"),
    ({'version': 1, 'hints': [{'x': 1, 'y': 1, 'color': 'red'}]}, '"color" must be "#rrggbb"'),
    ({'version': 1, 'hints': [{'x': 1, 'y': 1, 'color': '#12345'}]}, '"color" must be "#rrggbb"'),
    ({'version': 1, 'hints': [{'x': 1, 'y': 1, 'ab': [0, 200]}]}, '"ab" must be two finite'),
    ({'version': 1, 'hints': [{'x': 1, 'y': 1, 'ab': [0]}]}, '"ab" must be two finite'),
    ({'version': 1, 'hints': [{'x': 1, 'y': 1, 'ab': ['0', 1]}]}, '"ab" must be two finite'),
    ('{"version": 1, "hints": [{"x": 1, "y": 1, "ab": [Infinity, 0]}]}', 'Infinity is not'),
    ({'version': 1, 'hints': [{'x': 1, 'y': 1, 'size': 0, 'ab': [0, 0]}]}, '"size" must be an integer from 1 to 128'),
    ({'version': 1, 'hints': [{'x': 1, 'y': 1, 'size': 129, 'ab': [0, 0]}]}, 'from 1 to 128'),
])
def test_a_bad_file_is_one_line_naming_the_file_and_the_hint(tmp_path, document, message):
  path = write(tmp_path, document)
  with pytest.raises(hints.HintError) as error:
    hints.load(path, height=48, width=64)
  text = str(error.value)
  assert text.startswith(f'{path}: ') and message in text and '\n' not in text


def test_unreadable_and_binary_files_are_hint_errors(tmp_path):
  with pytest.raises(hints.HintError, match='cannot read the hint file'):
    hints.load(tmp_path / 'missing.json', 10, 10)
  path = tmp_path / 'binary.json'
  path.write_bytes(b'\xff\xd8\xff\xe0 a JPEG')
  with pytest.raises(hints.HintError, match='not UTF-8 text'):
    hints.load(path, 10, 10)


def test_planes_hold_each_patch_s_colour_and_a_mask():
  planes = hints.rasterize([hints.Hint(2, 3, 3, (64.0, -32.0)),
                            hints.Hint(3, 3, 1, (-128.0, 0.0))], height=6, width=5)
  assert planes.shape == (6, 5, 3) and planes.dtype == np.float32
  assert planes[..., 2].sum() == 9  # the 3 x 3 patch, the later 1 x 1 inside it
  np.testing.assert_array_equal(planes[2, 1], [0.5, -0.25, 1])
  np.testing.assert_array_equal(planes[3, 3], [-1, 0, 1])  # the later hint wins
  assert not planes[0].any() and not planes[:, 4].any()
  assert not hints.rasterize([], 4, 4).any()


def test_simulated_hints_are_seeded_nested_and_coloured_from_the_truth():
  rng = np.random.default_rng(0)
  ab = np.zeros((128, 96, 2), np.float32)
  ab[:, 48:] = (40.0, -20.0)  # right half blue-violet, left half neutral
  first = hints.simulate(ab, np.random.default_rng(7), count=10)
  assert first == hints.simulate(ab, np.random.default_rng(7), count=10)
  assert hints.simulate(ab, np.random.default_rng(7), count=3) == first[:3]
  for hint in first:
    assert 0 <= hint.x < 96 and 0 <= hint.y < 128 and 1 <= hint.size <= 5  # 9 px at 256
    top, bottom, left, right = hint.patch(128, 96)
    np.testing.assert_allclose(hint.ab, ab[top:bottom, left:right].mean((0, 1)), atol=1e-5)
  counts = [len(hints.simulate(ab, rng)) for _ in range(4000)]
  assert abs(np.mean(np.asarray(counts) == 0) - 1 / 8) < 0.02  # about one in eight has none
  assert abs(np.mean(counts) - 7) < 0.5  # geometric: (1 - p) / p
  assert {h.size for h in hints.simulate(ab, rng, count=20, size=4)} == {4}


# Property tests of the parser: any valid file reads back to the hints it holds, and
# anything at all is either read or refused with one HintError line naming the file.
HEIGHT, WIDTH = 48, 64
_VALID_HINT = st.builds(
    lambda x, y, size, colour: {'x': x, 'y': y, **size, **colour},
    st.integers(0, WIDTH - 1), st.integers(0, HEIGHT - 1),
    st.one_of(st.just({}), st.integers(1, hints.MAX_SIZE).map(lambda n: {'size': n})),
    st.one_of(
        st.integers(0, 0xFFFFFF).map(lambda v: {'color': f'#{v:06x}'}),
        st.lists(st.floats(-hints.MAX_AB, hints.MAX_AB, allow_nan=False), min_size=2,
                 max_size=2).map(lambda ab: {'ab': ab})))
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-300, 300) | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(['version', 'hints', 'x', 'y', 'size', 'color', 'ab', 'other']), inner,
        max_size=6),
    max_leaves=20)


@settings(max_examples=200, deadline=None)
@given(st.lists(_VALID_HINT, max_size=20))
def test_any_valid_file_reads_back_to_its_hints(entries):
  parsed = hints.parse({'version': 1, 'hints': entries}, HEIGHT, WIDTH)
  assert len(parsed) == len(entries)
  for hint, entry in zip(parsed, entries):
    assert (hint.x, hint.y) == (entry['x'], entry['y'])
    assert hint.size == entry.get('size', hints.default_size(HEIGHT, WIDTH))
    if 'ab' in entry:
      assert list(hint.ab) == entry['ab']
    top, bottom, left, right = hint.patch(HEIGHT, WIDTH)  # inside the image, around the point
    assert 0 <= top <= hint.y < bottom <= HEIGHT and 0 <= left <= hint.x < right <= WIDTH
  assert hints.parse(hints.to_document(parsed), HEIGHT, WIDTH) == parsed  # saved, read again


@settings(max_examples=300, deadline=None)
@given(st.one_of(_JSON, st.fixed_dictionaries({'version': st.just(1),
                                               'hints': st.lists(_JSON, max_size=4)})))
def test_anything_else_is_read_or_refused_in_one_line(document):
  try:
    parsed = hints.parse(document, HEIGHT, WIDTH, name='a.json')
  except hints.HintError as e:
    assert str(e).startswith('a.json: ') and '\n' not in str(e)
  else:
    assert all(isinstance(hint, hints.Hint) for hint in parsed)
