import { Pool } from 'undici';
import { PeakEwma, type BalancerEndpoint, type ServiceInstance } from '@proxyless/core';
import { EndpointBreaker, type BreakerListener, type BreakerState } from './breaker.js';
import { OutlierState } from './outlier-detection.js';
import type { ResolvedOptions } from './options.js';
import type { EventEmitter as NodeEventEmitter } from 'node:events';

/** Public identity of an endpoint, as events, responses and errors show it. */
export interface EndpointInfo {
  /** Instance identity (`ServiceInstance.key`). */
  readonly key: string;
  readonly address: string;
  readonly port: number;
  /** `address:port` (IPv6 in brackets). */
  readonly label: string;
}

/** Mutable load statistics read by balancers. @internal */
export interface MutableLoad {
  inFlight: number;
  ewmaMs: number;
  readySince: number;
}

/** Latency recorded for a failed attempt, as a multiple of the current estimate (errors look slow). */
const FAILURE_PENALTY = 2;

/**
 * An instance plus its live state: keep-alive pool, load (in-flight, peak
 * EWMA), breaker, ejection and counters. Created when the instance appears,
 * drained and closed when it leaves.
 * @internal
 */
export class Endpoint implements BalancerEndpoint {
  instance: ServiceInstance;
  readonly info: EndpointInfo;
  readonly load: MutableLoad;
  readonly pool: Pool;
  readonly breaker: EndpointBreaker | undefined;
  readonly outlier = new OutlierState();
  successes = 0;
  failures = 0;
  /** Latency estimator (core's PeakEwma, τ = 10 s as Finagle); its value is published as `load.ewmaMs`. */
  readonly #ewma = new PeakEwma();
  #lastSampleAt = 0;
  removed = false;

  constructor(instance: ServiceInstance, options: ResolvedOptions, rotate: NodeEventEmitter, listener: BreakerListener) {
    this.instance = instance;
    const host = instance.address.includes(':') ? `[${instance.address}]` : instance.address;
    const label = `${host}:${instance.port}`;
    this.info = Object.freeze({ key: instance.key, address: instance.address, port: instance.port, label });
    this.load = { inFlight: 0, ewmaMs: 0, readySince: Date.now() };
    this.pool = new Pool(`http://${label}`, {
      connections: options.connectionsPerEndpoint,
      keepAliveTimeout: options.keepAliveTimeoutMs,
      headersTimeout: options.perTryTimeoutMs,
      bodyTimeout: options.perTryTimeoutMs,
      connect: { timeout: options.connectTimeoutMs },
    });
    this.breaker = options.breaker ? new EndpointBreaker(options.breaker, rotate, listener, label) : undefined;
  }

  /** Breaker state (`closed` when breakers are disabled). */
  get breakerState(): BreakerState {
    return this.breaker ? this.breaker.state : 'closed';
  }

  /**
   * Feeds a latency sample (ms) to the peak-EWMA estimate: a sample above the
   * estimate replaces it at once (peak), otherwise it decays toward the sample
   * with weight exp(-Δt/τ).
   */
  observe(latencyMs: number, nowMs: number): void {
    this.load.ewmaMs = this.#ewma.observe(latencyMs, nowMs);
    this.#lastSampleAt = nowMs;
  }

  /**
   * Decays an idle endpoint's estimate toward zero (as Finagle's peak EWMA
   * does when read): without it, an endpoint penalised once and then never
   * picked would keep its penalty forever. Called from a 1 s timer, off the
   * request path.
   */
  decayIdle(nowMs: number): void {
    if (this.load.ewmaMs === 0 || nowMs - this.#lastSampleAt < 1000) return;
    this.load.ewmaMs = this.#ewma.valueAt(nowMs);
  }

  /** Penalises the estimate after a failure, so balancers shy away. */
  penalise(latencyMs: number, nowMs: number): void {
    this.observe(Math.max(latencyMs, this.load.ewmaMs * FAILURE_PENALTY, 1), nowMs);
  }
}
