import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { startConsulAgent, freePort, type ConsulAgent } from '../../../test/support/consul.js';
import { consulGet, packageRoot, passingIds, repoRoot, startWatchingClient, waitFor, wrap, type ReportingChild } from './helpers.js';

const cliPath = `${packageRoot}/src/cli.ts`;

function runCli(args: string[], env: NodeJS.ProcessEnv = {}): ReportingChild {
  const child = spawn(process.execPath, ['--conditions=proxyless-source', '--import', 'tsx', cliPath, ...args], {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return wrap(child);
}

function lastLine(text: string): string {
  return text.trimEnd().split('\n').at(-1) ?? '';
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

describe('proxyless-register CLI', function () {
  this.timeout(120_000);
  let agent: ConsulAgent;
  const children: ReportingChild[] = [];

  before(async function () {
    agent = await startConsulAgent();
  });
  after(async function () {
    for (const c of children) if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill('SIGKILL');
    await agent?.stop();
  });

  it('rejects bad usage with exit code 2 and a clear message', async function () {
    const cases: [string[], RegExp][] = [
      [['--port', '8080', '--', 'true'], /--name is required/],
      [['--name', 'web', '--port', '99999', '--', 'true'], /--port must be a number between 1 and 65535/],
      [['--name', 'web', '--port', '8080'], /a command to run is required/],
      [['--name', 'web', '--port', '8080', '--ttl', 'soon', '--', 'true'], /--ttl.*not a duration/],
      [['--name', 'web', '--port', '8080', '--bogus', '--', 'true'], /Unknown option '--bogus'/],
      [['--name', 'web', '--port', '8080', '--deregister-after', '30s', '--address', '10.0.0.1', '--', 'true'], /deregisterCriticalServiceAfterMs/],
      [['--name', 'web', '--port', '8080', '--address', '0.0.0.0', '--', 'true'], /wildcard address/],
    ];
    await Promise.all(
      cases.map(async ([args, expected]) => {
        const cli = runCli(args);
        const exit = await cli.exited;
        assert.equal(exit.code, 2, `${args.join(' ')}: ${cli.stderr()}`);
        assert.match(cli.stderr(), expected);
        assert.match(cli.stderr(), /Usage: proxyless-register/);
      }),
    );
  });

  it('wraps python3 -m http.server: registers once it answers, drains and deregisters before passing SIGTERM on', async function () {
    const port = await freePort();
    const t0 = Date.now();
    const cli = runCli(
      [
        '--name', 'pyweb', '--port', String(port), '--address', '127.0.0.1',
        '--ttl', '3s', '--check-http', '/', '--drain-delay', '500ms', '--deadline', '8s',
        '--tag', 'python', '--meta', 'runtime=python3',
        '--', 'python3', '-m', 'http.server', String(port), '--bind', '127.0.0.1',
      ],
      { CONSUL_HTTP_ADDR: agent.httpAddr },
    );
    children.push(cli);
    const id = await waitFor(
      'pyweb passing',
      async () => (await passingIds(agent.httpUrl, 'pyweb'))[0],
      { timeoutMs: 30_000, intervalMs: 10 },
    );
    console.log(`      [measure] CLI spawn → passing: ${Date.now() - t0} ms`);
    const { body: service } = await consulGet(agent.httpUrl, `/v1/agent/service/${id}`);
    assert.equal(service.Port, port);
    assert.deepEqual(service.Tags, ['python']);
    assert.deepEqual(service.Meta, { runtime: 'python3' });

    const client = startWatchingClient(agent.httpUrl, 'pyweb', 2, 0);
    try {
      await waitFor('a stream of requests', () => client.requests.filter((r) => r.status === 200).length >= 30, { timeoutMs: 20_000 });
      // Watch, from outside, when the registration disappears and when the port stops accepting.
      let goneAt: number | undefined;
      let refusedAt: number | undefined;
      let registeredWhenRefused: boolean | undefined;
      let watching = true;
      const look = async (): Promise<void> => {
        if (goneAt === undefined && (await consulGet(agent.httpUrl, `/v1/agent/service/${id}`)).status === 404) goneAt = Date.now();
        if (refusedAt === undefined && !(await accepts(port))) {
          refusedAt = Date.now();
          // The moment the command refuses connections, the registration must already be gone.
          registeredWhenRefused = (await consulGet(agent.httpUrl, `/v1/agent/service/${id}`)).status !== 404;
          // Gone by now, and the first check of this round ran before the refusal: it went at the latest then.
          if (!registeredWhenRefused) goneAt ??= refusedAt;
        }
      };
      const observer = (async () => {
        while (watching) {
          await look();
          await new Promise((r) => setTimeout(r, 10));
        }
        // One last look: under load the whole shutdown can fit in one of the pauses above.
        await look();
      })();
      const sigtermAt = Date.now();
      cli.child.kill('SIGTERM');
      const exit = await cli.exited;
      await waitFor('python gone', async () => !(await accepts(port)));
      watching = false;
      await observer;
      // The watching client's blocking query may still be on its way back on a loaded machine.
      await waitFor('the watching client sees the instance leave', () => !client.sees(id), { timeoutMs: 10_000 }).catch(() => undefined);
      await client.stop();

      const leftAt = client.leftAt(id, sigtermAt);
      assert.ok(leftAt !== undefined, `no change without ${id} after SIGTERM at ${sigtermAt}: ${JSON.stringify(client.changes)}; CLI:\n${cli.stderr()}`);
      assert.ok(goneAt !== undefined && refusedAt !== undefined);
      assert.ok(leftAt < goneAt, 'out of the passing view before deregistration');
      assert.equal(registeredWhenRefused, false, 'still registered when the command stopped accepting');
      assert.ok(goneAt <= refusedAt, `deregistered (+${goneAt - sigtermAt}) after the command stopped accepting (+${refusedAt - sigtermAt})`);
      // (When the observer first saw it gone is no bound on when it went: under load that look can
      // come after the CLI's exit. What is certain: nothing is left once the CLI has exited.)
      assert.equal((await consulGet(agent.httpUrl, `/v1/agent/service/${id}`)).status, 404, 'still registered after the CLI exited');
      const failed = client.requests.filter((r) => r.status !== 200);
      assert.deepEqual(failed, [], JSON.stringify(failed.slice(0, 5)));
      // python3's http.server dies of the SIGTERM it was passed: 128 + 15.
      assert.equal(exit.code, 143, cli.stderr());
      // The last line states the code the process really ends with (the command's), not the drain's.
      assert.match(lastLine(cli.stderr()), /exiting with code 143, the command's \(killed by SIGTERM\)/);
      assert.doesNotMatch(cli.stderr(), /exit code 0/);
      assert.ok(exit.t - sigtermAt < 8000);
      assert.match(cli.stderr(), /passing SIGTERM to the command/);
      console.log(
        `      [measure] CLI SIGTERM → out of client view: ${leftAt - sigtermAt} ms, → deregistered: ${goneAt - sigtermAt} ms, ` +
          `→ command stops accepting: ${refusedAt - sigtermAt} ms, → exit: ${exit.t - sigtermAt} ms (${client.requests.length} requests, 0 failed)`,
      );
    } finally {
      await client.stop();
    }
  });

  it('reports critical while the command does not answer, and deregisters and exits with its code when it ends', async function () {
    const port = await freePort();
    // The command answers for a while, stops answering (server killed), then exits 7.
    const script = `python3 -m http.server ${port} --bind 127.0.0.1 >/dev/null 2>&1 & pid=$!; ` +
      `while [ ! -e "$STOP_FILE" ]; do sleep 0.05; done; kill -9 $pid; wait $pid; ` +
      `while [ ! -e "$EXIT_FILE" ]; do sleep 0.05; done; exit 7`;
    const dir = (await import('node:fs')).mkdtempSync(`${(await import('node:os')).tmpdir()}/cli-test-`);
    const fs = await import('node:fs');
    const cli = runCli(
      ['--name', 'shweb', '--port', String(port), '--address', '127.0.0.1', '--ttl', '3s', '--check-tcp', '--', 'sh', '-c', script],
      { CONSUL_HTTP_ADDR: agent.httpAddr, STOP_FILE: `${dir}/stop`, EXIT_FILE: `${dir}/exit` },
    );
    children.push(cli);
    const id = await waitFor('shweb passing', async () => (await passingIds(agent.httpUrl, 'shweb'))[0], { timeoutMs: 30_000 });
    fs.writeFileSync(`${dir}/stop`, '');
    // The next probe fails: critical within about one heartbeat interval (1 s).
    await waitFor('critical', async () => {
      const { body } = await consulGet(agent.httpUrl, '/v1/agent/checks');
      return body[`service:${id}`]?.Status === 'critical' && /TCP/.test(body[`service:${id}`]?.Output);
    }, { timeoutMs: 5000 });
    fs.writeFileSync(`${dir}/exit`, '');
    const exit = await cli.exited;
    assert.equal(exit.code, 7, cli.stderr());
    assert.match(lastLine(cli.stderr()), /exiting with code 7, the command's/);
    assert.equal((await consulGet(agent.httpUrl, `/v1/agent/service/${id}`)).status, 404);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('exports PORT to the command and says what it waits for before registering', async function () {
    const port = await freePort();
    // Serves only if PORT arrives: the command has no port of its own; it answers after a second.
    const cli = runCli(
      ['--name', 'portweb', '--port', String(port), '--address', '127.0.0.1', '--ttl', '3s', '--check-http', '/',
        '--', 'sh', '-c', 'sleep 1; exec python3 -m http.server "$PORT" --bind 127.0.0.1'],
      { CONSUL_HTTP_ADDR: agent.httpAddr },
    );
    children.push(cli);
    const id = await waitFor('portweb passing', async () => (await passingIds(agent.httpUrl, 'portweb'))[0], { timeoutMs: 30_000 });
    assert.equal((await consulGet(agent.httpUrl, `/v1/agent/service/${id}`)).body.Port, port);
    const err = cli.stderr();
    assert.match(err, new RegExp(`PORT=${port}\\); waiting for GET http://127\\.0\\.0\\.1:${port}/ to answer 2xx before registering portweb`));
    assert.match(err, new RegExp(`registering with the Consul agent at http://${agent.httpAddr.replace(/\./g, '\\.')}`));
    cli.child.kill('SIGTERM');
    const exit = await cli.exited;
    assert.equal(exit.code, 143, err);
  });

  it('with no agent reachable: one line naming the address and CONSUL_HTTP_ADDR, the command keeps serving, SIGTERM still ends it', async function () {
    const port = await freePort();
    const deadAgent = `127.0.0.1:${await freePort()}`; // nothing listens there
    const cli = runCli(
      ['--name', 'lonely', '--port', String(port), '--address', '127.0.0.1', '--ttl', '3s',
        '--', 'python3', '-m', 'http.server', String(port), '--bind', '127.0.0.1'],
      { CONSUL_HTTP_ADDR: deadAgent },
    );
    children.push(cli);
    await waitFor('the unreachable-agent line', () => /Set CONSUL_HTTP_ADDR/.test(cli.stderr()), { timeoutMs: 30_000 });
    // Several retries happen in these 3 s (backoff from 250 ms); still one line.
    await new Promise((r) => setTimeout(r, 3000));
    const lines = cli.stderr().split('\n').filter((l) => l.includes('CONSUL_HTTP_ADDR'));
    assert.equal(lines.length, 1, cli.stderr());
    assert.match(lines[0]!, new RegExp(`Consul at http://${deadAgent.replace(/\./g, '\\.')} is unreachable: ECONNREFUSED`));
    assert.match(lines[0]!, /retrying until it answers/);
    // The CLI's own words: its flag and variable, not the library's options.
    assert.match(lines[0]!, /Set CONSUL_HTTP_ADDR \(or --consul\) to its address/);
    assert.doesNotMatch(lines[0]!, /option|start\(|timeoutMs/);
    assert.ok(await accepts(port), 'the command serves while the agent is away');
    cli.child.kill('SIGTERM');
    const exit = await cli.exited;
    assert.equal(exit.code, 143, cli.stderr());
    assert.match(lastLine(cli.stderr()), /exiting with code 143/);
    // Never registered: no claim about it being passing, no failed deregistration.
    assert.doesNotMatch(cli.stderr(), /still passing|passing set|deregister failed|a step failed/);
    assert.match(cli.stderr(), /was never registered \(the Consul agent at .* has not been reached\): nothing to take out of rotation/);
  });

  it('--registry etcd with no etcd reachable: the line names ETCDCTL_ENDPOINTS and --etcd, not library options', async function () {
    const port = await freePort();
    const deadEtcd = `http://127.0.0.1:${await freePort()}`; // nothing listens there
    const cli = runCli(
      ['--name', 'lonelyetcd', '--port', String(port), '--address', '127.0.0.1', '--ttl', '3s', '--registry', 'etcd', '--etcd', deadEtcd,
        '--', 'python3', '-m', 'http.server', String(port), '--bind', '127.0.0.1'],
      { ETCDCTL_ENDPOINTS: '' },
    );
    children.push(cli);
    await waitFor('the unreachable-etcd line', () => /ETCDCTL_ENDPOINTS/.test(cli.stderr()), { timeoutMs: 30_000 });
    const lines = cli.stderr().split('\n').filter((l) => l.includes('ETCDCTL_ENDPOINTS'));
    assert.equal(lines.length, 1, cli.stderr());
    // Refused connections end as "did not answer within" or "unreachable" depending on timing; both name the flag.
    assert.match(lines[0]!, new RegExp(`etcd at ${deadEtcd.replace(/\./g, '\\.')}.*ETCDCTL_ENDPOINTS \\(or --etcd\\)`));
    assert.doesNotMatch(lines[0]!, /option|start\(|timeoutMs/);
    cli.child.kill('SIGTERM');
    assert.equal((await cli.exited).code, 143, cli.stderr());
    assert.doesNotMatch(cli.stderr(), /still passing/);
  });

  it('exits 127 for a command that cannot be found and 126 for one that cannot be executed, with one line and no stack', async function () {
    const fs = await import('node:fs');
    const dir = fs.mkdtempSync(`${(await import('node:os')).tmpdir()}/cli-exec-`);
    const notExecutable = `${dir}/serve.sh`;
    fs.writeFileSync(notExecutable, '#!/bin/sh\nexec python3 -m http.server\n', { mode: 0o644 });
    const cases: [string[], number, RegExp][] = [
      [['pyhton3', '-m', 'http.server'], 127, /\[proxyless-register\] pyhton3: command not found \(not a file, and not in PATH\); nothing registered; exiting with code 127$/],
      [['./no-such-script.sh'], 127, /no-such-script\.sh: command not found/],
      [[notExecutable], 126, /serve\.sh: cannot execute \(EACCES: not executable; chmod \+x it/],
      [[dir], 126, /cannot execute/],
    ];
    try {
      await Promise.all(cases.map(async ([command, code, line]) => {
        const cli = runCli(['--name', 'typo', '--port', String(await freePort()), '--address', '127.0.0.1', '--', ...command], { CONSUL_HTTP_ADDR: agent.httpAddr });
        children.push(cli);
        const exit = await cli.exited;
        const err = cli.stderr().trimEnd();
        assert.equal(exit.code, code, err);
        assert.equal(err.split('\n').length, 1, err);
        assert.match(err, line);
        assert.doesNotMatch(err, /\n\s+at |fatal/);
      }));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('--check-http answered 404 forever: says once what it gets and backs off instead of probing 5 times a second', async function () {
    const port = await freePort();
    const cli = runCli(
      ['--name', 'wrongpath', '--port', String(port), '--address', '127.0.0.1', '--check-http', '/health',
        '--', 'python3', '-m', 'http.server', String(port), '--bind', '127.0.0.1'],
      { CONSUL_HTTP_ADDR: agent.httpAddr },
    );
    children.push(cli);
    await waitFor('the first 404', () => /code 404/.test(cli.stderr()), { timeoutMs: 30_000 });
    await new Promise((r) => setTimeout(r, 8000));
    const err = cli.stderr();
    // python3 logs each request on the stderr we share; at 200 ms per probe 8 s would be ~40.
    const probes = err.split('\n').filter((l) => /"GET \/health HTTP/.test(l)).length;
    assert.ok(probes >= 2 && probes <= 16, `${probes} probes in about 8 s:\n${err}`);
    const said = err.split('\n').filter((l) => l.includes('answers 404'));
    assert.equal(said.length, 1, err);
    assert.match(said[0]!, new RegExp(`GET http://127\\.0\\.0\\.1:${port}/health answers 404 .*not 2xx: is --check-http the right path\\? Not registering`));
    assert.deepEqual(await passingIds(agent.httpUrl, 'wrongpath'), []);
    cli.child.kill('SIGTERM');
    assert.equal((await cli.exited).code, 143, err);
  });
});
