// A client sending at a fixed rate (not as fast as it can, as wrk does), for
// the gateway bench's rate-limit part: { url, rps, seconds, headers }.
// Prints one JSON line: { sent, statuses, skipped } (skipped: ticks when 64
// requests were already in flight). Bounded: stops after `seconds`.
import http from 'node:http';

const { url, rps, seconds, headers = {} } = JSON.parse(process.argv[2]);
const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
const statuses = {};
let sent = 0;
let skipped = 0;
let inFlight = 0;
const start = performance.now();
// By the clock, not by ticks: a late timer on a loaded machine catches up.
const tick = setInterval(() => {
  const due = Math.floor(((performance.now() - start) * rps) / 1000);
  while (sent + skipped < due) {
    if (inFlight >= 64) {
      skipped++;
      continue;
    }
    inFlight++;
    sent++;
    const req = http.get(url, { agent, headers, timeout: 5_000 }, (res) => {
      statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1;
      res.resume();
      res.once('end', () => inFlight--);
    });
    req.once('error', () => {
      statuses.error = (statuses.error ?? 0) + 1;
      inFlight--;
    });
  }
}, 10);
setTimeout(() => {
  clearInterval(tick);
  agent.destroy();
  process.stdout.write(`${JSON.stringify({ sent, statuses, skipped })}\n`);
}, seconds * 1000);
