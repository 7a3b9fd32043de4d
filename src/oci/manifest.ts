import { parseDigest } from './digest.js';
import {
  IMAGE_MANIFEST_TYPES,
  INDEX_MANIFEST_TYPES,
  MediaType,
  NON_DISTRIBUTABLE_LAYER_TYPES,
  bareMediaType,
  isValidMediaType,
} from './media-types.js';

/** An OCI content descriptor (image-spec descriptor.md). */
export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  urls?: string[];
  annotations?: Record<string, string>;
  artifactType?: string;
  platform?: Platform;
  data?: string;
}

export interface Platform {
  architecture: string;
  os: string;
  variant?: string;
  'os.version'?: string;
  'os.features'?: string[];
  features?: string[];
}

/** What a registry needs to know of a manifest it stores. */
export interface ParsedManifest {
  /** The effective media type: the document's own, else the Content-Type it came with. */
  mediaType: string;
  kind: 'image' | 'index';
  /** Image manifests: the config descriptor (absent for the withdrawn artifact manifest). */
  config?: Descriptor;
  /** Image manifests: layers (or `blobs` of an artifact manifest). */
  layers: Descriptor[];
  /** Indexes: the child manifests. */
  manifests: Descriptor[];
  subject?: Descriptor;
  /** `artifactType`, else for image manifests the config media type, as the referrers API reports it. */
  artifactType?: string;
  annotations?: Record<string, string>;
}

export class ManifestFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ManifestFormatError';
  }
}

function fail(message: string): never {
  throw new ManifestFormatError(message);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function stringMap(value: unknown, where: string): Record<string, string> | undefined {
  if (value === undefined) return undefined;
  if (!isObject(value)) fail(`${where} must be an object of strings`);
  for (const [key, v] of Object.entries(value)) {
    if (typeof v !== 'string') fail(`${where}["${key}"] must be a string`);
  }
  return value as Record<string, string>;
}

/** Checks one descriptor's required fields; throws ManifestFormatError naming the field. */
export function parseDescriptor(value: unknown, where: string): Descriptor {
  if (!isObject(value)) fail(`${where} must be an object`);
  const { mediaType, digest, size } = value;
  if (typeof mediaType !== 'string' || !isValidMediaType(mediaType)) fail(`${where}.mediaType is missing or malformed`);
  if (typeof digest !== 'string' || !parseDigest(digest)) fail(`${where}.digest is missing or not a supported digest`);
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) fail(`${where}.size must be a non-negative integer`);
  const descriptor: Descriptor = { mediaType, digest, size };
  if (value.urls !== undefined) {
    if (!Array.isArray(value.urls) || value.urls.some((u) => typeof u !== 'string')) fail(`${where}.urls must be strings`);
    descriptor.urls = value.urls as string[];
  }
  const annotations = stringMap(value.annotations, `${where}.annotations`);
  if (annotations) descriptor.annotations = annotations;
  if (value.artifactType !== undefined) {
    if (typeof value.artifactType !== 'string' || !isValidMediaType(value.artifactType)) fail(`${where}.artifactType is malformed`);
    descriptor.artifactType = value.artifactType;
  }
  if (value.platform !== undefined) {
    const p = value.platform;
    if (!isObject(p) || typeof p.architecture !== 'string' || typeof p.os !== 'string') {
      fail(`${where}.platform needs architecture and os`);
    }
    descriptor.platform = p as unknown as Platform;
  }
  return descriptor;
}

function descriptorList(value: unknown, where: string, required: boolean): Descriptor[] {
  if (value === undefined || value === null) {
    if (required) fail(`${where} is required`);
    return [];
  }
  if (!Array.isArray(value)) fail(`${where} must be an array`);
  return value.map((item, i) => parseDescriptor(item, `${where}[${i}]`));
}

/**
 * Parses and validates manifest bytes as pushed. `contentType` is the request's Content-Type
 * (may be empty). Throws ManifestFormatError for malformed JSON, a document that is both
 * manifest and index, a `mediaType` contradicting the Content-Type, schema 1, or a bad descriptor.
 */
export function parseManifest(bytes: Buffer, contentType: string | undefined): ParsedManifest {
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch {
    fail('manifest is not valid JSON');
  }
  if (!isObject(doc)) fail('manifest must be a JSON object');
  if (doc.schemaVersion === 1) fail('schema 1 manifests are not supported');
  if (doc.schemaVersion !== 2) fail('schemaVersion must be 2');

  const declared = doc.mediaType;
  if (declared !== undefined && typeof declared !== 'string') fail('mediaType must be a string');
  const header = contentType ? bareMediaType(contentType) : '';
  const headerIsManifest = IMAGE_MANIFEST_TYPES.has(header) || INDEX_MANIFEST_TYPES.has(header);
  if (declared !== undefined && headerIsManifest && declared !== header) {
    fail(`mediaType "${declared}" contradicts Content-Type "${header}"`);
  }

  const hasManifests = doc.manifests !== undefined;
  const hasImageFields = doc.config !== undefined || doc.layers !== undefined;
  if (hasManifests && hasImageFields) fail('a document cannot be both an image manifest and an index');

  let mediaType = declared ?? (headerIsManifest ? header : undefined);
  if (mediaType === undefined) {
    if (hasManifests) mediaType = MediaType.OciIndex;
    else if (doc.config !== undefined) mediaType = MediaType.OciManifest;
    else if (doc.blobs !== undefined) mediaType = MediaType.OciArtifactManifest;
    else fail('cannot tell the manifest type: no mediaType, config or manifests');
  }

  const annotations = stringMap(doc.annotations, 'annotations');
  const subject = doc.subject === undefined || doc.subject === null ? undefined : parseDescriptor(doc.subject, 'subject');
  let artifactType: string | undefined;
  if (doc.artifactType !== undefined) {
    if (typeof doc.artifactType !== 'string' || !isValidMediaType(doc.artifactType)) fail('artifactType is malformed');
    artifactType = doc.artifactType;
  }

  const base = { mediaType, layers: [] as Descriptor[], manifests: [] as Descriptor[] };
  let parsed: ParsedManifest;
  if (INDEX_MANIFEST_TYPES.has(mediaType)) {
    if (hasImageFields) fail('an index cannot have config or layers');
    parsed = { ...base, kind: 'index', manifests: descriptorList(doc.manifests, 'manifests', true) };
  } else if (mediaType === MediaType.OciArtifactManifest) {
    if (typeof artifactType !== 'string') fail('an artifact manifest needs artifactType');
    parsed = { ...base, kind: 'image', layers: descriptorList(doc.blobs, 'blobs', false) };
  } else if (IMAGE_MANIFEST_TYPES.has(mediaType)) {
    if (hasManifests) fail('an image manifest cannot have manifests');
    const config = parseDescriptor(doc.config, 'config');
    const layers = descriptorList(doc.layers, 'layers', mediaType === MediaType.DockerManifest);
    parsed = { ...base, kind: 'image', config, layers };
    artifactType ??= config.mediaType;
  } else {
    fail(`unsupported manifest media type "${mediaType}"`);
  }
  if (subject) parsed.subject = subject;
  if (artifactType !== undefined) parsed.artifactType = artifactType;
  if (annotations) parsed.annotations = annotations;
  return parsed;
}

/** Blobs a registry must hold before it accepts the manifest (foreign layers with URLs excepted). */
export function requiredBlobs(manifest: ParsedManifest): Descriptor[] {
  const blobs = manifest.config ? [manifest.config, ...manifest.layers] : [...manifest.layers];
  return blobs.filter((d) => !(NON_DISTRIBUTABLE_LAYER_TYPES.has(d.mediaType) && d.urls && d.urls.length > 0));
}
