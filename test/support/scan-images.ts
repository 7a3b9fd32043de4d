import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import type { LayerBlob } from '../../src/scan/layer-files.js';

/** One entry of a test layer: a file (default), directory, symlink or hard link. */
export interface LayerEntry {
  name: string;
  data?: Buffer | string;
  type?: 'file' | 'directory' | 'symlink' | 'link';
  linkname?: string;
  mode?: number;
}

/** A tar archive of `entries`, built with tar-stream as image builders write them. */
export async function layerTar(entries: LayerEntry[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const done = new Promise<void>((resolve, reject) => {
    pack.on('data', (c: unknown) => chunks.push(c as Buffer));
    pack.on('end', () => resolve());
    pack.on('error', reject);
  });
  for (const entry of entries) {
    const type = entry.type ?? 'file';
    const data = entry.data === undefined ? undefined : Buffer.isBuffer(entry.data) ? entry.data : Buffer.from(entry.data);
    await new Promise<void>((resolve, reject) => {
      const header: Partial<tar.Header> & { name: string } = { name: entry.name, type, mode: entry.mode ?? (type === 'directory' ? 0o755 : 0o644), mtime: new Date(0) };
      if (entry.linkname) header.linkname = entry.linkname;
      const done = (error?: Error | null): void => (error ? reject(error) : resolve());
      if (type === 'file') pack.entry(header, data ?? Buffer.alloc(0), done);
      else pack.entry(header, done);
    });
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

/** zstd-compresses with the real zstd tool (it fails the test when missing). */
export function zstd(data: Buffer): Buffer {
  const result = spawnSync('zstd', ['-q', '-c', '-3'], { input: data, maxBuffer: 1024 ** 3 });
  if (result.status !== 0) throw new Error(`zstd failed (is it installed? scripts/install-test-tools.sh): ${result.stderr?.toString()}`);
  return result.stdout;
}

export function gzip(data: Buffer): Buffer {
  return gzipSync(data);
}

/** Layers held in memory, as the scanner reads them from a registry. */
export function memoryLayers(blobs: Buffer[]): LayerBlob[] {
  return blobs.map((blob) => ({
    digest: `sha256:${createHash('sha256').update(blob).digest('hex')}`,
    size: blob.length,
    open: async () => Readable.from([blob]),
  }));
}

/** One platform of a test image: its compressed layers, bottom first. */
export interface LayoutPlatform {
  layers: Buffer[];
  platform?: { os: string; architecture: string; variant?: string };
  /** Layer media type; gzip by default. */
  layerMediaType?: string;
}

/**
 * Writes an OCI image layout at `dir` holding `ref`: one image, or (with several platforms) an
 * index of them. Returns the top manifest's digest and each platform manifest's digest.
 */
export function writeScanLayout(dir: string, ref: string, platforms: LayoutPlatform[]): { digest: string; children: string[] } {
  const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');
  mkdirSync(join(dir, 'blobs', 'sha256'), { recursive: true });
  const put = (data: Buffer): { digest: string; size: number } => {
    const hex = sha(data);
    writeFileSync(join(dir, 'blobs', 'sha256', hex), data);
    return { digest: `sha256:${hex}`, size: data.length };
  };
  const manifests = platforms.map((p) => {
    const platform = p.platform ?? { os: 'linux', architecture: 'amd64' };
    const config = put(Buffer.from(JSON.stringify({ ...platform, rootfs: { type: 'layers', diff_ids: [] }, config: {} })));
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
        layers: p.layers.map((l) => ({ mediaType: p.layerMediaType ?? 'application/vnd.oci.image.layer.v1.tar+gzip', ...put(l) })),
      }),
    );
    return { ...put(manifest), platform };
  });
  let top: { digest: string; size: number; mediaType: string };
  if (manifests.length === 1) {
    top = { ...manifests[0]!, mediaType: 'application/vnd.oci.image.manifest.v1+json' };
    delete (top as { platform?: unknown }).platform;
  } else {
    const index = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.index.v1+json',
        manifests: manifests.map((m) => ({ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: m.digest, size: m.size, platform: m.platform })),
      }),
    );
    top = { ...put(index), mediaType: 'application/vnd.oci.image.index.v1+json' };
  }
  writeFileSync(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  writeFileSync(join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ ...top, annotations: { 'org.opencontainers.image.ref.name': ref } }] }));
  return { digest: top.digest, children: manifests.map((m) => m.digest) };
}

/** A small Debian 12 image's files: two dpkg packages (by source zlib and glibc) and an npm lock. */
export const DEBIAN_IMAGE_FILES: LayerEntry[] = [
  { name: 'etc/os-release', data: 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n' },
  {
    name: 'var/lib/dpkg/status',
    data: 'Package: zlib1g\nStatus: install ok installed\nArchitecture: amd64\nSource: zlib\nVersion: 1:1.2.13.dfsg-1\n\nPackage: libc6\nStatus: install ok installed\nArchitecture: amd64\nSource: glibc\nVersion: 2.36-9+deb12u4\n\n',
  },
  { name: 'app/package-lock.json', data: JSON.stringify({ lockfileVersion: 3, packages: { 'node_modules/lodash': { version: '4.17.20' } } }) },
];
