import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, request, Agent, type RequestListener, type Server } from 'node:http';
import { InvalidOptionError } from '@proxyless/core';
import { ShutdownCoordinator, drainServer, type ShutdownStep } from '../src/index.js';

async function listen(handler: RequestListener): Promise<{ server: Server; port: number }> {
  const server = createServer(handler);
  server.keepAliveTimeout = 60_000;
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  return { server, port: typeof address === 'object' && address ? address.port : 0 };
}

function get(port: number, path: string, agent: Agent): Promise<{ status: number; body: string; connection: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, connection: res.headers.connection }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('drainServer', function () {
  it('lets in-flight requests finish, closes idle keep-alive sockets, and resolves without forcing', async function () {
    const { server, port } = await listen((req, res) => {
      const delay = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('delay') ?? 0);
      setTimeout(() => res.end('done'), delay);
    });
    const agent = new Agent({ keepAlive: true, maxSockets: 4 });
    await Promise.all([get(port, '/', agent), get(port, '/', agent)]); // two idle keep-alive sockets now
    const inflight = get(port, '/?delay=300', agent);
    await new Promise((r) => setTimeout(r, 50));
    const t0 = Date.now();
    const result = await drainServer(server, { deadline: Date.now() + 5000 });
    const response = await inflight;
    assert.equal(response.status, 200);
    assert.equal(response.body, 'done');
    assert.equal(result.forced, false);
    // Closed as soon as the in-flight request ended, not at the 60 s keep-alive timeout.
    assert.ok(Date.now() - t0 < 1500, `${Date.now() - t0} ms`);
    agent.destroy();
  });

  it('force-closes what is still open at the deadline', async function () {
    const { server, port } = await listen(() => {
      // never answers
    });
    const agent = new Agent({ keepAlive: true });
    const hung = get(port, '/', agent).then(
      () => 'answered',
      () => 'cut',
    );
    await new Promise((r) => setTimeout(r, 50));
    const result = await drainServer(server, { deadline: Date.now() + 300 });
    assert.equal(result.forced, true);
    assert.ok(result.durationMs >= 250 && result.durationMs < 2000, String(result.durationMs));
    assert.equal(await hung, 'cut');
    agent.destroy();
  });
});

describe('ShutdownCoordinator (without a registrar)', function () {
  it('closes servers, then runs hooks in order, then exits 0', async function () {
    const { server } = await listen((_req, res) => {
      res.end();
    });
    const order: string[] = [];
    let exitCode: number | undefined;
    const coordinator = new ShutdownCoordinator({
      servers: [server],
      hooks: [() => void order.push('hook1'), async () => { await new Promise((r) => setTimeout(r, 20)); order.push('hook2'); }],
      exit: (code) => (exitCode = code),
      log: () => undefined,
      drainDelayMs: 0,
    });
    server.once('close', () => order.push('serverClosed'));
    const steps: ShutdownStep[] = [];
    coordinator.on('step', (step) => steps.push(step));
    assert.equal(await coordinator.shutdown('test'), 0);
    assert.deepEqual(order, ['serverClosed', 'hook1', 'hook2']);
    assert.deepEqual(steps, ['outOfRotation', 'propagation', 'drainDelay', 'deregister', 'closeServers', 'hooks']);
    assert.equal(exitCode, 0);
    assert.equal(await coordinator.shutdown('again'), 0, 'runs once');
  });

  it('exits 1 at the deadline when a hook hangs', async function () {
    let exitCode: number | undefined;
    const coordinator = new ShutdownCoordinator({
      hooks: [() => new Promise(() => undefined)],
      deadlineMs: 400,
      drainDelayMs: 0,
      exit: (code) => (exitCode ??= code),
      log: () => undefined,
    });
    const t0 = Date.now();
    const code = await coordinator.shutdown('test');
    assert.equal(code, 1);
    assert.equal(exitCode, 1);
    assert.ok(Date.now() - t0 < 1500);
  });

  it('validates its options', function () {
    assert.throws(() => new ShutdownCoordinator({ deadlineMs: 10 }), InvalidOptionError);
    assert.throws(() => new ShutdownCoordinator({ signals: ['SIGNOPE' as NodeJS.Signals] }), InvalidOptionError);
    assert.throws(() => new ShutdownCoordinator({ outOfRotation: 'dns' as 'check' }), InvalidOptionError);
  });
});
