import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { LogLevel } from '../log/logger.js';
import { parseDuration } from './duration.js';
import { SCHEMA, isLeaf, type Leaf, type Section } from './schema.js';

/** The server's settings, typed and complete (defaults filled in). */
export interface WharfConfig {
  log: { level: LogLevel; format: 'json' | 'pretty' | 'auto'; accessLog: boolean };
  http: { host: string | undefined; port: number; headers: Record<string, string[]>; drainTimeoutMs: number };
  storage: {
    rootDirectory: string;
    deleteEnabled: boolean;
    readOnly: boolean;
    uploadPurging: { enabled: boolean; ageMs: number; intervalMs: number; dryRun: boolean };
  };
  metadata: { sqlite: { path: string; synchronous: 'full' | 'normal' } };
  catalog: { maxEntries: number };
  server: { workers: number };
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
      mergeFile(raw, doc as Raw, SCHEMA, '', warnings);
    }
  }
  applyEnvironment(raw, options.env ?? process.env, warnings);
  applyFlags(raw, options.flags ?? {});
  return { config: build(raw), warnings };
}

function mergeFile(target: Raw, source: Raw, schema: Section, prefix: string, warnings: string[]): void {
  for (const [key, value] of Object.entries(source)) {
    const path = prefix ? `${prefix}.${key}` : key;
    const node = schema[key.toLowerCase()];
    if (!node) {
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
      continue;
    }
    if (typeof value !== 'object' || Array.isArray(value)) throw new ConfigError(`${path} must be a mapping`);
    const child = (target[key.toLowerCase()] ??= {}) as Raw;
    mergeFile(child, value as Raw, node, path, warnings);
  }
}

/** REGISTRY_STORAGE_DELETE_ENABLED=true sets storage.delete.enabled, matching keys without case. */
function applyEnvironment(raw: Raw, env: NodeJS.ProcessEnv, warnings: string[]): void {
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith('REGISTRY_') || value === undefined) continue;
    const parts = name.slice('REGISTRY_'.length).toLowerCase().split('_');
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
          target[found] = { ...(target[found] as Raw), [value.toLowerCase()]: {} };
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
    if (!matched) warnings.push(`unknown environment variable ${name} ignored`);
  }
}

function applyFlags(raw: Raw, flags: ConfigFlags): void {
  const section = (key: string): Raw => (raw[key] ??= {}) as Raw;
  if (flags.addr !== undefined) section('http').addr = flags.addr;
  if (flags.data !== undefined) ((section('storage').filesystem ??= {}) as Raw).rootdirectory = flags.data;
  if (flags.logLevel !== undefined) section('log').level = flags.logLevel;
  if (flags.workers !== undefined) section('server').workers = flags.workers;
  if (flags.deleteEnabled !== undefined) ((section('storage').delete ??= {}) as Raw).enabled = flags.deleteEnabled;
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
  let node: Section | Leaf = SCHEMA;
  for (const key of path.split('.')) node = (node as Section)[key]!;
  return node as Leaf;
}

/** The value at `path`, coerced to its leaf's kind; `fallback` when absent. */
function value<T>(raw: Raw, path: string, fallback: T): T {
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
    case 'ignored':
      return fallback;
  }
}

/** Splits `host:port`, `:port`, `[v6]:port`; throws ConfigError when malformed. */
export function parseAddress(addr: string): { host: string | undefined; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(addr.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || !Number.isInteger(port) || port > 65535) {
    throw new ConfigError(`http.addr: "${addr}" is not host:port (for example :5000 or 127.0.0.1:5000)`);
  }
  const host = m[1] ?? m[2];
  return { host: host ? host : undefined, port };
}

function build(raw: Raw): WharfConfig {
  const version = at(raw, 'version');
  if (version !== undefined && !['0.1', '1', '1.0'].includes(String(version))) {
    throw new ConfigError(`version: "${String(version)}" is not supported (use 0.1)`);
  }
  const { host, port } = parseAddress(value(raw, 'http.addr', ':5000'));
  const rootDirectory = resolve(value(raw, 'storage.filesystem.rootdirectory', './data'));
  const formatter = value<string>(raw, 'log.formatter', 'auto');
  return {
    log: {
      level: value<LogLevel>(raw, 'log.level', 'info'),
      format: formatter === 'text' || formatter === 'pretty' ? 'pretty' : formatter === 'auto' ? 'auto' : 'json',
      accessLog: !value(raw, 'log.accesslog.disabled', false),
    },
    http: { host, port, headers: value(raw, 'http.headers', {}), drainTimeoutMs: value(raw, 'http.draintimeout', 10_000) },
    storage: {
      rootDirectory,
      deleteEnabled: value(raw, 'storage.delete.enabled', false),
      readOnly: value(raw, 'storage.maintenance.readonly.enabled', false),
      uploadPurging: {
        enabled: value(raw, 'storage.maintenance.uploadpurging.enabled', true),
        ageMs: value(raw, 'storage.maintenance.uploadpurging.age', 168 * 3_600_000),
        intervalMs: value(raw, 'storage.maintenance.uploadpurging.interval', 24 * 3_600_000),
        dryRun: value(raw, 'storage.maintenance.uploadpurging.dryrun', false),
      },
    },
    metadata: {
      sqlite: {
        path: resolve(rootDirectory, value(raw, 'metadata.sqlite.path', 'wharf.db')),
        synchronous: value(raw, 'metadata.sqlite.synchronous', 'full'),
      },
    },
    catalog: { maxEntries: value(raw, 'catalog.maxentries', 1000) },
    // Two processes use both cores of a small machine, where most of the speed is; more cost memory
    // and SQLite write-lock contention, so larger machines opt in (0 means one per core).
    server: { workers: value(raw, 'server.workers', Math.min(2, availableParallelism())) },
  };
}
