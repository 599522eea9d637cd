/**
 * Bench helper, run as a child process by the balancer testbed (one backend
 * per process): a node:http server with a fixed number of worker slots and a
 * queue in front, whose service time is a timer (base + exponential), so a
 * dozen of them fit on two cores. It reports its load through
 * `@proxyless/load-report` (the built dist): `rif` and `latency_ms` as the
 * reporter measures them, and `application_utilization` over the last sample
 * (a timer-bound server's event loop is idle whatever its slots do):
 * `occupancy` (default) = (busy slots + queued requests) ÷ slots, above 1
 * with a queue; `busy` = busy slots ÷ slots, at most 1, as a CPU would say.
 *
 * Args: JSON `{ port, slots, baseMs, expMs, queueMax, sampleMs, firstExtraMs?, utilization? }`
 * (`firstExtraMs`: added to the first request only, a cold start). A JSON line
 * on stdin `{ slots, extraMs }` changes capacity (an antagonist takes slots
 * away or adds service time); slots start or wait as the new count allows.
 * Prints `ready`, then every `sampleMs` a JSON line `{ t, u, q, n }`: epoch
 * ms at the end of the sample, busy slots ÷ slots averaged over it, queue
 * length, requests served in it.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createInterface } from 'node:readline';
import { LoadReporter, loadReportListener } from '@proxyless/load-report';

interface Spec {
  port: number;
  slots: number;
  baseMs: number;
  expMs: number;
  queueMax: number;
  sampleMs: number;
  firstExtraMs?: number;
  utilization?: 'occupancy' | 'busy';
}

const spec = JSON.parse(process.argv[2] ?? '{}') as Spec;
let slots = spec.slots;
let extraMs = 0;
let busy = 0;
let served = 0;
const queue: ServerResponse[] = [];
const body = Buffer.from('ok');

// Time-weighted occupancy since the last sample: Σ (busy ÷ slots) · dt and Σ (busy + queued) ÷ slots · dt.
let lastChange = performance.now();
let sampleStart = lastChange;
let utilArea = 0;
let occupancyArea = 0;
function account(): void {
  const now = performance.now();
  const dt = now - lastChange;
  utilArea += (Math.min(busy, slots) / slots) * dt;
  occupancyArea += ((busy + queue.length) / slots) * dt;
  lastChange = now;
}

let cold = spec.firstExtraMs ?? 0;
function serviceMs(): number {
  const first = cold;
  cold = 0;
  return first + spec.baseMs + extraMs - spec.expMs * Math.log(1 - Math.random());
}

function start(res: ServerResponse): void {
  account();
  busy++;
  setTimeout(() => {
    account();
    busy--;
    served++;
    if (!res.destroyed) res.writeHead(200, { 'content-length': body.length }).end(body);
    next();
  }, serviceMs());
}

/** Starts queued requests while slots are free (a request whose client went away is dropped). */
function next(): void {
  while (busy < slots && queue.length > 0) {
    const res = queue.shift()!;
    if (res.destroyed) continue;
    start(res);
  }
}

const reporter = new LoadReporter({ windowMs: 1_000 });
const server = createServer(
  { keepAliveTimeout: 60_000 },
  loadReportListener(reporter, (_req: IncomingMessage, res: ServerResponse) => {
    if (busy < slots) return start(res);
    if (queue.length >= spec.queueMax) {
      res.writeHead(503, { 'content-length': 4 }).end('full');
      return;
    }
    account();
    queue.push(res);
  }),
);

const sampler = setInterval(() => {
  account();
  const dt = lastChange - sampleStart;
  const u = dt > 0 ? utilArea / dt : 0;
  reporter.setApplicationUtilization(dt > 0 ? (spec.utilization === 'busy' ? utilArea : occupancyArea) / dt : 0);
  process.stdout.write(`${JSON.stringify({ t: Math.round(performance.timeOrigin + lastChange), u, q: queue.length, n: served })}\n`);
  served = 0;
  utilArea = 0;
  occupancyArea = 0;
  sampleStart = lastChange;
}, spec.sampleMs);

createInterface({ input: process.stdin }).on('line', (line) => {
  const change = JSON.parse(line) as { slots?: number; extraMs?: number };
  account();
  if (change.slots !== undefined) slots = change.slots;
  if (change.extraMs !== undefined) extraMs = change.extraMs;
  next();
});

server.listen(spec.port, '127.0.0.1', () => process.stdout.write('ready\n'));

function shutdown(): void {
  clearInterval(sampler);
  void reporter.close();
  server.closeAllConnections();
  server.close(() => process.exit(0));
}
process.on('SIGTERM', shutdown);
process.stdin.on('end', shutdown);
