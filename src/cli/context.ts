import type { Command } from 'commander';
import {
  ClientError,
  CredentialStore,
  DockerArchiveDestination,
  DockerArchiveSource,
  LayoutDestination,
  LayoutSource,
  LocalStore,
  OciLayout,
  RegistryDestination,
  REF_NAME,
  RegistrySource,
  connectRegistry,
  familiarTag,
  parseImageLocation,
  type ImageDestination,
  type ImageLocation,
  type ImageSource,
  type RegistryClient,
} from '../client/index.js';
import { formatReference, type ImageReference } from '../oci/reference.js';

/** Options every client command accepts (declared on the program). */
export interface GlobalOptions {
  caCert?: string[];
  insecure?: boolean;
  plainHttp?: boolean;
  quiet?: boolean;
  json?: boolean;
  timeout?: number;
}

/** What a command needs from its environment: registry clients, the local store, output settings. */
export class CliContext {
  readonly options: GlobalOptions;
  readonly credentials = new CredentialStore();
  private localStore: LocalStore | undefined;
  private readonly clients = new Map<string, RegistryClient>();

  constructor(command: Command) {
    this.options = command.optsWithGlobals<GlobalOptions>();
  }

  get store(): LocalStore {
    return (this.localStore ??= new LocalStore());
  }

  client(registry: string): RegistryClient {
    let client = this.clients.get(registry);
    if (!client) {
      client = connectRegistry(registry, {
        credentialStore: this.credentials,
        ...(this.options.caCert ? { caCertFiles: this.options.caCert } : {}),
        ...(this.options.insecure ? { insecure: true } : {}),
        ...(this.options.plainHttp ? { plainHttp: true } : {}),
        ...(this.options.timeout !== undefined ? { timeoutSeconds: this.options.timeout } : {}),
      });
      this.clients.set(registry, client);
    }
    return client;
  }

  openSource(location: ImageLocation): ImageSource {
    switch (location.transport) {
      case 'registry':
        return new RegistrySource(this.client(location.ref.registry), location.ref);
      case 'local': {
        const image = this.store.find(location.ref);
        if (!image) throw new ClientError('manifest-unknown', `No such image: ${formatReference(location.ref)}`);
        return new LayoutSource(this.store.layout, image.descriptor.annotations?.[REF_NAME], formatReference(location.ref));
      }
      case 'oci':
        return new LayoutSource(new OciLayout(location.dir), location.refName);
      case 'docker-archive':
        return new DockerArchiveSource(location.file, location.refName);
    }
  }

  /**
   * The image a user names on the command line: a local image when the store has it (unless
   * `remote`), else the registry; `oci:` and `docker-archive:` locations as written.
   */
  openNamedSource(text: string, options: { remote?: boolean } = {}): { source: ImageSource; location: ImageLocation } {
    const location = parseImageLocation(text, 'registry');
    if (location.transport === 'registry' && !options.remote && !text.startsWith('docker://')) {
      const local = this.store.find(location.ref);
      if (local) return { source: this.openSource({ transport: 'local', ref: location.ref }), location: { transport: 'local', ref: location.ref } };
    }
    return { source: this.openSource(location), location };
  }

  /** `nameForArchive` is what a docker-archive records as RepoTags when the destination names none. */
  openDestination(location: ImageLocation, nameForArchive?: ImageReference): ImageDestination {
    switch (location.transport) {
      case 'registry':
        return new RegistryDestination(this.client(location.ref.registry), location.ref);
      case 'local':
        return new LayoutDestination(this.store.layout, LocalStore.refName(location.ref), formatReference(location.ref));
      case 'oci':
        return new LayoutDestination(new OciLayout(location.dir), location.refName);
      case 'docker-archive': {
        const tags = location.refName ? [location.refName] : nameForArchive?.tag ? [familiarTag(nameForArchive)] : [];
        return new DockerArchiveDestination(location.file, tags);
      }
    }
  }

  close(): void {
    for (const client of this.clients.values()) client.close();
  }
}

/** Runs a command body with a context and always closes its connections. */
export async function withContext<T>(command: Command, body: (context: CliContext) => Promise<T>): Promise<T> {
  const context = new CliContext(command);
  try {
    return await body(context);
  } finally {
    context.close();
  }
}
