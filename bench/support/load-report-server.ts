/**
 * A hello-world node:http server for bench/load-report.bench.ts, with or
 * without the load reporter (argv[2]: 'plain' | 'text' | 'json' | 'shedding'
 * (text, shedding on, not overloaded: the normal path) | 'shed' (shedding on
 * and every request shed: one request held in flight forever against an
 * in-flight limit of 1, the default priority `background`)). Over IPC it
 * answers 'stats' with its CPU time (µs) and the requests it answered.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { LoadReporter, loadReportListener } from '@proxyless/load-report';

const variant = process.argv[2] ?? 'plain';
let served = 0;
const hello = (_req: IncomingMessage, res: ServerResponse): void => {
  served++;
  res.end('hello');
};
const shedding = variant === 'shedding' ? true : variant === 'shed' ? { inFlightLimit: 1, eventLoopDelayMs: false as const, defaultPriority: 'background' as const } : false;
const reporter = variant === 'plain' ? undefined : new LoadReporter({ format: variant === 'json' ? 'JSON' : 'TEXT', shedding });
// 'shed': a request that never ends keeps the pressure at 1, where background is always shed.
if (variant === 'shed') reporter?.begin();
const shedCount = (): number => Object.values(reporter?.sheddingStats()?.shed ?? {}).reduce((a, b) => a + b, 0);
const server = createServer({ keepAliveTimeout: 30_000 }, reporter ? loadReportListener(reporter, hello) : hello);
server.listen(0, '127.0.0.1', () => {
  process.send?.({ port: (server.address() as { port: number }).port });
});
process.on('message', (message) => {
  if (message !== 'stats') return;
  const cpu = process.cpuUsage();
  process.send?.({ cpuUs: cpu.user + cpu.system, served: served + shedCount() });
});
process.on('disconnect', () => {
  server.close();
  server.closeAllConnections();
  void reporter?.close();
});
