/**
 * Bench helper, run as a child process: HTTP/1.1 keep-alive backends on
 * loopback for the Tail at Scale bench. Args: a JSON array of ports. Each
 * request is served after a short service time (uniform in [0, baseMs) ms,
 * on a timer), and with probability `stallShare` it stalls instead for a
 * uniform 100–200 ms (GC-pause-like; The Tail at Scale's setup). With
 * `slots > 0`, a backend serves at most that many requests at a time
 * (a known capacity, for overload), queues up to `queue` more (FIFO) and
 * answers 503 at once beyond them.
 * A JSON line on stdin changes the settings: `{ "baseMs", "stallShare",
 * "stallMinMs", "stallMaxMs", "slots" }`; `{ "count": true }` prints
 * `{"count": n, "rejected": m}` (requests received, 503s sent). A request
 * whose client went away releases its slot at once. Prints "ready" when all listen.
 */
import { createServer, type ServerResponse } from 'node:http';
import { createInterface } from 'node:readline';

const ports = JSON.parse(process.argv[2] ?? '[]') as number[];
const settings = { baseMs: 2, stallShare: 0.015, stallMinMs: 100, stallMaxMs: 200, slots: 0, queue: 0 };
let received = 0;
let rejected = 0;
let listening = 0;
const body = Buffer.from('ok');
for (const port of ports) {
  let busy = 0;
  const waiting: (() => void)[] = [];
  const serve = (res: ServerResponse): void => {
    busy++;
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      busy--;
      // The next queued request whose client is still there takes the slot.
      while (waiting.length > 0 && (settings.slots === 0 || busy < settings.slots)) waiting.shift()?.();
    };
    const stall = Math.random() < settings.stallShare;
    const ms = stall ? settings.stallMinMs + Math.random() * (settings.stallMaxMs - settings.stallMinMs) : Math.random() * settings.baseMs;
    const timer = setTimeout(() => {
      release();
      res.writeHead(200, { 'content-length': 2 }).end(body);
    }, ms);
    res.on('close', () => {
      clearTimeout(timer);
      release();
    });
  };
  const server = createServer((_req, res) => {
    received++;
    if (settings.slots > 0 && busy >= settings.slots) {
      if (waiting.length >= settings.queue) {
        rejected++;
        res.writeHead(503, { 'content-length': 0 }).end();
        return;
      }
      let gone = false;
      res.on('close', () => (gone = true));
      waiting.push(() => {
        if (!gone) serve(res);
      });
      return;
    }
    serve(res);
  });
  server.keepAliveTimeout = 60_000;
  server.listen(port, '127.0.0.1', () => {
    if (++listening === ports.length) process.stdout.write('ready\n');
  });
}
createInterface({ input: process.stdin }).on('line', (line) => {
  const change = JSON.parse(line) as Partial<typeof settings> & { count?: boolean };
  if (change.count === true) {
    process.stdout.write(`${JSON.stringify({ count: received, rejected })}\n`);
    return;
  }
  Object.assign(settings, change);
});
process.on('SIGTERM', () => process.exit(0));
process.on('disconnect', () => process.exit(0));
