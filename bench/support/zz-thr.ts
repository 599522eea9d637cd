import { readdirSync, readFileSync } from 'node:fs';
import { request } from 'undici';
import { StaticResolver } from '@proxyless/core';
import { createClient, createDispatcher } from '@proxyless/http-client';
import { freePorts, startNginx, stop } from './processes.js';
function threads(): Map<string, number> {
  const m = new Map<string, number>();
  for (const t of readdirSync('/proc/self/task')) {
    const s = readFileSync(`/proc/self/task/${t}/stat`, 'utf8');
    const name = s.slice(s.indexOf('(') + 1, s.lastIndexOf(')'));
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    m.set(`${t} ${name}`, Number(f[11]) + Number(f[12]));
  }
  return m;
}
const [a, b, c, p] = (await freePorts(4)) as [number, number, number, number];
const nginx = await startNginx([a, b, c], p, [a]);
const resolver = new StaticResolver({ services: { svc: [a, b, c].map((port) => ({ address: '127.0.0.1', port })) } });
const client = createClient({ service: 'svc', resolver, logger: false });
const dispatcher = createDispatcher({ resolver, client: { logger: false } });
for (const mode of ['client', 'dispatcher', 'client', 'dispatcher']) {
  let n = 0;
  const call = mode === 'client' ? async () => { const { body } = await client.request({ path: '/', method: 'GET' }); await body.dump(); }
    : async () => { const { body } = await request('http://svc.service.consul/', { dispatcher }); await body.dump(); };
  const t0 = threads(); const c0 = process.cpuUsage();
  const end = performance.now() + 2000;
  await Promise.all(Array.from({ length: 64 }, async () => { while (performance.now() < end) { await call(); n++; } }));
  const c1 = process.cpuUsage(c0); const t1 = threads();
  const per = [...t1].map(([k, v]) => [k, v - (t0.get(k) ?? 0)] as const).filter(([, v]) => v > 0);
  console.log(mode, n, ((c1.user + c1.system) / n).toFixed(1), 'us/req', 'user', (c1.user / n).toFixed(1), 'sys', (c1.system / n).toFixed(1), JSON.stringify(per));
}
await client.close(); await dispatcher.close(); await stop(nginx.child);
