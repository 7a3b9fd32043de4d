import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import { digestOf } from '../src/oci/digest.js';
import { BlobStore } from '../src/storage/blob-store.js';
import { S3Driver, type S3DriverOptions } from '../src/storage/s3-driver.js';
import { startS3Server, type S3Server } from './support/rgw-server.js';
import { storageDriverContract } from './support/storage-driver-contract.js';

let s3: S3Server;
let bucket: string;
const drivers: S3Driver[] = [];
let roots = 0;

before(async () => {
  s3 = await startS3Server();
  bucket = await s3.createBucket();
});
after(async () => {
  drivers.forEach((driver) => driver.close());
  await s3?.stop();
});

/** A driver over a fresh root directory of the shared bucket: empty, like the contract wants. */
function freshDriver(overrides: Partial<S3DriverOptions> = {}): S3Driver {
  const driver = new S3Driver(freshDriverOptions(overrides));
  drivers.push(driver);
  return driver;
}

function freshDriverOptions(overrides: Partial<S3DriverOptions> = {}): S3DriverOptions {
  roots += 1;
  return {
    bucket,
    region: s3.region,
    endpoint: s3.endpoint,
    forcePathStyle: true,
    accessKey: s3.accessKey,
    secretKey: s3.secretKey,
    rootDirectory: `/root-${roots}/`,
    encrypt: false,
    secure: false,
    skipVerify: false,
    chunkSize: 5 * 1024 * 1024,
    storageClass: 'STANDARD',
    copyPartBytes: 32 * 1024 * 1024,
    copyConcurrency: 4,
    ...overrides,
  };
}

storageDriverContract('s3 (Ceph RADOS Gateway)', async () => freshDriver());

async function* body(...parts: Buffer[]): AsyncGenerator<Buffer> {
  for (const part of parts) yield part;
}

async function pendingMultipartUploads(driver: S3Driver): Promise<number> {
  const listed = await driver.client.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
  return listed.Uploads?.length ?? 0;
}

describe('S3 driver specifics', () => {
  it('keeps every key under the root directory, and a second root sees none of them', async () => {
    const driver = freshDriver({ rootDirectory: 'shared/prefix' });
    const writer = await driver.writer('blobs/x');
    await writer.write(Buffer.from('x'));
    await writer.commit();
    const neighbour = freshDriver({ rootDirectory: 'shared/prefix-other' });
    assert.deepEqual(await neighbour.list(''), []);
    assert.deepEqual(await driver.list(''), ['blobs']);
  });

  it('a cancelled multi-part writer leaves no multipart upload behind', async () => {
    const driver = freshDriver();
    const before = await pendingMultipartUploads(driver);
    const writer = await driver.writer('abandoned');
    await writer.write(randomBytes(6 * 1024 * 1024));
    await writer.cancel();
    assert.equal(await driver.stat('abandoned'), undefined);
    assert.equal(await pendingMultipartUploads(driver), before);
  });

  it('a presigned URL is signed for its one key: another key with the same signature is refused', async () => {
    const driver = freshDriver();
    const writer = await driver.writer('presigned/file');
    await writer.write(Buffer.from('0123456789'));
    await writer.commit();
    const url = await driver.redirectURL('presigned/file', { expiresInSeconds: 60 });
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/.*X-Amz-Signature=/);
    const whole = await fetch(url);
    assert.equal(whole.status, 200);
    assert.equal(await whole.text(), '0123456789');
    const tampered = await fetch(url.replace('presigned%2Ffile', 'presigned%2Fother').replace('presigned/file', 'presigned/other'));
    assert.equal(tampered.status, 403);
  });

  it('an upload continues on another process: parts and the running hash are all it needs', async () => {
    // Two blob stores over two drivers (two replicas' worth) of one root.
    const first = new BlobStore(freshDriver({ rootDirectory: 'replicated' }));
    const second = new BlobStore(freshDriver({ rootDirectory: 'replicated' }));
    const chunks = [randomBytes(6 * 1024 * 1024), randomBytes(700 * 1024), randomBytes(5 * 1024 * 1024 + 1)];
    const parts = [];
    let hashState: Uint8Array | undefined;
    let offset = 0;
    for (const [i, chunk] of chunks.entries()) {
      const store = i % 2 === 0 ? first : second;
      const written = await store.writePart('shared-upload', { offset, body: body(chunk), ...(hashState ? { hashState } : {}) });
      parts.push(written.part!);
      hashState = written.hashState;
      offset += chunk.length;
    }
    const digest = digestOf(Buffer.concat(chunks));
    assert.equal(await first.digestOf('shared-upload', parts, hashState, 'sha256'), digest);
    assert.equal(await second.digestOf('shared-upload', parts, undefined, 'sha256'), digest, 'without the saved hash, the parts are read again');
    await second.placeBlob('shared-upload', parts, digest);
    assert.equal(await first.stat(digest), offset);
    await first.deleteUpload('shared-upload');
    assert.deepEqual(await first.listUploads(), []);
    const blobs = [];
    for await (const blob of second.walkBlobs()) blobs.push(blob.digest);
    assert.deepEqual(blobs, [digest]);
  });

  it('without keys, takes credentials from the AWS default chain (here: the environment); wrong keys are refused', async () => {
    const saved = { id: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY };
    process.env.AWS_ACCESS_KEY_ID = s3.accessKey;
    process.env.AWS_SECRET_ACCESS_KEY = s3.secretKey;
    try {
      const { accessKey: _a, secretKey: _s, ...withoutKeys } = freshDriverOptions();
      const driver = new S3Driver(withoutKeys);
      drivers.push(driver);
      await driver.probe();
    } finally {
      for (const [name, value] of [['AWS_ACCESS_KEY_ID', saved.id], ['AWS_SECRET_ACCESS_KEY', saved.secret]] as const) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    }
    await assert.rejects(freshDriver({ secretKey: 'not-the-secret' }).probe());
  });

  it('refuses a chunk size S3 would not take', () => {
    assert.throws(() => freshDriver({ chunkSize: 1024 }), /5 MiB/);
  });

  it('probe succeeds on the bucket and fails on one that is not there', async () => {
    await freshDriver().probe();
    await assert.rejects(freshDriver({ bucket: 'no-such-bucket-here' }).probe());
  });
});
