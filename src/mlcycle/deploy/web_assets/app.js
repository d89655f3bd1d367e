// The page `mlcycle deploy web` builds: the bundle's model.onnx runs in this browser with
// onnxruntime-web's wasm backend (vendor/onnxruntime-web/); nothing is fetched but the
// site's own files.
//
// The model is fed exactly what the server feeds it (mlcycle.bundle.Bundle.inputs_from_columns):
// * numeric: an empty or absent value is missing (NaN); any other text is read as Python's
//   float() reads it (surrounding whitespace, "_" between digits, inf / infinity / nan in
//   any case), then stored as float32; text that is no number is an error naming the
//   feature and the value;
// * categorical: the text as it is; a missing value is "".
//
// For tests and scripts: window.mlcycleResults holds the last results, an array with one
// {label: string, probabilities: number[]} per row (probabilities in the order of the
// signature's classes, the model's float32 values exactly); <script id="results-json">
// holds the same as JSON. #status gets data-state="ready" once the model is loaded
// ("error" if it could not be).

import * as ort from './vendor/onnxruntime-web/ort.wasm.min.mjs';

const VENDOR = new URL('./vendor/onnxruntime-web/', import.meta.url).href;
const SHOWN_ROWS = 500; // the batch table shows this many rows; the download has all

const $ = (id) => document.getElementById(id);

/** A mistake in the user's input: shown in the alert area, never thrown out of a handler. */
class InputError extends Error {}

// -- numbers, as Python's float() reads them ------------------------------------------------

// float() strips ASCII space, \t \n \v \f \r and Unicode's spaces (\s minus U+FEFF, plus U+0085).
const SPACE = '[\\t\\n\\v\\f\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]';
const TRIM = new RegExp(`^${SPACE}+|${SPACE}+$`, 'g');
const DIGITS = '[0-9](?:_?[0-9])*';
const DECIMAL = new RegExp(
  `^[+-]?(?:(?:${DIGITS})?\\.${DIGITS}|${DIGITS}\\.?)(?:[eE][+-]?${DIGITS})?$`,
);
const SPECIAL = /^([+-]?)(inf|infinity|nan)$/i;
const UNICODE_DIGIT = /\p{Nd}/u;

/** A Unicode decimal digit as an ASCII one: such digits come in runs of ten, 0 to 9. */
function asciiDigit(ch) {
  const cp = ch.codePointAt(0);
  let start = cp;
  while (UNICODE_DIGIT.test(String.fromCodePoint(start - 1))) start -= 1;
  return String((cp - start) % 10);
}

/** The number Python's float(text) gives, or null where float() raises ValueError. */
export function parseNumber(text) {
  const s = text.replace(TRIM, '').replace(/\p{Nd}/gu, (c) => (c <= '9' ? c : asciiDigit(c)));
  const special = SPECIAL.exec(s);
  if (special) {
    if (special[2].toLowerCase() === 'nan') return NaN;
    return special[1] === '-' ? -Infinity : Infinity;
  }
  return DECIMAL.test(s) ? Number(s.replaceAll('_', '')) : null;
}

/** One numeric value as Bundle._floats reads it: absent or "" is NaN. */
function toNumber(value, place) {
  if (value === undefined || value === null || value === '') return NaN;
  const x = parseNumber(value);
  if (x === null) {
    throw new InputError(`${place} has the value ${JSON.stringify(value)}, which is not a number`);
  }
  return x;
}

/** One categorical value as Bundle._strings reads it: absent is "". */
const toText = (value) => (value === undefined || value === null ? '' : String(value));

// -- CSV ------------------------------------------------------------------------------------

/** Rows of fields (RFC 4180: "," separated, "..." quoted with "" for a quote); blank lines skipped. */
export function parseCsv(text) {
  const rows = [];
  let row = [];
  let field = '';
  let quoted = false;
  let touched = false; // the line holds something, even only "" or ","
  for (let i = 0; i < text.length; i += 1) {
    const ch = text[i];
    if (quoted) {
      if (ch !== '"') field += ch;
      else if (text[i + 1] === '"') { field += '"'; i += 1; }
      else quoted = false;
    } else if (ch === '"' && field === '') {
      quoted = true;
      touched = true;
    } else if (ch === ',') {
      row.push(field);
      field = '';
      touched = true;
    } else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && text[i + 1] === '\n') i += 1;
      if (touched || field !== '') rows.push([...row, field]);
      row = [];
      field = '';
      touched = false;
    } else {
      field += ch;
    }
  }
  if (quoted) throw new InputError('the CSV ends inside a quoted field: a " is not closed');
  if (touched || field !== '') rows.push([...row, field]);
  return rows;
}

/** {values: {feature: text}, row: "row N"} per data row of a CSV naming every feature in its header. */
function csvRows(text, features) {
  const table = parseCsv(text);
  if (table.length === 0) throw new InputError('the CSV is empty: paste a header row and rows');
  const header = table[0].map((name, i) => (i === 0 ? name.replace(/^\ufeff/, '') : name));
  const column = (f) => {
    const exact = header.indexOf(f);
    return exact >= 0 ? exact : header.findIndex((h) => h.trim() === f);
  };
  const absent = features.filter((f) => column(f) < 0);
  if (absent.length > 0) {
    throw new InputError(`the CSV has no column ${absent.map((f) => `'${f}'`).join(', ')}; ` +
      `its header row must name every feature: ${features.join(', ')}`);
  }
  const twice = features.find((f) => header.filter((h) => h === f || h.trim() === f).length > 1);
  if (twice !== undefined) throw new InputError(`the CSV names the column '${twice}' twice`);
  if (table.length === 1) throw new InputError('the CSV has a header row but no rows');
  const index = features.map(column);
  return table.slice(1).map((cells, r) => {
    if (cells.length !== header.length) {
      throw new InputError(`row ${r + 1} has ${cells.length} field(s) but the header has ` +
        `${header.length}; quote a value that holds a comma ("a,b")`);
    }
    const values = {};
    features.forEach((f, j) => { values[f] = cells[index[j]]; });
    return { values, row: `row ${r + 1}` };
  });
}

// -- the model ------------------------------------------------------------------------------

let session = null;
let signature = null;
let classes = [];

/** The model's inputs for rows of {values: {feature: text or null}, row?: "row N"}. */
function feeds(rows) {
  const n = rows.length;
  const out = {};
  for (const spec of signature.inputs) {
    const k = spec.features.length;
    const numeric = spec.dtype === 'float32';
    const data = numeric ? new Float32Array(n * k) : new Array(n * k);
    rows.forEach(({ values, row }, i) => {
      spec.features.forEach((f, j) => {
        const place = row ? `${row}, column '${f}'` : `numeric feature '${f}'`;
        data[i * k + j] = numeric ? toNumber(values[f], place) : toText(values[f]);
      });
    });
    out[spec.name] = new ort.Tensor(numeric ? 'float32' : 'string', data, [n, k]);
  }
  return out;
}

/** Predict rows; publish and return [{label, probabilities}]. */
async function predict(rows) {
  const result = await session.run(feeds(rows), ['label', 'probabilities']);
  const labels = result.label.data;
  const proba = result.probabilities.data;
  const c = classes.length;
  const results = rows.map((_, i) => ({
    label: String(labels[i]),
    probabilities: Array.from(proba.subarray(i * c, (i + 1) * c)),
  }));
  window.mlcycleResults = results;
  $('results-json').textContent = JSON.stringify(results);
  return results;
}

// -- the page -------------------------------------------------------------------------------

function showAlert(message) {
  $('alert').textContent = message;
  $('alert').hidden = false;
}

function clearAlert() {
  $('alert').textContent = '';
  $('alert').hidden = true;
}

/** Run an async handler; an InputError (or any failure) is shown, never thrown. */
function guarded(handler) {
  return async (event) => {
    event?.preventDefault();
    try {
      clearAlert();
      await handler();
    } catch (err) {
      showAlert(err instanceof InputError ? `Check the input: ${err.message}` :
        `The prediction failed: ${err?.message ?? err}`);
    }
  };
}

function cell(tag, text, attrs = {}) {
  const el = document.createElement(tag);
  el.textContent = text;
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  return el;
}

const shortNumber = (p) => (Number.isFinite(p) ? p.toFixed(4) : String(p));

/** The features the model reads, in the schema's order, with their specs. */
function usedFeatures() {
  const used = new Set(signature.inputs.flatMap((spec) => spec.features));
  return signature.features.filter((f) => used.has(f.name));
}

function buildForm() {
  const box = $('fields');
  usedFeatures().forEach((spec, i) => {
    const id = `feature-${i}`;
    const wrap = cell('div', '', { class: 'field' });
    wrap.append(cell('label', spec.name, { for: id }));
    let input;
    if (spec.kind === 'categorical' && Array.isArray(spec.categories)) {
      input = cell('select', '', { id });
      input.append(cell('option', '(missing)', { value: '' }));
      for (const c of spec.categories) input.append(cell('option', String(c), { value: String(c) }));
    } else if (spec.kind === 'categorical') {
      input = cell('input', '', { id, type: 'text', autocomplete: 'off' });
    } else if (spec.kind === 'text') {
      input = cell('textarea', '', { id, rows: '3' });
    } else {
      input = cell('input', '', { id, type: 'number', step: 'any', inputmode: 'decimal' });
    }
    input.dataset.feature = spec.name;
    input.dataset.kind = spec.kind;
    const word = { numeric: 'number', categorical: 'category', text: 'text' }[spec.kind];
    const hint = [word, 'empty = missing'];
    if (spec.min != null && spec.max != null) hint.push(`seen in training: ${spec.min} to ${spec.max}`);
    wrap.append(input, cell('small', hint.join('; '), { id: `${id}-hint` }));
    input.setAttribute('aria-describedby', `${id}-hint`);
    box.append(wrap);
  });
}

/** The form's row; a number field holding text the browser cannot read is an error. */
function formRow() {
  const values = {};
  for (const input of $('fields').querySelectorAll('[data-feature]')) {
    if (input.validity?.badInput) {
      throw new InputError(`numeric feature '${input.dataset.feature}' holds text that is not a number`);
    }
    values[input.dataset.feature] = input.value;
  }
  return { values };
}

async function predictOne() {
  const [result] = await predict([formRow()]);
  $('label').textContent = result.label;
  const body = $('row-probabilities').tBodies[0];
  body.replaceChildren(...classes.map((c, j) => {
    const tr = cell('tr', '', { 'data-class': c });
    const p = result.probabilities[j];
    tr.append(cell('th', c, { scope: 'row' }), cell('td', shortNumber(p), { 'data-value': String(p) }));
    return tr;
  }));
  $('row-result').hidden = false;
}

let batch = [];

async function predictAll() {
  batch = [];
  $('download').disabled = true;
  const names = usedFeatures().map((f) => f.name);
  const results = await predict(csvRows($('csv').value, names));
  batch = results;
  const table = $('batch-results');
  const head = cell('tr', '');
  head.append(cell('th', 'Row', { scope: 'col' }), cell('th', 'Label', { scope: 'col' }));
  for (const c of classes) head.append(cell('th', c, { scope: 'col' }));
  table.tHead.replaceChildren(head);
  table.tBodies[0].replaceChildren(...results.slice(0, SHOWN_ROWS).map((r, i) => {
    const tr = cell('tr', '', { 'data-row': String(i + 1) });
    tr.append(cell('th', String(i + 1), { scope: 'row' }), cell('td', r.label));
    r.probabilities.forEach((p) => tr.append(cell('td', shortNumber(p), { 'data-value': String(p) })));
    return tr;
  }));
  table.caption.textContent = results.length > SHOWN_ROWS ?
    `Predictions: the first ${SHOWN_ROWS} of ${results.length} rows (the download has all)` :
    `Predictions for ${results.length} row(s)`;
  table.hidden = false;
  $('download').disabled = false;
}

const csvField = (v) => (/[",\r\n]/.test(v) ? `"${v.replaceAll('"', '""')}"` : v);

function download() {
  const lines = [['row', 'label', ...classes.map((c) => `p_${c}`)].map(csvField).join(',')];
  batch.forEach((r, i) => {
    lines.push([String(i + 1), csvField(r.label), ...r.probabilities.map(String)].join(','));
  });
  const url = URL.createObjectURL(new Blob([`${lines.join('\n')}\n`], { type: 'text/csv' }));
  const link = cell('a', '', { href: url, download: 'predictions.csv' });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

async function getJson(path) {
  const response = await fetch(path);
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

async function main() {
  const status = $('status');
  const [site, sig] = await Promise.all([getJson('site.json'), getJson('signature.json')]);
  signature = sig;
  classes = signature.classes.map(String);
  document.title = site.title;
  $('title').textContent = site.title;
  $('footer').textContent = `Model ${site.model.name || '(unnamed)'}, version ` +
    `${site.model.version} \u00b7 onnxruntime-web ${site.onnxruntime_web.version} (wasm) ` +
    `\u00b7 runs in this browser; nothing is sent anywhere`;
  buildForm();
  const names = usedFeatures().map((f) => f.name);
  $('csv').placeholder = names.map(csvField).join(',');
  $('csv-hint').textContent = `Columns: ${names.join(', ')} (in any order; other columns are ` +
    'ignored). An empty cell is a missing value; rows are counted from 1 after the header.';

  ort.env.wasm.wasmPaths = VENDOR;
  // Threads need a cross-origin isolated page (COOP/COEP headers); a plain static host gets one.
  if (!globalThis.crossOriginIsolated) ort.env.wasm.numThreads = 1;
  const response = await fetch('model.onnx');
  if (!response.ok) throw new Error(`model.onnx: HTTP ${response.status}`);
  const model = new Uint8Array(await response.arrayBuffer());
  session = await ort.InferenceSession.create(model, { executionProviders: ['wasm'] });

  $('row-form').addEventListener('submit', guarded(predictOne));
  $('predict-all').addEventListener('click', guarded(predictAll));
  $('download').addEventListener('click', () => download());
  $('predict').disabled = false;
  $('predict-all').disabled = false;
  status.textContent = `Ready: the model runs in this browser (${classes.length} classes).`;
  status.dataset.state = 'ready';
}

main().catch((err) => {
  $('status').textContent = 'The model could not be loaded.';
  $('status').dataset.state = 'error';
  showAlert(`The model could not be loaded: ${err?.message ?? err}`);
});
