#!/usr/bin/env node
/**
 * `proxyless-register`: an entrypoint that registers any process in Consul.
 * See {@link usage} and the package README.
 *
 * Runs correctly as PID 1: a process with PID 1 gets no default signal
 * dispositions from the kernel, so every signal that matters has an explicit
 * handler here. The child runs in its own process group so that a terminal's
 * Ctrl-C reaches only us, and the child keeps serving while we drain.
 * @internal
 * @module
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { constants } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { backoffDelay, isProxylessError, type RegistryFactory } from '@proxyless/core';
import { parseCliArgs, usage, UsageError, type CliConfig } from './cli-args.js';
import type { HealthReport } from './health.js';
import { Registrar } from './registrar.js';
import { consulRegistry } from './registry-consul.js';
import { ShutdownCoordinator } from './shutdown.js';

const log = (message: string): void => {
  process.stderr.write(`[proxyless-register] ${message}\n`);
};

// The registrar's hints name library options; here the person typed flags and
// variables, so those are the words to give back. Anchored on the exact phrases
// (test/cli.test.ts pins the result), not on a general rewrite.
const cliWords: readonly [RegExp, string][] = [
  [/ \(or consulRegistry\(\{ address \}\)\)/g, ' (or --consul)'],
  [/ \(or the endpoints option\)/g, ' (or --etcd)'],
  [/ \(or consulRegistry\(\{ token \}\)\)/g, ''],
  [/ or the username\/password options/g, ''],
  [/ \(or the tls\.\w+(?: and tls\.\w+)? options?\)/g, ''],
  [/ \(start\(\{ timeoutMs \}\) gives up instead\)/g, ' (the command keeps running meanwhile; SIGTERM ends both)'],
  // Variables named without their flag (e.g. "is ETCDCTL_ENDPOINTS pointing at something else?").
  [/\bCONSUL_HTTP_ADDR\b(?! \(or --consul\))/g, 'CONSUL_HTTP_ADDR (or --consul)'],
  [/\bETCDCTL_ENDPOINTS\b(?! \(or --etcd\))/g, 'ETCDCTL_ENDPOINTS (or --etcd)'],
];
const logCli = (message: string): void => log(cliWords.reduce((text, [pattern, words]) => text.replace(pattern, words), message));

/** A command that could not start: `spawn`'s error code, and the shell's exit code for it (POSIX: 127 not found, 126 not executable). */
function startFailure(command: string, error: Error): { code: number; line: string } {
  const errno = (error as NodeJS.ErrnoException).code;
  if (errno === 'ENOENT') return { code: 127, line: `${command}: command not found (not a file, and not in PATH)` };
  if (errno === 'EACCES' || errno === 'EISDIR' || errno === 'ENOEXEC' || errno === 'EPERM') {
    return { code: 126, line: `${command}: cannot execute (${errno}: ${errno === 'EACCES' || errno === 'EPERM' ? 'not executable; chmod +x it, or is it a directory?' : 'not a program'})` };
  }
  return { code: 126, line: `${command}: cannot start (${errno ?? error.message})` };
}

function signalNumber(signal: NodeJS.Signals | null): number {
  return signal ? ((constants.signals as Record<string, number | undefined>)[signal] ?? 0) : 0;
}

function childExitCode(child: ChildProcess): number {
  if (child.exitCode !== null) return child.exitCode;
  return 128 + signalNumber(child.signalCode);
}

function tcpProbe(host: string, port: number, timeoutMs: number): Promise<Exclude<HealthReport, string>> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (report: Exclude<HealthReport, string>): void => {
      socket.destroy();
      resolve(report);
    };
    socket.setTimeout(timeoutMs, () => done({ status: 'critical', output: `TCP ${host}:${port}: no answer in ${timeoutMs} ms` }));
    socket.once('connect', () => done({ status: 'passing', output: `TCP ${host}:${port}: connected` }));
    socket.once('error', (error) => done({ status: 'critical', output: `TCP ${host}:${port}: ${error.message}` }));
  });
}

/** A probe's verdict, plus the HTTP status when a server answered (the command is up, the path may be wrong). */
interface ProbeResult {
  readonly report: Exclude<HealthReport, string>;
  readonly answered?: string;
}

async function httpProbe(url: string, timeoutMs: number): Promise<ProbeResult> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), redirect: 'manual' });
    const body = (await res.text()).slice(0, 512);
    const answered = `${res.status}${res.statusText ? ` ${res.statusText}` : ''}`;
    const output = `HTTP GET ${url}: ${answered}\n${body}`;
    // Consul's own HTTP check rules.
    if (res.status >= 200 && res.status < 300) return { report: { status: 'passing', output }, answered };
    if (res.status === 429) return { report: { status: 'warning', output }, answered };
    return { report: { status: 'critical', output }, answered };
  } catch (error) {
    return { report: { status: 'critical', output: `HTTP GET ${url}: ${(error as Error).message}` } };
  }
}

async function main(argv: readonly string[]): Promise<number> {
  let config: CliConfig;
  try {
    config = parseCliArgs(argv);
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`proxyless-register: ${error.message}\n\n${usage}\n`);
      return 2;
    }
    throw error;
  }
  if (config.help) {
    process.stdout.write(`${usage}\n`);
    return 0;
  }
  const port = config.registrar.port;
  const probeOnce = async (): Promise<ProbeResult> =>
    config.probe.kind === 'http'
      ? httpProbe(config.probe.url, config.checkTimeoutMs)
      : { report: await tcpProbe(config.checkHost, port, config.checkTimeoutMs) };
  const probe = async (): Promise<HealthReport> => (await probeOnce()).report;

  let registry: RegistryFactory | undefined;
  if (config.registry === 'etcd') {
    // Loaded only when asked for: Consul-only users need not install it.
    let etcd: typeof import('@proxyless/etcd');
    try {
      etcd = await import('@proxyless/etcd');
    } catch (error) {
      process.stderr.write(`proxyless-register: --registry etcd needs the @proxyless/etcd package (${(error as Error).message})\n`);
      return 2;
    }
    try {
      registry = etcd.etcdRegistry(config.etcdEndpoints !== undefined ? { endpoints: config.etcdEndpoints } : {});
    } catch (error) {
      process.stderr.write(`proxyless-register: ${(error as Error).message}\n\n${usage}\n`);
      return 2;
    }
  }
  let registrar: Registrar;
  try {
    // The registrar says, once per outage, what is wrong with the registry and what to set.
    registry ??= consulRegistry(config.consul);
    registrar = new Registrar({ ...config.registrar, registry, health: probe, logger: { warn: logCli, info: logCli } });
  } catch (error) {
    if (isProxylessError(error, 'ERR_INVALID_OPTION') || isProxylessError(error, 'ERR_INVALID_SERVICE_NAME')) {
      process.stderr.write(`proxyless-register: ${error.message}\n\n${usage}\n`);
      return 2;
    }
    throw error;
  }
  const [command, ...args] = config.command as [string, ...string[]];
  // PORT: the convention most servers read their port from, so `--port` alone configures both sides.
  const child = spawn(command, args, { stdio: 'inherit', detached: true, env: { ...process.env, PORT: String(port) } });
  // Not events.once: it rejects on 'error', which is the answer here, not a failure of ours.
  const startError = await new Promise<Error | undefined>((resolve) => {
    child.once('spawn', () => resolve(undefined));
    child.once('error', resolve);
  });
  if (startError) {
    await registrar.close();
    const { code, line } = startFailure(command, startError);
    log(`${line}; nothing registered; exiting with code ${code}`);
    return code;
  }
  const exited = new Promise<number>((resolve) => child.once('exit', () => resolve(childExitCode(child))));
  // A CLI killed hard must not leave a detached child behind.
  process.once('exit', () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });

  let shuttingDown = false;
  const coordinator = new ShutdownCoordinator({
    registrars: [registrar],
    deadlineMs: config.deadlineMs,
    propagationTimeoutMs: config.propagationTimeoutMs,
    drainDelayMs: config.drainDelayMs,
    reserveMs: Math.min(3000, config.deadlineMs / 3),
    exit: false,
    handleUncaughtExceptions: false,
    log,
  });
  const shutdown = async (signal: NodeJS.Signals): Promise<number> => {
    coordinator.addHook(async (deadline) => {
      log(`passing ${signal} to the command`);
      child.kill(signal);
      const aborted = new Promise<void>((resolve) => deadline.addEventListener('abort', () => resolve(), { once: true }));
      await Promise.race([exited, aborted]);
    });
    await coordinator.shutdown(signal);
    if (child.exitCode === null && child.signalCode === null) {
      log('command still running at the deadline: SIGKILL');
      child.kill('SIGKILL');
    }
    const code = await exited;
    log(`exiting with code ${code}, the command's (${describeExit(child)})`);
    return code;
  };

  let result: Promise<number> | undefined;
  // Ends the wait between readiness probes at once on SIGTERM/SIGINT or when the command exits.
  const stopWaiting = new AbortController();
  const onSignal = (signal: NodeJS.Signals): void => {
    if (signal === 'SIGTERM' || signal === 'SIGINT') {
      if (shuttingDown) {
        log(`second ${signal}: passing it on; exiting with code ${128 + signalNumber(signal)} now`);
        child.kill(signal);
        process.exit(128 + signalNumber(signal));
      }
      shuttingDown = true;
      stopWaiting.abort();
      result = shutdown(signal);
      return;
    }
    // Everything else (SIGHUP reload, SIGQUIT, SIGUSR1/2, SIGWINCH) is the command's business.
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  };
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH'] as const) {
    process.on(signal, onSignal);
  }

  // Register only once the command answers.
  const startedAt = Date.now();
  let childGone = false;
  void exited.then(() => {
    childGone = true;
  });
  const target = config.probe.kind === 'http' ? `GET ${config.probe.url} to answer 2xx` : `TCP ${config.checkHost}:${port} to accept connections`;
  log(`started ${command} (pid ${child.pid ?? '?'}, PORT=${port}); waiting for ${target} before registering ${config.registrar.name}`);
  let nextReminder = startedAt + 10_000;
  void exited.then(() => stopWaiting.abort());
  let wrongAnswers = 0;
  let lastAnswer: string | undefined;
  while (!childGone && !shuttingDown) {
    const { report, answered } = await probeOnce();
    if (report.status === 'passing') break;
    if (answered !== undefined) {
      // The command is up but answers something else: probing 5 times a second will not change
      // that (a wrong --check-http path), so say what it answers, once per answer, and back off.
      if (answered !== lastAnswer) {
        log(`${config.probe.kind === 'http' ? `GET ${config.probe.url}` : target} answers ${answered}, not 2xx: ` +
          `is --check-http the right path? Not registering until it answers 2xx; probing again with backoff (at most every ${probeBackoff.maxMs / 1000} s)`);
        lastAnswer = answered;
        nextReminder = Date.now() + 10_000;
      }
      wrongAnswers++;
    } else {
      wrongAnswers = 0; // not listening yet: poll quickly so registration follows start-up closely
    }
    if (Date.now() >= nextReminder) {
      log(`still waiting for ${target} after ${Math.round((Date.now() - startedAt) / 1000)} s: ${report.output?.split('\n')[0] ?? ''}`);
      nextReminder += 10_000;
    }
    const delayMs = wrongAnswers === 0 ? 200 : Math.max(200, backoffDelay(wrongAnswers, probeBackoff));
    await sleep(delayMs, undefined, { signal: stopWaiting.signal }).catch(() => undefined);
  }
  if (!childGone && !shuttingDown) {
    const ready = new AbortController();
    void exited.then(() => ready.abort());
    log(`${command} answers; registering with ${registrar.registry.label}`);
    try {
      await registrar.start({ signal: ready.signal });
      log(`registered ${registrar.options.id} (${registrar.options.address}:${port}) after ${Date.now() - startedAt} ms`);
    } catch (error) {
      if (!childGone && !shuttingDown) log(`registration failed: ${(error as Error).message}`);
    }
  }

  const code = await exited;
  if (result) return result;
  // The command ended by itself: deregister before leaving.
  log(`command exited (${describeExit(child)}); deregistering`);
  await registrar.close({ timeoutMs: 3000 });
  log(`exiting with code ${code}, the command's`);
  return code;
}

/** Between probes that get a wrong answer: capped, jittered (core's backoff). */
const probeBackoff = { initialMs: 250, maxMs: 5000 };

function describeExit(child: ChildProcess): string {
  return child.exitCode !== null ? `exit code ${child.exitCode}` : `killed by ${child.signalCode ?? 'a signal'}`;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    log(`fatal: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    log('exiting with code 1');
    process.exit(1);
  },
);
