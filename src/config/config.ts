import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { LogLevel } from '../log/logger.js';
import { parseByteSize } from '../oci/byte-size.js';
import { parseDuration } from './duration.js';
import { SCHEMA, isLeaf, type ConfigPath, type ConfigValue, type Leaf, type Section } from './schema.js';
import { closestName } from './spelling.js';
import { unsupportedKey, unsupportedMessage } from './unsupported.js';

/** The server's settings, typed and complete (defaults filled in). */
export interface WharfConfig {
  log: { level: LogLevel; format: 'json' | 'pretty' | 'auto'; accessLog: boolean };
  http: {
    host: string | undefined;
    port: number;
    headers: Record<string, string[]>;
    drainTimeoutMs: number;
    tls?: TlsConfig;
    /** registry:2's debug server (`http.debug.addr`); absent when no address is configured. */
    debug?: DebugConfig;
  };
  /** registry:2's `health.storagedriver`: the storage check behind /debug/health. */
  health: { storageDriver: { enabled: boolean; intervalMs: number; threshold: number } };
  /** Wharf's `ratelimit`: absent when off. */
  rateLimit?: RateLimitConfig;
  storage: {
    /**
     * Which storage driver keeps the blobs (registry:2 names it by its section: `storage.filesystem`,
     * `storage.s3`). With S3, `rootDirectory` is still the data directory for what stays local
     * (the SQLite metadata, the audit log, auth state).
     */
    driver: 'filesystem' | 's3';
    rootDirectory: string;
    /** `storage.s3`: present exactly when `driver` is `s3`. */
    s3?: S3StorageConfig;
    /** `storage.redirect.disable`: blob GETs stream through instead of redirecting to the store. */
    redirectDisabled: boolean;
    deleteEnabled: boolean;
    readOnly: boolean;
    uploadPurging: { enabled: boolean; ageMs: number; intervalMs: number; dryRun: boolean };
    /**
     * Garbage collection: `enabled` schedules it inside `wharf serve` every `intervalMs`;
     * `delayMs` (also used by `wharf garbage-collect`) keeps anything touched that recently.
     */
    gc: { enabled: boolean; intervalMs: number; delayMs: number; deleteUntagged: boolean };
    /**
     * `storage.freespace`: below `minimumBytes` free under the root (checked every `intervalMs`),
     * pushes are refused with 507 until space returns; 0 turns the check off.
     */
    freeSpace: { minimumBytes: number; intervalMs: number };
  };
  /**
   * Which metadata store, and its settings: the embedded SQLite file, or PostgreSQL when
   * `database.enabled` (then `postgres` is set and SQLite is not opened).
   */
  metadata: { kind: 'sqlite' | 'postgres'; sqlite: { path: string; synchronous: 'full' | 'normal' }; postgres?: DatabaseConfig };
  catalog: { maxEntries: number };
  /** `history.retention`: manifests a tag pointed at stay restorable (kept from collection) this long; 0 turns it off. */
  history: { retentionMs: number };
  /**
   * `immutable.rules`: `REPOSITORY_PATTERN:TAG_PATTERN` each; the metadata store's config rules
   * are replaced by these at each start (docs/lifecycle.md).
   */
  immutable: { rules: string[] };
  /**
   * `retention`: policies run every `intervalMs` (0: only on demand), as a dry run that only logs
   * with `dryRun`; `recordPulls` keeps manifests' last-pull times; `policies` is the raw list
   * (src/registry/retention-service.ts reads it when the server starts).
   */
  retention: { intervalMs: number; dryRun: boolean; recordPulls: boolean; policies: unknown };
  server: { workers: number };
  /** Absent when the registry is open to everyone (registry:2 without an auth section). */
  auth?: AuthConfig;
  audit: { enabled: boolean; path: string };
  /** Raw `quotas` list; src/registry/quota-rules.ts validates it and the server stores it in metadata at start. */
  quotas: unknown;
  /** registry:2's notifications: webhook endpoints fed from the outbox (docs/notifications.md). */
  notifications: NotificationsConfig;
}

/** GitLab's registry `database` keys: where the PostgreSQL metadata database is. `password` is never logged. */
export interface DatabaseConfig {
  host: string;
  port: number;
  user: string;
  password?: string;
  dbname: string;
  sslmode: 'disable' | 'allow' | 'prefer' | 'require' | 'verify-ca' | 'verify-full';
  sslcert?: string;
  sslkey?: string;
  sslrootcert?: string;
  connectTimeoutMs: number;
  /** Per process: each worker of `server.workers` and each replica has a pool of its own. */
  pool: { maxOpen: number; maxIdle: number; maxLifetimeMs: number; maxIdleTimeMs: number };
}

/** registry:2's `storage.s3` keys, defaults filled in (docs/scale-out.md). */
export interface S3StorageConfig {
  bucket: string;
  region: string;
  /** `regionendpoint`: an S3-compatible store (Ceph RGW, MinIO); absent for AWS. */
  endpoint?: string;
  forcePathStyle: boolean;
  /** Absent: the AWS SDK's default credential chain (environment, profile, web identity, instance role). */
  accessKey?: string;
  secretKey?: string;
  sessionToken?: string;
  rootDirectory: string;
  encrypt: boolean;
  keyId?: string;
  secure: boolean;
  skipVerify: boolean;
  chunkSize: number;
  /** Absent for registry:2's `NONE`: the bucket's default class. */
  storageClass?: string;
  copyPartBytes: number;
  copyConcurrency: number;
}

export interface NotificationsConfig {
  endpoints: EndpointConfig[];
  /** `events.includereferences`: manifest push and pull events list the manifest's references. */
  includeReferences: boolean;
}

/** One `notifications.endpoints[]` entry: registry:2's keys, then Wharf's own. */
export interface EndpointConfig {
  /** Unique; names the endpoint's place in the outbox, so renaming one starts it afresh. */
  name: string;
  url: string;
  headers: Record<string, string[]>;
  timeoutMs: number;
  /** Failures in a row retried at once before waiting `backoffMs` between attempts. */
  threshold: number;
  backoffMs: number;
  disabled: boolean;
  /** `ignoredmediatypes` and `ignore.mediatypes` together. */
  ignoredMediaTypes: string[];
  ignoredActions: string[];
  /** Wharf's: failed attempts after which an event is parked (0: never). */
  maxAttempts: number;
  /** Wharf's: `distribution` (registry:2's envelope) or `cloudevents` (CloudEvents 1.0, structured). */
  format: 'distribution' | 'cloudevents';
  /** Wharf's: HMAC-SHA256 key for the body's signature; absent: unsigned. Never logged. */
  secret?: string;
  /** Wharf's: the header that carries the signature. */
  signatureHeader: string;
}

/** The debug server: plain HTTP on its own address, /debug/health and (when enabled) Prometheus metrics. */
export interface DebugConfig {
  host: string | undefined;
  port: number;
  prometheus: { enabled: boolean; path: string };
}

/** One token bucket: `rate` requests a second on average, up to `burst` at once. */
export interface BucketLimit {
  rate: number;
  burst: number;
}

/** The route families that have limits of their own. */
export type RateFamily = 'pulls' | 'pushes' | 'auth';

export interface RateLimitConfig {
  /** Limits per client (a user, or an address when anonymous), per family; a family without one is not limited. */
  limits: Partial<Record<RateFamily, BucketLimit>>;
  /** Named users and robots with limits of their own (a family they leave out keeps the default). */
  overrides: Record<string, Partial<Record<RateFamily, BucketLimit>>>;
}

/** registry:2's http.tls: PEM files, re-read on SIGHUP. */
export interface TlsConfig {
  certificate: string;
  key: string;
  clientCas: string[];
  clientAuth: 'require-and-verify-client-cert' | 'verify-client-cert-if-given';
  minimumTls: 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3';
}

export interface AuthConfig {
  /** registry:2's auth.htpasswd: Basic challenges, users from a bcrypt htpasswd file. */
  htpasswd?: { realm: string; path: string };
  /** registry:2's auth.token: Bearer challenges; tokens verified against these keys. */
  token?: {
    realm: string | undefined;
    service: string;
    issuer: string;
    rootCertBundle?: string;
    jwks?: string;
    autoRedirect: boolean;
    autoRedirectPath: string;
    signingAlgorithms: string[];
  };
  /** Wharf's built-in token issuer; present when enabled. */
  issuer?: { route: string; expirationMs: number; refreshExpirationMs: number; algorithm: 'ES256' | 'RS256' };
  /** Raw policy settings; src/auth/policy.ts validates them. */
  policy?: { admins: string[]; public: string[]; defaultActions: string[] | undefined; groups: unknown; rules: unknown };
  throttle: { maxFailures: number; maxFailuresPerAddress: number; windowMs: number };
  allowPlainHttp: boolean;
  /** Where the issuer's signing key and other auth state live. */
  stateDirectory: string;
}

/** Command-line flags that override file and environment. */
export interface ConfigFlags {
  addr?: string;
  data?: string;
  logLevel?: string;
  workers?: string;
  deleteEnabled?: boolean;
}

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

type Raw = Record<string, unknown>;

export interface LoadedConfig {
  config: WharfConfig;
  /** Unknown keys and keys Wharf ignores, one sentence each. */
  warnings: string[];
}

/**
 * Builds the configuration from defaults, an optional registry:2-style YAML file, `REGISTRY_*`
 * environment variables and flags, in that order of precedence. Throws ConfigError naming the
 * key for any invalid value.
 */
export function loadConfig(options: { file?: string; env?: NodeJS.ProcessEnv; flags?: ConfigFlags } = {}): LoadedConfig {
  const warnings: string[] = [];
  const raw: Raw = {};
  if (options.file) {
    let text: string;
    try {
      text = readFileSync(options.file, 'utf8');
    } catch (error) {
      throw new ConfigError(`cannot read configuration file ${options.file}: ${(error as Error).message}`);
    }
    let doc: unknown;
    try {
      doc = parseYaml(text);
    } catch (error) {
      throw new ConfigError(`configuration file ${options.file} is not valid YAML: ${(error as Error).message}`);
    }
    if (doc !== null && doc !== undefined) {
      if (typeof doc !== 'object' || Array.isArray(doc)) throw new ConfigError(`configuration file ${options.file} must be a mapping`);
      rejectUnsupported(doc as Raw, '');
      mergeFile(raw, doc as Raw, SCHEMA, '', warnings);
    }
  }
  applyEnvironment(raw, options.env ?? process.env, warnings);
  applyFlags(raw, options.flags ?? {});
  return { config: build(raw), warnings };
}

/** Throws ConfigError for the first key of the file that UNSUPPORTED_KEYS lists (see unsupported.ts). */
function rejectUnsupported(section: Raw, prefix: string): void {
  for (const [key, value] of Object.entries(section)) {
    const path = prefix ? `${prefix}.${key}` : key;
    const entry = unsupportedKey(path.toLowerCase(), value);
    if (entry) throw new ConfigError(unsupportedMessage(path, entry));
    // registry:2's bare driver name: `storage: s3`.
    if (typeof value === 'string') {
      const named = unsupportedKey(`${path}.${value}`.toLowerCase(), {});
      if (named) throw new ConfigError(unsupportedMessage(`${path}: ${value}`, named));
    }
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) rejectUnsupported(value as Raw, path);
  }
}

function mergeFile(target: Raw, source: Raw, schema: Section, prefix: string, warnings: string[]): void {
  for (const [key, value] of Object.entries(source)) {
    const path = prefix ? `${prefix}.${key}` : key;
    const node = schema[key.toLowerCase()];
    if (!node) {
      // A near miss of a real key is a typo whose setting would be lost: say which key was meant.
      const meant = closestName(key.toLowerCase(), Object.keys(schema));
      if (meant !== undefined) throw new ConfigError(`unknown configuration key "${path}": did you mean ${prefix ? `${prefix}.` : ''}${meant}?`);
      warnings.push(`unknown configuration key "${path}" ignored`);
      continue;
    }
    if (isLeaf(node)) {
      if (node.kind === 'ignored') warnings.push(`configuration key "${path}" ignored: ${node.reason}`);
      else target[key.toLowerCase()] = value;
      continue;
    }
    // registry:2 lets a driver section be a bare name (`storage: filesystem`) or empty.
    if (value === null || value === undefined || typeof value === 'string') {
      if (typeof value === 'string' && !(value.toLowerCase() in node)) throw new ConfigError(`${path}: unsupported value "${value}"`);
      if (typeof value === 'string') target[key.toLowerCase()] = { ...(target[key.toLowerCase()] as Raw), [value.toLowerCase()]: {} };
      // An empty section (`auth:\n  token:`) still selects that section, as in registry:2.
      else target[key.toLowerCase()] ??= {};
      continue;
    }
    if (typeof value !== 'object' || Array.isArray(value)) throw new ConfigError(`${path} must be a mapping`);
    const child = (target[key.toLowerCase()] ??= {}) as Raw;
    mergeFile(child, value as Raw, node, path, warnings);
  }
}

/** registry:2 reads its config file from here when no path is given on the command line. */
export const CONFIGURATION_PATH_VARIABLE = 'REGISTRY_CONFIGURATION_PATH';

/** REGISTRY_STORAGE_DELETE_ENABLED=true sets storage.delete.enabled, matching keys without case. */
function applyEnvironment(raw: Raw, env: NodeJS.ProcessEnv, warnings: string[]): void {
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith('REGISTRY_') || value === undefined || name === CONFIGURATION_PATH_VARIABLE) continue;
    const parts = name.slice('REGISTRY_'.length).toLowerCase().split('_');
    // REGISTRY_PROXY_REMOTEURL=…, or a section chosen by value: REGISTRY_STORAGE=s3.
    const byKey = unsupportedKey(parts.join('.'), value);
    if (byKey) throw new ConfigError(unsupportedMessage(name, byKey));
    const byValue = value !== '' ? unsupportedKey(`${parts.join('.')}.${value.toLowerCase()}`, {}) : undefined;
    if (byValue) throw new ConfigError(unsupportedMessage(`${name}=${value}`, byValue));
    let node: Section | Leaf = SCHEMA;
    let target = raw;
    let matched = true;
    for (let i = 0; i < parts.length; i += 1) {
      if (isLeaf(node)) {
        matched = false;
        break;
      }
      // Keys may themselves contain underscores; take the longest run of parts that names one.
      let found: string | undefined;
      for (let j = parts.length; j > i; j -= 1) {
        const key = parts.slice(i, j).join('_');
        if (key in node) {
          found = key;
          i = j - 1;
          break;
        }
      }
      if (!found) {
        matched = false;
        break;
      }
      const next: Section | Leaf = node[found]!;
      if (i === parts.length - 1) {
        if (isLeaf(next)) {
          if (next.kind === 'ignored') warnings.push(`environment variable ${name} ignored: ${next.reason}`);
          else target[found] = value;
        } else if (value !== '') {
          // REGISTRY_STORAGE=filesystem selects a driver section.
          if (!(value.toLowerCase() in next)) throw new ConfigError(`${name}: unsupported value "${value}"`);
          // Keep keys an earlier variable set inside it (REGISTRY_AUTH_HTPASSWD_PATH before REGISTRY_AUTH).
          const existing = target[found] as Raw | undefined;
          target[found] = { ...existing, [value.toLowerCase()]: existing?.[value.toLowerCase()] ?? {} };
        }
      } else {
        if (isLeaf(next)) {
          matched = false;
          break;
        }
        target = (target[found] ??= {}) as Raw;
      }
      node = next;
    }
    if (!matched) {
      // Environment variables are not all meant for Wharf (docker links set REGISTRY_PORT...): a warning, with the likely name.
      const meant = closestName(name, ENVIRONMENT_NAMES);
      warnings.push(`unknown environment variable ${name} ignored${meant ? ` (did you mean ${meant}?)` : ''}`);
    }
  }
}

/** Every REGISTRY_* variable that names a key Wharf reads (for did-you-mean). */
const ENVIRONMENT_NAMES: readonly string[] = (() => {
  const names: string[] = [];
  const visit = (section: Section, prefix: string) => {
    for (const [key, node] of Object.entries(section)) {
      const name = `${prefix}_${key.toUpperCase()}`;
      if (!isLeaf(node)) visit(node, name);
      else if (node.kind !== 'ignored') names.push(name);
    }
  };
  visit(SCHEMA, 'REGISTRY');
  return names;
})();

/** Which key each command-line flag sets: the flag's name is spelled here once, the key in SCHEMA. */
const FLAG_KEYS = {
  addr: 'http.addr',
  data: 'storage.filesystem.rootdirectory',
  logLevel: 'log.level',
  workers: 'server.workers',
  deleteEnabled: 'storage.delete.enabled',
} as const satisfies Record<keyof ConfigFlags, ConfigPath>;

function applyFlags(raw: Raw, flags: ConfigFlags): void {
  for (const [flag, path] of Object.entries(FLAG_KEYS) as Array<[keyof ConfigFlags, ConfigPath]>) {
    const given = flags[flag];
    if (given === undefined) continue;
    const keys = path.split('.');
    let section = raw;
    for (const key of keys.slice(0, -1)) section = (section[key] ??= {}) as Raw;
    section[keys[keys.length - 1]!] = given;
  }
}

function at(raw: Raw, path: string): unknown {
  let node: unknown = raw;
  for (const key of path.split('.')) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Raw)[key];
  }
  return node;
}

function leafOf(path: string): Leaf {
  let node: Section | Leaf = SCHEMA as Section;
  for (const key of path.split('.')) node = (node as Section)[key]!;
  return node as Leaf;
}

/** The value at `path`, coerced to its leaf's kind; `fallback` when absent. */
function value<P extends ConfigPath>(raw: Raw, path: P, fallback: ConfigValue<P>): ConfigValue<P> {
  return read(raw, path, fallback);
}

/** The value at `path`, coerced to its leaf's kind; undefined when absent. */
function maybe<P extends ConfigPath>(raw: Raw, path: P): ConfigValue<P> | undefined {
  return read<ConfigValue<P> | undefined>(raw, path, undefined);
}

function read<T>(raw: Raw, path: string, fallback: T): T {
  const v = at(raw, path);
  if (v === undefined || v === null || v === '') return fallback;
  const leaf = leafOf(path);
  const bad = (what: string) => new ConfigError(`${path}: ${JSON.stringify(v)} is not ${what}`);
  switch (leaf.kind) {
    case 'string':
    case 'address':
      if (typeof v !== 'string' && typeof v !== 'number') throw bad('a string');
      return String(v) as T;
    case 'boolean':
      if (typeof v === 'boolean') return v as T;
      if (typeof v === 'string' && /^(true|1|yes|on)$/i.test(v)) return true as T;
      if (typeof v === 'string' && /^(false|0|no|off)$/i.test(v)) return false as T;
      throw bad('true or false');
    case 'integer': {
      const n = typeof v === 'number' ? v : typeof v === 'string' && /^-?\d+$/.test(v.trim()) ? Number(v) : NaN;
      if (!Number.isSafeInteger(n) || n < leaf.min || n > leaf.max) throw bad(`an integer from ${leaf.min} to ${leaf.max}`);
      return n as T;
    }
    case 'duration': {
      const ms = typeof v === 'string' || typeof v === 'number' ? parseDuration(v) : undefined;
      if (ms === undefined) throw bad('a duration such as 24h or 30s');
      return ms as T;
    }
    case 'enum':
      if (typeof v !== 'string' || !leaf.values.includes(v.toLowerCase())) throw bad(`one of ${leaf.values.join(', ')}`);
      return v.toLowerCase() as T;
    case 'headers': {
      if (typeof v !== 'object' || Array.isArray(v)) throw bad('a mapping of header names to lists of values');
      const out: Record<string, string[]> = {};
      for (const [name, values] of Object.entries(v as Raw)) {
        const list = Array.isArray(values) ? values : [values];
        if (!/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/.test(name) || list.some((x) => typeof x !== 'string' || /[\r\n]/.test(x))) {
          throw new ConfigError(`${path}.${name}: header values must be strings without line breaks`);
        }
        out[name] = list as string[];
      }
      return out as T;
    }
    case 'strings': {
      const list = typeof v === 'string' ? v.split(',') : Array.isArray(v) ? v : undefined;
      if (!list || list.some((x) => typeof x !== 'string')) throw bad('a list of strings');
      return (list as string[]).map((x) => x.trim()).filter((x) => x !== '') as T;
    }
    case 'yaml':
      return v as T;
    case 'ignored':
      return fallback;
  }
}

/** Splits `host:port`, `:port`, `[v6]:port`; throws ConfigError (naming `key`) when malformed. */
export function parseAddress(addr: string, key = 'http.addr'): { host: string | undefined; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(addr.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || !Number.isInteger(port) || port > 65535) {
    throw new ConfigError(`${key}: "${addr}" is not host:port (for example :5000 or 127.0.0.1:5000)`);
  }
  const host = m[1] ?? m[2];
  return { host: host ? host : undefined, port };
}

function optional<K extends string, V>(key: K, v: V | undefined): { [P in K]?: V } {
  return (v === undefined ? {} : { [key]: v }) as { [P in K]?: V };
}

function build(raw: Raw): WharfConfig {
  const version = at(raw, 'version');
  if (version !== undefined && !['0.1', '1', '1.0'].includes(String(version))) {
    throw new ConfigError(`version: "${String(version)}" is not supported (use 0.1)`);
  }
  const { host, port } = parseAddress(value(raw, 'http.addr', ':5000'));
  const rootDirectory = resolve(value(raw, 'storage.filesystem.rootdirectory', './data'));
  const formatter = value(raw, 'log.formatter', 'auto');
  return {
    log: {
      level: value(raw, 'log.level', 'info'),
      format: formatter === 'text' || formatter === 'pretty' ? 'pretty' : formatter === 'auto' ? 'auto' : 'json',
      accessLog: !value(raw, 'log.accesslog.disabled', false),
    },
    http: {
      host,
      port,
      headers: value(raw, 'http.headers', {}),
      drainTimeoutMs: value(raw, 'http.draintimeout', 10_000),
      ...optional('tls', buildTls(raw)),
      ...optional('debug', buildDebug(raw)),
    },
    health: {
      storageDriver: {
        enabled: value(raw, 'health.storagedriver.enabled', true),
        intervalMs: value(raw, 'health.storagedriver.interval', 10_000),
        threshold: value(raw, 'health.storagedriver.threshold', 3),
      },
    },
    ...optional('rateLimit', buildRateLimit(raw)),
    storage: {
      ...buildStorageDriver(raw),
      rootDirectory,
      redirectDisabled: value(raw, 'storage.redirect.disable', false),
      deleteEnabled: value(raw, 'storage.delete.enabled', false),
      readOnly: value(raw, 'storage.maintenance.readonly.enabled', false),
      uploadPurging: {
        enabled: value(raw, 'storage.maintenance.uploadpurging.enabled', true),
        ageMs: value(raw, 'storage.maintenance.uploadpurging.age', 168 * 3_600_000),
        intervalMs: value(raw, 'storage.maintenance.uploadpurging.interval', 24 * 3_600_000),
        dryRun: value(raw, 'storage.maintenance.uploadpurging.dryrun', false),
      },
      gc: {
        enabled: value(raw, 'storage.gc.enabled', false),
        intervalMs: value(raw, 'storage.gc.interval', 24 * 3_600_000),
        delayMs: value(raw, 'storage.gc.delay', 3_600_000),
        deleteUntagged: value(raw, 'storage.gc.deleteuntagged', false),
      },
      freeSpace: {
        minimumBytes: byteSize(raw, 'storage.freespace.minimum', DEFAULT_MINIMUM_FREE_SPACE),
        intervalMs: Math.max(value(raw, 'storage.freespace.interval', 10_000), 100),
      },
    },
    metadata: {
      kind: value(raw, 'database.enabled', false) ? 'postgres' : 'sqlite',
      sqlite: {
        path: resolve(rootDirectory, value(raw, 'metadata.sqlite.path', 'wharf.db')),
        synchronous: value(raw, 'metadata.sqlite.synchronous', 'full'),
      },
      ...optional('postgres', buildDatabase(raw)),
    },
    catalog: { maxEntries: value(raw, 'catalog.maxentries', 1000) },
    history: { retentionMs: value(raw, 'history.retention', 14 * 24 * 3_600_000) },
    immutable: { rules: buildImmutableRules(value(raw, 'immutable.rules', [])) },
    retention: {
      intervalMs: value(raw, 'retention.interval', 24 * 3_600_000),
      dryRun: value(raw, 'retention.dryrun', false),
      recordPulls: value(raw, 'retention.recordpulls', true),
      policies: value(raw, 'retention.policies', []),
    },
    // Two processes use both cores of a small machine, where most of the speed is; more cost memory
    // and SQLite write-lock contention, so larger machines opt in (0 means one per core).
    server: { workers: value(raw, 'server.workers', Math.min(2, availableParallelism())) },
    ...buildAuth(raw, rootDirectory),
    audit: { enabled: value(raw, 'audit.enabled', true), path: resolve(rootDirectory, value(raw, 'audit.path', 'audit.log')) },
    quotas: value(raw, 'quotas', []),
    notifications: {
      endpoints: buildEndpoints(value(raw, 'notifications.endpoints', [])),
      includeReferences: value(raw, 'notifications.events.includereferences', false),
    },
  };
}

/** `database` when enabled (GitLab's registry keys and defaults); undefined otherwise. */
function buildDatabase(raw: Raw): DatabaseConfig | undefined {
  if (!value(raw, 'database.enabled', false)) return undefined;
  const host = maybe(raw, 'database.host');
  const dbname = maybe(raw, 'database.dbname');
  if (host === undefined) throw new ConfigError('database.host is required with database.enabled');
  if (dbname === undefined) throw new ConfigError('database.dbname is required with database.enabled');
  const maxOpen = value(raw, 'database.pool.maxopen', 10);
  return {
    host,
    port: value(raw, 'database.port', 5432),
    user: value(raw, 'database.user', 'registry'),
    ...optional('password', maybe(raw, 'database.password')),
    dbname,
    sslmode: value(raw, 'database.sslmode', 'prefer'),
    ...optional('sslcert', maybe(raw, 'database.sslcert')),
    ...optional('sslkey', maybe(raw, 'database.sslkey')),
    ...optional('sslrootcert', maybe(raw, 'database.sslrootcert')),
    connectTimeoutMs: value(raw, 'database.connecttimeout', 10_000),
    pool: {
      maxOpen,
      maxIdle: Math.min(value(raw, 'database.pool.maxidle', 2), maxOpen),
      maxLifetimeMs: value(raw, 'database.pool.maxlifetime', 0),
      maxIdleTimeMs: value(raw, 'database.pool.maxidletime', 10_000),
    },
  };
}

const MiB = 1024 * 1024;

/** `storage.s3` when the configuration has that section (registry:2 allows one driver), else the filesystem. */
function buildStorageDriver(raw: Raw): { driver: 'filesystem' } | { driver: 's3'; s3: S3StorageConfig } {
  if (at(raw, 'storage.s3') === undefined) return { driver: 'filesystem' };
  const bucket = maybe(raw, 'storage.s3.bucket');
  if (bucket === undefined) throw new ConfigError('storage.s3.bucket is required with the s3 storage driver');
  const endpoint = maybe(raw, 'storage.s3.regionendpoint');
  // registry:2 wants a region; an S3-compatible store at its own endpoint rarely cares which.
  const region = maybe(raw, 'storage.s3.region') ?? (endpoint !== undefined ? 'us-east-1' : undefined);
  if (region === undefined) throw new ConfigError('storage.s3.region is required with the s3 storage driver (or storage.s3.regionendpoint for an S3-compatible store)');
  const accessKey = maybe(raw, 'storage.s3.accesskey');
  const secretKey = maybe(raw, 'storage.s3.secretkey');
  if ((accessKey === undefined) !== (secretKey === undefined)) throw new ConfigError('storage.s3.accesskey and storage.s3.secretkey go together (leave both out to use the AWS default credential chain)');
  const storageClass = value(raw, 'storage.s3.storageclass', 'STANDARD');
  return {
    driver: 's3',
    s3: {
      bucket,
      region,
      ...optional('endpoint', endpoint),
      forcePathStyle: value(raw, 'storage.s3.forcepathstyle', false),
      ...optional('accessKey', accessKey),
      ...optional('secretKey', secretKey),
      ...optional('sessionToken', maybe(raw, 'storage.s3.sessiontoken')),
      rootDirectory: value(raw, 'storage.s3.rootdirectory', ''),
      encrypt: value(raw, 'storage.s3.encrypt', false),
      ...optional('keyId', maybe(raw, 'storage.s3.keyid')),
      secure: value(raw, 'storage.s3.secure', true),
      skipVerify: value(raw, 'storage.s3.skipverify', false),
      chunkSize: value(raw, 'storage.s3.chunksize', 10 * MiB),
      ...optional('storageClass', storageClass.toUpperCase() === 'NONE' ? undefined : storageClass),
      copyPartBytes: value(raw, 'storage.s3.multipartcopychunksize', 32 * MiB),
      copyConcurrency: value(raw, 'storage.s3.multipartcopymaxconcurrency', 16),
    },
  };
}

/** Pushes stop while less than this is free: room for SQLite's journal and for pulls' bookkeeping. */
const DEFAULT_MINIMUM_FREE_SPACE = 128 * 2 ** 20;

function byteSize(raw: Raw, path: 'storage.freespace.minimum', fallback: number): number {
  const text = maybe(raw, path);
  if (text === undefined) return fallback;
  const bytes = parseByteSize(text);
  if (bytes === undefined) throw new ConfigError(`${path}: "${text}" is not a size such as 512MiB or 2GB (0 turns the check off)`);
  return bytes;
}

function buildDebug(raw: Raw): DebugConfig | undefined {
  const addr = maybe(raw, 'http.debug.addr');
  if (addr === undefined) {
    // Metrics are served on the debug address only: asked for without one, they would silently be nowhere.
    if (maybe(raw, 'http.debug.prometheus.enabled') === true) throw new ConfigError('http.debug.prometheus.enabled needs http.debug.addr (metrics are served on the debug address)');
    return undefined;
  }
  const path = value(raw, 'http.debug.prometheus.path', '/metrics');
  if (!/^\/[A-Za-z0-9._~/-]*$/.test(path) || path === '/debug/health') throw new ConfigError(`http.debug.prometheus.path: "${path}" must be an absolute path other than /debug/health`);
  return { ...parseAddress(addr, 'http.debug.addr'), prometheus: { enabled: value(raw, 'http.debug.prometheus.enabled', false), path } };
}

const RATE_FAMILIES = ['pulls', 'pushes', 'auth'] as const;

function buildRateLimit(raw: Raw): RateLimitConfig | undefined {
  if (!value(raw, 'ratelimit.enabled', false)) return undefined;
  const limits: RateLimitConfig['limits'] = {};
  for (const family of RATE_FAMILIES) {
    const rate = maybe(raw, `ratelimit.${family}.rate`);
    const burst = maybe(raw, `ratelimit.${family}.burst`);
    if (rate === undefined && burst === undefined) continue;
    if (rate === undefined) throw new ConfigError(`ratelimit.${family}.rate is required with ratelimit.${family}.burst`);
    limits[family] = { rate, burst: burst ?? rate };
  }
  const overrides: RateLimitConfig['overrides'] = {};
  const list = value(raw, 'ratelimit.overrides', []);
  if (!Array.isArray(list)) throw new ConfigError('ratelimit.overrides must be a list of {user, pulls, pushes, auth}');
  list.forEach((entry: unknown, i) => {
    const where = `ratelimit.overrides[${i}]`;
    if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) throw new ConfigError(`${where} must be a mapping with user and limits`);
    const { user, ...rest } = entry as Raw;
    if (typeof user !== 'string' || user === '') throw new ConfigError(`${where}.user must be a user or robot name`);
    const own: Partial<Record<RateFamily, BucketLimit>> = {};
    for (const [family, limit] of Object.entries(rest)) {
      if (!(RATE_FAMILIES as readonly string[]).includes(family)) throw new ConfigError(`${where}: unknown key "${family}" (use pulls, pushes or auth)`);
      own[family as RateFamily] = bucketLimit(limit, `${where}.${family}`);
    }
    overrides[user] = own;
  });
  return { limits, overrides };
}

function bucketLimit(value: unknown, where: string): BucketLimit {
  const { rate, burst } = (value ?? {}) as Raw;
  const positive = (n: unknown) => typeof n === 'number' && Number.isSafeInteger(n) && n >= 1;
  if (!positive(rate) || (burst !== undefined && !positive(burst))) throw new ConfigError(`${where} needs rate (requests a second) and optionally burst, both whole numbers from 1`);
  return { rate: rate as number, burst: (burst ?? rate) as number };
}

const ENDPOINT_KEYS = new Set([
  'name', 'url', 'headers', 'timeout', 'threshold', 'backoff', 'disabled', 'ignoredmediatypes', 'ignore',
  'maxattempts', 'format', 'secret', 'signatureheader',
]);

/** `notifications.endpoints`: registry:2's list, each entry checked here so that a typo stops the start. */
function buildEndpoints(list: unknown): EndpointConfig[] {
  if (list === null || list === undefined) return [];
  if (!Array.isArray(list)) throw new ConfigError('notifications.endpoints must be a list of endpoints');
  const names = new Set<string>();
  return list.map((entry: unknown, i): EndpointConfig => {
    const where = `notifications.endpoints[${i}]`;
    if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) throw new ConfigError(`${where} must be a mapping`);
    const e: Raw = {};
    for (const [key, v] of Object.entries(entry as Raw)) e[key.toLowerCase()] = v;
    const unknown = Object.keys(e).find((key) => !ENDPOINT_KEYS.has(key));
    if (unknown !== undefined) throw new ConfigError(`${where}: unknown key "${unknown}"`);
    const text = (key: string): string | undefined => {
      const v = e[key];
      if (v === undefined || v === null) return undefined;
      if (typeof v !== 'string' || v === '') throw new ConfigError(`${where}.${key} must be a non-empty string`);
      return v;
    };
    const name = text('name');
    if (name === undefined || !/^[A-Za-z0-9._-]{1,64}$/.test(name)) throw new ConfigError(`${where}.name: letters, digits, ".", "_" or "-" (at most 64) are required`);
    if (names.has(name)) throw new ConfigError(`${where}.name: "${name}" names another endpoint already`);
    names.add(name);
    const url = text('url');
    let parsed: URL | undefined;
    try {
      parsed = url === undefined ? undefined : new URL(url);
    } catch {
      parsed = undefined;
    }
    if (!parsed || (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')) throw new ConfigError(`${where}.url: an http:// or https:// URL is required`);
    const duration = (key: string, fallback: number): number => {
      const v = e[key];
      if (v === undefined || v === null) return fallback;
      const ms = typeof v === 'string' || typeof v === 'number' ? parseDuration(v) : undefined;
      if (ms === undefined) throw new ConfigError(`${where}.${key}: ${JSON.stringify(v)} is not a duration such as 500ms or 5s`);
      return ms;
    };
    const integer = (key: string, fallback: number, max: number): number => {
      const v = e[key];
      if (v === undefined || v === null) return fallback;
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0 || v > max) throw new ConfigError(`${where}.${key}: ${JSON.stringify(v)} is not an integer from 0 to ${max}`);
      return v;
    };
    const list = (v: unknown, key: string): string[] => {
      if (v === undefined || v === null) return [];
      if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw new ConfigError(`${where}.${key} must be a list of strings`);
      return v as string[];
    };
    const headers: Record<string, string[]> = {};
    if (e.headers !== undefined && e.headers !== null) {
      if (typeof e.headers !== 'object' || Array.isArray(e.headers)) throw new ConfigError(`${where}.headers must map header names to lists of values`);
      for (const [header, values] of Object.entries(e.headers as Raw)) {
        const all = Array.isArray(values) ? values : [values];
        if (!/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/.test(header) || all.some((x) => typeof x !== 'string' || /[\r\n]/.test(x))) {
          throw new ConfigError(`${where}.headers.${header}: values must be strings without line breaks`);
        }
        headers[header] = all as string[];
      }
    }
    const ignore = e.ignore;
    if (ignore !== undefined && ignore !== null && (typeof ignore !== 'object' || Array.isArray(ignore))) throw new ConfigError(`${where}.ignore must be a mapping of mediatypes and actions`);
    const ignoreSection: Raw = {};
    for (const [key, v] of Object.entries((ignore ?? {}) as Raw)) ignoreSection[key.toLowerCase()] = v;
    const extra = Object.keys(ignoreSection).find((key) => key !== 'mediatypes' && key !== 'actions');
    if (extra !== undefined) throw new ConfigError(`${where}.ignore: unknown key "${extra}"`);
    const disabled = e.disabled;
    if (disabled !== undefined && disabled !== null && typeof disabled !== 'boolean') throw new ConfigError(`${where}.disabled must be true or false`);
    const format = (text('format') ?? 'distribution').toLowerCase();
    if (format !== 'distribution' && format !== 'cloudevents') throw new ConfigError(`${where}.format: "${format}" is not distribution or cloudevents`);
    const signatureHeader = text('signatureheader') ?? 'Wharf-Signature';
    if (!/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/.test(signatureHeader)) throw new ConfigError(`${where}.signatureheader is not a header name`);
    const secret = e.secret;
    if (secret !== undefined && secret !== null && (typeof secret !== 'string' || secret === '')) throw new ConfigError(`${where}.secret must be a non-empty string`);
    return {
      name,
      url: parsed.href,
      headers,
      // registry:2's defaults.
      timeoutMs: duration('timeout', 1000),
      threshold: integer('threshold', 10, 1_000_000),
      backoffMs: duration('backoff', 1000),
      disabled: disabled === true,
      ignoredMediaTypes: [...list(e.ignoredmediatypes, 'ignoredmediatypes'), ...list(ignoreSection.mediatypes, 'ignore.mediatypes')],
      ignoredActions: list(ignoreSection.actions, 'ignore.actions'),
      maxAttempts: integer('maxattempts', 100, 1_000_000_000),
      format,
      signatureHeader,
      ...(typeof secret === 'string' ? { secret } : {}),
    };
  });
}

/** The shape only; src/metadata/immutable-tag-rules.ts checks the patterns' characters when the server starts. */
function buildImmutableRules(texts: string[]): string[] {
  return texts.map((text) => {
    const rule = text.trim();
    if (!/^[^:\s]+:[^:\s]+$/.test(rule)) throw new ConfigError(`immutable.rules: "${text}" is not REPOSITORY_PATTERN:TAG_PATTERN (for example release/*:v*)`);
    return rule;
  });
}

const TLS_VERSIONS = { 'tls1.0': 'TLSv1', 'tls1.1': 'TLSv1.1', 'tls1.2': 'TLSv1.2', 'tls1.3': 'TLSv1.3' } as const;

function buildTls(raw: Raw): TlsConfig | undefined {
  const certificate = maybe(raw, 'http.tls.certificate');
  const key = maybe(raw, 'http.tls.key');
  const clientCas = value(raw, 'http.tls.clientcas', []);
  if (certificate === undefined && key === undefined) {
    if (clientCas.length > 0) throw new ConfigError('http.tls.clientcas needs http.tls.certificate and http.tls.key');
    return undefined;
  }
  if (certificate === undefined || key === undefined) throw new ConfigError('http.tls needs both certificate and key');
  const minimum = value(raw, 'http.tls.minimumtls', 'tls1.2');
  return {
    certificate: resolve(certificate),
    key: resolve(key),
    clientCas: clientCas.map((p) => resolve(p)),
    clientAuth: value(raw, 'http.tls.clientauth', 'require-and-verify-client-cert'),
    minimumTls: TLS_VERSIONS[minimum],
  };
}

function buildAuth(raw: Raw, rootDirectory: string): { auth?: AuthConfig } {
  const section = at(raw, 'auth') as Raw | undefined;
  const has = (key: string) => section !== undefined && section !== null && typeof section === 'object' && key in section;
  const htpasswdPath = maybe(raw, 'auth.htpasswd.path');
  if (has('htpasswd') && htpasswdPath === undefined) throw new ConfigError('auth.htpasswd.path is required');
  const issuerEnabled = maybe(raw, 'auth.issuer.enabled');
  if (!has('htpasswd') && !has('token') && issuerEnabled !== true) return {};
  const auth: AuthConfig = {
    throttle: {
      maxFailures: value(raw, 'auth.throttle.maxfailures', 10),
      maxFailuresPerAddress: value(raw, 'auth.throttle.maxfailuresperaddress', 50),
      windowMs: value(raw, 'auth.throttle.window', 5 * 60_000),
    },
    allowPlainHttp: value(raw, 'auth.allowplainhttp', false),
    stateDirectory: resolve(rootDirectory, 'auth'),
  };
  if (htpasswdPath !== undefined) auth.htpasswd = { realm: value(raw, 'auth.htpasswd.realm', 'Registry Realm'), path: resolve(htpasswdPath) };
  const rootCertBundle = maybe(raw, 'auth.token.rootcertbundle');
  const jwks = maybe(raw, 'auth.token.jwks');
  const tokenMode = has('token') || issuerEnabled === true;
  if (tokenMode) {
    auth.token = {
      realm: maybe(raw, 'auth.token.realm'),
      service: value(raw, 'auth.token.service', 'wharf'),
      issuer: value(raw, 'auth.token.issuer', 'wharf'),
      autoRedirect: value(raw, 'auth.token.autoredirect', false),
      autoRedirectPath: value(raw, 'auth.token.autoredirectpath', '/auth/token'),
      signingAlgorithms: value(raw, 'auth.token.signingalgorithms', []),
      ...(rootCertBundle !== undefined ? { rootCertBundle: resolve(rootCertBundle) } : {}),
      ...(jwks !== undefined ? { jwks: resolve(jwks) } : {}),
    };
  }
  // With no external key material nothing but the built-in issuer could sign tokens, so it is on.
  const builtIn = issuerEnabled ?? (tokenMode && rootCertBundle === undefined && jwks === undefined);
  if (builtIn) {
    const route = value(raw, 'auth.issuer.route', '/auth/token');
    if (!/^\/[A-Za-z0-9._~/-]*$/.test(route) || route.startsWith('/v2')) throw new ConfigError(`auth.issuer.route: "${route}" must be an absolute path outside /v2/`);
    auth.issuer = {
      route,
      expirationMs: value(raw, 'auth.issuer.expiration', 5 * 60_000),
      refreshExpirationMs: value(raw, 'auth.issuer.refreshexpiration', 30 * 24 * 3_600_000),
      algorithm: value(raw, 'auth.issuer.algorithm', 'es256') === 'rs256' ? 'RS256' : 'ES256',
    };
  } else if (tokenMode && auth.token?.realm === undefined) {
    throw new ConfigError('auth.token.realm is required with an external token issuer');
  }
  if (has('policy')) {
    auth.policy = {
      admins: value(raw, 'auth.policy.admins', []),
      public: value(raw, 'auth.policy.public', []),
      defaultActions: maybe(raw, 'auth.policy.defaultactions'),
      groups: value(raw, 'auth.policy.groups', {}),
      rules: value(raw, 'auth.policy.rules', []),
    };
  }
  return { auth };
}
