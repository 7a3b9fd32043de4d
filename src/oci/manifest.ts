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
  const text = bytes.toString('utf8');
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    fail('manifest is not valid JSON');
  }
  if (!isObject(doc)) fail('manifest must be a JSON object');
  const duplicate = findDuplicateKey(text);
  if (duplicate !== undefined) fail(`duplicate key in manifest: ${duplicate}`);
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

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;

/** An open object (its keys so far, the latest one, whether a key comes next) or array (the element index). */
interface Container {
  keys: Set<string> | undefined;
  key: string;
  expectKey: boolean;
  index: number;
}

/**
 * The first key that appears twice in one object of a JSON text, as a path (`layers[0].digest`),
 * or undefined when there is none. JSON.parse keeps the last of duplicate keys and other parsers
 * keep the first, so such a document means different things to different readers. Expects valid
 * JSON (parse it first). Keys compare as decoded strings (`"a"` and `"\u0061"` are one key).
 * Linear in the text; strings are skipped with indexOf rather than character by character.
 */
export function findDuplicateKey(text: string): string | undefined {
  const open: Container[] = [];
  const length = text.length;
  let i = 0;
  while (i < length) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      const end = closingQuote(text, i);
      const top = open[open.length - 1];
      if (top?.keys && top.expectKey) {
        const raw = text.slice(i + 1, end);
        const key = raw.includes('\\') ? (JSON.parse(text.slice(i, end + 1)) as string) : raw;
        if (top.keys.has(key)) return pathOf(open, key);
        top.keys.add(key);
        top.key = key;
        top.expectKey = false;
      }
      i = end + 1;
      continue;
    }
    if (c === OPEN_OBJECT) open.push({ keys: new Set(), key: '', expectKey: true, index: 0 });
    else if (c === OPEN_ARRAY) open.push({ keys: undefined, key: '', expectKey: false, index: 0 });
    else if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) open.pop();
    else if (c === COMMA) {
      const top = open[open.length - 1];
      if (top?.keys) top.expectKey = true;
      else if (top) top.index += 1;
    }
    i += 1;
  }
  return undefined;
}

/** The index of the quote that closes the string opening at `start`: the next one not escaped. */
function closingQuote(text: string, start: number): number {
  let from = start + 1;
  for (;;) {
    const quote = text.indexOf('"', from);
    if (quote < 0) return text.length;
    // Escaped only when an odd number of backslashes precede it (`\\"` ends the string).
    let backslashes = 0;
    while (text.charCodeAt(quote - 1 - backslashes) === BACKSLASH) backslashes += 1;
    if (backslashes % 2 === 0) return quote;
    from = quote + 1;
  }
}

function pathOf(open: Container[], duplicate: string): string {
  let path = '';
  for (const container of open.slice(0, -1)) path += container.keys ? `${path ? '.' : ''}${container.key}` : `[${container.index}]`;
  return `${path ? `${path}.` : ''}${duplicate}`;
}

/** Blobs a registry must hold before it accepts the manifest (foreign layers with URLs excepted). */
/** Everything a manifest points at, in document order: config and layers, or an index's manifests. */
export function manifestReferences(manifest: ParsedManifest): Descriptor[] {
  return [...(manifest.config ? [manifest.config] : []), ...manifest.layers, ...manifest.manifests];
}

export function requiredBlobs(manifest: ParsedManifest): Descriptor[] {
  const blobs = manifest.config ? [manifest.config, ...manifest.layers] : [...manifest.layers];
  return blobs.filter((d) => !(NON_DISTRIBUTABLE_LAYER_TYPES.has(d.mediaType) && d.urls && d.urls.length > 0));
}
