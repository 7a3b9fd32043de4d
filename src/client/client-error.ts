import type { IncomingMessage } from 'node:http';
import { readBody } from './http-message.js';

/** What went wrong, as a caller needs to tell cases apart (the CLI maps these to messages). */
export type ClientErrorKind =
  | 'manifest-unknown'
  | 'blob-unknown'
  | 'name-unknown'
  | 'unauthorized'
  | 'denied'
  | 'unsupported'
  | 'digest-mismatch'
  | 'insecure-credentials'
  | 'network'
  | 'tls'
  | 'invalid'
  | 'not-found'
  | 'http';

/** One entry of the spec's `{"errors":[…]}` body. */
export interface RegistryErrorEntry {
  code: string;
  message?: string;
  detail?: unknown;
}

/** The one error type src/client throws; `kind` says what happened, `message` says it to a person. */
export class ClientError extends Error {
  readonly kind: ClientErrorKind;
  readonly status: number | undefined;
  readonly registryErrors: RegistryErrorEntry[];
  /** The registry host concerned, for hints such as "run wharf login HOST". */
  readonly registry: string | undefined;

  constructor(
    kind: ClientErrorKind,
    message: string,
    options: { status?: number; registryErrors?: RegistryErrorEntry[]; registry?: string; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ClientError';
    this.kind = kind;
    this.status = options.status;
    this.registryErrors = options.registryErrors ?? [];
    this.registry = options.registry;
  }
}

export function isClientError(error: unknown, kind?: ClientErrorKind): error is ClientError {
  return error instanceof ClientError && (kind === undefined || error.kind === kind);
}

/** Parses an OCI error body; returns [] for anything else (HTML error pages, empty bodies). */
export function parseErrorBody(body: Buffer): RegistryErrorEntry[] {
  try {
    const doc = JSON.parse(body.toString('utf8')) as { errors?: unknown };
    if (!Array.isArray(doc.errors)) return [];
    return doc.errors
      .filter((e): e is { code: string } => typeof e === 'object' && e !== null && typeof (e as { code?: unknown }).code === 'string')
      .map((e) => e as RegistryErrorEntry);
  } catch {
    return [];
  }
}

/**
 * A ClientError for a request that got no response: 'tls' (with a hint for trusting the registry)
 * when the certificate or handshake failed, else 'network'. A ClientError is returned as it is.
 */
export function networkFailure(error: unknown, url: URL, registry: string): ClientError {
  if (error instanceof ClientError) return error;
  const err = error as NodeJS.ErrnoException;
  const tls = /certificate|SSL|TLS|self.signed|EPROTO|wrong version/i.test(`${err.code ?? ''} ${err.message}`);
  const hint = tls ? ' (use --ca-cert, put the CA in /etc/docker/certs.d/HOST/ca.crt, or --insecure)' : '';
  return new ClientError(tls ? 'tls' : 'network', `cannot reach ${url.host}: ${err.message}${hint}`, { registry, cause: error });
}

/**
 * Turns an unexpected response into a ClientError that names what was asked for (`what`), reading
 * the spec's error body when there is one: 401 unauthorized, 403 denied, the *_UNKNOWN codes,
 * 405 unsupported, other 404s not-found, anything else 'http' with the status and codes.
 */
export async function responseError(res: IncomingMessage, what: string, registry: string): Promise<ClientError> {
  const body = await readBody(res, 1024 * 1024).catch(() => Buffer.alloc(0));
  const errors = parseErrorBody(body);
  const status = res.statusCode ?? 0;
  const codes = new Set(errors.map((e) => e.code));
  let kind: ClientErrorKind = 'http';
  let message: string;
  if (status === 401 || codes.has('UNAUTHORIZED')) {
    kind = 'unauthorized';
    message = `unauthorized: authentication required for ${what}`;
  } else if (status === 403 || codes.has('DENIED')) {
    kind = 'denied';
    message = `denied: requested access to ${what} is denied`;
    // A registry that says why (a signature policy, a quota) is worth quoting; the stock text is not.
    const said = errors.find((e) => e.code === 'DENIED')?.message;
    if (said && !/^requested access to the resource is denied$/i.test(said)) message += ` (${said})`;
  } else if (codes.has('MANIFEST_UNKNOWN') || (status === 404 && what.startsWith('manifest'))) {
    kind = 'manifest-unknown';
    message = `manifest unknown: ${what.replace(/^manifest /, '')}`;
  } else if (codes.has('BLOB_UNKNOWN')) {
    kind = 'blob-unknown';
    message = `blob unknown: ${what}`;
  } else if (codes.has('NAME_UNKNOWN')) {
    kind = 'name-unknown';
    message = `repository name not known to registry: ${what}`;
  } else if (status === 405 || codes.has('UNSUPPORTED')) {
    kind = 'unsupported';
    message = `${what}: the registry does not support this operation${errors[0]?.message ? ` (${errors[0].message})` : ''}`;
  } else if (status === 404) {
    kind = 'not-found';
    message = `not found: ${what}`;
  } else {
    const detail = errors.map((e) => `${e.code}: ${e.message ?? ''}`.trim()).join('; ');
    message = `${what}: HTTP ${status}${detail ? ` (${detail})` : ''}`;
  }
  return new ClientError(kind, message, { status, registryErrors: errors, registry });
}
