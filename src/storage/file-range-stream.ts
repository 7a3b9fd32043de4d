import type { FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import type { ChunkSink, SendableStream } from './driver.js';

/** Idle send buffers a process keeps for the next pulls (per buffer size): 8 MiB at the 1 MiB chunk. */
const POOLED_BUFFERS = 8;

/**
 * Send buffers shared by every pull of the process. Fresh ones per pull cost as much memory as
 * the bytes they carry until the garbage collector frees them: in a mix of many pulls that was
 * three quarters of all the memory allocated outside V8's heap, tens of MiB of it dead at any
 * moment, and the C allocator kept the high-water mark as resident memory for good.
 */
const pool = new Map<number, Buffer[]>();

function takeBuffer(size: number): Buffer {
  return pool.get(size)?.pop() ?? Buffer.allocUnsafeSlow(size);
}

function giveBack(buffers: Buffer[]): void {
  for (const buffer of buffers) {
    let free = pool.get(buffer.length);
    if (!free) pool.set(buffer.length, (free = []));
    if (free.length < POOLED_BUFFERS) free.push(buffer);
  }
}

/**
 * A byte range of an open file, readable as an ordinary stream (a fresh buffer per chunk, since a
 * consumer may keep what it is given) or sent with `sendTo` through two buffers reused for the
 * whole file and then by the next pull: no allocation and no fresh pages per chunk, and the next
 * read overlaps the current write. That halves the CPU a large pull costs.
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
    // Pooled buffers of the full chunk size, small blobs too (read only as far as the range goes);
    // the second only once a range needs it.
    const buffers: Buffer[] = [];
    let pending: Promise<void> = Promise.resolve();
    try {
      for (let turn = 0; this.remaining > 0; turn += 1) {
        // The previous write used the other buffer; this one's last write settled a turn ago.
        const buffer = (buffers[turn & 1] ??= takeBuffer(this.chunkBytes));
        const bytes = await this.readInto(buffer);
        await pending;
        if (bytes === 0) break;
        pending = sink(buffer.subarray(0, bytes));
        // Awaited on the next turn; until then a failure must not count as unhandled.
        pending.catch(() => {});
      }
      await pending;
      // Every write has settled: the socket holds neither buffer any more.
      giveBack(buffers);
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
