import { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { Decompress } from 'fzstd';
import tar from 'tar-stream';
import { ScanError, type ScanLimits } from './scan-error.js';

/** One layer of an image, bottom first, opened as its stored (compressed) bytes. */
export interface LayerBlob {
  digest: string;
  /** The stored size, for the compression-ratio bound. */
  size: number;
  open(): Promise<Readable>;
}

/** What a file of interest yielded; kept per path so that a later layer can delete or replace it. */
export interface FileFindings<P> {
  packages?: P[];
  warnings?: string[];
  /** Small text kept whole (os-release). */
  text?: string;
}

/** How the walker should read a file it was told about. */
export type FileInterest<P> =
  /** Read it whole (up to `maxBytes`) and parse it; `tooLarge` says whether a bigger one fails the scan. */
  | { kind: 'content'; maxBytes: number; tooLarge: 'fail' | 'skip'; parse: (content: Buffer, path: string) => Promise<FileFindings<P>> | FileFindings<P> }
  /** Read it as a stream (executables: only a small part of them is kept). */
  | { kind: 'stream'; consume: (stream: Readable, path: string) => Promise<FileFindings<P>> };

export interface FileEntryInfo {
  path: string;
  size: number;
  mode: number;
}

/** What the image's merged file system held, for the files of interest only. */
export type MergedFile<P> = { kind: 'findings'; findings: FileFindings<P> } | { kind: 'symlink'; target: string };

export interface WalkOptions<P> {
  /** Undefined for a file of no interest: its bytes pass by unread. */
  interest: (entry: FileEntryInfo) => FileInterest<P> | undefined;
  /** Symlinks worth remembering (os-release is usually one). */
  keepSymlink: (path: string) => boolean;
  limits: ScanLimits;
  signal?: AbortSignal;
}

const WHITEOUT = '.wh.';
const OPAQUE = '.wh..wh..opq';

/**
 * Reads an image's layers in order through gzip or zstd and tar, never to disk, applying each
 * layer's whiteouts and opaque directories to the layers below, and returns what the files of
 * interest yielded in the final file system. Only those files are read into memory, each under a
 * size bound; everything else streams past.
 */
export async function walkLayers<P>(layers: readonly LayerBlob[], options: WalkOptions<P>): Promise<Map<string, MergedFile<P>>> {
  const merged = new Map<string, MergedFile<P>>();
  for (const layer of layers) {
    options.signal?.throwIfAborted();
    const changes = await readLayer(layer, options);
    // A layer's deletions apply to the layers below it, then its own files land on top.
    for (const dir of changes.opaque) deleteUnder(merged, dir);
    for (const path of changes.whiteouts) {
      merged.delete(path);
      deleteUnder(merged, path);
    }
    for (const [path, file] of changes.files) merged.set(path, file);
  }
  return merged;
}

/** Follows symlinks among the kept files; undefined when the path is absent or a loop. */
export function resolveMerged<P>(merged: Map<string, MergedFile<P>>, path: string, maxHops: number): FileFindings<P> | undefined {
  let current = path;
  for (let hop = 0; hop <= maxHops; hop++) {
    const file = merged.get(current);
    if (!file) return undefined;
    if (file.kind === 'findings') return file.findings;
    const next = file.target.startsWith('/') ? safePath(file.target) : safePath(`${parentOf(current)}/${file.target}`);
    if (next === undefined) return undefined;
    current = next;
  }
  return undefined;
}

function deleteUnder<P>(merged: Map<string, MergedFile<P>>, dir: string): void {
  const prefix = dir === '' ? '' : `${dir}/`;
  for (const path of merged.keys()) if (path.startsWith(prefix)) merged.delete(path);
}

interface LayerChanges<P> {
  files: Map<string, MergedFile<P>>;
  whiteouts: string[];
  opaque: string[];
}

async function readLayer<P>(layer: LayerBlob, options: WalkOptions<P>): Promise<LayerChanges<P>> {
  const changes: LayerChanges<P> = { files: new Map(), whiteouts: [], opaque: [] };
  const source = await layer.open();
  const extract = tar.extract();
  const bytes = Readable.from(decompress(source, layer, options.limits));
  bytes.on('error', (error) => extract.destroy(error));
  bytes.pipe(extract);
  let entries = 0;
  try {
    for await (const entry of extract) {
      options.signal?.throwIfAborted();
      if (++entries > options.limits.maxEntries) throw new ScanError(`layer ${layer.digest} has more than ${options.limits.maxEntries} entries`);
      const header = entry.header;
      const path = safePath(header.name);
      if (path === undefined) throw new ScanError(`layer ${layer.digest} has an entry whose name leaves the root: ${JSON.stringify(header.name)}`);
      const base = path.slice(path.lastIndexOf('/') + 1);
      if (base === OPAQUE) {
        changes.opaque.push(parentOf(path));
      } else if (base.startsWith(WHITEOUT)) {
        const dir = parentOf(path);
        changes.whiteouts.push(dir === '' ? base.slice(WHITEOUT.length) : `${dir}/${base.slice(WHITEOUT.length)}`);
      } else if (header.type === 'symlink') {
        changes.files.delete(path);
        if (options.keepSymlink(path) && header.linkname) changes.files.set(path, { kind: 'symlink', target: header.linkname });
      } else if (header.type === 'link') {
        // A hard link shares the bytes of an earlier file: share what that file yielded.
        const target = header.linkname ? safePath(header.linkname) : undefined;
        const file = target !== undefined ? changes.files.get(target) : undefined;
        if (file) changes.files.set(path, file);
      } else if (header.type === 'file' || header.type === 'contiguous-file') {
        changes.files.delete(path);
        const interest = options.interest({ path, size: header.size ?? 0, mode: header.mode ?? 0 });
        if (interest) {
          const findings = await readInterest(entry as unknown as Readable, interest, path, header.size ?? 0, layer);
          if (findings) changes.files.set(path, { kind: 'findings', findings });
          continue;
        }
      } else if (header.type === 'directory') {
        // A directory replacing a file of interest hides it.
        changes.files.delete(path);
      }
      await drain(entry as unknown as AsyncIterable<unknown>);
    }
  } catch (error) {
    source.destroy();
    bytes.destroy();
    if (error instanceof ScanError || (error instanceof Error && error.name === 'AbortError')) throw error;
    throw new ScanError(`layer ${layer.digest} cannot be read: ${error instanceof Error ? error.message : String(error)}`);
  }
  return changes;
}

async function readInterest<P>(entry: Readable, interest: FileInterest<P>, path: string, size: number, layer: LayerBlob): Promise<FileFindings<P> | undefined> {
  if (interest.kind === 'stream') {
    const findings = await interest.consume(entry, path);
    await drain(entry);
    return findings;
  }
  if (size > interest.maxBytes) {
    if (interest.tooLarge === 'fail') throw new ScanError(`/${path} in layer ${layer.digest} is ${size} bytes, over the ${interest.maxBytes}-byte limit for it`);
    await drain(entry);
    return { warnings: [`/${path} skipped: ${size} bytes, over the ${interest.maxBytes}-byte limit`] };
  }
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of entry as AsyncIterable<Buffer>) {
    total += chunk.length;
    // The header said `size`; a tar stream that lies is cut at the limit all the same.
    if (total > interest.maxBytes) throw new ScanError(`/${path} in layer ${layer.digest} is larger than its header says`);
    chunks.push(chunk);
  }
  try {
    return await interest.parse(Buffer.concat(chunks, total), path);
  } catch (error) {
    if (error instanceof ScanError) throw error;
    return { warnings: [`/${path} could not be read: ${error instanceof Error ? error.message : String(error)}`] };
  }
}

async function drain(stream: AsyncIterable<unknown> & { readableEnded?: boolean }): Promise<void> {
  if (stream.readableEnded) return;
  for await (const _ of stream) void _;
}

/**
 * Streams a layer's tar bytes out of gzip, zstd or nothing (told apart by their magic numbers),
 * stopping once the output passes the layer bounds. zstd input goes in small slices so that one
 * slice can expand to a bounded amount only.
 */
async function* decompress(source: Readable, layer: LayerBlob, limits: ScanLimits): AsyncGenerator<Buffer> {
  let produced = 0;
  const count = (n: number): void => {
    produced += n;
    if (produced > limits.maxLayerBytes) throw new ScanError(`layer ${layer.digest} expands past ${limits.maxLayerBytes} bytes (a decompression bomb?)`);
    if (produced > limits.ratioFloorBytes && produced > layer.size * limits.maxCompressionRatio) {
      throw new ScanError(`layer ${layer.digest} expands more than ${limits.maxCompressionRatio} times its stored size (a decompression bomb?)`);
    }
  };
  const input = source[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const first = await input.next();
  if (first.done) return;
  const head = first.value;
  const rest = async function* (): AsyncGenerator<Buffer> {
    yield head;
    for (;;) {
      const next = await input.next();
      if (next.done) return;
      yield next.value;
    }
  };
  if (head[0] === 0x1f && head[1] === 0x8b) {
    const gunzip = createGunzip();
    const compressed = Readable.from(rest());
    // pipe() does not pass a source's failure on: without this, gunzip would wait forever.
    compressed.on('error', (error) => gunzip.destroy(error));
    compressed.pipe(gunzip);
    for await (const chunk of gunzip as AsyncIterable<Buffer>) {
      count(chunk.length);
      yield chunk;
    }
    return;
  }
  if (head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) {
    const out: Buffer[] = [];
    const zstd = new Decompress((data) => {
      out.push(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    });
    const SLICE = 4096;
    for await (const chunk of rest()) {
      for (let at = 0; at < chunk.length; at += SLICE) {
        zstd.push(chunk.subarray(at, at + SLICE));
        while (out.length > 0) {
          const piece = out.shift()!;
          count(piece.length);
          yield piece;
        }
      }
    }
    zstd.push(new Uint8Array(0), true);
    for (const piece of out) {
      count(piece.length);
      yield piece;
    }
    return;
  }
  for await (const chunk of rest()) {
    count(chunk.length);
    yield chunk;
  }
}

/** A tar name as a path from the root (`usr/lib/x`); undefined when `..` would leave the root. */
export function safePath(name: string): string | undefined {
  const parts: string[] = [];
  for (const part of name.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (parts.length === 0) return undefined;
      parts.pop();
      continue;
    }
    parts.push(part);
  }
  return parts.join('/');
}

function parentOf(path: string): string {
  const slash = path.lastIndexOf('/');
  return slash < 0 ? '' : path.slice(0, slash);
}
