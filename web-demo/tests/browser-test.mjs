// Browser test (and benchmark) of the demo page in headless Chromium, driven by playwright-core.
//
// node tests/browser-test.mjs --data dist/tiny --queries Q.jsonl --native-queries DIR --native-run RUN
//        [--backends webgpu,cpu,webgpu-host] [--tolerance 1e-4]
//   checks, per backend, that the page runs on that backend, that each query's in-browser embedding
//   equals the native `llmql encode` embedding (DIR/embeddings.npy + ids.txt) within the tolerance,
//   and that its top 10 equal the native `llmql search` run (ties within the tolerance may swap).
//   Backend `cpu-picked` loads the same export through the page's folder picker instead of by URL.
// node tests/browser-test.mjs --data dist/X --queries Q.jsonl --bench 50 [--backends cpu]
//   prints the median per-query encode latency in the browser (JSON lines).
// --limit N uses only the first N queries.
//
// Chromium: $CHROMIUM or `chromium` on PATH (Debian's package). Exit status 1 on any failure.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { serve } from '../serve.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const argv = process.argv.slice(2);
const arg = (name, def) => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : def; };
const data = arg('--data');
const queriesFile = arg('--queries');
const tolerance = Number(arg('--tolerance', '1e-4'));
const bench = arg('--bench') ? Number(arg('--bench')) : 0;
const backends = arg('--backends', bench ? 'cpu' : 'webgpu,cpu,webgpu-host,cpu-picked').split(',');
const timeoutMs = Number(arg('--timeout-s', '600')) * 1000;
if (!data || !queriesFile) {
  console.error('usage: browser-test.mjs --data DIST --queries QUERIES.jsonl (--native-queries DIR --native-run RUN | --bench N)');
  process.exit(2);
}

function readNpy(file) {
  const buf = fs.readFileSync(file);
  if (buf.toString('latin1', 1, 6) !== 'NUMPY') throw new Error(`${file}: not a .npy file`);
  const major = buf[6];
  const hlen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = buf.toString('latin1', start, start + hlen);
  if (!header.includes("'<f4'")) throw new Error(`${file}: need float32`);
  const shape = header.match(/'shape': \((\d+), (\d+)\)/);
  const [rows, dim] = [Number(shape[1]), Number(shape[2])];
  const values = new Float32Array(buf.buffer.slice(buf.byteOffset + start + hlen, buf.byteOffset + start + hlen + rows * dim * 4));
  return { rows, dim, row: (i) => values.subarray(i * dim, (i + 1) * dim) };
}

function readQueries(file) {
  return fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.trim()).map((l, i) => {
    const r = JSON.parse(l);
    return { id: String(r._id ?? r.id), text: r.text, line: i + 1 };
  });
}

function readRun(file) {
  const run = new Map();
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 6) continue;
    if (!run.has(f[0])) run.set(f[0], []);
    run.get(f[0]).push({ id: f[2], rank: Number(f[3]), score: Number(f[4]) });
  }
  for (const v of run.values()) v.sort((a, b) => a.rank - b.rank);
  return run;
}

function chromiumPath() {
  if (process.env.CHROMIUM) return process.env.CHROMIUM;
  for (const name of ['chromium', 'chromium-browser', 'google-chrome']) {
    try { return execFileSync('which', [name], { encoding: 'utf8' }).trim(); } catch { /* next */ }
  }
  throw new Error('no Chromium found: apt-get install -y chromium, or set CHROMIUM=/path/to/chrome');
}

const FLAGS = ['--headless=new', '--no-sandbox', '--enable-unsafe-webgpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'];

async function openPage(baseUrl, backend) {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'llmql-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath(), headless: false, args: FLAGS, timeout: 120000,
  });
  const page = context.pages()[0] ?? await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(`console: ${m.text()}`); });
  page.setDefaultTimeout(timeoutMs);
  const [name, host] = backend.split('-');
  const url = `${baseUrl}/index.html?data=${encodeURIComponent(data)}&backend=${name}${host === 'host' ? '&hostEmbeddings=1' : ''}`;
  await page.goto(url);
  let err = await page.evaluate(() => window.llmql.ready);
  if (!err && host === 'picked') {
    // The user's path: pick the export folder (all its files, flattened) in the page.
    await page.setInputFiles('#pick', path.resolve(here, '..', data));
    await page.waitForFunction(() => window.llmql.loads >= 2 || window.llmql.error, null, { timeout: timeoutMs });
    err = await page.evaluate(() => window.llmql.error);
  }
  const close = async () => { await context.close(); fs.rmSync(profile, { recursive: true, force: true }); };
  if (err) { await close(); throw new Error(`${backend}: the page failed to load: ${err}\n${errors.join('\n')}`); }
  return { page, errors, close, url };
}

const root = path.resolve(here, '..');
const server = await serve(root, 0);
const baseUrl = `http://127.0.0.1:${server.address().port}`;
const queries = readQueries(queriesFile).slice(0, Number(arg('--limit', '1000000')));
let failures = 0;
const fail = (msg) => { failures += 1; console.log(`FAIL ${msg}`); };

try {
  if (bench) {
    for (const backend of backends) {
      const { page, close } = await openPage(baseUrl, backend);
      const texts = Array.from({ length: bench }, (_, i) => queries[i % queries.length].text);
      const info = await page.evaluate(() => window.llmql.info());
      const times = await page.evaluate((t) => window.llmql.bench(t), texts);
      const median = times.length % 2 ? times[(times.length - 1) / 2] : (times[times.length / 2 - 1] + times[times.length / 2]) / 2;
      console.log(JSON.stringify({ data, backend: info.backend, dtype: info.dtype, queries: times.length, median_ms: +median.toFixed(2),
        p90_ms: +times[Math.floor(0.9 * (times.length - 1))].toFixed(2), min_ms: +times[0].toFixed(2) }));
      await close();
    }
  } else {
    const nativeDir = arg('--native-queries');
    const native = readNpy(path.join(nativeDir, 'embeddings.npy'));
    const nativeIds = fs.readFileSync(path.join(nativeDir, 'ids.txt'), 'utf8').split('\n').filter((l) => l);
    const run = readRun(arg('--native-run'));
    for (const backend of backends) {
      const { page, errors, close, url } = await openPage(baseUrl, backend);
      const info = await page.evaluate(() => window.llmql.info());
      const want = backend.split('-')[0];
      if (info.backend !== want) fail(`${backend}: page runs on ${info.backend}, not ${want} (${url})`);
      if (backend.endsWith('-host') && !info.hostEmbeddings) fail(`${backend}: host embedding lookup not in use`);
      let worst = 0;
      let topChecked = 0;
      for (const q of queries) {
        const row = nativeIds.indexOf(q.id);
        if (row < 0) { fail(`${backend}: query ${q.id} not in the native ids.txt`); continue; }
        const got = await page.evaluate((t) => window.llmql.encodeQuery(t), q.text);
        const exp = native.row(row);
        if (got.length !== exp.length) { fail(`${backend}: query ${q.id}: dim ${got.length} != ${exp.length}`); continue; }
        const diff = Math.max(...got.map((v, i) => Math.abs(v - exp[i])));
        worst = Math.max(worst, diff);
        if (!(diff <= tolerance)) fail(`${backend}: query ${q.id}: max |browser - native| = ${diff.toExponential(2)} > ${tolerance}`);
        const { hits } = await page.evaluate((t) => window.llmql.search(t, 10), q.text);
        const ref = (run.get(q.id) ?? []).slice(0, 10);
        if (hits.length !== ref.length) { fail(`${backend}: query ${q.id}: ${hits.length} hits, native run has ${ref.length}`); continue; }
        hits.forEach((h, i) => {
          const tie = Math.abs(ref[i].score - h.score) <= tolerance;
          if (h.id !== ref[i].id && !tie) fail(`${backend}: query ${q.id} rank ${i + 1}: ${h.id} (${h.score}) != native ${ref[i].id} (${ref[i].score})`);
          if (!tie) fail(`${backend}: query ${q.id} rank ${i + 1}: score ${h.score} != native ${ref[i].score}`);
        });
        topChecked += 1;
      }
      for (const e of errors) fail(`${backend}: ${e}`);
      console.log(`${backend}: backend ${info.backend}, dtype ${info.dtype}, host embeddings ${info.hostEmbeddings}: ${queries.length} queries, ` +
        `max |browser - native| = ${worst.toExponential(2)}, top-10 compared for ${topChecked}`);
      await close();
    }
  }
} finally {
  server.close();
}
if (failures) { console.log(`${failures} failure(s)`); process.exit(1); }
console.log('ok');
