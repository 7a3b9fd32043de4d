import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { connectRegistry, type RegistryClient } from '../../src/client/index.js';
import { digestOf } from '../../src/oci/digest.js';
import { cliUser, type CliUser } from './cli.js';
import type { RegistryUnderTest, StartRegistry } from './registries-under-test.js';
import { writeTestLayout, type TestLayout } from './test-images.js';

/**
 * `wharf generate-key-pair`, `sign` and `verify` end to end against a registry (Wharf or Distribution):
 * single- and multi-arch images, appended signatures, plain PEM keys, and every reason a
 * verification fails (signatures rearranged by hand through the client library).
 */
const PASSWORD = { COSIGN_PASSWORD: 'correct horse' };

/** The signing scenarios against the registry `start` starts; `referrers` when it has the OCI 1.1 referrers API. */
export function signingScenarios(name: string, start: StartRegistry, referrers: boolean): void {
  describe(`signing against ${name}`, () => {
    let registry: RegistryUnderTest;
    let user: CliUser;
    let work: string;
    let images: TestLayout;
    let client: RegistryClient;
    let R: string;

    before(async () => {
      work = mkdtempSync(join(tmpdir(), 'wharf-signing-'));
      registry = await start('plain');
      R = registry.host;
      user = cliUser();
      client = connectRegistry(R, { plainHttp: true });
      images = await writeTestLayout(join(work, 'layout'));
      await user.ok(['copy', `oci:${images.dir}:small`, `${R}/prod/app:v1`]);
      await user.ok(['copy', `oci:${images.dir}:base`, `${R}/prod/app:v2`]);
      await user.ok(['copy', '--all-platforms', `oci:${images.dir}:multi`, `${R}/prod/multi:v1`]);
      await user.ok(['generate-key-pair'], { cwd: work, env: PASSWORD });
      await user.ok(['generate-key-pair', '--output-key-prefix', join(work, 'second')], { env: { COSIGN_PASSWORD: '' } });
    });

    after(async () => {
      client?.close();
      await registry?.stop();
      user?.dispose();
      rmSync(work, { recursive: true, force: true });
    });

    test('generate-key-pair writes cosign.key (encrypted, owner-only) and cosign.pub here, and will not overwrite them', async () => {
      const key = readFileSync(join(work, 'cosign.key'), 'utf8');
      assert.match(key, /^-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n/);
      assert.match(readFileSync(join(work, 'cosign.pub'), 'utf8'), /^-----BEGIN PUBLIC KEY-----\n/);
      const again = await user.run(['generate-key-pair'], { cwd: work, env: PASSWORD });
      assert.equal(again.code, 1);
      assert.match(again.stderr, /cosign\.key exists/);
    });

    test('an encrypted key without COSIGN_PASSWORD and no terminal is refused with what to do', async () => {
      const result = await user.run(['sign', '--key', join(work, 'cosign.key'), `${R}/prod/app:v1`]);
      assert.equal(result.code, 1);
      assert.match(result.stderr, /set COSIGN_PASSWORD/);
      const wrong = await user.run(['sign', '--key', join(work, 'cosign.key'), `${R}/prod/app:v1`], { env: { COSIGN_PASSWORD: 'wrong' } });
      assert.equal(wrong.code, 1);
      assert.match(wrong.stderr, /wrong password/);
    });

    test('verify fails with "no signatures" before anything is signed', async () => {
      const result = await user.run(['verify', '--key', join(work, 'cosign.pub'), `${R}/prod/app:v1`]);
      assert.equal(result.code, 1);
      assert.match(result.stderr, /no signatures found/);
    });

    test('sign then verify; the signature is a .sig manifest as cosign lays it out; a second signature is appended', async () => {
      await user.ok(['sign', '--key', join(work, 'cosign.key'), '-a', 'ci=build-7', `${R}/prod/app:v1`], { env: PASSWORD });
      const head = (await client.headManifest('prod/app', 'v1'))!;
      const sig = await client.getManifest('prod/app', `${head.digest.replace(':', '-')}.sig`);
      const doc = JSON.parse(sig.bytes.toString());
      assert.equal(doc.layers.length, 1);
      assert.equal(doc.layers[0].mediaType, 'application/vnd.dev.cosign.simplesigning.v1+json');
      assert.ok(doc.layers[0].annotations['dev.cosignproject.cosign/signature']);
      const verified = await user.ok(['verify', '--key', join(work, 'cosign.pub'), '--output', 'json', '--annotations', 'ci=build-7', `${R}/prod/app:v1`]);
      const payloads = JSON.parse(verified.stdout);
      assert.equal(payloads.length, 1);
      assert.equal(payloads[0].critical.image['docker-manifest-digest'], head.digest);
      assert.equal(payloads[0].critical.identity['docker-reference'], `${R}/prod/app`);
      assert.equal(payloads[0].critical.type, 'cosign container image signature');
      assert.deepEqual(payloads[0].optional, { ci: 'build-7' });

      const missing = await user.run(['verify', '--key', join(work, 'cosign.pub'), '-a', 'ci=other', `${R}/prod/app:v1`]);
      assert.equal(missing.code, 1);
      assert.match(missing.stderr, /lacks the annotation ci=other/);

      await user.ok(['sign', '--key', join(work, 'second.key'), `${R}/prod/app@${head.digest}`], { env: { COSIGN_PASSWORD: '' } });
      const both = JSON.parse((await client.getManifest('prod/app', `${head.digest.replace(':', '-')}.sig`)).bytes.toString());
      assert.equal(both.layers.length, 2);
      await user.ok(['verify', '--key', join(work, 'second.pub'), `${R}/prod/app:v1`]);
      await user.ok(['verify', '--key', join(work, 'cosign.pub'), `${R}/prod/app:v1`]);
    });

    test('a wrong key is refused with its reason', async () => {
      const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
      writeFileSync(join(work, 'stranger.pub'), publicKey.export({ format: 'pem', type: 'spki' }));
      const result = await user.run(['verify', '--key', join(work, 'stranger.pub'), `${R}/prod/app:v1`]);
      assert.equal(result.code, 1);
      assert.match(result.stderr, /no valid signature[\s\S]*does not verify with key/);
    });

    test('plain PEM keys (PKCS#8 and SPKI) sign and verify', async () => {
      const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
      writeFileSync(join(work, 'plain.key'), privateKey.export({ format: 'pem', type: 'pkcs8' }));
      writeFileSync(join(work, 'plain.pub'), publicKey.export({ format: 'pem', type: 'spki' }));
      await user.ok(['sign', '--key', join(work, 'plain.key'), `${R}/prod/app:v2`]);
      const text = await user.ok(['verify', '--key', join(work, 'plain.pub'), `${R}/prod/app:v2`]);
      assert.match(text.stdout, /signed by key [0-9a-f]{16}/);
    });

    test('a multi-arch image: the index is signed, and each platform with --recursive', async () => {
      await user.ok(['sign', '--recursive', '--key', join(work, 'cosign.key'), `${R}/prod/multi:v1`], { env: PASSWORD });
      await user.ok(['verify', '--key', join(work, 'cosign.pub'), `${R}/prod/multi:v1`]);
      for (const child of images.multi.children!) await user.ok(['verify', '--key', join(work, 'cosign.pub'), `${R}/prod/multi@${child.digest}`]);
    });

    test('a signature moved to another digest or another repository, or a tampered payload, is refused with its reason', async () => {
      const signed = (await client.headManifest('prod/app', 'v1'))!.digest;
      const other = (await client.headManifest('prod/app', 'v2'))!.digest;
      const sigTag = (d: string) => `${d.replace(':', '-')}.sig`;
      const original = await client.getManifest('prod/app', sigTag(signed));

      // Another digest: v1's signatures put where v2's belong.
      await client.putManifest('prod/app', sigTag(other), original.bytes, original.mediaType);
      let result = await user.run(['verify', '--key', join(work, 'cosign.pub'), `${R}/prod/app:v2`]);
      assert.equal(result.code, 1);
      assert.match(result.stderr, /signed payload is for another digest/);

      // Another repository: the same image and its signatures copied to prod/copy.
      await user.ok(['copy', `${R}/prod/app:v1`, `${R}/prod/copy:v1`]);
      const doc = JSON.parse(original.bytes.toString());
      for (const blob of [doc.config, ...doc.layers]) {
        const opened = await client.openBlob('prod/app', blob.digest);
        const chunks: Buffer[] = [];
        for await (const c of opened.stream) chunks.push(c as Buffer);
        await client.uploadBlob('prod/copy', blob, () => Readable.from([Buffer.concat(chunks)]));
      }
      await client.putManifest('prod/copy', sigTag(signed), original.bytes, original.mediaType);
      result = await user.run(['verify', '--key', join(work, 'cosign.pub'), `${R}/prod/copy:v1`]);
      assert.equal(result.code, 1);
      assert.match(result.stderr, /signed payload is for another repository/);

      // Tampered: the payload rewritten (claims another annotation), the signature kept.
      const payload = JSON.parse(await readBlob(client, 'prod/app', doc.layers[0].digest));
      payload.optional = { ci: 'forged' };
      const forged = Buffer.from(JSON.stringify(payload));
      const forgedDigest = digestOf(forged);
      await client.uploadBlob('prod/app', { digest: forgedDigest, size: forged.length }, () => Readable.from([forged]));
      const tampered = { ...doc, layers: [{ ...doc.layers[0], digest: forgedDigest, size: forged.length }] };
      const bytes = Buffer.from(JSON.stringify(tampered));
      await client.putManifest('prod/app', sigTag(signed), bytes, original.mediaType);
      result = await user.run(['verify', '--key', join(work, 'cosign.pub'), `${R}/prod/app:v1`]);
      assert.equal(result.code, 1);
      assert.match(result.stderr, /does not verify[\s\S]*tampered/);
      // Put back for the tests that follow.
      await client.putManifest('prod/app', sigTag(signed), original.bytes, original.mediaType);
    });

    test('inspect --key says whether the image is signed and by which key', async () => {
      const result = await user.ok(['inspect', '--remote', '--key', join(work, 'cosign.pub'), `${R}/prod/app:v1`]);
      const [info] = JSON.parse(result.stdout);
      assert.equal(info.Signatures.Signed, true);
      assert.equal(info.Signatures.KeyIds.length, 1);
      const unsigned = JSON.parse((await user.ok(['inspect', '--remote', '--key', join(work, 'cosign.pub'), `${R}/prod/copy:v1`])).stdout);
      assert.equal(unsigned[0].Signatures.Signed, false);
      const history = await user.ok(['history', '--remote', '--key', join(work, 'cosign.pub'), `${R}/prod/app:v1`]);
      assert.match(history.stderr, /signed by key [0-9a-f]{16}/);
    });

    {
      test(`--attach referrers stores an OCI 1.1 referrer with cosign's artifact type${referrers ? '' : ' (in the sha256-HEX fallback index)'}, and verify finds it`, async () => {
        await user.ok(['copy', `oci:${images.dir}:small`, `${R}/prod/ref:v1`]);
        const head = (await client.headManifest('prod/ref', 'v1'))!;
        await user.ok(['sign', '--attach', 'referrers', '--key', join(work, 'cosign.key'), `${R}/prod/ref:v1`], { env: PASSWORD });
        const found = [];
        for await (const d of client.referrers('prod/ref', head.digest)) found.push(d);
        assert.equal(found.length, 1);
        assert.equal(found[0]!.artifactType, 'application/vnd.dev.cosign.artifact.sig.v1+json');
        assert.equal(await client.headManifest('prod/ref', `${head.digest.replace(':', '-')}.sig`), undefined);
        if (!referrers) assert.ok(await client.headManifest('prod/ref', head.digest.replace(':', '-')), 'no fallback referrers index');
        const verified = await user.ok(['verify', '--key', join(work, 'cosign.pub'), `${R}/prod/ref:v1`]);
        assert.match(verified.stdout, /referrer sha256:/);
      });
    }
  });
}

async function readBlob(client: RegistryClient, repository: string, digest: string): Promise<string> {
  const opened = await client.openBlob(repository, digest);
  const chunks: Buffer[] = [];
  for await (const c of opened.stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString();
}
