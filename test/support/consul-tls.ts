/**
 * Test support: a real Consul dev agent that also serves its HTTP API over
 * HTTPS (and so HTTP/2), with a throw-away CA made by `consul tls ca create`.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { consulBinary, freePort, startConsulAgent, type ConsulAgent } from './consul.js';

/** A dev agent with an HTTPS listener. */
export interface TlsConsulAgent {
  readonly agent: ConsulAgent;
  /** `https://127.0.0.1:<port>` */
  readonly httpsUrl: string;
  /** PEM of the CA that signed the agent's certificate. */
  readonly ca: Buffer;
  stop(): Promise<void>;
}

/** Starts a dev agent with HTTPS on a free loopback port (plain HTTP stays on too, for the harness). */
export async function startTlsConsulAgent(args: string[] = []): Promise<TlsConsulAgent> {
  const { path } = consulBinary();
  const dir = mkdtempSync(join(tmpdir(), 'proxyless-consul-tls-'));
  try {
    execFileSync(path, ['tls', 'ca', 'create'], { cwd: dir, stdio: 'ignore' });
    execFileSync(path, ['tls', 'cert', 'create', '-server', '-dc', 'dc1', '-additional-ipaddress', '127.0.0.1'], { cwd: dir, stdio: 'ignore' });
    const httpsPort = await freePort();
    const file = (name: string): string => JSON.stringify(join(dir, name));
    const agent = await startConsulAgent({
      args: [
        `-https-port=${httpsPort}`,
        `-hcl=tls { defaults { ca_file = ${file('consul-agent-ca.pem')} cert_file = ${file('dc1-server-consul-0.pem')} key_file = ${file('dc1-server-consul-0-key.pem')} verify_incoming = false } }`,
        ...args,
      ],
    });
    return {
      agent,
      httpsUrl: `https://127.0.0.1:${httpsPort}`,
      ca: readFileSync(join(dir, 'consul-agent-ca.pem')),
      stop: async () => {
        await agent.stop();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}
