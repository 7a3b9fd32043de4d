import { ERROR_CODES, type ErrorCode } from './codes.js';

export interface RegistryErrorOptions {
  /** Overrides the code's default message. */
  message?: string;
  /** Structured detail for the client (never secrets or internal paths). */
  detail?: unknown;
  /** Extra response headers, e.g. `Range` on a 416 or `Retry-After` on a 429. */
  headers?: Record<string, string>;
  /** Overrides the code's status where the spec asks for another (e.g. 416 for an upload). */
  status?: number;
  cause?: unknown;
}

/** The one error type the service layer throws; the HTTP layer turns it into the spec's JSON body. */
export class RegistryError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly detail: unknown;
  readonly headers: Record<string, string> | undefined;

  constructor(code: ErrorCode, options: RegistryErrorOptions = {}) {
    super(options.message ?? ERROR_CODES[code].message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'RegistryError';
    this.code = code;
    this.status = options.status ?? ERROR_CODES[code].status;
    this.detail = options.detail;
    this.headers = options.headers;
  }

  /** The spec's error body: `{"errors":[{"code","message","detail"}]}`. */
  toJSON(): { errors: Array<{ code: string; message: string; detail?: unknown }> } {
    const entry: { code: string; message: string; detail?: unknown } = { code: this.code, message: this.message };
    if (this.detail !== undefined) entry.detail = this.detail;
    return { errors: [entry] };
  }
}

export function isRegistryError(error: unknown): error is RegistryError {
  return error instanceof RegistryError;
}
