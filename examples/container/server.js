// The app inside the container: a plain Node HTTP server that knows nothing
// about Consul. proxyless-register (the entrypoint) registers it, health-checks
// /health, and drains + deregisters it before passing SIGTERM on.
import { createServer } from 'node:http';

const port = Number(process.env.PORT ?? 8080);
const server = createServer((req, res) => {
  if (req.url === '/health') {
    res.end('ok\n');
    return;
  }
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ app: 'container-example', pid: process.pid, port }) + '\n');
});
// 0.0.0.0: inside a container the app must accept connections from other hosts.
server.listen(port, process.env.HOST ?? '0.0.0.0', () => console.log(`app listening on ${port}`));

// By the time the signal arrives we are already out of rotation and
// deregistered: finish in-flight requests, then exit with APP_EXIT_CODE (default 0).
process.on('SIGTERM', () => {
  console.log('app: SIGTERM, closing');
  server.close(() => process.exit(Number(process.env.APP_EXIT_CODE ?? 0)));
  server.closeIdleConnections();
});
