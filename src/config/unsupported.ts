/**
 * registry:2 configuration that changes what the registry does and that Wharf does not implement
 * yet. Running on without it would give a registry that does something else than the operator
 * configured (`proxy.remoteurl` would give an empty, writable registry; `auth.silly` an open one),
 * so any of these stops the server with one line naming the key. Keys that make no difference to
 * Wharf stay warnings (the `ignored` leaves of SCHEMA).
 *
 * One table, so that the work that implements a section removes its row here and adds its keys
 * to SCHEMA.
 */
export interface UnsupportedKey {
  /** Dotted path, lower case; matches the key and everything under it. */
  path: string;
  /** What the section would have done, said to the operator. */
  what: string;
  /** Only these values are unsupported (the key with other values is harmless). */
  when?: (value: unknown) => boolean;
}

const STORAGE_DRIVER = (name: string): UnsupportedKey => ({
  path: `storage.${name}`,
  what: `the ${name} storage driver; Wharf stores blobs on the filesystem (storage.filesystem) or S3 (storage.s3)`,
});

const isTrue = (value: unknown) => value === true || (typeof value === 'string' && /^(true|1|yes|on)$/i.test(value));

export const UNSUPPORTED_KEYS: readonly UnsupportedKey[] = [
  { path: 'proxy', what: 'the pull-through cache (proxy.remoteurl); without it Wharf would be an empty, writable registry' },
  ...['s3-aws', 'gcs', 'azure', 'swift', 'oss', 'inmemory', 'cloudfront'].map(STORAGE_DRIVER),
  { path: 'middleware', what: 'registry, repository and storage middleware (such as CloudFront or redirect middleware)' },
  { path: 'auth.silly', what: 'the "silly" authenticator; without it the registry would be open to everyone' },
  { path: 'http.prefix', what: 'serving the API under a path prefix; put a reverse proxy in front that strips it' },
  { path: 'http.tls.letsencrypt', what: "Let's Encrypt certificates; without them the registry would serve plain HTTP (use http.tls.certificate and key)" },
  { path: 'http.tls.ciphersuites', what: "restricting TLS cipher suites (Wharf uses OpenSSL's secure defaults)" },
  { path: 'log.hooks', what: 'log hooks (mail on error)' },
  { path: 'reporting', what: 'error reporting to Bugsnag or New Relic' },
  { path: 'health.file', what: 'file health checks that take the registry out of service' },
  { path: 'health.http', what: 'HTTP health checks that take the registry out of service' },
  { path: 'health.tcp', what: 'TCP health checks that take the registry out of service' },
  { path: 'validation.manifests', what: 'allow and deny lists for manifests (foreign layer URLs, index platforms)' },
  { path: 'compatibility.schema1.enabled', what: 'schema 1 manifests', when: isTrue },
];

/** The unsupported entry that `path` (dotted, lower case) with `value` falls under, if any. */
export function unsupportedKey(path: string, value: unknown): UnsupportedKey | undefined {
  return UNSUPPORTED_KEYS.find((entry) => (path === entry.path || path.startsWith(`${entry.path}.`)) && (entry.when === undefined || entry.when(value)));
}

/** Whether some unsupported entry lies under `path` (a section that must be read further). */
export function hasUnsupportedBelow(path: string): boolean {
  return UNSUPPORTED_KEYS.some((entry) => entry.path.startsWith(`${path}.`));
}

/** The message that stops the server. */
export function unsupportedMessage(key: string, entry: UnsupportedKey): string {
  return `${key}: not supported yet (${entry.what}); remove it from the configuration to start Wharf without it`;
}
