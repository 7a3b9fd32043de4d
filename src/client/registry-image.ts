import { PassThrough, Readable, Transform } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Descriptor } from '../oci/manifest.js';
import { formatReference, type ImageReference } from '../oci/reference.js';
import { ClientError } from './client-error.js';
import type { BlobOutcome, ImageDestination, ImageSource } from './image-transport.js';
import type { BlobOpener } from './oci-layout.js';
import type { FetchedManifest, RegistryClient } from './registry-client.js';

/** A repository on a registry, named by a tag or digest. */
export class RegistrySource implements ImageSource {
  readonly description: string;
  readonly registryLocation: { registry: string; repository: string };

  constructor(readonly client: RegistryClient, readonly ref: ImageReference) {
    this.description = formatReference(ref);
    this.registryLocation = { registry: ref.registry, repository: ref.repository };
  }

  getManifest(digest?: string): Promise<FetchedManifest> {
    return this.client.getManifest(this.ref.repository, digest ?? this.ref.digest ?? this.ref.tag ?? 'latest');
  }

  async openBlob(descriptor: Descriptor, offset: number): Promise<Readable> {
    return Readable.from(resumingBlob(this.client, this.ref.repository, descriptor, offset), { objectMode: false });
  }

  async close(): Promise<void> {}
}

/**
 * A blob's bytes from `offset` on; when the connection drops mid-blob, asks again with
 * `Range: bytes=N-` and carries on (skipping bytes if the registry ignores Range).
 */
async function* resumingBlob(client: RegistryClient, repository: string, descriptor: Descriptor, offset: number): AsyncGenerator<Buffer> {
  let position = offset;
  let failures = 0;
  for (;;) {
    const blob = await client.openBlob(repository, descriptor.digest, { offset: position });
    let skip = position - blob.offset;
    try {
      for await (const raw of blob.stream as AsyncIterable<Buffer>) {
        let chunk = raw;
        if (skip > 0) {
          if (chunk.length <= skip) {
            skip -= chunk.length;
            continue;
          }
          chunk = chunk.subarray(skip);
          skip = 0;
        }
        position += chunk.length;
        yield chunk;
      }
      if (position >= descriptor.size) return;
      throw new Error(`connection closed after ${position} of ${descriptor.size} bytes`);
    } catch (error) {
      blob.stream.destroy();
      if (++failures > 5) {
        throw new ClientError('network', `downloading ${descriptor.digest}: ${(error as Error).message}`, { cause: error });
      }
      await sleep(200 * failures);
    }
  }
}

export class RegistryDestination implements ImageDestination {
  readonly description: string;
  readonly registryLocation: { registry: string; repository: string };

  constructor(readonly client: RegistryClient, readonly ref: ImageReference) {
    this.description = formatReference(ref);
    this.registryLocation = { registry: ref.registry, repository: ref.repository };
  }

  async hasBlob(descriptor: Descriptor): Promise<boolean> {
    return (await this.client.headBlob(this.ref.repository, descriptor.digest)) !== undefined;
  }

  async putBlob(descriptor: Descriptor, open: BlobOpener, options: { mountFrom?: string[]; onBytes?: (n: number) => void }): Promise<BlobOutcome> {
    const outcome = await this.client.uploadBlob(
      this.ref.repository,
      descriptor,
      () => lazyStream(async () => counting(await open(0), options.onBytes)),
      options.mountFrom ? { mountFrom: options.mountFrom } : {},
    );
    return outcome.status === 'uploaded' ? { status: 'written' } : outcome;
  }

  async putManifest(manifest: FetchedManifest, options: { root: boolean }): Promise<void> {
    const reference = options.root ? this.ref.tag ?? this.ref.digest ?? manifest.digest : manifest.digest;
    if (options.root && this.ref.digest && this.ref.digest !== manifest.digest) {
      throw new ClientError('digest-mismatch', `${this.description}: the image has digest ${manifest.digest}`);
    }
    await this.client.putManifest(this.ref.repository, reference, manifest.bytes, manifest.mediaType);
  }

  async commit(): Promise<void> {}
  async close(): Promise<void> {}
}

/** A stream that opens its source on first need (request bodies are handed over synchronously). */
export function lazyStream(open: () => Promise<Readable>): Readable {
  const out = new PassThrough();
  open().then(
    (source) => {
      source.on('error', (error) => out.destroy(error));
      source.pipe(out);
    },
    (error: Error) => out.destroy(error),
  );
  return out;
}

function counting(source: Readable, onBytes?: (n: number) => void): Readable {
  if (!onBytes) return source;
  const meter = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      onBytes(chunk.length);
      done(null, chunk);
    },
  });
  source.on('error', (error) => meter.destroy(error));
  return source.pipe(meter);
}
