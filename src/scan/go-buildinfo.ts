import type { Readable } from 'node:stream';
import type { RawPackage } from './os-packages.js';

const ELF_MAGIC = Buffer.from([0x7f, 0x45, 0x4c, 0x46]);
/** The start of the `.go.buildinfo` section that the Go linker writes (Go 1.13 and later). */
const BUILDINFO_MAGIC = Buffer.from('\xff Go buildinf:', 'latin1');
/** What is kept after the magic: the header and the inline version and module strings. */
const MAX_BUILDINFO_BYTES = 1024 * 1024;

/**
 * Reads an executable as a stream and returns the Go modules it was built from (and the Go
 * standard library, as `stdlib`, at the toolchain's version). Only ELF files are looked at, and
 * only the bytes after the build-info magic are kept; the rest streams past.
 */
export async function readGoBinary(stream: Readable, location: string): Promise<{ packages: RawPackage[]; warnings?: string[] }> {
  let head: Buffer | undefined;
  let carry = Buffer.alloc(0);
  let found: Buffer[] | undefined;
  let kept = 0;
  let elf = true;
  // The stream is read to its end either way: it is a tar entry, and the tar reader needs it drained.
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    if (head === undefined) {
      head = chunk.subarray(0, 4);
      elf = head.equals(ELF_MAGIC);
    }
    if (!elf) continue;
    if (found) {
      if (kept < MAX_BUILDINFO_BYTES) {
        found.push(chunk.subarray(0, MAX_BUILDINFO_BYTES - kept));
        kept += Math.min(chunk.length, MAX_BUILDINFO_BYTES - kept);
      }
      continue;
    }
    const window = carry.length > 0 ? Buffer.concat([carry, chunk]) : chunk;
    const at = window.indexOf(BUILDINFO_MAGIC);
    if (at >= 0) {
      const rest = window.subarray(at, at + MAX_BUILDINFO_BYTES);
      found = [rest];
      kept = rest.length;
    } else {
      carry = Buffer.from(window.subarray(Math.max(0, window.length - BUILDINFO_MAGIC.length + 1)));
    }
  }
  if (!found) return { packages: [] };
  return parseBuildInfo(Buffer.concat(found), location);
}

/** Parses the build-info blob: 32-byte header, then (Go 1.18+) two varint-prefixed strings. */
export function parseBuildInfo(blob: Buffer, location: string): { packages: RawPackage[]; warnings?: string[] } {
  if (blob.length < 32) return { packages: [] };
  const flags = blob[15]!;
  if ((flags & 0x2) === 0) return { packages: [], warnings: [`${location}: built by Go before 1.18; its module list is not read`] };
  let at = 32;
  const readString = (): string | undefined => {
    let length = 0;
    let shift = 0;
    for (;;) {
      if (at >= blob.length || shift > 28) return undefined;
      const byte = blob[at++]!;
      length |= (byte & 0x7f) << shift;
      if ((byte & 0x80) === 0) break;
      shift += 7;
    }
    if (at + length > blob.length) return undefined;
    const text = blob.toString('utf8', at, at + length);
    at += length;
    return text;
  };
  const goVersion = readString();
  let modinfo = readString();
  if (goVersion === undefined || modinfo === undefined) return { packages: [], warnings: [`${location}: Go build info is truncated`] };
  // cmd/go wraps the module list in 16-byte sentinels.
  if (modinfo.length >= 33 && modinfo[modinfo.length - 17] === '\n') modinfo = modinfo.slice(16, -16);
  const packages: RawPackage[] = [];
  const std = /^go(\d+(?:\.\d+)*)/.exec(goVersion);
  if (std) packages.push(goPackage('stdlib', `v${std[1]}`, location));
  for (const line of modinfo.split('\n')) {
    const [kind, path, version] = line.split('\t');
    if (!path || !version) continue;
    if (kind === 'mod' && version !== '(devel)') packages.push(goPackage(path, version, location));
    else if (kind === 'dep') packages.push(goPackage(path, version, location));
    else if (kind === '=>' && packages.length > 0 && version !== '(devel)' && !path.startsWith('.') && !path.startsWith('/')) {
      // A replacement by another module stands for the dependency just listed; one by a local
      // directory keeps the required version, the only one an advisory can name.
      packages[packages.length - 1] = goPackage(path, version, location);
    }
  }
  return { packages };
}

function goPackage(path: string, version: string, location: string): RawPackage {
  const slash = path.lastIndexOf('/');
  const pkg: RawPackage = { type: 'golang', name: slash >= 0 ? path.slice(slash + 1) : path, version, location };
  if (slash >= 0) pkg.namespace = path.slice(0, slash);
  return pkg;
}
