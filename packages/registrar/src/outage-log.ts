/**
 * Where a {@link Registrar} tells a person what needs attention: the registry
 * cannot be reached, refuses the registration, or is back after that. One line
 * per outage, not one per retry. `console` fits; pass `logger: false` to silence.
 */
export interface RegistrarLogger {
  /** Something is wrong and the registrar is retrying (or has given up). */
  warn(message: string): void;
  /** Back to normal after a warning. */
  info(message: string): void;
}

/**
 * One warning line per failure streak, one info line when it is over.
 * @internal
 */
export class OutageLog {
  readonly #logger: RegistrarLogger | undefined;
  readonly #prefix: string;
  /** Where the registry is, e.g. `the Consul agent at http://127.0.0.1:8500`. */
  readonly #label: string;
  /** Set while a streak has been reported; cleared (with an info line) by the next success. */
  #active = false;

  constructor(logger: RegistrarLogger | undefined, id: string, label: string) {
    this.#logger = logger;
    this.#prefix = `proxyless registrar ${id}: `;
    this.#label = label;
  }

  log(level: 'warn' | 'info', message: string): void {
    this.#logger?.[level](this.#prefix + message);
  }

  /** Warns with `message()` unless this streak was already reported. */
  warnOnce(message: () => string): void {
    if (this.#active) return;
    this.#active = true;
    this.log('warn', message());
  }

  /** Ends a reported streak: says the registry answers again, and `what` happened. */
  backToNormal(what: string): void {
    if (!this.#active) return;
    this.#active = false;
    this.log('info', `${this.#label} answers again: ${what}`);
  }
}
