import type { Readable } from 'node:stream';
import type { FileEntry, FileInfo, FileRange, FileWriter, ReadOptions, StorageDriver } from './driver.js';

/**
 * A driver built on first use: the S3 driver brings the AWS SDK, whose loading costs every
 * process a quarter of a second, so processes configured for S3 load it when they first touch
 * storage and the others never do.
 */
export class DeferredDriver implements StorageDriver {
  private driver: Promise<StorageDriver> | undefined;

  constructor(
    readonly name: string,
    private readonly build: () => Promise<StorageDriver>,
  ) {}

  private get loaded(): Promise<StorageDriver> {
    this.driver ??= this.build();
    return this.driver;
  }

  async stat(path: string): Promise<FileInfo | undefined> {
    return (await this.loaded).stat(path);
  }

  async reader(path: string, options?: ReadOptions): Promise<Readable> {
    return (await this.loaded).reader(path, options);
  }

  async writer(path: string): Promise<FileWriter> {
    return (await this.loaded).writer(path);
  }

  async move(source: string, destination: string): Promise<void> {
    return (await this.loaded).move(source, destination);
  }

  async concat(sources: readonly FileRange[], destination: string): Promise<void> {
    return (await this.loaded).concat(sources, destination);
  }

  async delete(path: string): Promise<void> {
    return (await this.loaded).delete(path);
  }

  async list(path: string): Promise<string[]> {
    return (await this.loaded).list(path);
  }

  async *walk(prefix: string): AsyncIterable<FileEntry> {
    yield* (await this.loaded).walk(prefix);
  }

  async redirectURL(path: string, options: { expiresInSeconds: number }): Promise<string | undefined> {
    return (await this.loaded).redirectURL?.(path, options);
  }

  async probe(): Promise<void> {
    return (await this.loaded).probe?.();
  }
}
