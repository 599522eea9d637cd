import { EventEmitter as NodeEventEmitter } from 'node:events';
import CircuitBreaker from 'opossum';
import type { BreakerOptions } from '../config/options.js';
import type { AttemptObserver, AttemptOutcome } from '../shared/attempt-outcome.js';

/** Public breaker states. */
export type BreakerState = 'closed' | 'open' | 'halfOpen';

/** Callbacks an {@link EndpointBreaker} reports its transitions to. @internal */
export interface BreakerListener {
  onBreakerOpen(): void;
  onBreakerHalfOpen(): void;
  onBreakerClose(): void;
}

// opossum's action is never called: attempts are made by the request loop, and the breaker
// only opens, half-opens and closes. One module-level function, no per-breaker closure.
function neverCalled(): Promise<never> {
  return Promise.reject(new Error('the breaker action is not used'));
}

/**
 * One endpoint's circuit breaker — the decision apart from the state, as
 * cockatiel splits them. The decision is made here, by opossum's rule over a
 * rolling window of this endpoint's attempts: with at least
 * `volumeThreshold` attempts in the window, a failure rate above
 * `errorThresholdPercentage` opens the breaker; a failure while half-open
 * re-opens it; a success while half-open closes it; a failure while open is
 * not counted. opossum 9 keeps the state through its public, typed API:
 * `open()` (which starts its reset timer, after which it goes half-open),
 * `close()`, the `open`/`halfOpen`/`close` events and the state getters.
 *
 * Why not feed opossum every outcome (its `fire`/`success` events, or
 * `fire()`): two events per success cost ~0.35 µs per request (measured with
 * bench/support/client-js-cost.ts), a third of the whole client's overhead
 * over a raw undici Pool; counting here is two increments. The window
 * rotates on the client's shared bucket-rotation clock, the same one opossum
 * used, so the counts are the ones opossum kept. Pinned by test/breaker.test.ts.
 * @internal
 */
export class EndpointBreaker implements AttemptObserver {
  readonly #cb: CircuitBreaker<[], never>;
  readonly #thresholdPercent: number;
  readonly #volumeThreshold: number;
  /** Attempts and failures of the window's earlier buckets (slot `#bucket` is the current one's, filled when it ends). */
  readonly #fires: Float64Array;
  readonly #failures: Float64Array;
  #bucket = 0;
  /** The current bucket's counts. */
  #bucketFires = 0;
  #bucketFailures = 0;
  /** Counts over the whole window, the current bucket included. */
  #fireSum = 0;
  #failureSum = 0;
  readonly #rotate: NodeEventEmitter;
  readonly #onRotate = (): void => this.#nextBucket();
  #trialInFlight = false;

  constructor(options: Required<BreakerOptions>, rotate: NodeEventEmitter, listener: BreakerListener, name: string) {
    this.#thresholdPercent = options.errorThresholdPercentage;
    this.#volumeThreshold = options.volumeThreshold;
    this.#fires = new Float64Array(options.rollingBuckets);
    this.#failures = new Float64Array(options.rollingBuckets);
    this.#rotate = rotate;
    rotate.on('rotate', this.#onRotate);
    this.#cb = new CircuitBreaker(neverCalled, {
      name,
      timeout: false,
      resetTimeout: options.resetTimeoutMs,
      // opossum's own window stays empty (nothing is fired); it rotates on the shared clock, no timer of its own.
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

  ended(outcome: AttemptOutcome): void {
    if (outcome === 'cancelled') {
      // Not the endpoint's fault: free a half-open trial slot for the next call.
      this.#trialInFlight = false;
      return;
    }
    if (outcome === 'success') this.success();
    else this.failure();
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

  /** Records a success; closes a half-open breaker. */
  success(): void {
    this.#bucketFires++;
    this.#fireSum++;
    if (this.#cb.halfOpen) this.#cb.close();
  }

  /** Records a failure; may open the breaker (synchronously). */
  failure(): void {
    const cb = this.#cb;
    if (cb.opened) return; // calls that started before it opened: not counted
    this.#bucketFires++;
    this.#bucketFailures++;
    this.#fireSum++;
    this.#failureSum++;
    if (cb.halfOpen || (this.#fireSum >= this.#volumeThreshold && (this.#failureSum / this.#fireSum) * 100 > this.#thresholdPercent)) cb.open();
  }

  /** Rolling-window counts: calls (`fires`) and `failures`. */
  get counts(): { fires: number; failures: number } {
    return { fires: this.#fireSum, failures: this.#failureSum };
  }

  /** The shared clock ticked: the oldest bucket leaves the window and becomes the current one. */
  #nextBucket(): void {
    this.#fires[this.#bucket] = this.#bucketFires;
    this.#failures[this.#bucket] = this.#bucketFailures;
    const b = this.#bucket + 1 === this.#fires.length ? 0 : this.#bucket + 1;
    this.#fireSum -= this.#fires[b] ?? 0;
    this.#failureSum -= this.#failures[b] ?? 0;
    this.#bucket = b;
    this.#bucketFires = 0;
    this.#bucketFailures = 0;
  }

  /** Stops timers and listeners. */
  shutdown(): void {
    this.#rotate.removeListener('rotate', this.#onRotate);
    this.#cb.shutdown();
  }
}
