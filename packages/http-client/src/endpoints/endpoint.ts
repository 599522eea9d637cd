import type { TLSSocket } from 'node:tls';
import { Client, Pool, type buildConnector } from 'undici';
import type { BalancerEndpoint, LoadReport, ServiceInstance } from '@proxyless/core';
import { closeUnusedConnector, preciseConnector } from '@proxyless/core/internal';
import { breakerStateOf, EndpointHealth, type BreakerState, type HealthState, type HealthTransition } from './health.js';
import { LoadTracker, type LoadContext } from './load.js';
import { ReportedLoad } from './reported-load.js';
import { ConcurrencyLimit } from './concurrency-limit.js';
import type { ResolvedOptions } from '../config/options.js';
import type { AttemptOutcome } from '../shared/attempt-outcome.js';
import type { EndpointInfo } from '../shared/endpoint-info.js';

/** What an endpoint's attempts report to its set (the set's clock, and the outcome fed to its health). @internal */
export interface HealthOwner {
  /** The set's clock, ms (`performance.now()` unless a test injects one). */
  clockMs(): number;
  /** An attempt picked in state `startedIn` ended: feeds the endpoint's health and reports the transition, if any. */
  attemptEnded(ep: Endpoint, outcome: AttemptOutcome, startedIn: HealthState, nowMs: number): HealthTransition | undefined;
  /** An attempt's answer carried a valid load report (a free probe for a probing picker). */
  loadReported(ep: Endpoint, report: LoadReport): void;
  /** The endpoint's concurrency limit changed (reported as an event). */
  limitChanged(ep: Endpoint): void;
}

/**
 * An instance plus what follows its attempts, keyed by instance identity:
 * load (in flight, latency; and the server's own reports), health (one state machine: breaker and
 * ejection, health.ts), and its keep-alive pool. Created when the instance
 * appears, drained and closed when it leaves.
 * @internal
 */
export class Endpoint implements BalancerEndpoint {
  instance: ServiceInstance;
  readonly info: EndpointInfo;
  readonly load: LoadTracker;
  /** What the server reports about its own load (ORCA), beside what this client measures; balancers read it through `load.reported`. */
  readonly reported: ReportedLoad;
  readonly pool: Pool;
  readonly health: EndpointHealth;
  readonly owner: HealthOwner;
  /** The adaptive concurrency limit; undefined when `concurrencyLimit` is off (then picks do not look). */
  readonly limit: ConcurrencyLimit | undefined;
  /** May picks choose it now: derived by the set from the health state and panic, kept as a plain field for the pickers' hot path. */
  available = true;

  constructor(instance: ServiceInstance, options: ResolvedOptions, neutral: LoadContext, owner: HealthOwner) {
    this.instance = instance;
    const host = instance.address.includes(':') ? `[${instance.address}]` : instance.address;
    const label = `${host}:${instance.port}`;
    this.info = Object.freeze({ key: instance.key, address: instance.address, port: instance.port, label });
    // The load context's clock: during a pick, the pick's own time (no clock read per candidate).
    this.reported = new ReportedLoad(() => neutral.nowMs());
    this.load = new LoadTracker(neutral, this.reported);
    this.pool = new Pool(`${options.scheme(instance)}://${label}`, {
      connections: options.connectionsPerEndpoint,
      keepAliveTimeout: options.keepAliveTimeoutMs,
      // The client's own timers enforce per-try timeouts and deadlines to the
      // millisecond; undici's coarse timers (~1 s resolution) only guard a
      // stalled body between chunks once the response was handed out.
      headersTimeout: 0,
      bodyTimeout: options.bodyTimeoutMs,
      // A connection undici opens for an aborted request is closed, not left open (nodejs/undici#5845).
      connect: closeUnusedConnector(preciseConnector(options.connectTimeoutMs, { ...options.tls, allowH2: options.allowH2 })),
      // With allowH2 the connector offers h2 by ALPN and the pool speaks it to an instance that picks it.
      allowH2: options.allowH2,
      ...(options.allowH2 ? { factory: multiplexingClient } : {}),
    });
    this.owner = owner;
    this.limit = options.concurrencyLimit === undefined ? undefined : new ConcurrencyLimit(options.concurrencyLimit);
    this.health = new EndpointHealth(options, owner.clockMs());
  }

  /** True once it left the set. */
  get removed(): boolean {
    return this.health.state.kind === 'removed';
  }

  /** Breaker state, read from the health state (`closed` when breakers are disabled). */
  get breakerState(): BreakerState {
    return breakerStateOf(this.health.state.kind);
  }
}

/** Streams an HTTP/2 connection carries at once, as the pool sees it: undici's default peer limit (Node's servers advertise 100). */
const h2StreamsPerConnection = 100;

/**
 * A pool's connection that multiplexes once it speaks HTTP/2. undici's Client
 * counts itself busy at `pipelining` requests (default 1) whatever the
 * protocol, so a Pool with `allowH2` opened one HTTP/2 connection per
 * concurrent request (measured: 50 concurrent requests, 50 sessions). Its
 * `pipelining` is set from each connection's ALPN: 100 on `h2`, 1 on
 * `http/1.1` (no HTTP/1.1 pipelining for an instance that declined h2).
 */
function multiplexingClient(origin: URL, opts: object): Client {
  const connect = (opts as { connect: buildConnector.connector }).connect;
  let h2 = false;
  const client: Client = new Client(origin, {
    ...opts,
    connect: (target, callback) => {
      connect(target, (...args) => {
        h2 = (args[1] as TLSSocket | null)?.alpnProtocol === 'h2';
        callback(...args);
      });
    },
  });
  client.on('connect', () => {
    const pipelining = h2 ? h2StreamsPerConnection : 1;
    if (client.pipelining !== pipelining) client.pipelining = pipelining;
  });
  return client;
}
