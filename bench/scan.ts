import { execFileSync } from 'node:child_process';
import { createHash, createCipheriv } from 'node:crypto';
import { createWriteStream, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import tar from 'tar-stream';
import { inventoryLayers } from '../src/scan/inventory.js';
import { matchInventory } from '../src/scan/matcher.js';
import { VulnerabilityDatabase } from '../src/scan/vuln-db.js';
import { summarize, type Summary } from './figures.js';
import { startWharf, type ServerProcess } from './servers.js';
import type { BenchContext } from './workloads.js';

const MiB = 1024 * 1024;
const PACKAGES = 500;

export interface ScanResult {
  packages: number;
  advisories: number;
  /** Inventory and matching of the 500-package Debian image, in process (ms). */
  inventoryAndMatchMs: Summary;
  findings: number;
  layerMiB: number;
  /** `wharf copy` of the large image to a server with scanning off, and with it on (s). */
  pushOffSeconds: Summary;
  pushOnSeconds: Summary;
  /** The same push again, while the scanning server scans the first one (s). */
  pushOnDuringScanSeconds: Summary;
  /** From the end of the push until the SBOM referrer is there (s). */
  sbomAfterSeconds: Summary;
  /** The scanning server's peak RSS while it scanned (MiB). */
  scanningRssPeakMiB: number;
}

/** A dpkg status of `count` installed packages, half of them from shared source packages. */
function dpkgStatus(count: number): string {
  const lines: string[] = [];
  for (let i = 0; i < count; i++) {
    lines.push(`Package: pkg${i}`, 'Status: install ok installed', 'Priority: optional', 'Section: libs', 'Installed-Size: 1234', 'Maintainer: Bench <bench@example.org>', 'Architecture: amd64');
    if (i % 2 === 0) lines.push(`Source: src${i % 100}`);
    lines.push(`Version: 1:${1 + (i % 7)}.${i % 13}.${i % 5}-${1 + (i % 3)}+deb12u1`, 'Depends: libc6 (>= 2.34)', 'Description: a package of the bench', ' with a longer description line', '');
  }
  return lines.join('\n');
}

/** OSV records (Debian:12) for a third of those packages' source names, as the real feed keys them. */
function advisories(count: number): Array<Record<string, unknown>> {
  const records: Array<Record<string, unknown>> = [];
  for (let i = 0; i < count; i += 3) {
    const name = i % 2 === 0 ? `src${i % 100}` : `pkg${i}`;
    records.push({
      id: `DEBIAN-CVE-2024-${10000 + i}`,
      modified: '2024-06-01T00:00:00Z',
      aliases: [`CVE-2024-${10000 + i}`],
      affected: [{ package: { ecosystem: 'Debian:12', name }, ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }, { fixed: `1:${1 + (i % 7)}.${i % 13}.${(i % 5) + 1}-1` }] }] }],
      severity: [{ type: 'CVSS_V3', score: 'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H' }],
    });
  }
  return records;
}

/** A gzip layer: os-release, the dpkg status and `fillerMiB` of incompressible bytes, written to `file`. */
async function writeLayer(file: string, fillerMiB: number): Promise<{ digest: string; size: number }> {
  const pack = tar.pack();
  const hash = createHash('sha256');
  let size = 0;
  const counting = async function* (source: AsyncIterable<Buffer>) {
    for await (const chunk of source) {
      hash.update(chunk);
      size += chunk.length;
      yield chunk;
    }
  };
  const writing = pipeline(pack, createGzip({ level: 1 }), counting, createWriteStream(file));
  const add = (name: string, data: Buffer) => new Promise<void>((resolve, reject) => pack.entry({ name, mode: 0o644 }, data, (e) => (e ? reject(e) : resolve())));
  await add('etc/os-release', Buffer.from('ID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n'));
  await add('var/lib/dpkg/status', Buffer.from(dpkgStatus(PACKAGES)));
  if (fillerMiB > 0) {
    // Incompressible, so that the layer is as large stored as it is unpacked.
    const cipher = createCipheriv('aes-256-ctr', Buffer.alloc(32, 3), Buffer.alloc(16));
    const entry = pack.entry({ name: 'opt/data.bin', size: fillerMiB * MiB, mode: 0o644 });
    const zero = Buffer.alloc(MiB);
    await pipeline(
      Readable.from(
        (function* () {
          for (let i = 0; i < fillerMiB; i++) yield cipher.update(zero);
        })(),
      ),
      entry,
    );
  }
  pack.finalize();
  await writing;
  return { digest: `sha256:${hash.digest('hex')}`, size };
}

/** An OCI layout holding one linux/amd64 image with that layer. */
function writeLayout(dir: string, layerFile: string, layer: { digest: string; size: number }): void {
  const blobs = join(dir, 'blobs', 'sha256');
  mkdirSync(blobs, { recursive: true });
  renameSync(layerFile, join(blobs, layer.digest.slice(7)));
  const put = (data: Buffer) => {
    const hex = createHash('sha256').update(data).digest('hex');
    writeFileSync(join(blobs, hex), data);
    return { digest: `sha256:${hex}`, size: data.length };
  };
  const config = put(Buffer.from(JSON.stringify({ os: 'linux', architecture: 'amd64', rootfs: { type: 'layers', diff_ids: [] }, config: {} })));
  const manifest = put(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...layer }],
      }),
    ),
  );
  writeFileSync(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  writeFileSync(
    join(dir, 'index.json'),
    JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest, annotations: { 'org.opencontainers.image.ref.name': 'scan' } }] }),
  );
}

async function sbomPresent(server: ServerProcess, repository: string): Promise<boolean> {
  const head = await fetch(`http://${server.target.hostPort}/v2/${repository}/manifests/v1`, { method: 'HEAD', headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' } });
  const digest = head.headers.get('docker-content-digest');
  if (!digest) return false;
  const res = await fetch(`http://${server.target.hostPort}/v2/${repository}/referrers/${digest}?artifactType=${encodeURIComponent('application/vnd.cyclonedx+json')}`);
  const body = (await res.json()) as { manifests?: unknown[] };
  return (body.manifests?.length ?? 0) > 0;
}

/**
 * The `scan` group: a 500-package Debian image inventoried and matched in process (goal: under
 * 2 s), and a push of a large image (--blob-mib) to Wharf with scanning off and on, with the time
 * the SBOM takes to appear after the push and the scanning server's peak memory.
 */
export async function scanWorkloads(ctx: BenchContext, root: string): Promise<void> {
  const { options: o, log } = ctx;
  const dir = join(ctx.scratch, 'scan');
  mkdirSync(dir, { recursive: true });

  log('scan: 500-package Debian image, inventory and matching in process');
  const small = join(dir, 'small.tar.gz');
  await writeLayer(small, 0);
  const layerBytes = readFileSync(small);
  const dbPath = join(dir, 'vulndb.sqlite');
  const osvDir = join(dir, 'osv');
  mkdirSync(osvDir, { recursive: true });
  const records = advisories(PACKAGES);
  for (const r of records) writeFileSync(join(osvDir, `${String(r.id)}.json`), JSON.stringify(r));
  const db = VulnerabilityDatabase.open(dbPath);
  await db.import(osvDir);
  const timings: number[] = [];
  let findings = 0;
  try {
    for (let rep = 0; rep < Math.max(o.repetitions, 3); rep++) {
      const started = performance.now();
      const inventory = await inventoryLayers([{ digest: 'sha256:bench', size: layerBytes.length, open: async () => Readable.from([layerBytes]) }], { digest: 'sha256:bench' });
      const report = matchInventory(inventory, db, { scannerVersion: 'bench' });
      timings.push(performance.now() - started);
      if (inventory.packages.length !== PACKAGES) throw new Error(`the bench image lists ${inventory.packages.length} packages, not ${PACKAGES}`);
      findings = report.summary.total;
    }
  } finally {
    db.close();
  }

  log(`scan: push of a ${o.blobMiB} MiB image, scanning off and on`);
  const layout = join(dir, 'layout');
  const big = join(dir, 'big.tar.gz');
  const layer = await writeLayer(big, o.blobMiB);
  writeLayout(layout, big, layer);
  const off = await startWharf(root, { workers: o.wharfWorkers, nodeArgs: o.wharfNodeArgs, env: { REGISTRY_SECURITY_SCANNING_ENABLED: 'false' } });
  const on = await startWharf(root, { workers: o.wharfWorkers, nodeArgs: o.wharfNodeArgs, env: { REGISTRY_SECURITY_SCANNING_ENABLED: 'true' } });
  const pushOff: number[] = [];
  const pushOn: number[] = [];
  const pushOnDuringScan: number[] = [];
  const sbomAfter: number[] = [];
  let rssPeak = 0;
  const copy = (server: ServerProcess, repository: string): number => {
    const started = performance.now();
    execFileSync(process.execPath, [ctx.wharfCli, '--plain-http', '-q', 'copy', `oci:${layout}:scan`, `${server.target.hostPort}/${repository}:v1`], { stdio: 'pipe' });
    return (performance.now() - started) / 1000;
  };
  try {
    for (let rep = 0; rep < o.repetitions; rep++) {
      for (const server of rep % 2 === 0 ? [off, on] : [on, off]) {
        // Two pushes back to back: on the scanning server the second one runs while the first is scanned.
        const first = copy(server, `bench/scan${rep}a`);
        const pushedAt = performance.now();
        const second = copy(server, `bench/scan${rep}b`);
        if (server === off) {
          pushOff.push(first, second);
          continue;
        }
        pushOn.push(first);
        pushOnDuringScan.push(second);
        const deadline = Date.now() + 600_000;
        for (const repository of [`bench/scan${rep}a`, `bench/scan${rep}b`]) {
          while (!(await sbomPresent(on, repository))) {
            rssPeak = Math.max(rssPeak, on.memory.rss());
            if (Date.now() > deadline) throw new Error('no SBOM 10 minutes after the push');
            await new Promise((resolve) => setTimeout(resolve, 100));
          }
          if (repository.endsWith('a')) sbomAfter.push((performance.now() - pushedAt) / 1000);
        }
      }
    }
  } catch (error) {
    for (const server of [off, on]) log(`${server === on ? 'scanning' : 'non-scanning'} wharf output (tail):\n${server.output().slice(-4000)}`);
    throw error;
  } finally {
    await off.stop();
    await on.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  const result: ScanResult = {
    packages: PACKAGES,
    advisories: records.length,
    inventoryAndMatchMs: summarize(timings)!,
    findings,
    layerMiB: Math.round(layer.size / MiB),
    pushOffSeconds: summarize(pushOff)!,
    pushOnSeconds: summarize(pushOn)!,
    pushOnDuringScanSeconds: summarize(pushOnDuringScan)!,
    sbomAfterSeconds: summarize(sbomAfter)!,
    scanningRssPeakMiB: Math.round(rssPeak / MiB),
  };
  ctx.details.scan = result;
}

export function renderScan(result: ScanResult): string {
  const f = (s: Summary, digits = 2) => `${s.median.toFixed(digits)} (${Math.min(...s.samples).toFixed(digits)}–${Math.max(...s.samples).toFixed(digits)})`;
  return [
    '| scan | median (min–max) |',
    '| --- | --- |',
    `| ${result.packages}-package Debian image, inventory + match against ${result.advisories} advisories (${result.findings} findings), ms | ${f(result.inventoryAndMatchMs, 0)} |`,
    `| push of a ${result.layerMiB} MiB image, scanning off, s | ${f(result.pushOffSeconds)} |`,
    `| same push, scanning on, s | ${f(result.pushOnSeconds)} |`,
    `| same push again while the first is being scanned, s | ${f(result.pushOnDuringScanSeconds)} |`,
    `| SBOM referrer there after the first push, s | ${f(result.sbomAfterSeconds)} |`,
    `| scanning server's peak RSS while scanning, MiB | ${result.scanningRssPeakMiB} |`,
  ].join('\n');
}
