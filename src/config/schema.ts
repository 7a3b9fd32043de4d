/**
 * Every configuration key Wharf knows, as data: the registry:2 keys it shares (same names, same
 * meaning) plus its own. Drives YAML validation, `REGISTRY_*` environment overrides and the
 * unknown-key warnings. Sections that Wharf does not implement yet are in unsupported.ts.
 */
export type Leaf =
  | { kind: 'string' }
  | { kind: 'boolean' }
  | { kind: 'integer'; min: number; max: number }
  | { kind: 'duration' }
  | { kind: 'enum'; values: readonly string[] }
  | { kind: 'address' }
  | { kind: 'headers' }
  /** A YAML list of strings, or one comma-separated string (from the environment). */
  | { kind: 'strings' }
  /** Structured YAML (lists of mappings) validated by the module that reads it. */
  | { kind: 'yaml' }
  | { kind: 'ignored'; reason: string };

export interface Section {
  [key: string]: Section | Leaf;
}

export function isLeaf(node: Section | Leaf): node is Leaf {
  return typeof (node as Leaf).kind === 'string' && Object.keys(node).every((k) => ['kind', 'min', 'max', 'values', 'reason'].includes(k));
}

const str = { kind: 'string' } as const;
const bool = { kind: 'boolean' } as const;
const duration = { kind: 'duration' } as const;
const strings = { kind: 'strings' } as const;
const ignored = (reason: string) => ({ kind: 'ignored', reason }) as const;

export const SCHEMA = {
  version: str,
  log: {
    level: { kind: 'enum', values: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] },
    formatter: { kind: 'enum', values: ['text', 'json', 'logstash', 'pretty', 'auto'] },
    accesslog: { disabled: bool },
    fields: ignored('extra log fields are not supported'),
    reportcaller: ignored('not applicable'),
  },
  http: {
    addr: { kind: 'address' },
    net: { kind: 'enum', values: ['tcp', 'tcp4', 'tcp6'] },
    host: str,
    secret: ignored('Wharf keeps upload state in metadata, not in signed URLs'),
    relativeurls: ignored('Location headers are always relative paths'),
    draintimeout: duration,
    headers: { kind: 'headers' },
    /** registry:2's debug server: Prometheus metrics and /debug/health on an address of their own. */
    debug: {
      addr: { kind: 'address' },
      prometheus: { enabled: bool, path: str },
      pprof: ignored('Go profiling does not apply; use node --inspect or --cpu-prof'),
      tls: ignored('the debug server speaks plain HTTP; keep its address private'),
    },
    http2: ignored('HTTP/2 is not offered; HTTP/1.1 keeps blob streaming fastest'),
    h2c: ignored('HTTP/2 is not offered; HTTP/1.1 keeps blob streaming fastest'),
    tls: {
      certificate: str,
      key: str,
      clientcas: strings,
      /** registry:2 3.x: require-and-verify-client-cert (default with clientcas) or verify-client-cert-if-given. */
      clientauth: { kind: 'enum', values: ['require-and-verify-client-cert', 'verify-client-cert-if-given'] },
      minimumtls: { kind: 'enum', values: ['tls1.0', 'tls1.1', 'tls1.2', 'tls1.3'] },
    },
  },
  auth: {
    htpasswd: { realm: str, path: str },
    token: {
      realm: str,
      service: str,
      issuer: str,
      rootcertbundle: str,
      jwks: str,
      autoredirect: bool,
      autoredirectpath: str,
      signingalgorithms: strings,
    },
    /** Wharf's built-in token issuer (the Docker token protocol and OAuth2 POST form). */
    issuer: {
      enabled: bool,
      route: str,
      expiration: duration,
      refreshexpiration: duration,
      algorithm: { kind: 'enum', values: ['es256', 'rs256'] },
    },
    /** Who may do what: users, groups, robots, public repositories. */
    policy: {
      admins: strings,
      public: strings,
      defaultactions: strings,
      groups: { kind: 'yaml' },
      rules: { kind: 'yaml' },
    },
    /** Failed-login throttling per user and per client address. */
    throttle: { maxfailures: { kind: 'integer', min: 1, max: 1_000_000 }, maxfailuresperaddress: { kind: 'integer', min: 1, max: 1_000_000 }, window: duration },
    /** Credentials over plain HTTP on a non-loopback address are refused unless this is true. */
    allowplainhttp: bool,
  },
  audit: { enabled: bool, path: str },
  storage: {
    filesystem: { rootdirectory: str, maxthreads: ignored('Node.js manages its own thread pool') },
    delete: { enabled: bool },
    maintenance: {
      uploadpurging: { enabled: bool, age: duration, interval: duration, dryrun: bool },
      readonly: { enabled: bool },
    },
    /** Wharf's own: garbage collection inside `wharf serve` (docs/garbage-collection.md). */
    gc: { enabled: bool, interval: duration, delay: duration, deleteuntagged: bool },
    /** Wharf's own: below `minimum` free bytes under the root, pushes are refused until space returns (docs/operations.md). */
    freespace: { minimum: str, interval: duration },
    cache: ignored('metadata lookups are already indexed'),
    /** registry:2's S3 driver (docs/scale-out.md); the data directory then keeps only local state. */
    s3: {
      accesskey: str,
      secretkey: str,
      sessiontoken: str,
      region: str,
      regionendpoint: str,
      forcepathstyle: bool,
      bucket: str,
      rootdirectory: str,
      encrypt: bool,
      keyid: str,
      secure: bool,
      skipverify: bool,
      chunksize: { kind: 'integer', min: 5 * 1024 * 1024, max: 5 * 1024 * 1024 * 1024 },
      storageclass: str,
      multipartcopychunksize: { kind: 'integer', min: 5 * 1024 * 1024, max: 5 * 1024 * 1024 * 1024 },
      multipartcopymaxconcurrency: { kind: 'integer', min: 1, max: 1000 },
      multipartcopythresholdsize: ignored('moves copy objects of up to 5 GiB in one request, larger ones in parts'),
      v4auth: ignored('requests are always signed with Signature Version 4'),
      objectacl: ignored("objects get the bucket's default ACL; grant access with a bucket policy"),
      useragent: ignored('the AWS SDK sets the user agent'),
      usedualstack: ignored('set regionendpoint to a dual-stack endpoint instead'),
      accelerate: ignored('set regionendpoint to an accelerated endpoint instead'),
      loglevel: ignored('S3 errors are logged at the registry log level'),
    },
    /** Blob GETs answered with a redirect to the store (S3 presigned URLs) unless `disable`. */
    redirect: { disable: bool },
    tag: ignored('not applicable'),
  },
  metadata: {
    sqlite: { path: str, synchronous: { kind: 'enum', values: ['full', 'normal'] } },
  },
  /** GitLab's registry `database` section: metadata in PostgreSQL, for replicas (docs/scale-out.md). */
  database: {
    enabled: bool,
    host: str,
    port: { kind: 'integer', min: 1, max: 65535 },
    user: str,
    password: str,
    dbname: str,
    sslmode: { kind: 'enum', values: ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'] },
    sslcert: str,
    sslkey: str,
    sslrootcert: str,
    connecttimeout: duration,
    draintimeout: ignored('connections close once the requests in flight have finished (http.draintimeout)'),
    pool: { maxopen: { kind: 'integer', min: 1, max: 1000 }, maxidle: { kind: 'integer', min: 0, max: 1000 }, maxlifetime: duration, maxidletime: duration },
  },
  catalog: { maxentries: { kind: 'integer', min: 1, max: 100_000 } },
  /** Wharf's own: how long the manifests in a tag's history stay restorable (docs/lifecycle.md). */
  history: { retention: duration },
  /** Wharf's own: immutable-tag rules as REPOSITORY_PATTERN:TAG_PATTERN, beside those of the admin API. */
  immutable: { rules: strings },
  /**
   * Wharf's own: retention policies, run every `interval` (0: only on demand) and recording of
   * pull times (docs/lifecycle.md; policies are read by src/registry/retention-service.ts).
   */
  retention: { interval: duration, dryrun: bool, recordpulls: bool, policies: { kind: 'yaml' } },
  server: {
    workers: { kind: 'integer', min: 0, max: 64 },
  },
  /** Wharf's own: storage quotas, `[{repository|prefix, limit}]` (docs/quotas.md; read by src/registry/quota-rules.ts). */
  quotas: { kind: 'yaml' },
  /** registry:2's health checks, served at /debug/health on the debug address. */
  health: {
    storagedriver: { enabled: bool, interval: duration, threshold: { kind: 'integer', min: 1, max: 1000 } },
    file: ignored('file checks are not supported; /readyz checks storage, metadata and free space'),
    http: ignored('HTTP checks are not supported; /readyz checks storage, metadata and free space'),
    tcp: ignored('TCP checks are not supported; /readyz checks storage, metadata and free space'),
  },
  /** Wharf's own: token buckets per client address or user, per route family (docs/operations.md). */
  ratelimit: {
    enabled: bool,
    pulls: { rate: { kind: 'integer', min: 1, max: 1_000_000 }, burst: { kind: 'integer', min: 1, max: 10_000_000 } },
    pushes: { rate: { kind: 'integer', min: 1, max: 1_000_000 }, burst: { kind: 'integer', min: 1, max: 10_000_000 } },
    auth: { rate: { kind: 'integer', min: 1, max: 1_000_000 }, burst: { kind: 'integer', min: 1, max: 10_000_000 } },
    /** `[{user, pulls?, pushes?, auth?}]`: limits of their own for named users and robots. */
    overrides: { kind: 'yaml' },
  },
  redis: ignored('Wharf needs no cache service'),
  /** registry:2's notifications (docs/notifications.md): endpoints are a list, checked by config.ts. */
  notifications: {
    endpoints: { kind: 'yaml' },
    events: { includereferences: bool },
  },
  validation: ignored('manifests are always validated'),
  compatibility: ignored('schema 1 manifests are not accepted, so its signing key is unused'),
  loglevel: ignored('use log.level'),
} as const satisfies Section;

/** The value a leaf of each kind has once read (durations in milliseconds). */
interface LeafValues {
  string: string;
  address: string;
  boolean: boolean;
  integer: number;
  duration: number;
  headers: Record<string, string[]>;
  strings: string[];
  yaml: unknown;
}

type LeafValue<L> = L extends { kind: 'enum'; values: readonly (infer V)[] } ? V : L extends { kind: infer K extends keyof LeafValues } ? LeafValues[K] : never;

/** Every dotted path to a key Wharf reads, e.g. `storage.maintenance.uploadpurging.age`. */
export type ConfigPath<S = typeof SCHEMA, Prefix extends string = ''> = {
  [K in keyof S & string]: S[K] extends { kind: 'ignored' }
    ? never
    : S[K] extends { kind: string }
      ? `${Prefix}${K}`
      : ConfigPath<S[K], `${Prefix}${K}.`>;
}[keyof S & string];

type LeafAt<P extends string, S = typeof SCHEMA> = P extends `${infer Head}.${infer Rest}`
  ? Head extends keyof S
    ? LeafAt<Rest, S[Head]>
    : never
  : P extends keyof S
    ? S[P]
    : never;

/** The type of the value at a path: a misspelt path is a compile error, not a silent default. */
export type ConfigValue<P extends ConfigPath> = LeafValue<LeafAt<P>>;
