// Client JS cost with pools that answer at once (no I/O): the client's own work per request.
// Usage: node --import tsx bench/support/micro-tmp.ts [extra http-client dist dirs...]
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
const n = Number(process.env.N ?? 100000);
const R = Number(process.env.R ?? 15);
const body = { dump: () => Promise.resolve() };
const answer = { statusCode: 200, headers: {}, body };
async function load(dir: string | undefined) {
  const base = dir ?? process.cwd() + '/packages/http-client/dist';
  const req = createRequire(base + '/index.js');
  const undici = await import(pathToFileURL(req.resolve('undici')).href);
  undici.Pool.prototype.request = function () { return Promise.resolve(answer); };
  const core = await import(pathToFileURL(req.resolve('@proxyless/core')).href);
  const hc = await import(pathToFileURL(base + '/index.js').href);
  const resolver = new core.StaticResolver({ services: { svc: [1, 2, 3].map((i: number) => ({ address: '127.0.0.1', port: 10000 + i })) } });
  const client = hc.createClient({ service: 'svc', resolver, logger: false });
  const pool = new undici.Pool('http://127.0.0.1:1');
  return { client, pool };
}
const targets = [undefined, ...process.argv.slice(2)];
const loaded = await Promise.all(targets.map(load));
const calls: [string, () => Promise<void>][] = [['raw', async () => { const { body } = await loaded[0]!.pool.request({ path: '/', method: 'GET' }); await body.dump(); }]];
loaded.forEach((l, i) => calls.push([i === 0 ? 'client (this tree)' : `client ${targets[i]}`, async () => { const { body } = await l.client.request({ path: '/', method: 'GET' }); await body.dump(); }]));
async function runN(call: () => Promise<void>, total: number) {
  let k = 0;
  await Promise.all(Array.from({ length: 64 }, async () => { while (k++ < total) await call(); }));
}
for (const [, c] of calls) await runN(c, 50000);
const res = calls.map(() => [] as number[]);
for (let r = 0; r < R; r++) for (let i = 0; i < calls.length; i++) {
  const c0 = process.cpuUsage();
  await runN(calls[i]![1], n);
  const c = process.cpuUsage(c0);
  res[i]!.push((c.user + c.system) / n);
}
for (let i = 0; i < calls.length; i++) {
  const s = res[i]!.sort((a, b) => a - b);
  console.log(`${calls[i]![0]}: median ${s[R >> 1]!.toFixed(3)} µs/req, min ${s[0]!.toFixed(3)}, q1 ${s[R >> 2]!.toFixed(3)}`);
}
for (const l of loaded) { await l.client.close(); await l.pool.close(); }
