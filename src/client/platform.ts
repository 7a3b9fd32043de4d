import type { Descriptor, Platform } from '../oci/manifest.js';

/** Parses `os/arch[/variant]` (as `--platform` takes it); throws on anything else. */
export function parsePlatform(value: string): Platform {
  const parts = value.split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => p.length === 0)) {
    throw new Error(`invalid platform "${value}": expected os/arch[/variant], e.g. linux/arm64`);
  }
  const platform: Platform = { os: parts[0]!.toLowerCase(), architecture: normaliseArch(parts[1]!.toLowerCase()) };
  if (parts[2]) platform.variant = parts[2].toLowerCase();
  return platform;
}

function normaliseArch(arch: string): string {
  if (arch === 'x86_64' || arch === 'x86-64') return 'amd64';
  if (arch === 'aarch64') return 'arm64';
  return arch;
}

/** The platform this machine runs containers for: linux with Node's architecture, as docker picks it. */
export function hostPlatform(): Platform {
  switch (process.arch) {
    case 'x64':
      return { os: 'linux', architecture: 'amd64' };
    case 'arm64':
      return { os: 'linux', architecture: 'arm64', variant: 'v8' };
    case 'arm':
      return { os: 'linux', architecture: 'arm', variant: 'v7' };
    case 'ia32':
      return { os: 'linux', architecture: '386' };
    default:
      return { os: 'linux', architecture: process.arch };
  }
}

export function formatPlatform(platform: Platform | undefined): string {
  if (!platform) return 'unknown';
  return [platform.os, platform.architecture, platform.variant].filter(Boolean).join('/');
}

/** arm64 without a variant means v8, as the OCI platform guidance has it. */
function variantOf(platform: Platform): string | undefined {
  if (platform.variant) return platform.variant;
  return platform.architecture === 'arm64' ? 'v8' : undefined;
}

/** Does `candidate` run on `wanted`? A wanted platform without variant accepts any variant. */
export function platformMatches(wanted: Platform, candidate: Platform | undefined): boolean {
  if (!candidate) return false;
  if (candidate.os !== wanted.os || candidate.architecture !== wanted.architecture) return false;
  if (wanted.variant === undefined || (wanted.architecture === 'arm64' && wanted.variant === 'v8' && !candidate.variant)) return true;
  return variantOf(candidate) === variantOf(wanted);
}

/** The index entry for a platform; undefined when the index has none. */
export function selectPlatform(manifests: Descriptor[], wanted: Platform): Descriptor | undefined {
  return manifests.find((m) => platformMatches(wanted, m.platform));
}
