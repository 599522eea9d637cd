/**
 * A loopback address whose connects never complete, as to a host that went
 * away without a reset: a listener in a child process that never accepts
 * (test/fixtures/never-accepts.mjs), its accept queue filled here, so the
 * kernel drops every later SYN.
 *
 * Not part of any package's public API.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export interface UnansweredListener {
  /** Connects to 127.0.0.1 on this port hang until they time out. */
  readonly port: number;
  close(): Promise<void>;
}

export async function startUnansweredListener(): Promise<UnansweredListener> {
  // It ends by itself after 120 s should this process die without closing it.
  const child = spawn(process.execPath, [fileURLToPath(new URL('../fixtures/never-accepts.mjs', import.meta.url)), '120000'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const fillers: Socket[] = [];
  const close = async (): Promise<void> => {
    for (const s of fillers) s.destroy();
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
  };
  try {
    const [line] = (await once(createInterface({ input: child.stdout }), 'line')) as [string];
    const port = Number(line);
    // A backlog of 1 takes two handshakes; fill them, then every connect hangs.
    for (let i = 0; i < 2; i++) {
      const s = connect(port, '127.0.0.1');
      s.on('error', () => undefined);
      fillers.push(s);
      await once(s, 'connect');
    }
    return { port, close };
  } catch (error) {
    await close();
    throw error;
  }
}
