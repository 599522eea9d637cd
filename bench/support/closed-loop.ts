/**
 * Bench helper: a closed loop (a fixed number in flight, each worker awaiting
 * its previous request), bounded by request count and duration; every latency
 * into an HDR histogram; this process's CPU time per request. Imports no
 * Proxyless package, so a worker of any build can run it.
 */
import * as hdr from 'hdr-histogram-js';

export interface LoadResult {
  requests: number;
  errors: number;
  rps: number;
  p50: number;
  p99: number;
  p999: number;
  cpuUsPerReq: number;
}

export type Call = () => Promise<void>;

export async function closedLoop(call: Call, ms: number, max: number, concurrency: number): Promise<LoadResult> {
  const histogram = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });
  let requests = 0;
  let errors = 0;
  const stopAt = performance.now() + ms;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const worker = async (): Promise<void> => {
    while (requests + errors < max && performance.now() < stopAt) {
      const s = performance.now();
      try {
        await call();
        requests++;
        histogram.recordValue(Math.max(1, Math.round((performance.now() - s) * 1000)));
      } catch {
        errors++;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsed = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const r: LoadResult = {
    requests,
    errors,
    rps: (requests / elapsed) * 1000,
    p50: histogram.getValueAtPercentile(50) / 1000,
    p99: histogram.getValueAtPercentile(99) / 1000,
    p999: histogram.getValueAtPercentile(99.9) / 1000,
    cpuUsPerReq: (cpu.user + cpu.system) / Math.max(1, requests),
  };
  histogram.destroy();
  return r;
}
