/**
 * Pick cost per balancing strategy at 3, 100 and 10 000 endpoints (ns/pick),
 * and at 10 000 endpoints with one in ten unavailable (breaker open or
 * ejected: skipped at pick time); the cost of building a picker at 10 000
 * endpoints (done when the set's membership changes); and the cost of an
 * availability change at 10 000 endpoints (one endpoint's `available` flipped,
 * the picker told, one pick) — all through core's public balancer API.
 * Then the same at the client's endpoint set (10 000 endpoints, peak EWMA and
 * Maglev): one attempt's bookkeeping (pick + done) and one availability
 * change (an endpoint's breaker opens: the decision, the set's counts, the
 * picker told, then one attempt), through bench/support/endpoint-set-adapter.ts,
 * the only place that knows the client's internals.
 *
 * Each build runs in a worker process of its own (build-process.ts): this
 * tree's build, and with BENCH_CLIENT_BEFORE=<checkout> (built there) that
 * checkout's too; rounds alternate between them (A B B A …) after a warm-up,
 * each round one sample per cell; each pick measurement is a loop bounded by
 * pick count and by duration; each round's availability-change figure is the
 * median of PICKERS_CHANGES changes. Reports median [min–max] per build and,
 * with BEFORE, this ÷ BEFORE per round (median [min–max]).
 *
 * Run (after `npm run build`):
 *   npm run bench -- bench/pickers.bench.ts
 *   BENCH_CLIENT_BEFORE=/work/wt/before npm run bench -- bench/pickers.bench.ts
 * Knobs: PICKERS_RUNS (5), PICKERS_MAX_MS per pick loop (150), PICKERS_CHANGES (21).
 */
import { cpus, loadavg } from 'node:os';
import { pathToFileURL } from 'node:url';
import { checkoutsToCompare } from './support/builds.js';
import { startBuildProcesses, type BuildProcess } from './support/build-process.js';
import { SET_STRATEGIES, STRATEGIES, type RoundArgs, type RoundResult } from './support/picker-round.js';

const SIZES = [3, 100, 10_000];
const RUNS = Number(process.env['PICKERS_RUNS'] ?? 5);
const ARGS: RoundArgs = {
  sizes: SIZES,
  maxPicks: 2_000_000,
  maxMs: Number(process.env['PICKERS_MAX_MS'] ?? 150),
  changes: Number(process.env['PICKERS_CHANGES'] ?? 21),
};
const MODULE = './picker-round.ts';
const BIG = SIZES[SIZES.length - 1]!;

const median = (xs: number[]): number => {
  const s = [...xs].filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  return s.length === 0 ? NaN : (s[(s.length - 1) >> 1]! + s[s.length >> 1]!) / 2;
};
const ns = (v: number): string => (v >= 1000 ? `${(v / 1000).toFixed(1)}µs` : v.toFixed(1));
const fixed = (digits: number) => (v: number): string => v.toFixed(digits);
const mm = (xs: number[] | undefined, f: (v: number) => string): string => {
  const v = (xs ?? []).filter((x) => !Number.isNaN(x));
  return v.length === 0 ? 'n/a' : `${f(median(v))} [${f(Math.min(...v))}–${f(Math.max(...v))}]`;
};
const ratio = (a: number[] | undefined, b: number[] | undefined): string => {
  const rs = (a ?? []).map((x, i) => x / (b ?? [])[i]!).filter((r) => Number.isFinite(r));
  return rs.length === 0 ? 'n/a' : `${median(rs).toFixed(2)}× [${Math.min(...rs).toFixed(2)}–${Math.max(...rs).toFixed(2)}]`;
};

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (row: string[]): string => row.map((v, i) => (i === 0 ? v.padEnd(widths[i]!) : v.padStart(widths[i]!))).join('  ');
  return [line(header), ...rows.map(line)].join('\n');
}

/** Runs the benchmark and prints the tables (per build; with BEFORE, side by side with ratios). */
export async function run(): Promise<void> {
  const checkouts = checkoutsToCompare();
  const builds = await startBuildProcesses(checkouts);
  const samples = new Map<BuildProcess, Map<string, number[]>>(builds.map((b) => [b, new Map()]));
  const layouts = new Map<BuildProcess, string>();
  try {
    for (let r = 0; r < RUNS; r++) {
      for (const b of r % 2 === 0 ? builds : [...builds].reverse()) {
        const res = await b.call<RoundResult>(MODULE, 'round', ARGS);
        layouts.set(b, res.setLayout);
        const mine = samples.get(b)!;
        for (const [k, v] of Object.entries(res.samples)) mine.set(k, [...(mine.get(k) ?? []), v]);
      }
    }
    for (const b of builds) await b.call(MODULE, 'close');
  } finally {
    for (const b of builds) await b.stop();
  }

  console.log(`\n# picker cost: median of ${RUNS} rounds [min–max]; each pick loop ≤ ${ARGS.maxPicks} picks and ≤ ${ARGS.maxMs} ms; availability change: median of ${ARGS.changes} per round`);
  console.log(`command: ${checkouts.length > 1 ? `BENCH_CLIENT_BEFORE=${checkouts[1]!.dir} ` : ''}npm run bench -- bench/pickers.bench.ts (PICKERS_RUNS=${RUNS} PICKERS_MAX_MS=${ARGS.maxMs} PICKERS_CHANGES=${ARGS.changes})`);
  console.log(`${cpus()[0]?.model ?? 'unknown CPU'} × ${cpus().length}, load average at the end ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  console.log(`builds, each in its own process:\n${builds.map((b) => `- ${b.describe()}; endpoint set: ${layouts.get(b) ?? '?'}`).join('\n')}`);

  for (const b of builds) {
    const s = samples.get(b)!;
    console.log(`\n## ${b.label}: core's pickers (ns/pick; build ms and availability change µs at n=${BIG})\n`);
    console.log(
      table(
        ['strategy', ...SIZES.map((n) => `n=${n}`), `n=${BIG}, 1 in 10 unavailable`, 'build ms', 'availability change µs'],
        STRATEGIES.map((st) => [
          st,
          ...SIZES.map((n) => mm(s.get(`pick|${st}|${n}`), ns)),
          mm(s.get(`pick|${st}|${BIG}/10`), ns),
          mm(s.get(`build|${st}`), fixed(2)),
          mm(s.get(`change|${st}`), fixed(1)),
        ]),
      ),
    );
  }

  const setRows = (b: BuildProcess): string[][] =>
    SET_STRATEGIES.map((st) => [st, b.label, mm(samples.get(b)!.get(`setAttempt|${st}`), ns), mm(samples.get(b)!.get(`setChange|${st}`), fixed(1))]);
  if (builds.length === 1) {
    console.log(`\n## the client's endpoint set at n=${BIG} (via bench/support/endpoint-set-adapter.ts)\n`);
    console.log(table(['strategy', 'build', 'attempt (pick + done) ns', 'breaker opens + one attempt µs'], setRows(builds[0]!)));
    return;
  }
  const [a, z] = builds as [BuildProcess, BuildProcess];
  const sa = samples.get(a)!;
  const sz = samples.get(z)!;
  console.log(`\n## side by side at n=${BIG}: this build vs BEFORE (this ÷ BEFORE per round, median [min–max])\n`);
  const cols: [string, string, (v: number) => string][] = [
    ['ns/pick', `pick|%|${BIG}`, ns],
    ['1 in 10 unavailable ns/pick', `pick|%|${BIG}/10`, ns],
    ['build ms', 'build|%', fixed(2)],
    ['availability change µs', 'change|%', fixed(1)],
  ];
  console.log(
    table(
      ['strategy', ...cols.flatMap(([c]) => [`${c}, this`, 'BEFORE', '×'])],
      STRATEGIES.map((st) => [
        st,
        ...cols.flatMap(([, k, f]) => {
          const key = k.replace('%', st);
          return [mm(sa.get(key), f), mm(sz.get(key), f), ratio(sa.get(key), sz.get(key))];
        }),
      ]),
    ),
  );
  console.log(`\n## the client's endpoint set at n=${BIG} (via bench/support/endpoint-set-adapter.ts): this build vs BEFORE\n`);
  console.log(
    table(
      ['strategy', 'attempt (pick + done) ns, this', 'BEFORE', '×', 'breaker opens + one attempt µs, this', 'BEFORE', '×'],
      SET_STRATEGIES.map((st) => [
        st,
        mm(sa.get(`setAttempt|${st}`), ns),
        mm(sz.get(`setAttempt|${st}`), ns),
        ratio(sa.get(`setAttempt|${st}`), sz.get(`setAttempt|${st}`)),
        mm(sa.get(`setChange|${st}`), fixed(1)),
        mm(sz.get(`setChange|${st}`), fixed(1)),
        ratio(sa.get(`setChange|${st}`), sz.get(`setChange|${st}`)),
      ]),
    ),
  );
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await run();
}
