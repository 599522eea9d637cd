/**
 * TEMPORARY stand-in for `createClient()` of `@proxyless/http-client`, used
 * only until that package exports it. A deliberately small balancing client
 * with the features the gateway needs: one keep-alive undici pool per
 * endpoint, power-of-two-choices on peak EWMA, a consecutive-failure breaker,
 * retries on another endpoint, and streaming bodies both ways.
 */
import { Pool } from 'undici';
import { ProxylessError, type ServiceInstance, type ServiceWatch } from '@proxyless/core';
import type { EndpointStatus, Upstream, UpstreamRequest, UpstreamResponse } from './upstreams.js';

const BREAKER_FAILURES = 5;
const BREAKER_OPEN_MS = 5_000;
const EWMA_DECAY_MS = 10_000;

interface Endpoint {
  instance: ServiceInstance;
  pool: Pool;
  inFlight: number;
  ewmaMs: number;
  lastSample: number;
  successes: number;
  failures: number;
  consecutiveFailures: number;
  openUntil: number;
}

export class StandInClient implements Upstream {
  readonly #endpoints = new Map<string, Endpoint>();
  #closed = false;

  constructor(readonly service: string, private readonly watch: ServiceWatch) {
    watch.on('update', (snapshot) => this.#sync(snapshot.instances));
    watch.on('error', () => undefined);
  }

  #sync(instances: readonly ServiceInstance[]): void {
    const keys = new Set<string>();
    for (const instance of instances) {
      keys.add(instance.key);
      const existing = this.#endpoints.get(instance.key);
      if (existing && existing.instance.address === instance.address && existing.instance.port === instance.port) {
        existing.instance = instance;
        continue;
      }
      if (existing) void existing.pool.close();
      this.#endpoints.set(instance.key, {
        instance,
        pool: new Pool(`http://${hostFor(instance.address)}:${instance.port}`, { connections: 64, keepAliveTimeout: 4_000 }),
        inFlight: 0, ewmaMs: 0, lastSample: Date.now(), successes: 0, failures: 0, consecutiveFailures: 0, openUntil: 0,
      });
    }
    for (const [key, endpoint] of this.#endpoints) {
      if (keys.has(key)) continue;
      this.#endpoints.delete(key);
      // Let in-flight requests finish before the pool goes away.
      void endpoint.pool.close().catch(() => undefined);
    }
  }

  #breaker(e: Endpoint, now: number): EndpointStatus['breaker'] {
    if (e.consecutiveFailures < BREAKER_FAILURES) return 'closed';
    return now < e.openUntil ? 'open' : 'halfOpen';
  }

  #cost(e: Endpoint): number {
    return (e.ewmaMs || 1) * (e.inFlight + 1);
  }

  #pick(tried: ReadonlySet<Endpoint>): Endpoint | undefined {
    const now = Date.now();
    const all = [...this.#endpoints.values()];
    let ready = all.filter((e) => this.#breaker(e, now) !== 'open' && !tried.has(e));
    if (ready.length === 0) ready = all.filter((e) => this.#breaker(e, now) !== 'open');
    if (ready.length === 0) return undefined;
    const a = ready[Math.floor(Math.random() * ready.length)]!;
    const b = ready[Math.floor(Math.random() * ready.length)]!;
    return this.#cost(a) <= this.#cost(b) ? a : b;
  }

  #record(e: Endpoint, ok: boolean, latencyMs: number): void {
    const now = Date.now();
    // Peak EWMA: jump up to a slow sample at once, decay towards fast ones.
    const w = Math.exp(-(now - e.lastSample) / EWMA_DECAY_MS);
    e.ewmaMs = latencyMs > e.ewmaMs ? latencyMs : e.ewmaMs * w + latencyMs * (1 - w);
    e.lastSample = now;
    if (ok) {
      e.successes++;
      e.consecutiveFailures = 0;
    } else {
      e.failures++;
      e.consecutiveFailures++;
      if (e.consecutiveFailures >= BREAKER_FAILURES) e.openUntil = now + BREAKER_OPEN_MS;
    }
  }

  async request(req: UpstreamRequest): Promise<UpstreamResponse> {
    if (this.#closed) throw new ProxylessError('ERR_CLOSED', `client for "${this.service}" is closed`);
    const tried = new Set<Endpoint>();
    const maxTries = req.body === null ? 1 + Math.max(0, req.retries) : 1;
    let lastError: unknown;
    for (let attempt = 1; attempt <= maxTries; attempt++) {
      const endpoint = this.#pick(tried);
      if (!endpoint) {
        if (lastError) break;
        const anyKnown = this.#endpoints.size > 0;
        throw new ProxylessError(anyKnown ? 'ERR_CIRCUIT_OPEN' : 'ERR_NO_HEALTHY_INSTANCES',
          anyKnown ? `every endpoint of "${this.service}" has an open breaker` : `no healthy instances of "${this.service}"`);
      }
      tried.add(endpoint);
      const timeout = new AbortController();
      const timer = setTimeout(() => timeout.abort(), req.timeoutMs);
      const started = Date.now();
      endpoint.inFlight++;
      let done = false;
      const finish = (ok: boolean): void => {
        if (done) return;
        done = true;
        endpoint.inFlight--;
        this.#record(endpoint, ok, Date.now() - started);
      };
      try {
        const res = await endpoint.pool.request({
          method: req.method,
          path: req.path,
          headers: req.headers,
          body: req.body,
          signal: AbortSignal.any([req.signal, timeout.signal]),
          headersTimeout: 0,
          bodyTimeout: 0,
        });
        clearTimeout(timer);
        const failedStatus = req.retryOnStatus.includes(res.statusCode);
        if (failedStatus && attempt < maxTries) {
          finish(false);
          res.body.resume();
          lastError = new ProxylessError('ERR_UPSTREAM_STATUS', `upstream answered ${res.statusCode}`);
          continue;
        }
        // In flight until the response body has been fully streamed.
        res.body.once('end', () => finish(!failedStatus && res.statusCode < 500));
        res.body.once('close', () => finish(!failedStatus && res.statusCode < 500));
        res.body.once('error', () => finish(false));
        return { statusCode: res.statusCode, headers: res.headers, body: res.body, endpoint: `${endpoint.instance.address}:${endpoint.instance.port}`, attempts: attempt };
      } catch (error) {
        clearTimeout(timer);
        finish(false);
        if (req.signal.aborted) throw new ProxylessError('ERR_ABORTED', 'the client went away', { cause: error });
        lastError = timeout.signal.aborted
          ? new ProxylessError('ERR_DEADLINE_EXCEEDED', `"${this.service}" did not answer within ${req.timeoutMs} ms`, { cause: error })
          : new ProxylessError('ERR_UPSTREAM_UNREACHABLE', `"${this.service}" at ${endpoint.instance.address}:${endpoint.instance.port} failed: ${(error as Error).message}`, { cause: error });
      }
    }
    throw lastError;
  }

  stats(): EndpointStatus[] {
    const now = Date.now();
    return [...this.#endpoints.values()].map((e) => ({
      key: e.instance.key,
      id: e.instance.id,
      address: e.instance.address,
      port: e.instance.port,
      health: e.instance.health,
      inFlight: e.inFlight,
      ewmaMs: Math.round(e.ewmaMs * 10) / 10,
      successes: e.successes,
      failures: e.failures,
      breaker: this.#breaker(e, now),
      ejected: false,
    }));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.watch.close();
    await Promise.all([...this.#endpoints.values()].map((e) => e.pool.destroy()));
    this.#endpoints.clear();
  }
}

function hostFor(address: string): string {
  return address.includes(':') ? `[${address}]` : address;
}
