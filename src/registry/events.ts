/**
 * What changed in the registry and who changed it, emitted after the change is durable.
 * The audit log (and later webhooks) subscribe; the services never wait on a subscriber.
 */
export type RegistryEvent =
  | { action: 'blob.push'; repository: string; digest: string; actor?: string }
  | { action: 'blob.mount'; repository: string; digest: string; from: string; actor?: string }
  | { action: 'blob.delete'; repository: string; digest: string; actor?: string }
  | { action: 'manifest.push'; repository: string; digest: string; tags: string[]; actor?: string }
  /** A tag pointed at `previous` and now points at `digest` (`previous` absent for a new tag). */
  | { action: 'tag.move'; repository: string; tag: string; digest: string; previous?: string; actor?: string }
  | { action: 'manifest.delete'; repository: string; digest: string; tags: string[]; actor?: string }
  | { action: 'tag.delete'; repository: string; tag: string; actor?: string };

export type EventSink = (event: RegistryEvent) => void;
