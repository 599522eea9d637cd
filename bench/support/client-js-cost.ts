/**
 * Profiling helper (not part of `npm run bench`): the client's own JavaScript
 * per request, with every undici Pool's `request()` answering at once (no
 * I/O, no backend), against a raw Pool's call under the same stub; 64 in
 * flight, R interleaved rounds of N requests, CPU µs per request. Quiet and
 * repeatable where a loopback bench is not, so it shows what a change to the
 * request path costs; the loopback bench (http-client.bench.ts) says what
 * users see. Other builds (a checkout's packages/http-client/dist, each with
 * its own core and undici) run interleaved in the same process: a before/after.
 * Usage (built packages): node --import tsx bench/support/client-js-cost.ts [other checkout's packages/http-client/dist ...]
 */
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

const N = Number(process.env['N'] ?? 100_000);
const R = Number(process.env['R'] ?? 15);
const CONCURRENCY = 64;
// STUB=dispatch (default): the Pool's dispatch() answers through undici's own request handler on the next
// turn of the event loop (setImmediate, as an I/O callback would), so undici's request-side work — its
// handler, the body stream, the abort signal's listeners — is measured too, without sockets or parsing.
// STUB=request: request() resolves at once (the client's JavaScript alone).
const STUB = process.env['STUB'] ?? 'dispatch';
const answer = { statusCode: 200, headers: {}, body: { dump: (): Promise<void> => Promise.resolve() } };
const RAW_HEADERS = [Buffer.from('content-length'), Buffer.from('2'), Buffer.from('content-type'), Buffer.from('text/plain')];
const BODY = Buffer.from('ok');
interface LegacyHandler {
  onConnect(abort: (error?: Error) => void): void;
  onHeaders(status: number, raw: Buffer[], resume: () => void, text: string): boolean;
  onData(chunk: Buffer): boolean;
  onComplete(trailers: Buffer[]): void;
  onError(error: Error): void;
}
function answerLater(handler: LegacyHandler): void {
  let aborted: Error | undefined;
  handler.onConnect((error) => {
    aborted = error ?? new Error('aborted');
  });
  setImmediate(() => {
    if (aborted !== undefined) return handler.onError(aborted);
    handler.onHeaders(200, RAW_HEADERS, noop, 'OK');
    handler.onData(BODY);
    handler.onComplete([]);
  });
}
function noop(): void {
  // resume: nothing is paused
}

type Call = () => Promise<void>;
interface Target { name: string; call: Call; close(): Promise<void> }

/** Loads a build of the client (with the core and undici it resolves), stubs its undici's Pool, returns a client ×3 call and a raw Pool call. */
async function load(dist: string, name: string): Promise<{ client: Target; raw: Target }> {
  const require = createRequire(`${dist}/index.js`);
  const undici = (await import(pathToFileURL(require.resolve('undici')).href)) as typeof import('undici');
  if (STUB === 'request') undici.Pool.prototype.request = function stubbed() { return Promise.resolve(answer); } as unknown as typeof undici.Pool.prototype.request;
  else undici.Pool.prototype.dispatch = function stubbed(_options: unknown, handler: LegacyHandler) { answerLater(handler); return true; } as unknown as typeof undici.Pool.prototype.dispatch;
  const core = (await import(pathToFileURL(require.resolve('@proxyless/core')).href)) as typeof import('@proxyless/core');
  const http = (await import(pathToFileURL(`${dist}/index.js`).href)) as typeof import('@proxyless/http-client');
  const resolver = new core.StaticResolver({ services: { svc: [1, 2, 3].map((i) => ({ address: '127.0.0.1', port: 10_000 + i })) } });
  const client = http.createClient({ service: 'svc', resolver, logger: false });
  const pool = new undici.Pool('http://127.0.0.1:1');
  return {
    client: { name: `client ×3 (${name})`, call: async () => { await (await client.request({ path: '/', method: 'GET' })).body.dump(); }, close: () => client.close() },
    raw: { name: 'raw Pool', call: async () => { await (await pool.request({ path: '/', method: 'GET' })).body.dump(); }, close: () => pool.close() },
  };
}

async function run(call: Call, total: number): Promise<void> {
  let started = 0;
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (started++ < total) await call();
  }));
}

const here = await load(`${process.cwd()}/packages/http-client/dist`, 'this tree');
const others = await Promise.all(process.argv.slice(2).map((dist) => load(dist, dist)));
const targets: Target[] = [here.raw, here.client, ...others.map((o) => o.client)];
for (const t of targets) await run(t.call, 50_000); // warm-up
const samples = targets.map((): number[] => []);
for (let r = 0; r < R; r++) {
  for (const [i, t] of targets.entries()) {
    const cpu0 = process.cpuUsage();
    await run(t.call, N);
    const cpu = process.cpuUsage(cpu0);
    samples[i]!.push((cpu.user + cpu.system) / N);
  }
}
process.stdout.write(`client-js-cost (STUB=${STUB}): ${R} interleaved rounds × ${N} requests, ${CONCURRENCY} in flight, CPU µs/request\n`);
for (const [i, t] of targets.entries()) {
  const s = samples[i]!.sort((a, b) => a - b);
  process.stdout.write(`${t.name}: median ${s[R >> 1]!.toFixed(3)}, min ${s[0]!.toFixed(3)}, q1 ${s[R >> 2]!.toFixed(3)}\n`);
}
for (const t of targets) await t.close();
for (const o of others) await o.raw.close();
