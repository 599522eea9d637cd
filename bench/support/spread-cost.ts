/**
 * Evidence for the Node 20 cost of undici's top-level `request(url, opts)`
 * (not part of `npm run bench`): undici builds each call's options as
 * `{ ...opts, origin, path, method }`. On Node 20 (V8 11.3) an object made by
 * a spread followed by more properties gets a hidden class of its own every
 * time, so each later property read of it misses its inline cache; on Node 22
 * and 24 the objects share one class. Prints ns per options object built and
 * read (13 reads, as a dispatcher does) for both literal forms.
 * Usage: node --import tsx bench/support/spread-cost.ts   (under any Node)
 */
const dispatcher = {};
const spreadForm = (): Record<string, unknown> => {
  const opts = { dispatcher };
  return { ...opts, origin: 'http://svc.service.consul', path: '/', method: 'GET' };
};
const literalForm = (): Record<string, unknown> => ({ origin: 'http://svc.service.consul', path: '/', method: 'GET' });
const KEYS = ['origin', 'upgrade', 'method', 'path', 'query', 'headers', 'body', 'idempotent', 'policy', 'timeoutMs', 'perTryTimeoutMs', 'retry', 'hashKey'];
const readAll = (o: Record<string, unknown>): number => {
  let n = 0;
  for (const k of KEYS) if (o[k] !== undefined) n++;
  return n;
};
const N = 200_000;
for (const [name, make] of [['{ origin, path, method }', literalForm], ['{ ...opts, origin, path, method }', spreadForm]] as const) {
  let sink = 0;
  const times: number[] = [];
  for (let round = 0; round < 5; round++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < N; i++) sink += readAll(make());
    times.push(Number(process.hrtime.bigint() - t0) / N);
  }
  times.sort((a, b) => a - b);
  process.stdout.write(`node ${process.version}  ${name.padEnd(36)} ${times[2]!.toFixed(0).padStart(6)} ns per object built and read [${times[0]!.toFixed(0)}–${times[4]!.toFixed(0)}] (${sink > 0 ? 'ok' : ''})\n`);
}
