import { join } from 'node:path';
import type { Logger } from 'pino';
import type { ProxyConfig } from '../config/proxy-config.js';
import type { Middleware } from '../http/app.js';
import { PullThroughCache } from '../proxy/pull-through-cache.js';
import type { Digest } from '../oci/digest.js';
import type { MetadataStore } from '../metadata/metadata-store.js';
import type { ServerMetrics } from './metrics.js';

/**
 * The pull-through cache of `proxy` (docs/pull-through-cache.md), wired to this process: its
 * downloads under the storage root (shared by the worker processes), its log and its metrics.
 * `ingest` is called once the registry exists (it keeps a verified download as a pushed blob).
 */
export function createPullThroughCache(
  proxy: ProxyConfig,
  options: { rootDirectory: string; metadata: MetadataStore; log: Logger; metrics: ServerMetrics | undefined; ingest: (repository: string, digest: Digest, path: string) => Promise<void> },
): PullThroughCache {
  const { metrics } = options;
  return new PullThroughCache({
    wholeRegistry: proxy.wholeRegistry,
    upstreams: proxy.upstreams.map((u) => ({
      prefix: u.prefix,
      remoteUrl: u.remoteUrl,
      tagTtlMs: u.tagTtlMs,
      ...(u.maxSizeBytes !== undefined ? { maxSizeBytes: u.maxSizeBytes } : {}),
      ...(u.username !== undefined && u.password !== undefined ? { username: u.username, password: u.password } : {}),
      ...(u.caCerts ? { caCerts: u.caCerts } : {}),
    })),
    fetchDirectory: join(options.rootDirectory, 'proxy-fetches'),
    ingest: options.ingest,
    metadata: options.metadata,
    log: options.log.child({ component: 'proxy' }),
    ...(metrics
      ? {
          observer: {
            request: (upstream, kind) => metrics.proxyUpstreamRequests.inc({ upstream, kind }),
            cache: (upstream, kind, outcome) => metrics.proxyCache.inc({ upstream, kind, outcome }),
          },
        }
      : {}),
  });
}

/**
 * containerd's mirror requests (a hosts.toml `[host]` entry) name the registry they mirror in
 * `?ns=`: `GET /v2/library/alpine/manifests/3?ns=docker.io` is the cache's
 * `docker.io/library/alpine`. Runs before the access gate, so access rules see the cache's name.
 */
export function mirrorNamespaces(cache: PullThroughCache): Middleware {
  return async (exchange, next) => {
    const ns = exchange.query.get('ns');
    const route = exchange.route as { name?: string };
    if (ns && route.name !== undefined && !cache.locate(route.name)) {
      const name = cache.namespaced(ns, route.name);
      if (name !== undefined) route.name = name;
    }
    await next();
  };
}

/**
 * `ttl` as retention policies: per upstream, tags nobody pulled within `ttl` go, and so do the
 * untagged manifests older than it; garbage collection then reclaims the bytes.
 */
export function proxyTtlPolicies(proxy: ProxyConfig | undefined): Array<Record<string, unknown>> {
  if (!proxy) return [];
  return proxy.upstreams
    .filter((u) => u.ttlMs > 0)
    .map((u) => ({ repositories: u.prefix === '' ? '**' : `${u.prefix}/**`, notpulledwithin: `${Math.max(1, Math.round(u.ttlMs / 1000))}s`, untaggedolderthan: `${Math.max(1, Math.round(u.ttlMs / 1000))}s` }));
}
