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
import { once } from 'node:events';
import { connect } from 'node:net';
import { constants } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { isProxylessError, type RegistryFactory } from '@proxyless/core';
import { parseCliArgs, usage, UsageError, type CliConfig } from './cli-args.js';
import type { HealthReport } from './options.js';
import { Registrar } from './registrar.js';
import { ShutdownCoordinator } from './shutdown.js';

const log = (message: string): void => {
  process.stderr.write(`[proxyless-register] ${message}\n`);
};

function signalNumber(signal: NodeJS.Signals | null): number {
  return signal ? ((constants.signals as Record<string, number | undefined>)[signal] ?? 0) : 0;
}

function childExitCode(child: ChildProcess): number {
  if (child.exitCode !== null) return child.exitCode;
  return 128 + signalNumber(child.signalCode);
}

function tcpProbe(host: string, port: number, timeoutMs: number): Promise<HealthReport> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (report: HealthReport): void => {
      socket.destroy();
      resolve(report);
    };
    socket.setTimeout(timeoutMs, () => done({ status: 'critical', output: `TCP ${host}:${port}: no answer in ${timeoutMs} ms` }));
    socket.once('connect', () => done({ status: 'passing', output: `TCP ${host}:${port}: connected` }));
    socket.once('error', (error) => done({ status: 'critical', output: `TCP ${host}:${port}: ${error.message}` }));
  });
}

async function httpProbe(url: string, timeoutMs: number): Promise<HealthReport> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), redirect: 'manual' });
    const body = (await res.text()).slice(0, 512);
    const output = `HTTP GET ${url}: ${res.status} ${res.statusText}\n${body}`;
    // Consul's own HTTP check rules.
    if (res.status >= 200 && res.status < 300) return { status: 'passing', output };
    if (res.status === 429) return { status: 'warning', output };
    return { status: 'critical', output };
  } catch (error) {
    return { status: 'critical', output: `HTTP GET ${url}: ${(error as Error).message}` };
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
  const probe = (): Promise<HealthReport> =>
    config.probe.kind === 'http'
      ? httpProbe(config.probe.url, config.checkTimeoutMs)
      : tcpProbe(config.checkHost, port, config.checkTimeoutMs);

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
    registrar = new Registrar({ ...config.registrar, ...(registry ? { registry } : {}), health: probe, logger: { warn: log, info: log } });
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
  const spawned = await Promise.race([
    once(child, 'spawn').then(() => true),
    once(child, 'error').then(([error]) => {
      log(`cannot start ${command}: ${(error as Error).message}`);
      return false;
    }),
  ]);
  if (!spawned) {
    await registrar.close();
    log('exiting with code 127 (command not started)');
    return 127;
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
  const onSignal = (signal: NodeJS.Signals): void => {
    if (signal === 'SIGTERM' || signal === 'SIGINT') {
      if (shuttingDown) {
        log(`second ${signal}: passing it on; exiting with code ${128 + signalNumber(signal)} now`);
        child.kill(signal);
        process.exit(128 + signalNumber(signal));
      }
      shuttingDown = true;
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
  while (!childGone && !shuttingDown) {
    const report = await probe();
    const status = typeof report === 'string' ? report : report.status;
    if (status === 'passing') break;
    if (Date.now() >= nextReminder) {
      const output = typeof report === 'string' ? '' : `: ${report.output?.split('\n')[0] ?? ''}`;
      log(`still waiting for ${target} after ${Math.round((Date.now() - startedAt) / 1000)} s${output}`);
      nextReminder += 10_000;
    }
    await sleep(200);
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
