/**
 * Test support: a throw-away CA and certificates it signs, made with the
 * machine's `openssl` at test time (EC P-256, valid two days, SAN
 * `IP:127.0.0.1, DNS:localhost`). No key or certificate is checked in.
 */
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A certificate and its key, as files and PEM. */
export interface IssuedCertificate {
  readonly certFile: string;
  readonly keyFile: string;
  readonly cert: Buffer;
  readonly key: Buffer;
  /** As `getPeerCertificate().fingerprint256` and `X509Certificate.fingerprint256` print it. */
  readonly fingerprint256: string;
}

/** A CA in a temporary directory. */
export interface TestCa {
  readonly dir: string;
  readonly caFile: string;
  readonly ca: Buffer;
  /** Issues a certificate for `name` (its CN), for 127.0.0.1 and localhost. */
  issue(name: string): IssuedCertificate;
  /** Removes the directory. */
  remove(): void;
}

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: 'pipe' });
  } catch (error) {
    throw new Error(`openssl ${args[0] ?? ''} failed (these tests need the openssl command): ${(error as Error).message}`, { cause: error });
  }
}

const ecKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

export function createTestCa(): TestCa {
  const dir = mkdtempSync(join(tmpdir(), 'proxyless-certs-'));
  openssl(['req', '-x509', ...ecKey, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=Proxyless Test CA'], dir);
  writeFileSync(join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  return {
    dir,
    caFile: join(dir, 'ca.pem'),
    ca: readFileSync(join(dir, 'ca.pem')),
    issue(name) {
      openssl(['req', ...ecKey, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`], dir);
      openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.pem`, '-days', '2', '-extfile', 'san.ext'], dir);
      const cert = readFileSync(join(dir, `${name}.pem`));
      return { certFile: join(dir, `${name}.pem`), keyFile: join(dir, `${name}.key`), cert, key: readFileSync(join(dir, `${name}.key`)), fingerprint256: new X509Certificate(cert).fingerprint256 };
    },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
