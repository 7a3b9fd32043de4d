import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';

export type HashRequest =
  | { kind: 'open'; id: string; upload: string; offset: number; state: Uint8Array | undefined; resumable: boolean }
  | { kind: 'update'; id: string; slot: number; length: number }
  | { kind: 'finish'; id: string; request: number }
  | { kind: 'keep'; id: string; upload: string; offset: number }
  | { kind: 'digest'; upload: string; offset: number; request: number }
  | { kind: 'drop'; id: string }
  | { kind: 'forget-upload'; upload: string };

export type HashResponse =
  | { kind: 'hashed'; slot: number }
  | { kind: 'finished'; request: number; state: Uint8Array | undefined; hex: string | undefined }
  | { kind: 'digest'; request: number; hex: string | undefined };

/** What a stream yields when its bytes are all in: the sha256 so far, and a state to go on from. */
export interface HashResult {
  /** Hex sha256 of the upload's bytes up to the end of this stream; undefined when not hashed. */
  hex: string | undefined;
  /** A state any process can continue from (resumable streams only). */
  state: Uint8Array | undefined;
}

/** How a stream starts: where in its upload, and whether its state must be saveable. */
export interface StreamStart {
  upload: string;
  /** Bytes of the upload before this stream's first byte. */
  offset: number;
  /** The upload's saved state after `offset` bytes, if any. */
  state?: Uint8Array | undefined;
  /** Whether another process or replica may need to continue the hash: then it is saved (slower). */
  resumable: boolean;
}

/**
 * Bytes reach the thread through a ring of slots in memory both threads share: the main thread
 * copies a batch into a free slot, the thread hashes it in place and hands the slot back. The ring
 * bounds the memory in flight and leaves no buffers behind for the garbage collector. Slots of a
 * batch's size (see blob-store.ts), eight of them, keep the thread fed with 2 MiB in all.
 */
const SLOT_BYTES = 256 * 1024;
const SLOTS = 8;

/**
 * How long the thread stays with nothing to hash before it stops. A running thread holds its own
 * V8 isolate and malloc arena (about 10 MiB); a process that took an upload an hour ago should
 * not, and starting one again costs a few milliseconds at the next upload. The running hashes it
 * kept go with it: an upload continued after that is hashed from the disk at its commit.
 */
const IDLE_STOP_MS = 10_000;
/** Uploads whose running hash the thread keeps between requests (a few hundred bytes each). */
const MAX_RUNNING = 1024;

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
 * Running sha256 hashes of byte streams (the chunks of uploads), computed on a worker thread so
 * that hashing runs beside receiving on the main thread and writing in the thread pool, instead
 * of after them. A stream is one request's bytes. The thread keeps each upload's running hash
 * between its requests, so an upload continued in this process goes on where it stopped; where
 * another process or replica may continue it, streams are resumable instead: they end with a
 * saved state that metadata keeps (see hash-state.ts), at a quarter of the speed.
 */
export class HashThread {
  private worker: Worker | undefined;
  /** Streams opened and not yet kept or dropped: the thread holds their hashes. */
  private readonly streams = new Set<string>();
  private idleTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: { idleStopMs?: number } = {}) {}

  /** Whether a thread is running now (it starts with the first bytes, and stops when idle). */
  get running(): boolean {
    return this.worker !== undefined;
  }
  private readonly ring = new SharedArrayBuffer(SLOT_BYTES * SLOTS);
  private freeSlots = Array.from({ length: SLOTS }, (_, i) => i);
  private waiters: Array<() => void> = [];
  private readonly requests = new Map<number, { resolve: (reply: HashResponse) => void; reject: (error: Error) => void }>();
  private nextRequest = 1;

  /**
   * Starts stream `id` (one request's bytes) at `start.offset` of its upload: from the running hash
   * this process kept for the upload at that offset, else from a saved state, else from nothing at
   * offset 0; otherwise the stream hashes nothing and its result has no digest.
   */
  open(id: string, start: StreamStart): void {
    this.streams.add(id);
    this.post({ kind: 'open', id, upload: start.upload, offset: start.offset, state: start.state, resumable: start.resumable });
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

  /**
   * The hash after everything fed for stream `id`, which stays open for `keep`. Hashes nothing
   * (no digest, no state) when the thread no longer knows the stream (it was restarted in
   * between); rejects when the thread dies meanwhile.
   */
  async finish(id: string): Promise<HashResult> {
    const reply = await this.ask((request) => ({ kind: 'finish', id, request }));
    return reply.kind === 'finished' ? { hex: reply.hex, state: reply.state } : { hex: undefined, state: undefined };
  }

  /**
   * Keeps finished stream `id` as its upload's running hash after `offset` bytes, for the upload's
   * next request in this process. Only for bytes the metadata has recorded as the upload's.
   */
  keep(id: string, upload: string, offset: number): void {
    this.streams.delete(id);
    if (this.worker) this.post({ kind: 'keep', id, upload, offset });
    this.settled();
  }

  /** The hex sha256 of upload's first `offset` bytes, if this process kept its running hash. */
  async digestAt(upload: string, offset: number): Promise<string | undefined> {
    if (!this.worker) return undefined;
    const reply = await this.ask((request) => ({ kind: 'digest', upload, offset, request }));
    return reply.kind === 'digest' ? reply.hex : undefined;
  }

  /** Forgets an upload's running hash (it finished or was cancelled). */
  forgetUpload(upload: string): void {
    if (this.worker) this.post({ kind: 'forget-upload', upload });
  }

  private ask(message: (request: number) => HashRequest): Promise<HashResponse> {
    const request = this.nextRequest++;
    return new Promise<HashResponse>((resolve, reject) => {
      this.requests.set(request, { resolve, reject });
      this.post(message(request));
    });
  }

  /** Forgets a stream without saving it. */
  drop(id: string): void {
    this.streams.delete(id);
    if (this.worker) this.post({ kind: 'drop', id });
    this.settled();
  }

  async close(): Promise<void> {
    clearTimeout(this.idleTimer);
    const worker = this.worker;
    this.worker = undefined;
    if (worker) await worker.terminate();
  }

  private post(message: HashRequest, transfer: ArrayBuffer[] = []): void {
    const worker = this.thread();
    worker.postMessage(message, transfer);
    // Awaited replies keep the process alive; an idle thread does not (see settled()).
    if (message.kind === 'update' || message.kind === 'finish' || message.kind === 'digest') worker.ref();
  }

  /**
   * Called after each reply: with nothing outstanding, the thread stops holding the process; with
   * no stream open either, it stops after IDLE_STOP_MS unless used again.
   */
  private settled(): void {
    if (this.freeSlots.length !== SLOTS || this.requests.size > 0) return;
    this.worker?.unref();
    if (this.streams.size > 0 || !this.worker) return;
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => this.stopIdle(), this.options.idleStopMs ?? IDLE_STOP_MS);
    this.idleTimer.unref();
  }

  private stopIdle(): void {
    const worker = this.worker;
    if (!worker || this.streams.size > 0 || this.freeSlots.length !== SLOTS || this.requests.size > 0) return;
    this.worker = undefined;
    void worker.terminate();
  }

  private thread(): Worker {
    clearTimeout(this.idleTimer);
    if (this.worker) return this.worker;
    const worker = startThread({ ring: this.ring, slotBytes: SLOT_BYTES, maxRunning: MAX_RUNNING });
    worker.on('message', (message: HashResponse) => {
      if (message.kind === 'hashed') {
        this.freeSlots.push(message.slot);
        this.waiters.shift()?.();
      } else {
        const pending = this.requests.get(message.request);
        this.requests.delete(message.request);
        pending?.resolve(message);
      }
      this.settled();
    });
    worker.on('error', (error) => this.fail(worker, error));
    worker.on('exit', (code) => this.fail(worker, new Error(`hash thread exited with code ${code}`)));
    // An idle hash thread must not keep the process alive (unref after the listeners: adding a
    // 'message' listener refs the worker again).
    worker.unref();
    this.worker = worker;
    return worker;
  }

  /** The thread died: every waiting caller fails, and the next use starts a new thread. */
  private fail(worker: Worker, error: Error): void {
    // A thread stopped on purpose (idle, closed), or one already replaced: nothing was waiting on it.
    if (this.worker !== worker) return;
    this.worker = undefined;
    // The dead thread will hand nothing back: every slot is free again.
    this.freeSlots = Array.from({ length: SLOTS }, (_, i) => i);
    for (const resolve of this.waiters.splice(0)) resolve();
    for (const pending of this.requests.values()) pending.reject(error);
    this.requests.clear();
  }
}
