import type { Readable } from 'node:stream';
import { parseManifest, type Descriptor, type Platform } from '../oci/manifest.js';
import { readGoBinary } from './go-buildinfo.js';
import { withPurl, type InstalledPackage, type OsRelease } from './installed-package.js';
import { ARCHIVE_NAME, parseNpmLock, parseNpmPackageJson, parsePomProperties, parsePythonMetadata, readJavaArchive } from './language-packages.js';
import { resolveMerged, walkLayers, type FileEntryInfo, type FileInterest, type LayerBlob } from './layer-files.js';
import { parseApkInstalled, parseDpkgStatus, parseOsRelease, parseRpmSqlite, type RawPackage } from './os-packages.js';
import { DEFAULT_SCAN_LIMITS, ScanError, type ScanLimits } from './scan-error.js';

/**
 * Where a scan reads an image from: a registry repository through the client, a repository of
 * this registry, an OCI layout. (The client's ImageSource has this shape.)
 */
export interface ImageReader {
  /** The top manifest of the named image, or the manifest with `digest`. */
  getManifest(digest?: string): Promise<{ bytes: Buffer; mediaType: string; digest: string }>;
  openBlob(descriptor: Descriptor, offset: number): Promise<Readable>;
}

/** An image manifest to inventory: the image itself, or one platform of an index. */
export interface ScanTarget {
  digest: string;
  platform?: Platform;
}

/** What is installed in one image (one platform). */
export interface ImageInventory {
  /** The image manifest's digest. */
  digest: string;
  platform?: Platform;
  os?: OsRelease;
  packages: InstalledPackage[];
  /** Files skipped or half-read, with why. */
  warnings: string[];
}

const OS_RELEASE_PATHS = ['etc/os-release', 'usr/lib/os-release'];
const PACKAGE_DB = { dpkg: 'var/lib/dpkg/status', apk: 'lib/apk/db/installed' } as const;
const RPMDB_PATHS = new Set(['var/lib/rpm/rpmdb.sqlite', 'usr/lib/sysimage/rpm/rpmdb.sqlite']);
/** Executables smaller than this are scripts or stubs, not Go programs. */
const MIN_BINARY_BYTES = 16 * 1024;

/**
 * The image manifests behind a reference: the image itself, or each platform of an index
 * (attestation manifests, whose platform is unknown/unknown, are left out).
 */
export async function scanTargets(reader: ImageReader, digest?: string): Promise<ScanTarget[]> {
  const top = await reader.getManifest(digest);
  const parsed = parseManifest(top.bytes, top.mediaType);
  if (parsed.kind === 'image') return [{ digest: top.digest }];
  return parsed.manifests
    .filter((m) => !(m.platform?.os === 'unknown' && m.platform.architecture === 'unknown') && m.annotations?.['vnd.docker.reference.type'] !== 'attestation-manifest')
    .map((m) => (m.platform ? { digest: m.digest, platform: m.platform } : { digest: m.digest }));
}

/** Lists what is installed in one image manifest, reading its layers bottom first. */
export async function inventoryImage(
  reader: ImageReader,
  target: ScanTarget,
  options: { limits?: Partial<ScanLimits>; signal?: AbortSignal } = {},
): Promise<ImageInventory> {
  const limits = { ...DEFAULT_SCAN_LIMITS, ...options.limits };
  const manifest = await reader.getManifest(target.digest);
  const parsed = parseManifest(manifest.bytes, manifest.mediaType);
  if (parsed.kind !== 'image') throw new ScanError(`${target.digest} is an index, not an image`);
  const layers: LayerBlob[] = parsed.layers
    .filter((l) => !l.mediaType.includes('nondistributable') && !l.mediaType.includes('foreign'))
    .map((l) => ({ digest: l.digest, size: l.size, open: () => reader.openBlob(l, 0) }));
  return inventoryLayers(layers, { ...target, digest: manifest.digest }, limits, options.signal);
}

/** The inventory of an image given as its layers (for tests and local archives). */
export async function inventoryLayers(layers: readonly LayerBlob[], target: ScanTarget, limits: ScanLimits = DEFAULT_SCAN_LIMITS, signal?: AbortSignal): Promise<ImageInventory> {
  const merged = await walkLayers<RawPackage>(layers, {
    interest: (entry) => interestIn(entry, limits),
    keepSymlink: (path) => OS_RELEASE_PATHS.includes(path),
    limits,
    ...(signal ? { signal } : {}),
  });
  let os: OsRelease | undefined;
  for (const path of OS_RELEASE_PATHS) {
    const text = resolveMerged(merged, path, limits.maxSymlinkHops)?.text;
    os = text !== undefined ? parseOsRelease(text) : undefined;
    if (os) break;
  }
  const warnings: string[] = [];
  const seen = new Set<string>();
  const packages: InstalledPackage[] = [];
  for (const [, file] of [...merged].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (file.kind !== 'findings') continue;
    warnings.push(...(file.findings.warnings ?? []));
    for (const raw of file.findings.packages ?? []) {
      let pkg: InstalledPackage;
      try {
        pkg = withPurl(raw, os);
      } catch (error) {
        // A name no purl can carry (a hostile or broken package database): listed as a warning.
        warnings.push(`${raw.location}: package ${JSON.stringify(raw.name).slice(0, 200)} skipped: ${error instanceof Error ? error.message : String(error)}`);
        continue;
      }
      // The same package found twice (a lock file and node_modules) is listed once.
      if (seen.has(pkg.purl)) continue;
      seen.add(pkg.purl);
      packages.push(pkg);
    }
  }
  const inventory: ImageInventory = { digest: target.digest, packages, warnings };
  if (target.platform) inventory.platform = target.platform;
  if (os) inventory.os = os;
  return inventory;
}

function interestIn(entry: FileEntryInfo, limits: ScanLimits): FileInterest<RawPackage> | undefined {
  const { path } = entry;
  const at = `/${path}`;
  const manifestFile = (parse: (content: Buffer, location: string) => RawPackage[]): FileInterest<RawPackage> => ({
    kind: 'content',
    maxBytes: limits.maxManifestFileBytes,
    tooLarge: 'skip',
    parse: (content) => ({ packages: parse(content, at) }),
  });
  if (OS_RELEASE_PATHS.includes(path)) return { kind: 'content', maxBytes: 64 * 1024, tooLarge: 'skip', parse: (content) => ({ text: content.toString('utf8') }) };
  if (path === PACKAGE_DB.dpkg || (path.startsWith('var/lib/dpkg/status.d/') && !path.endsWith('.md5sums'))) {
    return { kind: 'content', maxBytes: limits.maxPackageDbBytes, tooLarge: 'fail', parse: (content) => ({ packages: parseDpkgStatus(content.toString('utf8'), at) }) };
  }
  if (path === PACKAGE_DB.apk) {
    return { kind: 'content', maxBytes: limits.maxPackageDbBytes, tooLarge: 'fail', parse: (content) => ({ packages: parseApkInstalled(content.toString('utf8'), at) }) };
  }
  if (RPMDB_PATHS.has(path)) {
    return { kind: 'content', maxBytes: limits.maxPackageDbBytes, tooLarge: 'fail', parse: (content) => ({ packages: parseRpmSqlite(content, at) }) };
  }
  const base = path.slice(path.lastIndexOf('/') + 1);
  if (base === 'package-lock.json' || base === '.package-lock.json') return manifestFile(parseNpmLock);
  if (base === 'package.json' && /(^|\/)node_modules\/(@[^/]+\/)?[^/@][^/]*\/package\.json$/.test(path)) return manifestFile(parseNpmPackageJson);
  if ((base === 'METADATA' && path.endsWith('.dist-info/METADATA')) || (base === 'PKG-INFO' && path.endsWith('.egg-info/PKG-INFO')) || base.endsWith('.egg-info')) {
    return manifestFile(parsePythonMetadata);
  }
  if (base === 'pom.properties' && path.includes('META-INF/maven/')) return manifestFile(parsePomProperties);
  if (ARCHIVE_NAME.test(base)) {
    return {
      kind: 'content',
      maxBytes: limits.maxArchiveBytes,
      tooLarge: 'skip',
      parse: async (content) => ({ packages: await readJavaArchive(content, at, limits) }),
    };
  }
  if ((entry.mode & 0o111) !== 0 && entry.size >= MIN_BINARY_BYTES) {
    return { kind: 'stream', consume: (stream) => readGoBinary(stream, at) };
  }
  return undefined;
}
