import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, fetch as undiciFetch, interceptors, request } from 'undici';
import { roundRobin, StaticResolver } from '@proxyless/core';
import { createDispatcher, UnknownServiceError, type ServiceDispatcher } from '@proxyless/http-client';
import { ok, startServer, until, type TestServer } from './helpers.js';

/** An SDK-style client: it takes a `fetch` and knows nothing about balancing. */
function makeUsersSdk(baseUrl: string, fetchFn: typeof fetch): { get(id: string): Promise<{ id: string; port: number }> } {
  return {
    async get(id) {
      const res = await fetchFn(`${baseUrl}/users/${id}`, { headers: { accept: 'application/json' } });
      if (!res.ok) throw new Error(`status ${res.status}`);
      return (await res.json()) as { id: string; port: number };
    },
  };
}

describe('http-client: the undici Dispatcher (createDispatcher)', () => {
  let servers: TestServer[] = [];
  let resolver: StaticResolver;
  let dispatcher: ServiceDispatcher | undefined;
  let fallback: Agent | undefined;

  beforeEach(async () => {
    servers = await Promise.all([startServer(ok), startServer(ok), startServer(ok)]);
    resolver = new StaticResolver({ services: { users: servers.map((s) => ({ address: '127.0.0.1', port: s.port })) } });
  });
  afterEach(async () => {
    await dispatcher?.close();
    dispatcher = undefined;
    await fallback?.close();
    fallback = undefined;
    await resolver.close();
    await Promise.all(servers.map((s) => s.close()));
    servers = [];
  });

  it('routes users.service.consul, bare users and a mapped host to the service; everything else to the fallback', () => {
    dispatcher = createDispatcher({ resolver, services: { 'api.example.internal': 'users' } });
    assert.equal(dispatcher.serviceOf('http://users.service.consul'), 'users');
    assert.equal(dispatcher.serviceOf('http://users:8080'), 'users');
    assert.equal(dispatcher.serviceOf('https://users.service.consul'), 'users');
    assert.equal(dispatcher.serviceOf(new URL('http://api.example.internal/x')), 'users');
    assert.equal(dispatcher.serviceOf('http://localhost:3000'), undefined);
    assert.equal(dispatcher.serviceOf('http://127.0.0.1:3000'), undefined);
    assert.equal(dispatcher.serviceOf('http://[::1]:3000'), undefined);
    assert.equal(dispatcher.serviceOf('https://example.com'), undefined);
    const strict = createDispatcher({ resolver, bareHostnames: false, serviceDomain: false });
    assert.equal(strict.serviceOf('http://users'), undefined);
    assert.equal(strict.serviceOf('http://users.service.consul'), undefined);
    void strict.close();
  });

  it('balances undici.request() and fetch(url, { dispatcher }) over every instance', async () => {
    const d = createDispatcher({ resolver });
    dispatcher = d;
    for (let i = 0; i < 30; i++) {
      const res = await request('http://users.service.consul/x', { dispatcher: d });
      assert.equal(res.statusCode, 200);
      assert.match(await res.body.text(), /^ok \d+$/);
    }
    for (let i = 0; i < 30; i++) {
      const res = await undiciFetch('http://users/x', { dispatcher });
      assert.equal(res.status, 200);
      assert.match(await res.text(), /^ok \d+$/);
    }
    for (const s of servers) assert.ok(s.hits > 0, `${s.port} got no traffic`);
    const stats = dispatcher.client('users').stats();
    assert.equal(stats.endpoints.reduce((a, e) => a + e.successes, 0), 60);
  });

  it('gives the global fetch balancing through a dispatcher it is handed, and an SDK that takes a fetch works unchanged', async () => {
    dispatcher = createDispatcher({ resolver });
    const d = dispatcher;
    const balancedFetch = ((input: string | URL | Request, init?: RequestInit) => fetch(input, { ...init, dispatcher: d } as unknown as RequestInit)) as typeof fetch;
    const sdk = makeUsersSdk('http://users.service.consul', balancedFetch);
    servers.forEach((s) => s.server.removeAllListeners('request'));
    servers.forEach((s) =>
      s.server.on('request', (req, res) => {
        s.hits++;
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ id: req.url?.split('/').pop(), port: s.port }));
      }),
    );
    const ports = new Set<number>();
    for (let i = 0; i < 30; i++) {
      const user = await sdk.get(String(i));
      assert.equal(user.id, String(i));
      ports.add(user.port);
    }
    assert.equal(ports.size, 3);
  });

  it('hands other origins to the fallback untouched', async () => {
    const seen: { origin: string; path: string; headers: unknown }[] = [];
    fallback = new Agent();
    const spy = fallback.compose((dispatch) => (opts, handler) => {
      seen.push({ origin: String(opts.origin), path: opts.path, headers: opts.headers });
      return dispatch(opts, handler);
    });
    dispatcher = createDispatcher({ resolver, fallback: spy });
    const direct = servers[0]!;
    const res = await request(`http://127.0.0.1:${direct.port}/plain?q=1`, { dispatcher, headers: { 'x-mine': 'yes' } });
    assert.equal(await res.body.text(), `ok ${direct.port}`);
    assert.equal(seen.length, 1);
    assert.deepEqual(seen[0], { origin: `http://127.0.0.1:${direct.port}`, path: '/plain?q=1', headers: { 'x-mine': 'yes' } });
    await (await request('http://users/x', { dispatcher })).body.dump();
    assert.equal(seen.length, 1, 'a service origin must not reach the fallback');
    await dispatcher.close();
    dispatcher = undefined;
    assert.equal(fallback.closed, false, 'a fallback passed in stays open');
  });

  it('streams request and response bodies both ways, with backpressure', async () => {
    const size = 8 * 1024 * 1024;
    await Promise.all(servers.map((s) => s.close())); // this test brings its own backend
    servers = [
      await startServer((req, res) => {
        if (req.method === 'POST') {
          let n = 0;
          req.on('data', (c: Buffer) => (n += c.length));
          req.on('end', () => res.end(String(n)));
          return;
        }
        const chunk = Buffer.alloc(64 * 1024, 97);
        let sent = 0;
        const write = (): void => {
          while (sent < size) {
            sent += chunk.length;
            if (!res.write(chunk)) return void res.once('drain', write);
          }
          res.end();
        };
        write();
      }),
    ];
    resolver.set('users', [{ address: '127.0.0.1', port: servers[0]!.port }]);
    dispatcher = createDispatcher({ resolver });
    async function* upload(): AsyncGenerator<Uint8Array> {
      for (let i = 0; i < 64; i++) {
        yield Buffer.alloc(64 * 1024, 98);
        await sleep(0);
      }
    }
    const up = await request('http://users/upload', { dispatcher, method: 'POST', body: Readable.from(upload()) });
    assert.equal(await up.body.text(), String(64 * 64 * 1024));
    const viaFetch = await undiciFetch('http://users/upload', { dispatcher, method: 'POST', body: Readable.toWeb(Readable.from(upload())) as ReadableStream, duplex: 'half' });
    assert.equal(await viaFetch.text(), String(64 * 64 * 1024));

    const down = await undiciFetch('http://users/big', { dispatcher });
    const reader = down.body!.getReader();
    let received = 0;
    let slowReads = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      received += (value as Uint8Array).length;
      if (slowReads < 5) {
        slowReads++;
        await sleep(20); // a slow reader: the body must wait, not buffer or break
      }
    }
    assert.equal(received, size);
  });

  it('works under compose() interceptors and as dispatcher.request()', async () => {
    dispatcher = createDispatcher({ resolver });
    let seen = 0;
    const composed = dispatcher.compose(
      (dispatch) => (opts, handler) => {
        seen++;
        return dispatch({ ...opts, headers: { ...(opts.headers as Record<string, string>), 'x-intercepted': '1' } }, handler);
      },
      interceptors.responseError(),
    );
    servers.forEach((s) => s.server.removeAllListeners('request'));
    servers.forEach((s) => s.server.on('request', (req, res) => res.end(String(req.headers['x-intercepted']))));
    const res = await request('http://users/x', { dispatcher: composed });
    assert.equal(await res.body.text(), '1');
    const viaFetch = await undiciFetch('http://users/x', { dispatcher: composed });
    assert.equal(await viaFetch.text(), '1');
    assert.equal(seen, 2);
    const own = await dispatcher.request({ origin: 'http://users', path: '/y', method: 'GET' });
    assert.equal(await own.body.text(), 'undefined');
  });

  it('fails an unknown service with a typed error naming it', async () => {
    dispatcher = createDispatcher({ resolver, client: { timeoutMs: 2_000 } });
    await assert.rejects(request('http://billing.service.consul/x', { dispatcher }), (error: unknown) => {
      assert.ok(error instanceof UnknownServiceError);
      assert.equal(error.code, 'ERR_UNKNOWN_SERVICE');
      assert.equal(error.service, 'billing');
      assert.match(error.message, /billing/);
      return true;
    });
    await assert.rejects(undiciFetch('http://billing/x', { dispatcher }), (error: unknown) => {
      assert.ok(error instanceof TypeError);
      assert.ok(error.cause instanceof UnknownServiceError);
      return true;
    });
  });

  it('passes per-request settings from request() options and cancels through the caller signal', async () => {
    await Promise.all(servers.map((s) => s.close())); // this test brings its own backend
    servers = [await startServer((_req, res) => setTimeout(() => res.end('late'), 300))];
    resolver.set('users', [{ address: '127.0.0.1', port: servers[0]!.port }]);
    dispatcher = createDispatcher({ resolver });
    await assert.rejects(request('http://users/x', { dispatcher, timeoutMs: 50, retry: false } as unknown as { dispatcher: ServiceDispatcher }), { code: 'ERR_DEADLINE_EXCEEDED' });
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 30);
    await assert.rejects(undiciFetch('http://users/x', { dispatcher, signal: controller.signal }), { name: 'AbortError' });
    // fetch rejects on the abort by itself; the dispatcher hears of it through the handler and ends
    // its attempt on its own turn (not necessarily before): the count must come back to 0, not leak.
    const d = dispatcher;
    await until(() => d.client('users').stats().endpoints[0]!.inFlight === 0, 2_000, 'the aborted attempt to end (inFlight 0)');
  });

  it('retries a 503 on another instance, reading the discarded body so its connection is kept', async () => {
    await Promise.all(servers.map((s) => s.close())); // this test brings its own backends
    let busyConnections = 0;
    const busy = await startServer((_req, res) => {
      res.statusCode = 503;
      res.end(Buffer.alloc(100 * 1024, 98)); // more than one read: the rest is read after the loop discards the answer
    });
    busy.server.on('connection', () => busyConnections++);
    const fine = await startServer((_req, res) => res.end('fine'));
    servers = [busy, fine];
    resolver.set('users', servers.map((s) => ({ address: '127.0.0.1', port: s.port })));
    const d = createDispatcher({ resolver, client: { balancer: roundRobin(), outlierDetection: false, breaker: false } });
    dispatcher = d;
    for (let i = 0; i < 10; i++) {
      const res = await request('http://users/x', { dispatcher: d });
      assert.equal(res.statusCode, 200);
      assert.equal(await res.body.text(), 'fine');
    }
    assert.ok(busy.hits >= 4, `the busy instance was tried (${busy.hits})`);
    // A 503 whose connection were thrown away would open one connection per hit (4 or more). The
    // body is discarded in the background, so a request that reaches the busy instance while the
    // last 100 KiB are still being read takes a second connection (seen once, Node 24 under CI load).
    assert.ok(busyConnections <= 2, `every discarded 503 left its keep-alive connection reusable: ${busyConnections} connections for ${busy.hits} hits`);
  });

  it('stops the backend exchange when the caller aborts in the middle of the body', async () => {
    await Promise.all(servers.map((s) => s.close())); // this test brings its own backend
    let closed = false;
    servers = [
      await startServer((req, res) => {
        res.write('first chunk');
        req.socket.on('close', () => (closed = true)); // never ends: only the caller's abort ends it
      }),
    ];
    resolver.set('users', [{ address: '127.0.0.1', port: servers[0]!.port }]);
    dispatcher = createDispatcher({ resolver });
    const controller = new AbortController();
    const res = await request('http://users/stream', { dispatcher, signal: controller.signal });
    assert.equal(res.statusCode, 200);
    const reading = (async () => {
      for await (const chunk of res.body) {
        assert.equal(String(chunk), 'first chunk');
        controller.abort();
      }
    })();
    await assert.rejects(reading, { name: 'AbortError' });
    await until(() => closed, 2_000, 'the backend connection to close');
    assert.equal(dispatcher.client('users').stats().endpoints[0]!.inFlight, 0);
  });

  it('rejects bad options with errors naming them, and requests after close with ERR_CLOSED', async () => {
    assert.throws(() => createDispatcher({} as never), { code: 'ERR_INVALID_OPTION', message: /resolver/ });
    assert.throws(() => createDispatcher({ resolver, services: { x: 'not a name' } }), /services\["x"\]/);
    assert.throws(() => createDispatcher({ resolver, client: { timeoutMs: -1 } }), /timeoutMs/);
    dispatcher = createDispatcher({ resolver });
    await dispatcher.close();
    await dispatcher.close();
    await assert.rejects(request('http://users/x', { dispatcher }), { code: 'ERR_CLOSED' });
  });
});
