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
