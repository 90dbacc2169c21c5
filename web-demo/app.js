// The demo page: loads an `llmql export-web` folder (or dropped files) into the llmql-wasm encoder,
// encodes queries in the browser and searches the corpus index. `window.llmql` is the handle the
// browser test and the benchmark drive.
import init, { ModelFiles, EncoderOptions, LlmqlEncoder, DenseIndex, probeWebGpu, selfTest } from './pkg/llmql_wasm.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const state = { encoder: null, index: null, passages: new Map(), source: '' };

function status(text, error = false) {
  $('status').textContent = text;
  $('status').className = error ? 'error' : '';
}

async function fetchBytes(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
}
async function fetchText(url) {
  return new TextDecoder().decode(await fetchBytes(url));
}

function parsePassages(text, name) {
  const map = new Map();
  text.split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    let rec;
    try { rec = JSON.parse(line); } catch (e) { throw new Error(`${name}, line ${i + 1}: invalid JSON: ${e.message}`); }
    const id = rec._id ?? rec.id ?? rec.docid;
    if (id === undefined) throw new Error(`${name}, line ${i + 1}: no field _id`);
    map.set(String(id), { title: rec.title ?? '', text: rec.text ?? '' });
  });
  return map;
}

function encoderOptions(settings, backend, hostEmbeddings) {
  const o = new EncoderOptions();
  o.backend = backend;
  if (settings) {
    if (settings.template) o.template = settings.template;
    if (settings.query_max_len) o.queryMaxLen = settings.query_max_len;
    if (settings.passage_max_len) o.passageMaxLen = settings.passage_max_len;
    if (settings.truncation) o.truncation = settings.truncation;
    if (settings.pooling) o.pooling = settings.pooling;
    if (settings.normalize !== undefined) o.normalize = settings.normalize;
  }
  if (params.get('dtype')) o.dtype = params.get('dtype');
  o.hostEmbeddings = hostEmbeddings;
  return o;
}

function describe(loadMs) {
  const e = state.encoder;
  const label = e.backend === 'webgpu' ? 'WebGPU' : 'CPU (Burn flex, wasm)';
  return `backend: ${label}   dtype: ${e.dtype}   dim: ${e.dim}` +
    (e.hostEmbeddings ? '   token embeddings: host lookup' : '') +
    `\nmodel: ${state.source}\nindex: ${state.index.size} passages   loaded in ${(loadMs / 1000).toFixed(2)} s`;
}

function ready() {
  window.llmql.loads += 1;
  $('query').disabled = false;
  $('go').disabled = false;
  document.body.dataset.backend = state.encoder.backend;
}

// Loads an export folder served beside the page (llmql-web.json manifest).
async function loadExport(base, backend) {
  const t0 = performance.now();
  base = base.replace(/\/$/, '');
  status(`loading ${base}/llmql-web.json …`);
  const manifest = JSON.parse(await fetchText(`${base}/llmql-web.json`));
  if (manifest.format !== 'llmql-web/1') throw new Error(`${base}/llmql-web.json: unknown format ${manifest.format}`);
  const m = manifest.model;
  status(`downloading the model (${m.weights_dtype} weights) …`);
  const files = new ModelFiles(await fetchBytes(`${base}/${m.config}`), await fetchBytes(`${base}/${m.tokenizer}`));
  files.setName(m.name ?? base);
  if (m.tokenizer_config) files.setTokenizerConfig(await fetchBytes(`${base}/${m.tokenizer_config}`));
  for (const w of m.weights) files.addWeights(w, await fetchBytes(`${base}/${w}`));
  if (m.adapter) files.setAdapter(await fetchText(`${base}/${m.adapter.config}`), await fetchBytes(`${base}/${m.adapter.weights}`));
  status('building the encoder …');
  const encoder = await LlmqlEncoder.load(files, encoderOptions(manifest.encoder, backend, params.get('hostEmbeddings') === '1'));
  const c = manifest.corpus;
  const index = new DenseIndex(await fetchBytes(`${base}/${c.embeddings}`), await fetchText(`${base}/${c.ids}`));
  const passages = c.passages ? parsePassages(await fetchText(`${base}/${c.passages}`), c.passages) : new Map();
  replace(encoder, index, passages, `${m.name}${m.adapter ? ' + adapter ' + (m.adapter.name ?? '') : ''} (${base})`);
  status(describe(performance.now() - t0));
  ready();
}

// Loads dropped / picked files: a model folder, an adapter, an encode output and a corpus.
async function loadFiles(list, backend) {
  const t0 = performance.now();
  const byName = new Map();
  for (const f of list) byName.set(f.name, f);
  const need = (n) => { const f = byName.get(n); if (!f) throw new Error(`dropped files have no ${n}`); return f; };
  const bytes = async (f) => new Uint8Array(await f.arrayBuffer());
  const files = new ModelFiles(await bytes(need('config.json')), await bytes(need('tokenizer.json')));
  const first = list[0]?.webkitRelativePath?.split('/')[0];
  files.setName(first || 'dropped model');
  if (byName.has('tokenizer_config.json')) files.setTokenizerConfig(await bytes(byName.get('tokenizer_config.json')));
  const weights = [...byName.values()].filter((f) => f.name.endsWith('.safetensors') && f.name !== 'adapter_model.safetensors');
  if (!weights.length) throw new Error('dropped files have no *.safetensors weights');
  for (const w of weights) files.addWeights(w.name, await bytes(w));
  if (byName.has('adapter_config.json')) files.setAdapter(await need('adapter_config.json').text(), await bytes(need('adapter_model.safetensors')));
  const manifest = byName.has('llmql-web.json') ? JSON.parse(await byName.get('llmql-web.json').text()) : null;
  status('building the encoder …');
  const encoder = await LlmqlEncoder.load(files, encoderOptions(manifest?.encoder, backend, false));
  const index = new DenseIndex(await bytes(need('embeddings.npy')), await need('ids.txt').text());
  const corpus = byName.get('passages.jsonl') ?? byName.get('corpus.jsonl');
  const passages = corpus ? parsePassages(await corpus.text(), corpus.name) : new Map();
  replace(encoder, index, passages, first || 'dropped files');
  status(describe(performance.now() - t0));
  ready();
}

// The files inside dropped folders (a dropped folder arrives as one entry).
async function filesOf(entries) {
  const out = [];
  const walk = async (entry) => {
    if (entry.isFile) {
      out.push(await new Promise((res, rej) => entry.file(res, rej)));
    } else if (entry.isDirectory) {
      const reader = entry.createReader();
      for (;;) {
        const batch = await new Promise((res, rej) => reader.readEntries(res, rej));
        if (!batch.length) break;
        for (const e of batch) await walk(e);
      }
    }
  };
  for (const e of entries) await walk(e);
  return out;
}

function replace(encoder, index, passages, source) {
  state.encoder?.free();
  state.index?.free();
  Object.assign(state, { encoder, index, passages, source });
}

// Encodes a query and returns the top k with scores; the time is the encode alone.
async function search(text, k = 10) {
  const t0 = performance.now();
  const vector = await state.encoder.encodeQuery(text);
  const encodeMs = performance.now() - t0;
  const hits = state.index.search(vector, k).map((h) => ({ id: h.id, score: h.score }));
  return { vector, hits, encodeMs };
}

function render(text, { hits, encodeMs }) {
  $('timing').textContent = `query encoded in ${encodeMs.toFixed(1)} ms on ${state.encoder.backend === 'webgpu' ? 'WebGPU' : 'the CPU'}`;
  const ol = $('results');
  ol.replaceChildren(...hits.map((h) => {
    const li = document.createElement('li');
    const p = state.passages.get(h.id);
    const head = document.createElement('div');
    head.innerHTML = `<span class="score"></span> <b></b> <span class="pid"></span>`;
    head.children[0].textContent = h.score.toFixed(4);
    head.children[1].textContent = p?.title || '';
    head.children[2].textContent = `[${h.id}]`;
    const body = document.createElement('div');
    body.textContent = p ? p.text.slice(0, 400) + (p.text.length > 400 ? ' …' : '') : '';
    li.append(head, body);
    return li;
  }));
  ol.dataset.query = text;
}

async function guarded(fn) {
  try { await fn(); } catch (e) { console.error(e); status(String(e?.message ?? e), true); window.llmql.error = String(e?.message ?? e); }
}

let resolveReady;
window.llmql = {
  ready: new Promise((r) => { resolveReady = r; }),
  error: null,
  loads: 0,
  backend: () => state.encoder?.backend,
  info: () => ({ backend: state.encoder?.backend, dtype: state.encoder?.dtype, hostEmbeddings: state.encoder?.hostEmbeddings, size: state.index?.size }),
  encodeQuery: async (text) => Array.from(await state.encoder.encodeQuery(text)),
  // WebGPU vs CPU on the encoder's building blocks (largest difference of each), as JSON.
  selfTest: async (only) => JSON.parse(await selfTest(only)),
  tokenizeQuery: (text) => Array.from(state.encoder.tokenizeQuery(text)),
  search: async (text, k = 10) => { const r = await search(text, k); return { hits: r.hits, encodeMs: r.encodeMs }; },
  // Per-query encode latency over `queries` (one untimed warm-up first): sorted times in ms.
  bench: async (queries) => {
    await state.encoder.encodeQuery(queries[0]);
    const times = [];
    for (const q of queries) {
      const t0 = performance.now();
      await state.encoder.encodeQuery(q);
      times.push(performance.now() - t0);
    }
    return times.sort((a, b) => a - b);
  },
};

async function main() {
  await init();
  const gpu = await probeWebGpu();
  const backend = params.get('backend') ?? 'auto';
  $('backend').value = backend;
  if (params.get('data')) $('data').value = params.get('data');
  status(gpu ? `WebGPU adapter found (${gpu.fallback ? 'software: auto uses the CPU, ' : ''}shader-f16: ${gpu.f16}, max binding ${gpu.maxStorageBufferBindingSize} B)` : 'no WebGPU adapter: the CPU backend will be used');
  $('load').onclick = () => guarded(() => loadExport($('data').value, $('backend').value));
  $('form').onsubmit = (ev) => {
    ev.preventDefault();
    const text = $('query').value.trim();
    if (text) guarded(async () => render(text, await search(text, 10)));
  };
  const drop = $('drop');
  drop.ondragover = (ev) => { ev.preventDefault(); drop.classList.add('over'); };
  drop.ondragleave = () => drop.classList.remove('over');
  drop.ondrop = (ev) => {
    ev.preventDefault();
    drop.classList.remove('over');
    const entries = [...ev.dataTransfer.items].map((i) => i.webkitGetAsEntry?.()).filter(Boolean);
    guarded(async () => loadFiles(entries.length ? await filesOf(entries) : [...ev.dataTransfer.files], $('backend').value));
  };
  $('pick').onchange = (ev) => guarded(() => loadFiles([...ev.target.files], $('backend').value));
  await guarded(() => loadExport($('data').value, backend));
  resolveReady(window.llmql.error);
}

main().catch((e) => { console.error(e); status(String(e?.message ?? e), true); window.llmql.error = String(e); resolveReady(window.llmql.error); });
