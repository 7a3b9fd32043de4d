import type { Command } from 'commander';
import {
  CredentialStore,
  ImageOpener,
  LocalStore,
  RegistryConnector,
  type ConnectionSettings,
  type ImageDestination,
  type ImageLocation,
  type ImageSource,
  type RegistryClient,
} from '../client/index.js';
import type { ImageReference } from '../oci/reference.js';

/** Options every client command accepts (declared on the program). */
export interface GlobalOptions {
  caCert?: string[];
  insecure?: boolean;
  plainHttp?: boolean;
  quiet?: boolean;
  json?: boolean;
  timeout?: number;
}

/** The global flags as connection settings for src/client. */
export function connectionSettings(options: GlobalOptions, credentialStore?: CredentialStore): ConnectionSettings {
  return {
    ...(credentialStore ? { credentialStore } : {}),
    ...(options.caCert ? { caCertFiles: options.caCert } : {}),
    ...(options.insecure ? { insecure: true } : {}),
    ...(options.plainHttp ? { plainHttp: true } : {}),
    ...(options.timeout !== undefined ? { timeoutSeconds: options.timeout } : {}),
  };
}

/** What a command needs from its environment: registry clients, the local store, output settings. */
export class CliContext {
  readonly options: GlobalOptions;
  readonly credentials = new CredentialStore();
  readonly registries: RegistryConnector;
  private readonly images: ImageOpener;
  private localStore: LocalStore | undefined;

  constructor(command: Command) {
    this.options = command.optsWithGlobals<GlobalOptions>();
    this.registries = new RegistryConnector(connectionSettings(this.options, this.credentials));
    this.images = new ImageOpener({ registries: this.registries, localStore: () => this.store });
  }

  get store(): LocalStore {
    return (this.localStore ??= new LocalStore());
  }

  client(registry: string): RegistryClient {
    return this.registries.client(registry);
  }

  openSource(location: ImageLocation): ImageSource {
    return this.images.openSource(location);
  }

  openNamedSource(text: string, options: { remote?: boolean } = {}): { source: ImageSource; location: ImageLocation } {
    return this.images.openNamedSource(text, options);
  }

  openDestination(location: ImageLocation, nameForArchive?: ImageReference): ImageDestination {
    return this.images.openDestination(location, nameForArchive);
  }

  close(): void {
    this.registries.close();
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
