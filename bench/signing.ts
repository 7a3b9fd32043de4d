/**
 * The `signing` workload group: what cosign-format signing costs Wharf.
 *
 * - The local work of signing and verifying one image (payload, ECDSA P-256 signature, signature
 *   manifest; then parsing it and checking payload, signature and claims): everything but the
 *   registry round trips, which depend on the network. Goal: under 100 ms.
 * - The same through the client against the bench's Wharf, round trips included (for scale).
 * - Opening a password-encrypted cosign.key (scrypt N=65536), paid once per `wharf sign`.
 * - What an enforced `security.signatures` policy adds to a manifest GET once its verdict is
 *   cached: the p50 latency of one keep-alive connection against a Wharf with the policy, minus
 *   that of the same Wharf without it, in alternating pairs. Goal: under 1 ms.
 */
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connectRegistry, signImage, verifyImage } from '../src/client/index.js';
import {
  KeySigner,
  KeyVerifier,
  buildSignatureManifest,
  createPayload,
  generateKeyPair,
  readPrivateKey,
  signatureLayers,
  verifySignatures,
} from '../src/signing/index.js';
import { digestOf } from '../src/oci/digest.js';
import type { FigureSpec } from './figures.js';
import type { BenchOptions } from './options.js';
import { pushSmallImage, OCI_MANIFEST } from './registry-ops.js';
import { startWharf, type ServerProcess } from './servers.js';
import type { BenchContext } from './workloads.js';
import { runWrk } from './wrk.js';

export function signingFigureSpecs(o: BenchOptions) {
  const spec = (id: string, label: string, unit: string, better: 'higher' | 'lower', targets?: FigureSpec['targets']): FigureSpec =>
    targets ? { id, label, unit, better, targets } : { id, label, unit, better };
  return {
    local: spec('signing.local', 'sign + verify one image, local work only (no round trips), median of 200', 'ms', 'lower', [{ kind: 'at-most', value: 100 }]),
    roundTrips: spec('signing.client', 'wharf sign + verify through the client against Wharf (round trips included)', 'ms', 'lower'),
    keyOpen: spec('signing.key-open', 'opening a password-encrypted cosign.key (scrypt N=65536)', 'ms', 'lower'),
    enforcedP50: spec('signing.enforced.p50', `manifest GET p50, 1 conn, enforced policy, verdict cached (${o.loadSeconds} s runs)`, 'ms', 'lower'),
    plainP50: spec('signing.plain.p50', 'manifest GET p50, 1 conn, no policy', 'ms', 'lower'),
    overhead: spec('signing.enforced.overhead', 'enforced pull p50 overhead once cached (paired runs)', 'ms', 'lower', [{ kind: 'at-most', value: 1 }]),
  };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

export async function signingWorkloads(ctx: BenchContext, root: string): Promise<void> {
  const { options: o, figures } = ctx;
  const f = signingFigureSpecs(o);
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const signer = new KeySigner(privateKey);
  const verifier = new KeyVerifier(publicKey);
  const digest = digestOf(ctx.image.manifest);

  for (let rep = 0; rep < o.repetitions; rep += 1) {
    ctx.log(`signing: local work, repetition ${rep + 1}/${o.repetitions}`);
    const times: number[] = [];
    for (let i = 0; i < 200; i += 1) {
      const start = performance.now();
      const payload = createPayload('registry.example/bench/small', digest, { ci: String(i) });
      const { signature, annotations } = await signer.sign(payload);
      const built = buildSignatureManifest([{ payloadDigest: digestOf(payload), payloadSize: payload.length, signature, annotations }]);
      const [layer] = signatureLayers(built.bytes);
      const result = verifySignatures([{ layer: layer!, payload, source: 'bench' }], [verifier], { digest, repository: 'bench/small' });
      if (result.verified.length !== 1) throw new Error(`bench signature did not verify: ${result.rejected.join('; ')}`);
      times.push(performance.now() - start);
    }
    figures.add(f.local, 'wharf', median(times));
  }

  const pair = await generateKeyPair('bench');
  for (let rep = 0; rep < o.repetitions; rep += 1) {
    const start = performance.now();
    await readPrivateKey(pair.privateKeyPem, async () => 'bench');
    figures.add(f.keyOpen, 'wharf', performance.now() - start);
  }

  const head = { digest, mediaType: OCI_MANIFEST, size: ctx.image.manifest.length };
  const wharfClient = connectRegistry(ctx.servers.wharf.target.hostPort, { plainHttp: true });
  try {
    for (let rep = 0; rep < o.repetitions; rep += 1) {
      const start = performance.now();
      await signImage(wharfClient, ctx.servers.wharf.target.hostPort, 'bench/small', head, { signer });
      const result = await verifyImage(wharfClient, 'bench/small', digest, [verifier]);
      if (result.verified.length === 0) throw new Error('bench signature did not verify against Wharf');
      figures.add(f.roundTrips, 'wharf', performance.now() - start);
    }
  } finally {
    wharfClient.close();
  }

  // Two servers alike but for the policy; the enforced one serves a signed image.
  const keyFile = join(ctx.scratch, 'signing-bench.pub');
  writeFileSync(keyFile, publicKey.export({ format: 'pem', type: 'spki' }));
  const configFile = join(ctx.scratch, 'signing-bench.yml');
  writeFileSync(configFile, `version: 0.1\nsecurity:\n  signatures:\n    - repository: "bench/**"\n      keys: [${keyFile}]\n      mode: enforce\n`);
  const plain: ServerProcess = await startWharf(root, { workers: o.wharfWorkers, nodeArgs: o.wharfNodeArgs });
  const enforced: ServerProcess = await startWharf(root, { workers: o.wharfWorkers, nodeArgs: o.wharfNodeArgs, configFile });
  try {
    for (const server of [plain, enforced]) await pushSmallImage(server.target, 'bench/small', ctx.image, 'latest');
    const client = connectRegistry(enforced.target.hostPort, { plainHttp: true });
    try {
      await signImage(client, enforced.target.hostPort, 'bench/small', head, { signer });
    } finally {
      client.close();
    }
    const load = (server: ServerProcess) =>
      runWrk(ctx.wrk, {
        url: `http://${server.target.hostPort}/v2/bench/small/manifests/latest`,
        method: 'GET',
        connections: 1,
        seconds: o.loadSeconds,
        scratch: ctx.scratch,
        headers: { Accept: OCI_MANIFEST },
      });
    // Warm both (and fill the enforced one's verdict cache in every worker).
    await Promise.all([load(plain), load(enforced)]);
    for (let rep = 0; rep < o.repetitions + 1; rep += 1) {
      ctx.log(`signing: enforced pulls, repetition ${rep + 1}/${o.repetitions + 1}`);
      const p50: Record<'plain' | 'enforced', number> = { plain: 0, enforced: 0 };
      for (const which of rep % 2 === 0 ? (['plain', 'enforced'] as const) : (['enforced', 'plain'] as const)) {
        const result = await load(which === 'plain' ? plain : enforced);
        if (result.requests === 0) throw new Error(`no requests answered by the ${which} server`);
        p50[which] = result.p50Ms;
        figures.add(which === 'plain' ? f.plainP50 : f.enforcedP50, 'wharf', result.p50Ms);
      }
      figures.add(f.overhead, 'wharf', p50.enforced - p50.plain);
    }
    // A policy that refused would show as non-2xx answers; check one by hand.
    const res = await fetch(`http://${enforced.target.hostPort}/v2/bench/small/manifests/latest`, { headers: { accept: OCI_MANIFEST } });
    if (res.status !== 200) throw new Error(`the enforced server refused its signed image: ${res.status} ${await res.text()}`);
  } finally {
    await plain.stop();
    await enforced.stop();
  }
}
