/**
 * Every configuration key Wharf knows, as data: the registry:2 keys it shares (same names, same
 * meaning) plus its own. Drives YAML validation, `REGISTRY_*` environment overrides and the
 * unknown-key warnings.
 */
export type Leaf =
  | { kind: 'string' }
  | { kind: 'boolean' }
  | { kind: 'integer'; min: number; max: number }
  | { kind: 'duration' }
  | { kind: 'enum'; values: readonly string[] }
  | { kind: 'address' }
  | { kind: 'headers' }
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
const ignored = (reason: string): Leaf => ({ kind: 'ignored', reason });

export const SCHEMA: Section = {
  version: str,
  log: {
    level: { kind: 'enum', values: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] },
    formatter: { kind: 'enum', values: ['text', 'json', 'logstash', 'pretty', 'auto'] },
    accesslog: { disabled: bool },
    fields: ignored('extra log fields are not supported'),
    hooks: ignored('log hooks are not supported'),
    reportcaller: ignored('not applicable'),
  },
  http: {
    addr: { kind: 'address' },
    net: { kind: 'enum', values: ['tcp', 'tcp4', 'tcp6'] },
    host: str,
    prefix: ignored('a path prefix is not supported; put a reverse proxy in front'),
    secret: ignored('Wharf keeps upload state in metadata, not in signed URLs'),
    relativeurls: ignored('Location headers are always relative paths'),
    draintimeout: duration,
    headers: { kind: 'headers' },
    debug: ignored('use /metrics and the logs'),
    http2: ignored('not applicable'),
    h2c: ignored('not applicable'),
  },
  storage: {
    filesystem: { rootdirectory: str, maxthreads: ignored('Node.js manages its own thread pool') },
    delete: { enabled: bool },
    maintenance: {
      uploadpurging: { enabled: bool, age: duration, interval: duration, dryrun: bool },
      readonly: { enabled: bool },
    },
    cache: ignored('metadata lookups are already indexed'),
    redirect: ignored('not applicable to filesystem storage'),
    tag: ignored('not applicable'),
  },
  metadata: {
    sqlite: { path: str, synchronous: { kind: 'enum', values: ['full', 'normal'] } },
  },
  catalog: { maxentries: { kind: 'integer', min: 1, max: 100_000 } },
  server: {
    workers: { kind: 'integer', min: 0, max: 64 },
  },
  health: ignored('health checks are not configurable; use GET /v2/'),
  redis: ignored('Wharf needs no cache service'),
  notifications: ignored('webhooks are configured differently'),
  validation: ignored('manifests are always validated'),
  compatibility: ignored('schema 1 is not supported'),
  reporting: ignored('not supported'),
  loglevel: ignored('use log.level'),
};
