import assert from 'node:assert/strict';
import { AbortedError, ClosedError, InvalidOptionError, InvalidServiceNameError, ProxylessError, TimeoutError, isProxylessError } from '@proxyless/core';
import { CircuitOpenError, DeadlineExceededError, NoHealthyEndpointsError, RequestError } from '@proxyless/http-client';

describe('errors: branded classes with explicit names and codes', () => {
  const context = { service: 'svc', attempts: 1, endpointsTried: ['127.0.0.1:1'] };

  it('carry Symbol.for("proxyless.error.<CODE>") brands, an explicit name and code', () => {
    const e = new DeadlineExceededError(500, context);
    assert.equal(e.name, 'DeadlineExceededError');
    assert.equal(e.code, 'ERR_DEADLINE_EXCEEDED');
    assert.equal((e as unknown as Record<symbol, unknown>)[Symbol.for('proxyless.error.ERR_DEADLINE_EXCEEDED')], true);
    assert.ok(e instanceof DeadlineExceededError && e instanceof RequestError && e instanceof ProxylessError && e instanceof Error);
    assert.equal(new InvalidServiceNameError('service', 'a.b', 'bad').name, 'InvalidServiceNameError');
    assert.ok(new InvalidServiceNameError('service', 'a.b', 'bad') instanceof InvalidOptionError, 'a subclass is an instance of its parent');
    assert.ok(!(new InvalidOptionError('x', 1, 'bad') instanceof InvalidServiceNameError), 'a parent is not an instance of its subclass');
    assert.ok(!(new ClosedError('x') instanceof AbortedError));
    assert.ok(!(new CircuitOpenError(context) instanceof NoHealthyEndpointsError));
    assert.ok(isProxylessError(new TimeoutError('x', 5), 'ERR_TIMEOUT'));
  });

  it('match an error from another copy of the package by brand, and never an unrelated class with the same name', () => {
    // What a second install (or a bundle) would produce: a different class object carrying the same brand.
    const fromOtherCopy = Object.assign(Object.create(Error.prototype) as Error, { code: 'ERR_CLOSED' });
    Object.defineProperty(fromOtherCopy, Symbol.for('proxyless.error.ProxylessError'), { value: true });
    Object.defineProperty(fromOtherCopy, Symbol.for('proxyless.error.ERR_CLOSED'), { value: true });
    assert.ok(fromOtherCopy instanceof ClosedError);
    assert.ok(fromOtherCopy instanceof ProxylessError);
    assert.ok(!(fromOtherCopy instanceof AbortedError));
    // A same-named class from somewhere else is not ours (a minifier may also rename ours: names are never compared).
    class ClosedErrorLookalike extends Error {}
    Object.defineProperty(ClosedErrorLookalike, 'name', { value: 'ClosedError' });
    assert.ok(!(new ClosedErrorLookalike('x') instanceof ClosedError));
  });
});
