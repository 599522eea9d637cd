/**
 * The reporter on real sockets: node:http, an existing http.Server, real
 * Fastify and real Express; every header is read back with core's strict
 * parser, as a client would.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import express from 'express';
import Fastify, { type FastifyInstance } from 'fastify';
import { InvalidOptionError, parseLoadReport, type LoadReport } from '@proxyless/core';
import { LoadReporter, attachLoadReport, loadReportExpress, loadReportFastify, loadReportListener } from '../src/index.js';

const header = 'endpoint-load-metrics';

async function listen(server: Server): Promise<string> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return `http://127.0.0.1:${String((server.address() as AddressInfo).port)}`;
}

async function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((ok) => server.close(() => ok()));
}

/** GETs (or `method`s) a path and returns the status, the parsed report, the raw header and the body. */
async function call(base: string, path = '/', init: RequestInit = {}): Promise<{ status: number; report: LoadReport | undefined; raw: string | null; body: string }> {
  const res = await fetch(base + path, { ...init, signal: AbortSignal.timeout(10_000) });
  const raw = res.headers.get(header);
  const body = await res.text();
  return { status: res.status, report: parseLoadReport(raw ?? undefined), raw, body };
}

/** A handler whose requests wait until released, so the test holds requests in flight. */
function gate(): { handler: (req: IncomingMessage, res: ServerResponse) => void; arrived: () => number; release: () => void } {
  let waiting: (() => void)[] = [];
  let arrived = 0;
  return {
    handler: (req, res) => {
      arrived++;
      if (req.url === '/slow') waiting.push(() => res.end('slow'));
      else res.end('fast');
    },
    arrived: () => arrived,
    release: () => {
      for (const w of waiting) w();
      waiting = [];
    },
  };
}

async function until(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
    await sleep(10);
  }
}

describe('load report (service side)', function () {
  this.timeout(30_000);
  const reporters: LoadReporter[] = [];
  const servers: Server[] = [];
  const reporter = (options?: ConstructorParameters<typeof LoadReporter>[0]): LoadReporter => {
    const r = new LoadReporter(options);
    reporters.push(r);
    return r;
  };
  const serve = async (listener: (req: IncomingMessage, res: ServerResponse) => void): Promise<string> => {
    const server = createServer(listener);
    servers.push(server);
    return listen(server);
  };
  afterEach(async () => {
    await Promise.all(servers.splice(0).map(closeServer));
    await Promise.all(reporters.splice(0).map((r) => r.close()));
  });

  describe('node:http (loadReportListener)', () => {
    it('every response carries a TEXT report a strict reader accepts, with the ORCA fields and rif/latency_ms', async () => {
      const load = reporter();
      const base = await serve(loadReportListener(load, (_req, res) => res.end('ok')));
      await call(base);
      const { status, report, raw, body } = await call(base);
      assert.equal(status, 200);
      assert.equal(body, 'ok');
      assert.match(raw ?? '', /^TEXT cpu_utilization=/);
      assert.ok(report, `not a valid report: ${String(raw)}`);
      for (const field of ['cpu_utilization', 'mem_utilization', 'rps_fractional', 'eps'] as const) assert.equal(typeof report[field], 'number', field);
      assert.equal(report.named_metrics?.['rif'], 0, 'no other request in flight');
      assert.equal(typeof report.named_metrics?.['latency_ms'], 'number', 'latency known after one request');
    });

    it('writes JSON when the request asks with endpoint-load-metrics-format (any case), and the reporter form otherwise', async () => {
      const load = reporter({ format: 'JSON' });
      const base = await serve(loadReportListener(load, (_req, res) => res.end('ok')));
      assert.match((await call(base)).raw ?? '', /^JSON \{"cpu_utilization":/);
      const asked = await call(base, '/', { headers: { 'endpoint-load-metrics-format': 'Text' } });
      assert.match(asked.raw ?? '', /^TEXT /);
      const json = await call(base, '/', { headers: { 'endpoint-load-metrics-format': 'json' } });
      assert.ok(json.report?.named_metrics && 'rif' in json.report.named_metrics, String(json.raw));
      // A form it cannot write (BIN) gets its own form: the prefix says which.
      assert.match((await call(base, '/', { headers: { 'endpoint-load-metrics-format': 'bin' } })).raw ?? '', /^JSON /);
    });

    it('onlyWhenAsked: only responses to requests that ask carry the report', async () => {
      const load = reporter({ onlyWhenAsked: true });
      const base = await serve(loadReportListener(load, (_req, res) => res.end('ok')));
      assert.equal((await call(base)).raw, null);
      assert.ok((await call(base, '/', { headers: { 'endpoint-load-metrics-format': 'text' } })).report);
    });

    it("leaves a report the application wrote itself, and writes with explicit writeHead headers too", async () => {
      const load = reporter();
      const base = await serve(
        loadReportListener(load, (req, res) => {
          if (req.url === '/own') res.setHeader(header, 'TEXT cpu_utilization=0.99');
          if (req.url === '/head') {
            res.writeHead(201, { 'x-app': '1' });
            res.end();
            return;
          }
          res.end('ok');
        }),
      );
      assert.equal((await call(base, '/own')).raw, 'TEXT cpu_utilization=0.99');
      const head = await call(base, '/head');
      assert.equal(head.status, 201);
      assert.ok(head.report, String(head.raw));
    });

    it('counts requests in flight: a probe sees all of them, a response sees the others', async () => {
      const load = reporter();
      const g = gate();
      const base = await serve(loadReportListener(load, g.handler));
      const slow = Array.from({ length: 3 }, () => call(base, '/slow'));
      await until(() => g.arrived() === 3, 'three requests in the handler');
      assert.equal(load.requestsInFlight, 3);
      const probe = await call(base, '/endpoint-load-metrics');
      assert.equal(probe.report?.named_metrics?.['rif'], 3);
      const fast = await call(base, '/fast');
      assert.equal(fast.report?.named_metrics?.['rif'], 3, 'three others in flight while it was answered');
      g.release();
      const done = await Promise.all(slow);
      // Released together: each was answered while the others were still open, or after some closed.
      for (const d of done) assert.ok((d.report?.named_metrics?.['rif'] ?? -1) <= 2, String(d.raw));
      await until(() => load.requestsInFlight === 0, 'all closed');
    });

    it('a probe (GET or HEAD of /endpoint-load-metrics) is answered without the handler and is not counted; POST goes to the app', async () => {
      const load = reporter({ windowMs: 100 });
      let handled = 0;
      const base = await serve(
        loadReportListener(load, (_req, res) => {
          handled++;
          res.end('app');
        }),
      );
      const get = await call(base, '/endpoint-load-metrics?from=client-7');
      assert.equal(get.status, 200);
      assert.ok(get.report, String(get.raw));
      assert.deepEqual(JSON.parse(get.body), get.report, 'the body is the same report as JSON');
      const head = await call(base, '/endpoint-load-metrics', { method: 'HEAD' });
      assert.equal(head.status, 200);
      assert.equal(head.body, '');
      assert.ok(head.report);
      assert.equal((await call(base, '/endpoint-load-metrics-other')).body, 'app');
      assert.equal((await call(base, '/endpoint-load-metrics', { method: 'POST', body: 'x' })).body, 'app');
      assert.equal(handled, 2, 'only the two non-probes reached the handler');
      for (let i = 0; i < 20; i++) await call(base, '/endpoint-load-metrics');
      await sleep(250);
      const after = await call(base, '/endpoint-load-metrics');
      assert.equal(after.report?.rps_fractional, 0, 'probes are not requests');
    });

    it('probePath: false answers nothing itself; another path can be set', async () => {
      const off = reporter({ probePath: false });
      const base = await serve(loadReportListener(off, (_req, res) => res.end('app')));
      assert.equal((await call(base, '/endpoint-load-metrics')).body, 'app');
      const custom = reporter({ probePath: '/_load' });
      const base2 = await serve(loadReportListener(custom, (_req, res) => res.end('app')));
      assert.ok((await call(base2, '/_load')).report);
    });

    it('measures responses and errors per second over the window (status ≥ 500 by default)', async () => {
      const load = reporter({ windowMs: 200 });
      const base = await serve(
        loadReportListener(load, (req, res) => {
          res.statusCode = req.url === '/fail' ? 503 : 200;
          res.end();
        }),
      );
      // Enough requests that every window of 200 ms overlapping them has some; generous bounds for a loaded machine.
      const until = Date.now() + 700;
      let sent = 0;
      while (Date.now() < until) {
        await call(base, sent % 4 === 0 ? '/fail' : '/ok');
        sent++;
      }
      const { report } = await call(base, '/endpoint-load-metrics');
      assert.ok(report);
      assert.ok((report.rps_fractional ?? 0) > 0, `rps ${String(report.rps_fractional)}`);
      assert.ok((report.eps ?? 0) > 0, `eps ${String(report.eps)}`);
      assert.ok((report.eps ?? 0) < (report.rps_fractional ?? 0), 'a quarter fail');
      await sleep(500);
      const idle = (await call(base, '/endpoint-load-metrics')).report;
      assert.equal(idle?.rps_fractional, 0, 'an idle window has no requests');
      assert.equal(idle?.eps, 0);
    });

    it('cpu_utilization is event-loop utilisation: near 1 after the loop was blocked, low when idle', async () => {
      const load = reporter({ windowMs: 200 });
      const base = await serve(loadReportListener(load, (_req, res) => res.end()));
      await sleep(450);
      const idle = (await call(base, '/endpoint-load-metrics')).report;
      assert.ok((idle?.cpu_utilization ?? 1) < 0.5, `idle: ${String(idle?.cpu_utilization)}`);
      const end = performance.now() + 400;
      while (performance.now() < end); // the loop busy for two windows
      await sleep(50);
      const busy = (await call(base, '/endpoint-load-metrics')).report;
      assert.ok((busy?.cpu_utilization ?? 0) > 0.5, `busy: ${String(busy?.cpu_utilization)}`);
      assert.ok((busy?.mem_utilization ?? 0) > 0 && (busy?.mem_utilization ?? 1) <= 1);
    });

    it('latency_ms is the latency of recent requests at the current load', async () => {
      const load = reporter();
      const base = await serve(loadReportListener(load, (_req, res) => void setTimeout(() => res.end(), 40)));
      for (let i = 0; i < 5; i++) await call(base);
      const latency = (await call(base, '/endpoint-load-metrics')).report?.named_metrics?.['latency_ms'] ?? 0;
      assert.ok(latency >= 35 && latency < 2_000, `latency ${String(latency)}`);
    });

    it('latency_ms at a load no request arrived at since follows a slowdown (the drift)', async () => {
      const load = reporter();
      const atLoadOne = (): number => {
        const held = load.begin(); // one in flight: the report is for a request arriving at load 1
        const latency = load.report().named_metrics?.['latency_ms'] ?? NaN;
        held.end(200, false);
        return latency;
      };
      // Requests arriving at loads 0 and 1 take 20 ms.
      for (let i = 0; i < 4; i++) {
        const a = load.begin();
        const b = load.begin();
        await sleep(20);
        a.end(200);
        b.end(200);
      }
      const before = atLoadOne();
      assert.ok(before >= 15 && before < 200, `before: ${String(before)}`);
      // Then they take 100 ms, one at a time: only load 0's own figure sees it.
      for (let i = 0; i < 6; i++) {
        const r = load.begin();
        await sleep(100);
        r.end(200);
      }
      const after = atLoadOne();
      // Without the drift it stays at its 20 ms: no request arrived at load 1 since.
      assert.ok(after > 1.5 * before, `load 1's figure after the slowdown: ${String(after)} ms (before ${String(before)} ms)`);
    });

    it('a request whose client went away leaves the in-flight count and is not a latency sample', async () => {
      const load = reporter();
      const g = gate();
      const base = await serve(loadReportListener(load, g.handler));
      const req = httpRequest(`${base}/slow`);
      req.on('error', () => undefined);
      req.end();
      await until(() => g.arrived() === 1, 'the request in the handler');
      assert.equal(load.requestsInFlight, 1);
      req.destroy();
      await until(() => load.requestsInFlight === 0, 'the aborted request to leave');
      assert.equal(load.report().named_metrics?.['latency_ms'], undefined, 'no completed request, no estimate');
      g.release();
    });

    it("carries the application's utilisation and named metrics; rejects bad ones with InvalidOptionError", async () => {
      const load = reporter();
      const base = await serve(loadReportListener(load, (_req, res) => res.end()));
      load.setApplicationUtilization(1.25);
      load.setNamedMetric('queue_depth', 7);
      for (const format of ['text', 'json']) {
        const { report } = await call(base, '/', { headers: { 'endpoint-load-metrics-format': format } });
        assert.equal(report?.application_utilization, 1.25, format);
        assert.equal(report?.named_metrics?.['queue_depth'], 7, format);
        assert.equal(report?.named_metrics?.['rif'], 0, format);
      }
      load.setNamedMetric('queue_depth', undefined);
      load.setApplicationUtilization(undefined);
      const cleared = (await call(base)).report;
      assert.equal(cleared?.application_utilization, undefined);
      assert.equal(cleared?.named_metrics?.['queue_depth'], undefined);
      assert.throws(() => load.setNamedMetric('rif', 1), InvalidOptionError);
      assert.throws(() => load.setNamedMetric('bad key', 1), InvalidOptionError);
      assert.throws(() => load.setNamedMetric('ok', -1), InvalidOptionError);
      assert.throws(() => load.setNamedMetric('ok', Number.NaN), InvalidOptionError);
      assert.throws(() => load.setApplicationUtilization(-0.1), InvalidOptionError);
    });

    it('refuses a named metric that would make readers reject the report (too many, too long), keeping the rest', async () => {
      const load = reporter();
      const base = await serve(loadReportListener(load, (_req, res) => res.end()));
      let n = 0;
      assert.throws(() => {
        for (; n < 100; n++) load.setNamedMetric(`metric_${String(n)}`, 1);
      }, /at most 62 of yours/);
      assert.equal(n, 62);
      for (const format of ['text', 'json']) {
        const { report, raw } = await call(base, '/', { headers: { 'endpoint-load-metrics-format': format } });
        assert.ok(report, `a valid report: ${String(raw)}`);
        assert.equal(report.named_metrics?.['metric_61'], 1);
        assert.equal(report.named_metrics?.['rif'], 0);
      }
      for (let i = 0; i < 62; i++) load.setNamedMetric(`metric_${String(i)}`, undefined);
      const long = (i: number): string => `${String(i).padStart(3, '0')}_${'x'.repeat(120)}`;
      let m = 0;
      assert.throws(() => {
        for (; m < 62; m++) load.setNamedMetric(long(m), 123456.789);
      }, /longer than 4096 characters/);
      assert.ok(m > 10 && m < 62, String(m));
      for (const format of ['text', 'json']) {
        const { report, raw } = await call(base, '/', { headers: { 'endpoint-load-metrics-format': format } });
        assert.ok(report, `still a valid report (${String(raw?.length)} chars)`);
        assert.equal(report.named_metrics?.[long(m)], undefined, 'the refused metric is not in it');
      }
    });

    it('rejects bad options naming them', () => {
      assert.throws(() => new LoadReporter({ windowMs: 5 }), /windowMs/);
      assert.throws(() => new LoadReporter({ format: 'BIN' as 'TEXT' }), /format/);
      assert.throws(() => new LoadReporter({ probePath: 'load' }), /probePath/);
      assert.throws(() => new LoadReporter({ windowMS: 100 } as never), /did you mean "windowMs"/);
    });
  });

  describe('an existing http.Server (attachLoadReport)', () => {
    it('reports for listeners present and added later; a probe runs none of them; detach restores the server', async () => {
      const load = reporter();
      let calls = 0;
      const server = createServer((_req, res) => {
        calls++;
        res.end('first');
      });
      servers.push(server);
      const detach = attachLoadReport(load, server);
      server.on('request', () => {
        calls++;
      });
      const base = await listen(server);
      const res = await call(base);
      assert.ok(res.report, String(res.raw));
      assert.equal(calls, 2, 'both listeners ran');
      assert.ok((await call(base, '/endpoint-load-metrics')).report);
      assert.equal(calls, 2, 'the probe ran no listener');
      detach();
      assert.equal((await call(base)).raw, null);
    });
  });

  describe('Fastify (loadReportFastify, real Fastify)', () => {
    let app: FastifyInstance | undefined;
    afterEach(async () => {
      await app?.close();
      app = undefined;
    });

    it('every route of the instance reports, even when the plugin is registered before them and routes are in child contexts; probes skip routing', async () => {
      const load = reporter();
      app = Fastify();
      let handled = 0;
      await app.register(loadReportFastify(load));
      app.get('/', async () => {
        handled++;
        return { ok: true };
      });
      await app.register(async (child) => {
        child.get('/child', async () => 'child');
      });
      const base = await app.listen({ port: 0, host: '127.0.0.1' });
      const root = await call(base);
      assert.equal(root.status, 200);
      assert.deepEqual(JSON.parse(root.body), { ok: true });
      assert.ok(root.report, String(root.raw));
      assert.ok((await call(base, '/child')).report, 'child context');
      assert.ok((await call(base, '/missing')).report, 'a 404 is a response too');
      const probe = await call(base, '/endpoint-load-metrics');
      assert.equal(probe.status, 200);
      assert.deepEqual(JSON.parse(probe.body), probe.report);
      assert.equal(handled, 1);
      assert.equal(load.requestsInFlight, 0);
    });

    it('counts requests in flight through Fastify', async () => {
      const load = reporter();
      app = Fastify();
      await app.register(loadReportFastify(load));
      let release: () => void = () => undefined;
      const held = new Promise<void>((ok) => (release = ok));
      app.get('/slow', async () => {
        await held;
        return 'slow';
      });
      const base = await app.listen({ port: 0, host: '127.0.0.1' });
      const slow = [call(base, '/slow'), call(base, '/slow')];
      await until(() => load.requestsInFlight === 2, 'two in flight');
      assert.equal((await call(base, '/endpoint-load-metrics')).report?.named_metrics?.['rif'], 2);
      release();
      for (const r of await Promise.all(slow)) assert.ok(r.report, String(r.raw));
      await until(() => load.requestsInFlight === 0, 'none in flight');
    });
  });

  describe('Express (real Express)', () => {
    it('as a middleware: responses report, probes skip the routes; counted once with the listener wrapper too', async () => {
      const load = reporter();
      const app = express();
      let handled = 0;
      app.use(loadReportExpress(load));
      app.get('/', (_req, res) => {
        handled++;
        res.send('ok');
      });
      const base = await serve(loadReportListener(load, app));
      const res = await call(base);
      assert.equal(res.body, 'ok');
      assert.ok(res.report, String(res.raw));
      assert.equal((await call(base, '/nope')).status, 404);
      assert.ok((await call(base, '/endpoint-load-metrics')).report);
      assert.equal(handled, 1);
      assert.equal(load.requestsInFlight, 0);
      // Both the wrapper and the middleware saw each request: counted once (or rps would double).
      await sleep(1_100);
      const rps = (await call(base, '/endpoint-load-metrics')).report?.rps_fractional ?? 0;
      assert.ok(rps <= 2.5, `two requests in the last window at most, counted once each: ${String(rps)}`);
    });

    it('an Express app as the listener of loadReportListener', async () => {
      const load = reporter();
      const app = express();
      app.get('/', (_req, res) => void res.json({ ok: true }));
      const base = await serve(loadReportListener(load, app));
      assert.ok((await call(base)).report);
    });
  });

  it('an idle reporter keeps no process alive', async () => {
    const source = fileURLToPath(new URL('../src/index.ts', import.meta.url));
    const script = `import { LoadReporter } from ${JSON.stringify(source)}; new LoadReporter({ windowMs: 100 }); console.log('made');`;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    const [code] = (await once(child, 'exit')) as [number | null];
    clearTimeout(timer);
    assert.equal(code, 0, 'exited by itself');
    assert.equal(out.trim(), 'made');
  });
});
