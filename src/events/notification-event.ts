import { createHash, createHmac } from 'node:crypto';
import type { ChangeEvent, ChangeReference, OutboxEntry } from '../metadata/metadata-store.js';

/** registry:2's envelope media type: receivers written for it key on this. */
export const DISTRIBUTION_EVENTS_TYPE = 'application/vnd.docker.distribution.events.v1+json';
/** Blobs have no media type of their own in Distribution's events. */
const BLOB_MEDIA_TYPE = 'application/octet-stream';

/** Distribution's `target` block, plus `previous` on Wharf's own `move` events. */
export interface NotificationTarget {
  mediaType?: string;
  size?: number;
  digest?: string;
  length?: number;
  repository?: string;
  fromRepository?: string;
  url?: string;
  tag?: string;
  references?: ChangeReference[];
}

/** One event of Distribution's envelope (`{"events": [...]}`), with Wharf's extras under `wharf`. */
export interface NotificationEvent {
  id: string;
  timestamp: string;
  action: string;
  target: NotificationTarget;
  request: { id?: string; addr?: string; host?: string; method?: string; useragent?: string };
  actor: { name?: string };
  source: { addr: string; instanceID: string };
  /** Wharf's own facts that Distribution's fields have no place for (a move's previous digest, a refusal's quota). */
  wharf?: Record<string, unknown>;
}

export interface RenderOptions {
  source: { addr: string; instanceID: string };
  /** `notifications.events.includereferences` */
  includeReferences: boolean;
  /** Base URL for targets of events made without a request (collections). */
  baseUrl: string;
  /** A pulled manifest's references (read from metadata when the event is delivered). */
  referencesOf?: (repository: string, digest: string) => ChangeReference[] | undefined;
  /** Which endpoint renders: replays meant for another endpoint render nothing. */
  endpoint: string;
}

/**
 * The notification events an outbox entry stands for, as Distribution would send them: a blob
 * upload is a `push` of an `application/octet-stream` target; a manifest push is one `push` per tag
 * it was pushed with (one without a tag when pushed by digest); serving a manifest or blob (GET or
 * HEAD) is a `pull`; a mount is a `mount` with `fromRepository`; deleting a manifest is a `delete`
 * of its digest then one `delete` per tag it had. Wharf adds `move` (a tag moved from one manifest
 * to another, or restored), `refuse` (a push over a quota) and `collect` (a garbage collection).
 * Ids are derived from the entry, so an event delivered twice carries the same id.
 */
export function renderEntry(entry: OutboxEntry, options: RenderOptions): NotificationEvent[] {
  const event = entry.event;
  if (event.action === 'notification.replay') {
    return event.endpoint === options.endpoint ? renderEntry(event.original, options) : [];
  }
  if (event.action === 'pull.batch') {
    // One event per pull, each with its own time and origin; the index in the batch keeps ids apart.
    return event.pulls.flatMap(({ at, ...pull }, index) => assemble(entry, pull, at, index, describe(pull, options), options));
  }
  return assemble(entry, event, entry.at, 0, describe(event, options), options);
}

/** The events of one change, numbered from `first` within their outbox entry. */
function assemble(entry: OutboxEntry, event: ChangeEvent, at: number, first: number, parts: Part[], options: RenderOptions): NotificationEvent[] {
  const timestamp = new Date(at).toISOString();
  const request = event.request
    ? { id: event.request.id, addr: event.request.addr, host: event.request.host, method: event.request.method, useragent: event.request.useragent }
    : {};
  return parts.map((part, index) => ({
    id: eventId(entry, first + index),
    timestamp,
    action: part.action,
    target: part.target,
    request,
    actor: event.actor !== undefined ? { name: event.actor } : {},
    source: options.source,
    ...(part.wharf ? { wharf: part.wharf } : {}),
  }));
}

type Part = { action: string; target: NotificationTarget; wharf?: Record<string, unknown> };

function describe(event: ChangeEvent, options: RenderOptions): Part[] {
  const base = event.request ? `${event.request.scheme ?? 'http'}://${event.request.host}` : options.baseUrl;
  const blobUrl = (repository: string, digest: string) => `${base}/v2/${repository}/blobs/${digest}`;
  const manifestUrl = (repository: string, digest: string) => `${base}/v2/${repository}/manifests/${digest}`;
  const blobTarget = (repository: string, digest: string, size: number): NotificationTarget => ({
    mediaType: BLOB_MEDIA_TYPE,
    size,
    digest,
    length: size,
    repository,
    url: blobUrl(repository, digest),
  });
  switch (event.action) {
    case 'blob.push':
      return [{ action: 'push', target: blobTarget(event.repository, event.digest, event.size) }];
    case 'blob.pull':
      return [{ action: 'pull', target: blobTarget(event.repository, event.digest, event.size) }];
    case 'blob.mount': {
      const target = blobTarget(event.repository, event.digest, event.size);
      // Distribution's field order: fromRepository sits between repository and url.
      const { url, ...rest } = target;
      return [{ action: 'mount', target: { ...rest, ...(event.from ? { fromRepository: event.from } : {}), ...(url !== undefined ? { url } : {}) } }];
    }
    case 'blob.delete':
      return [{ action: 'delete', target: { digest: event.digest, repository: event.repository } }];
    case 'manifest.push':
    case 'manifest.pull': {
      const references =
        event.action === 'manifest.push' ? event.references : options.includeReferences ? options.referencesOf?.(event.repository, event.digest) : undefined;
      const target = (tag: string | undefined): NotificationTarget => ({
        mediaType: event.mediaType,
        size: event.size,
        digest: event.digest,
        length: event.size,
        repository: event.repository,
        url: manifestUrl(event.repository, event.digest),
        ...(tag !== undefined ? { tag } : {}),
        ...(options.includeReferences && references ? { references } : {}),
      });
      const action = event.action === 'manifest.push' ? 'push' : 'pull';
      const tags = event.action === 'manifest.push' ? event.tags : event.tag !== undefined ? [event.tag] : [];
      return tags.length === 0 ? [{ action, target: target(undefined) }] : tags.map((tag) => ({ action, target: target(tag) }));
    }
    case 'manifest.delete':
      return [
        { action: 'delete', target: { digest: event.digest, repository: event.repository } },
        ...event.tags.map((tag) => ({ action: 'delete', target: { repository: event.repository, tag } })),
      ];
    case 'tag.delete':
      return [{ action: 'delete', target: { repository: event.repository, tag: event.tag } }];
    case 'tag.move':
      // A new tag is told by its push event; a move away from another manifest, or a restore, by its own.
      if (event.previous === undefined && !event.restore) return [];
      return [
        {
          action: 'move',
          target: { digest: event.digest, repository: event.repository, url: manifestUrl(event.repository, event.digest), tag: event.tag },
          wharf: { ...(event.previous !== undefined ? { previous: event.previous } : {}), ...(event.restore ? { restore: true } : {}) },
        },
      ];
    case 'quota.refuse':
      return [
        {
          action: 'refuse',
          target: { ...(event.digest !== undefined ? { digest: event.digest } : {}), size: event.adds, repository: event.repository },
          wharf: { quota: event.quota, limit: event.limit, usage: event.usage, adds: event.adds },
        },
      ];
    case 'gc.collect':
      return [{ action: 'collect', target: {}, wharf: { deleted: event.deleted, bytesFreed: event.bytesFreed, durationMs: event.durationMs } }];
    case 'repository.create':
    case 'repository.delete':
    case 'notification.replay':
    case 'pull.batch':
      return [];
  }
}

/** A UUID-shaped id that depends only on the outbox entry and the event's place in it. */
export function eventId(entry: OutboxEntry, index: number): string {
  const event = entry.event;
  const digest = 'digest' in event ? event.digest : '';
  const hex = createHash('sha256').update(`${entry.id}\n${entry.at}\n${index}\n${event.action}\n${event.repository ?? ''}\n${digest}`).digest('hex');
  const variant = ((parseInt(hex[16]!, 16) & 0x3) | 0x8).toString(16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-8${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

/** Whether an endpoint wants an event (registry:2's ignoredmediatypes, ignore.mediatypes, ignore.actions). */
export function wanted(event: NotificationEvent, filter: { ignoredMediaTypes: readonly string[]; ignoredActions: readonly string[] }): boolean {
  if (filter.ignoredActions.includes(event.action)) return false;
  return event.target.mediaType === undefined || !filter.ignoredMediaTypes.includes(event.target.mediaType);
}

/** A request body and its content type, in the endpoint's format. */
export function encodeBody(events: readonly NotificationEvent[], format: 'distribution' | 'cloudevents'): { body: Buffer; contentType: string } {
  if (format === 'distribution') return { body: Buffer.from(JSON.stringify({ events })), contentType: DISTRIBUTION_EVENTS_TYPE };
  const cloud = events.map(toCloudEvent);
  return cloud.length === 1
    ? { body: Buffer.from(JSON.stringify(cloud[0])), contentType: 'application/cloudevents+json' }
    : { body: Buffer.from(JSON.stringify(cloud)), contentType: 'application/cloudevents-batch+json' };
}

/** CloudEvents 1.0, structured mode: Wharf's types are `io.wharf.registry.<action>`; `data` is Distribution's event. */
function toCloudEvent(event: NotificationEvent): Record<string, unknown> {
  const { target } = event;
  const subject = target.repository === undefined ? undefined : target.tag !== undefined ? `${target.repository}:${target.tag}` : target.digest !== undefined ? `${target.repository}@${target.digest}` : target.repository;
  return {
    specversion: '1.0',
    id: event.id,
    source: `wharf://${event.source.addr}`,
    type: `io.wharf.registry.${event.action}`,
    time: event.timestamp,
    ...(subject !== undefined ? { subject } : {}),
    datacontenttype: 'application/json',
    data: event,
  };
}

/** The signature header's value: `sha256=` and the hex HMAC-SHA256 of the exact body. */
export function signBody(body: Buffer, secret: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}
