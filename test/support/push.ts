import assert from 'node:assert/strict';
import { raw, type RawResponse } from './http.js';
import type { Blob } from './oci-fixtures.js';

/** Monolithic blob upload (POST ?digest= with the body); asserts 201. */
export async function pushBlob(base: string, repo: string, blob: Blob): Promise<void> {
  const res = await raw(base, 'POST', `/v2/${repo}/blobs/uploads/?digest=${blob.digest}`, {
    headers: { 'Content-Type': 'application/octet-stream' },
    body: blob.data,
  });
  assert.equal(res.status, 201, `blob push: ${res.status} ${res.body}`);
}

export async function putManifest(base: string, repo: string, reference: string, manifest: Blob, contentType: string): Promise<RawResponse> {
  return raw(base, 'PUT', `/v2/${repo}/manifests/${reference}`, { headers: { 'Content-Type': contentType }, body: manifest.data });
}

/** Starts an upload session; returns its Location path. */
export async function startUpload(base: string, repo: string): Promise<string> {
  const res = await raw(base, 'POST', `/v2/${repo}/blobs/uploads/`);
  assert.equal(res.status, 202);
  const location = res.header('location');
  assert.ok(location);
  return location;
}

/** Appends `?`/`&` query to a Location. */
export function withQuery(location: string, query: string): string {
  return location + (location.includes('?') ? '&' : '?') + query;
}
