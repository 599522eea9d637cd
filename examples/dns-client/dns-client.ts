/**
 * Service discovery through Consul's DNS interface (SRV records), no HTTP API:
 * resolves a service once and prints its instances in RFC 2782 order
 * (priority, then weighted random), then watches it for a few seconds and
 * prints every change. Exits by itself.
 *
 *   node --conditions=proxyless-source --import tsx examples/dns-client/dns-client.ts [service] [watch seconds]
 *
 * CONSUL_DNS_ADDR is the DNS server, host:port (default 127.0.0.1:8600, the local agent).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { DnsSrvResolver, diffInstances, isProxylessError, type ServiceInstance } from '@proxyless/core';

const service = process.argv[2] ?? 'hello';
const watchSeconds = Number(process.argv[3] ?? 5);
const server = process.env['CONSUL_DNS_ADDR'] ?? '127.0.0.1:8600';

const show = (i: ServiceInstance): string => `${i.address}:${String(i.port)} weight=${String(i.weights.passing)}${i.node ? ` node=${i.node}` : ''}`;

// Consul answers SRV queries for <service>.service.consul with TTL 0, so the
// watch re-queries every minTtlMs.
const resolver = new DnsSrvResolver({ servers: [server], minTtlMs: 500 });
// What we last printed: changes are shown against it, so a change between the
// one-off resolve and the watch's first answer is not missed.
let shown: readonly ServiceInstance[] = [];
try {
  try {
    const instances = await resolver.resolve(service, { timeoutMs: 5_000 });
    shown = instances;
    console.log(`${service}.service.consul via ${server}: ${String(instances.length)} instance(s), RFC 2782 order:`);
    for (const [n, instance] of instances.entries()) console.log(`  ${String(n + 1)}. ${show(instance)}`);
  } catch (error) {
    if (!isProxylessError(error, 'ERR_NO_HEALTHY_INSTANCES')) throw error;
    console.log(`${service}.service.consul via ${server}: no healthy instances`);
  }

  console.log(`watching ${service} for ${String(watchSeconds)} s…`);
  const watch = resolver.watch(service);
  watch.on('update', (snapshot) => {
    const change = diffInstances(shown, snapshot.instances);
    shown = snapshot.instances;
    if (change.added.length + change.removed.length + change.updated.length === 0) return;
    for (const i of change.added) console.log(`  + ${show(i)}`);
    for (const i of change.removed) console.log(`  - ${show(i)}`);
    for (const i of change.updated) console.log(`  ~ ${show(i)}`);
    console.log(`  now ${String(snapshot.instances.length)} instance(s)`);
  });
  watch.on('error', (error) => console.log(`  ! ${error.message}`));
  await sleep(watchSeconds * 1000);
  await watch.close();
} finally {
  await resolver.close();
}
