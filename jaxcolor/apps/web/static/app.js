// The jaxcolor page: photos go one at a time to /api/lab, which answers with their
// lightness and chrominance (of a preview: downscaled by a whole factor for a photo of
// more than 2048 x 2048 pixels); the page draws the colour at any strength itself,
// with the same arithmetic as color.with_strength (jaxcolor/color.py), so the
// strength control needs no new model run. Downloads come from /api/colorize,
// which writes the file exactly as `infer.py --strength S` does. A model that takes
// colour hints gets a hint editor under each result (hints.js).
'use strict';

// ---- Colour: a mirror of jaxcolor/color.py (lab_to_rgb, grey_rgb, with_strength).
const XYZ_FROM_RGB = [[0.412453, 0.357580, 0.180423],
                      [0.212671, 0.715160, 0.072169],
                      [0.019334, 0.119193, 0.950227]];
const RGB_FROM_XYZ = invert3(XYZ_FROM_RGB);
const D65_WHITE = [0.95047, 1.0, 1.08883];
const KAPPA = 7.787;
const L_MAX = 100, AB_MAX = 128, LEVELS = 65535;  // the /api/lab quantization

function invert3(m) {
  const [[a, b, c], [d, e, f], [g, h, i]] = m;
  const cofactors = [[e * i - f * h, c * h - b * i, b * f - c * e],
                     [f * g - d * i, a * i - c * g, c * d - a * f],
                     [d * h - e * g, b * g - a * h, a * e - b * d]];
  const det = a * cofactors[0][0] + b * cofactors[1][0] + c * cofactors[2][0];
  return cofactors.map(row => row.map(v => v / det));
}

function fromF(f) {  // the inverse of CIE's f(t)
  return f > 0.2068966 ? f * f * f : (f - 16 / 116) / KAPPA;
}

// Linear light -> 8-bit sRGB, clipped and rounded as images.to_uint8 does. Encoding
// is monotonic, so the byte is the number of level boundaries at or below `linear`:
// the same result as the power law, found with eight comparisons.
const BOUNDARIES = Float64Array.from({length: 255}, (_, k) => {
  const v = (k + 0.5) / 255;  // halfway between the levels k and k + 1
  return v > 0.04045 ? Math.pow((v + 0.055) / 1.055, 2.4) : v / 12.92;
});

function srgbByte(linear) {
  let low = 0, high = 255;
  while (low < high) {
    const middle = (low + high) >> 1;
    if (BOUNDARIES[middle] <= linear) low = middle + 1; else high = middle;
  }
  return low;
}

// Fills RGBA `pixels` with the colour of L*, a*, b* (uint16 planes) at `strength`.
function drawColour(result, strength, pixels) {
  const {l, a, b} = result;
  const m = RGB_FROM_XYZ, abScale = 2 * AB_MAX / LEVELS;
  for (let i = 0, j = 0; i < l.length; i++, j += 4) {
    const fy = (l[i] / LEVELS * L_MAX + 16) / 116;
    const fx = fy + (a[i] * abScale - AB_MAX) * strength / 500;
    const fz = Math.max(fy - (b[i] * abScale - AB_MAX) * strength / 200, 0);
    const x = fromF(fx) * D65_WHITE[0], y = fromF(fy) * D65_WHITE[1], z = fromF(fz) * D65_WHITE[2];
    pixels[j] = srgbByte(m[0][0] * x + m[0][1] * y + m[0][2] * z);
    pixels[j + 1] = srgbByte(m[1][0] * x + m[1][1] * y + m[1][2] * z);
    pixels[j + 2] = srgbByte(m[2][0] * x + m[2][1] * y + m[2][2] * z);
    pixels[j + 3] = 255;
  }
}

// Fills RGBA `pixels` with the neutral grey of each L* (color.grey_rgb).
function drawGrey(result, pixels) {
  const {l} = result;
  for (let i = 0, j = 0; i < l.length; i++, j += 4) {
    const v = srgbByte(fromF((l[i] / LEVELS * L_MAX + 16) / 116));
    pixels[j] = pixels[j + 1] = pixels[j + 2] = v;
    pixels[j + 3] = 255;
  }
}

// ---- Talking to the server.

// The /api/lab body: uint32 n, n bytes of JSON, then uint16 planes L*, a*, b* of the
// preview (meta.preview: its width, height and factor; meta.width, height: the photo's).
function parseLab(buffer) {
  const n = new DataView(buffer).getUint32(0, true);
  const meta = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 4, n)));
  const count = meta.preview.width * meta.preview.height;
  const planes = new Uint16Array(buffer, 4 + n, 3 * count);
  return {meta, l: planes.subarray(0, count), a: planes.subarray(count, 2 * count),
          b: planes.subarray(2 * count)};
}

// POSTs `form`; resolves to the XHR on 200, rejects with the server's message.
// onProgress(stage, fraction): 'upload', 'wait' (the model runs), 'download'.
function post(url, form, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', url);
    xhr.responseType = 'arraybuffer';
    xhr.upload.onprogress = e => onProgress('upload', e.lengthComputable ? e.loaded / e.total : null);
    xhr.upload.onload = () => onProgress('wait', null);
    xhr.onprogress = e => onProgress('download', e.lengthComputable ? e.loaded / e.total : null);
    xhr.onload = () => (xhr.status === 200 ? resolve(xhr) : reject(new Error(errorOf(xhr))));
    xhr.onerror = () => reject(new Error('no answer from the server (is serve.py still running?)'));
    xhr.send(form);
  });
}

function errorOf(xhr) {
  try {
    return JSON.parse(new TextDecoder().decode(xhr.response)).error;
  } catch {
    return `the server answered ${xhr.status} ${xhr.statusText}`;
  }
}

function megabytes(bytes) {
  return `${(bytes / 2 ** 20).toFixed(bytes < 2 ** 20 ? 2 : 1)} MB`;
}

// ---- One photo: its card, its run, its controls.

const state = {info: null, style: null, photos: [], queue: Promise.resolve()};
const STAGES = {upload: 'uploading', wait: 'colorizing', download: 'receiving'};

// The controls' ranges are the server's (/api/info): colour strength always, the
// temperature only for a model with a colour-distribution head.
function setLimits(card) {
  const strength = card.querySelector('.strength');
  strength.max = state.info.max_strength;
  strength.disabled = false;  // disabled until the server's range is known
  const temperature = card.querySelector('.temperature');
  temperature.max = state.info.max_temperature;
  if (state.info.temperature !== null) temperature.value = state.info.temperature;
  card.querySelector('.temperature-value').textContent = Number(temperature.value).toFixed(2);
  card.querySelector('.temperature-control').hidden = state.info.temperature === null;
}

class Photo {
  constructor(file) {
    this.file = file;
    this.result = null;
    this.generation = 0;  // of the latest colorize request: only its answer is shown
    this.card = document.getElementById('card').content.firstElementChild.cloneNode(true);
    this.$ = selector => this.card.querySelector(selector);
    this.$('.name').textContent = file.name;
    this.$('.close').onclick = () => this.remove();
    this.$('.divider').oninput = e => this.$('.compare').style.setProperty('--split', `${e.target.value}%`);
    if (state.info) setLimits(this.card);
    // A new temperature decodes the distribution again: one more model run.
    this.$('.temperature').onchange = () => this.enqueue();
    this.$('.temperature').oninput = () => {
      this.$('.temperature-value').textContent = Number(this.$('.temperature').value).toFixed(2);
    };
    this.$('.strength').oninput = () => this.redraw();
    this.$('.download').onclick = () => this.download();
    this.hints = new HintEditor(this);
    document.getElementById('results').append(this.card);
  }

  setState(name, text) {
    this.card.dataset.state = name;
    this.$('.status').textContent = text;
  }

  fail(message) {
    this.setState('error', 'failed');
    this.$('.error').textContent = message;
    this.$('.error').hidden = false;
    this.$('.progress').hidden = true;
  }

  progress(stage, fraction, started) {
    const bar = this.$('.progress');
    bar.hidden = false;
    if (fraction === null) bar.removeAttribute('value'); else bar.value = fraction;
    const done = fraction === null ? '' : ` ${Math.round(100 * fraction)}%`;
    const seconds = ((performance.now() - started) / 1000).toFixed(0);
    this.setState(stage, `${STAGES[stage]}${done}, ${seconds} s`);
  }

  // Queued: the page sends one photo at a time, as the server runs them.
  enqueue() {
    const limit = state.info && state.info.max_upload_bytes;
    if (limit && this.file.size > limit) {
      this.fail(`${megabytes(this.file.size)} is more than the server's limit of ` +
                `${megabytes(limit)} (serve.py --max-upload-mb)`);
      return;
    }
    this.setState('waiting', 'waiting');
    this.$('.error').hidden = true;
    const style = state.style;
    const generation = ++this.generation;
    this.card.dataset.requested = generation;
    state.queue = state.queue.then(() => this.colorize(style, generation));
  }

  // Runs unless a newer request for this photo was queued meanwhile; shows its answer
  // unless a newer one was queued while it ran.
  async colorize(style, generation) {
    if (!this.card.isConnected || generation !== this.generation) return;
    const started = performance.now();
    const form = new FormData();
    form.append('image', this.file);
    if (style) form.append('style', style);
    this.appendTemperature(form);
    this.hints.append(form);
    let stage = 'upload', fraction = 0;
    const tick = setInterval(() => this.progress(stage, fraction, started), 500);
    try {
      const xhr = await post('/api/lab', form, (s, f) => {
        [stage, fraction] = [s, f];
        this.progress(stage, fraction, started);
      });
      if (generation !== this.generation) return;  // a newer answer is on its way
      this.show(parseLab(xhr.response), style);
      this.card.dataset.shown = generation;
      this.card.dataset.shownMs = (performance.now() - started).toFixed(0);
      this.setState('done', `shown after ${(this.card.dataset.shownMs / 1000).toFixed(1)} s`);
    } catch (error) {
      if (generation === this.generation) this.fail(error.message);
    } finally {
      clearInterval(tick);
    }
  }

  // The canvases have the preview's size; Download writes the photo's.
  show(result, style) {
    const {meta} = result, {width, height, factor} = meta.preview;
    this.result = result;
    this.style = style;
    for (const canvas of this.card.querySelectorAll('canvas')) {
      canvas.width = width;
      canvas.height = height;
    }
    const before = this.$('.before').getContext('2d');
    const grey = before.createImageData(width, height);
    drawGrey(result, grey.data);
    before.putImageData(grey, 0, 0);
    this.colour = this.$('.after').getContext('2d').createImageData(width, height);
    this.hints.show(meta);
    this.redraw();
    this.$('.progress').hidden = true;
    this.$('.result').hidden = false;
    const labels = this.$('.labels');
    labels.replaceChildren(...meta.labels.map(({name, probability}) => {
      const item = document.createElement('li');
      item.textContent = `${name} ${Math.round(100 * probability)}%`;
      return item;
    }));
    labels.hidden = !meta.labels.length;
    const notes = meta.notes.concat(style ? [`mood borrowed from ${style.name}`] : []);
    if (factor > 1) {
      notes.push(`shown at 1/${factor} of its ${meta.width}x${meta.height} pixels; ` +
                 'Download writes them all');
    }
    this.$('.notes').replaceChildren(...notes.map(note => {
      const item = document.createElement('li');
      item.textContent = note;
      return item;
    }));
  }

  // Draws the colour at the strength control's value, at most once a frame.
  redraw() {
    const strength = Number(this.$('.strength').value);
    this.$('.strength-value').textContent = strength.toFixed(2);
    if (!this.result || this.pending) return;
    this.pending = requestAnimationFrame(() => {
      this.pending = 0;
      const value = Number(this.$('.strength').value);
      drawColour(this.result, value, this.colour.data);
      this.$('.after').getContext('2d').putImageData(this.colour, 0, 0);
      this.hints.draw(this.colour);
      this.card.dataset.strength = value;
      // Which answer (its generation) the canvases now show, and when (performance.now()):
      // benchmarks/hints_redraw.py times a hint change to its redrawn result by them.
      this.card.dataset.drawn = this.card.dataset.shown;
      this.card.dataset.drawnAt = performance.now().toFixed(1);
    });
  }

  async download() {
    const button = this.$('.download');
    const sideBySide = this.$('.side-by-side').checked;
    const form = new FormData();
    form.append('image', this.file);
    if (this.style) form.append('style', this.style);
    this.appendTemperature(form);
    this.hints.append(form);
    form.append('strength', this.$('.strength').value);
    form.append('side_by_side', sideBySide ? '1' : '0');
    button.disabled = true;
    try {
      const xhr = await post('/api/colorize', form, (stage, fraction) => {
        button.textContent = `${STAGES[stage]}${fraction === null ? '…' : ` ${Math.round(100 * fraction)}%`}`;
      });
      const blob = new Blob([xhr.response], {type: xhr.getResponseHeader('Content-Type')});
      const link = document.createElement('a');
      link.href = URL.createObjectURL(blob);
      const name = this.result.meta.download_name;
      link.download = sideBySide ? name.replace(/(\.[^.]*)$/, '-side-by-side$1') : name;
      link.click();
      setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
    } catch (error) {
      this.fail(error.message);
    } finally {
      button.disabled = false;
      button.textContent = 'Download';
    }
  }

  appendTemperature(form) {
    if (state.info && state.info.temperature !== null) {
      form.append('temperature', this.$('.temperature').value);
    }
  }

  remove() {
    this.card.remove();
    state.photos = state.photos.filter(photo => photo !== this);
  }
}

// ---- The page.

function addPhotos(files) {
  for (const file of files) {
    const photo = new Photo(file);
    state.photos.push(photo);
    photo.enqueue();
  }
}

// A new mood photo (or none) colorizes every photo on the page again.
function setStyle(file) {
  state.style = file;
  document.getElementById('style-name').textContent = file ? file.name : '';
  document.getElementById('style-clear').hidden = !file;
  for (const photo of state.photos) photo.enqueue();
}

function acceptDrops(zone, onFiles) {
  zone.addEventListener('dragover', event => {
    event.preventDefault();
    zone.classList.add('over');
  });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', event => {
    event.preventDefault();
    event.stopPropagation();
    zone.classList.remove('over');
    if (event.dataTransfer.files.length) onFiles(event.dataTransfer.files);
  });
}

async function start() {
  const photos = document.getElementById('photos');
  photos.onchange = () => {
    addPhotos(photos.files);
    photos.value = '';
  };
  const style = document.getElementById('style');
  style.onchange = () => {
    if (style.files.length) setStyle(style.files[0]);
    style.value = '';
  };
  document.getElementById('style-clear').onclick = () => setStyle(null);
  acceptDrops(document.getElementById('mood'), files => setStyle(files[0]));
  acceptDrops(document.getElementById('drop'), addPhotos);
  acceptDrops(document.body, addPhotos);  // a photo dropped anywhere else
  try {
    state.info = await (await fetch('/api/info')).json();
    document.querySelectorAll('.card').forEach(setLimits);  // cards added meanwhile
    document.getElementById('limits').textContent =
        `up to ${megabytes(state.info.max_upload_bytes)} and ` +
        `${(state.info.max_pixels / 1e6).toFixed(0)} megapixels a photo` +
        (state.info.names_scenes ? '' : '; this model names no scenes');
  } catch {
    document.getElementById('limits').textContent = 'the server does not answer';
  }
  document.body.dataset.ready = '1';
}

start();
