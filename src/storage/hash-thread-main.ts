/**
 * The worker thread behind HashThread: one running sha256 per stream, kept as a saved state while
 * another stream uses the hasher, so any number of streams share one WebAssembly instance. It
 * hashes the slots of the shared ring that the main thread fills, in the order it posts them,
 * handing each slot back when done.
 */
import { createSHA256 } from 'hash-wasm';
import { parentPort, workerData } from 'node:worker_threads';
import type { HashRequest, HashResponse } from './hash-thread.js';

const ring = new Uint8Array(workerData.ring as SharedArrayBuffer);
const slotBytes = workerData.slotBytes as number;
const port = parentPort!;
const hasher = await createSHA256();
/** Every open stream's state; undefined for one that has hashed nothing yet. */
const states = new Map<string, Uint8Array | undefined>();
/** The stream whose state is loaded into the hasher now (its entry in `states` is stale). */
let loaded: string | undefined;

function select(id: string): void {
  if (loaded === id) return;
  if (loaded !== undefined && states.has(loaded)) states.set(loaded, hasher.save());
  const state = states.get(id);
  if (state) hasher.load(state);
  else hasher.init();
  loaded = id;
}

function forget(id: string): void {
  states.delete(id);
  if (loaded === id) loaded = undefined;
}

port.on('message', (message: HashRequest) => {
  switch (message.kind) {
    case 'open':
      forget(message.id);
      states.set(message.id, message.state);
      break;
    case 'update': {
      if (states.has(message.id)) {
        select(message.id);
        const start = message.slot * slotBytes;
        hasher.update(ring.subarray(start, start + message.length));
      }
      port.postMessage({ kind: 'hashed', slot: message.slot } satisfies HashResponse);
      break;
    }
    case 'save': {
      let state: Uint8Array | undefined;
      if (states.has(message.id)) {
        select(message.id);
        state = hasher.save();
        forget(message.id);
      }
      port.postMessage({ kind: 'saved', request: message.request, state } satisfies HashResponse);
      break;
    }
    case 'drop':
      forget(message.id);
      break;
  }
});
