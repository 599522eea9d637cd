/**
 * Mocha root hooks: provision Consul once for the whole run and print which
 * agent the integration tests talk to. A Consul that cannot be provisioned
 * fails the run (it never skips the integration tests).
 */
import { consulBinary } from './consul.js';

export const mochaHooks = {
  beforeAll(this: Mocha.Context): void {
    this.timeout(30 * 60_000); // a cold Go build of Consul takes minutes
    const { path, version } = consulBinary();
    process.stderr.write(`Integration tests use Consul ${version} (${path})\n`);
  },
};
