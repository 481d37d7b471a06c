"""The web page in a real headless Chromium (Debian's chromium and chromium-driver),
driven by Selenium, against real serve.py processes.

JAXCOLOR_WEB_SCREENSHOT=docs/web_page.png also writes the README's screenshot, and
JAXCOLOR_HINTS_SCREENSHOT=docs/hints.png its picture of a photo before and after hints.
"""
import base64
import io
import json
import os
import pathlib
import shutil
import time

import numpy as np
from PIL import Image
import pytest

pytest.importorskip('starlette', reason='the web page needs pip install -r requirements-web.txt')
pytest.importorskip('selenium', reason='the browser test needs selenium: '
                    'pip install -r requirements-test.txt')
CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')
CHROMEDRIVER = shutil.which('chromedriver')
if not (CHROMIUM and CHROMEDRIVER):
  pytest.skip('no chromium or chromedriver here: apt-get install -y chromium chromium-driver '
              '(.ci/run does it where apt is available)', allow_module_level=True)

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from conftest import photo  # noqa: E402
import infer  # noqa: E402
from jaxcolor import checkpoint  # noqa: E402
from jaxcolor import color  # noqa: E402
from jaxcolor import images  # noqa: E402
from test_images import png_header_claiming  # noqa: E402
import web_server  # noqa: E402
from benchmarks.hints_redraw import DROP  # noqa: E402  (drops a file as a user does)

EXAMPLES = web_server.ROOT / 'examples'
CLASSES = ['beach', 'forest', 'street', 'room']  # the tiny checkpoint's scenes
PIXELS = """
const canvas = arguments[0];
return Array.from(canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data);
"""
BUSY = ('waiting', 'upload', 'wait', 'download')  # a card's data-state while it runs


@pytest.fixture(scope='module')
def browser(tmp_path_factory):
  downloads = tmp_path_factory.mktemp('downloads')
  options = webdriver.ChromeOptions()
  options.binary_location = CHROMIUM
  for argument in ('--headless=new', '--no-sandbox', '--disable-dev-shm-usage',
                   '--window-size=1280,1000', '--force-device-scale-factor=1',
                   '--hide-scrollbars'):
    options.add_argument(argument)
  driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
  driver.execute_cdp_cmd('Browser.setDownloadBehavior',
                         {'behavior': 'allow', 'downloadPath': str(downloads)})
  driver.downloads = downloads
  yield driver
  driver.quit()


@pytest.fixture(scope='module')
def tiny_server(tmp_path_factory, tiny_checkpoint):
  folder = tmp_path_factory.mktemp('web_page')
  with web_server.serve(folder, '--checkpoint', tiny_checkpoint, '--max-upload-mb', 1) as s:
    yield s


def open_page(browser, server):
  browser.get(server.url)
  WebDriverWait(browser, 30).until(lambda b: b.find_element(By.TAG_NAME, 'body')
                                   .get_attribute('data-ready'))


def cards_when_done(browser, count, timeout=300):
  """The page's `count` cards, in the order given, once none is running."""
  def done(b):
    cards = b.find_elements(By.CSS_SELECTOR, '#results .card')
    states = [card.get_attribute('data-state') for card in cards]
    return len(cards) == count and not set(states) & set(BUSY) and cards
  return WebDriverWait(browser, timeout, poll_frequency=0.05).until(done)


def downloaded(browser, name, timeout=60):
  path = browser.downloads / name
  WebDriverWait(browser, timeout).until(lambda b: path.exists() and not list(
      browser.downloads.glob('*.crdownload')))
  return path


def test_drop_compare_adjust_strength_and_download(browser, tiny_server, tiny_checkpoint,
                                                   tmp_path):
  source = tmp_path / 'photo.jpg'
  Image.fromarray(photo('chelsea')[:61, :90]).convert('L').save(source, quality=90)
  open_page(browser, tiny_server)
  browser.execute_script(DROP, base64.b64encode(source.read_bytes()).decode(), source.name,
                         '#drop')
  (card,) = cards_when_done(browser, 1)
  assert card.get_attribute('data-state') == 'done', card.text
  assert card.find_element(By.CSS_SELECTOR, '.name').text == 'photo.jpg'
  after = card.find_element(By.CSS_SELECTOR, 'canvas.after')
  for canvas in card.find_elements(By.TAG_NAME, 'canvas'):  # drawn at the photo's own size
    assert (canvas.get_property('width'), canvas.get_property('height')) == (90, 61)
  labels = [item.text for item in card.find_elements(By.CSS_SELECTOR, '.labels li')]
  assert len(labels) == 3 and all(label.split()[0] in CLASSES for label in labels)

  divider = card.find_element(By.CSS_SELECTOR, '.divider')
  ActionChains(browser).click_and_hold(divider).move_by_offset(
      -divider.size['width'] // 3, 0).release().perform()
  assert float(divider.get_property('value')) < 25
  clip = browser.execute_script('return getComputedStyle(arguments[0]).clipPath', after)
  assert clip.endswith(f' {divider.get_property("value")}%)'), clip  # colour right of it

  strength = card.find_element(By.CSS_SELECTOR, '.strength')
  strength.send_keys(*[Keys.ARROW_RIGHT] * 10)  # 1 + 10 steps of 0.05
  WebDriverWait(browser, 10).until(lambda b: card.get_attribute('data-strength') == '1.5')
  drawn = np.array(browser.execute_script(PIXELS, after), np.int16).reshape(61, 90, 4)
  for output in ('cli.png', 'cli/'):
    assert infer.main(['--image', str(source), '--checkpoint', str(tiny_checkpoint),
                       '--strength', '1.5', '--output', str(tmp_path / output)]) == 0
  expected = np.asarray(Image.open(tmp_path / 'cli.png'), np.int16)
  assert np.abs(drawn[..., :3] - expected).max() <= 1  # the page's arithmetic is infer.py's
  card.find_element(By.CSS_SELECTOR, '.download').click()
  result = downloaded(browser, 'photo-colorized.jpg')
  assert result.read_bytes() == (tmp_path / 'cli' / 'photo.jpg').read_bytes()
  card.find_element(By.CSS_SELECTOR, '.side-by-side').click()
  card.find_element(By.CSS_SELECTOR, '.download').click()
  assert Image.open(downloaded(browser, 'photo-colorized-side-by-side.jpg')).size == (180, 61)

  strength.send_keys(*[Keys.ARROW_RIGHT] * 12)  # stops at the maximum, 2: much is clipped
  WebDriverWait(browser, 10).until(lambda b: card.get_attribute('data-strength') == '2')
  drawn = np.array(browser.execute_script(PIXELS, after), np.int16).reshape(61, 90, 4)
  _, _, body = tiny_server.post('/api/lab', {'image': (source.name, source.read_bytes())})
  _, l, ab = web_server.read_lab(body)
  expected = images.to_uint8(color.with_strength(l / color.L_MAX, ab, 2.0))
  assert np.abs(drawn[..., :3] - expected).max() <= 1
  resources = browser.execute_script(
      "return performance.getEntriesByType('resource').map(r => r.name)")
  assert resources and all(url.startswith(tiny_server.url) for url in resources)


@pytest.fixture(scope='module')
def steerable_server(tmp_path_factory, steerable_checkpoint):
  folder = tmp_path_factory.mktemp('web_page_steerable')
  with web_server.serve(folder, '--checkpoint', steerable_checkpoint) as s:
    yield s


HINTS_OF = 'return state.photos[0].hints.hints'  # the page's hint list, as it saves it


def shown_when_settled(browser, card, timeout=120):
  """Waits until the card shows the answer to its latest request, drawn on its canvases."""
  WebDriverWait(browser, timeout, poll_frequency=0.05).until(
      lambda b: card.get_attribute('data-shown') == card.get_attribute('data-requested')
      and card.get_attribute('data-state') == 'done'
      and card.get_attribute('data-drawn') == card.get_attribute('data-shown'))
  assert float(card.get_attribute('data-drawn-at')) > 0  # performance.now() of the drawing


def test_hints_are_placed_moved_undone_saved_and_downloaded(browser, steerable_server,
                                                            steerable_checkpoint, tmp_path):
  source = tmp_path / 'photo.jpg'
  Image.fromarray(photo('chelsea')[:61, :90]).convert('L').save(source, quality=90)
  open_page(browser, steerable_server)
  browser.execute_script(DROP, base64.b64encode(source.read_bytes()).decode(), source.name,
                         '#drop')
  (card,) = cards_when_done(browser, 1)
  editor = card.find_element(By.CSS_SELECTOR, 'canvas.editor')
  assert editor.is_displayed() and (editor.get_property('width'), editor.get_property('height')) == (90, 61)
  assert card.find_element(By.CSS_SELECTOR, '.hint-size').get_property('value') == '1'  # 61/256*6

  def at(x, y):  # the pointer over the full-size pixel (x, y), from the editor's centre
    scale = editor.size['width'] / 90
    return ActionChains(browser).move_to_element_with_offset(
        editor, round((x + 0.5) * scale - editor.size['width'] / 2),
        round((y + 0.5) * scale - editor.size['height'] / 2))

  size = card.find_element(By.CSS_SELECTOR, '.hint-size')
  size.send_keys(Keys.CONTROL, 'a')
  size.send_keys('5', Keys.TAB)
  at(30, 20).click().perform()
  assert browser.execute_script(HINTS_OF) == [{'x': 30, 'y': 20, 'size': 5, 'color': '#3a6ea5'}]
  picker = card.find_element(By.CSS_SELECTOR, '.hint-colour')
  browser.execute_script("arguments[0].value = '#2050e0';"
                         "arguments[0].dispatchEvent(new Event('change'))", picker)
  assert browser.execute_script(HINTS_OF)[0]['color'] == '#2050e0'  # the selected hint
  WebDriverWait(browser, 30).until(lambda b: len(card.find_elements(
      By.CSS_SELECTOR, '.suggestions .suggestion')) >= 1 + 5)  # the model's own + its modes
  shown_when_settled(browser, card)
  square = card.find_element(By.CSS_SELECTOR, '.hint-layer .hint')
  assert square.value_of_css_property('background-color') == 'rgba(32, 80, 224, 1)'

  at(30, 20).click_and_hold().move_by_offset(round(20 * editor.size['width'] / 90), 0).release(
      ).perform()
  moved = browser.execute_script(HINTS_OF)
  assert (moved[0]['x'], moved[0]['y']) == (50, 20)
  card.find_element(By.CSS_SELECTOR, '.undo').click()
  assert browser.execute_script(HINTS_OF)[0]['x'] == 30
  card.find_element(By.CSS_SELECTOR, '.redo').click()
  assert browser.execute_script(HINTS_OF)[0]['x'] == 50
  at(70, 40).context_click().perform()  # nothing there: no hint removed
  at(50, 20).click().perform()  # selects it
  editor.send_keys(Keys.DELETE)
  assert browser.execute_script(HINTS_OF) == [] and card.get_attribute('data-hints') == '0'
  editor.send_keys(Keys.CONTROL, 'z')
  assert len(browser.execute_script(HINTS_OF)) == 1
  at(10, 50).click().perform()  # a second hint, in the picker's colour
  hints = browser.execute_script(HINTS_OF)
  assert hints[1] == {'x': 10, 'y': 50, 'size': 5, 'color': '#2050e0'}
  shown_when_settled(browser, card)

  card.find_element(By.CSS_SELECTOR, '.save-hints').click()
  saved = downloaded(browser, 'photo.jpg.json')
  assert json.loads(saved.read_text()) == {'version': 1, 'hints': hints}
  card.find_element(By.CSS_SELECTOR, '.download').click()
  result = downloaded(browser, 'photo-colorized.jpg')
  assert infer.main(['--image', str(source), '--checkpoint', str(steerable_checkpoint),
                     '--hints', str(saved), '--output', str(tmp_path / 'cli.jpg')]) == 0
  assert result.read_bytes() == (tmp_path / 'cli.jpg').read_bytes()

  other = tmp_path / 'other.json'
  other.write_text(json.dumps({'version': 1, 'hints': [{'x': 5, 'y': 5, 'ab': [20, 30]}]}))
  card.find_element(By.CSS_SELECTOR, '.load-hints').send_keys(str(other))
  WebDriverWait(browser, 10).until(lambda b: card.get_attribute('data-hints') == '1')
  shown_when_settled(browser, card)
  other.write_text('{"version": 1, "hints": [{"x": 500, "y": 5, "ab": [20, 30]}]}')
  card.find_element(By.CSS_SELECTOR, '.load-hints').send_keys(str(other))
  WebDriverWait(browser, 30).until(lambda b: card.get_attribute('data-state') == 'error')
  assert 'hint 0: the point (500, 5) is outside the 90x61 image' in card.text


def test_a_large_photo_is_shown_as_a_preview_and_hints_stay_in_its_pixels(
    browser, steerable_server, tmp_path):
  """Over app.MAX_PREVIEW_PIXELS the canvases show /api/lab's preview (half size here);
  hints are still placed, moved and drawn in the photo's full-size pixels."""
  source = tmp_path / 'wide.png'
  x, y = np.arange(4100)[None, :], np.arange(1100)[:, None]
  Image.fromarray(((5 * x + 2 * y) % 256).astype(np.uint8)).save(source)
  open_page(browser, steerable_server)
  browser.find_element(By.ID, 'photos').send_keys(str(source))
  (card,) = cards_when_done(browser, 1)
  assert card.get_attribute('data-state') == 'done', card.text
  for canvas in card.find_elements(By.TAG_NAME, 'canvas'):
    assert (canvas.get_property('width'), canvas.get_property('height')) == (2050, 550)
  assert 'shown at 1/2 of its 4100x1100 pixels' in card.find_element(By.CSS_SELECTOR,
                                                                     '.notes').text
  editor = card.find_element(By.CSS_SELECTOR, 'canvas.editor')
  browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", editor)
  scale = editor.size['width'] / 4100  # on screen, a full-size pixel's width
  near = 1 / scale + 1  # a screen pixel spans this many full-size ones

  def at(x, y):  # the pointer over the full-size pixel (x, y), from the editor's centre
    return ActionChains(browser).move_to_element_with_offset(
        editor, round((x + 0.5) * scale - editor.size['width'] / 2),
        round((y + 0.5) * scale - editor.size['height'] / 2))

  def offset():  # the editor's top within its card, whatever the page's scroll
    return browser.execute_script('return arguments[0].getBoundingClientRect().top'
                                  ' - arguments[1].getBoundingClientRect().top', editor, card)

  top = offset()
  at(3000, 800).click().perform()
  (hint,) = browser.execute_script(HINTS_OF)
  WebDriverWait(browser, 120, poll_frequency=0.02).until(
      lambda b: card.get_attribute('data-state') != 'done')  # colorizing again
  assert offset() == top  # the progress bar shows without moving the photo and its hints
  shown_when_settled(browser, card)
  assert offset() == top
  assert abs(hint['x'] - 3000) <= near and abs(hint['y'] - 800) <= near, hint
  square = card.find_element(By.CSS_SELECTOR, '.hint-layer .hint')
  box = square.rect
  centre = [box['x'] + box['width'] / 2, box['y'] + box['height'] / 2]
  assert abs(centre[0] - editor.rect['x'] - (hint['x'] + 0.5) * scale) <= 2, centre
  assert abs(centre[1] - editor.rect['y'] - (hint['y'] + 0.5) * scale) <= 2, centre
  at(hint['x'], hint['y']).click_and_hold().move_by_offset(round(-1000 * scale), 0).release(
      ).perform()  # grabbed where it is drawn
  (moved,) = browser.execute_script(HINTS_OF)
  assert abs(moved['x'] - 2000) <= 2 * near and abs(moved['y'] - 800) <= 2 * near, moved
  shown_when_settled(browser, card)  # colorized again with the hint where it is


def test_errors_show_by_their_file_and_the_batch_goes_on(browser, tiny_server, tmp_path):
  Image.fromarray(photo('coffee')[:61, :90]).save(tmp_path / 'good.jpg')
  jpeg = (tmp_path / 'good.jpg').read_bytes()
  files = {'good.jpg': None, 'truncated.jpg': jpeg[:len(jpeg) // 3], 'notes.jpg': b'a text file',
           'bomb.png': png_header_claiming(100_000, 100_000), 'too big.png': bytes(2 * 2**20)}
  for name, content in files.items():
    if content is not None:
      (tmp_path / name).write_bytes(content)
  open_page(browser, tiny_server)
  browser.find_element(By.ID, 'photos').send_keys('\n'.join(str(tmp_path / n) for n in files))
  cards = cards_when_done(browser, len(files))
  errors = {card.find_element(By.CSS_SELECTOR, '.name').text:
            card.find_element(By.CSS_SELECTOR, '.error').text for card in cards}
  assert list(errors) == list(files)  # each next to its own file name, in the order chosen
  assert errors['good.jpg'] == ''
  assert 'damaged' in errors['truncated.jpg'] and 'not an image' in errors['notes.jpg']
  assert 'limit' in errors['bomb.png'] and "the server's limit of 1.0 MB" in errors['too big.png']

  mood = tmp_path / 'rocket.jpg'
  Image.fromarray(photo('rocket')[:90, :120]).save(mood)
  browser.find_element(By.ID, 'style').send_keys(str(mood))  # every photo runs again
  good = next(c for c in cards_when_done(browser, len(files)) if 'good.jpg' in c.text)
  assert good.get_attribute('data-state') == 'done'
  assert 'mood borrowed from rocket.jpg' in good.find_element(By.CSS_SELECTOR, '.notes').text


def test_first_result_of_a_1024_photo_with_the_bundled_model(browser, tmp_path,
                                                             tmp_path_factory, capsys):
  """Upload to shown result, as the page measures it, with the model that ships."""
  sources = []
  for example in ('AnselAdamsYosemite.jpg', '1890Surfer.jpg'):
    sources.append(tmp_path / f'{example[:-4]}_1024.jpg')
    Image.open(EXAMPLES / example).convert('L').resize((1024, 1024), Image.LANCZOS).save(
        sources[-1], quality=92)
  folder = tmp_path_factory.mktemp('web_bundled')
  with web_server.serve(folder, '--checkpoint', checkpoint.BUNDLED) as server:
    open_page(browser, server)
    times = []
    for count, source in enumerate(sources, 1):
      start = time.perf_counter()
      browser.find_element(By.ID, 'photos').send_keys(str(source))
      if count == 1:  # progress shows while the model runs (and compiles for the size)
        running = WebDriverWait(browser, 60, poll_frequency=0.02).until(
            lambda b: b.find_element(By.CSS_SELECTOR, '.card[data-state=wait]'))
        assert running.find_element(By.TAG_NAME, 'progress').is_displayed()
        assert 'colorizing' in running.find_element(By.CSS_SELECTOR, '.status').text
      card = cards_when_done(browser, count)[-1]
      times.append((time.perf_counter() - start, float(card.get_attribute('data-shown-ms')) / 1e3))
      assert card.get_attribute('data-state') == 'done', card.text
      canvas = card.find_element(By.CSS_SELECTOR, 'canvas.after')
      assert (canvas.get_property('width'), canvas.get_property('height')) == (1024, 1024)
    with capsys.disabled():
      print('\nweb page, bundled model, 1024x1024 photo, upload to shown result: '
            f'first {times[0][1]:.2f} s (compiles for the size unless cached; '
            f'{times[0][0]:.2f} s seen by the test), second {times[1][1]:.2f} s '
            f'({times[1][0]:.2f} s)')
    for seen, shown in times:  # the page's own clock, printed above, runs within the test's
      assert 0 < shown <= seen
    if os.environ.get('JAXCOLOR_WEB_SCREENSHOT'):
      screenshot(browser, server, pathlib.Path(os.environ['JAXCOLOR_WEB_SCREENSHOT']))
    if os.environ.get('JAXCOLOR_HINTS_SCREENSHOT'):
      hints_screenshot(browser, server, pathlib.Path(os.environ['JAXCOLOR_HINTS_SCREENSHOT']),
                       tmp_path)


# Sky, hills, trees, sea and a surfboard: the README's hints on 1890Surfer.jpg (618 x 409).
SURFER_HINTS = [{'x': 120, 'y': 30, 'size': 10, 'color': '#6fa6dc'},
                {'x': 480, 'y': 40, 'size': 10, 'color': '#6fa6dc'},
                {'x': 160, 'y': 110, 'size': 10, 'color': '#5f7f3f'},
                {'x': 90, 'y': 340, 'size': 10, 'color': '#2f8fa0'},
                {'x': 520, 'y': 330, 'size': 10, 'color': '#2f8fa0'},
                {'x': 250, 'y': 262, 'size': 8, 'color': '#a0522d'}]


def screenshot(browser, server, path):
  """The page with two bundled example photos (the README's picture), saved to `path`."""
  open_page(browser, server)
  for example in ('AnselAdamsYosemite.jpg', '1890Surfer.jpg'):
    browser.find_element(By.ID, 'photos').send_keys(str(EXAMPLES / example))
  cards = cards_when_done(browser, 2)
  assert all(card.get_attribute('data-state') == 'done' for card in cards)
  shot = Image.open(io.BytesIO(browser.get_screenshot_as_png())).convert('RGB')
  assert shot.width == 1280
  shot.quantize(256, Image.Quantize.MEDIANCUT).save(path, optimize=True)  # half the bytes


def hints_screenshot(browser, server, path, tmp_path):
  """The card of 1890Surfer.jpg before and after loading SURFER_HINTS, side by side, with
  its divider moved so that the whole result shows (docs/hints.png), saved to `path`."""
  size = browser.get_window_size()
  browser.set_window_size(size['width'], 2000)  # the whole card, its hint editor too
  open_page(browser, server)
  browser.find_element(By.ID, 'photos').send_keys(str(EXAMPLES / '1890Surfer.jpg'))
  (card,) = cards_when_done(browser, 1)
  browser.execute_script("arguments[0].value = 0; arguments[0].dispatchEvent(new Event('input'))",
                         card.find_element(By.CSS_SELECTOR, '.divider'))
  before = Image.open(io.BytesIO(card.screenshot_as_png)).convert('RGB')
  hint_file = tmp_path / '1890Surfer.jpg.json'
  hint_file.write_text(json.dumps({'version': 1, 'hints': SURFER_HINTS}))
  requested = card.get_attribute('data-requested')
  card.find_element(By.CSS_SELECTOR, '.load-hints').send_keys(str(hint_file))
  WebDriverWait(browser, 10).until(  # the request with the hints, after the page's pause
      lambda b: card.get_attribute('data-requested') != requested)
  shown_when_settled(browser, card)
  after = Image.open(io.BytesIO(card.screenshot_as_png)).convert('RGB')
  browser.set_window_size(size['width'], size['height'])
  both = Image.new('RGB', (before.width + after.width + 16, max(before.height, after.height)),
                   'white')
  both.paste(before, (0, 0))
  both.paste(after, (before.width + 16, 0))
  both.save(path, optimize=True)  # full colour: a 256-colour palette turned small hints brown
