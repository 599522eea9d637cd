import type { Balancer, BalancerEndpoint, PickContext, Picker } from '@proxyless/core';

/**
 * Stand-in default until `@proxyless/core` exports `peakEwma()`: power of two
 * choices on `ewmaMs × (inFlight + 1)`, honouring `exclude`.
 * @internal
 */
export function fallbackBalancer(): Balancer {
  return {
    name: 'p2c-ewma-fallback',
    createPicker<E extends BalancerEndpoint>(endpoints: readonly E[]): Picker<E> {
      const list = Object.freeze([...endpoints]);
      const n = list.length;
      const cost = (e: E): number => (e.load.ewmaMs + 1) * (e.load.inFlight + 1);
      return {
        endpoints: list,
        pick(context?: PickContext): E | undefined {
          if (n === 0) return undefined;
          if (n === 1) return list[0];
          const exclude = context?.exclude;
          let a = list[(Math.random() * n) | 0]!;
          let b = list[(Math.random() * n) | 0]!;
          if (exclude !== undefined && exclude.size > 0) {
            const allowed = list.filter((e) => !exclude.has(e));
            if (allowed.length === 0) return a;
            a = allowed[(Math.random() * allowed.length) | 0]!;
            b = allowed[(Math.random() * allowed.length) | 0]!;
          }
          return cost(a) <= cost(b) ? a : b;
        },
      };
    },
  };
}
