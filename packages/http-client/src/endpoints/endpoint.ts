import { Pool } from 'undici';
import type { BalancerEndpoint, ServiceInstance } from '@proxyless/core';
import { closeUnusedConnector, preciseConnector } from '@proxyless/core/internal';
import { EndpointBreaker, type BreakerListener, type BreakerState } from './breaker.js';
import { LoadTracker, type LoadContext } from './load.js';
import { OutlierState } from './outlier-detection.js';
import type { ResolvedOptions } from '../config/options.js';
import type { AttemptObserver } from '../shared/attempt-outcome.js';
import type { EndpointInfo } from '../shared/endpoint-info.js';
import type { EventEmitter as NodeEventEmitter } from 'node:events';


/** What an endpoint reports to its set. @internal */
export interface EndpointListener extends BreakerListener {
  /** Outlier detection's consecutive-failure threshold was reached. */
  onOutlier(): void;
}

/**
 * An instance plus the pieces that follow its attempts, keyed by instance
 * identity: load (in flight, latency), breaker, outlier detection, and its
 * keep-alive pool. Created when the instance appears, drained and closed
 * when it leaves.
 * @internal
 */
export class Endpoint implements BalancerEndpoint {
  instance: ServiceInstance;
  readonly info: EndpointInfo;
  readonly load: LoadTracker;
  readonly pool: Pool;
  readonly breaker: EndpointBreaker | undefined;
  readonly outlier: OutlierState;
  /** Everything that hears an attempt start and end, in order. */
  readonly observers: readonly AttemptObserver[];
  removed = false;
  /** May picks choose it now (breaker not open; not ejected, unless in panic)? Kept by the endpoint set. */
  available = true;
  /** What the endpoint set last counted it as: breaker not open; ready (not open, not ejected). */
  countedNotOpen = true;
  countedReady = true;

  constructor(instance: ServiceInstance, options: ResolvedOptions, neutral: LoadContext, rotate: NodeEventEmitter, listener: EndpointListener) {
    this.instance = instance;
    const host = instance.address.includes(':') ? `[${instance.address}]` : instance.address;
    const label = `${host}:${instance.port}`;
    this.info = Object.freeze({ key: instance.key, address: instance.address, port: instance.port, label });
    this.load = new LoadTracker(neutral);
    this.pool = new Pool(`${options.scheme(instance)}://${label}`, {
      connections: options.connectionsPerEndpoint,
      keepAliveTimeout: options.keepAliveTimeoutMs,
      // The client's own timers enforce per-try timeouts and deadlines to the
      // millisecond; undici's coarse timers (~1 s resolution) only guard a
      // stalled body between chunks once the response was handed out.
      headersTimeout: 0,
      bodyTimeout: options.bodyTimeoutMs,
      // A connection undici opens for an aborted request is closed, not left open (nodejs/undici#5845).
      connect: closeUnusedConnector(preciseConnector(options.connectTimeoutMs, options.tls)),
    });
    this.breaker = options.breaker ? new EndpointBreaker(options.breaker, rotate, listener, label) : undefined;
    this.outlier = new OutlierState(options.outlier, options.outlier ? () => listener.onOutlier() : undefined);
    const observers: AttemptObserver[] = [this.load];
    if (this.breaker) observers.push(this.breaker);
    if (options.outlier) observers.push(this.outlier);
    this.observers = observers;
  }

  /** Breaker state (`closed` when breakers are disabled). */
  get breakerState(): BreakerState {
    return this.breaker ? this.breaker.state : 'closed';
  }

  /** Back in the ready set after an ejection or an open breaker: cold again, and slow start applies again. */
  rejoined(): void {
    this.load.rejoined();
  }
}
