// Colour hints on the page, for a model that takes them (/api/info's takes_hints): place,
// move and remove points on a view of the whole result, with undo and redo, and save or
// load them as a hint file (version 1, jaxcolor/hints.py). The view is /api/lab's preview,
// whose pixels are blocks of `factor` x `factor` of the photo's; hints are always counted
// in the photo's full-size pixels, as the hint file and the server count them. Every change
// colorizes again after a short pause; only the latest request's result is shown (app.js's
// Photo.enqueue).
// Uses app.js's colour functions (RGB_FROM_XYZ, D65_WHITE, fromF, srgbByte, post).
'use strict';

const HINT_PAUSE_MS = 200;  // a change waits this long for the next one before the model runs
                            // (a drag sends one request when it rests, not one per move)
const RECENT_COLOURS = 8;
const MIN_HINT_PX = 7;      // a hint's square on screen is at least this wide, to be grabbed

// hints.default_size: 6 px at a short side of 256, in proportion.
function defaultHintSize(width, height) {
  return Math.max(1, Math.round(6 * Math.min(width, height) / 256));
}

// The index in /api/lab's planes (the preview) of the full-size pixel (x, y).
function previewIndex(meta, x, y) {
  const {width, factor} = meta.preview;
  return Math.floor(y / factor) * width + Math.floor(x / factor);
}

// The sRGB hex colour of L*, a*, b*, as drawColour draws it.
function labHex(l, a, b) {
  const m = RGB_FROM_XYZ;
  const fy = (l + 16) / 116, fx = fy + a / 500, fz = Math.max(fy - b / 200, 0);
  const xyz = [fromF(fx) * D65_WHITE[0], fromF(fy) * D65_WHITE[1], fromF(fz) * D65_WHITE[2]];
  return '#' + m.map(row => srgbByte(row[0] * xyz[0] + row[1] * xyz[1] + row[2] * xyz[2])
      .toString(16).padStart(2, '0')).join('');
}

class HintEditor {
  constructor(photo) {
    this.photo = photo;
    this.$ = photo.$;
    this.hints = [];     // as the hint file holds them: {x, y, size, color} or {x, y, size, ab}
    this.past = [];      // undo: earlier hint lists (JSON)
    this.future = [];    // redo
    this.selected = -1;
    this.recent = [];
    this.drag = null;
    this.timer = 0;
    const canvas = this.$('.editor');
    canvas.tabIndex = 0;
    canvas.addEventListener('pointerdown', e => this.down(e));
    canvas.addEventListener('pointermove', e => this.move(e));
    canvas.addEventListener('pointerup', () => this.up());
    canvas.addEventListener('contextmenu', e => {
      e.preventDefault();
      const i = this.hit(e);
      if (i >= 0) this.edit(() => this.hints.splice(i, 1));
    });
    canvas.addEventListener('keydown', e => this.key(e));
    this.$('.hint-colour').onchange = () => this.useColour({color: this.$('.hint-colour').value});
    this.$('.hint-size').onchange = () => {
      const size = Math.min(128, Math.max(1, Math.round(Number(this.$('.hint-size').value)) || 1));
      this.$('.hint-size').value = size;
      if (this.selected >= 0) this.edit(() => { this.hints[this.selected].size = size; });
    };
    this.$('.zoom').oninput = () => {
      this.$('.hint-canvas').style.setProperty('--zoom', this.$('.zoom').value);
      this.$('.zoom-value').textContent = `${this.$('.zoom').value}x`;
    };
    this.$('.undo').onclick = () => this.undo();
    this.$('.redo').onclick = () => this.redo();
    this.$('.save-hints').onclick = () => this.save();
    this.$('.load-hints').onchange = e => {
      if (e.target.files.length) this.load(e.target.files[0]);
      e.target.value = '';
    };
  }

  get active() {
    return Boolean(state.info && state.info.takes_hints);
  }

  // Full-size pixels per pixel of the editor's canvas (the preview's factor).
  get factor() {
    return this.photo.result ? this.photo.result.meta.preview.factor : 1;
  }

  // A new result: the editor shows its preview (the first time, patches get their default).
  show(meta) {
    if (!this.active) return;
    if (!this.sized) {  // the editor's canvas has the preview's size (Photo.show)
      this.sized = true;
      this.$('.hint-size').value = defaultHintSize(meta.width, meta.height);
    }
    this.$('.hints').hidden = false;
    this.render();
  }

  draw(imageData) {
    if (this.active) this.$('.editor').getContext('2d').putImageData(imageData, 0, 0);
  }

  // The `hints` field of a request: the hint file as infer.py --hints reads it.
  append(form) {
    if (this.active && this.hints.length) {
      form.append('hints', JSON.stringify({version: 1, hints: this.hints}));
    }
  }

  // The pixel under a pointer event, in the full-size image (the canvas shows
  // canvas.width x factor of its columns, the last block of them maybe narrower).
  pixel(e) {
    const canvas = this.$('.editor'), box = canvas.getBoundingClientRect();
    const {meta} = this.photo.result, k = this.factor;
    const clamp = (v, n) => Math.min(n - 1, Math.max(0, Math.floor(v)));
    return {x: clamp((e.clientX - box.left) / box.width * canvas.width * k, meta.width),
            y: clamp((e.clientY - box.top) / box.height * canvas.height * k, meta.height)};
  }

  // The index of the topmost hint under the pointer, or -1.
  hit(e) {
    const canvas = this.$('.editor'), box = canvas.getBoundingClientRect();
    const scale = box.width / (canvas.width * this.factor);  // on screen, a full-size pixel's
    for (let i = this.hints.length - 1; i >= 0; i--) {
      const {x, y, size} = this.hints[i];
      const half = Math.max(size * scale, MIN_HINT_PX) / 2;
      const cx = box.left + (x + 0.5) * scale, cy = box.top + (y + 0.5) * scale;
      if (Math.abs(e.clientX - cx) <= half && Math.abs(e.clientY - cy) <= half) return i;
    }
    return -1;
  }

  down(e) {
    if (e.button !== 0 || !this.photo.result) return;
    e.target.focus();
    const i = this.hit(e);
    if (i >= 0) {  // grab a hint: it follows the pointer until released
      this.selected = i;
      this.drag = {index: i, before: JSON.stringify(this.hints), moved: false};
      e.target.setPointerCapture(e.pointerId);
      this.render();
      return;
    }
    const {x, y} = this.pixel(e);
    const colour = this.current || {color: this.$('.hint-colour').value};
    this.edit(() => {
      this.hints.push({x, y, size: Number(this.$('.hint-size').value), ...colour});
      this.selected = this.hints.length - 1;
    });
    this.suggest(x, y);
  }

  move(e) {
    if (!this.drag) return;
    Object.assign(this.hints[this.drag.index], this.pixel(e));
    this.drag.moved = true;
    this.render();
  }

  up() {
    const drag = this.drag;
    this.drag = null;
    if (!drag) return;
    if (drag.moved) {
      this.past.push(drag.before);
      this.future = [];
      this.changed();
    }
    const {x, y} = this.hints[drag.index];
    this.suggest(x, y);
  }

  key(e) {
    const undo = (e.ctrlKey || e.metaKey) && e.key.toLowerCase() === 'z';
    if ((e.key === 'Delete' || e.key === 'Backspace') && this.selected >= 0) {
      e.preventDefault();
      this.edit(() => this.hints.splice(this.selected, 1));
    } else if (undo && !e.shiftKey) {
      e.preventDefault();
      this.undo();
    } else if ((undo && e.shiftKey) || ((e.ctrlKey || e.metaKey) && e.key === 'y')) {
      e.preventDefault();
      this.redo();
    }
  }

  // One undoable change: `change` mutates this.hints.
  edit(change) {
    this.past.push(JSON.stringify(this.hints));
    this.future = [];
    change();
    if (this.selected >= this.hints.length) this.selected = this.hints.length - 1;
    this.changed();
  }

  undo() {
    if (!this.past.length) return;
    this.future.push(JSON.stringify(this.hints));
    this.hints = JSON.parse(this.past.pop());
    this.selected = -1;
    this.changed();
  }

  redo() {
    if (!this.future.length) return;
    this.past.push(JSON.stringify(this.hints));
    this.hints = JSON.parse(this.future.pop());
    this.selected = -1;
    this.changed();
  }

  // The hints changed: draw them now, colorize again once the changes pause.
  changed() {
    this.render();
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.photo.enqueue(), HINT_PAUSE_MS);
  }

  // The colour a swatch or the picker chose: for the selected hint, and the next ones.
  useColour(colour) {
    this.current = colour;
    if (colour.color) this.$('.hint-colour').value = colour.color;
    this.recent = [colour, ...this.recent.filter(c => JSON.stringify(c) !== JSON.stringify(colour))]
        .slice(0, RECENT_COLOURS);
    if (this.selected >= 0) {
      this.edit(() => {
        const hint = this.hints[this.selected];
        delete hint.color;
        delete hint.ab;
        Object.assign(hint, colour);
      });
    }
  }

  // The colour a hint shows on screen: its own, at the photo's lightness for an `ab` one.
  swatch(colour, x, y) {
    if (colour.color) return colour.color;
    const {meta, l} = this.photo.result;
    return labHex(l[previewIndex(meta, x, y)] / LEVELS * L_MAX, colour.ab[0], colour.ab[1]);
  }

  render() {
    const canvas = this.$('.editor');
    const spanX = canvas.width * this.factor, spanY = canvas.height * this.factor;  // full-size
    this.$('.hint-layer').replaceChildren(...this.hints.map((hint, i) => {
      const square = document.createElement('div');
      const {x, y, size} = hint;
      const left = x - Math.floor((size - 1) / 2);
      const top = y - Math.floor((size - 1) / 2);
      square.className = i === this.selected ? 'hint selected' : 'hint';
      square.style.left = `${(left + size / 2) / spanX * 100}%`;
      square.style.top = `${(top + size / 2) / spanY * 100}%`;
      square.style.width = `${size / spanX * 100}%`;
      square.style.height = `${size / spanY * 100}%`;
      if (this.photo.result) square.style.background = this.swatch(hint, x, y);
      return square;
    }));
    this.$('.undo').disabled = !this.past.length;
    this.$('.redo').disabled = !this.future.length;
    const n = this.hints.length;
    this.$('.hint-count').textContent = n ? `${n} hint${n === 1 ? '' : 's'}` : 'no hints';
    this.card().dataset.hints = n;
  }

  card() {
    return this.photo.card;
  }

  // Colours to offer at (x, y): the model's colour there, the recent ones, and the
  // likeliest of the model's distribution there (a model with a colour-distribution head).
  async suggest(x, y) {
    const {meta, a, b} = this.photo.result;
    const i = previewIndex(meta, x, y), abScale = 2 * AB_MAX / LEVELS;
    const offers = [{ab: [a[i] * abScale - AB_MAX, b[i] * abScale - AB_MAX].map(v => +v.toFixed(2)),
                     title: "the model's colour here"}];
    offers.push(...this.recent.map(c => ({...c, title: 'a recent colour'})));
    this.offer(offers, x, y);
    if (!state.info || state.info.temperature === null) return;
    const form = new FormData();
    form.append('image', this.photo.file);
    this.append(form);
    form.append('x', x);
    form.append('y', y);
    try {
      const xhr = await post('/api/suggest', form, () => {});
      const answer = JSON.parse(new TextDecoder().decode(xhr.response));
      this.offer(offers.concat(answer.colours.map(c => ({
          ab: c.ab, title: `${Math.round(100 * c.probability)}% likely here`}))), x, y);
    } catch {
      // Suggestions are a help only: the model's colour and the recent ones stay.
    }
  }

  offer(offers, x, y) {
    this.$('.suggestions').hidden = false;
    this.$('.suggestions ul').replaceChildren(...offers.map(({title, ...colour}) => {
      const item = document.createElement('li');
      const button = document.createElement('button');
      button.type = 'button';
      button.title = title;
      button.className = 'suggestion';
      button.style.background = this.swatch(colour, x, y);
      button.onclick = () => this.useColour(colour);
      item.append(button);
      return item;
    }));
  }

  save() {
    const text = JSON.stringify({version: 1, hints: this.hints}, null, 1);
    const link = document.createElement('a');
    link.href = URL.createObjectURL(new Blob([text], {type: 'application/json'}));
    link.download = `${this.photo.file.name}.json`;
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
  }

  async load(file) {
    let document_;
    try {
      document_ = JSON.parse(await file.text());
    } catch (error) {
      this.photo.fail(`${file.name}: not valid JSON (${error.message})`);
      return;
    }
    if (!document_ || document_.version !== 1 || !Array.isArray(document_.hints)) {
      this.photo.fail(`${file.name}: not a hint file (version 1, with a list of hints)`);
      return;
    }
    this.edit(() => { this.hints = document_.hints; });  // the server checks each hint
  }
}
