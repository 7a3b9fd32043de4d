import Database from 'better-sqlite3';
import type { InstalledPackage, OsRelease } from './installed-package.js';

/**
 * Readers of the distributions' package databases. They return packages without purls: the purl
 * names the distribution, known only once /etc/os-release has been read from the merged layers.
 */
export type RawPackage = Omit<InstalledPackage, 'purl'>;

/** Parses `KEY=value` lines of os-release(5). */
export function parseOsRelease(text: string): OsRelease | undefined {
  const fields = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (!m) continue;
    let value = m[2]!;
    if (/^(["']).*\1$/.test(value)) value = value.slice(1, -1).replace(/\\(.)/g, '$1');
    fields.set(m[1]!, value);
  }
  const id = fields.get('ID');
  if (!id) return undefined;
  const os: OsRelease = { id: id.toLowerCase() };
  const versionId = fields.get('VERSION_ID');
  if (versionId) os.versionId = versionId;
  const codename = fields.get('VERSION_CODENAME');
  if (codename) os.codename = codename;
  const prettyName = fields.get('PRETTY_NAME');
  if (prettyName) os.prettyName = prettyName;
  return os;
}

/** Splits a deb822 or apk database into its paragraphs, each a list of fields (continuations joined). */
function paragraphs(text: string, separator: ':' | 'apk'): Array<Map<string, string>> {
  const result: Array<Map<string, string>> = [];
  let current = new Map<string, string>();
  let last: string | undefined;
  for (const line of text.split('\n')) {
    if (line.trim() === '') {
      if (current.size > 0) result.push(current);
      current = new Map();
      last = undefined;
      continue;
    }
    if (separator === ':' && (line.startsWith(' ') || line.startsWith('\t'))) {
      if (last !== undefined) current.set(last, `${current.get(last)}\n${line.trim()}`);
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    last = line.slice(0, colon);
    current.set(last, line.slice(colon + 1).trim());
  }
  if (current.size > 0) result.push(current);
  return result;
}

/** dpkg's status file (or one file of distroless `status.d/`): the installed packages. */
export function parseDpkgStatus(text: string, location: string): RawPackage[] {
  const packages: RawPackage[] = [];
  for (const fields of paragraphs(text, ':')) {
    const name = fields.get('Package');
    const version = fields.get('Version');
    if (!name || !version) continue;
    // status.d files carry no Status; the main file lists removed and half-installed ones too.
    const status = fields.get('Status');
    if (status !== undefined && !/\binstalled$/.test(status.trim()) && status.trim().split(/\s+/)[2] !== 'installed') continue;
    const pkg: RawPackage = { type: 'deb', name, version, location };
    const arch = fields.get('Architecture');
    if (arch) pkg.arch = arch;
    const source = fields.get('Source');
    if (source) {
      const m = /^(\S+)(?:\s+\(([^)]+)\))?/.exec(source);
      if (m) pkg.source = { name: m[1]!, version: m[2] ?? version };
    } else {
      pkg.source = { name, version };
    }
    packages.push(pkg);
  }
  return packages;
}

/** Alpine's /lib/apk/db/installed. */
export function parseApkInstalled(text: string, location: string): RawPackage[] {
  const packages: RawPackage[] = [];
  for (const fields of paragraphs(text, 'apk')) {
    const name = fields.get('P');
    const version = fields.get('V');
    if (!name || !version) continue;
    const pkg: RawPackage = { type: 'apk', name, version, location, source: { name: fields.get('o') ?? name, version } };
    const arch = fields.get('A');
    if (arch) pkg.arch = arch;
    packages.push(pkg);
  }
  return packages;
}

// rpm header tags and types (rpm's lib/rpmtag.h).
const TAG_NAME = 1000;
const TAG_VERSION = 1001;
const TAG_RELEASE = 1002;
const TAG_EPOCH = 1003;
const TAG_ARCH = 1022;
const TAG_SOURCERPM = 1044;
const TYPE_INT32 = 4;
const TYPE_STRING = 6;
const TYPE_STRING_ARRAY = 8;
const TYPE_I18NSTRING = 9;

/**
 * The SQLite rpmdb (`/var/lib/rpm/rpmdb.sqlite`): one header blob per package in `Packages`.
 * The database is opened from memory, read-only; a WAL-mode file is read as a rollback one.
 */
export function parseRpmSqlite(content: Buffer, location: string): RawPackage[] {
  const image = Buffer.from(content);
  // Header bytes 18 and 19 are 2 for WAL mode, which an in-memory database cannot open.
  if (image.length >= 100 && image[18] === 2) {
    image[18] = 1;
    image[19] = 1;
  }
  const db = new Database(image, { readonly: true });
  try {
    const rows = db.prepare('SELECT blob FROM Packages').raw().all() as Array<[Buffer]>;
    const packages: RawPackage[] = [];
    for (const [blob] of rows) {
      const header = readRpmHeader(blob);
      const name = header.get(TAG_NAME);
      const version = header.get(TAG_VERSION);
      const release = header.get(TAG_RELEASE);
      if (typeof name !== 'string' || typeof version !== 'string' || name === 'gpg-pubkey') continue;
      const full = typeof release === 'string' ? `${version}-${release}` : version;
      const pkg: RawPackage = { type: 'rpm', name, version: full, location };
      const epoch = header.get(TAG_EPOCH);
      if (typeof epoch === 'number' && epoch > 0) pkg.epoch = epoch;
      const arch = header.get(TAG_ARCH);
      if (typeof arch === 'string') pkg.arch = arch;
      const sourceRpm = header.get(TAG_SOURCERPM);
      const m = typeof sourceRpm === 'string' ? /^(.+)-([^-]+)-([^-]+)\.src\.rpm$/.exec(sourceRpm) : null;
      if (m) pkg.source = { name: m[1]!, version: `${m[2]}-${m[3]}` };
      packages.push(pkg);
    }
    return packages;
  } finally {
    db.close();
  }
}

/** The tags of one rpm header blob (index count, data length, index entries, data store). */
function readRpmHeader(blob: Buffer): Map<number, string | number> {
  const tags = new Map<number, string | number>();
  if (blob.length < 8) return tags;
  const count = blob.readUInt32BE(0);
  const dataLength = blob.readUInt32BE(4);
  const dataStart = 8 + count * 16;
  if (count > 100_000 || dataStart + dataLength > blob.length) throw new Error('an rpm header is truncated');
  for (let i = 0; i < count; i++) {
    const at = 8 + i * 16;
    const tag = blob.readUInt32BE(at);
    const type = blob.readUInt32BE(at + 4);
    const offset = blob.readInt32BE(at + 8);
    if (offset < 0 || offset >= dataLength) continue;
    const start = dataStart + offset;
    if (type === TYPE_STRING || type === TYPE_STRING_ARRAY || type === TYPE_I18NSTRING) {
      const end = blob.indexOf(0, start);
      if (end > 0 && end <= dataStart + dataLength) tags.set(tag, blob.toString('utf8', start, end));
    } else if (type === TYPE_INT32 && start + 4 <= dataStart + dataLength) {
      tags.set(tag, blob.readInt32BE(start));
    }
  }
  return tags;
}
