import { ScanError } from './scan-error.js';
import type { Finding } from './matcher.js';
import type { ScannerConfig } from './scan-config.js';
import { parseSeverity } from './severity.js';

/** Harbor's Pluggable Scanner API v1.1 media types. */
const SCAN_REQUEST_TYPE = 'application/vnd.scanner.adapter.scan.request+json; version=1.1';
const VULNERABILITY_REPORT_TYPE = 'application/vnd.security.vulnerability.report; version=1.1';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

/** What an adapter says of itself (`GET /api/v1/metadata`). */
export interface ScannerMetadata {
  scanner: { name: string; vendor?: string; version?: string };
  capabilities: Array<{ consumes_mime_types: string[]; produces_mime_types: string[] }>;
  properties?: Record<string, string>;
}

interface AdapterVulnerability {
  id: string;
  package: string;
  version: string;
  fix_version?: string;
  severity?: string;
  description?: string;
  links?: string[];
  preferred_cvss?: { score_v3?: number };
}

/**
 * A client of an external scanner that speaks Harbor's Pluggable Scanner API v1.1 (the Trivy and
 * Clair adapters do): asks it to scan an image of this registry, waits for its report as the
 * adapter's `Refresh-After` says, and turns the report into findings.
 */
export class HarborScannerClient {
  constructor(private readonly config: ScannerConfig) {}

  get name(): string {
    return this.config.name;
  }

  async metadata(signal?: AbortSignal): Promise<ScannerMetadata> {
    const response = await this.request('/api/v1/metadata', { headers: { Accept: 'application/vnd.scanner.adapter.metadata+json; version=1.1' }, ...(signal ? { signal } : {}) });
    if (response.status !== 200) throw new ScanError(`scanner ${this.config.name}: metadata answered ${response.status}`);
    const metadata = (await response.json()) as ScannerMetadata;
    const produces = (metadata.capabilities ?? []).some((c) => c.produces_mime_types?.some((t) => t.startsWith('application/vnd.security.vulnerability.report')));
    if (!produces) throw new ScanError(`scanner ${this.config.name} does not produce vulnerability reports`);
    return metadata;
  }

  /** Scans `repository@digest` and returns its findings (the package type is not known to the API). */
  async scan(repository: string, digest: string, options: { signal?: AbortSignal } = {}): Promise<Finding[]> {
    await this.metadata(options.signal);
    const body = {
      registry: { url: this.config.registry, ...(this.config.registryAuth ? { authorization: this.config.registryAuth } : {}) },
      artifact: { repository, digest, mime_type: OCI_MANIFEST },
    };
    const accepted = await this.request('/api/v1/scan', {
      method: 'POST',
      headers: { 'Content-Type': SCAN_REQUEST_TYPE, Accept: 'application/vnd.scanner.adapter.scan.response+json; version=1.0' },
      body: JSON.stringify(body),
      ...(options.signal ? { signal: options.signal } : {}),
    });
    if (accepted.status !== 202) throw new ScanError(`scanner ${this.config.name}: scan request answered ${accepted.status}: ${(await accepted.text()).slice(0, 200)}`);
    const { id } = (await accepted.json()) as { id?: string };
    if (typeof id !== 'string' || id === '') throw new ScanError(`scanner ${this.config.name}: scan request answered no id`);
    const deadline = Date.now() + this.config.timeoutMs;
    for (;;) {
      const response = await this.request(`/api/v1/scan/${encodeURIComponent(id)}/report`, {
        headers: { Accept: VULNERABILITY_REPORT_TYPE },
        redirect: 'manual',
        ...(options.signal ? { signal: options.signal } : {}),
      });
      if (response.status === 200) {
        const report = (await response.json()) as { vulnerabilities?: AdapterVulnerability[] };
        return (report.vulnerabilities ?? []).map((v) => this.finding(v));
      }
      if (response.status !== 302) throw new ScanError(`scanner ${this.config.name}: report answered ${response.status}: ${(await response.text()).slice(0, 200)}`);
      await response.body?.cancel();
      const wait = Math.min(Math.max(Number(response.headers.get('refresh-after') ?? '1'), 0.05), 30) * 1000;
      if (Date.now() + wait > deadline) throw new ScanError(`scanner ${this.config.name}: no report within ${this.config.timeoutMs / 1000}s`);
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }

  private finding(v: AdapterVulnerability): Finding {
    const finding: Finding = {
      id: v.id,
      aliases: v.id.startsWith('CVE-') ? [] : (v.links ?? []).map((l) => /CVE-\d+-\d+/.exec(l)?.[0]).filter((x): x is string => x !== undefined),
      severity: parseSeverity(v.severity ?? '') ?? 'UNKNOWN',
      package: { name: v.package, type: 'unknown', purl: '', location: `scanner:${this.config.name}` },
      installedVersion: v.version,
      ecosystem: `scanner:${this.config.name}`,
    };
    if (v.fix_version) finding.fixedVersion = v.fix_version;
    if (v.description) finding.summary = v.description.slice(0, 500);
    if (typeof v.preferred_cvss?.score_v3 === 'number') finding.score = v.preferred_cvss.score_v3;
    return finding;
  }

  private async request(path: string, init: RequestInit & { headers: Record<string, string> }): Promise<Response> {
    const headers = { ...init.headers, ...(this.config.auth ? { Authorization: this.config.auth } : {}) };
    try {
      return await fetch(`${this.config.url}${path}`, { ...init, headers });
    } catch (error) {
      if (error instanceof Error && error.name === 'AbortError') throw error;
      throw new ScanError(`scanner ${this.config.name} cannot be reached at ${this.config.url}: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
}
