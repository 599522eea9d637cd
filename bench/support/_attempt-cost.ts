import { loadBuild } from '/work/wt/health/bench/support/builds.js';
import { openEndpointSet } from '/work/wt/health/bench/support/endpoint-set-adapter.js';
const dir = process.argv[2]!;
const b = await loadBuild(dir);
const instances = Array.from({ length: 10_000 }, (_, i) => Object.freeze({ key: `n/w-${i}`, id: `w-${i}`, service: 'svc', address: `10.0.${i >> 8}.${i & 255}`, port: 8080, tags: [], meta: {}, weights: { passing: 1, warning: 1 }, health: 'passing' as const }));
for (const label of ['peakEwma', 'maglev']) {
  const bal = label === 'peakEwma' ? b.core.peakEwma() : b.core.consistentHash({ algorithm: 'maglev' });
  const o = await openEndpointSet(b, bal, instances);
  if ('none' in o) { console.log(o.none); continue; }
  const p = o.probe;
  for (let i = 0; i < 20000; i++) p.attempt();
  const res: number[] = [];
  for (let r = 0; r < 5; r++) {
    const t = process.hrtime.bigint();
    for (let i = 0; i < 50_000; i++) p.attempt();
    res.push(Number(process.hrtime.bigint() - t) / 50_000);
  }
  const ch: number[] = [];
  for (let i = 2; i < 40; i++) { p.prepare(i); const t = process.hrtime.bigint(); p.open(i); p.attempt(); ch.push(Number(process.hrtime.bigint() - t) / 1e3); await p.restore(i); }
  res.sort((a, c) => a - c); ch.sort((a, c) => a - c);
  console.log(`${label} ${o.layout}: attempt ns median ${res[2]!.toFixed(0)} [${res[0]!.toFixed(0)}–${res[4]!.toFixed(0)}]; breaker opens + attempt µs median ${ch[19]!.toFixed(1)}`);
  await p.close();
}
