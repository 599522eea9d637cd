/**
 * ORCA load reports in the `endpoint-load-metrics` header: one type, one
 * writer, one strict reader. A leaf module (imports nothing): the service-side
 * reporter writes with it, clients read with it.
 *
 * Followed:
 * - the data model `xds.data.orca.v3.OrcaLoadReport` (cncf/xds
 *   `xds/data/orca/v3/orca_load_report.proto`): field names, and its validation
 *   rules (`mem_utilization` and every `utilization` value in [0, 1]; CPU and
 *   application utilisation ≥ 0 and allowed above 1; rates ≥ 0);
 * - the ORCA specification's "Inline Per-Request Format": the header's value is
 *   a prefix word, a space, then the report — `TEXT` comma-separated
 *   `key=value` pairs with the maps flattened as `<map>.<key>`, or `JSON` the
 *   JSON encoding of the message (the third form, `BIN` base64 protobuf, is not
 *   read here);
 * - Envoy's reader (`source/common/orca/orca_parser.cc` and
 *   `test/common/orca/orca_parser_test.cc`): `:` accepted as well as `=`;
 *   duplicate keys, unknown keys, empty keys or values, quoted numbers, NaN,
 *   infinities and negative values make the whole report invalid; a JSON
 *   report with an unknown field is invalid.
 *
 * Stricter than Envoy, because a client must never trust a hostile or broken
 * backend: the value is bounded in length ({@link loadReportLimits}), in
 * entries and in key length; map keys are limited to `A–Z a–z 0–9 _ - . /`
 * (no escapes, no spaces, nothing that could split a TEXT entry); JSON is read
 * by a small reader of exactly this shape (one object, numbers or one level
 * of string→number objects; duplicate keys rejected, which `JSON.parse`
 * would hide).
 * @module
 */

/**
 * One load report, with the field names of `xds.data.orca.v3.OrcaLoadReport`.
 * Every field is optional: absent means "not reported" (proto3 would say 0).
 *
 * A parsed report is frozen, its maps are frozen plain objects,
 * and every number in it is finite and ≥ 0 (utilisations within their range).
 */
export interface LoadReport {
  /** CPU utilisation as a fraction of the available CPU; ≥ 0, may exceed 1 past a soft limit. In Node, event-loop utilisation. */
  readonly cpu_utilization?: number;
  /** Memory utilisation as a fraction of the available memory, in [0, 1]. */
  readonly mem_utilization?: number;
  /** The application's own utilisation (e.g. the max of CPU and memory); ≥ 0, may exceed 1. gRPC's WRR prefers it to CPU when > 0. */
  readonly application_utilization?: number;
  /** Requests per second served by the endpoint (all its services); ≥ 0. */
  readonly rps_fractional?: number;
  /** Errors per second served by the endpoint; ≥ 0. */
  readonly eps?: number;
  /** Absolute costs of this request (e.g. bytes), by name; each ≥ 0. */
  readonly request_cost?: Readonly<Record<string, number>>;
  /** Named resource utilisations, each in [0, 1]. */
  readonly utilization?: Readonly<Record<string, number>>;
  /** Application-defined metrics, by name; each ≥ 0 (Envoy's TEXT reader rejects negatives too). */
  readonly named_metrics?: Readonly<Record<string, number>>;
}

/** The two written forms of a report in `endpoint-load-metrics`. */
export type LoadReportFormat = 'TEXT' | 'JSON';

/** The response header that carries a report (ORCA's inline per-request form). */
export const loadReportHeader = 'endpoint-load-metrics';

/**
 * The request header by which a caller asks for a report and names its form
 * (`text` or `json`, any case), as vLLM and Triton read it.
 */
export const loadReportFormatHeader = 'endpoint-load-metrics-format';

/**
 * The bounds {@link parseLoadReport} enforces (anything beyond is malformed).
 * A report of all five scalars and a dozen named metrics is about 400
 * characters; 4 KiB leaves room and keeps a hostile header cheap to reject.
 */
export const loadReportLimits = Object.freeze({
  /** Characters in the header value, prefix included. */
  maxChars: 4096,
  /** Entries of the three maps together (`request_cost`, `utilization`, `named_metrics`). */
  maxMapEntries: 64,
  /** Characters in one map key. */
  maxKeyChars: 128,
});

/**
 * The named metrics (`named_metrics.<name>`) `@proxyless/load-report` writes
 * beside ORCA's own fields, and that balancers read (`ReportedLoadView.rif`,
 * `ReportedLoadView.latencyMs`).
 */
export const loadReportMetricNames = Object.freeze({
  /** Requests in flight at the server, the response that carries the report not counted (grpc-go's ORCA example names it `rif`). */
  requestsInFlight: 'rif',
  /** The latency, in ms, of recent requests that arrived at the current `rif` (Prequal's latency at the current load). */
  latencyMs: 'latency_ms',
} as const);

type ScalarField = 'cpu_utilization' | 'mem_utilization' | 'application_utilization' | 'rps_fractional' | 'eps';
type MapField = 'request_cost' | 'utilization' | 'named_metrics';

// Proto field order, so written reports read in the order of the spec's examples.
const scalarFields: readonly ScalarField[] = ['cpu_utilization', 'mem_utilization', 'application_utilization', 'rps_fractional', 'eps'];
const mapFields: readonly MapField[] = ['request_cost', 'utilization', 'named_metrics'];
// The upper bound of each field (the proto's validate rules); every lower bound is 0.
const scalarMax: Readonly<Record<ScalarField, number>> = {
  cpu_utilization: Infinity,
  mem_utilization: 1,
  application_utilization: Infinity,
  rps_fractional: Infinity,
  eps: Infinity,
};
const mapMax: Readonly<Record<MapField, number>> = { request_cost: Infinity, utilization: 1, named_metrics: Infinity };
const scalarMaxByIndex: readonly number[] = scalarFields.map((f) => scalarMax[f]);
const mapMaxByIndex: readonly number[] = mapFields.map((f) => mapMax[f]);
// proto3's JSON mapping accepts the lowerCamelCase name as well as the field's own.
const jsonNames: ReadonlyMap<string, ScalarField | MapField> = new Map<string, ScalarField | MapField>([
  ...scalarFields.map((f) => [f, f] as const),
  ...mapFields.map((f) => [f, f] as const),
  ['cpuUtilization', 'cpu_utilization'],
  ['memUtilization', 'mem_utilization'],
  ['applicationUtilization', 'application_utilization'],
  ['rpsFractional', 'rps_fractional'],
  ['requestCost', 'request_cost'],
  ['namedMetrics', 'named_metrics'],
]);

const keyPattern = /^[A-Za-z0-9_\-./]+$/;
// Names Object.prototype has (`__proto__`, `constructor`…): a Set, since `key in Object.prototype` is a slow lookup per key.
const prototypeNames: ReadonlySet<string> = new Set(Object.getOwnPropertyNames(Object.prototype));

/**
 * Whether `key` can be a map key of a report (the rule both forms share): 1 to
 * `maxKeyChars` characters of `A–Z a–z 0–9 _ - . /`, and not a name that
 * `Object.prototype` already has (`__proto__`, `constructor`…), so a parsed
 * map is a plain object that no key can reshape.
 */
export function isLoadReportKey(key: string): boolean {
  return key.length <= loadReportLimits.maxKeyChars && keyPattern.test(key) && !prototypeNames.has(key);
}

function validValue(value: number, max: number): boolean {
  return Number.isFinite(value) && value >= 0 && value <= max;
}

/**
 * Writes a report as the value of `endpoint-load-metrics`:
 * `TEXT cpu_utilization=0.3, rps_fractional=10, named_metrics.foo=1` or
 * `JSON {"cpu_utilization":0.3,"rps_fractional":10,"named_metrics":{"foo":1}}`.
 *
 * It writes only what {@link parseLoadReport} accepts: a value that is not a
 * finite number within its field's range, or a map key outside
 * {@link isLoadReportKey}, is left out (so one bad application metric cannot
 * make every client discard the whole report). Numbers are written as
 * JavaScript prints them (shortest round-trip form); round them before if
 * bytes matter.
 *
 * @example
 * ```ts
 * formatLoadReport({ cpu_utilization: 0.3, named_metrics: { queue: 4 } });
 * // 'TEXT cpu_utilization=0.3, named_metrics.queue=4'
 * ```
 */
export function formatLoadReport(report: LoadReport, format: LoadReportFormat = 'TEXT'): string {
  if (format === 'JSON') {
    let body = '';
    for (const field of scalarFields) {
      const value = report[field];
      if (value !== undefined && validValue(value, scalarMax[field])) body += `${body ? ',' : ''}"${field}":${value}`;
    }
    for (const field of mapFields) {
      const map = report[field];
      if (map === undefined) continue;
      let inner = '';
      for (const key of Object.keys(map)) {
        const value = map[key];
        if (value !== undefined && isLoadReportKey(key) && validValue(value, mapMax[field])) inner += `${inner ? ',' : ''}"${key}":${value}`;
      }
      if (inner) body += `${body ? ',' : ''}"${field}":{${inner}}`;
    }
    return `JSON {${body}}`;
  }
  const parts: string[] = [];
  for (const field of scalarFields) {
    const value = report[field];
    if (value !== undefined && validValue(value, scalarMax[field])) parts.push(`${field}=${value}`);
  }
  for (const field of mapFields) {
    const map = report[field];
    if (map === undefined) continue;
    for (const key of Object.keys(map)) {
      const value = map[key];
      if (value !== undefined && isLoadReportKey(key) && validValue(value, mapMax[field])) parts.push(`${field}.${key}=${value}`);
    }
  }
  return `TEXT ${parts.join(', ')}`;
}

// Field name → index into scalarFields / mapFields (a Map: the names read from a header are never interned).
const scalarIndex: ReadonlyMap<string, number> = new Map(scalarFields.map((f, i) => [f, i]));
const mapIndex: ReadonlyMap<string, number> = new Map(mapFields.map((f, i) => [f, i]));

/**
 * A report under construction: rejects duplicates, out-of-range values and
 * too many entries. Fields live in arrays by index and the report object is
 * made once at the end, in proto order (parsing is on a client's hot path).
 */
class ReportBuilder {
  private readonly scalars: (number | undefined)[] = [undefined, undefined, undefined, undefined, undefined];
  private readonly maps: (Record<string, number> | undefined)[] = [undefined, undefined, undefined];
  private entries = 0;

  /** False when the value is invalid or the field already set. */
  setScalar(i: number, value: number): boolean {
    if (this.scalars[i] !== undefined || !validValue(value, scalarMaxByIndex[i] ?? 0)) return false;
    this.scalars[i] = value + 0; // -0 reads as 0
    return true;
  }

  /** False when the key or value is invalid, the key already set, or the report holds too many entries. */
  setMapEntry(i: number, key: string, value: number): boolean {
    if (!isLoadReportKey(key) || !validValue(value, mapMaxByIndex[i] ?? 0)) return false;
    if (++this.entries > loadReportLimits.maxMapEntries) return false;
    const map = (this.maps[i] ??= {});
    if (Object.hasOwn(map, key)) return false;
    map[key] = value + 0; // -0 reads as 0
    return true;
  }

  /** Opens map `i`; false if it was already given (JSON: the same map twice is a duplicate, even empty). */
  openMap(i: number): boolean {
    if (this.maps[i] !== undefined) return false;
    this.maps[i] = {};
    return true;
  }

  build(): LoadReport {
    const report: Record<string, unknown> = {};
    for (let i = 0; i < scalarFields.length; i++) {
      const value = this.scalars[i];
      if (value !== undefined) report[scalarFields[i] ?? ''] = value;
    }
    for (let i = 0; i < mapFields.length; i++) {
      const map = this.maps[i];
      if (map !== undefined && Object.keys(map).length > 0) report[mapFields[i] ?? ''] = Object.freeze(map);
    }
    return Object.freeze(report);
  }
}

/** HTTP's optional whitespace (space, tab): what Envoy trims around each entry. */
function isOws(code: number): boolean {
  return code === 0x20 || code === 0x09;
}

function isDigit(code: number): boolean {
  return code >= 0x30 && code <= 0x39;
}

/**
 * Whether `s[start, end)` is a decimal number as Envoy's TEXT values are
 * (absl::SimpleAtod less inf/nan/hex): `[+-]digits[.digits][e[+-]digits]`,
 * at least one digit before the exponent.
 */
function isDecimal(s: string, start: number, end: number): boolean {
  let i = start;
  if (i < end && (s.charCodeAt(i) === 0x2b || s.charCodeAt(i) === 0x2d)) i++;
  const integerStart = i;
  while (i < end && isDigit(s.charCodeAt(i))) i++;
  let digits = i - integerStart;
  if (i < end && s.charCodeAt(i) === 0x2e) {
    const fractionStart = ++i;
    while (i < end && isDigit(s.charCodeAt(i))) i++;
    digits += i - fractionStart;
  }
  if (digits === 0) return false;
  if (i < end && (s.charCodeAt(i) | 0x20) === 0x65 /* e or E */) {
    i++;
    if (i < end && (s.charCodeAt(i) === 0x2b || s.charCodeAt(i) === 0x2d)) i++;
    const exponentStart = i;
    while (i < end && isDigit(s.charCodeAt(i))) i++;
    if (i === exponentStart) return false;
  }
  return i === end;
}

// One pass of index arithmetic and one slice per key and value: a client parses a report per response.
function parseText(body: string): LoadReport | undefined {
  const report = new ReportBuilder();
  const n = body.length;
  let from = 0;
  while (from < n && isOws(body.charCodeAt(from))) from++;
  // `TEXT` with nothing after it (a trailing space trimmed away) is an empty report, as Envoy reads it.
  if (from === n) return report.build();
  for (;;) {
    let end = body.indexOf(',', from);
    if (end === -1) end = n;
    let a = from;
    let b = end;
    while (a < b && isOws(body.charCodeAt(a))) a++;
    while (b > a && isOws(body.charCodeAt(b - 1))) b--;
    // The key ends at the first `=` (the spec) or `:` (Envoy accepts both).
    let sep = a;
    let dot = -1;
    for (; sep < b; sep++) {
      const c = body.charCodeAt(sep);
      if (c === 0x3d || c === 0x3a) break;
      if (c === 0x2e && dot === -1) dot = sep;
    }
    if (sep === a || sep === b) return undefined;
    let keyEnd = sep;
    while (keyEnd > a && isOws(body.charCodeAt(keyEnd - 1))) keyEnd--;
    let valueStart = sep + 1;
    while (valueStart < b && isOws(body.charCodeAt(valueStart))) valueStart++;
    if (!isDecimal(body, valueStart, b)) return undefined;
    const value = Number(body.slice(valueStart, b));
    if (dot === -1 || dot >= keyEnd) {
      const i = scalarIndex.get(body.slice(a, keyEnd));
      if (i === undefined || !report.setScalar(i, value)) return undefined;
    } else {
      const i = mapIndex.get(body.slice(a, dot));
      if (i === undefined || !report.setMapEntry(i, body.slice(dot + 1, keyEnd), value)) return undefined;
    }
    if (end === n) return report.build();
    from = end + 1;
  }
}

/**
 * Reads the JSON form: exactly one object whose values are numbers or objects
 * of numbers, nothing else. Returns undefined on the first deviation.
 */
class JsonReader {
  private at = 0;
  constructor(private readonly text: string) {}

  private skipSpace(): void {
    while (this.at < this.text.length) {
      const c = this.text.charCodeAt(this.at);
      if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) return;
      this.at++;
    }
  }

  private eat(char: string): boolean {
    this.skipSpace();
    if (this.text[this.at] !== char) return false;
    this.at++;
    return true;
  }

  /** A key: a quoted string of key characters (no escapes needed, none allowed). */
  private key(): string | undefined {
    this.skipSpace();
    if (this.text[this.at] !== '"') return undefined;
    const end = this.text.indexOf('"', this.at + 1);
    if (end === -1) return undefined;
    const key = this.text.slice(this.at + 1, end);
    if (!isLoadReportKey(key)) return undefined;
    this.at = end + 1;
    return key;
  }

  private static readonly numberPattern = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;

  private number(): number | undefined {
    this.skipSpace();
    const pattern = JsonReader.numberPattern;
    pattern.lastIndex = this.at;
    const match = pattern.exec(this.text);
    if (match === null) return undefined;
    this.at += match[0].length;
    return Number(match[0]);
  }

  /** `{ "k": <item>, ... }`, calling `item` for each key; false on a syntax error or when `item` refuses. */
  private members(item: (key: string) => boolean): boolean {
    if (!this.eat('{')) return false;
    if (this.eat('}')) return true;
    do {
      const key = this.key();
      if (key === undefined || !this.eat(':') || !item(key)) return false;
    } while (this.eat(','));
    return this.eat('}');
  }

  read(): LoadReport | undefined {
    const report = new ReportBuilder();
    const ok = this.members((name) => {
      const field = jsonNames.get(name);
      if (field === undefined) return false;
      const scalar = scalarIndex.get(field);
      if (scalar !== undefined) {
        const value = this.number();
        return value !== undefined && report.setScalar(scalar, value);
      }
      const map = mapIndex.get(field) ?? -1;
      if (!report.openMap(map)) return false;
      return this.members((key) => {
        const value = this.number();
        return value !== undefined && report.setMapEntry(map, key, value);
      });
    });
    this.skipSpace();
    return ok && this.at === this.text.length ? report.build() : undefined;
  }
}

/**
 * Reads the value of an `endpoint-load-metrics` header, in its `TEXT` or
 * `JSON` form. Never throws; returns `undefined` for anything it does not
 * fully trust: no value or not a string, an unknown prefix (including `BIN`),
 * a value longer than {@link loadReportLimits}.maxChars, an unknown field, a
 * duplicate key, an empty key or value, a number that is not finite, is
 * negative, or is out of its field's range (`mem_utilization` and
 * `utilization.*` above 1), more than `maxMapEntries` map entries, a map key
 * outside {@link isLoadReportKey}, or malformed JSON.
 *
 * @example
 * ```ts
 * parseLoadReport('TEXT cpu_utilization=0.3, rps_fractional=10, named_metrics.foo=1');
 * // { cpu_utilization: 0.3, rps_fractional: 10, named_metrics: { foo: 1 } }
 * parseLoadReport('TEXT cpu_utilization=-1'); // undefined
 * ```
 */
export function parseLoadReport(value: string | undefined): LoadReport | undefined {
  if (typeof value !== 'string' || value.length > loadReportLimits.maxChars) return undefined;
  const trimmed = value.trim();
  if (trimmed === 'TEXT') return parseText('');
  if (trimmed.startsWith('TEXT ')) return parseText(trimmed.slice(5));
  if (trimmed.startsWith('JSON ')) return new JsonReader(trimmed.slice(5)).read();
  return undefined;
}
