/**
 * `@proxyless/http-client` — see the package README for status.
 * @packageDocumentation
 */
export {};
