#!/usr/bin/env bash
# scripts/test-on-s3.sh TEST_FILE...
#
# Runs test files with every `wharf serve` they start (test/support/wharf-process.ts) keeping its
# blobs in S3: a throw-away RADOS Gateway from scripts/start-rgw.sh, one bucket, a root directory
# per server. For example: scripts/test-on-s3.sh test/api-*.test.ts
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || { echo "usage: scripts/test-on-s3.sh TEST_FILE..." >&2; exit 2; }
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
line=$(scripts/start-rgw.sh "$work/rgw" "$port")
eval "$line"
export S3_ENDPOINT S3_ACCESS_KEY S3_SECRET_KEY
trap 'kill $RGW_PIDS 2>/dev/null || true; sleep 1; rm -rf "$work"' EXIT
export WHARF_TEST_S3_ENDPOINT=$S3_ENDPOINT WHARF_TEST_S3_ACCESS_KEY=$S3_ACCESS_KEY WHARF_TEST_S3_SECRET_KEY=$S3_SECRET_KEY WHARF_TEST_S3_BUCKET=wharf-tests
node --input-type=module -e "
import { S3Client, CreateBucketCommand } from '@aws-sdk/client-s3';
const client = new S3Client({ region: 'us-east-1', endpoint: process.env.S3_ENDPOINT, forcePathStyle: true, credentials: { accessKeyId: process.env.S3_ACCESS_KEY, secretAccessKey: process.env.S3_SECRET_KEY } });
await client.send(new CreateBucketCommand({ Bucket: process.env.WHARF_TEST_S3_BUCKET }));
client.destroy();
" 2>&1 | grep -v "^$\|NodeVersion\|versions published\|node >=22\|To continue\|and security\|More information\|trace-warnings" || true
node --import tsx --test --test-concurrency=1 "$@"
