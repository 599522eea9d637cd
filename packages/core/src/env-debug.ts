/**
 * A debug line per configuration read from the environment: which variables
 * were read, and which with the same prefix were not (a misspelt
 * `CONSUL_HTTP_ADRR` is ignored, and nothing else can notice it). Shown with
 * `NODE_DEBUG=proxyless`, Node's own switch for library debug output.
 * @internal
 * @module
 */
import { debuglog } from 'node:util';
import { nearest } from './validate.js';

const debug = debuglog('proxyless');

/**
 * Writes (under `NODE_DEBUG=proxyless`) which of `known` were set in `env`,
 * and any other variable starting with `prefix`, with the nearest known name.
 * Names only: values (tokens, passwords) are never written.
 * @internal
 */
export function debugEnvRead(what: string, prefix: string, known: readonly string[], env: NodeJS.ProcessEnv): void {
  if (!debug.enabled) return;
  const read = known.filter((name) => env[name] !== undefined && env[name] !== '');
  const others = Object.keys(env).filter((name) => name.startsWith(prefix) && !known.includes(name));
  const ignored = others.map((name) => {
    const near = nearest(name, known);
    return near !== undefined ? `${name} (did you mean ${near}?)` : name;
  });
  debug(`${what}: read ${read.length > 0 ? read.join(', ') : `no ${prefix}* variable`}` +
    (ignored.length > 0 ? `; not read: ${ignored.join(', ')}` : ''));
}
