import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';

/** Child processes of `pid`, recursively (Linux /proc). */
async function descendants(pid: number): Promise<number[]> {
  const { readFile } = await import('node:fs/promises');
  try {
    const children = (await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8')).trim().split(/\s+/).filter(Boolean).map(Number);
    const nested = await Promise.all(children.map((c) => descendants(c)));
    return [...children, ...nested.flat()];
  } catch {
    return [];
  }
}

const demoArgs = (registry: string): string[] => ['--conditions=proxyless-source', '--import', 'tsx', 'examples/demo/demo.ts', '--registry', registry];

interface StepFigures {
  answered: number;
  failed: number;
  answeredAfterRetry: number;
  failedAttempts: number;
  rows: number;
}

/** Each step's table: its labelled counts, and the sum of its per-instance rows. */
function tables(out: string): StepFigures[] {
  const lines = out.split('\n');
  const found: StepFigures[] = [];
  lines.forEach((line, i) => {
    const m = /^ {4}(\d+) answered, (\d+) failed, (\d+) answered after a retry, (\d+) failed attempts, ~\d+ answers\/s$/.exec(line);
    if (!m) return;
    let rows = 0;
    for (let j = i + 1; j < lines.length; j++) {
      const row = /^ {4}[a-e] +(\d+) +[\d.]+% +#*$/.exec(lines[j]!);
      if (!row) break;
      rows += Number(row[1]);
    }
    found.push({ answered: Number(m[1]), failed: Number(m[2]), answeredAfterRetry: Number(m[3]), failedAttempts: Number(m[4]), rows });
  });
  return found;
}

/** The figures a demo run prints must be true: no negative latency, each count under the label that says what it counts. */
function checkFigures(out: string): void {
  assert.doesNotMatch(out, /-\d+ ms/, 'a negative latency');
  assert.doesNotMatch(out, /never \(not seen\)/, 'a moment the demo did not see');
  // Both ends of a scale-up latency on one clock: the client cannot get an answer from an instance before its watch reported it.
  for (const name of ['d', 'e']) {
    const m = new RegExp(`^ {3}${name}: began registering → seen by the client's watch (\\d+) ms → first answer (\\d+) ms$`, 'm').exec(out);
    assert.ok(m, `no scale-up figures for ${name}`);
    assert.ok(Number(m[1]) <= Number(m[2]), `${name} answered (${m[2]} ms) before the watch reported it (${m[1]} ms)`);
  }
  const steps = tables(out);
  assert.equal(steps.length, 5, 'one table per traffic step');
  for (const s of steps) {
    assert.equal(s.rows, s.answered, 'per-instance rows add up to the answered count');
    assert.ok(s.answeredAfterRetry <= s.answered, 'answered after a retry ≤ answered');
    // Every request answered after a retry had at least one failed attempt, and so had every failed request.
    assert.ok(s.failedAttempts >= s.answeredAfterRetry + s.failed, `failed attempts ${String(s.failedAttempts)} < ${String(s.answeredAfterRetry)} retried + ${String(s.failed)} failed`);
  }
  const total = /^ {3}requests: (\d+), failed: (\d+) \(the five tables above\)/m.exec(out);
  assert.ok(total, 'summary totals');
  assert.equal(Number(total[1]), steps.reduce((n, s) => n + s.answered + s.failed, 0), 'summary requests = the steps\' answered + failed');
  assert.equal(Number(total[2]), steps.reduce((n, s) => n + s.failed, 0), 'summary failed = the steps\' failed');
  // The failover step's narrative and summary say the table's figures under the same labels.
  const failover = steps[2]!;
  assert.match(out, new RegExp(`attempts that failed in this step \\(b's connections reset or refused\\): ${String(failover.failedAttempts)};`));
  assert.match(out, new RegExp(`requests answered after a retry on another instance: ${String(failover.answeredAfterRetry)}; requests failed: ${String(failover.failed)}\\n`));
  assert.match(out, new RegExp(`failover step \\(SIGKILL\\): +\\d+ failed; ${String(failover.failedAttempts)} failed attempts, ${String(failover.answeredAfterRetry)} requests answered after a retry;`));
}

/** The screen a terminal shows after `raw`: lines, with the demo's cursor-up (`ESC[nA`) and erase-below (`ESC[J`) applied. */
function screen(raw: string): string[] {
  const lines: string[] = [''];
  let row = 0;
  let col = 0;
  // eslint-disable-next-line no-control-regex -- terminal escape sequences are what this reads
  const text = raw.replace(/\x1b\[[0-9;]*m/g, ''); // colours
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (ch === '\x1b') {
      // eslint-disable-next-line no-control-regex -- terminal escape sequences are what this reads
      const m = /^\x1b\[(\d*)([A-Za-z])/.exec(text.slice(i, i + 12));
      assert.ok(m, `unknown escape sequence ${JSON.stringify(text.slice(i, i + 12))}`);
      if (m[2] === 'A') row = Math.max(0, row - Number(m[1] || 1));
      else if (m[2] === 'J') {
        lines.length = row + 1;
        lines[row] = lines[row]!.slice(0, col);
      } else assert.fail(`unexpected escape sequence ${m[0]}`);
      i += m[0].length - 1;
    } else if (ch === '\r') col = 0;
    else if (ch === '\n') {
      row++;
      col = 0;
      if (row === lines.length) lines.push('');
    } else {
      const line = lines[row]!;
      lines[row] = line.slice(0, col).padEnd(col) + ch + line.slice(col + 1);
      col++;
    }
  }
  return lines;
}

describe('npm run demo', function () {
  this.timeout(180_000);

  for (const registry of ['consul', 'etcd'] as const) {
  it(`--registry ${registry}: runs to completion with zero failed requests in the graceful and failover steps, true figures, and leaves no process behind`, async () => {
    const demo = spawn(process.execPath, demoArgs(registry), {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    demo.stdout.on('data', (c: Buffer) => (out += c.toString()));
    demo.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const seen = new Set<number>();
    const sampler = setInterval(() => {
      void descendants(demo.pid!).then((pids) => pids.forEach((p) => seen.add(p)));
    }, 500);
    const [code] = (await once(demo, 'exit')) as [number | null];
    clearInterval(sampler);
    assert.equal(code, 0, out);
    assert.match(out, /graceful step \(SIGTERM\): +0 failed/);
    assert.match(out, /failover step \(SIGKILL\): +0 failed/);
    assert.match(out, /Summary/);
    checkFigures(out);
    assert.ok(seen.size >= 4, `expected the demo to start an agent and services, saw ${String(seen.size)} processes`);
    const isAlive = (pid: number): boolean => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    // The harness's watchdog shell notices its owner is gone within a second.
    let alive = [...seen].filter(isAlive);
    for (let i = 0; i < 30 && alive.length > 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
      alive = alive.filter(isAlive);
    }
    assert.deepEqual(alive, [], `processes left behind by the demo: ${alive.join(', ')}`);
    assert.match(out, registry === 'etcd' ? /client-side load balancing with etcd/ : /client-side load balancing with Consul/);
  });
  }

  it('in a terminal, redraws each live table cleanly: the instances\' stderr lines are told in the narrative, never over a table', async () => {
    // A real pseudo-terminal (util-linux `script`): the demo's stdout and its instances' stderr share it, as in a user's terminal.
    assert.equal(spawnSync('script', ['--version']).status, 0, 'this test needs `script` (util-linux) for a pseudo-terminal');
    const command = [process.execPath, ...demoArgs('consul')].map((a) => `'${a}'`).join(' ');
    const demo = spawn('script', ['-qfec', command, '/dev/null'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let raw = '';
    demo.stdout.on('data', (c: Buffer) => (raw += c.toString()));
    demo.stderr.on('data', (c: Buffer) => (raw += c.toString()));
    const [code] = (await once(demo, 'exit')) as [number | null];
    const lines = screen(raw);
    const shown = lines.join('\n');
    assert.equal(code, 0, shown);
    assert.ok(raw.includes('\x1b[J'), 'the tables were redrawn live (is stdout a terminal?)');
    checkFigures(shown);
    // The SIGTERM to a makes it print its drain on stderr: that line is in the narrative, after step 4's table.
    assert.match(shown, /^ {3}\[a\] \[proxyless shutdown\] SIGTERM: draining/m);
    assert.doesNotMatch(shown, /^\[proxyless shutdown\]/m, 'an instance\'s stderr line outside the narrative');
    for (const step of ['3.', '4.', '5.', '6.', '7.']) {
      const at = lines.findIndex((l) => l.startsWith(step));
      assert.ok(at >= 0, `step ${step} heading`);
      const block = lines.slice(at + 1);
      assert.match(block[0]!, /^ {4}\d+ answered, /, `step ${step}: the table right under its heading\n${lines.slice(at, at + 8).join('\n')}`);
      const rows = block.slice(1).findIndex((l) => !/^ {4}[a-e] +\d+ +[\d.]+% +#*$/.test(l));
      assert.ok(rows >= 3, `step ${step}: instance rows`);
      const next = block[1 + rows]!;
      assert.match(next, /^($| {3}\S)/, `step ${step}: a stray line under the table: ${JSON.stringify(next)}\n${lines.slice(at, at + 12).join('\n')}`);
    }
    assert.equal(lines.filter((l) => /^ {4}\d+ answered, /.test(l)).length, 5, 'each table once on the screen');
  });
});
