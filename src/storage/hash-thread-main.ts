/**
 * The worker thread behind HashThread: keeps one running sha256 per upload session and hashes the
 * slots of the shared ring that the main thread fills, in the order it posts them, handing each
 * slot back when done.
 */
import { createHash, type Hash } from 'node:crypto';
import { parentPort, workerData } from 'node:worker_threads';
import type { HashRequest, HashResponse } from './hash-thread.js';

const ring = new Uint8Array(workerData.ring as SharedArrayBuffer);
const slotBytes = workerData.slotBytes as number;
const hashes = new Map<string, Hash>();
const port = parentPort!;

port.on('message', (message: HashRequest) => {
  switch (message.kind) {
    case 'update': {
      let hash = hashes.get(message.id);
      if (!hash) {
        hash = createHash('sha256');
        hashes.set(message.id, hash);
      }
      const start = message.slot * slotBytes;
      hash.update(ring.subarray(start, start + message.length));
      port.postMessage({ kind: 'hashed', slot: message.slot } satisfies HashResponse);
      break;
    }
    case 'digest': {
      const hash = hashes.get(message.id) ?? createHash('sha256');
      hashes.delete(message.id);
      port.postMessage({ kind: 'digest', request: message.request, hex: hash.digest('hex') } satisfies HashResponse);
      break;
    }
    case 'drop':
      hashes.delete(message.id);
      break;
  }
});
