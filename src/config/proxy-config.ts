import { readFileSync } from 'node:fs';
import { parseByteSize } from '../oci/byte-size.js';
import { parseDuration } from './duration.js';

/** registry:2's default `proxy.ttl`: cached content nobody pulled for a week goes. */
export const DEFAULT_PROXY_TTL_MS = 168 * 3_600_000;
/** How long a cached tag is trusted before the upstream is asked again (a HEAD). */
export const DEFAULT_PROXY_TAG_TTL_MS = 5 * 60_000;

/** One upstream registry that the cache mirrors. */
export interface ProxyUpstreamConfig {
  /**
   * The repository prefix it is mirrored under (`docker.io`: `docker.io/library/alpine` is the
   * upstream's `library/alpine`). Empty in registry:2's form, where the whole registry mirrors it.
   */
  prefix: string;
  /** The upstream's root, `https://registry-1.docker.io`. */
  remoteUrl: string;
  /** Basic credentials, or those exchanged for bearer tokens; never logged. */
  username?: string;
  password?: string;
  /** Cached content nobody pulled for this long is expired; 0 keeps it. */
  ttlMs: number;
  /** A cached tag older than this is revalidated with the upstream (a HEAD); 0 asks every time. */
  tagTtlMs: number;
  /** Bytes the upstream's cached content may take; the least recently pulled goes first. Absent: no limit. */
  maxSizeBytes?: number;
  /** PEM CA certificates trusted for this upstream, besides Node's roots (`ca`: a file path). */
  caCerts?: string[];
}

export interface ProxyConfig {
  /** True in registry:2's form (`proxy.remoteurl`): every repository mirrors the one upstream and nothing can be pushed. */
  wholeRegistry: boolean;
  upstreams: ProxyUpstreamConfig[];
}

const UPSTREAM_KEYS = new Set(['prefix', 'remoteurl', 'username', 'password', 'ttl', 'tagttl', 'maxsize', 'ca']);

/**
 * The `proxy` section, checked so that a typo stops the start: registry:2's `remoteurl`,
 * `username`, `password`, `ttl` (plus Wharf's `tagttl`), or Wharf's `upstreams` list. Throws
 * an Error naming the key; undefined when the section is absent.
 */
export function buildProxyConfig(section: Record<string, unknown> | undefined): ProxyConfig | undefined {
  if (section === undefined) return undefined;
  const remoteurl = section.remoteurl;
  const upstreams = section.upstreams;
  const hasRemote = remoteurl !== undefined && remoteurl !== null && remoteurl !== '';
  const hasList = upstreams !== undefined && upstreams !== null;
  if (hasRemote && hasList) throw new Error('proxy: use either proxy.remoteurl (the whole registry mirrors one upstream) or proxy.upstreams, not both');
  if (hasRemote) {
    return { wholeRegistry: true, upstreams: [upstream({ ...section, prefix: '' }, 'proxy', { wholeRegistry: true })] };
  }
  if (!hasList) {
    if (Object.keys(section).length === 0) return undefined;
    throw new Error('proxy: proxy.remoteurl or proxy.upstreams is required');
  }
  if (!Array.isArray(upstreams)) throw new Error('proxy.upstreams must be a list of {prefix, remoteurl, ...}');
  const prefixes = new Set<string>();
  const list = upstreams.map((entry: unknown, i) => {
    const where = `proxy.upstreams[${i}]`;
    if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) throw new Error(`${where} must be a mapping`);
    const e: Record<string, unknown> = {};
    for (const [key, v] of Object.entries(entry as Record<string, unknown>)) e[key.toLowerCase()] = v;
    const unknown = Object.keys(e).find((key) => !UPSTREAM_KEYS.has(key));
    if (unknown !== undefined) throw new Error(`${where}: unknown key "${unknown}"`);
    const config = upstream(e, where, { wholeRegistry: false });
    for (const other of prefixes) {
      if (other === config.prefix || other.startsWith(`${config.prefix}/`) || config.prefix.startsWith(`${other}/`)) {
        throw new Error(`${where}.prefix: "${config.prefix}" overlaps "${other}"`);
      }
    }
    prefixes.add(config.prefix);
    return config;
  });
  if (list.length === 0) return undefined;
  return { wholeRegistry: false, upstreams: list };
}

function upstream(e: Record<string, unknown>, where: string, options: { wholeRegistry: boolean }): ProxyUpstreamConfig {
  const text = (key: string): string | undefined => {
    const v = e[key];
    if (v === undefined || v === null || v === '') return undefined;
    if (typeof v !== 'string') throw new Error(`${where}.${key} must be a string`);
    return v;
  };
  let prefix = '';
  if (!options.wholeRegistry) {
    prefix = (text('prefix') ?? '').replace(/^\/+|\/+$/g, '');
    // A repository name's components: lower-case letters, digits, separators; a host name with a port too.
    if (!/^[a-z0-9]+(?:[._:-][a-z0-9]+)*(?:\/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$/.test(prefix)) {
      throw new Error(`${where}.prefix: "${prefix}" must be a repository path such as docker.io or ghcr.io (lower case)`);
    }
  }
  const remote = text('remoteurl');
  let url: URL | undefined;
  try {
    url = remote === undefined ? undefined : new URL(remote);
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:') || (url.pathname !== '/' && url.pathname !== '')) {
    throw new Error(`${where}.remoteurl: an http:// or https:// registry root such as https://registry-1.docker.io is required`);
  }
  const duration = (key: string, fallback: number): number => {
    const v = e[key];
    if (v === undefined || v === null || v === '') return fallback;
    const ms = typeof v === 'string' || typeof v === 'number' ? parseDuration(v) : undefined;
    if (ms === undefined) throw new Error(`${where}.${key}: ${JSON.stringify(v)} is not a duration such as 168h or 5m`);
    return ms;
  };
  const username = text('username');
  const password = text('password');
  if ((username === undefined) !== (password === undefined)) throw new Error(`${where}: username and password go together`);
  let maxSizeBytes: number | undefined;
  if (e.maxsize !== undefined && e.maxsize !== null && e.maxsize !== '') {
    maxSizeBytes = typeof e.maxsize === 'string' || typeof e.maxsize === 'number' ? parseByteSize(e.maxsize) : undefined;
    if (maxSizeBytes === undefined || maxSizeBytes === 0) throw new Error(`${where}.maxsize: ${JSON.stringify(e.maxsize)} is not a size such as 50GiB`);
  }
  const ca = text('ca');
  let caCerts: string[] | undefined;
  if (ca !== undefined) {
    try {
      caCerts = [readFileSync(ca, 'utf8')];
    } catch (error) {
      throw new Error(`${where}.ca: cannot read ${ca}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
  }
  return {
    prefix,
    remoteUrl: url.origin,
    ...(username !== undefined && password !== undefined ? { username, password } : {}),
    ttlMs: duration('ttl', DEFAULT_PROXY_TTL_MS),
    tagTtlMs: duration('tagttl', DEFAULT_PROXY_TAG_TTL_MS),
    ...(maxSizeBytes !== undefined ? { maxSizeBytes } : {}),
    ...(caCerts ? { caCerts } : {}),
  };
}
