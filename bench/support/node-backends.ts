/**
 * Bench helper, run as a child process: HTTP/1.1 keep-alive backends on
 * loopback. Args: a JSON array of { port, delayMs }; `delayMs < 0` accepts
 * and never answers (a hung backend). A JSON line `{ "port", "delayMs" }` on
 * stdin changes one backend's delay while running. Prints "ready" when all listen.
 */
import { createServer } from 'node:http';
import { createInterface } from 'node:readline';

const specs = JSON.parse(process.argv[2] ?? '[]') as { port: number; delayMs: number }[];
const delays = new Map<number, number>(specs.map((s) => [s.port, s.delayMs]));
let listening = 0;
for (const { port } of specs) {
  const body = Buffer.from('ok');
  const server = createServer((_req, res) => {
    const delayMs = delays.get(port) ?? 0;
    if (delayMs < 0) return; // hung: the request is read and never answered
    if (delayMs > 0) {
      setTimeout(() => res.writeHead(200, { 'content-length': 2 }).end(body), delayMs);
    } else {
      res.writeHead(200, { 'content-length': 2 }).end(body);
    }
  });
  server.keepAliveTimeout = 60_000;
  server.listen(port, '127.0.0.1', () => {
    if (++listening === specs.length) process.stdout.write('ready\n');
  });
}
if (!process.stdin.isTTY) {
  createInterface({ input: process.stdin }).on('line', (line) => {
    const change = JSON.parse(line) as { port: number; delayMs: number };
    delays.set(change.port, change.delayMs);
  });
}
process.on('SIGTERM', () => process.exit(0));
process.on('disconnect', () => process.exit(0));
