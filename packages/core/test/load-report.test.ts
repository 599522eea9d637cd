import assert from 'node:assert/strict';
import fc from 'fast-check';
import { formatLoadReport, isLoadReportKey, loadReportLimits, parseLoadReport, type LoadReport } from '../src/index.js';

// Envoy's example report (test/common/orca/orca_parser_test.cc, exampleOrcaLoadReport).
const envoyExample: LoadReport = {
  cpu_utilization: 0.7,
  application_utilization: 0.8,
  mem_utilization: 0.9,
  eps: 2,
  rps_fractional: 1000,
  named_metrics: { foo: 123, bar: 0.2 },
  utilization: { total: 0.5 },
};

describe('load report (endpoint-load-metrics)', () => {
  describe("Envoy's parser examples", () => {
    it('reads the TEXT form with = and with :', () => {
      const pairs = 'cpu_utilization{}0.7,application_utilization{}0.8,mem_utilization{}0.9,rps_fractional{}1000,eps{}2,' +
        'named_metrics.foo{}123,named_metrics.bar{}0.2,utilization.total{}0.5';
      assert.deepEqual(parseLoadReport(`TEXT ${pairs.replaceAll('{}', '=')}`), envoyExample);
      assert.deepEqual(parseLoadReport(`TEXT ${pairs.replaceAll('{}', ':')}`), envoyExample);
    });

    it('reads the JSON form', () => {
      const json = 'JSON {"cpu_utilization": 0.7, "application_utilization": 0.8, "mem_utilization": 0.9, "rps_fractional": 1000, "eps": 2, ' +
        '"named_metrics": {"foo": 123,"bar": 0.2}, "utilization": {"total": 0.5}}';
      assert.deepEqual(parseLoadReport(json), envoyExample);
    });

    it('rejects what Envoy rejects', () => {
      const rejected = [
        '', // EmptyOrcaHeader
        'BAD random-value', // InvalidOrcaHeaderPrefix
        'BADBAD random-value',
        'TEXT cpu_utilization="0.7"', // IncorrectFieldType
        'TEXT cpu_utilization=nan', // NanMetricValue
        'TEXT cpu_utilization=NaN',
        'TEXT cpu_utilization=inf', // InfinityMetricValue
        'TEXT cpu_utilization=Infinity',
        'TEXT cpu_utilization=-1', // NegativeMetricValue
        'TEXT cpu_utilization=0.7,cpu_utilization=0.8', // ContainsDuplicateMetric
        'TEXT cpu_utilization=0.7,unsupported_metric=0.8', // UnsupportedMetric
        'TEXT utilization.=0.9', // EmptyUtilizationMetricKey
        'TEXT named_metrics.foo=123,named_metrics.duplicate=123,named_metrics.duplicate=0.2', // DuplicateNamedMetric
        'TEXT named_metrics.=123', // EmptyNamedMetricKey
        'TEXT not-a-list-of-key-value-pairs', // InvalidNativeHttpEncodedHeader
        'JSON JSON not-a-valid-json-string', // InvalidJsonHeader
        'JSON {"cpu_utilization": 0.7, "application_utilization": 0.8, "mem_utilization": 0.9, "rps_fractional": 1000, "eps": 2,  ' +
          '"unknown_field": 2,"named_metrics": {"foo": 123,"bar": 0.2}}', // JsonHeaderUnknownField
        'JSON {"cpu_utilization": "0.7"', // JsonHeaderIncorrectFieldType
        'JSON {"cpu_utilization": "0.7"}',
        'BIN CZqZmZmZmbk/MQAAAAAAAABAQg4KA2ZvbxGamZmZmZm5P0IOCgNiYXIRmpmZmZmZyT8=', // binary: not read here
      ];
      for (const value of rejected) assert.equal(parseLoadReport(value), undefined, value);
    });
  });

  it("reads the ORCA specification's and Triton's TEXT example", () => {
    assert.deepEqual(
      parseLoadReport('TEXT cpu_utilization=0.3, mem_utilization=0.8, rps_fractional=10.0, eps=1, named_metrics.custom_metric_util=0.4'),
      { cpu_utilization: 0.3, mem_utilization: 0.8, rps_fractional: 10, eps: 1, named_metrics: { custom_metric_util: 0.4 } },
    );
  });

  it("reads vLLM's reports, including one with no metrics (its 'TEXT ' arrives trimmed)", () => {
    assert.deepEqual(parseLoadReport('TEXT named_metrics.kv_cache_usage_perc=0.4, named_metrics.num_requests_waiting=10.0'), {
      named_metrics: { kv_cache_usage_perc: 0.4, num_requests_waiting: 10 },
    });
    assert.deepEqual(parseLoadReport('TEXT '), {});
    assert.deepEqual(parseLoadReport('TEXT'), {});
    assert.deepEqual(parseLoadReport('JSON {"named_metrics": {"kv_cache_usage_perc": 0.4}}'), { named_metrics: { kv_cache_usage_perc: 0.4 } });
  });

  it('reads the lowerCamelCase JSON names of the proto3 JSON mapping, but not both spellings of one field', () => {
    assert.deepEqual(parseLoadReport('JSON {"cpuUtilization":0.5,"rpsFractional":3,"namedMetrics":{"q":1}}'), {
      cpu_utilization: 0.5,
      rps_fractional: 3,
      named_metrics: { q: 1 },
    });
    assert.equal(parseLoadReport('JSON {"cpuUtilization":0.5,"cpu_utilization":0.5}'), undefined);
    assert.equal(parseLoadReport('JSON {"named_metrics":{"a":1},"namedMetrics":{"b":1}}'), undefined);
  });

  it('rejects out-of-range utilisation, negative rates and costs, and lets CPU and application utilisation exceed 1', () => {
    for (const value of [
      'TEXT mem_utilization=1.01',
      'TEXT utilization.gpu=2',
      'TEXT eps=-0.5',
      'TEXT rps_fractional=-1',
      'TEXT request_cost.bytes=-3',
      'TEXT named_metrics.x=-1',
      'TEXT cpu_utilization=1e400',
      'JSON {"mem_utilization":1.5}',
      'JSON {"utilization":{"gpu":1.0001}}',
      'JSON {"eps":-1}',
    ]) {
      assert.equal(parseLoadReport(value), undefined, value);
    }
    assert.deepEqual(parseLoadReport('TEXT cpu_utilization=1.5, application_utilization=2'), { cpu_utilization: 1.5, application_utilization: 2 });
  });

  it('rejects duplicates inside JSON, which JSON.parse would hide', () => {
    assert.equal(parseLoadReport('JSON {"eps":1,"eps":2}'), undefined);
    assert.equal(parseLoadReport('JSON {"named_metrics":{"a":1,"a":2}}'), undefined);
  });

  it('rejects oversize values, too many map entries and long or odd keys', () => {
    const many = (n: number) => 'TEXT ' + Array.from({ length: n }, (_, i) => `named_metrics.m${i}=1`).join(', ');
    assert.ok(parseLoadReport(many(loadReportLimits.maxMapEntries)));
    assert.equal(parseLoadReport(many(loadReportLimits.maxMapEntries + 1)), undefined);
    const long = `TEXT cpu_utilization=0.5${' '.repeat(loadReportLimits.maxChars)}`;
    assert.equal(parseLoadReport(long), undefined);
    assert.ok(parseLoadReport(`TEXT named_metrics.${'k'.repeat(loadReportLimits.maxKeyChars)}=1`));
    assert.equal(parseLoadReport(`TEXT named_metrics.${'k'.repeat(loadReportLimits.maxKeyChars + 1)}=1`), undefined);
    for (const key of ['__proto__', 'constructor', 'a b', 'a"b', 'a\\u0062', 'é']) {
      assert.equal(parseLoadReport(`JSON {"named_metrics":{"${key}":1}}`), undefined, key);
      assert.equal(isLoadReportKey(key), false, key);
    }
    assert.equal(parseLoadReport('TEXT named_metrics.__proto__=1'), undefined);
  });

  it('rejects JSON that is not exactly one object of numbers and number maps', () => {
    for (const value of [
      'JSON ',
      'JSON {',
      'JSON {}}',
      'JSON {} {}',
      'JSON []',
      'JSON {"eps":1,}',
      'JSON {"eps":01}',
      'JSON {"eps":.5}',
      'JSON {"eps":1.}',
      'JSON {"eps":true}',
      'JSON {"eps":null}',
      'JSON {"named_metrics":{"a":{"b":1}}}',
      'JSON {"named_metrics":[1]}',
      'JSON {"named_metrics":1}',
      "JSON {'eps':1}",
      'json {"eps":1}',
      'TEXT eps=1,',
      'TEXT ,eps=1',
      'TEXT eps=1 2',
      'TEXT eps==1',
      'TEXT eps=0x10',
      'TEXT bogus.key=1',
    ]) {
      assert.equal(parseLoadReport(value), undefined, value);
    }
    assert.deepEqual(parseLoadReport('JSON {}'), {});
    assert.deepEqual(parseLoadReport('  JSON { "eps" : 1e-3 }  '), { eps: 0.001 });
  });

  it('never throws on values that are not strings', () => {
    for (const value of [undefined, null, 1, {}, ['TEXT eps=1'], Symbol('x')]) {
      assert.equal(parseLoadReport(value as string), undefined);
    }
  });

  it('returns frozen reports of plain objects', () => {
    const report = parseLoadReport('TEXT eps=1, named_metrics.a=2');
    assert.ok(report && Object.isFrozen(report) && Object.isFrozen(report.named_metrics));
    assert.equal(Object.getPrototypeOf(report.named_metrics), Object.prototype);
  });

  describe('format', () => {
    it('writes the TEXT and JSON forms in proto field order', () => {
      const report: LoadReport = { named_metrics: { foo: 1 }, rps_fractional: 10, cpu_utilization: 0.3 };
      assert.equal(formatLoadReport(report), 'TEXT cpu_utilization=0.3, rps_fractional=10, named_metrics.foo=1');
      assert.equal(formatLoadReport(report, 'JSON'), 'JSON {"cpu_utilization":0.3,"rps_fractional":10,"named_metrics":{"foo":1}}');
      assert.equal(formatLoadReport({}), 'TEXT ');
      assert.equal(formatLoadReport({}, 'JSON'), 'JSON {}');
    });

    it('leaves out what a reader would reject, so one bad metric does not void the report', () => {
      const report = {
        cpu_utilization: Number.NaN,
        mem_utilization: 2,
        eps: -1,
        rps_fractional: 5,
        named_metrics: { ok: 1, 'bad key': 2, neg: -1, inf: Infinity },
      };
      assert.equal(formatLoadReport(report), 'TEXT rps_fractional=5, named_metrics.ok=1');
      assert.equal(formatLoadReport(report, 'JSON'), 'JSON {"rps_fractional":5,"named_metrics":{"ok":1}}');
    });
  });

  describe('properties', () => {
    const key = fc.stringMatching(/^[A-Za-z0-9_\-./]{1,20}$/).filter((k) => isLoadReportKey(k));
    const unbounded = fc.double({ min: 0, max: 1e12, noNaN: true, noDefaultInfinity: true }).map((v) => v + 0);
    const fraction = fc.double({ min: 0, max: 1, noNaN: true }).map((v) => v + 0);
    const map = (value: fc.Arbitrary<number>) => fc.dictionary(key, value, { maxKeys: 8 }).map((d) => ({ ...d }));
    const report: fc.Arbitrary<LoadReport> = fc.record(
      {
        cpu_utilization: unbounded,
        mem_utilization: fraction,
        application_utilization: unbounded,
        rps_fractional: unbounded,
        eps: unbounded,
        request_cost: map(unbounded),
        utilization: map(fraction),
        named_metrics: map(unbounded),
      },
      { requiredKeys: [] },
    ).map((r) => {
      // An empty map is written as nothing and read as absent.
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(r)) if (typeof v === 'number' || Object.keys(v).length > 0) out[k] = v;
      return out;
    });

    it('parse(format(report)) is the report, in both forms', () => {
      fc.assert(
        fc.property(report, fc.constantFrom('TEXT' as const, 'JSON' as const), (r, format) => {
          assert.deepEqual(parseLoadReport(formatLoadReport(r, format)), r);
        }),
        { numRuns: 2000 },
      );
    });

    // Garbage built from the grammar's own pieces reaches deeper than random text.
    const piece = fc.constantFrom(
      'TEXT ', 'JSON ', 'cpu_utilization', 'mem_utilization', 'named_metrics.', 'utilization.', 'request_cost.', 'eps', '=', ':', ',', ' ',
      '{', '}', '"', '"named_metrics"', '"eps"', '0.5', '-1', '1e308', '1e309', 'NaN', 'Infinity', '__proto__', '\\u0000', '.', '\t',
    );
    const garbage = fc.oneof(
      fc.string({ maxLength: 200 }),
      fc.string({ unit: 'binary', maxLength: 200 }),
      fc.array(piece, { maxLength: 40 }).map((parts) => parts.join('')),
      fc.tuple(fc.constantFrom('TEXT ', 'JSON '), fc.array(piece, { maxLength: 40 })).map(([p, parts]) => p + parts.join('')),
    );

    it('random input never throws and never yields a negative, non-finite or out-of-range number', () => {
      fc.assert(
        fc.property(garbage, (value) => {
          const parsed = parseLoadReport(value);
          if (parsed === undefined) return;
          for (const [field, v] of Object.entries(parsed)) {
            const values: unknown[] = typeof v === 'number' ? [v] : Object.values(v as object);
            for (const n of values) {
              assert.ok(typeof n === 'number' && Number.isFinite(n) && n >= 0, `${field}: ${String(n)}`);
              if (field === 'mem_utilization' || field === 'utilization') assert.ok(n <= 1);
            }
          }
        }),
        { numRuns: 5000 },
      );
    });

    it('a TEXT value is read exactly when it is a decimal number (oracle: the regular expression of absl::SimpleAtod less inf/nan/hex)', () => {
      const decimal = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
      const text = fc.array(fc.constantFrom('0', '1', '9', '.', '+', '-', 'e', 'E', ' ', 'x'), { maxLength: 12 }).map((cs) => cs.join(''));
      fc.assert(
        fc.property(text, (value) => {
          const trimmed = value.replace(/^ +| +$/g, '');
          const n = Number(trimmed);
          const expected = decimal.test(trimmed) && Number.isFinite(n) && n >= 0 ? { eps: n + 0 } : undefined;
          assert.deepEqual(parseLoadReport(`TEXT eps=${value}`), expected, JSON.stringify(value));
        }),
        { numRuns: 5000 },
      );
    });

    it('a valid report with one byte changed parses to a valid report or to nothing, never throws', () => {
      fc.assert(
        fc.property(report, fc.constantFrom('TEXT' as const, 'JSON' as const), fc.nat(), fc.integer({ min: 0, max: 0xffff }), (r, format, at, code) => {
          const text = formatLoadReport(r, format);
          const i = at % text.length;
          const mutated = text.slice(0, i) + String.fromCharCode(code) + text.slice(i + 1);
          const parsed = parseLoadReport(mutated);
          if (parsed !== undefined) assert.deepEqual(parseLoadReport(formatLoadReport(parsed, format)), parsed);
        }),
        { numRuns: 3000 },
      );
    });
  });
});
