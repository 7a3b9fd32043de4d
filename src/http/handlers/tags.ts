import { RegistryError } from '../../errors/index.js';
import type { RestoreTarget, TagEvent } from '../../registry/services.js';
import { readJsonBody } from '../body.js';
import { sendJson, type Handler } from '../exchange.js';

type TagHistoryRoute = { kind: 'tag.history'; name: string; tag: string };
type TagRestoreRoute = { kind: 'tag.restore'; name: string; tag: string };

/** One history entry on the wire: times as RFC 3339, absent values as null (stable columns for tools). */
function historyEntry(event: TagEvent) {
  return {
    at: new Date(event.at).toISOString(),
    action: event.action,
    digest: event.action === 'delete' ? null : (event.digest ?? null),
    previous: event.previous ?? null,
    actor: event.actor ?? null,
  };
}

/** `GET /v2/<name>/_wharf/tags/<tag>/history[?n=100]`: the tag's moves, newest first (pull rights). */
export const getTagHistory: Handler<TagHistoryRoute> = async (ex) => {
  const n = ex.query.get('n');
  if (n !== null && !/^[1-9]\d{0,4}$/.test(n)) throw new RegistryError('PAGINATION_NUMBER_INVALID', { detail: { n } });
  const events = await ex.registry.tags.history(ex.route.name, ex.route.tag, n === null ? 100 : Number(n));
  sendJson(ex, 200, { name: ex.route.name, tag: ex.route.tag, history: events.map(historyEntry) });
};

/**
 * `POST /v2/<name>/_wharf/tags/<tag>/restore` with `{"digest": "sha256:…"}` or `{"at": RFC 3339}`:
 * points the tag back (push rights). DENIED when the tag is immutable, MANIFEST_UNKNOWN when the
 * manifest is gone.
 */
export const restoreTag: Handler<TagRestoreRoute> = async (ex) => {
  const body = (await readJsonBody(ex.req)) as Record<string, unknown>;
  let target: RestoreTarget;
  if (typeof body.digest === 'string' && body.at === undefined) {
    target = { digest: body.digest };
  } else if (typeof body.at === 'string' && body.digest === undefined) {
    const at = Date.parse(body.at);
    if (!/^\d{4}-\d\d-\d\dT/.test(body.at) || Number.isNaN(at)) {
      throw new RegistryError('INVALID_REQUEST', { message: '"at" must be an RFC 3339 time, e.g. 2026-01-31T12:00:00Z', detail: { at: body.at } });
    }
    target = { at };
  } else {
    throw new RegistryError('INVALID_REQUEST', { message: 'expected {"digest": DIGEST} or {"at": RFC 3339 time}' });
  }
  const result = await ex.registry.tags.restore(ex.route.name, ex.route.tag, target, ex.context);
  sendJson(ex, 200, { name: ex.route.name, ...result });
};
