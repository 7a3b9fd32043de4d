import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { createApp } from '../src/http/app.js';
import { SqliteMetadataStore } from '../src/metadata/sqlite/sqlite-metadata-store.js';
import { Registry } from '../src/registry/registry.js';
import type { SignaturePolicy } from '../src/registry/signature-policy.js';
import { KeySigner, KeyVerifier, buildSignatureManifest, createPayload, signatureTag } from '../src/signing/index.js';
import { BlobStore } from '../src/storage/blob-store.js';
import { FilesystemDriver } from '../src/storage/filesystem-driver.js';
import { SessionKeys } from '../src/ui/session.js';
import { createUi } from '../src/ui/ui.js';
import { errorCode, raw } from './support/http.js';
import { OCI_MANIFEST, blob, type Blob } from './support/oci-fixtures.js';
import { pushBlob, pushImage, putManifest } from './support/push.js';

/**
 * The UI's tag page shows an image's signatures (both stored forms) and its SBOM and
 * vulnerability report referrers; /v1/search?signed=true keeps repositories with a signed tag.
 * One registry in this process, the API and the UI each on a loopback port.
 */
describe('web UI signatures and scan referrers, and signed search, in process', () => {
  let root: string;
  let registry: Registry;
  let api: string;
  let ui: string;
  const servers: Server[] = [];
  const trusted = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const stranger = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const trustedSigner = new KeySigner(trusted.privateKey);

  async function listen(handler: Parameters<typeof createServer>[1]): Promise<string> {
    const server = createServer(handler);
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'wharf-ui-sig-'));
    registry = new Registry(new SqliteMetadataStore({ path: join(root, 'wharf.db') }), new BlobStore(new FilesystemDriver(root)), { deleteEnabled: true });
    const policies: SignaturePolicy[] = [{ repository: 'signed/**', mode: 'warn', verifiers: [new KeyVerifier(trusted.publicKey)] }];
    api = await listen(createApp(registry, { log: pino({ level: 'silent' }), accessLog: false }));
    ui = await listen(createUi(registry, { basePath: '/', deleteEnabled: true, sessionKeys: SessionKeys.ephemeral(), log: pino({ level: 'silent' }), signaturePolicies: policies }));
  });

  after(async () => {
    await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
    await registry.close();
    rmSync(root, { recursive: true, force: true });
  });

  /** Pushes a cosign signature of `image`: tagged `sha256-….sig`, or as a referrer. */
  async function sign(repository: string, image: Blob, signer: KeySigner, annotations: Record<string, string>, form: 'tag' | 'referrer'): Promise<string> {
    const payload = blob(createPayload(`127.0.0.1/${repository}`, image.digest, annotations));
    const { signature } = await signer.sign(payload.data);
    const built = buildSignatureManifest(
      [{ payloadDigest: payload.digest, payloadSize: payload.data.length, signature, annotations: {} }],
      form === 'referrer' ? { subject: { mediaType: OCI_MANIFEST, digest: image.digest, size: image.data.length } } : {},
    );
    await pushBlob(api, repository, payload);
    await pushBlob(api, repository, blob(built.config.bytes));
    const manifest = blob(built.bytes);
    const res = await putManifest(api, repository, form === 'tag' ? signatureTag(image.digest) : manifest.digest, manifest, OCI_MANIFEST);
    assert.equal(res.status, 201, res.body.toString());
    return manifest.digest;
  }

  /** Pushes a one-layer artifact of `artifactType` whose subject is `image` (the scanner's shape). */
  async function attach(repository: string, image: Blob, artifactType: string, document: unknown): Promise<string> {
    const content = blob(JSON.stringify(document));
    const empty = blob('{}');
    await pushBlob(api, repository, content);
    await pushBlob(api, repository, empty);
    const manifest = blob(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        artifactType,
        config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: empty.digest, size: 2 },
        layers: [{ mediaType: artifactType, digest: content.digest, size: content.data.length }],
        subject: { mediaType: OCI_MANIFEST, digest: image.digest, size: image.data.length },
        annotations: { 'org.opencontainers.image.created': '2026-12-01T10:00:00Z' },
      }),
    );
    assert.equal((await putManifest(api, repository, manifest.digest, manifest, OCI_MANIFEST)).status, 201);
    return manifest.digest;
  }

  it('the tag page lists both signature forms with key id, time and escaped annotations, and the SBOM and report', async () => {
    const { manifest: image } = await pushImage(api, 'signed/app', 'v1', {});
    await sign('signed/app', image, trustedSigner, { team: '<b>core</b>', timestamp: '1700000000' }, 'tag');
    const foreign = await sign('signed/app', image, new KeySigner(stranger.privateKey), { build: 'ci-42' }, 'referrer');
    const sbom = await attach('signed/app', image, 'application/vnd.cyclonedx+json', { bomFormat: 'CycloneDX', components: [{ name: 'a' }, { name: 'b' }, { name: 'c' }] });
    const report = await attach('signed/app', image, 'application/vnd.wharf.vulnerability-report+json', {
      schemaVersion: 1,
      summary: { total: 3, fixable: 1, bySeverity: { UNKNOWN: 0, LOW: 1, MEDIUM: 0, HIGH: 1, CRITICAL: 1 } },
    });

    const page = (await raw(ui, 'GET', '/r/signed/app/-/m/v1')).body.toString();
    const signatures = page.slice(page.indexOf('id="signatures"'), page.indexOf('id="referrers"'));
    assert.match(signatures, new RegExp(`key <code class="key-id">${trustedSigner.identity}</code>`));
    assert.match(signatures, /not verified by a configured key/);
    assert.ok(signatures.includes('<code>team</code>=&lt;b&gt;core&lt;/b&gt;'), 'annotations are shown escaped');
    assert.ok(!signatures.includes('<b>core'), 'never raw');
    assert.ok(signatures.includes('<code>build</code>=ci-42'));
    assert.ok(signatures.includes(`datetime="${new Date(1_700_000_000_000).toISOString()}"`), 'the payload timestamp');
    assert.match(signatures, /\(pushed\)/, 'the referrer has no timestamp: its push time');
    assert.ok(signatures.includes(`<code>tag ${signatureTag(image.digest)}</code>`));
    assert.ok(signatures.includes(`href="/r/signed/app/-/m/${foreign}"`));

    assert.match(page, new RegExp(`SBOM \\(CycloneDX\\)</strong> <a class="mono" href="/r/signed/app/-/m/${sbom}">[^<]+</a>: 3 components`));
    assert.match(page, new RegExp(`Vulnerability report</strong> <a class="mono" href="/r/signed/app/-/m/${report}">[^<]+</a>: 3 vulnerabilities \\(critical 1, high 1, medium 0, low 1, unknown 0\\)`));

    // By digest the same; an image with nothing says so.
    assert.match((await raw(ui, 'GET', `/r/signed/app/-/m/${image.digest}`)).body.toString(), /class="key-id"/);
    await pushImage(api, 'plain/app', 'v1', {});
    const plain = (await raw(ui, 'GET', '/r/plain/app/-/m/v1')).body.toString();
    assert.match(plain, /No cosign signatures\./);
    assert.ok(!plain.includes('SBOM (CycloneDX)'));
  });

  it('/v1/search?signed=true keeps only repositories with a signed tagged image', async () => {
    await pushImage(api, 'search/unsigned', 'v1', {});
    const { manifest: image } = await pushImage(api, 'search/signed', 'v1', {});
    await sign('search/signed', image, trustedSigner, {}, 'referrer');
    const names = async (query: string) => ((await raw(api, 'GET', `/v1/search?${query}`)).json() as { num_results: number; results: Array<{ name: string }> });
    assert.deepEqual((await names('q=search')).results.map((r) => r.name).sort(), ['search/signed', 'search/unsigned']);
    const signed = await names('q=search&signed=true');
    assert.deepEqual(signed.results.map((r) => r.name), ['search/signed']);
    assert.equal(signed.num_results, 1);
    assert.deepEqual((await names('q=search&signed=false')).results.length, 2);
    assert.equal(errorCode(await raw(api, 'GET', '/v1/search?q=search&signed=yes')), 'PARAMETER_INVALID');
  });
});
