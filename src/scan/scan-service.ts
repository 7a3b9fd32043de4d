import { Readable } from 'node:stream';
import { RegistryError } from '../errors/index.js';
import { asDigest, digestOf, type Digest } from '../oci/digest.js';
import { parseManifest, type Descriptor, type Platform } from '../oci/manifest.js';
import type { RegistryServices } from '../registry/services.js';
import { CYCLONEDX_MEDIA_TYPE, inventoryToCycloneDx } from './cyclonedx.js';
import { HarborScannerClient } from './harbor-scanner.js';
import type { InstalledPackage } from './installed-package.js';
import { inventoryImage, type ImageInventory, type ImageReader } from './inventory.js';
import { buildReport, matchInventory, matchKey, osvKeyOf, VULNERABILITY_REPORT_MEDIA_TYPE, type Finding, type VulnerabilityReport } from './matcher.js';
import { isContainerImage } from './pull-policy.js';
import type { ScannerConfig } from './scan-config.js';
import { ScanError, type ScanLimits } from './scan-error.js';
import type { ScanIndex, ScanRecord } from './scan-index.js';
import { VulnerabilityDatabase } from './vuln-db.js';

/** The job that scans one manifest (an image, or each platform of an index). */
export const SCAN_IMAGE_JOB = 'scan.image';
/** The recurring job that reads the outbox for pushed images and queues their scans. */
export const SCAN_FEED_JOB = 'scan.feed';
/** The recurring job that notices a new vulnerability database generation and rescans what it affects. */
export const SCAN_RESCAN_JOB = 'scan.rescan';
/** The scanner's place in the outbox. */
export const SCAN_CONSUMER = 'scanner';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const EMPTY_CONFIG = { mediaType: 'application/vnd.oci.empty.v1+json', digest: 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a', size: 2 };

/** What the admin API offers of scanning. */
export interface ScanAdmin {
  /** Scans now (an image, or every platform of an index named by tag or digest). */
  scanNow(repository: string, reference: string, options?: { signal?: AbortSignal }): Promise<ScanRecord[]>;
  list(options: { repository?: string; limit: number }): ScanRecord[];
  /** The full vulnerability report of an image manifest; undefined when it has none. */
  report(repository: string, digest: string): Promise<VulnerabilityReport | undefined>;
}

export interface ScanServiceOptions {
  databasePath: string;
  scanners: ScannerConfig[];
  scannerVersion: string;
  limits?: Partial<ScanLimits>;
  /** Told of each scan's end (for the log). */
  onScanned?: (record: ScanRecord) => void;
}

/**
 * Scanning inside the registry: reads an image through the registry's own services (no HTTP),
 * lists what is installed, attaches the CycloneDX SBOM as a referrer, matches it against the
 * offline database (and any external scanner), attaches the vulnerability report as a referrer,
 * and records the outcome in the scan index for pull policies and rescans.
 */
export class ScanService implements ScanAdmin {
  constructor(
    private readonly registry: RegistryServices,
    private readonly index: ScanIndex,
    private readonly options: ScanServiceOptions,
  ) {}

  async scanNow(repository: string, reference: string, options: { signal?: AbortSignal } = {}): Promise<ScanRecord[]> {
    const digest = asDigest(reference);
    const record = await this.registry.manifests.get(repository, digest ? { digest } : { tag: reference });
    return this.scan(repository, record.digest, options);
  }

  /** Whether the manifest was scanned already (successfully or not). */
  scanned(repository: string, digest: string): boolean {
    return this.index.get(repository, digest) !== undefined;
  }

  list(options: { repository?: string; limit: number }): ScanRecord[] {
    return this.index.list(options);
  }

  async report(repository: string, digest: string): Promise<VulnerabilityReport | undefined> {
    const record = this.index.get(repository, digest);
    if (!record?.reportDigest) return undefined;
    const manifest = await this.registry.manifests.get(repository, { digest: record.reportDigest as Digest });
    const layer = parseManifest(manifest.content, manifest.mediaType).layers[0];
    if (!layer) return undefined;
    const blob = await this.registry.blobs.open(repository, layer.digest as Digest);
    const chunks: Buffer[] = [];
    for await (const chunk of blob.stream as AsyncIterable<Buffer>) chunks.push(chunk);
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as VulnerabilityReport;
  }

  /**
   * Scans a manifest of the repository: an image, or each image of an index (attestations left
   * out). Artifacts (anything with a subject, or not a container image) are not scanned: []
   */
  async scan(repository: string, digest: string, options: { signal?: AbortSignal } = {}): Promise<ScanRecord[]> {
    const record = await this.registry.manifests.get(repository, { digest: digest as Digest });
    if (record.subject) return [];
    const parsed = parseManifest(record.content, record.mediaType);
    if (parsed.kind === 'index') {
      const results: ScanRecord[] = [];
      for (const child of parsed.manifests) {
        if (child.platform?.os === 'unknown' && child.platform.architecture === 'unknown') continue;
        results.push(...(await this.scanImage(repository, child.digest, child.platform, options.signal)));
      }
      return results;
    }
    return this.scanImage(repository, record.digest, undefined, options.signal);
  }

  private async scanImage(repository: string, digest: string, platform: Platform | undefined, signal: AbortSignal | undefined): Promise<ScanRecord[]> {
    const record = await this.registry.manifests.get(repository, { digest: digest as Digest });
    const parsed = parseManifest(record.content, record.mediaType);
    if (parsed.kind !== 'image' || record.subject || !isContainerImage(parsed.config?.mediaType, parsed.artifactType)) return [];
    const reader = this.reader(repository);
    const started = Date.now();
    let inventory: ImageInventory;
    try {
      inventory = await inventoryImage(reader, { digest, ...(platform ? { platform } : {}) }, { ...(this.options.limits ? { limits: this.options.limits } : {}), ...(signal ? { signal } : {}) });
      if (!platform) {
        const configPlatform = await this.configPlatform(repository, parsed.config);
        if (configPlatform) inventory.platform = configPlatform;
      }
    } catch (error) {
      if (!(error instanceof ScanError)) throw error;
      const failed: ScanRecord = { repository, digest, state: 'failed', reason: error.message, packages: 0, generation: 0, scannedAt: started, findings: [] };
      if (platform) failed.platform = platform;
      this.index.record(failed, undefined);
      this.options.onScanned?.(failed);
      return [failed];
    }
    const previous = this.index.get(repository, digest);
    const sbom = Buffer.from(inventoryToCycloneDx(inventory, { name: `${repository}@${digest}` }));
    const sbomDigest = await this.attach(repository, record, CYCLONEDX_MEDIA_TYPE, sbom);
    if (previous?.sbomDigest && previous.sbomDigest !== sbomDigest) await this.detach(repository, previous.sbomDigest);
    const scanned = await this.match(repository, record, inventory, previous, { signal, sbomDigest });
    return [scanned];
  }

  /**
   * Matches an inventory (fresh, or kept from an earlier scan) against the database and the
   * external scanners, attaches the report when there is anything to match against, and records.
   */
  private async match(
    repository: string,
    subject: { digest: string; mediaType: string; content: Buffer },
    inventory: ImageInventory,
    previous: ScanRecord | undefined,
    options: { signal: AbortSignal | undefined; sbomDigest: string | undefined },
  ): Promise<ScanRecord> {
    const db = VulnerabilityDatabase.openExisting(this.options.databasePath);
    let report: VulnerabilityReport | undefined;
    try {
      if (db && db.generation > 0) report = matchInventory(inventory, db, { scannerVersion: this.options.scannerVersion });
      const external = await this.externalFindings(repository, subject.digest, options.signal);
      if (external.length > 0) {
        const replace = this.options.scanners.some((s) => s.mode === 'replace');
        const findings: Finding[] = [...(replace || !report ? [] : report.vulnerabilities), ...external.flatMap((e) => e.findings)];
        const database = report?.database ?? { generation: db?.generation ?? 0 };
        const source = [...(replace || !report ? [] : ['wharf']), ...external.map((e) => e.name)].join('+');
        report = buildReport(inventory, findings, { scannerVersion: this.options.scannerVersion, database, source });
      }
    } finally {
      db?.close();
    }
    let reportDigest: string | undefined;
    if (report) {
      reportDigest = await this.attach(repository, subject, VULNERABILITY_REPORT_MEDIA_TYPE, Buffer.from(JSON.stringify(report)));
      if (previous?.reportDigest && previous.reportDigest !== reportDigest) await this.detach(repository, previous.reportDigest);
    }
    const scanned: ScanRecord = {
      repository,
      digest: subject.digest,
      state: 'done',
      packages: inventory.packages.length,
      generation: report?.database.generation ?? 0,
      scannedAt: Date.now(),
      findings: (report?.vulnerabilities ?? []).map((f) => ({ id: f.id, aliases: f.aliases, severity: f.severity, ...(f.fixedVersion !== undefined ? { fixedVersion: f.fixedVersion } : {}), package: f.package.name })),
    };
    if (inventory.platform) scanned.platform = inventory.platform;
    if (inventory.os) scanned.os = inventory.os;
    const sbomDigest = options.sbomDigest ?? previous?.sbomDigest;
    if (sbomDigest) scanned.sbomDigest = sbomDigest;
    if (reportDigest) scanned.reportDigest = reportDigest;
    if (report) scanned.bySeverity = report.summary.bySeverity;
    this.index.record(scanned, { packages: inventory.packages, keys: packageKeys(inventory) });
    this.options.onScanned?.(scanned);
    return scanned;
  }

  /**
   * After a database import: rescans (matching the kept inventories, reading no layers) the
   * images holding a package whose advisories changed, and those never matched before.
   * Returns how many were rescanned.
   */
  async rescanChanged(options: { signal?: AbortSignal } = {}): Promise<number> {
    const db = VulnerabilityDatabase.openExisting(this.options.databasePath);
    if (!db) return 0;
    let generation: number;
    let keys: string[];
    try {
      generation = db.generation;
      const seen = this.index.getNumber('generation');
      if (generation <= seen) return 0;
      keys = db.changedSince(seen);
    } finally {
      db.close();
    }
    const images = new Map<string, { repository: string; digest: string }>();
    for (const image of this.index.imagesWith(keys)) images.set(`${image.repository}@${image.digest}`, image);
    for (const image of this.index.unmatched()) images.set(`${image.repository}@${image.digest}`, image);
    let rescanned = 0;
    for (const { repository, digest } of images.values()) {
      options.signal?.throwIfAborted();
      const packages = this.index.inventory(repository, digest);
      const previous = this.index.get(repository, digest);
      if (!packages || !previous || previous.state !== 'done') continue;
      let subject;
      try {
        subject = await this.registry.manifests.get(repository, { digest: digest as Digest });
      } catch (error) {
        // Deleted since: nothing to rescan.
        if (error instanceof RegistryError && error.code === 'MANIFEST_UNKNOWN') continue;
        throw error;
      }
      const inventory: ImageInventory = { digest, packages, warnings: [] };
      if (previous.platform) inventory.platform = previous.platform;
      if (previous.os) inventory.os = previous.os;
      await this.match(repository, subject, inventory, previous, { signal: options.signal, sbomDigest: undefined });
      rescanned++;
    }
    this.index.setNumber('generation', generation);
    return rescanned;
  }

  private async externalFindings(repository: string, digest: string, signal: AbortSignal | undefined): Promise<Array<{ name: string; findings: Finding[] }>> {
    const results: Array<{ name: string; findings: Finding[] }> = [];
    for (const scanner of this.options.scanners) {
      const client = new HarborScannerClient(scanner);
      results.push({ name: scanner.name, findings: await client.scan(repository, digest, signal ? { signal } : {}) });
    }
    return results;
  }

  private reader(repository: string): ImageReader {
    return {
      getManifest: async (digest) => {
        if (!digest) throw new ScanError('a digest is needed');
        const record = await this.registry.manifests.get(repository, { digest: digest as Digest });
        return { bytes: record.content, mediaType: record.mediaType, digest: record.digest };
      },
      openBlob: async (descriptor: Descriptor) => (await this.registry.blobs.open(repository, descriptor.digest as Digest)).stream,
    };
  }

  private async configPlatform(repository: string, config: Descriptor | undefined): Promise<Platform | undefined> {
    if (!config || config.size > 1024 * 1024) return undefined;
    try {
      const blob = await this.registry.blobs.open(repository, config.digest as Digest);
      const chunks: Buffer[] = [];
      for await (const chunk of blob.stream as AsyncIterable<Buffer>) chunks.push(chunk);
      const json = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { os?: unknown; architecture?: unknown; variant?: unknown };
      if (typeof json.os !== 'string' || typeof json.architecture !== 'string') return undefined;
      return { os: json.os, architecture: json.architecture, ...(typeof json.variant === 'string' ? { variant: json.variant } : {}) };
    } catch {
      return undefined;
    }
  }

  /** Pushes `content` as a one-layer artifact whose subject is the manifest; returns its digest. */
  private async attach(repository: string, subject: { digest: string; mediaType: string; content: Buffer }, artifactType: string, content: Buffer): Promise<string> {
    const blobDigest = digestOf(content);
    await this.registry.uploads.monolithic(repository, blobDigest, { body: Readable.from([content]), length: content.length });
    await this.registry.uploads.monolithic(repository, EMPTY_CONFIG.digest as Digest, { body: Readable.from([Buffer.from('{}')]), length: 2 });
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        artifactType,
        config: EMPTY_CONFIG,
        layers: [{ mediaType: artifactType, digest: blobDigest, size: content.length }],
        subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.content.length },
        annotations: { 'org.opencontainers.image.created': new Date().toISOString(), 'org.opencontainers.image.vendor': 'wharf' },
      }),
    );
    const digest = digestOf(manifest);
    await this.registry.manifests.put(repository, { digest }, manifest, OCI_MANIFEST);
    return digest;
  }

  /** Removes an earlier scan's artifact; kept when deletes are off (it is then only superseded). */
  private async detach(repository: string, digest: string): Promise<void> {
    try {
      await this.registry.manifests.delete(repository, { digest: digest as Digest });
    } catch (error) {
      if (!(error instanceof RegistryError)) throw error;
    }
  }
}

/** The package keys of an inventory for the rescan index (`Debian/openssl`, `npm/lodash`). */
function packageKeys(inventory: ImageInventory): string[] {
  return inventory.packages.map((p: InstalledPackage) => osvKeyOf(p, inventory.os)).flatMap((k) => (k ? [matchKey(k)] : []));
}
