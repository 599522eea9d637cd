/**
 * A minimal Proxyless client: discovers a service through the local Consul
 * agent (or, with REGISTRY=etcd, in etcd), calls it N times (balanced, no
 * proxy hop) and prints which instance answered each call, then a
 * per-instance tally. Exits by itself.
 *
 *   node --conditions=proxyless-source --import tsx examples/client/client.ts [service] [count]
 *
 * Consul's address comes from CONSUL_HTTP_ADDR (default 127.0.0.1:8500);
 * etcd's from ETCDCTL_ENDPOINTS (default 127.0.0.1:2379).
 */
import { ConsulResolver, isProxylessError } from '@proxyless/core';
import { EtcdResolver } from '@proxyless/etcd';
import { createClient } from '@proxyless/http-client';
import { registryFromEnv } from '../registry-env.js';

const service = process.argv[2] ?? 'hello';
const count = Number(process.argv[3] ?? 10);

// Connection settings (address, token or user, TLS) from the registry's usual environment variables.
const resolver = registryFromEnv() === 'etcd' ? new EtcdResolver() : new ConsulResolver();
const client = createClient({ service, resolver, timeoutMs: 5_000 });

const tally = new Map<string, number>();
let failures = 0;
let made = 0;
try {
  for (let i = 1; i <= count; i++) {
    made = i;
    try {
      const res = await client.json<{ instance?: string }>('/');
      const who = res.body.instance ?? res.endpoint.label;
      tally.set(who, (tally.get(who) ?? 0) + 1);
      console.log(`#${String(i)} ${String(res.statusCode)} from ${who} (${res.endpoint.label}, ${String(res.attempts)} attempt(s))`);
    } catch (error) {
      failures++;
      console.log(`#${String(i)} failed: ${(error as Error).name}: ${(error as Error).message}`);
      // The registry could not be asked (the line names it, its address and what sets it): every
      // further call would wait out its deadline the same way.
      if (isProxylessError(error, 'ERR_RESOLUTION_FAILED')) break;
    }
  }
  console.log(`${service}: ${String(made - failures)}/${String(made)} ok${made < count ? ` (stopped after ${String(made)} of ${String(count)})` : ''}`);
  for (const [who, n] of [...tally].sort()) console.log(`  ${who}: ${String(n)}`);
} finally {
  // Closing the client and the resolver stops the watch and the pools: the process exits by itself.
  await client.close();
  await resolver.close();
}
process.exitCode = failures === 0 ? 0 : 1;
