// The demo's static server against hostile requests (plain `node web-demo/tests/serve-test.mjs`, no
// packages): paths that climb out of the root (encoded or not, into a sibling folder whose name starts
// with the root's), malformed escapes, NUL bytes, `//`, symbolic links out of the root, and a file that
// vanishes while it is served. The server must answer each with an error status and keep serving.
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { serve } from '../serve.mjs';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'llmql-serve-'));
const root = path.join(tmp, 'site');
fs.mkdirSync(path.join(root, 'sub'), { recursive: true });
fs.mkdirSync(path.join(tmp, 'site-secret'));
fs.mkdirSync(path.join(tmp, 'sibling'));
fs.writeFileSync(path.join(root, 'index.html'), 'home');
fs.writeFileSync(path.join(root, 'sub', 'a.json'), '{"a": 1}');
fs.writeFileSync(path.join(tmp, 'sibling', 'file'), 'secret');
fs.writeFileSync(path.join(tmp, 'site-secret', 'file'), 'secret');
fs.writeFileSync(path.join(tmp, 'outside.txt'), 'secret');
fs.symlinkSync(path.join(tmp, 'outside.txt'), path.join(root, 'link.txt'));

const server = await serve(root, 0, '127.0.0.1');
const { port } = server.address();

// Raw requests: fetch() would normalise the paths we want to send as they are.
function raw(target) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, "127.0.0.1", () => sock.write(`GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`));
    let data = '';
    sock.on('data', (d) => { data += d; });
    sock.on('end', () => resolve({ status: Number(data.split(' ')[1]), body: data.split('\r\n\r\n').slice(1).join('\r\n\r\n') }));
    sock.on('error', reject);
  });
}

test('serves files inside the root', async () => {
  assert.equal((await raw('/')).body, 'home');
  assert.equal((await raw('/sub/a.json')).body, '{"a": 1}');
  assert.equal((await raw('//')).status, 200);
  assert.equal((await raw('/missing')).status, 404);
});

test('never serves anything outside the root', async () => {
  for (const target of ['/..%2fsibling/file', '/..%2f..%2fsibling/file', '/%2e%2e/sibling/file', '/../site-secret/file',
    '/..%2fsite-secret/file', '/sub/..%2f..%2foutside.txt', '/link.txt']) {
    const r = await raw(target);
    assert.ok([400, 403, 404].includes(r.status), `${target}: ${r.status}`);
    assert.ok(!r.body.includes('secret'), `${target} leaked`);
  }
});

test('malformed requests get an error and the server keeps serving', async () => {
  for (const target of ['/%', '/%00', '/a%00b', '/%E0%A4%A', '//%', '/sub/%zz']) {
    const r = await raw(target);
    assert.ok(r.status >= 400 && r.status < 500, `${target}: ${r.status}`);
  }
  assert.equal((await raw('/')).body, 'home');
});

test('a file that disappears while served ends only that response', async () => {
  const big = path.join(root, 'big.bin');
  fs.writeFileSync(big, Buffer.alloc(8 << 20));
  const res = await fetch(`http://127.0.0.1:${port}/big.bin`);
  fs.rmSync(big);
  await res.arrayBuffer().catch(() => null);
  assert.equal((await raw('/')).body, 'home');
});

test.after(() => {
  server.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});
