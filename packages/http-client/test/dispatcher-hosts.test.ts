import assert from 'node:assert/strict';
import type { LookupAddress, LookupOptions } from 'node:dns';
import { createServer, type Server, type Socket } from 'node:net';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import fc from 'fast-check';
import { Agent, fetch as undiciFetch, request } from 'undici';
import { InvalidServiceNameError, StaticResolver, isProxylessError } from '@proxyless/core';
import { createClient, createDispatcher, type ServiceDispatcher } from '@proxyless/http-client';
import { ok, startServer, type TestServer } from './helpers.js';

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

describe('http-client: the dispatcher never hands a malformed service host to the network', () => {
  let backend: TestServer;
  let listener: Server;
  let sockets: Socket[] = [];
  let accepts = 0;
  let lookups: string[] = [];
  let resolver: StaticResolver;
  let fallback: Agent;
  let dispatcher: ServiceDispatcher;

  beforeEach(async () => {
    backend = await startServer(ok);
    accepts = 0;
    lookups = [];
    // Where anything that leaked to the fallback would land: every name "resolves" here, every accept is counted.
    listener = createServer((socket) => {
      accepts++;
      sockets.push(socket);
      socket.on('error', () => undefined);
      socket.end('HTTP/1.1 200 OK\r\ncontent-length: 6\r\nconnection: close\r\n\r\nleaked');
    });
    listener.listen(0, '127.0.0.1');
    await once(listener, 'listening');
    // The fallback's DNS lookups are counted (a lookup spy in front of the connect, as undici hands it to net.connect).
    const lookup = (hostname: string, options: LookupOptions, callback: LookupCallback): void => {
      lookups.push(hostname);
      if (options.all === true) callback(null, [{ address: '127.0.0.1', family: 4 }]);
      else callback(null, '127.0.0.1', 4);
    };
    fallback = new Agent({ connect: { lookup } });
    resolver = new StaticResolver({ services: { web: [{ address: '127.0.0.1', port: backend.port }] } });
    dispatcher = createDispatcher({ resolver, fallback, client: { timeoutMs: 2_000 } });
  });

  afterEach(async () => {
    await dispatcher.close();
    await fallback.close();
    await resolver.close();
    sockets.forEach((s) => s.destroy());
    sockets = [];
    listener.close();
    await backend.close();
  });

  const malformed = ['..service.consul', '%2e%2e.service.consul', '.service.consul', '-x.service.consul', 'x-.service.consul', 'a.b.service.consul', 'service.consul'];

  for (const host of malformed) {
    it(`fails http://${host}/ with ERR_INVALID_SERVICE_NAME naming the host: no DNS lookup, no connection`, async () => {
      const port = (listener.address() as { port: number }).port;
      const url = `http://${host}:${port}/x`;
      const parsedHost = new URL(url).hostname; // %2e%2e is `..` once parsed
      const check = (error: unknown): boolean => {
        assert.ok(error instanceof InvalidServiceNameError, `got ${String(error)}`);
        assert.equal(error.code, 'ERR_INVALID_SERVICE_NAME');
        assert.equal(error.option, 'host');
        // The URL's host, said as such: the caller passed a URL, not an option called host.
        assert.ok(error.message.startsWith(`Invalid host "${parsedHost}" in the request URL: it is under the service domain "service.consul" but `), error.message);
        assert.doesNotMatch(error.message, /Invalid option/);
        // The fix: the form to write, and (for a host that has a name) the mapping that routes it.
        assert.match(error.message, /Fix: .*http:\/\/<service>\.service\.consul\/…/);
        if (!/^\.?service\.consul$/.test(parsedHost)) assert.ok(error.message.includes(`createDispatcher({ services: { "${parsedHost}": "<service>" } })`), error.message);
        assert.match(error.message, /Nothing was sent\.$/);
        return true;
      };
      await assert.rejects(request(url, { dispatcher }), check);
      await assert.rejects(undiciFetch(url, { dispatcher }), (error: unknown) => {
        assert.ok(error instanceof TypeError);
        return check(error.cause);
      });
      assert.throws(() => dispatcher.serviceOf(url), check);
      await sleep(50); // a leaked connect would have been accepted by now
      assert.deepEqual(lookups, [], 'DNS lookups');
      assert.equal(accepts, 0, 'connections accepted');
    });
  }

  it('the host named in the message routes once mapped with the services option, as its fix says', async () => {
    const mapped = createDispatcher({ resolver, fallback, services: { 'a.b.service.consul': 'web' } });
    try {
      const res = await request('http://a.b.service.consul/x', { dispatcher: mapped });
      assert.match(await res.body.text(), /^ok \d+$/);
    } finally {
      await mapped.close();
    }
  });

  it('a host, URL or port given to client.request() or createClient() names the fix, not a list of valid keys', async () => {
    const client = dispatcher.client('web');
    for (const key of ['host', 'url', 'port'] as const) {
      await assert.rejects(client.request({ path: '/', [key]: 'web.service.consul' }), (error: Error) => {
        assert.ok(isProxylessError(error, 'ERR_INVALID_OPTION'), String(error));
        assert.equal(error.message, `Invalid option "${key}": client.request() takes no ${key}: a client calls the one service it was created for, on the instances its resolver finds. ` +
          `Fix: pass the path alone ({ path: '/users/42' }); to pick the service from a URL's host, send through createDispatcher()`);
        return true;
      });
    }
    assert.throws(() => createClient({ service: 'web', resolver, host: 'http://user:secret@10.0.0.1' } as never), (error: Error) => {
      assert.ok(isProxylessError(error, 'ERR_INVALID_OPTION'), String(error));
      assert.match(error.message, /^Invalid option "host": createClient\(\) takes no host: .* Fix: name the service \(\{ service: 'users' \}\) and where its instances are found/);
      assert.doesNotMatch(error.message, /secret/);
      return true;
    });
  });

  it('routes the trailing-dot form web.service.consul. like the dotless host: balanced, no DNS lookup', async () => {
    const port = (listener.address() as { port: number }).port;
    for (const url of [`http://web.service.consul./x`, `http://WEB.service.consul.:${port}/x`, `http://web./x`]) {
      assert.equal(dispatcher.serviceOf(url), 'web', url);
      const res = await request(url, { dispatcher });
      assert.equal(res.statusCode, 200, url);
      assert.match(await res.body.text(), /^ok \d+$/);
    }
    const res = await undiciFetch(`http://web.service.consul.:${port}/x`, { dispatcher });
    assert.match(await res.text(), /^ok \d+$/);
    assert.equal(backend.hits, 4);
    assert.deepEqual(lookups, [], 'DNS lookups');
    assert.equal(accepts, 0, 'connections accepted');
  });

  it('still hands hosts outside the service domain to the fallback', async () => {
    const port = (listener.address() as { port: number }).port;
    const res = await request(`http://example.internal:${port}/x`, { dispatcher });
    assert.equal(await res.body.text(), 'leaked');
    assert.deepEqual(lookups, ['example.internal']);
    assert.equal(accepts, 1);
  });

  it('any host under the service domain either names a service or is ERR_INVALID_SERVICE_NAME (never the fallback)', () => {
    const chars = ['a', 'b', 'z', '0', '9', '-', '_', '.', '%', '2', 'e', 'A', 'Z'];
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom(...chars), maxLength: 70 }), (label) => {
        let url: URL;
        try {
          url = new URL(`http://${label}.service.consul/`);
        } catch {
          return; // not a host at all: undici would refuse it before us
        }
        try {
          const service = dispatcher.serviceOf(url);
          assert.equal(service, url.hostname.replace(/\.$/, '').slice(0, -'.service.consul'.length));
        } catch (error) {
          assert.ok(error instanceof InvalidServiceNameError, String(error));
        }
      }),
      { numRuns: 500 },
    );
  });
});
