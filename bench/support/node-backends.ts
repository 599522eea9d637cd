/**
 * Bench helper, run as a child process: HTTP/1.1 keep-alive backends on
 * loopback. Args: a JSON array of { port, delayMs }. Prints "ready" when all listen.
 */
import { createServer } from 'node:http';

const specs = JSON.parse(process.argv[2] ?? '[]') as { port: number; delayMs: number }[];
let listening = 0;
for (const { port, delayMs } of specs) {
  const body = Buffer.from('ok');
  const server = createServer((_req, res) => {
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
process.on('SIGTERM', () => process.exit(0));
process.on('disconnect', () => process.exit(0));
