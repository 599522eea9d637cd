/**
 * `fetch`-compatible input and output over {@link ProxylessClient.request}.
 * @internal
 * @module
 */
import { Readable } from 'node:stream';
import { copyPerCall, type ProxylessRequestInit, type RequestBody, type RequestOptions } from '../config/call-options.js';
import type { ClientResponse } from './request-types.js';

const NULL_BODY_STATUSES = new Set([101, 103, 204, 205, 304]);

/** Turns fetch arguments into request options: the URL's path and query, headers, a replayable body where possible. */
export async function toRequestOptions(input: string | URL | Request, init: ProxylessRequestInit): Promise<RequestOptions> {
  let url: string;
  let method = init.method;
  let headersInit = init.headers;
  let bodyInit: RequestInit['body'] = init.body;
  let signal = init.signal ?? undefined;
  if (input instanceof Request) {
    url = input.url;
    method ??= input.method;
    headersInit ??= input.headers;
    signal ??= input.signal;
    if (bodyInit === undefined && input.body !== null) bodyInit = new Uint8Array(await input.arrayBuffer());
  } else {
    url = input instanceof URL ? input.href : input;
  }
  let path = url;
  if (!url.startsWith('/')) {
    const u = new URL(url);
    path = u.pathname + u.search;
  }
  const headers: Record<string, string> = {};
  if (headersInit !== undefined) new Headers(headersInit).forEach((value, key) => (headers[key] = value));
  let body: RequestBody | undefined;
  if (bodyInit === undefined || bodyInit === null || typeof bodyInit === 'string' || bodyInit instanceof Uint8Array) {
    body = bodyInit;
  } else if (bodyInit instanceof ReadableStream) {
    // Not replayable: such a request is never retried once it may have been sent.
    body = Readable.fromWeb(bodyInit as import('node:stream/web').ReadableStream<Uint8Array>);
  } else {
    // ArrayBuffer, views, Blob, URLSearchParams, FormData: let the platform serialise (and set content-type).
    const serialised = new Response(bodyInit);
    body = new Uint8Array(await serialised.arrayBuffer());
    const type = serialised.headers.get('content-type');
    if (type !== null) headers['content-type'] ??= type;
  }
  const req: RequestOptions = { path, method: (method ?? 'GET').toUpperCase(), headers, body };
  if (signal) req.signal = signal;
  copyPerCall(init, req);
  return req;
}

/** Wraps a client response as a WHATWG `Response` (null body for HEAD and null-body statuses). */
export async function toWebResponse(res: ClientResponse, method: string): Promise<Response> {
  const headers = new Headers();
  for (const [key, value] of Object.entries(res.headers)) {
    if (Array.isArray(value)) for (const v of value) headers.append(key, v);
    else if (value !== undefined) headers.append(key, value);
  }
  const nullBody = NULL_BODY_STATUSES.has(res.statusCode) || method === 'HEAD';
  if (nullBody) await res.body.dump();
  const webBody = nullBody ? null : (Readable.toWeb(res.body) as ReadableStream<Uint8Array>);
  return new Response(webBody, { status: res.statusCode, headers });
}
