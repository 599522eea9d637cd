/**
 * Sends the probes a probing picker (core's `prequal()`) asks for: `GET` of
 * its probe path on the endpoint's own pool, each under its own deadline, a
 * bounded number at once; answers and failures go back to the picker.
 * @module
 */
import { loadReportHeader, loadReportMetricNames, type LoadReport, type PickerProbing, type ProbeResult, type ProbeSettings } from '@proxyless/core';
import { withDeadline } from '@proxyless/core/internal';
import type { Endpoint } from './endpoint.js';

/** What a probe or an in-band report said, as a probing picker reads it; undefined without a `rif`. @internal */
export function probeResultOf(report: LoadReport | undefined): ProbeResult | undefined {
  const named = report?.named_metrics;
  const rif = named?.[loadReportMetricNames.requestsInFlight];
  if (rif === undefined) return undefined;
  return { rif, latencyMs: named?.[loadReportMetricNames.latencyMs] };
}

/** Probe counts since the client started, for `stats()`. @internal */
export interface ProbeCounts {
  /** Probes sent. */
  readonly sent: number;
  /** Probes that got no answer (deadline, connection error). */
  readonly failed: number;
  /** Probes answered without a report carrying `rif` (the endpoint does not report). */
  readonly unreported: number;
  /** Probes in flight now. */
  readonly inFlight: number;
}

/**
 * The probes of one endpoint set. Probes run in the background: their
 * deadline timers are unref'd, nothing here keeps the process alive, and
 * {@link Prober.close} aborts every probe in flight. A probe's failure is
 * counted and told to the picker, never thrown.
 * @internal
 */
export class Prober {
  #sent = 0;
  #failed = 0;
  #unreported = 0;
  readonly #inFlight = new Set<Endpoint>();
  readonly #stop = new AbortController();
  readonly #clock: () => number;
  /** The probing side of the set's current picker: an answer goes to the picker of the moment, not to the one that asked. */
  readonly #current: () => PickerProbing<Endpoint> | undefined;

  constructor(clock: () => number, current: () => PickerProbing<Endpoint> | undefined) {
    this.#clock = clock;
    this.#current = current;
  }

  get counts(): ProbeCounts {
    return { sent: this.#sent, failed: this.#failed, unreported: this.#unreported, inFlight: this.#inFlight.size };
  }

  /** Asks the picker for targets, up to its free probe slots, and probes them (an endpoint already being probed is skipped). */
  probeFor(probing: PickerProbing<Endpoint>): void {
    if (this.#stop.signal.aborted) return;
    const free = probing.settings.maxConcurrent - this.#inFlight.size;
    if (free <= 0) return;
    for (const ep of probing.targets(free)) if (!this.#inFlight.has(ep)) void this.#probe(ep, probing.settings);
  }

  async #probe(ep: Endpoint, settings: ProbeSettings): Promise<void> {
    const { path, timeoutMs } = settings;
    this.#inFlight.add(ep);
    this.#sent++;
    try {
      const value = await withDeadline(this.#stop.signal, timeoutMs, async (signal) => {
        const res = await ep.pool.request({ method: 'GET', path, signal, headers: { 'endpoint-load-metrics-format': 'text' } });
        // The body (load-report's JSON copy of the report) is not needed: read off so the connection is kept.
        await res.body.dump();
        return res.headers[loadReportHeader];
      }, { background: true, settleAtDeadline: true, what: 'probe' });
      if (this.#stop.signal.aborted) return;
      // The answer is a report like any other: the endpoint's reported load hears it too.
      const report = ep.reported.received(value, this.#clock());
      const result = probeResultOf(report);
      if (result === undefined) this.#unreported++;
      this.#current()?.result(ep, result);
    } catch {
      if (this.#stop.signal.aborted) return;
      this.#failed++;
      this.#current()?.failed(ep);
    } finally {
      this.#inFlight.delete(ep);
    }
  }

  /** Aborts every probe in flight; later `probeFor` calls do nothing. */
  close(): void {
    this.#stop.abort();
  }
}
