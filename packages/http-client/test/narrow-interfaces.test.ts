import assert from 'node:assert/strict';
import { AbortedError, InvalidOptionError, StaticResolver, roundRobin, type Balancer } from '@proxyless/core';
import { createClient, createDispatcher, type ProxylessClient } from '@proxyless/http-client';
import { EndpointSet } from '../src/endpoints/endpoint-set.js';
import { ClientTelemetry } from '../src/observe/tracing.js';
import type { CallHandle } from '../src/request/call.js';
import { resolveOptions, type ResolvedOptions } from '../src/config/options.js';
import { instance, startServer, type TestServer } from './helpers.js';

/** Never called: compiled by `npm run lint` (tsc), it fails to compile if a piece takes the whole client again. */
export function handedTheClient(client: ProxylessClient, options: ResolvedOptions, balancer: Balancer): unknown[] {
  return [
    // @ts-expect-error the endpoint set takes an EmitClientEvent function
    new EndpointSet(options, balancer, client),
    // @ts-expect-error the telemetry takes the set's transition reports (a TransitionSource)
    new ClientTelemetry('svc', client),
  ];
}

describe('http-client: each piece gets the narrow interface it needs, never the whole client', () => {
  let server: TestServer | undefined;
  let client: ProxylessClient | undefined;
  afterEach(async () => {
    await client?.close();
    client = undefined;
    await server?.close();
    server = undefined;
  });

  it('the endpoint set reports through an emit function and the telemetry listens through an on function, not through the client', async () => {
    const options = resolveOptions({ service: 'svc', resolver: new StaticResolver({ services: {} }), logger: false });
    const emitted: string[] = [];
    const set = new EndpointSet(options, roundRobin(), (event, ..._args) => void emitted.push(event));
    const one = instance(1);
    set.apply({ added: [one], removed: [], updated: [] });
    set.apply({ added: [], removed: [one], updated: [] });
    assert.deepEqual(emitted, ['endpointAdded', 'endpointRemoved']);
    await set.close(0);
  });

  it('the dispatcher holds a forwarded call as a handle whose stop() ends it as its caller would', async () => {
    // A backend that never answers: only the stop can end the call before its deadline.
    server = await startServer(() => undefined);
    client = createClient({ service: 'svc', resolver: new StaticResolver({ services: { svc: [{ address: '127.0.0.1', port: server.port }] } }), timeoutMs: 30_000, logger: false });
    const forwarded = client.forward({ path: '/' });
    const handle: CallHandle = forwarded; // the dispatcher's view: stop(), nothing else
    setTimeout(() => handle.stop('caller'), 50);
    const started = performance.now();
    await assert.rejects(forwarded.response, (e: unknown) => e instanceof AbortedError);
    assert.ok(performance.now() - started < 10_000, 'stopped long before the deadline');
  });

  it('the dispatcher checks the settings its clients share without a made-up service, and refuses service/resolver among them', () => {
    const resolver = new StaticResolver({ services: {} });
    for (const key of ['service', 'resolver'] as const) {
      assert.throws(
        () => createDispatcher({ resolver, client: { [key]: key === 'service' ? 'x' : resolver } }),
        (e: unknown) => e instanceof InvalidOptionError && e.option === `client.${key}`,
      );
    }
    assert.throws(() => createDispatcher({ resolver, client: { timeoutMs: -1 } }), (e: unknown) => e instanceof InvalidOptionError && /timeoutMs/.test(e.option));
  });
});
