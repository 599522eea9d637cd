import assert from 'node:assert/strict';
import { request } from 'undici';
import { StaticResolver } from '@proxyless/core';
import { createClient, createDispatcher, type PerCallOptions, type ProxylessClient, type ProxylessRequestInit, type RequestOptions, type ServiceDispatchOptions, type ServiceDispatcher } from '@proxyless/http-client';
import { startServer, type TestServer } from './helpers.js';

/** True when A and B are the same type (each assignable to the other). */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;

// Compiled by `npm run lint` (tsc): one per-call type, taken whole by every way into a client.
export const oneType: [Same<Pick<RequestOptions, keyof PerCallOptions>, PerCallOptions>, Same<Pick<ProxylessRequestInit, keyof PerCallOptions>, PerCallOptions>, Same<ServiceDispatchOptions, PerCallOptions>] = [true, true, true];

describe('http-client: one per-call options type for request(), fetch() and the dispatcher', () => {
  let server: TestServer;
  let resolver: StaticResolver;
  let client: ProxylessClient | undefined;
  let dispatcher: ServiceDispatcher | undefined;
  beforeEach(async () => {
    server = await startServer((_req, res) => {
      res.statusCode = 503;
      res.end('busy');
    });
    resolver = new StaticResolver({ services: { svc: [{ address: '127.0.0.1', port: server.port }] } });
  });
  afterEach(async () => {
    await client?.close();
    await dispatcher?.close();
    client = undefined;
    dispatcher = undefined;
    await resolver.close();
    await server.close();
  });

  it('the same PerCallOptions value turns retries off through each of the three', async () => {
    const settings = { outlierDetection: false, breaker: false, logger: false, retry: { maxRetries: 2, initialMs: 0 } } as const;
    client = createClient({ service: 'svc', resolver, ...settings });
    dispatcher = createDispatcher({ resolver, client: settings });
    const perCall: PerCallOptions = { retry: false, timeoutMs: 5_000 };

    server.hits = 0;
    const res = await client.request({ path: '/', ...perCall });
    await res.body.dump();
    assert.equal(res.attempts, 1);
    assert.equal(server.hits, 1, 'request()');

    server.hits = 0;
    const init: ProxylessRequestInit = { ...perCall };
    assert.equal((await client.fetch('/', init)).status, 503);
    assert.equal(server.hits, 1, 'fetch()');

    server.hits = 0;
    const viaDispatcher = await request('http://svc/', { dispatcher, ...perCall });
    await viaDispatcher.body.dump();
    assert.equal(server.hits, 1, 'dispatcher');

    // And without it, the client's default retries (3 attempts) apply to each: the value above did the work.
    server.hits = 0;
    await (await client.request('/')).body.dump();
    assert.equal(server.hits, 3);
  });
});
