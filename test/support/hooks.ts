/**
 * Mocha root hooks: provision Consul and etcd once for the whole run and print
 * which servers the integration tests talk to. A registry that cannot be
 * provisioned fails the run (it never skips the integration tests).
 */
import fc from 'fast-check';
import { consulBinary } from './consul.js';
import { etcdBinary } from './etcd.js';

// A property that fails shrinks synchronously, and mocha's timeout cannot stop a synchronous
// test: one failing property over doubles shrank for 89 minutes and took CI past its cap.
// Past this limit the run (shrinking included) stops and fails with its best counterexample.
fc.installGlobalPlugin(fc.interruptAfterTimeLimit(15_000, { failOnInterrupt: true }));

export const mochaHooks = {
  beforeAll(this: Mocha.Context): void {
    this.timeout(30 * 60_000); // a cold Go build of Consul (or etcd) takes minutes
    const consul = consulBinary();
    process.stderr.write(`Integration tests use Consul ${consul.version} (${consul.path})\n`);
    const etcd = etcdBinary();
    process.stderr.write(`Integration tests use etcd ${etcd.version} (${etcd.path})\n`);
  },
};
