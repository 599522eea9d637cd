import { EventEmitter as NodeEventEmitter } from 'node:events';
import CircuitBreaker from 'opossum';
import type { BreakerOptions } from './options.js';
import type { AttemptObserver, AttemptOutcome } from './pick-handle.js';

/** Public breaker states. */
export type BreakerState = 'closed' | 'open' | 'halfOpen';

/** Callbacks an {@link EndpointBreaker} reports its transitions to. @internal */
export interface BreakerListener {
  onBreakerOpen(): void;
  onBreakerHalfOpen(): void;
  onBreakerClose(): void;
}

// The breaker's action never performs I/O: the request already happened and
// its outcome is "replayed" through opossum so opossum's own rules (error
// rate over the rolling window, volume threshold, half-open trial) decide.
// One module-level function, no per-call closure.
function replayFailure(error: Error): never {
  throw error;
}

/** The arguments a replayed success "fired" with (opossum's counting listener ignores them): one shared array, not one per request. */
const NO_ARGS: [] = [];

/**
 * One endpoint's circuit breaker: opossum 9 keeps the state machine and the
 * rolling counts; we feed it outcomes through its public, typed API.
 *
 * Cost on the success path matters (it runs on every request): a success is
 * two of opossum's own events (see {@link EndpointBreaker.success}); a failure
 * goes through a real `fire()` so opossum's own threshold logic opens the circuit. Snapshots and rolling percentiles are off (they sort every
 * latency sample once a second on the event loop), and every breaker of a
 * client shares one bucket-rotation timer (`rotateBucketController`).
 * @internal
 */
export class EndpointBreaker implements AttemptObserver {
  readonly #cb: CircuitBreaker<[Error], never>;
  #trialInFlight = false;

  constructor(options: Required<BreakerOptions>, rotate: NodeEventEmitter, listener: BreakerListener, name: string) {
    this.#cb = new CircuitBreaker(replayFailure, {
      name,
      timeout: false,
      errorThresholdPercentage: options.errorThresholdPercentage,
      volumeThreshold: options.volumeThreshold,
      resetTimeout: options.resetTimeoutMs,
      rollingCountTimeout: options.rollingWindowMs,
      rollingCountBuckets: options.rollingBuckets,
      rollingPercentilesEnabled: false,
      enableSnapshots: false,
      rotateBucketController: rotate,
    });
    this.#cb.on('open', () => {
      this.#trialInFlight = false;
      listener.onBreakerOpen();
    });
    this.#cb.on('halfOpen', () => {
      this.#trialInFlight = false;
      listener.onBreakerHalfOpen();
    });
    this.#cb.on('close', () => {
      this.#trialInFlight = false;
      listener.onBreakerClose();
    });
  }

  started(): void {
    // The trial slot is taken at pick time (tryAcquire); only outcomes count here.
  }

  ended(outcome: AttemptOutcome, elapsedMs: number): void {
    if (outcome === 'cancelled') {
      // Not the endpoint's fault: free a half-open trial slot for the next call.
      this.#trialInFlight = false;
      return;
    }
    if (outcome === 'success') this.success(elapsedMs);
    else this.failure(new Error(`attempt failed: ${outcome}`));
  }

  /** Current state. */
  get state(): BreakerState {
    if (this.#cb.closed) return 'closed';
    return this.#cb.halfOpen ? 'halfOpen' : 'open';
  }

  /**
   * May a call go through now? Closed: yes. Half-open: exactly one trial at a
   * time. Open: no.
   */
  tryAcquire(): boolean {
    const cb = this.#cb;
    if (cb.closed) return true;
    if (cb.halfOpen && !this.#trialInFlight) {
      this.#trialInFlight = true;
      return true;
    }
    return false;
  }

  /**
   * Records a success through opossum's public, typed event interface: the
   * `fire` and `success` events a fired call emits, which opossum's own
   * listeners count in the rolling window (and which close a half-open
   * breaker) — the same bookkeeping as `fire()` without a Promise per request.
   * Pinned by test/breaker.test.ts.
   */
  success(latencyMs: number): void {
    const cb = this.#cb;
    cb.emit('fire', NO_ARGS);
    cb.emit('success', undefined, latencyMs);
  }

  /** Records a failure; may open the breaker (synchronously). */
  failure(error: Error): void {
    const cb = this.#cb;
    // A failure while open (calls that started before it opened) only counts.
    if (cb.opened && !cb.halfOpen) return;
    cb.fire(error).catch(noop);
  }

  /** Rolling-window counts: calls (`fires`) and `failures`. */
  get counts(): { fires: number; failures: number } {
    const s = this.#cb.stats;
    return { fires: s.fires, failures: s.failures };
  }

  /** Stops timers and listeners. */
  shutdown(): void {
    this.#cb.shutdown();
  }
}

function noop(): void {
  // failure already recorded by opossum
}
