import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
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
