/**
 * Pick explanations (opt-in per request with `explain: true`): for each
 * attempt, the strategy, the candidates it compared and their scores, and the
 * endpoints that were not eligible, with the reason.
 * @module
 */
import type { BalancerEndpoint, PickSignal } from '@proxyless/core';
import type { Endpoint } from './endpoint.js';
import type { EndpointSet } from './endpoint-set.js';
import type { ExclusionReason, PickCandidate, PickExplanation } from '../shared/pick-explanation-types.js';
import type { EndpointHealthState } from './health.js';

/** A current endpoint's health state (a removed one reads as `ready`: it is never a candidate). */
function liveKind(ep: Endpoint): EndpointHealthState {
  const k = ep.health.state.kind;
  return k === 'removed' ? 'ready' : k;
}

/**
 * A candidate as the picker saw it. The chosen endpoint's attempt has started
 * since (its handle counts it in flight), so that one is taken back out. The
 * score is the one the picker compared when it recorded it (an estimate read
 * again now may have decayed since), else read now.
 */
function candidate(ep: Endpoint, chosen: boolean, recorded: number | undefined, score: ((e: BalancerEndpoint) => number) | undefined): PickCandidate {
  const inFlight = chosen ? Math.max(0, ep.load.inFlight - 1) : ep.load.inFlight;
  const ewmaMs = ep.load.ewmaMs;
  const seen: BalancerEndpoint = chosen ? { instance: ep.instance, load: { inFlight, ewmaMs, readySince: ep.load.readySince } } : ep;
  return { endpoint: ep.info.label, score: recorded ?? score?.(seen), inFlight, ewmaMs, health: liveKind(ep), loadReport: ep.reported.current(ep.owner.clockMs()) };
}

/**
 * Builds the explanation of one pick, right after it (the picker is
 * synchronous, so the state read here is the state it saw). Off the hot path: only with `explain: true`.
 * @internal
 */
export function explainPick(set: EndpointSet, chosen: Endpoint, compared: readonly Endpoint[], scores: readonly number[] | undefined, tried: ReadonlySet<Endpoint> | undefined, attempt: number, discoveryStale: boolean, inFlight?: readonly Endpoint[], signal?: PickSignal): PickExplanation {
  const balancer = set.balancer;
  const score = balancer.score === undefined ? undefined : (e: BalancerEndpoint): number => balancer.score?.(e) ?? 0;
  const recorded = compared.length > 0 && scores?.length === compared.length ? scores : undefined;
  const candidates = (compared.length > 0 ? compared : [chosen]).map((ep, i) => candidate(ep, ep === chosen, recorded?.[i], score));
  const excluded: { endpoint: string; reason: ExclusionReason }[] = [];
  for (const ep of set.endpoints) {
    if (inFlight?.includes(ep) === true) excluded.push({ endpoint: ep.info.label, reason: 'hedgeInFlight' });
    else if (tried?.has(ep)) excluded.push({ endpoint: ep.info.label, reason: 'alreadyTried' });
    else if (!ep.available) excluded.push({ endpoint: ep.info.label, reason: ep.health.state.kind === 'open' ? 'breakerOpen' : 'ejected' });
  }
  for (const ep of set.draining) excluded.push({ endpoint: ep.info.label, reason: 'draining' });
  const hedge = inFlight !== undefined && inFlight.length > 0 ? ({ hedge: true } as const) : undefined;
  return Object.freeze({ attempt, ...hedge, strategy: balancer.name, chosen: chosen.info.label, ...(signal === undefined ? {} : { signal }), candidates: Object.freeze(candidates), excluded: Object.freeze(excluded), panic: set.panic, discoveryStale });
}
