import { createHash, randomBytes } from 'node:crypto';

export function sha256(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

export function sha512(data: Buffer | string): string {
  return `sha512:${createHash('sha512').update(data).digest('hex')}`;
}

export interface Blob {
  data: Buffer;
  digest: string;
}

export function blob(data: Buffer | string): Blob {
  const buffer = typeof data === 'string' ? Buffer.from(data) : data;
  return { data: buffer, digest: sha256(buffer) };
}

export function randomBlob(size: number): Blob {
  return blob(randomBytes(size));
}

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
export const DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';

export function configBlob(extra: Record<string, unknown> = {}): Blob {
  return blob(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, ...extra }));
}

/** An OCI image manifest over a config and layers; returns its exact bytes and digest. */
export function imageManifest(
  config: Blob,
  layers: Blob[],
  options: { mediaType?: string | null; subject?: { digest: string; size: number; mediaType?: string }; artifactType?: string; annotations?: Record<string, string>; configMediaType?: string } = {},
): Blob & { json: Record<string, unknown> } {
  const mediaType = options.mediaType === undefined ? OCI_MANIFEST : options.mediaType;
  const docker = mediaType === DOCKER_MANIFEST;
  const json: Record<string, unknown> = { schemaVersion: 2 };
  if (mediaType !== null) json.mediaType = mediaType;
  if (options.artifactType) json.artifactType = options.artifactType;
  json.config = {
    mediaType: options.configMediaType ?? (docker ? 'application/vnd.docker.container.image.v1+json' : 'application/vnd.oci.image.config.v1+json'),
    digest: config.digest,
    size: config.data.length,
  };
  json.layers = layers.map((l) => ({
    mediaType: docker ? 'application/vnd.docker.image.rootfs.diff.tar.gzip' : 'application/vnd.oci.image.layer.v1.tar+gzip',
    digest: l.digest,
    size: l.data.length,
  }));
  if (options.subject) json.subject = { mediaType: options.subject.mediaType ?? OCI_MANIFEST, digest: options.subject.digest, size: options.subject.size };
  if (options.annotations) json.annotations = options.annotations;
  return { ...blob(JSON.stringify(json)), json };
}

export function imageIndex(
  children: Array<{ digest: string; size: number; mediaType?: string; platform?: { os: string; architecture: string; variant?: string } }>,
  options: { mediaType?: string; subject?: { digest: string; size: number }; artifactType?: string; annotations?: Record<string, string> } = {},
): Blob & { json: Record<string, unknown> } {
  const mediaType = options.mediaType ?? OCI_INDEX;
  const json: Record<string, unknown> = {
    schemaVersion: 2,
    mediaType,
    manifests: children.map((c) => ({
      mediaType: c.mediaType ?? (mediaType === DOCKER_LIST ? DOCKER_MANIFEST : OCI_MANIFEST),
      digest: c.digest,
      size: c.size,
      ...(c.platform ? { platform: c.platform } : {}),
    })),
  };
  if (options.artifactType) json.artifactType = options.artifactType;
  if (options.subject) json.subject = { mediaType: OCI_MANIFEST, ...options.subject };
  if (options.annotations) json.annotations = options.annotations;
  return { ...blob(JSON.stringify(json)), json };
}
