/** Test helpers: frozen ServiceInstance objects and endpoints with mutable loads. */
import type { BalancerEndpoint, EndpointLoad, Picker, PickSignal } from '../src/balancer.js';
import type { HealthStatus, ServiceInstance } from '../src/service-instance.js';

export interface MutableLoad extends EndpointLoad {
  inFlight: number;
  ewmaMs: number;
  readySince: number;
}

export interface TestEndpoint extends BalancerEndpoint {
  readonly load: MutableLoad;
}

export interface InstanceFields {
  zone?: string;
  datacenter?: string;
  health?: HealthStatus;
  passing?: number;
  warning?: number;
}

export function instance(key: string, fields: InstanceFields = {}): ServiceInstance {
  return Object.freeze({
    key,
    id: key,
    service: 'web',
    address: '10.0.0.1',
    port: 8080,
    tags: Object.freeze([]),
    meta: Object.freeze({}),
    weights: Object.freeze({ passing: fields.passing ?? 1, warning: fields.warning ?? 1 }),
    datacenter: fields.datacenter,
    zone: fields.zone,
    health: fields.health ?? 'passing',
  });
}

export function endpoint(key: string, fields: InstanceFields = {}, load: Partial<MutableLoad> = {}): TestEndpoint {
  return { instance: instance(key, fields), load: { inFlight: 0, ewmaMs: 0, readySince: 0, ...load } };
}

export function endpoints(n: number, prefix = 'e'): TestEndpoint[] {
  return Array.from({ length: n }, (_, i) => endpoint(`${prefix}${i}`));
}

/** Deterministic PRNG (mulberry32) in [0, 1). */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Counts picks per endpoint key. */
export function tally(pick: () => BalancerEndpoint | undefined, times: number): Map<string, number> {
  const counts = new Map<string, number>();
  for (let i = 0; i < times; i++) {
    const e = pick();
    if (e === undefined) throw new Error('pick returned undefined');
    counts.set(e.instance.key, (counts.get(e.instance.key) ?? 0) + 1);
  }
  return counts;
}

/** One pick with its explanation's signals: the endpoint chosen and the signal that decided. */
export function decided<E extends BalancerEndpoint>(picker: Picker<E>): { chosen: E | undefined; signal: PickSignal | undefined } {
  const signals: PickSignal[] = [];
  const chosen = picker.pick({ signals });
  return { chosen, signal: signals[0] };
}
