/**
 * Bench peer, plain JavaScript (run by node itself, no tsx transform): the
 * minimal Node reverse proxy the issue names as the ceiling of any Node
 * gateway. A `node:http` server, one undici Pool per backend, round robin,
 * bodies piped both ways (`pipe()`), hop-by-hop headers dropped; `workers > 1` runs
 * that many copies under `node:cluster` sharing the port.
 * Args: a JSON object { port, backends: [port…], workers }. Prints "ready".
 */
import cluster from 'node:cluster';
import { createServer } from 'node:http';
import { Pool } from 'undici';

const { port, backends, workers } = JSON.parse(process.argv[2] ?? '{}');

if (cluster.isPrimary && workers > 1) {
  let ready = 0;
  for (let i = 0; i < workers; i++) {
    cluster.fork().on('message', (m) => {
      if (m === 'ready' && ++ready === workers) process.stdout.write('ready\n');
    });
  }
  process.on('SIGTERM', () => {
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGTERM');
    process.exit(0);
  });
} else {
  const pools = backends.map((p) => new Pool(`http://127.0.0.1:${p}`, { connections: 64, pipelining: 1 }));
  let next = 0;
  const hop = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'host']);
  const server = createServer((req, res) => {
    const pool = pools[next++ % pools.length];
    const headers = {};
    for (const [k, v] of Object.entries(req.headers)) if (!hop.has(k)) headers[k] = v;
    const hasBody = req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] ?? '0') !== '0';
    pool.request({ method: req.method, path: req.url, headers, body: hasBody ? req : null }).then(
      (up) => {
        const out = {};
        for (const [k, v] of Object.entries(up.headers)) if (!hop.has(k)) out[k] = v;
        res.writeHead(up.statusCode, out);
        // pipe(), not stream.pipeline(): the latter costs an AbortController and a DOMException per request.
        up.body.once('error', () => res.destroy());
        res.once('close', () => up.body.destroy());
        up.body.pipe(res);
      },
      () => {
        res.statusCode = 502;
        res.end();
      },
    );
  });
  server.keepAliveTimeout = 65_000;
  server.listen(port, '127.0.0.1', () => {
    if (process.send) process.send('ready');
    else process.stdout.write('ready\n');
  });
  process.on('SIGTERM', () => process.exit(0));
  process.on('disconnect', () => process.exit(0));
}
