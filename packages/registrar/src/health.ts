import type { RegistryReport } from '@proxyless/core';
import { withDeadline } from '@proxyless/core/internal';
import { asError } from './as-error.js';

/** A heartbeat's status: `passing`, `warning` (still used, less traffic where weights apply) or `critical` (out of rotation). */
export type CheckStatus = 'passing' | 'warning' | 'critical';

/** What a health function returns: a status, or a status with a human-readable output. */
export type HealthReport = CheckStatus | { status: CheckStatus; output?: string };

/**
 * Decides the status of each heartbeat. It may be async; it is given an
 * AbortSignal that fires when the beat's time is up (then the beat reports
 * `critical`). A throw also reports `critical`, with the error message as output.
 */
export type HealthFunction = (signal: AbortSignal) => HealthReport | Promise<HealthReport>;

/** Longest output sent with a heartbeat, in bytes (Consul's cap; etcd stores it in the value). */
export const MAX_OUTPUT_BYTES = 4096;

const statusRank: Record<CheckStatus, number> = { passing: 0, warning: 1, critical: 2 };

/** @internal */
export function isCheckStatus(value: unknown): value is CheckStatus {
  return value === 'passing' || value === 'warning' || value === 'critical';
}

function normalizeReport(report: HealthReport): { status: CheckStatus; output: string } {
  if (typeof report === 'string') return { status: report, output: '' };
  return { status: report.status, output: report.output ?? '' };
}

/** Truncates a heartbeat output to {@link MAX_OUTPUT_BYTES} without splitting a UTF-8 sequence. @internal */
export function truncateOutput(output: string): string {
  const bytes = Buffer.from(output, 'utf8');
  if (bytes.length <= MAX_OUTPUT_BYTES) return output;
  const marker = '…[truncated]';
  let end = MAX_OUTPUT_BYTES - Buffer.byteLength(marker);
  // Step back to a character boundary (continuation bytes are 10xxxxxx).
  while (end > 0 && ((bytes[end] ?? 0) & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end).toString('utf8') + marker;
}

/** What the app asked for, which every beat reports; survives re-registrations. @internal */
export interface Intent {
  /** {@link Registrar.setStatus}'s status, unless it cleared it. */
  manual: { status: CheckStatus; output: string } | undefined;
  /** Out of rotation for shutdown: every beat reports critical. */
  draining: boolean;
  /** Maintenance mode, re-applied after a re-registration. */
  maintenance: { reason: string | undefined } | undefined;
}

/**
 * The status of the next beat: the worst of drain, the app's status and the
 * health function (bounded by `limitMs`; a throw, a timeout or an invalid
 * answer is `critical` with the reason as output).
 * @internal
 */
export async function evaluateHealth(intent: Intent, health: HealthFunction | undefined, limitMs: number): Promise<RegistryReport & { status: CheckStatus }> {
  if (intent.draining) return { status: 'critical', output: 'draining: out of rotation for shutdown' };
  let result = intent.manual ?? { status: 'passing' as CheckStatus, output: '' };
  if (health) {
    let fromHealth: { status: CheckStatus; output: string };
    try {
      // Settled at the deadline even if the app's function ignores its signal; the timer does not hold the process.
      const report = await withDeadline(undefined, limitMs, (signal) => Promise.resolve(health(signal)), {
        settleAtDeadline: true,
        background: true,
        what: 'health function',
      });
      fromHealth = normalizeReport(report);
      if (!isCheckStatus(fromHealth.status)) {
        fromHealth = { status: 'critical', output: `health function returned an invalid status: ${String(fromHealth.status)}` };
      }
    } catch (error) {
      fromHealth = { status: 'critical', output: `health function failed: ${asError(error).message}` };
    }
    const worse = statusRank[fromHealth.status] - statusRank[result.status];
    if (worse > 0 || (worse === 0 && fromHealth.output !== '')) result = fromHealth;
  }
  return { status: result.status, output: truncateOutput(result.output) };
}
