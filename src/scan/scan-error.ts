/**
 * A scan that cannot go on, with a reason a person can act on (a hostile or broken layer, a
 * package database over its size limit). Scans fail with this rather than crash or hang.
 */
export class ScanError extends Error {
  override readonly name = 'ScanError';
}

/** Bounds that keep a hostile image from exhausting memory or time. */
export interface ScanLimits {
  /** Largest decompressed size of one layer (a gzip or zstd bomb stops here). */
  maxLayerBytes: number;
  /** Largest compression ratio a layer may show once past `ratioFloorBytes` of output. */
  maxCompressionRatio: number;
  ratioFloorBytes: number;
  /** Largest tar entry count in one layer. */
  maxEntries: number;
  /** Largest dpkg status, apk installed or rpmdb file read. */
  maxPackageDbBytes: number;
  /** Largest manifest file (package.json, lock file, METADATA, pom.properties) read. */
  maxManifestFileBytes: number;
  /** Largest Java archive opened (it is held in memory to read its directory). */
  maxArchiveBytes: number;
  /** Largest total a Java archive and its nested archives may expand to. */
  maxArchiveExpandedBytes: number;
  /** How deep archives nest inside archives before the scan stops looking. */
  maxArchiveDepth: number;
  /** How many symlinks a path lookup follows before it is called a loop. */
  maxSymlinkHops: number;
}

export const DEFAULT_SCAN_LIMITS: ScanLimits = {
  maxLayerBytes: 16 * 1024 ** 3,
  maxCompressionRatio: 1000,
  ratioFloorBytes: 1024 ** 3,
  maxEntries: 2_000_000,
  maxPackageDbBytes: 64 * 1024 ** 2,
  maxManifestFileBytes: 16 * 1024 ** 2,
  maxArchiveBytes: 64 * 1024 ** 2,
  maxArchiveExpandedBytes: 256 * 1024 ** 2,
  maxArchiveDepth: 3,
  maxSymlinkHops: 16,
};
