import assert from 'node:assert/strict';
import type { ConfigWarning } from '@proxyless/core';
import { checkHeartbeat } from '@proxyless/core/internal';
import { Registrar } from '@proxyless/registrar';

describe('registrar: configuration doctor', () => {
  it('warns about a heartbeat interval too close to the TTL (registrar event and logger)', async () => {
    assert.deepEqual(checkHeartbeat({ ttlMs: 10_000, heartbeatIntervalMs: 5_000, requestTimeoutMs: 1_000 }).map((w) => w.code), ['HEARTBEAT_NEAR_TTL']);
    assert.deepEqual(checkHeartbeat({ ttlMs: 10_000, heartbeatIntervalMs: 3_000, requestTimeoutMs: 7_500 }).map((w) => w.code), ['HEARTBEAT_TIMEOUT_NEAR_TTL']);
    const lines: string[] = [];
    const registrar = new Registrar({ name: 'svc', port: 1, address: '127.0.0.1', ttlMs: 10_000, heartbeatIntervalMs: 5_000, logger: { warn: (l) => lines.push(l), info: () => undefined } });
    const events: ConfigWarning[] = [];
    registrar.on('configWarning', (w) => events.push(w));
    await new Promise((r) => setImmediate(r));
    await registrar.close();
    assert.deepEqual(events.map((w) => w.code), ['HEARTBEAT_NEAR_TTL']);
    assert.match(lines.join('\n'), /heartbeatIntervalMs ≤ ttlMs \/ 3 \(3333 ms/);
    const quiet: string[] = [];
    const fine = new Registrar({ name: 'svc', port: 1, address: '127.0.0.1', logger: { warn: (l) => quiet.push(l), info: () => undefined } });
    await new Promise((r) => setImmediate(r));
    await fine.close();
    assert.deepEqual(quiet, []);
  });

});
