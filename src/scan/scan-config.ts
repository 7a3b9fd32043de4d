import { parseSeverity, type Severity } from './severity.js';

/**
 * One `security.vulnerabilities.policies[]` entry, named after Harbor's project settings
 * ("prevent vulnerable images from running", its severity, the CVE allowlist): pulls of images in
 * repositories matching `repository` are refused while they have vulnerabilities at or above
 * `severity` that the allowlist does not name.
 */
export interface VulnerabilityPolicy {
  /** Glob over repository names: `*` within a path segment, `**` across them. */
  repository: string;
  severity: Severity;
  /** Vulnerability ids or aliases (CVE-…, GHSA-…) that never block. */
  allowlist: string[];
  /** What happens to an image with no scan yet (or whose scan failed): allowed by default. */
  unscanned: 'allow' | 'deny';
  /** Only vulnerabilities that have a fixed version count (Trivy's --ignore-unfixed). */
  ignoreUnfixed: boolean;
}

/** One `security.scanners[]` entry: an external scanner behind Harbor's Pluggable Scanner API v1.1. */
export interface ScannerConfig {
  name: string;
  /** The adapter's base URL (the API is under `/api/v1`). */
  url: string;
  /** The adapter's Authorization header value (`Bearer …`, `Basic …`), when it wants one. */
  auth?: string;
  /** How the adapter reaches this registry to pull the image (its base URL, e.g. http://wharf:5000). */
  registry: string;
  /** The Authorization header value the adapter uses with this registry, when it needs one. */
  registryAuth?: string;
  /** `add`: its findings join the built-in matcher's; `replace`: they stand alone. */
  mode: 'add' | 'replace';
  /** How long to wait for its report. */
  timeoutMs: number;
}

export class ScanConfigError extends Error {}

/** Validates `security.vulnerabilities.policies`; throws naming the entry and key that is wrong. */
export function parseVulnerabilityPolicies(raw: unknown): VulnerabilityPolicy[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw new ScanConfigError('security.vulnerabilities.policies: must be a list');
  return raw.map((entry: unknown, i) => {
    const where = `security.vulnerabilities.policies[${i}]`;
    if (!entry || typeof entry !== 'object') throw new ScanConfigError(`${where}: must be a mapping`);
    const e = entry as Record<string, unknown>;
    for (const key of Object.keys(e)) {
      if (!['repository', 'severity', 'allowlist', 'unscanned', 'ignoreunfixed'].includes(key)) throw new ScanConfigError(`${where}.${key}: unknown key (repository, severity, allowlist, unscanned, ignoreunfixed)`);
    }
    if (typeof e.repository !== 'string' || e.repository === '') throw new ScanConfigError(`${where}.repository: a repository pattern is required`);
    const severity = typeof e.severity === 'string' ? parseSeverity(e.severity) : e.severity === undefined ? 'CRITICAL' : undefined;
    if (!severity) throw new ScanConfigError(`${where}.severity: "${String(e.severity)}" is not one of low, medium, high, critical`);
    const allowlist = e.allowlist ?? [];
    if (!Array.isArray(allowlist) || !allowlist.every((a) => typeof a === 'string')) throw new ScanConfigError(`${where}.allowlist: must be a list of vulnerability ids`);
    const unscanned = e.unscanned ?? 'allow';
    if (unscanned !== 'allow' && unscanned !== 'deny') throw new ScanConfigError(`${where}.unscanned: must be allow or deny`);
    if (e.ignoreunfixed !== undefined && typeof e.ignoreunfixed !== 'boolean') throw new ScanConfigError(`${where}.ignoreunfixed: must be true or false`);
    return { repository: e.repository, severity, allowlist: allowlist as string[], unscanned, ignoreUnfixed: e.ignoreunfixed === true };
  });
}

/** Validates `security.scanners`; throws naming the entry and key that is wrong. */
export function parseScanners(raw: unknown, defaults: { registry: string }): ScannerConfig[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw new ScanConfigError('security.scanners: must be a list');
  const names = new Set<string>();
  return raw.map((entry: unknown, i) => {
    const where = `security.scanners[${i}]`;
    if (!entry || typeof entry !== 'object') throw new ScanConfigError(`${where}: must be a mapping`);
    const e = entry as Record<string, unknown>;
    for (const key of Object.keys(e)) {
      if (!['name', 'url', 'auth', 'registry', 'registryauth', 'mode', 'timeout'].includes(key)) throw new ScanConfigError(`${where}.${key}: unknown key (name, url, auth, registry, registryauth, mode, timeout)`);
    }
    if (typeof e.name !== 'string' || e.name === '') throw new ScanConfigError(`${where}.name: required`);
    if (names.has(e.name)) throw new ScanConfigError(`${where}.name: "${e.name}" is used twice`);
    names.add(e.name);
    if (typeof e.url !== 'string' || !/^https?:\/\//.test(e.url)) throw new ScanConfigError(`${where}.url: an http(s) URL is required`);
    const mode = e.mode ?? 'add';
    if (mode !== 'add' && mode !== 'replace') throw new ScanConfigError(`${where}.mode: must be add or replace`);
    const timeout = e.timeout ?? 300;
    if (typeof timeout !== 'number' || !(timeout > 0)) throw new ScanConfigError(`${where}.timeout: a number of seconds`);
    const scanner: ScannerConfig = { name: e.name, url: e.url.replace(/\/+$/, ''), registry: typeof e.registry === 'string' ? e.registry : defaults.registry, mode, timeoutMs: timeout * 1000 };
    if (typeof e.auth === 'string') scanner.auth = e.auth;
    if (typeof e.registryauth === 'string') scanner.registryAuth = e.registryauth;
    return scanner;
  });
}
