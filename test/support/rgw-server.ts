import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { ok, requireTool } from './tools.js';

/** A running S3 endpoint (Ceph's RADOS Gateway on loopback) and how to reach it. */
export interface S3Server {
  endpoint: string;
  accessKey: string;
  secretKey: string;
  region: string;
  /** Makes a new, empty bucket and returns its name. */
  createBucket(prefix?: string): Promise<string>;
  stop(): Promise<void>;
}

const START_SCRIPT = fileURLToPath(new URL('../../scripts/start-rgw.sh', import.meta.url));

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

let buckets = 0;

/**
 * Starts a throw-away RADOS Gateway with scripts/start-rgw.sh (fails, never skips, when Ceph is
 * not installed). One per test file: it starts in about two seconds and holds objects in memory.
 */
export async function startS3Server(): Promise<S3Server> {
  for (const tool of ['ceph-mon', 'ceph-osd', 'radosgw', 'radosgw-admin']) requireTool(tool);
  const dir = mkdtempSync(join(tmpdir(), 'wharf-rgw-'));
  const port = await freePort();
  let line: string;
  try {
    line = await ok(START_SCRIPT, [join(dir, 'cluster'), String(port)], { timeoutMs: 180_000 });
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  const field = (name: string) => {
    const m = new RegExp(`${name}=(?:"([^"]*)"|(\\S+))`).exec(line);
    return m?.[1] ?? m?.[2] ?? '';
  };
  const endpoint = field('S3_ENDPOINT');
  const accessKey = field('S3_ACCESS_KEY');
  const secretKey = field('S3_SECRET_KEY');
  const pids = field('RGW_PIDS').split(' ').filter(Boolean).map(Number);
  const region = 'us-east-1';
  const client = new S3Client({ region, endpoint, forcePathStyle: true, credentials: { accessKeyId: accessKey, secretAccessKey: secretKey } });
  return {
    endpoint,
    accessKey,
    secretKey,
    region,
    async createBucket(prefix = 'wharf') {
      buckets += 1;
      const name = `${prefix}-${process.pid}-${buckets}-${Date.now().toString(36)}`;
      await client.send(new CreateBucketCommand({ Bucket: name }));
      return name;
    },
    async stop() {
      client.destroy();
      // The gateway first, so that nothing writes while the OSD and monitor go.
      for (const pid of [...pids].reverse()) {
        try {
          process.kill(pid, 'SIGTERM');
        } catch {
          // already gone
        }
      }
      const deadline = Date.now() + 10_000;
      while (Date.now() < deadline && pids.some(isAlive)) await new Promise((resolve) => setTimeout(resolve, 100));
      for (const pid of pids.filter(isAlive)) process.kill(pid, 'SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
