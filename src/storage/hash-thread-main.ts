/**
 * The worker thread behind HashThread. It hashes the slots of the shared ring that the main thread
 * fills, in the order it posts them, handing each slot back when done.
 *
 * Two kinds of stream:
 * - native: Node's sha256 (OpenSSL, several times faster than WebAssembly here), whose state
 *   cannot leave the process; an upload continued in this process goes on from a copy of its
 *   running hash, kept here between requests;
 * - resumable: hash-wasm's sha256, whose state can be saved into metadata and loaded by any
 *   process or replica. All resumable streams share one WebAssembly instance, each keeping its
 *   saved state while another one hashes.
 */
import { createHash, type Hash } from 'node:crypto';
import { createSHA256 } from 'hash-wasm';
import { parentPort, workerData } from 'node:worker_threads';
import type { HashRequest, HashResponse } from './hash-thread.js';

const ring = new Uint8Array(workerData.ring as SharedArrayBuffer);
const slotBytes = workerData.slotBytes as number;
/** Running hashes kept for uploads between requests; the oldest go first beyond this. */
const maxRunning = workerData.maxRunning as number;
const port = parentPort!;
const wasm = await createSHA256();

type Stream = { kind: 'native'; hash: Hash } | { kind: 'resumable'; state: Uint8Array | undefined };
const streams = new Map<string, Stream>();
/** The resumable stream whose state is loaded into the WebAssembly hasher now (its entry is stale). */
let loaded: string | undefined;
/** Per upload: the native hash over its first `offset` recorded bytes. */
const running = new Map<string, { offset: number; hash: Hash }>();

function select(id: string, stream: Stream & { kind: 'resumable' }): void {
  if (loaded === id) return;
  const previous = loaded === undefined ? undefined : streams.get(loaded);
  if (previous?.kind === 'resumable') previous.state = wasm.save();
  if (stream.state) wasm.load(stream.state);
  else wasm.init();
  loaded = id;
}

function forget(id: string): void {
  streams.delete(id);
  if (loaded === id) loaded = undefined;
}

function open(message: HashRequest & { kind: 'open' }): Stream | undefined {
  if (message.resumable) {
    if (message.offset === 0) return { kind: 'resumable', state: undefined };
    return message.state ? { kind: 'resumable', state: message.state } : undefined;
  }
  const kept = running.get(message.upload);
  if (kept && kept.offset === message.offset) return { kind: 'native', hash: kept.hash.copy() };
  if (message.offset === 0) return { kind: 'native', hash: createHash('sha256') };
  // Continued from elsewhere: a saved state still chains (slowly); without one, nothing is hashed.
  return message.state ? { kind: 'resumable', state: message.state } : undefined;
}

function reply(message: HashResponse): void {
  port.postMessage(message);
}

port.on('message', (message: HashRequest) => {
  switch (message.kind) {
    case 'open': {
      forget(message.id);
      const stream = open(message);
      if (stream) streams.set(message.id, stream);
      break;
    }
    case 'update': {
      const stream = streams.get(message.id);
      const start = message.slot * slotBytes;
      const bytes = ring.subarray(start, start + message.length);
      if (stream?.kind === 'native') stream.hash.update(bytes);
      else if (stream) {
        select(message.id, stream);
        wasm.update(bytes);
      }
      reply({ kind: 'hashed', slot: message.slot });
      break;
    }
    case 'finish': {
      const stream = streams.get(message.id);
      let state: Uint8Array | undefined;
      let hex: string | undefined;
      if (stream?.kind === 'native') hex = stream.hash.copy().digest('hex');
      else if (stream) {
        select(message.id, stream);
        state = wasm.save();
        hex = wasm.digest('hex');
        // digest() ended the loaded stream; what it needs later is the state saved above.
        wasm.load(state);
        stream.state = state;
      }
      reply({ kind: 'finished', request: message.request, state, hex });
      break;
    }
    case 'keep': {
      const stream = streams.get(message.id);
      forget(message.id);
      if (stream?.kind !== 'native') {
        running.delete(message.upload);
        break;
      }
      running.delete(message.upload);
      running.set(message.upload, { offset: message.offset, hash: stream.hash });
      if (running.size > maxRunning) running.delete(running.keys().next().value!);
      break;
    }
    case 'digest': {
      const kept = running.get(message.upload);
      reply({ kind: 'digest', request: message.request, hex: kept && kept.offset === message.offset ? kept.hash.copy().digest('hex') : undefined });
      break;
    }
    case 'drop':
      forget(message.id);
      break;
    case 'forget-upload':
      running.delete(message.upload);
      break;
  }
});
