/**
 * Bench helper for bench/priority-shedding.bench.ts, one backend per child
 * process: a node:http server with a fixed number of worker slots and an
 * unbounded queue in front, whose service time is a timer (so capacity is
 * known: slots × 1000 / serviceMs per second, and a few of them fit on two
 * cores), behind `@proxyless/load-report` (the built dist) with shedding on or
 * off. Args: JSON `{ port, slots, serviceMs, shedding: false | SheddingOptions }`.
 * Prints `ready` once listening, then every second a JSON line of
 * `sheddingStats()` (pressure, event-loop delay, shed by priority); stops on SIGTERM.
 */
import { createServer, type ServerResponse } from 'node:http';
import { LoadReporter, loadReportListener, type SheddingOptions } from '@proxyless/load-report';

const spec = JSON.parse(process.argv[2] ?? '{}') as { port: number; slots: number; serviceMs: number; shedding: false | SheddingOptions };
const body = Buffer.from('ok');
const queue: ServerResponse[] = [];
let busy = 0;

function next(): void {
  while (busy < spec.slots && queue.length > 0) {
    const res = queue.shift()!;
    if (res.destroyed) continue; // the client gave up while it queued
    busy++;
    setTimeout(() => {
      busy--;
      if (!res.destroyed) res.writeHead(200, { 'content-length': body.length }).end(body);
      next();
    }, spec.serviceMs);
  }
}

const reporter = new LoadReporter({ shedding: spec.shedding });
const server = createServer({ keepAliveTimeout: 30_000 }, loadReportListener(reporter, (_req, res) => {
  queue.push(res);
  next();
}));
server.listen(spec.port, '127.0.0.1', () => process.stdout.write('ready\n'));
const stats = setInterval(() => {
  const s = reporter.sheddingStats();
  if (s !== undefined) process.stdout.write(`${JSON.stringify({ ...s, inFlight: reporter.requestsInFlight, queued: queue.length })}\n`);
}, 1000);
stats.unref();
process.on('SIGTERM', () => {
  server.close();
  server.closeAllConnections();
  void reporter.close();
  process.exit(0);
});
