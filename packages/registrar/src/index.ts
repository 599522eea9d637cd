/**
 * `@proxyless/registrar` — see the package README for status.
 * @packageDocumentation
 */
export {};
