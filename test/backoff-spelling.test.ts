/**
 * One backoff, one spelling: `initialMs` / `maxMs` (core's BackoffOptions) in
 * every package. The earlier spellings — http-client's `retry.baseDelayMs` /
 * `retry.maxDelayMs`, the registrar's `retry.minDelayMs` / `retry.maxDelayMs` —
 * fail with an InvalidOptionError naming the key to write, never pass silently.
 */
import assert from 'node:assert/strict';
import { ConsulResolver, InvalidOptionError, StaticResolver } from '@proxyless/core';
import { EtcdResolver } from '@proxyless/etcd';
import { createClient, createDispatcher } from '@proxyless/http-client';
import { Registrar } from '@proxyless/registrar';

/** Asserts `make` throws InvalidOptionError for `option` whose message names `spelling`. */
function renamed(make: () => unknown, option: string, spelling: string): void {
  assert.throws(make, (e: unknown) => {
    assert.ok(e instanceof InvalidOptionError, `${option}: ${String(e)}`);
    assert.equal(e.option, option);
    assert.ok(e.message.includes(`"${option}"`) && e.message.includes(spelling), `${option}: ${e.message}`);
    return true;
  });
}

describe('one backoff spelling across packages (initialMs, maxMs)', () => {
  const resolver = new StaticResolver({ services: { svc: [] } });
  after(() => resolver.close());

  it('http-client: the client, a policy, a request and the dispatcher reject baseDelayMs / maxDelayMs naming retry.initialMs / retry.maxMs', async () => {
    const base = { service: 'svc', resolver, logger: false as const };
    renamed(() => createClient({ ...base, retry: { baseDelayMs: 10 } } as never), 'retry.baseDelayMs', 'retry.initialMs');
    renamed(() => createClient({ ...base, retry: { maxDelayMs: 10 } } as never), 'retry.maxDelayMs', 'retry.maxMs');
    renamed(() => createDispatcher({ resolver, client: { retry: { baseDelayMs: 10 } } as never }), 'client.retry.baseDelayMs', 'client.retry.initialMs');
    const client = createClient({ ...base, retry: { initialMs: 10, maxMs: 100 } });
    try {
      renamed(() => client.policy({ retry: { baseDelayMs: 10 } } as never), 'retry.baseDelayMs', 'retry.initialMs');
      await assert.rejects(client.request({ path: '/', retry: { maxDelayMs: 10 } } as never), (e: unknown) => e instanceof InvalidOptionError && e.option === 'retry.maxDelayMs' && e.message.includes('retry.maxMs'));
      const explained = client.explainConfig().retry;
      assert.ok(explained !== false);
      assert.equal(explained.initialMs, 10);
      assert.equal(explained.maxMs, 100);
    } finally {
      await client.close();
    }
  });

  it('registrar: retry.minDelayMs / retry.maxDelayMs name retry.initialMs / retry.maxMs', () => {
    const base = { name: 'web', port: 8080, address: '127.0.0.1', logger: false as const };
    renamed(() => new Registrar({ ...base, retry: { minDelayMs: 10 } } as never), 'retry.minDelayMs', 'retry.initialMs');
    renamed(() => new Registrar({ ...base, retry: { maxDelayMs: 10 } } as never), 'retry.maxDelayMs', 'retry.maxMs');
    new Registrar({ ...base, retry: { initialMs: 10, maxMs: 100 } });
  });

  it('resolvers: a backoff spelt the old way names backoff.initialMs / backoff.maxMs', () => {
    renamed(() => new ConsulResolver({ env: {}, backoff: { minDelayMs: 10 } } as never), 'backoff.minDelayMs', 'backoff.initialMs');
    renamed(() => new EtcdResolver({ endpoints: 'http://127.0.0.1:2379', env: {}, backoff: { maxDelayMs: 10 } } as never), 'backoff.maxDelayMs', 'backoff.maxMs');
  });
});
