import type { Readable } from 'node:stream';
import yauzl from 'yauzl';
import { ScanError, type ScanLimits } from './scan-error.js';
import type { RawPackage } from './os-packages.js';

/** npm: a package-lock.json (lockfile v1, v2 or v3). */
export function parseNpmLock(content: Buffer, location: string): RawPackage[] {
  const lock = JSON.parse(content.toString('utf8')) as {
    packages?: Record<string, { version?: string; name?: string; link?: boolean }>;
    dependencies?: Record<string, LockV1Dependency>;
  };
  const packages: RawPackage[] = [];
  if (lock.packages && typeof lock.packages === 'object') {
    for (const [key, entry] of Object.entries(lock.packages)) {
      if (key === '' || !entry || entry.link || typeof entry.version !== 'string') continue;
      const at = key.lastIndexOf('node_modules/');
      if (at < 0) continue;
      packages.push(npmPackage(entry.name ?? key.slice(at + 'node_modules/'.length), entry.version, location));
    }
    return packages;
  }
  const walk = (deps: Record<string, LockV1Dependency> | undefined, depth: number): void => {
    if (!deps || depth > 64) return;
    for (const [name, dep] of Object.entries(deps)) {
      if (typeof dep?.version === 'string' && !dep.version.includes(':')) packages.push(npmPackage(name, dep.version, location));
      walk(dep?.dependencies, depth + 1);
    }
  };
  walk(lock.dependencies, 0);
  return packages;
}

interface LockV1Dependency {
  version?: string;
  dependencies?: Record<string, LockV1Dependency>;
}

/** npm: an installed package's own package.json under node_modules. */
export function parseNpmPackageJson(content: Buffer, location: string): RawPackage[] {
  const manifest = JSON.parse(content.toString('utf8')) as { name?: unknown; version?: unknown };
  if (typeof manifest.name !== 'string' || typeof manifest.version !== 'string') return [];
  return [npmPackage(manifest.name, manifest.version, location)];
}

function npmPackage(fullName: string, version: string, location: string): RawPackage {
  const slash = fullName.startsWith('@') ? fullName.indexOf('/') : -1;
  const pkg: RawPackage = { type: 'npm', name: slash > 0 ? fullName.slice(slash + 1) : fullName, version, location };
  if (slash > 0) pkg.namespace = fullName.slice(0, slash);
  return pkg;
}

/** Python: a wheel's `*.dist-info/METADATA` or an egg's `PKG-INFO` (RFC 822 headers). */
export function parsePythonMetadata(content: Buffer, location: string): RawPackage[] {
  const text = content.toString('utf8');
  const end = text.search(/\r?\n\r?\n/);
  const head = end >= 0 ? text.slice(0, end) : text;
  const name = /^Name:\s*(.+)$/im.exec(head)?.[1]?.trim();
  const version = /^Version:\s*(.+)$/im.exec(head)?.[1]?.trim();
  if (!name || !version) return [];
  // PEP 503 normalised name, as PyPI and OSV key packages.
  return [{ type: 'pypi', name: name.toLowerCase().replace(/[-_.]+/g, '-'), version, location }];
}

/** Maven: `META-INF/maven/<group>/<artifact>/pom.properties`. */
export function parsePomProperties(content: Buffer, location: string): RawPackage[] {
  const props = new Map<string, string>();
  for (const line of content.toString('utf8').split(/\r?\n/)) {
    const m = /^\s*([\w.-]+)\s*[=:]\s*(.*?)\s*$/.exec(line);
    if (m && !line.trimStart().startsWith('#')) props.set(m[1]!, m[2]!);
  }
  const group = props.get('groupId');
  const artifact = props.get('artifactId');
  const version = props.get('version');
  if (!group || !artifact || !version) return [];
  return [{ type: 'maven', namespace: group, name: artifact, version, location }];
}

const POM_PROPERTIES = /^META-INF\/maven\/[^/]+\/[^/]+\/pom\.properties$/;
export const ARCHIVE_NAME = /\.(jar|war|ear|par|sar|hpi|jpi)$/i;

/**
 * A Java archive and the archives nested in it: the Maven coordinates of each. The archive is
 * held in memory (zip needs its central directory, at the end); nested archives are expanded
 * within `maxArchiveExpandedBytes` in all and `maxArchiveDepth` deep, and entries whose real size
 * differs from the size they declare fail the read (yauzl checks as it inflates).
 */
export async function readJavaArchive(content: Buffer, location: string, limits: ScanLimits): Promise<RawPackage[]> {
  const budget = { left: limits.maxArchiveExpandedBytes };
  return readArchive(content, location, limits, 1, budget);
}

async function readArchive(content: Buffer, location: string, limits: ScanLimits, depth: number, budget: { left: number }): Promise<RawPackage[]> {
  const zip = await new Promise<yauzl.ZipFile>((resolve, reject) =>
    yauzl.fromBuffer(content, { lazyEntries: true, validateEntrySizes: true, strictFileNames: false }, (error, file) => (error ? reject(error) : resolve(file))),
  );
  const packages: RawPackage[] = [];
  try {
    for await (const entry of zipEntries(zip)) {
      const isPom = POM_PROPERTIES.test(entry.fileName);
      const isNested = ARCHIVE_NAME.test(entry.fileName) && depth < limits.maxArchiveDepth;
      if (!isPom && !isNested) continue;
      const cap = isPom ? 64 * 1024 : limits.maxArchiveBytes;
      if (entry.uncompressedSize > cap || entry.uncompressedSize > budget.left) {
        throw new ScanError(`${location}!/${entry.fileName} expands to ${entry.uncompressedSize} bytes, past the limit (a zip bomb?)`);
      }
      budget.left -= entry.uncompressedSize;
      const bytes = await readEntry(zip, entry, cap);
      const where = `${location}!/${entry.fileName}`;
      if (isPom) packages.push(...parsePomProperties(bytes, location));
      else packages.push(...(await readArchive(bytes, where, limits, depth + 1, budget)));
    }
  } finally {
    zip.close();
  }
  return packages;
}

async function* zipEntries(zip: yauzl.ZipFile): AsyncGenerator<yauzl.Entry> {
  for (;;) {
    const entry = await new Promise<yauzl.Entry | undefined>((resolve, reject) => {
      const onEntry = (e: yauzl.Entry): void => {
        cleanup();
        resolve(e);
      };
      const onEnd = (): void => {
        cleanup();
        resolve(undefined);
      };
      const onError = (error: Error): void => {
        cleanup();
        reject(error);
      };
      const cleanup = (): void => {
        zip.off('entry', onEntry);
        zip.off('end', onEnd);
        zip.off('error', onError);
      };
      zip.on('entry', onEntry);
      zip.on('end', onEnd);
      zip.on('error', onError);
      zip.readEntry();
    });
    if (!entry) return;
    yield entry;
  }
}

async function readEntry(zip: yauzl.ZipFile, entry: yauzl.Entry, cap: number): Promise<Buffer> {
  const stream = await new Promise<Readable>((resolve, reject) => zip.openReadStream(entry, (error, s) => (error ? reject(error) : resolve(s))));
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > cap) {
      stream.destroy();
      throw new ScanError(`${entry.fileName} expands past its declared size (a zip bomb?)`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, total);
}
