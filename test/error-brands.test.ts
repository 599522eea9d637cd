/**
 * Every error class every package exports, found by walking each entry point
 * (not a hand-picked list): its own `Symbol.for` brand, its own `name` and a
 * stable `code`, and `instanceof` across a second copy of the packages (what
 * two installed versions of `@proxyless/core` give an app).
 */
import assert from 'node:assert/strict';
import { installSecondCopy, type SecondCopy } from './support/second-copy.js';
import { workspacePackages } from './support/packaging.js';

type ErrorClass = (new (...args: never[]) => Error) & { brand?: unknown };
type AnyArgs = new (...args: unknown[]) => Error;

/** Every entry point a user can import, from the packages' `exports` maps. */
const entryPoints = workspacePackages().flatMap(({ manifest }) =>
  Object.keys(manifest.exports ?? { '.': null })
    .filter((key) => key !== './package.json')
    .map((key) => (key === '.' ? manifest.name : `${manifest.name}${key.slice(1)}`)),
);

/** Every exported class that extends Error, once each (a re-export is the same class), with where it was first seen. */
const classes = new Map<ErrorClass, { entry: string; exportName: string }>();
for (const entry of entryPoints) {
  const module = (await import(entry)) as Record<string, unknown>;
  for (const [exportName, value] of Object.entries(module)) {
    if (typeof value !== 'function' || !((value as { prototype?: unknown }).prototype instanceof Error)) continue;
    if (!classes.has(value as ErrorClass)) classes.set(value as ErrorClass, { entry, exportName });
  }
}

const context = { service: 'svc', attempts: 1, endpointsTried: ['127.0.0.1:1'] };
/**
 * How to build one of each, by class name: only constructor arguments. A new
 * exported error class fails below until it gets a line here.
 */
const samples: Record<string, (C: AnyArgs) => Error> = {
  ProxylessError: (C) => new C('ERR_SAMPLE', 'sample'),
  InvalidOptionError: (C) => new C('x', 1, 'must be a string'),
  InvalidServiceNameError: (C) => new C('service', 'a b', 'must be a DNS label'),
  ClosedError: (C) => new C('the client'),
  AbortedError: (C) => new C('the call'),
  TimeoutError: (C) => new C('the call', 5),
  NoHealthyInstancesError: (C) => new C('svc'),
  ResolutionFailedError: (C) => new C('svc', 'consul', new Error('refused')),
  ConsulApiError: (C) => new C('GET', '/v1/health/service/svc', 500, 'boom'),
  ConsulUnreachableError: (C) => new C('http://127.0.0.1:1', { cause: new Error('refused') }),
  BadResponseError: (C) => new C('not JSON'),
  RegistrationLostError: (C) => new C('lease gone'),
  DnsRcodeError: (C) => new C('svc.service.consul', 'SERVFAIL'),
  EtcdApiError: (C) => new C('/v3/kv/range', 503, 14, 'no leader'),
  EtcdUnreachableError: (C) => new C('http://127.0.0.1:1', { cause: new Error('refused') }),
  MalformedValueError: (C) => new C('svc-1', 'not JSON'),
  RequestError: (C) => new C('ERR_SAMPLE', 'sample', context),
  NoHealthyEndpointsError: (C) => new C(context),
  CircuitOpenError: (C) => new C(context),
  DeadlineExceededError: (C) => new C(500, context),
  RetryBudgetExhaustedError: (C) => new C(context),
  RequestFailedError: (C) => new C('connect', context),
  ResponseTooLargeError: (C) => new C(10, context),
  UnknownServiceError: (C) => new C('http://svc', context),
  ConcurrencyLimitError: (C) => new C(context),
  AdmissionRejectedError: (C) => new C(0.5, context),
};

/** True when `ancestor` is `child` or one of its superclasses. */
function inherits(child: unknown, ancestor: unknown): boolean {
  for (let c = child; c !== null && c !== undefined; c = Object.getPrototypeOf(c)) if (c === ancestor) return true;
  return false;
}

describe('every exported error class: own brand, name and code; instanceof across two copies of the packages', () => {
  let copy: SecondCopy;
  before(() => {
    copy = installSecondCopy();
  });
  after(() => copy.remove());

  it('finds the error classes of every package (the walk is not empty)', () => {
    const entries = new Set([...classes.values()].map((c) => c.entry.split('/').slice(0, 2).join('/')));
    assert.deepEqual([...entries].sort(), ['@proxyless/core', '@proxyless/etcd', '@proxyless/http-client']);
    assert.ok(classes.size >= 20, `found ${classes.size}`);
  });

  for (const [Class, { entry, exportName }] of classes) {
    it(`${entry} ${exportName}`, async () => {
      const sample = samples[exportName];
      assert.ok(sample, `no sample for ${exportName}: add its constructor arguments to "samples"`);
      const brand = Object.hasOwn(Class, 'brand') ? Class.brand : undefined;
      assert.equal(typeof brand, 'symbol', `${exportName} declares no brand of its own (static readonly brand = errorBrand(...))`);
      assert.equal(typeof Symbol.keyFor(brand as symbol), 'string', `${exportName}'s brand is not a Symbol.for symbol`);
      for (const [other, where] of classes) {
        if (other !== Class && Object.hasOwn(other, 'brand')) assert.notEqual(other.brand, brand, `${exportName} shares its brand with ${where.exportName}`);
      }

      const error = sample(Class as unknown as AnyArgs);
      assert.equal(error.name, exportName, 'name');
      const code = (error as { code?: unknown }).code;
      assert.ok(typeof code === 'string' && /^ERR_[A-Z0-9_]+$/.test(code), `code ${String(code)}`);
      assert.equal(sample(Class as unknown as AnyArgs).name, error.name);
      assert.ok(String(error).startsWith(`${exportName}: `), String(error));

      // The same class from the second copy: a different class object with the same brand.
      const Copied = (await copy.import(entry))[exportName] as ErrorClass;
      assert.notEqual(Copied, Class, 'the second copy is a second module instance');
      const copied = sample(Copied as unknown as AnyArgs);
      assert.ok(copied instanceof Class, `an ${exportName} from another copy is not instanceof ${exportName}`);
      assert.ok(error instanceof Copied, `an ${exportName} is not instanceof the other copy's ${exportName}`);
      assert.equal(copied.name, exportName);
      assert.equal((copied as { code?: unknown }).code, code);
      // Never an instance of an unrelated class of either copy.
      for (const [other, where] of classes) {
        assert.equal(copied instanceof other, inherits(Class, other), `${exportName} instanceof ${where.exportName}`);
      }
    });
  }

  it('an unrelated class with the same name is never ours (names are never compared: a minifier may rename ours)', async () => {
    const { ClosedError } = await import('@proxyless/core');
    class ClosedErrorLookalike extends Error {}
    Object.defineProperty(ClosedErrorLookalike, 'name', { value: 'ClosedError' });
    assert.ok(!(new ClosedErrorLookalike('x') instanceof ClosedError));
  });
});
