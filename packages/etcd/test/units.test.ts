import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import fc from 'fast-check';
import { isProxylessError } from '@proxyless/core';
import {
  EtcdClient,
  EtcdResolver,
  MalformedValueError,
  confdLayout,
  etcdOptionsFromEnv,
  proxylessLayout,
  resolveEtcdConnection,
  validateInstanceName,
  validatePrefix,
} from '@proxyless/etcd';
import { parseHostPort } from '../src/key-layout.js';
import { parseWatchMessage, prefixRangeEnd, watchCanceledError } from '../src/etcd-client.js';

describe('etcd connection settings', () => {
  it('reads etcdctl conventions: ETCDCTL_ENDPOINTS and ETCDCTL_USER=user:password (the password may hold ":")', () => {
    const options = etcdOptionsFromEnv({ ETCDCTL_ENDPOINTS: 'http://10.0.0.1:2379, 10.0.0.2:2379', ETCDCTL_USER: 'app:pa:ss' });
    assert.deepEqual(options.endpoints, ['http://10.0.0.1:2379', '10.0.0.2:2379']);
    assert.equal(options.username, 'app');
    assert.equal(options.password, 'pa:ss');
    const resolved = resolveEtcdConnection({}, { ETCDCTL_ENDPOINTS: 'http://10.0.0.1:2379,10.0.0.2:2379' });
    assert.deepEqual(resolved.endpoints, ['http://10.0.0.1:2379', 'http://10.0.0.2:2379']);
    assert.equal(resolveEtcdConnection({}, {}).endpoints[0], 'http://127.0.0.1:2379');
  });

  it('makes scheme-less endpoints https when TLS is configured, and explicit options win over the environment', () => {
    const resolved = resolveEtcdConnection({ endpoints: ['10.0.0.9:2379'], tls: { rejectUnauthorized: true } }, { ETCDCTL_ENDPOINTS: 'http://x:1' });
    assert.deepEqual(resolved.endpoints, ['https://10.0.0.9:2379']);
    assert.deepEqual(resolved.tls, { rejectUnauthorized: true });
  });

  it('never keeps or shows the password: not in the resolved settings, the client, or any error', () => {
    const secret = 'hunter2-very-secret';
    const client = new EtcdClient({ endpoints: '127.0.0.1:1', username: 'app', password: secret }, {});
    assert.doesNotMatch(JSON.stringify(client.connection), new RegExp(secret));
    assert.doesNotMatch(inspect(client, { depth: 5, showHidden: true }), new RegExp(secret));
    void client.close();
    for (const bad of [`http://app:${secret}@10.0.0.1:2379`, `https://app:${secret}@host:1/path`]) {
      assert.throws(() => resolveEtcdConnection({ endpoints: bad }, {}), (e: Error) => isProxylessError(e, 'ERR_INVALID_OPTION') && !e.message.includes(secret));
    }
    assert.throws(() => resolveEtcdConnection({ password: secret }, {}), (e: Error) => /needs a username/.test(e.message) && !e.message.includes(secret));
  });

  it('rejects bad endpoints and limits with typed errors naming the option', () => {
    assert.throws(() => resolveEtcdConnection({ endpoints: [] }, {}), (e) => isProxylessError(e, 'ERR_INVALID_OPTION'));
    assert.throws(() => resolveEtcdConnection({ endpoints: 'ftp://x:1' }, {}), /endpoints\[0\]/);
    assert.throws(() => resolveEtcdConnection({ endpoints: 'http://x:1/v3' }, {}), /path/);
    assert.throws(() => resolveEtcdConnection({ timeoutMs: 0 }, {}), /timeoutMs/);
  });

  it('rejects a watchIdleMs a Node timer cannot wait (it would fire at once), naming it', () => {
    assert.throws(() => new EtcdResolver({ endpoints: '127.0.0.1:1', env: {}, watchIdleMs: 3e9 }), (e: unknown) => isProxylessError(e, 'ERR_INVALID_OPTION') && /watchIdleMs/.test(e.message));
    assert.throws(() => new EtcdResolver({ endpoints: '127.0.0.1:1', env: {}, watchIdleMs: 99 }), /watchIdleMs/);
  });
});

describe('etcd key layouts', () => {
  it('validates prefixes and instance names so that nothing escapes the prefix', () => {
    assert.equal(validatePrefix('/a/b/'), '/a/b');
    for (const bad of ['a', '/a//b', '/a/../b', '/a/./b', '/a b', '/a\n', '']) assert.throws(() => validatePrefix(bad), (e) => isProxylessError(e, 'ERR_INVALID_OPTION'), bad);
    for (const bad of ['', '.', '..', 'a/b', '../x', 'a b', 'a\n', 'x'.repeat(129), '-a']) assert.throws(() => validateInstanceName(bad), (e) => isProxylessError(e, 'ERR_INVALID_OPTION'), bad);
    assert.equal(validateInstanceName('web-1.zone:a@b_c'), 'web-1.zone:a@b_c');
    const layout = proxylessLayout({ prefix: '/p' });
    assert.equal(layout.servicePrefix('web'), '/p/web/');
    assert.equal(layout.instanceKey('web', 'i-1'), '/p/web/i-1');
    assert.throws(() => layout.servicePrefix('../x'), (e) => isProxylessError(e, 'ERR_INVALID_SERVICE_NAME'));
    assert.throws(() => layout.instanceKey('web', '../../x'), (e) => isProxylessError(e, 'ERR_INVALID_OPTION'));
    assert.equal(confdLayout().servicePrefix('app'), '/app/servers/');
    assert.equal(confdLayout({ prefix: '/services/{service}' }).servicePrefix('api'), '/services/api/');
    assert.throws(() => confdLayout({ prefix: 'no-slash/{service}' }), (e) => isProxylessError(e, 'ERR_INVALID_OPTION'));
  });

  it('parses host:port and [v6]:port, and nothing else', () => {
    assert.deepEqual(parseHostPort('10.0.0.1:80'), { address: '10.0.0.1', port: 80 });
    assert.deepEqual(parseHostPort('[::1]:8080'), { address: '::1', port: 8080 });
    assert.deepEqual(parseHostPort('host.example:443'), { address: 'host.example', port: 443 });
    for (const bad of ['10.0.0.1', ':80', '::1:80', 'a:b', '10.0.0.1:80:1', 'a b:1', '']) assert.equal(parseHostPort(bad), undefined, bad);
    assert.throws(() => confdLayout().parse('app', 'a1', Buffer.from('10.0.0.1:0')), MalformedValueError);
    assert.throws(() => confdLayout().parse('app', 'a1', Buffer.from('0.0.0.0:80')), MalformedValueError);
  });

  it('any value either becomes a valid instance of the service or is refused with MalformedValueError (property)', () => {
    const layouts = [proxylessLayout(), confdLayout()];
    const valueArb = fc.oneof(
      fc.string(),
      fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b).toString('latin1')),
      fc.jsonValue().map((v) => JSON.stringify(v)),
      fc.record({ address: fc.oneof(fc.ipV4(), fc.ipV6(), fc.domain(), fc.string()), port: fc.oneof(fc.integer(), fc.double(), fc.string()), tags: fc.anything(), meta: fc.anything(), weights: fc.anything(), health: fc.anything(), zone: fc.anything() }, { requiredKeys: [] }).map((v) => JSON.stringify(v)),
      fc.tuple(fc.oneof(fc.ipV4(), fc.domain(), fc.string()), fc.integer({ min: -5, max: 70_000 })).map(([h, p]) => `${h}:${p}`),
    );
    fc.assert(
      fc.property(fc.constantFrom(...layouts), valueArb, (layout, text) => {
        try {
          const instance = layout.parse('svc', 'name', Buffer.from(text, 'latin1'));
          assert.equal(instance.service, 'svc');
          assert.ok(Number.isInteger(instance.port) && instance.port >= 1 && instance.port <= 65535);
          assert.ok(Object.isFrozen(instance));
        } catch (error) {
          assert.ok(error instanceof MalformedValueError, String(error));
        }
      }),
      { numRuns: 2000 },
    );
  });
});

describe('etcd gateway decoding', () => {
  it('computes the range end of a prefix', () => {
    assert.deepEqual(prefixRangeEnd(Buffer.from('/a/')), Buffer.from('/a0'));
    assert.deepEqual(prefixRangeEnd(Buffer.from([0x61, 0xff])), Buffer.from([0x62]));
    assert.deepEqual(prefixRangeEnd(Buffer.from([0xff])), Buffer.from([0]));
  });

  it('decodes watch messages, and turns hostile ones into typed errors', () => {
    const m = parseWatchMessage({ result: { header: { revision: '12', cluster_id: '99' }, events: [{ type: 'DELETE', kv: { key: Buffer.from('/k').toString('base64'), mod_revision: '12' } }, { kv: { key: 'L2w=', value: 'eA==' } }] } });
    assert.equal(m.header.revision, 12);
    assert.equal(m.events[0]?.type, 'delete');
    assert.equal(m.events[1]?.type, 'put');
    assert.equal(m.events[1]?.kv.value.toString(), 'x');
    assert.equal(parseWatchMessage({ result: { canceled: true, compact_revision: '5' } }).compactRevision, 5);
    for (const bad of [null, 1, {}, { result: { events: 'x' } }, { result: { header: { revision: 'NaN' } } }, { result: { events: [{ kv: 7 }] } }]) {
      assert.throws(() => parseWatchMessage(bad), (e) => isProxylessError(e, 'ERR_BAD_RESPONSE'));
    }
    assert.throws(() => parseWatchMessage({ error: { grpc_code: 14, message: 'no leader' } }), (e) => isProxylessError(e, 'ERR_ETCD_API'));
  });

  it('reads the gRPC status back from a watch\'s cancel reason (etcd refuses a watch with a reason string only)', () => {
    assert.equal(watchCanceledError('rpc error: code = Unauthenticated desc = etcdserver: invalid auth token').grpcCode, 16);
    assert.equal(watchCanceledError('etcdserver: permission denied').grpcCode, 7);
    const unknown = watchCanceledError('');
    assert.equal(unknown.grpcCode, undefined);
    assert.ok(isProxylessError(unknown, 'ERR_ETCD_API'));
  });
});
