/**
 * Bench helper, called in a build worker (build-process.ts): one load target
 * per worker — that build's client over the given backends (default options:
 * peak EWMA, breakers, ejection, retries), or a raw undici Pool — driven by
 * the same closed loop as the in-process configurations.
 */
import { Pool } from 'undici';
import type { Build } from './builds.js';
import { closedLoop, type Call, type LoadResult } from './closed-loop.js';

let call: Call | undefined;
let closeTarget: (() => Promise<void>) | undefined;

/** `client`: `createClient` of the worker's build over `ports`; `raw`: an undici Pool (this tree's undici) to `ports[0]`. */
export function open(build: Build, args: { kind: 'client' | 'raw'; ports: number[] }): void {
  if (args.kind === 'raw') {
    const pool = new Pool(`http://127.0.0.1:${args.ports[0]!}`);
    call = async () => {
      const { body } = await pool.request({ path: '/', method: 'GET' });
      await body.dump();
    };
    closeTarget = () => pool.close();
    return;
  }
  const resolver = new build.core.StaticResolver({ services: { svc: args.ports.map((port) => ({ address: '127.0.0.1', port })) } });
  const client = build.http.createClient({ service: 'svc', resolver });
  call = async () => {
    const { body } = await client.request({ path: '/', method: 'GET' });
    await body.dump();
  };
  closeTarget = async () => {
    await client.close();
    await resolver.close();
  };
}

export function load(_build: Build, args: { ms: number; max: number; concurrency: number }): Promise<LoadResult> {
  if (call === undefined) throw new Error('open() first');
  return closedLoop(call, args.ms, args.max, args.concurrency);
}

export async function close(): Promise<void> {
  await closeTarget?.();
  call = undefined;
  closeTarget = undefined;
}
