import { createCipheriv, createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';

/**
 * Deterministic test images written as an OCI image layout, the way skopeo or buildah would:
 *   base  linux/amd64, 3 gzip layers (the 2nd with a whiteout, the 3rd ~3 MiB of incompressible
 *         bytes so transfers take several reads), Env/Cmd/Labels and 5 history entries (2 empty)
 *   multi an index of linux/amd64 and linux/arm64/v8 images sharing base's first layer
 *   small a one-layer linux/amd64 image
 */
export interface TestImage {
  digest: string;
  size: number;
  mediaType: string;
  configDigest?: string;
  layers?: Array<{ digest: string; size: number }>;
  children?: Array<{ digest: string; platform: string; configDigest: string }>;
}

export interface TestLayout {
  dir: string;
  base: TestImage;
  multi: TestImage;
  small: TestImage;
}

const CREATED = '2024-01-01T00:00:00Z';
const MTIME = new Date(946684800 * 1000);

function sha256(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** Deterministic incompressible bytes: an AES-CTR keystream with a fixed key. */
export function pseudoRandom(size: number, seed = 0): Buffer {
  const key = Buffer.alloc(32, seed);
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  return Buffer.concat([cipher.update(Buffer.alloc(size)), cipher.final()]);
}

interface Entry {
  name: string;
  data?: Buffer | string;
  type?: 'file' | 'directory' | 'symlink';
  linkname?: string;
  mode?: number;
}

async function tarOf(entries: Entry[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const done = new Promise<void>((resolve, reject) => {
    pack.on('data', (c: unknown) => chunks.push(c as Buffer));
    pack.on('end', () => resolve());
    pack.on('error', reject);
  });
  for (const entry of entries) {
    const type = entry.type ?? 'file';
    const data = entry.data === undefined ? Buffer.alloc(0) : Buffer.from(entry.data);
    const header = { name: entry.name, type, mode: entry.mode ?? (type === 'directory' ? 0o755 : 0o644), mtime: MTIME, uid: 0, gid: 0, ...(entry.linkname ? { linkname: entry.linkname } : {}) };
    if (type === 'file') pack.entry({ ...header, size: data.length }, data);
    else pack.entry(header);
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

class LayoutWriter {
  readonly manifests: Array<Record<string, unknown>> = [];
  constructor(readonly dir: string) {
    mkdirSync(join(dir, 'blobs', 'sha256'), { recursive: true });
    writeFileSync(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  }
  put(data: Buffer): { digest: string; size: number } {
    const digest = sha256(data);
    writeFileSync(join(this.dir, 'blobs', 'sha256', digest.slice(7)), data);
    return { digest, size: data.length };
  }
  async layer(entries: Entry[]): Promise<{ digest: string; size: number; diffId: string }> {
    const plain = await tarOf(entries);
    const gz = gzipSync(plain, { level: 9 });
    return { ...this.put(gz), diffId: sha256(plain) };
  }
  finish(): void {
    writeFileSync(join(this.dir, 'index.json'), JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: this.manifests }));
  }
}

async function image(
  writer: LayoutWriter,
  layers: Array<{ digest: string; size: number; diffId: string }>,
  config: Record<string, unknown>,
): Promise<TestImage & { configDigest: string }> {
  const configBlob = writer.put(Buffer.from(JSON.stringify({ ...config, rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) } })));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...configBlob },
      layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: l.digest, size: l.size })),
    }),
  );
  const stored = writer.put(manifest);
  return { ...stored, mediaType: 'application/vnd.oci.image.manifest.v1+json', configDigest: configBlob.digest, layers: layers.map((l) => ({ digest: l.digest, size: l.size })) };
}

/** Writes the layout to `dir` and returns what is in it. */
export async function writeTestLayout(dir: string): Promise<TestLayout> {
  const w = new LayoutWriter(dir);
  const l1 = await w.layer([
    { name: 'etc/', type: 'directory' },
    { name: 'etc/hostname', data: 'wharf-test\n' },
    { name: 'etc/os-release', data: 'NAME="wharf-test"\nID=wharftest\n' },
    { name: 'usr/', type: 'directory' },
    { name: 'usr/share/', type: 'directory' },
    { name: 'usr/share/test/', type: 'directory' },
    { name: 'usr/share/test/a.txt', data: 'layer one\n' },
    { name: 'usr/share/test/gone.txt', data: 'removed by layer two\n' },
    { name: 'usr/share/test/a.link', type: 'symlink', linkname: 'a.txt' },
    { name: 'tmp/', type: 'directory', mode: 0o1777 },
  ]);
  const l2 = await w.layer([
    { name: 'usr/share/test/b.txt', data: 'layer two\n' },
    { name: 'usr/share/test/.wh.gone.txt', data: '' },
  ]);
  const l3 = await w.layer([
    { name: 'data/', type: 'directory' },
    { name: 'data/random.bin', data: pseudoRandom(3 * 1024 * 1024) },
  ]);
  const base = await image(w, [l1, l2, l3], {
    created: CREATED,
    architecture: 'amd64',
    os: 'linux',
    config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'WHARF_TEST=1'], Cmd: ['/bin/sh'], Labels: { 'org.example.test': 'base' } },
    history: [
      { created: CREATED, created_by: 'ADD rootfs.tar / # buildkit', comment: 'base layer' },
      { created: CREATED, created_by: 'ENV WHARF_TEST=1', empty_layer: true },
      { created: CREATED, created_by: 'RUN /bin/sh -c echo two > /usr/share/test/b.txt && rm /usr/share/test/gone.txt # buildkit' },
      { created: CREATED, created_by: 'COPY random.bin /data/ # buildkit' },
      { created: CREATED, created_by: 'CMD ["/bin/sh"]', empty_layer: true },
    ],
  });
  w.manifests.push({ mediaType: base.mediaType, digest: base.digest, size: base.size, annotations: { 'org.opencontainers.image.ref.name': 'base' } });

  const children: Array<{ digest: string; platform: string; configDigest: string }> = [];
  const entries: Array<Record<string, unknown>> = [];
  for (const [arch, variant] of [
    ['amd64', undefined],
    ['arm64', 'v8'],
  ] as const) {
    const own = await w.layer([{ name: 'etc/', type: 'directory' }, { name: 'etc/arch', data: `${arch}\n` }]);
    const child = await image(w, [l1, own], {
      created: CREATED,
      architecture: arch,
      os: 'linux',
      ...(variant ? { variant } : {}),
      config: { Cmd: ['/bin/sh'] },
      history: [{ created: CREATED, created_by: 'ADD rootfs.tar /' }, { created: CREATED, created_by: `RUN echo ${arch} > /etc/arch` }],
    });
    const platform = { os: 'linux', architecture: arch, ...(variant ? { variant } : {}) };
    children.push({ digest: child.digest, platform: `linux/${arch}${variant ? `/${variant}` : ''}`, configDigest: child.configDigest });
    entries.push({ mediaType: child.mediaType, digest: child.digest, size: child.size, platform });
  }
  const indexBytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: entries }));
  const index = w.put(indexBytes);
  const multi: TestImage = { ...index, mediaType: 'application/vnd.oci.image.index.v1+json', children };
  w.manifests.push({ mediaType: multi.mediaType, digest: multi.digest, size: multi.size, annotations: { 'org.opencontainers.image.ref.name': 'multi' } });

  const s1 = await w.layer([{ name: 'hello.txt', data: 'hello from a small image\n' }]);
  const small = await image(w, [s1], {
    created: CREATED,
    architecture: 'amd64',
    os: 'linux',
    config: { Cmd: ['/hello'] },
    history: [{ created: CREATED, created_by: 'COPY hello.txt /' }],
  });
  w.manifests.push({ mediaType: small.mediaType, digest: small.digest, size: small.size, annotations: { 'org.opencontainers.image.ref.name': 'small' } });
  w.finish();
  return { dir, base, multi, small };
}
