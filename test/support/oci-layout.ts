import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { sha256 } from './oci-fixtures.js';

/** One regular file or whiteout in a layer tarball. */
interface TarEntry {
  path: string;
  content: Buffer;
}

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, '0') + '\0';
}

/** A minimal deterministic ustar archive (fixed mtime, uid 0, mode 0644). */
export function tar(entries: TarEntry[]): Buffer {
  const blocks: Buffer[] = [];
  for (const entry of entries) {
    const header = Buffer.alloc(512);
    header.write(entry.path, 0, 100, 'utf8');
    header.write(octal(0o644, 8), 100);
    header.write(octal(0, 8), 108);
    header.write(octal(0, 8), 116);
    header.write(octal(entry.content.length, 12), 124);
    header.write(octal(1_700_000_000, 12), 136);
    header.write('        ', 148);
    header.write('0', 156);
    header.write('ustar\0', 257);
    header.write('00', 263);
    let sum = 0;
    for (const byte of header) sum += byte;
    header.write(octal(sum, 7) + ' ', 148);
    blocks.push(header, entry.content, Buffer.alloc((512 - (entry.content.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

/** Deterministic pseudo-random bytes (so test images have the same digests on every run). */
export function seededBytes(size: number, seed: number): Buffer {
  const out = Buffer.alloc(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i += 1) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

export interface LayoutImage {
  manifestDigest: string;
  configDigest: string;
  layerDigests: string[];
  historyLength: number;
}

export interface TestLayout {
  dir: string;
  /** Single-arch linux/amd64 image with 3 layers and 5 history entries (2 empty). */
  base: LayoutImage;
  /** Index of linux/amd64 and linux/arm64/v8. */
  multi: { indexDigest: string; amd64: LayoutImage; arm64: LayoutImage };
}

class LayoutWriter {
  readonly index: Array<Record<string, unknown>> = [];
  constructor(readonly dir: string) {
    mkdirSync(join(dir, 'blobs', 'sha256'), { recursive: true });
    writeFileSync(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  }
  blob(data: Buffer): { digest: string; size: number } {
    const digest = sha256(data);
    writeFileSync(join(this.dir, 'blobs', 'sha256', digest.slice(7)), data);
    return { digest, size: data.length };
  }
  finish(): void {
    writeFileSync(join(this.dir, 'index.json'), JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: this.index }));
  }
}

function image(writer: LayoutWriter, arch: string, variant: string | undefined, layers: Buffer[], history: Array<Record<string, unknown>>): LayoutImage & { size: number; platform: Record<string, string> } {
  const diffIds = layers.map((l) => sha256(l));
  const gz = layers.map((l) => writer.blob(gzipSync(l, { level: 6 })));
  const config = {
    created: '2024-01-01T00:00:00Z',
    architecture: arch,
    ...(variant ? { variant } : {}),
    os: 'linux',
    config: { Env: ['PATH=/usr/bin:/bin', 'WHARF_TEST=1'], Cmd: ['/bin/sh'], Labels: { 'org.opencontainers.image.title': 'wharf-test' } },
    rootfs: { type: 'layers', diff_ids: diffIds },
    history,
  };
  const configBlob = writer.blob(Buffer.from(JSON.stringify(config)));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...configBlob },
      layers: gz.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...l })),
    }),
  );
  const m = writer.blob(manifest);
  return {
    manifestDigest: m.digest,
    size: m.size,
    configDigest: configBlob.digest,
    layerDigests: gz.map((l) => l.digest),
    historyLength: history.length,
    platform: { architecture: arch, os: 'linux', ...(variant ? { variant } : {}) },
  };
}

/** Writes the test images into an OCI layout at `dir` (refs `base` and `multi`). */
export function writeTestLayout(dir: string): TestLayout {
  const writer = new LayoutWriter(dir);
  const layer1 = tar([{ path: 'etc/wharf-release', content: Buffer.from('wharf test image\n') }]);
  const layer2 = tar([{ path: 'etc/.wh.wharf-release', content: Buffer.alloc(0) }, { path: 'usr/share/doc/readme', content: Buffer.from('second layer\n') }]);
  const layer3 = tar([{ path: 'opt/random.bin', content: seededBytes(2 * 1024 * 1024, 42) }]);
  const history = [
    { created: '2024-01-01T00:00:00Z', created_by: '/bin/sh -c #(nop) ADD file:release in /etc', comment: 'layer one' },
    { created: '2024-01-01T00:00:01Z', created_by: '/bin/sh -c #(nop) ENV WHARF_TEST=1', empty_layer: true },
    { created: '2024-01-01T00:00:02Z', created_by: '/bin/sh -c rm /etc/wharf-release', comment: 'layer two (whiteout)' },
    { created: '2024-01-01T00:00:03Z', created_by: '/bin/sh -c #(nop) CMD ["/bin/sh"]', empty_layer: true },
    { created: '2024-01-01T00:00:04Z', created_by: '/bin/sh -c head -c 2M /dev/urandom > /opt/random.bin', comment: 'layer three (2 MiB)' },
  ];
  const base = image(writer, 'amd64', undefined, [layer1, layer2, layer3], history);
  writer.index.push({ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: base.manifestDigest, size: base.size, annotations: { 'org.opencontainers.image.ref.name': 'base' } });

  const shared = tar([{ path: 'etc/shared', content: Buffer.from('shared between platforms\n') }]);
  const amd64 = image(writer, 'amd64', undefined, [shared, tar([{ path: 'bin/arch', content: Buffer.from('amd64\n') }])], [{ created_by: 'shared' }, { created_by: 'amd64' }]);
  const arm64 = image(writer, 'arm64', 'v8', [shared, tar([{ path: 'bin/arch', content: Buffer.from('arm64\n') }])], [{ created_by: 'shared' }, { created_by: 'arm64' }]);
  const index = writer.blob(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.index.v1+json',
        manifests: [amd64, arm64].map((m) => ({ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: m.manifestDigest, size: m.size, platform: m.platform })),
      }),
    ),
  );
  writer.index.push({ mediaType: 'application/vnd.oci.image.index.v1+json', digest: index.digest, size: index.size, annotations: { 'org.opencontainers.image.ref.name': 'multi' } });
  writer.finish();
  return { dir, base, multi: { indexDigest: index.digest, amd64, arm64 } };
}

/**
 * Writes single-platform linux/amd64 images into an OCI layout at `dir`, one ref each, every
 * layer a tarball of one file with the given bytes (the same bytes give the same layer digest).
 */
export function writeImagesLayout(dir: string, images: Array<{ ref: string; layers: Buffer[] }>): Record<string, LayoutImage> {
  const writer = new LayoutWriter(dir);
  const written: Record<string, LayoutImage> = {};
  for (const { ref, layers } of images) {
    const tarballs = layers.map((content) => tar([{ path: 'data.bin', content }]));
    const made = image(writer, 'amd64', undefined, tarballs, layers.map((_, i) => ({ created_by: `${ref} layer ${i}` })));
    writer.index.push({ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: made.manifestDigest, size: made.size, annotations: { 'org.opencontainers.image.ref.name': ref } });
    written[ref] = made;
  }
  writer.finish();
  return written;
}
