import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';

export type HashRequest =
  | { kind: 'update'; id: string; slot: number; length: number }
  | { kind: 'digest'; id: string; request: number }
  | { kind: 'drop'; id: string };

export type HashResponse = { kind: 'hashed'; slot: number } | { kind: 'digest'; request: number; hex: string };

/**
 * Bytes reach the thread through a ring of slots in memory both threads share: the main thread
 * copies a batch into a free slot, the thread hashes it in place and hands the slot back. The ring
 * bounds the memory in flight and leaves no buffers behind for the garbage collector.
 */
const SLOT_BYTES = 1024 * 1024;
const SLOTS = 4;

/**
 * Starts the thread on hash-thread-main beside this file. Run from TypeScript source (the tests),
 * the thread has no loader of its own: it registers tsx first, which only a development install has.
 */
function startThread(workerData: unknown): Worker {
  if (!import.meta.url.endsWith('.ts')) return new Worker(fileURLToPath(new URL('./hash-thread-main.js', import.meta.url)), { workerData });
  const main = new URL('./hash-thread-main.ts', import.meta.url).href;
  const tsx = import.meta.resolve('tsx/esm/api');
  const code = `const { register } = await import(${JSON.stringify(tsx)}); register(); await import(${JSON.stringify(main)});`;
  return new Worker(code, { eval: true, workerData });
}

/**
 * sha256 of upload sessions, computed on a worker thread so that hashing (the costliest step of a
 * push, about 0.75 s per GiB) runs beside receiving on the main thread and writing in the thread
 * pool, instead of after them. The thread keeps one running hash per session id; the caller
 * decides which sessions it tracks, as with an in-process hash.
 */
export class HashThread {
  private worker: Worker | undefined;
  private readonly ring = new SharedArrayBuffer(SLOT_BYTES * SLOTS);
  private freeSlots = Array.from({ length: SLOTS }, (_, i) => i);
  private waiters: Array<() => void> = [];
  private readonly digests = new Map<number, { resolve: (hex: string) => void; reject: (error: Error) => void }>();
  private nextRequest = 1;
  private restarts = 0;

  /** Changes whenever the thread had to be restarted, losing every running hash. */
  get generation(): number {
    return this.restarts;
  }

  /**
   * Feeds a session's next bytes: copies them into ring slots (the caller keeps its buffers, which
   * are also being written to disk) and resolves once they are all handed over, which waits while
   * the thread is a whole ring behind.
   */
  async update(id: string, chunks: readonly Buffer[]): Promise<void> {
    const ring = new Uint8Array(this.ring);
    let slot: number | undefined;
    let filled = 0;
    for (const chunk of chunks) {
      let offset = 0;
      while (offset < chunk.length) {
        if (slot === undefined) {
          slot = await this.takeSlot();
          filled = 0;
        }
        const length = Math.min(chunk.length - offset, SLOT_BYTES - filled);
        ring.set(chunk.subarray(offset, offset + length), slot * SLOT_BYTES + filled);
        offset += length;
        filled += length;
        if (filled === SLOT_BYTES) {
          this.post({ kind: 'update', id, slot, length: filled });
          slot = undefined;
        }
      }
    }
    if (slot !== undefined) this.post({ kind: 'update', id, slot, length: filled });
  }

  private async takeSlot(): Promise<number> {
    for (;;) {
      // Starting the thread first: a slot handed out now must be hashed by this thread.
      this.thread();
      const slot = this.freeSlots.pop();
      if (slot !== undefined) return slot;
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  /** The hex sha256 of everything fed for `id` (of nothing, if nothing was); forgets the session. */
  digest(id: string): Promise<string> {
    const request = this.nextRequest++;
    return new Promise<string>((resolve, reject) => {
      this.digests.set(request, { resolve, reject });
      this.post({ kind: 'digest', id, request });
    });
  }

  /** Forgets a session without a digest. */
  drop(id: string): void {
    if (this.worker) this.post({ kind: 'drop', id });
  }

  async close(): Promise<void> {
    const worker = this.worker;
    this.worker = undefined;
    if (worker) await worker.terminate();
  }

  private post(message: HashRequest, transfer: ArrayBuffer[] = []): void {
    const worker = this.thread();
    worker.postMessage(message, transfer);
    // Awaited replies keep the process alive; an idle thread does not (see settled()).
    if (message.kind !== 'drop') worker.ref();
  }

  /** Called after each reply: with nothing outstanding, the thread stops holding the process. */
  private settled(): void {
    if (this.freeSlots.length === SLOTS && this.digests.size === 0) this.worker?.unref();
  }

  private thread(): Worker {
    if (this.worker) return this.worker;
    const worker = startThread({ ring: this.ring, slotBytes: SLOT_BYTES });
    worker.on('message', (message: HashResponse) => {
      if (message.kind === 'hashed') {
        this.freeSlots.push(message.slot);
        this.waiters.shift()?.();
      } else {
        const pending = this.digests.get(message.request);
        this.digests.delete(message.request);
        pending?.resolve(message.hex);
      }
      this.settled();
    });
    worker.on('error', (error) => this.fail(error));
    worker.on('exit', (code) => this.fail(new Error(`hash thread exited with code ${code}`)));
    // An idle hash thread must not keep the process alive (unref after the listeners: adding a
    // 'message' listener refs the worker again).
    worker.unref();
    this.worker = worker;
    return worker;
  }

  /** The thread died: every waiting caller fails, and the next use starts a new thread. */
  private fail(error: Error): void {
    if (this.worker === undefined) return;
    this.worker = undefined;
    this.restarts += 1;
    // The dead thread will hand nothing back: every slot is free again.
    this.freeSlots = Array.from({ length: SLOTS }, (_, i) => i);
    for (const resolve of this.waiters.splice(0)) resolve();
    for (const pending of this.digests.values()) pending.reject(error);
    this.digests.clear();
  }
}
