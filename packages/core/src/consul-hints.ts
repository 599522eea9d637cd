import type { ConsulTlsOptions } from './consul-config.js';

/** Node/OpenSSL codes for "the server's certificate chain does not lead to a CA we trust". */
const untrustedCodes = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_UNTRUSTED',
  'CERT_SIGNATURE_FAILURE',
]);

function codeAndMessage(cause: unknown): { code: string; message: string } {
  if (!(cause instanceof Error)) return { code: '', message: String(cause) };
  const code = (cause as { code?: unknown }).code;
  return { code: typeof code === 'string' ? code : '', message: cause.message };
}

/**
 * What to do about a connection failure whose cause says more than
 * "unreachable": the TLS trust, client certificate, server name, or HTTP vs
 * HTTPS mistakes a first set-up makes. `undefined` when the cause is not one
 * of those (a refused connection names the address already).
 * @internal
 */
export function connectionHint(cause: unknown, origin: string, tls: ConsulTlsOptions | undefined): string | undefined {
  const { code, message } = codeAndMessage(cause);
  if (untrustedCodes.has(code)) {
    return "the agent's TLS certificate is not signed by a CA this client trusts: set CONSUL_CACERT (or the tls.ca option) " +
      'to the CA that signed it (consul-agent-ca.pem for certificates made with `consul tls`)';
  }
  if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID') {
    return `the agent's TLS certificate ${code === 'CERT_HAS_EXPIRED' ? 'has expired' : 'is not valid yet'}: renew it on the agent, or check this machine's clock`;
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    const checked = tls?.serverName ?? new URL(origin).hostname;
    return `the agent's TLS certificate does not carry the name "${checked}": set CONSUL_TLS_SERVER_NAME (or the tls.serverName option) ` +
      "to a name it carries (Consul's server certificates carry server.<datacenter>.<domain>, e.g. server.dc1.consul, localhost and 127.0.0.1)";
  }
  if (code === 'ERR_SSL_WRONG_VERSION_NUMBER' || /wrong version number/i.test(message)) {
    return 'the agent at this address does not speak TLS: use an http:// address (or unset CONSUL_HTTP_SSL), or its HTTPS port';
  }
  if (origin.startsWith('https:') && (code === 'UND_ERR_SOCKET' || code === 'ECONNRESET' || /certificate required/i.test(message))) {
    return tls?.cert
      ? 'the agent closed the TLS connection: if it checks client certificates (verify_incoming), this one is not signed by a CA in its ca_file'
      : 'the agent closed the TLS connection: if it requires client certificates (verify_incoming), set CONSUL_CLIENT_CERT and CONSUL_CLIENT_KEY ' +
        '(or the tls.cert and tls.key options)';
  }
  return undefined;
}

/** Consul's answer when plain HTTP reaches its HTTPS port. @internal */
export const httpToHttpsHint = 'this address serves HTTPS: use https:// in CONSUL_HTTP_ADDR, or set CONSUL_HTTP_SSL=true';
