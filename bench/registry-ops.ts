import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { locationPath, withQuery, type HttpTarget } from './http.js';

const execFileAsync = promisify(execFile);

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

export function sha256(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** Milliseconds `work` takes. */
export async function timed(work: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await work();
  return performance.now() - started;
}

/** MB/s (10^6 bytes) for `bytes` moved in `ms`. */
export function megabytesPerSecond(bytes: number, ms: number): number {
  return bytes / 1e6 / (ms / 1000);
}

/** Monolithic push as clients do it: POST opens a session, one PUT carries the whole body. */
export async function pushMonolithic(target: HttpTarget, repository: string, data: Buffer, digest: string): Promise<void> {
  const started = await target.request('POST', `/v2/${repository}/blobs/uploads/`, { expect: [202] });
  await target.request('PUT', withQuery(locationPath(started), 'digest', digest), {
    body: data,
    headers: { 'Content-Type': 'application/octet-stream' },
    expect: [201],
  });
}

/** Chunked push: POST, one PATCH per chunk with Content-Range, then PUT with the digest. */
export async function pushChunked(target: HttpTarget, repository: string, data: Buffer, digest: string, chunkBytes: number): Promise<void> {
  let reply = await target.request('POST', `/v2/${repository}/blobs/uploads/`, { expect: [202] });
  for (let start = 0; start < data.length; start += chunkBytes) {
    const chunk = data.subarray(start, Math.min(start + chunkBytes, data.length));
    reply = await target.request('PATCH', locationPath(reply), {
      body: chunk,
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `${start}-${start + chunk.length - 1}` },
      expect: [202],
    });
  }
  await target.request('PUT', withQuery(locationPath(reply), 'digest', digest), { expect: [201] });
}

/**
 * Reads a blob (or a range of it) with curl into /dev/null and returns the transfer's MB/s as curl
 * timed it. curl rather than node:http: at gigabytes a second, Node's client spends more CPU than
 * the server it measures on a 2-core machine. Throws when fewer bytes arrive than expected.
 */
export async function pull(curl: string, url: string, expectedBytes: number, range?: { offset: number; length: number }): Promise<number> {
  const args = ['-s', '-o', '/dev/null', '-w', '%{http_code} %{size_download} %{time_total}'];
  if (range) args.push('-H', `Range: bytes=${range.offset}-${range.offset + range.length - 1}`);
  const { stdout } = await execFileAsync(curl, [...args, url]);
  const [status, size, seconds] = stdout.trim().split(' ').map(Number) as [number, number, number];
  if (status !== (range ? 206 : 200) || size !== expectedBytes) {
    throw new Error(`GET ${url} answered ${status} with ${size} bytes, expected ${expectedBytes}`);
  }
  return megabytesPerSecond(size, seconds * 1000);
}

/** Links a blob from another repository; the caller relies on it succeeding (201). */
export async function mount(target: HttpTarget, repository: string, digest: string, from: string): Promise<void> {
  await target.request('POST', `/v2/${repository}/blobs/uploads/?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(from)}`, { expect: [201] });
}

export async function putManifest(target: HttpTarget, repository: string, reference: string, manifest: Buffer): Promise<void> {
  await target.request('PUT', `/v2/${repository}/manifests/${reference}`, { body: manifest, headers: { 'Content-Type': OCI_MANIFEST }, expect: [201] });
}

/** A tiny image: a config, one small layer, and its manifest. */
export interface SmallImage {
  config: { data: Buffer; digest: string };
  layer: { data: Buffer; digest: string };
  manifest: Buffer;
  manifestDigest: string;
}

export function smallImage(): SmallImage {
  const configData = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
  const layerData = randomBytes(4096);
  const config = { data: configData, digest: sha256(configData) };
  const layer = { data: layerData, digest: sha256(layerData) };
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config.digest, size: configData.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layer.digest, size: layerData.length }],
    }),
  );
  return { config, layer, manifest, manifestDigest: sha256(manifest) };
}

/** Pushes the small image to `repository` under `tag`. */
export async function pushSmallImage(target: HttpTarget, repository: string, image: SmallImage, tag: string): Promise<void> {
  await pushMonolithic(target, repository, image.config.data, image.config.digest);
  await pushMonolithic(target, repository, image.layer.data, image.layer.digest);
  await putManifest(target, repository, tag, image.manifest);
}

/** The next page's path from a Link header, if any. */
function nextPage(link: string | string[] | undefined): string | undefined {
  const value = Array.isArray(link) ? link[0] : link;
  const m = value ? /<([^>]+)>\s*;\s*rel="?next"?/.exec(value) : null;
  if (!m) return undefined;
  return m[1]!.startsWith('/') ? m[1]! : (() => {
    const url = new URL(m[1]!);
    return url.pathname + url.search;
  })();
}

/** Follows Link headers from `path` to the end; returns the pages read and every item listed. */
export async function readAllPages(target: HttpTarget, path: string, key: 'tags' | 'repositories'): Promise<{ pages: number; items: number }> {
  let next: string | undefined = path;
  let pages = 0;
  let items = 0;
  while (next !== undefined) {
    const reply = await target.request('GET', next, { expect: [200] });
    const body = JSON.parse(reply.body.toString()) as Record<string, string[] | null>;
    items += body[key]?.length ?? 0;
    pages += 1;
    next = nextPage(reply.headers.link);
  }
  return { pages, items };
}

/** Overwrites the first 8 bytes with `variant`, so each push is new content; returns the digest. */
export function makeVariant(data: Buffer, variant: number): string {
  data.writeBigUInt64BE(BigInt(variant), 0);
  return sha256(data);
}
