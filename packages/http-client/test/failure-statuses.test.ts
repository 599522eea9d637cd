import assert from 'node:assert/strict';
import { CircuitOpenError, InvalidOptionError, createClient, type ProxylessClient } from '@proxyless/http-client';
import { FakeResolver, instance, startServer, type TestServer } from './helpers.js';

describe('http-client: failureStatuses at the client level', () => {
  let server: TestServer | undefined;
  let client: ProxylessClient | undefined;
  afterEach(async () => {
    await client?.close();
    client = undefined;
    await server?.close();
    server = undefined;
  });

  async function tooManyRequests(): Promise<FakeResolver> {
    server = await startServer((_q, res) => {
      res.statusCode = 429;
      res.end('slow down');
    });
    const resolver = new FakeResolver();
    resolver.set([instance(server.port)]);
    return resolver;
  }

  it('drives the breakers, with outlier detection off: 429s open the breaker', async () => {
    const resolver = await tooManyRequests();
    client = createClient({
      service: 'svc', resolver, retry: false, outlierDetection: false, failureStatuses: [429],
      breaker: { volumeThreshold: 4, errorThresholdPercentage: 50, resetTimeoutMs: 60_000 },
    });
    const outcomes: (number | string)[] = [];
    for (let i = 0; i < 8; i++) {
      try {
        const res = await client.request('/');
        await res.body.dump();
        outcomes.push(res.statusCode);
      } catch (error) {
        assert.ok(error instanceof CircuitOpenError, String(error));
        outcomes.push(error.code);
      }
    }
    assert.ok(outcomes.includes('ERR_CIRCUIT_OPEN'), outcomes.join(', '));
    assert.ok(server!.hits < 8, `${server!.hits} requests reached the backend`);
    assert.deepEqual(client.explainConfig().failureStatuses, [429]);
  });

  it('drives outlier detection: consecutive 429s eject the endpoint', async () => {
    const resolver = await tooManyRequests();
    client = createClient({
      service: 'svc', resolver, retry: false, breaker: false, failureStatuses: [429],
      outlierDetection: { consecutiveFailures: 2, baseEjectionTimeMs: 60_000 },
    });
    const ejected: string[] = [];
    client.on('eject', (endpoint) => ejected.push(endpoint.key));
    for (let i = 0; i < 2; i++) await (await client.request('/')).body.dump();
    assert.deepEqual(ejected, [`127.0.0.1:${server!.port}`]);
  });

  it('the old place, outlierDetection.failureStatuses, is a typed error naming the new one', () => {
    const resolver = new FakeResolver();
    assert.throws(
      () => createClient({ service: 'svc', resolver, outlierDetection: { failureStatuses: [429] } } as never),
      (e: unknown) => e instanceof InvalidOptionError && e.option === 'outlierDetection.failureStatuses' && /set failureStatuses/.test(e.message),
    );
  });
});
