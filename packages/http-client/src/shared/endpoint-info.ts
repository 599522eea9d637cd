/** Public identity of an endpoint, as events, responses and errors show it. */
export interface EndpointInfo {
  /** Instance identity (`ServiceInstance.key`). */
  readonly key: string;
  readonly address: string;
  readonly port: number;
  /** `address:port` (IPv6 in brackets). */
  readonly label: string;
}
