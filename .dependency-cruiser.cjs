// Import rules, checked by `npm run lint` (dependency-cruiser; README, "Dependencies").
// Paths are resolved ones: `@proxyless/core` resolves to packages/core/src/index.ts
// through the workspace link and the `proxyless-source` condition, so a rule on
// `^packages/core/` catches the package name and a relative path alike.
// Names a package that is not resolvable (not a dependency) by its specifier too.
const pkg = (name) => `^(packages/${name}/|@proxyless/${name}(/|$))`;

// http-client's folders, lowest first: a module imports only its own layer and the ones below.
// shared (leaf types and errors) < config (options, policies) < endpoints (an endpoint's state,
// the set, picks) < observe (tracing) < request (a call and its attempts) < the client
// (src/client.ts, src/index.ts) < adapters (the fetch dispatcher, Prometheus).
const HTTP_CLIENT_LAYERS = ['shared', 'config', 'endpoints', 'observe', 'request', '', 'adapters'];
// The entry point (src/index.ts) re-exports every layer and is in none.
const layerPath = (layer) => (layer === '' ? '^packages/http-client/src/(?!index\\.ts$)[^/]+\\.ts$' : `^packages/http-client/src/${layer}/`);
const httpClientLayerRules = HTTP_CLIENT_LAYERS.slice(0, -1).map((layer, i) => ({
  name: `http-client-layer-${layer || 'client'}`,
  severity: 'error',
  comment:
    `packages/http-client/src/${layer || '*.ts'} may import only ${HTTP_CLIENT_LAYERS.slice(0, i + 1).map((l) => l || 'client').join(', ')} ` +
    '(layers, lowest first: shared < config < endpoints < observe < request < client < adapters). ' +
    'Move the shared type down into shared/, or let the lower module declare the narrow interface it needs.',
  from: { path: layerPath(layer) },
  to: { path: HTTP_CLIENT_LAYERS.slice(i + 1).map(layerPath) },
}));

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment:
        'Import cycle (type-only imports count: they tie the modules together for the compiler and the reader). ' +
        'Move the shared types into a leaf module both sides import (e.g. http-client/src/shared/attempt-outcome.ts), ' +
        'or let the lower module declare the narrow interface it needs and the higher one implement it (registrar/src/shutdown.ts ShutdownParticipant).',
      from: {},
      to: { circular: true },
    },
    {
      name: 'core-stays-generic',
      severity: 'error',
      comment:
        '@proxyless/core is what every transport and registry builds on: it never imports http-client, registrar, etcd or load-report. ' +
        'Move the shared piece into core, or keep it in the package that needs it.',
      from: { path: '^packages/core/' },
      to: { path: [pkg('http-client'), pkg('registrar'), pkg('etcd'), pkg('load-report'), pkg('gateway')] },
    },
    {
      name: 'registrar-not-http-client',
      severity: 'error',
      comment: 'The registrar registers a service; it does not call services. Nothing in it may import @proxyless/http-client.',
      from: { path: '^packages/registrar/' },
      to: { path: pkg('http-client') },
    },
    {
      name: 'http-client-not-registrar',
      severity: 'error',
      comment: 'The HTTP client finds and calls services; registering is the registrar\'s job. Nothing in it may import @proxyless/registrar.',
      from: { path: '^packages/http-client/' },
      to: { path: pkg('registrar') },
    },
    {
      name: 'etcd-not-http-client',
      severity: 'error',
      comment: '@proxyless/etcd is a resolver and registry; it does not depend on the HTTP client. Nothing in it may import @proxyless/http-client.',
      from: { path: '^packages/etcd/' },
      to: { path: pkg('http-client') },
    },
    {
      name: 'load-report-core-only',
      severity: 'error',
      comment:
        '@proxyless/load-report runs inside every service, on every request: it imports only @proxyless/core (the report format), ' +
        'never the client, the registrar or etcd. A service that reports its load need not register through Proxyless nor call anything.',
      from: { path: '^packages/load-report/' },
      to: { path: [pkg('http-client'), pkg('registrar'), pkg('etcd')] },
    },
    {
      name: 'nothing-imports-gateway',
      severity: 'error',
      comment: '@proxyless/gateway is the top of the stack (an application on the other packages): no other package imports it.',
      from: { path: '^packages/(core|registrar|http-client|etcd|load-report)/' },
      to: { path: pkg('gateway') },
    },
    {
      name: 'gateway-public-http-client',
      severity: 'error',
      comment: 'The gateway uses @proxyless/http-client as any user does: its public entry point only, never its internals.',
      from: { path: '^packages/gateway/' },
      to: { path: '^packages/http-client/src/(?!index\\.ts$)' },
    },
    {
      name: 'src-not-tests',
      severity: 'error',
      comment: 'Shipped code (packages/*/src) never imports tests or benches: they are not in the tarball. Move the helper into src.',
      from: { path: '^packages/[^/]+/src/' },
      to: { path: '^(test|bench)/|^packages/[^/]+/(test|bench)/' },
    },
    ...httpClientLayerRules,
  ],
  options: {
    // Type-only imports are edges too (a cycle of `import type` is still a cycle).
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.check.json' },
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '(^|/)(dist|coverage|docs|node_modules|packs)/' },
    enhancedResolveOptions: {
      // The workspace packages resolve to their TypeScript sources, as in tests.
      conditionNames: ['proxyless-source', 'import', 'types', 'default'],
      exportsFields: ['exports'],
      extensions: ['.ts', '.js', '.json'],
    },
  },
};
