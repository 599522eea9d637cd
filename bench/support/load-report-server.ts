/**
 * A hello-world node:http server for bench/load-report.bench.ts, with or
 * without the load reporter (argv[2]: 'plain' | 'text' | 'json'). Over IPC it
 * answers 'stats' with its CPU time (µs) and the requests it served.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { LoadReporter, loadReportListener } from '@proxyless/load-report';

const variant = process.argv[2] ?? 'plain';
let served = 0;
const hello = (_req: IncomingMessage, res: ServerResponse): void => {
  served++;
  res.end('hello');
};
const reporter = variant === 'plain' ? undefined : new LoadReporter({ format: variant === 'json' ? 'JSON' : 'TEXT' });
const server = createServer({ keepAliveTimeout: 30_000 }, reporter ? loadReportListener(reporter, hello) : hello);
server.listen(0, '127.0.0.1', () => {
  process.send?.({ port: (server.address() as { port: number }).port });
});
process.on('message', (message) => {
  if (message !== 'stats') return;
  const cpu = process.cpuUsage();
  process.send?.({ cpuUs: cpu.user + cpu.system, served });
});
process.on('disconnect', () => {
  server.close();
  server.closeAllConnections();
  void reporter?.close();
});
