// A static file server for the demo (node's http only): `node serve.mjs [--port 8080] [--root .] [--host 127.0.0.1]`.
// The tests import `serve()` to run the same server on a free port.
//
// Only files inside the root are served: the decoded path is resolved against the root and must stay
// under it (compared with a trailing separator, so `/..%2fsibling` never reaches a sibling folder);
// malformed requests (`/%`, NUL bytes) get 400, every request's errors are caught, and a file that fails
// while streaming ends that response only. Nothing else is listened on than the given host (localhost).
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const TYPES = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8', '.json': 'application/json', '.wasm': 'application/wasm', '.txt': 'text/plain; charset=utf-8',
  '.jsonl': 'application/x-ndjson', '.npy': 'application/octet-stream', '.safetensors': 'application/octet-stream',
  '.ts': 'text/plain; charset=utf-8',
};

function reply(res, status, text) {
  if (res.headersSent) { res.destroy(); return; }
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' }).end(text);
}

/** The file under `base` that `rawUrl` names, or null when it names nothing inside `base`. */
export function resolveInside(base, rawUrl) {
  // The path as sent (no URL parsing: `//x` is a path here, not a host), query and fragment dropped.
  const target = String(rawUrl).split(/[?#]/)[0];
  if (!target.startsWith('/')) return { status: 400 };
  let pathname;
  try {
    pathname = decodeURIComponent(target);
  } catch {
    return { status: 400 };
  }
  if (pathname.includes('\0')) return { status: 400 };
  const file = path.resolve(base, '.' + path.posix.sep + pathname);
  if (file !== base && !file.startsWith(base.endsWith(path.sep) ? base : base + path.sep)) return { status: 403 };
  return { file };
}

async function handle(base, req, res) {
  if (req.method !== 'GET' && req.method !== 'HEAD') { reply(res, 405, 'method not allowed'); return; }
  const where = resolveInside(base, req.url);
  if (!where.file) { reply(res, where.status, where.status === 400 ? 'bad request' : 'forbidden'); return; }
  let file = where.file;
  let st = await fs.promises.stat(file).catch(() => null);
  if (st && st.isDirectory()) {
    file = path.join(file, 'index.html');
    st = await fs.promises.stat(file).catch(() => null);
  }
  if (!st || !st.isFile()) { reply(res, 404, 'not found'); return; }
  // Symbolic links inside the root must not lead out of it either.
  const real = await fs.promises.realpath(file).catch(() => null);
  const realBase = await fs.promises.realpath(base).catch(() => base);
  if (!real || (real !== realBase && !real.startsWith(realBase.endsWith(path.sep) ? realBase : realBase + path.sep))) {
    reply(res, 403, 'forbidden');
    return;
  }
  res.writeHead(200, {
    'content-type': TYPES[path.extname(file)] || 'application/octet-stream',
    'content-length': st.size,
    'cache-control': 'no-store',
  });
  if (req.method === 'HEAD') { res.end(); return; }
  const stream = fs.createReadStream(real);
  stream.on('error', () => res.destroy());
  res.on('close', () => stream.destroy());
  stream.pipe(res);
}

export function serve(root, port = 0, host = '127.0.0.1') {
  const base = path.resolve(root);
  const server = http.createServer((req, res) => {
    handle(base, req, res).catch(() => reply(res, 500, 'internal error'));
  });
  server.on('clientError', (_err, socket) => socket.destroy());
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const arg = (name, def) => { const i = process.argv.indexOf(name); return i > 0 ? process.argv[i + 1] : def; };
  const root = arg('--root', path.dirname(fileURLToPath(import.meta.url)));
  const server = await serve(root, Number(arg('--port', 8080)), arg('--host', '127.0.0.1'));
  const { address, port } = server.address();
  console.log(`serving ${root} at http://${address}:${port}/ (Ctrl-C to stop)`);
}
