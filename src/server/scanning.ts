import { join } from 'node:path';
import type { WharfConfig } from '../config/config.js';
import type { JobHandler } from '../jobs/job-runner.js';
import type { Logger } from '../log/logger.js';
import type { MetadataStore } from '../metadata/metadata-store.js';
import type { RegistryServices } from '../registry/services.js';
import { withPullPolicy } from '../scan/pull-policy.js';
import { parseScanners, parseVulnerabilityPolicies, ScanConfigError, type ScannerConfig, type VulnerabilityPolicy } from '../scan/scan-config.js';
import { ScanIndex } from '../scan/scan-index.js';
import type { ScanService } from '../scan/scan-service.js';
import { WHARF_VERSION } from '../version.js';

/**
 * The scanner (SBOMs, the vulnerability database, layer unpacking and their libraries) loads only
 * where scanning is on: a serving process without it does not carry its heap.
 */
const loadScanService = () => import('../scan/scan-service.js');

/** How often the outbox is read for pushed images, and the database checked for a new generation. */
const FEED_EVERY_MS = 1_000;
const RESCAN_CHECK_EVERY_MS = 5_000;

/** Scanning as one serving process has it: the index, the policies, the scanners. */
export interface ScanWiring {
  index: ScanIndex;
  policies: VulnerabilityPolicy[];
  scanners: ScannerConfig[];
}

/** Validates `security.*` lists at start-up; throws ScanConfigError naming the wrong key. */
export function checkScanConfig(config: WharfConfig): void {
  parseVulnerabilityPolicies(config.security.policies);
  parseScanners(config.security.scanners, { registry: localRegistryUrl(config) });
}

export { ScanConfigError };

/** Opens the scan index when scanning is on or a pull policy needs it; undefined otherwise. */
export function openScanning(config: WharfConfig): ScanWiring | undefined {
  const policies = parseVulnerabilityPolicies(config.security.policies);
  if (!config.security.scanning.enabled && policies.length === 0) return undefined;
  return {
    index: new ScanIndex(join(config.storage.rootDirectory, 'scans.sqlite')),
    policies,
    scanners: parseScanners(config.security.scanners, { registry: localRegistryUrl(config) }),
  };
}

/** The services with pulls judged by the vulnerability policies (none: unchanged). */
export function withScanPolicies(services: RegistryServices, wiring: ScanWiring | undefined): RegistryServices {
  if (!wiring || wiring.policies.length === 0) return services;
  const index = wiring.index;
  return { ...services, manifests: withPullPolicy(services.manifests, wiring.policies, () => index) };
}

export async function createScanService(registry: RegistryServices, config: WharfConfig, wiring: ScanWiring, log: Logger): Promise<ScanService> {
  const { ScanService } = await loadScanService();
  return new ScanService(registry, wiring.index, {
    databasePath: config.security.scanning.databasePath,
    scanners: wiring.scanners,
    scannerVersion: WHARF_VERSION,
    onScanned: (record) =>
      record.state === 'failed'
        ? log.warn({ repository: record.repository, digest: record.digest, reason: record.reason }, 'image scan failed')
        : log.info({ repository: record.repository, digest: record.digest, packages: record.packages, vulnerabilities: record.findings.length, generation: record.generation }, 'image scanned'),
  });
}

/** The background jobs of scanning: scans queued from the outbox, and rescans after imports. */
export async function scanJobHandlers(metadata: MetadataStore, scans: ScanService, config: WharfConfig): Promise<Record<string, JobHandler>> {
  if (!config.security.scanning.enabled) return {};
  const { SCAN_FEED_JOB, SCAN_IMAGE_JOB, SCAN_RESCAN_JOB } = await loadScanService();
  const { feedScans } = await import('../scan/scan-feed.js');
  const handlers: Record<string, JobHandler> = {
    [SCAN_IMAGE_JOB]: async ({ job, signal }) => {
      const { repository, digest } = job.payload as { repository: string; digest: string };
      // Pushed again (another tag, the same bytes): its scan stands; rescans follow the database.
      if (scans.scanned(repository, digest)) return;
      try {
        await scans.scan(repository, digest, { signal });
      } catch (error) {
        // Deleted before its scan: nothing to do.
        if (error instanceof Error && (error as { code?: string }).code === 'MANIFEST_UNKNOWN') return;
        throw error;
      }
    },
  };
  if (config.security.scanning.onPush) handlers[SCAN_FEED_JOB] = async () => void (await feedScans(metadata, (job) => metadata.enqueueJob(job)));
  if (config.security.scanning.rescan) handlers[SCAN_RESCAN_JOB] = async ({ signal }) => void (await scans.rescanChanged({ signal }));
  return handlers;
}

/** Puts scanning's recurring jobs on the queue, and the scanner in the outbox from now on. */
export async function scheduleScanJobs(metadata: MetadataStore, config: WharfConfig): Promise<void> {
  const scanning = config.security.scanning;
  if (!scanning.enabled) return;
  const { SCAN_CONSUMER, SCAN_FEED_JOB, SCAN_RESCAN_JOB } = await loadScanService();
  if (scanning.onPush) {
    await metadata.ensureConsumer(SCAN_CONSUMER);
    await metadata.enqueueJob({ kind: SCAN_FEED_JOB, key: SCAN_FEED_JOB, repeatMs: FEED_EVERY_MS, runAt: Date.now() });
  }
  if (scanning.rescan) await metadata.enqueueJob({ kind: SCAN_RESCAN_JOB, key: SCAN_RESCAN_JOB, repeatMs: RESCAN_CHECK_EVERY_MS, runAt: Date.now() + RESCAN_CHECK_EVERY_MS });
}

/** How an external scanner reaches this registry, unless its config says otherwise. */
function localRegistryUrl(config: WharfConfig): string {
  const host = config.http.host && config.http.host !== '0.0.0.0' && config.http.host !== '::' ? config.http.host : '127.0.0.1';
  return `${config.http.tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${config.http.port}`;
}
