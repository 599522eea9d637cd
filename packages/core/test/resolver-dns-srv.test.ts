import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { createServer, type Server } from 'node:net';
import { once } from 'node:events';
import Consul from 'consul';
import * as dnsPacket from 'dns-packet';
import {
  DnsSrvResolver,
  DnsTransport,
  NoHealthyInstancesError,
  ResolutionFailedError,
  TimeoutError,
  type ServiceWatch,
} from '@proxyless/core';
import { startConsulAgent, type ConsulAgent } from '../../../test/support/consul.js';
import { until } from '../../../test/support/wait.js';

type Question = dnsPacket.Question & { type: string };
type Reply = (query: dnsPacket.Packet, question: Question) => (Buffer | { spoofed: Buffer })[];

/** A test DNS server built on dns-packet, for answers a real agent never gives. */
class HostileDns {
  udp!: Socket;
  spoofer!: Socket;
  tcp!: Server;
  port = 0;
  queries: Question[] = [];
  tcpQueries: Question[] = [];
  udpReply: Reply = () => [];
  tcpReply: Reply | undefined;

  /** UDP and TCP on one port: the UDP port is random, and TCP may find it taken by another process; then try another. */
  async start(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.#listen();
        return;
      } catch (error) {
        await this.stop().catch(() => undefined);
        if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt >= 10) throw error;
      }
    }
  }

  async #listen(): Promise<void> {
    this.udp = createSocket('udp4');
    this.udp.on('message', (msg, rinfo) => {
      const query = dnsPacket.decode(msg);
      const question = query.questions![0] as Question;
      this.queries.push(question);
      for (const out of this.udpReply(query, question)) {
        // A spoofed answer comes from another port than the one asked.
        if (Buffer.isBuffer(out)) this.udp.send(out, rinfo.port, rinfo.address);
        else this.spoofer.send(out.spoofed, rinfo.port, rinfo.address);
      }
    });
    this.udp.bind(0, '127.0.0.1');
    await once(this.udp, 'listening');
    this.port = this.udp.address().port;
    this.spoofer = createSocket('udp4');
    this.spoofer.bind(0, '127.0.0.1');
    await once(this.spoofer, 'listening');
    this.tcp = createServer((socket) => {
      socket.on('data', (data) => {
        const query = dnsPacket.decode(data.subarray(2));
        const question = query.questions![0] as Question;
        this.tcpQueries.push(question);
        for (const out of (this.tcpReply ?? this.udpReply)(query, question)) {
          if (!Buffer.isBuffer(out)) continue;
          const frame = Buffer.alloc(2);
          frame.writeUInt16BE(out.length);
          socket.write(Buffer.concat([frame, out]));
        }
      });
      socket.on('error', () => undefined);
    });
    this.tcp.listen(this.port, '127.0.0.1');
    await once(this.tcp, 'listening'); // rejects with the 'error' event (EADDRINUSE)
  }

  async stop(): Promise<void> {
    this.udp.close();
    this.spoofer.close();
    await new Promise((r) => this.tcp.close(r));
  }
}

function answer(query: dnsPacket.Packet, fields: Partial<dnsPacket.Packet> & { rcode?: string; flags?: number } = {}): Buffer {
  return dnsPacket.encode({
    type: 'response',
    id: query.id,
    flags: dnsPacket.AUTHORITATIVE_ANSWER | (fields.flags ?? 0),
    questions: query.questions,
    ...fields,
  });
}

function srv(name: string, port: number, target: string, ttl = 0, priority = 1, weight = 1): dnsPacket.Answer {
  return { type: 'SRV', name, ttl, data: { priority, weight, port, target } };
}

describe('DnsSrvResolver against hostile answers (dns-packet test server)', function () {
  this.timeout(60_000);
  let server: HostileDns;

  beforeEach(async () => {
    server = new HostileDns();
    await server.start();
  });
  afterEach(async () => {
    await server.stop();
  });

  const resolver = (extra: ConstructorParameters<typeof DnsSrvResolver>[0] = {}): DnsSrvResolver =>
    new DnsSrvResolver({ servers: [`127.0.0.1:${server.port}`], timeoutMs: 2000, attempts: 1, minTtlMs: 100, ...extra });

  it('ignores answers from another source port, with the wrong ID, the wrong question or garbage, and takes the matching one', async () => {
    server.udpReply = (query, q) => {
      const good = answer(query, { answers: [srv(q.name, 8080, '7f000001.addr.dc1.consul')] });
      const wrongId = Buffer.from(good);
      wrongId.writeUInt16BE((query.id! + 1) % 65536, 0);
      const wrongQuestion = dnsPacket.encode({ type: 'response', id: query.id, questions: [{ type: 'SRV', name: 'evil.service.consul' }], answers: [srv('evil.service.consul', 6666, '7f000009.addr.dc1.consul')] });
      const loop = Buffer.from([0, 0, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c, 0, 33, 0, 1]);
      loop.writeUInt16BE(query.id!, 0);
      const spoofed = answer(query, { answers: [srv(q.name, 6666, '7f000009.addr.dc1.consul')] });
      return [{ spoofed }, wrongId, wrongQuestion, loop, Buffer.from('garbage'), good];
    };
    const r = resolver();
    try {
      const instances = await r.resolve('web');
      assert.deepEqual(instances.map((i) => `${i.address}:${i.port}`), ['127.0.0.1:8080']);
    } finally {
      await r.close();
    }
  });

  it('fails with a typed error, not a hang, when every answer is corrupt', async () => {
    server.udpReply = (query) => {
      const truncated = answer(query, { answers: [srv('web.service.consul', 1, 'x.consul')] }).subarray(0, 30);
      const loop = Buffer.from([0, 0, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c, 0, 33, 0, 1]);
      loop.writeUInt16BE(query.id!, 0);
      return [truncated, loop];
    };
    const r = resolver({ attempts: 2, timeoutMs: 300 });
    try {
      const started = Date.now();
      await assert.rejects(r.resolve('web'), (e: unknown) => e instanceof ResolutionFailedError && e.cause instanceof TimeoutError);
      assert.ok(Date.now() - started < 5000);
      assert.equal(server.queries.length, 2);
    } finally {
      await r.close();
    }
  });

  it('retries over TCP when the UDP answer is truncated, and sends EDNS0 with a 4096-byte payload', async () => {
    const many = (q: Question): dnsPacket.Answer[] => Array.from({ length: 10 }, (_, i) => srv(q.name, 9000 + i, `7f0000${(i + 1).toString(16).padStart(2, '0')}.addr.dc1.consul`));
    let edns: number | undefined;
    server.udpReply = (query, q) => {
      const opt = query.additionals?.find((a) => a.type === 'OPT') as { udpPayloadSize?: number } | undefined;
      edns = opt?.udpPayloadSize;
      return [answer(query, { answers: many(q).slice(0, 3), flags: 1 << 9 })]; // TC
    };
    server.tcpReply = (query, q) => [answer(query, { answers: many(q) })];
    const r = resolver();
    try {
      const instances = await r.resolve('web');
      assert.equal(instances.length, 10);
      assert.equal(server.tcpQueries.length, 1);
      assert.equal(edns, 4096);
    } finally {
      await r.close();
    }
  });

  it('asks A/AAAA for targets missing from the additional section, and orders by priority', async () => {
    server.udpReply = (query, q) => {
      if (q.type === 'SRV') {
        return [answer(query, {
          answers: [srv(q.name, 1001, 'late.example.', 0, 5), srv(q.name, 1000, 'host-a.example.', 0, 1), srv(q.name, 1002, 'host-b.example.', 0, 1)],
          additionals: [{ type: 'A', name: 'host-a.example', ttl: 0, data: '10.0.0.1' }],
        })];
      }
      if (q.type === 'A' && q.name === 'host-b.example') return [answer(query, { answers: [{ type: 'A', name: q.name, ttl: 0, data: '10.0.0.2' }] })];
      if (q.type === 'AAAA' && q.name === 'late.example') return [answer(query, { answers: [{ type: 'AAAA', name: q.name, ttl: 0, data: '2001:db8::5' }] })];
      return [answer(query, { rcode: 'NXDOMAIN' })];
    };
    const r = resolver();
    try {
      const instances = await r.resolve('svc', { name: '_svc._tcp.example.com' });
      assert.deepEqual(instances.map((i) => `${i.address}:${i.port}`).slice(2), ['2001:db8::5:1001']);
      assert.deepEqual(instances.slice(0, 2).map((i) => i.port).sort(), [1000, 1002]);
      assert.deepEqual(server.queries.filter((q) => q.type !== 'SRV').map((q) => `${q.type} ${q.name}`).sort(), ['A host-b.example', 'A late.example', 'AAAA host-b.example', 'AAAA late.example']);
    } finally {
      await r.close();
    }
  });

  it('drops records that would make a wrong instance (other names, port 0, bad addresses)', async () => {
    server.udpReply = (query, q) => [answer(query, {
      answers: [srv('other.service.consul', 1, '7f000001.addr.dc1.consul'), srv(q.name, 0, '7f000001.addr.dc1.consul'), srv(q.name, 53, '.'), srv(q.name, 80, 'n1.node.dc1.consul')],
      additionals: [{ type: 'A', name: 'n1.node.dc1.consul', ttl: 0, data: '10.1.1.1' }, { type: 'A', name: 'other.consul', ttl: 0, data: '10.6.6.6' }],
    })];
    const r = resolver();
    try {
      const instances = await r.resolve('web');
      assert.deepEqual(instances.map((i) => `${i.address}:${i.port}`), ['10.1.1.1:80']);
      assert.equal(instances[0]?.node, 'n1');
    } finally {
      await r.close();
    }
  });

  it('caches NXDOMAIN for the negative TTL and answers within the positive TTL floor from cache', async () => {
    let nx = true;
    server.udpReply = (query, q) => nx ? [answer(query, { rcode: 'NXDOMAIN' })] : [answer(query, { answers: [srv(q.name, 80, '7f000001.addr.dc1.consul', 0)] })];
    const r = resolver({ minTtlMs: 300, negativeTtlMs: 600 });
    try {
      await assert.rejects(r.resolve('web'), NoHealthyInstancesError);
      nx = false;
      await assert.rejects(r.resolve('web'), NoHealthyInstancesError); // from the negative cache
      assert.equal(server.queries.length, 1);
      await new Promise((r) => setTimeout(r, 650));
      assert.equal((await r.resolve('web')).length, 1);
      assert.equal((await r.resolve('web')).length, 1);
      assert.equal(server.queries.length, 2); // TTL 0 → floor 300 ms: the second came from cache
    } finally {
      await r.close();
    }
  });

  it('tries the next server when one does not answer', async () => {
    const silent = createSocket('udp4');
    silent.bind(0, '127.0.0.1');
    await once(silent, 'listening');
    server.udpReply = (query, q) => [answer(query, { answers: [srv(q.name, 80, '7f000001.addr.dc1.consul')] })];
    const transport = new DnsTransport({ servers: [`127.0.0.1:${silent.address().port}`, `127.0.0.1:${server.port}`], timeoutMs: 300 });
    const r = new DnsSrvResolver({ transport });
    try {
      assert.equal((await r.resolve('web')).length, 1);
    } finally {
      await r.close();
      await transport.close();
      silent.close();
    }
  });

  it('a watch re-queries at the TTL floor and publishes only real changes', async () => {
    let port = 80;
    server.udpReply = (query, q) => [answer(query, { answers: [srv(q.name, port, '7f000001.addr.dc1.consul', 0)] })];
    const r = resolver({ minTtlMs: 100 });
    try {
      const watch = r.watch('web');
      let updates = 0;
      watch.on('update', () => updates++);
      await watch.ready({ timeoutMs: 5000 });
      await until('several re-queries', () => server.queries.length >= 5);
      assert.equal(updates, 1);
      assert.equal(watch.current?.info?.ttlMs, 100);
      port = 81;
      await until('change published', () => watch.current?.instances[0]?.port === 81);
      assert.equal(updates, 2);
      const count = server.queries.length;
      await watch.close();
      await new Promise((r) => setTimeout(r, 300));
      assert.ok(server.queries.length <= count + 1);
    } finally {
      await r.close();
    }
  });
});

describe('DnsSrvResolver against a real agent', function () {
  this.timeout(120_000);
  let agent: ConsulAgent;
  let other: Consul;

  before(async () => {
    agent = await startConsulAgent();
    other = new Consul({ host: '127.0.0.1', port: agent.ports.http });
  });
  after(async () => {
    await agent?.stop();
  });

  const register = async (id: string, port: number, extra: Record<string, unknown> = {}): Promise<void> => {
    await other.agent.service.register({ name: 'dnsweb', id, address: `127.0.0.${port - 8999}`, port, check: { name: 'ttl', ttl: '300s', status: 'passing' }, ...extra } as never);
  };

  it('resolves more than 3 instances (EDNS0), by tag, in Consul and RFC 2782 names', async () => {
    for (let i = 1; i <= 6; i++) await register(`dnsweb-${i}`, 9000 + i, { tags: i % 2 ? ['odd'] : ['even'] });
    const r = new DnsSrvResolver({ servers: [`127.0.0.1:${agent.ports.dns}`], minTtlMs: 50 });
    const rfc = new DnsSrvResolver({ servers: [`127.0.0.1:${agent.ports.dns}`], style: 'rfc2782', minTtlMs: 50 });
    try {
      const all = await r.resolve('dnsweb');
      assert.deepEqual(all.map((i) => `${i.address}:${i.port}`).sort(), [1, 2, 3, 4, 5, 6].map((i) => `127.0.0.${i + 1}:${9000 + i}`).sort());
      assert.deepEqual((await r.resolve('dnsweb', { tags: ['odd'] })).map((i) => i.port).sort(), [9001, 9003, 9005]);
      assert.equal((await rfc.resolve('dnsweb', { tags: ['even'] })).length, 3);
      assert.equal((await r.resolve('dnsweb', { datacenter: 'dc1' })).length, 6);
      await assert.rejects(r.resolve('nothing-here'), NoHealthyInstancesError);
    } finally {
      await r.close();
      await rfc.close();
      for (let i = 1; i <= 6; i++) await other.agent.service.deregister(`dnsweb-${i}`);
    }
  });

  it('a watch reflects register, a failing check and deregister', async () => {
    const r = new DnsSrvResolver({ servers: [`127.0.0.1:${agent.ports.dns}`], minTtlMs: 100 });
    let watch: ServiceWatch | undefined;
    try {
      watch = r.watch('dnsweb');
      const first = await watch.ready({ timeoutMs: 10_000 });
      assert.equal(first.instances.length, 0); // NXDOMAIN: zero instances
      await register('dnsweb-1', 9001);
      await register('dnsweb-2', 9002);
      await until('two instances', () => watch?.current?.instances.length === 2);
      await other.agent.check.fail('service:dnsweb-1');
      await until('critical one gone', () => watch?.current?.instances.map((i) => i.port).join() === '9002');
      await other.agent.service.deregister('dnsweb-2');
      await other.agent.service.deregister('dnsweb-1');
      await until('empty', () => watch?.current?.instances.length === 0);
      assert.equal(watch.current?.stale, false);
    } finally {
      await r.close();
    }
  });

  it('keeps the last snapshot marked stale while the agent is down', async () => {
    await register('dnsweb-9', 9009);
    const r = new DnsSrvResolver({ servers: [`127.0.0.1:${agent.ports.dns}`], minTtlMs: 100, timeoutMs: 200, attempts: 1, backoff: { initialMs: 100, maxMs: 300 } });
    try {
      const watch = r.watch('dnsweb');
      const errors: Error[] = [];
      watch.on('error', (e) => errors.push(e));
      await until('instance', () => watch.current?.instances.length === 1);
      await agent.stop();
      await until('stale', () => watch.current?.stale === true);
      assert.equal(watch.current?.instances.length, 1);
      assert.ok(errors[0] instanceof ResolutionFailedError);
      await agent.start();
      await register('dnsweb-9', 9009);
      await until('fresh again', () => watch.current?.stale === false, 30_000);
    } finally {
      await r.close();
    }
  });
});
