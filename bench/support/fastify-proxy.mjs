/**
 * Bench peer, plain JavaScript (run by node itself, no tsx transform): the
 * candidate base the issue names, Fastify + `@fastify/reply-from` with the
 * Proxyless undici dispatcher underneath (the built `@proxyless/http-client`,
 * its default client options), routing every path to the service `bench`
 * found in Consul (`CONSUL_HTTP_ADDR`). One process.
 * Args: a JSON object { port }. Prints "ready".
 */
import Fastify from 'fastify';
import replyFrom from '@fastify/reply-from';
import { ConsulHttpClient, ConsulResolver } from '@proxyless/core';
import { createDispatcher } from '@proxyless/http-client';

const { port } = JSON.parse(process.argv[2] ?? '{}');
const resolver = new ConsulResolver({ client: new ConsulHttpClient({ address: process.env.CONSUL_HTTP_ADDR ?? '127.0.0.1:8500' }) });
const dispatcher = createDispatcher({ resolver });
const app = Fastify({ logger: false });
await app.register(replyFrom, { base: 'http://bench', undici: dispatcher });
// Fastify answers OPTIONS/HEAD itself only when told to; the bench sends GETs.
app.all('/bench/*', (request, reply) => reply.from(request.url.slice('/bench'.length) || '/'));
await app.listen({ port, host: '127.0.0.1' });
process.stdout.write('ready\n');
process.on('SIGTERM', () => process.exit(0));
