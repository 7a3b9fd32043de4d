import { PackageURL } from 'packageurl-js';

/** The package systems an inventory lists; each has its own version ordering. */
export type PackageType = 'deb' | 'apk' | 'rpm' | 'npm' | 'pypi' | 'golang' | 'maven';

/** One installed package, as found in an image. */
export interface InstalledPackage {
  type: PackageType;
  /** Maven group, Go module path prefix, npm scope; absent for the others. */
  namespace?: string;
  name: string;
  version: string;
  /** Distribution packages: the source package (Debian advisories are keyed by it) and its version. */
  source?: { name: string; version: string };
  arch?: string;
  /** RPM: the epoch, kept apart from `version` as rpm does. */
  epoch?: number;
  /** Where it was found (`/var/lib/dpkg/status`, `/app/package-lock.json`). */
  location: string;
  purl: string;
}

/** The distribution the image is built on, from /etc/os-release. */
export interface OsRelease {
  id: string;
  versionId?: string;
  codename?: string;
  prettyName?: string;
}

/** A package URL (purl) for a package; qualifiers name the distribution for OS packages. */
export function purlOf(pkg: Omit<InstalledPackage, 'purl'>, os?: OsRelease): string {
  const qualifiers: Record<string, string> = {};
  if (pkg.arch) qualifiers.arch = pkg.arch;
  if (pkg.epoch) qualifiers.epoch = String(pkg.epoch);
  if (pkg.source && pkg.source.name !== pkg.name) qualifiers.upstream = pkg.source.name;
  const osPackage = pkg.type === 'deb' || pkg.type === 'apk' || pkg.type === 'rpm';
  if (osPackage && os?.versionId) qualifiers.distro = `${os.id}-${os.versionId}`;
  let namespace = pkg.namespace;
  if (osPackage) namespace = os?.id ?? (pkg.type === 'deb' ? 'debian' : pkg.type === 'apk' ? 'alpine' : undefined);
  const purl = new PackageURL(pkg.type, namespace, pkg.name, pkg.version, Object.keys(qualifiers).length > 0 ? qualifiers : undefined, undefined);
  return purl.toString();
}

/** The purl without version and qualifiers: the key under which rescans find affected images. */
export function purlBase(purl: string): string {
  const at = purl.indexOf('@', purl.lastIndexOf('/') + 1);
  const cut = at >= 0 ? at : purl.search(/[?#]/);
  return cut >= 0 ? purl.slice(0, cut) : purl;
}

export function withPurl(pkg: Omit<InstalledPackage, 'purl'>, os?: OsRelease): InstalledPackage {
  return { ...pkg, purl: purlOf(pkg, os) };
}
