import assert from 'node:assert/strict';
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign as signBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  KeyFormatError,
  KeySigner,
  KeyVerifier,
  SIGNATURE_ANNOTATION,
  SIMPLE_SIGNING_MEDIA_TYPE,
  buildSignatureManifest,
  createPayload,
  generateKeyPair,
  keyIdOf,
  openWithPassword,
  readPem,
  readPrivateKey,
  readPublicKey,
  repositoryPath,
  signatureLayers,
  signatureTag,
  signedDigestOfTag,
  verifySignatures,
  type SignatureCandidate,
} from '../src/signing/index.js';
import { parseSignaturePolicies } from '../src/registry/signature-policy.js';

/**
 * Signatures checked against vectors made outside this code: a payload written to cosign's
 * SIGNATURE_SPEC.md by hand, signed once with `openssl dgst -sha256 -sign` on a P-256 key from
 * `openssl ecparam`; the encrypted-key vector of go-securesystemslib (the library cosign seals
 * its keys with) and a key cosign itself generated; and signatures made here with node:crypto.
 */
const DIGEST = 'sha256:1111111111111111111111111111111111111111111111111111111111111111';
const OPENSSL_PAYLOAD =
  '{"critical":{"identity":{"docker-reference":"registry.example:5000/prod/app"},"image":{"docker-manifest-digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111"},"type":"cosign container image signature"},"optional":{"ci":"build-42"}}';
const OPENSSL_SIGNATURE = 'MEUCIAPsvDal2ehfta2Izd6yL7h3Si2e3HmMC51FqnotV7QdAiEAtkjyIsM23CsUOE5bya1cHLwI8ZSMwlL2l4Se+n9jJlA=';
const OPENSSL_PUBLIC_KEY = `-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEST3KTR7CkBEx5jmeO4UFfEgzcVxZ
TIQFn8gFIv2LNe4S3Tx99ONNaRhqHU40StVsZoBcI6I93QJvNyJRahNOaw==
-----END PUBLIC KEY-----
`;
const OPENSSL_EC_PRIVATE_KEY = `-----BEGIN EC PRIVATE KEY-----
MHcCAQEEIBqTTS5zRlAi0M/mdGyF3sDBpJw+93U9bEB4ClbJd7BLoAoGCCqGSM49
AwEHoUQDQgAEST3KTR7CkBEx5jmeO4UFfEgzcVxZTIQFn8gFIv2LNe4S3Tx99ONN
aRhqHU40StVsZoBcI6I93QJvNyJRahNOaw==
-----END EC PRIVATE KEY-----
`;
/** go-securesystemslib encrypted/encrypted_test.go: "reallyimportant" sealed with "supersecret" (scrypt N=32768, nacl/secretbox). */
const SEALED_VECTOR =
  '{"kdf":{"name":"scrypt","params":{"N":32768,"r":8,"p":1},"salt":"N9a7x5JFGbrtB2uBR81jPwp0eiLR4A7FV3mjVAQrg1g="},"cipher":{"name":"nacl/secretbox","nonce":"2h8HxMmgRfuYdpswZBQaU3xJ1nkA/5Ik"},"ciphertext":"SEW6sUh0jf2wfdjJGPNS9+bkk2uB+Cxamf32zR8XkQ=="}';

/** A key cosign generated (sigstore/cosign pkg/cosign/keys_test.go, password "hello"): PKCS#8 P-256 sealed with scrypt N=32768. */
const COSIGN_GENERATED_KEY = `-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----
eyJrZGYiOnsibmFtZSI6InNjcnlwdCIsInBhcmFtcyI6eyJOIjozMjc2OCwiciI6
OCwicCI6MX0sInNhbHQiOiI3T3VGd2VsbWZZNXVId2NoaURSc210anNwZ2ZlZjFG
Mk5lOGFDTjVLYVpZPSJ9LCJjaXBoZXIiOnsibmFtZSI6Im5hY2wvc2VjcmV0Ym94
Iiwibm9uY2UiOiJQNHk4OGhCb3ZTa09MbXN0bFVBaGJwdDJ0K2xTNUxQSCJ9LCJj
aXBoZXJ0ZXh0IjoiMnB1QzdyZldJOWh3bnJlQ2s4aUZDRlVwQlRrSzRJNlIvbFBF
cnBDekpXUGpJWXl4eGVIL1A2VW52cFJHdVhla1NNb3JMdGhLamdoQ1JlNy82NDVH
QWtoVm1LRC92eEF0S2EvbE1abENSQ3FlekJGUFd1dzNpeFRtZ2xhb2J1ZFVSbUVs
bmNGOGlZbzBTMVl6Y1ZOMVFwY2J2c0dNcUlYRzVlbmdteGp5dCtBcXlyZTF0Q0Y0
V01tU1BlaEljNlBqd2h1Q2xHaVpJUWRvTGc9PSJ9
-----END ENCRYPTED SIGSTORE PRIVATE KEY-----
`;

function sha256(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

function candidate(payload: Buffer, signature: string, source = 'test'): SignatureCandidate {
  return { layer: { payloadDigest: sha256(payload), payloadSize: payload.length, signature, annotations: {} }, payload, source };
}

describe('fixed vectors', () => {
  it('verifies an openssl-made signature over a hand-written cosign payload', () => {
    const payload = Buffer.from(OPENSSL_PAYLOAD);
    const result = verifySignatures([candidate(payload, OPENSSL_SIGNATURE)], [new KeyVerifier(readPublicKey(OPENSSL_PUBLIC_KEY))], {
      digest: DIGEST,
      repository: 'prod/app',
      annotations: { ci: 'build-42' },
    });
    assert.deepEqual(result.rejected, []);
    assert.equal(result.verified.length, 1);
    assert.equal(result.verified[0]!.dockerReference, 'registry.example:5000/prod/app');
  });

  it('names each failure: wrong key, tampered payload, another digest, another repository, missing annotation', () => {
    const payload = Buffer.from(OPENSSL_PAYLOAD);
    const right = [new KeyVerifier(readPublicKey(OPENSSL_PUBLIC_KEY))];
    const other = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const expected = { digest: DIGEST, repository: 'prod/app' };
    assert.match(verifySignatures([candidate(payload, OPENSSL_SIGNATURE)], [new KeyVerifier(other.publicKey)], expected).rejected[0]!, /does not verify with key/);
    const tampered = Buffer.from(OPENSSL_PAYLOAD.replace('build-42', 'build-43'));
    assert.match(verifySignatures([candidate(tampered, OPENSSL_SIGNATURE)], right, expected).rejected[0]!, /tampered/);
    // A payload whose bytes do not hash to the digest in the layer: changed in storage.
    const swapped: SignatureCandidate = { ...candidate(payload, OPENSSL_SIGNATURE), payload: tampered };
    assert.match(verifySignatures([swapped], right, expected).rejected[0]!, /does not match its digest/);
    assert.match(verifySignatures([candidate(payload, OPENSSL_SIGNATURE)], right, { ...expected, digest: `sha256:${'2'.repeat(64)}` }).rejected[0]!, /another digest/);
    assert.match(verifySignatures([candidate(payload, OPENSSL_SIGNATURE)], right, { ...expected, repository: 'prod/other' }).rejected[0]!, /another repository/);
    assert.match(verifySignatures([candidate(payload, OPENSSL_SIGNATURE)], right, { ...expected, annotations: { ci: 'x' } }).rejected[0]!, /lacks the annotation ci=x/);
  });

  it('reads an openssl SEC 1 private key and signs what the openssl public key verifies', async () => {
    const key = await readPrivateKey(OPENSSL_EC_PRIVATE_KEY, async () => assert.fail('no password for a plain key'));
    const payload = createPayload('registry.example:5000/prod/app', DIGEST);
    const { signature } = await new KeySigner(key).sign(payload);
    assert.equal(new KeyVerifier(readPublicKey(OPENSSL_PUBLIC_KEY)).verify(payload, signature), true);
    assert.equal(keyIdOf(key), keyIdOf(readPublicKey(OPENSSL_PUBLIC_KEY)));
  });

  it('reads a private key that cosign generated, and signs what its public half verifies', async () => {
    const key = await readPrivateKey(COSIGN_GENERATED_KEY, async () => 'hello');
    assert.equal(key.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    const payload = createPayload('registry.example/prod/app', DIGEST);
    const { signature } = await new KeySigner(key).sign(payload);
    assert.equal(new KeyVerifier(createPublicKey(key)).verify(payload, signature), true);
    await assert.rejects(readPrivateKey(COSIGN_GENERATED_KEY, async () => 'wrong'), /wrong password/);
  });

  it('opens go-securesystemslib\'s sealed vector, and refuses a wrong password', async () => {
    assert.equal((await openWithPassword(Buffer.from(SEALED_VECTOR), 'supersecret')).toString(), 'reallyimportant');
    await assert.rejects(openWithPassword(Buffer.from(SEALED_VECTOR), 'wrong'), /wrong password/);
  });
});

describe('cosign formats', () => {
  it('writes the payload cosign writes: critical identity, image, type; optional null or annotations', () => {
    const bare = JSON.parse(createPayload('h:5000/a/b', DIGEST).toString());
    assert.deepEqual(bare, {
      critical: { identity: { 'docker-reference': 'h:5000/a/b' }, image: { 'docker-manifest-digest': DIGEST }, type: 'cosign container image signature' },
      optional: null,
    });
    assert.deepEqual(JSON.parse(createPayload('h/a', DIGEST, { k: 'v' }).toString()).optional, { k: 'v' });
  });

  it('a signature made with node:crypto directly verifies through a manifest the code builds', () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const payload = Buffer.from(JSON.stringify({ critical: { identity: { 'docker-reference': 'x.io/team/app' }, image: { 'docker-manifest-digest': DIGEST }, type: 'cosign container image signature' }, optional: null }));
    const signature = signBytes('sha256', payload, privateKey).toString('base64');
    const built = buildSignatureManifest([{ payloadDigest: sha256(payload), payloadSize: payload.length, signature, annotations: {} }]);
    const doc = JSON.parse(built.bytes.toString());
    assert.equal(doc.mediaType, 'application/vnd.oci.image.manifest.v1+json');
    assert.equal(doc.config.mediaType, 'application/vnd.oci.image.config.v1+json');
    assert.equal(doc.layers[0].mediaType, SIMPLE_SIGNING_MEDIA_TYPE);
    assert.equal(doc.layers[0].annotations[SIGNATURE_ANNOTATION], signature);
    const layers = signatureLayers(built.bytes);
    const result = verifySignatures([{ layer: layers[0]!, payload, source: 't' }], [new KeyVerifier(publicKey)], { digest: DIGEST, repository: 'team/app' });
    assert.equal(result.verified.length, 1);
  });

  it('the referrer form carries a subject and cosign\'s signature artifact type', () => {
    const subject = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: DIGEST, size: 10 };
    const doc = JSON.parse(buildSignatureManifest([], { subject }).bytes.toString());
    assert.equal(doc.artifactType, 'application/vnd.dev.cosign.artifact.sig.v1+json');
    assert.equal(doc.config.mediaType, 'application/vnd.dev.cosign.artifact.sig.v1+json');
    assert.deepEqual(doc.subject, subject);
  });

  it('generates a key pair: an encrypted PKCS#8 P-256 key under cosign\'s label and an SPKI public key', async () => {
    const pair = await generateKeyPair('pw');
    const pem = readPem(pair.privateKeyPem)!;
    assert.equal(pem.label, 'ENCRYPTED SIGSTORE PRIVATE KEY');
    const sealed = JSON.parse(pem.der.toString());
    assert.deepEqual(sealed.kdf.params, { N: 65536, r: 8, p: 1 });
    assert.equal(sealed.cipher.name, 'nacl/secretbox');
    // What the seal holds is plain PKCS#8, as node:crypto reads it.
    const der = await openWithPassword(pem.der, 'pw');
    const key = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
    assert.equal(key.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    assert.equal(keyIdOf(readPublicKey(pair.publicKeyPem)), pair.keyId);
    await assert.rejects(readPrivateKey(pair.privateKeyPem, async () => 'nope'), KeyFormatError);
  });

  it('maps digests to .sig tags and back, and compares repositories without the registry host', () => {
    assert.equal(signatureTag(DIGEST), `sha256-${'1'.repeat(64)}.sig`);
    assert.equal(signedDigestOfTag(signatureTag(DIGEST)), DIGEST);
    assert.equal(signedDigestOfTag('sha256-abc.sig'), undefined);
    assert.equal(signedDigestOfTag('v1'), undefined);
    assert.equal(repositoryPath('localhost:5000/prod/app'), 'prod/app');
    assert.equal(repositoryPath('index.docker.io/library/nginx'), 'nginx');
    assert.equal(repositoryPath('prod/app'), 'prod/app');
  });
});

describe('security.signatures entries', () => {
  const pem = OPENSSL_PUBLIC_KEY;
  const read = (path: string) => {
    if (path === '/keys/release.pub') return pem;
    throw new Error(`cannot read the key file ${path}`);
  };

  it('reads PEM text and key files, enforce by default', () => {
    const policies = parseSignaturePolicies(
      [
        { repository: 'prod/**', keys: ['/keys/release.pub'] },
        { repository: 'staging/*', keys: [pem], mode: 'warn' },
      ],
      read,
    );
    assert.deepEqual(policies.map((p) => [p.repository, p.mode, p.verifiers.length]), [['prod/**', 'enforce', 1], ['staging/*', 'warn', 1]]);
    assert.deepEqual(parseSignaturePolicies(undefined, read), []);
  });

  it('names the entry that is wrong', () => {
    assert.throws(() => parseSignaturePolicies({ repository: 'x' }, read), /expected a list/);
    assert.throws(() => parseSignaturePolicies([{ repository: 'prod/**', keys: [] }], read), /security\.signatures\[0\]\.keys/);
    assert.throws(() => parseSignaturePolicies([{ repository: 'prod/**', keys: [pem], mode: 'audit' }], read), /security\.signatures\[0\]\.mode: expected enforce or warn/);
    assert.throws(() => parseSignaturePolicies([{ repository: 'Prod', keys: [pem] }], read), /security\.signatures\[0\]\.repository/);
    assert.throws(() => parseSignaturePolicies([{ repository: 'prod/**', keys: ['/missing.pub'] }], read), /cannot read the key file \/missing\.pub/);
    assert.throws(() => parseSignaturePolicies([{ repository: 'prod/**', keys: ['-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n'] }], read), /security\.signatures\[0\]\.keys\[0\]/);
    assert.throws(() => parseSignaturePolicies([{ repository: 'prod/**', keys: [pem], mod: 'warn' }], read), /unknown key mod/);
  });
});
