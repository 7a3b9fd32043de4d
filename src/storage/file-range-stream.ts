import type { FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import type { ChunkSink, SendableStream } from './driver.js';

/**
 * A byte range of an open file, readable as an ordinary stream (a fresh buffer per chunk, since a
 * consumer may keep what it is given) or sent with `sendTo` through two buffers reused for the
 * whole file: no allocation and no fresh pages per chunk, and the next read overlaps the current
 * write. That halves the CPU a large pull costs.
 */
export class FileRangeStream extends Readable implements SendableStream {
  private position: number;
  /** Bytes still to read; Infinity reads to the end of the file. */
  private remaining: number;
  private sending = false;

  constructor(
    private readonly handle: FileHandle,
    offset: number,
    length: number | undefined,
    private readonly chunkBytes: number,
  ) {
    super({ highWaterMark: chunkBytes });
    this.position = offset;
    this.remaining = length ?? Infinity;
  }

  override _read(): void {
    if (this.remaining === 0) {
      this.push(null);
      return;
    }
    const buffer = Buffer.allocUnsafe(Math.min(this.chunkBytes, this.remaining));
    this.readInto(buffer).then(
      (bytes) => {
        if (bytes === 0) this.push(null);
        else this.push(buffer.subarray(0, bytes));
      },
      (error: Error) => this.destroy(error),
    );
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.handle.close().then(
      () => callback(error),
      (closeError: Error) => callback(error ?? closeError),
    );
  }

  /**
   * Writes the rest of the range into `sink`, reusing a chunk's buffer once the sink's promise for
   * it has resolved. Only before any ordinary reading; the stream is destroyed (and the file
   * closed) when this settles.
   */
  async sendTo(sink: ChunkSink): Promise<void> {
    if (this.sending || this.readableDidRead) throw new Error('the stream is already being read');
    this.sending = true;
    const size = Math.min(this.chunkBytes, this.remaining);
    const buffers = [Buffer.allocUnsafeSlow(size), Buffer.allocUnsafeSlow(size)];
    let pending: Promise<void> = Promise.resolve();
    try {
      for (let turn = 0; this.remaining > 0; turn += 1) {
        // The previous write used the other buffer; this one's last write settled a turn ago.
        const buffer = buffers[turn & 1]!;
        const bytes = await this.readInto(buffer);
        await pending;
        if (bytes === 0) break;
        pending = sink(buffer.subarray(0, bytes));
        // Awaited on the next turn; until then a failure must not count as unhandled.
        pending.catch(() => {});
      }
      await pending;
      this.destroy();
    } catch (error) {
      // A write may still be in flight: the buffers are dropped, never reused.
      this.destroy();
      throw error;
    }
  }

  /** Reads the next bytes of the range into `buffer` and advances; 0 at the end of the file. */
  private async readInto(buffer: Buffer): Promise<number> {
    const length = Math.min(buffer.length, this.remaining);
    const { bytesRead } = await this.handle.read(buffer, 0, length, this.position);
    this.position += bytesRead;
    this.remaining -= bytesRead;
    return bytesRead;
  }
}
