/**
 * `REGISTRY` for the examples: `consul` (the default, also when unset) or
 * `etcd`. Anything else ends the process with one line and exit code 2: a
 * typo such as `REGISTRY=etc` must not quietly mean Consul.
 */
export function registryFromEnv(env: NodeJS.ProcessEnv = process.env): 'consul' | 'etcd' {
  const value = env['REGISTRY'];
  if (value === undefined || value === '' || value === 'consul') return 'consul';
  if (value === 'etcd') return 'etcd';
  const near = /^e/i.test(value) ? 'etcd' : /^c/i.test(value) ? 'consul' : undefined;
  process.stderr.write(`REGISTRY must be "consul" or "etcd" (unset means consul), got ${JSON.stringify(value)}${near ? `: did you mean "${near}"?` : ''}\n`);
  process.exit(2);
}
