/**
 * Bench helper, run as a child process: HTTP/1.1 keep-alive backends on
 * loopback. Args: a JSON array of { port, delayMs }; `delayMs < 0` accepts
 * and never answers (a hung backend). A JSON line `{ "port", "delayMs" }` on
 * stdin changes one backend's delay while running. Prints "ready" when all listen.
 * Second arg `report`: each backend runs behind `@proxyless/load-report` (a
 * `LoadReporter` of its own and `loadReportListener`), so its answers carry
 * `endpoint-load-metrics` and it answers probes. The reporter answers probes
 * without calling the app, so a hung backend (a hung *app*) still answers
 * probes, with its requests in flight (the hung ones, until their clients give
 * up) as `rif`: what a real process with a stuck handler does.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createInterface } from 'node:readline';
import { LoadReporter, loadReportListener } from '@proxyless/load-report';

const specs = JSON.parse(process.argv[2] ?? '[]') as { port: number; delayMs: number }[];
const delays = new Map<number, number>(specs.map((s) => [s.port, s.delayMs]));
const report = process.argv[3] === 'report';
const reporters: LoadReporter[] = [];
let listening = 0;
for (const { port } of specs) {
  const body = Buffer.from('ok');
  const app = (_req: IncomingMessage, res: ServerResponse): void => {
    const delayMs = delays.get(port) ?? 0;
    if (delayMs < 0) return; // hung: the request is read and never answered
    if (delayMs > 0) {
      setTimeout(() => res.writeHead(200, { 'content-length': 2 }).end(body), delayMs);
    } else {
      res.writeHead(200, { 'content-length': 2 }).end(body);
    }
  };
  let listener = app;
  if (report) {
    const reporter = new LoadReporter({ windowMs: 1_000 });
    reporters.push(reporter);
    listener = loadReportListener(reporter, app);
  }
  const server = createServer(listener);
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
async function exit(): Promise<void> {
  await Promise.all(reporters.map((r) => r.close()));
  process.exit(0);
}
process.on('SIGTERM', () => void exit());
process.on('disconnect', () => void exit());
