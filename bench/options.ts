import { parseArgs } from 'node:util';

/** Every size and duration the bench uses; `--quick` swaps in small ones. */
export interface BenchOptions {
  quick: boolean;
  /** Repetitions of each workload per server (medians are taken over these). */
  repetitions: number;
  /** The large blob pushed and pulled, in MiB. */
  blobMiB: number;
  /** PATCH chunk size of the chunked push, in MiB. */
  chunkMiB: number;
  /** Seconds of each wrk run. */
  loadSeconds: number;
  /** Keep-alive connections of each wrk run. */
  connections: number;
  /** Tags pushed per timed batch. */
  tagBatch: number;
  /** Tags in the repository whose tag list is read (both servers). */
  tagList: number;
  /** Tags for the Wharf-only paged tag list (0 skips it). */
  tagListLarge: number;
  /** Repositories created per timed batch. */
  repoBatch: number;
  /** Repositories in the registry when the catalog is read for the target figure. */
  catalogSmall: number;
  /** Repositories when the catalog is read at scale (both servers). */
  catalogLarge: number;
  /** Repositories for the Wharf-only catalog page (0 skips it). */
  catalogHuge: number;
  /** Requests in flight during tag pushes and repository creation. */
  parallelism: number;
  /** Clients pushing distinct blobs at once. */
  pushClients: number;
  /** Size of each of those blobs, in MiB. */
  pushClientMiB: number;
  /** Catalog and tag list page size. */
  pageSize: number;
  /** Soak: concurrent clients, and the seconds of warm-up, of measurement and of idle afterwards. */
  soakClients: number;
  soakWarmupSeconds: number;
  soakSeconds: number;
  soakIdleSeconds: number;
  /** The servers the soak runs on, in order. */
  soakServers: Array<'wharf' | 'distribution'>;
  /** gc: repositories, and small blobs in each (half of them made garbage). */
  gcRepos: number;
  gcBlobsPerRepo: number;
  /** gc: clients reading manifests in a closed loop during Wharf's collection (0: the collector alone). */
  gcGetClients: number;
  /** search: repositories in the metadata store searched (filled directly, not pushed). */
  searchRepos: number;
  /** s3 (opt-in group): the blob pushed and pulled through both registries on S3, in MiB. */
  s3BlobMiB: number;
  /** Wharf's server.workers for this run; undefined keeps its default. */
  wharfWorkers: number | undefined;
  /** The Wharf checkout whose dist/ is benchmarked (to compare builds); this one by default. */
  wharfRoot: string | undefined;
  /** Extra Node.js flags for Wharf's processes (profiling: `--cpu-prof --cpu-prof-dir=DIR`). */
  wharfNodeArgs: string[];
  /** Where the results JSON goes. */
  resultsDir: string;
  /** Skip the machine-limit measurements (openssl, nginx). */
  skipLimits: boolean;
  /** Only these workload groups (all when empty). */
  only: string[];
}

export const WORKLOAD_GROUPS = ['blobs', 'load', 'tags', 'repos', 'parallel', 'soak', 'pulls', 'gc', 'operations', 'search', 'scan', 'signing', 'proxy', 's3', 'scale'] as const;
/** Groups that run only when named in --only (they start engines of their own and take long). */
export const OPT_IN_GROUPS: readonly string[] = ['s3', 'scale'];

const FULL: Omit<BenchOptions, 'quick' | 'wharfWorkers' | 'wharfRoot' | 'wharfNodeArgs' | 'resultsDir' | 'skipLimits' | 'only' | 'soakServers'> = {
  repetitions: 3,
  blobMiB: 1024,
  chunkMiB: 64,
  loadSeconds: 10,
  connections: 64,
  tagBatch: 2000,
  tagList: 10_000,
  tagListLarge: 100_000,
  repoBatch: 2000,
  catalogSmall: 2000,
  catalogLarge: 10_000,
  catalogHuge: 100_000,
  parallelism: 8,
  pushClients: 32,
  pushClientMiB: 16,
  pageSize: 100,
  soakClients: 8,
  soakWarmupSeconds: 30,
  soakSeconds: 120,
  soakIdleSeconds: 30,
  gcRepos: 10_000,
  gcBlobsPerRepo: 10,
  gcGetClients: 8,
  searchRepos: 100_000,
  s3BlobMiB: 256,
};

const QUICK: typeof FULL = {
  repetitions: 2,
  blobMiB: 64,
  chunkMiB: 16,
  loadSeconds: 2,
  connections: 64,
  tagBatch: 200,
  tagList: 400,
  tagListLarge: 0,
  repoBatch: 200,
  catalogSmall: 200,
  catalogLarge: 400,
  catalogHuge: 0,
  parallelism: 8,
  pushClients: 8,
  pushClientMiB: 4,
  pageSize: 100,
  soakClients: 8,
  soakWarmupSeconds: 5,
  soakSeconds: 10,
  soakIdleSeconds: 3,
  gcRepos: 200,
  gcBlobsPerRepo: 10,
  gcGetClients: 8,
  searchRepos: 2000,
  s3BlobMiB: 32,
};

const USAGE = `usage: npm run bench -- [--quick] [flags]

  --quick                 small sizes, finishes in under a minute
  --repetitions N         runs of each workload per server (default 3)
  --blob-mib N            large blob size (default 1024)
  --chunk-mib N           PATCH chunk size (default 64)
  --load-seconds N        duration of each wrk run (default 10)
  --connections N         wrk keep-alive connections (default 64)
  --tag-batch N           tags per timed tag push batch (default 2000)
  --tag-list N            tags in the listed repository (default 10000)
  --tag-list-large N      tags for the Wharf-only page figure, 0 skips (default 100000)
  --repo-batch N          repositories per timed creation batch (default 2000)
  --catalog-small N       repositories for the catalog target figure (default 2000)
  --catalog-large N       repositories for the catalog at scale (default 10000)
  --catalog-huge N        repositories for the Wharf-only catalog page, 0 skips (default 100000)
  --parallelism N         requests in flight for tags and repositories (default 8)
  --push-clients N        clients pushing at once (default 32)
  --push-client-mib N     blob size of each of them (default 16)
  --page-size N           catalog and tag list page size (default 100)
  --soak-seconds N        soak: measured seconds of the mixed workload, per server (default 120)
  --soak-warmup-seconds N soak: seconds of the same load before measuring (default 30)
  --soak-idle-seconds N   soak: seconds without load before the last memory reading (default 30)
  --soak-clients N        soak: concurrent clients (default 8)
  --soak-servers a,b      soak: which servers, in order (default wharf,distribution)
  --gc-repos N            gc: repositories (default 10000)
  --gc-blobs-per-repo N   gc: small blobs in each, half of them garbage (default 10)
  --gc-get-clients N      gc: clients reading manifests during Wharf's collection, 0 for none (default 8)
  --search-repos N        search: repositories filled into the metadata store (default 100000)
  --s3-blob-mib N         s3: the blob pushed and pulled on S3 (default 256)
  --wharf-workers N       Wharf's server.workers (default: Wharf's own default)
  --wharf-root DIR        benchmark the built Wharf in another checkout (default: this one)
  --wharf-node-args="A B" Node.js flags for Wharf, e.g. --wharf-node-args="--cpu-prof --cpu-prof-dir=/tmp/prof"
  --results-dir DIR       where the JSON goes (default bench/results)
  --skip-limits           skip openssl and nginx measurements
  --only a,b              workload groups: ${WORKLOAD_GROUPS.join(', ')}
                          (s3 runs only when named: it starts a Ceph RADOS Gateway;
                          scale too: 1 and 3 replicas on RGW + PostgreSQL behind HAProxy)
`;

/** Parses the command line; exits with usage on `--help` or a bad flag. */
export function parseOptions(argv: string[], defaultResultsDir: string): BenchOptions {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      strict: true,
      options: {
        help: { type: 'boolean' },
        quick: { type: 'boolean' },
        repetitions: { type: 'string' },
        'blob-mib': { type: 'string' },
        'chunk-mib': { type: 'string' },
        'load-seconds': { type: 'string' },
        connections: { type: 'string' },
        'tag-batch': { type: 'string' },
        'tag-list': { type: 'string' },
        'tag-list-large': { type: 'string' },
        'repo-batch': { type: 'string' },
        'catalog-small': { type: 'string' },
        'catalog-large': { type: 'string' },
        'catalog-huge': { type: 'string' },
        parallelism: { type: 'string' },
        'push-clients': { type: 'string' },
        'push-client-mib': { type: 'string' },
        'page-size': { type: 'string' },
        'soak-seconds': { type: 'string' },
        'soak-warmup-seconds': { type: 'string' },
        'soak-idle-seconds': { type: 'string' },
        'soak-clients': { type: 'string' },
        'soak-servers': { type: 'string' },
        'gc-repos': { type: 'string' },
        'gc-blobs-per-repo': { type: 'string' },
        'gc-get-clients': { type: 'string' },
        'search-repos': { type: 'string' },
        's3-blob-mib': { type: 'string' },
        'wharf-workers': { type: 'string' },
        'wharf-root': { type: 'string' },
        'wharf-node-args': { type: 'string' },
        'results-dir': { type: 'string' },
        'skip-limits': { type: 'boolean' },
        only: { type: 'string' },
      },
    });
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n\n${USAGE}`);
    process.exit(2);
  }
  const v = parsed.values;
  if (v.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const base = v.quick ? QUICK : FULL;
  const int = (name: string, raw: string | undefined, fallback: number, min: number): number => {
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!Number.isSafeInteger(n) || n < min) {
      process.stderr.write(`--${name} must be an integer of at least ${min}\n`);
      process.exit(2);
    }
    return n;
  };
  const only = (v.only ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  for (const group of only) {
    if (!(WORKLOAD_GROUPS as readonly string[]).includes(group)) {
      process.stderr.write(`--only: unknown group "${group}" (known: ${WORKLOAD_GROUPS.join(', ')})\n`);
      process.exit(2);
    }
  }
  const soakServers = (v['soak-servers'] ?? 'wharf,distribution').split(',').map((s) => s.trim()).filter(Boolean);
  for (const server of soakServers) {
    if (server !== 'wharf' && server !== 'distribution') {
      process.stderr.write(`--soak-servers: unknown server "${server}" (known: wharf, distribution)\n`);
      process.exit(2);
    }
  }
  const options: BenchOptions = {
    quick: v.quick === true,
    repetitions: int('repetitions', v.repetitions, base.repetitions, 1),
    blobMiB: int('blob-mib', v['blob-mib'], base.blobMiB, 1),
    chunkMiB: int('chunk-mib', v['chunk-mib'], base.chunkMiB, 1),
    loadSeconds: int('load-seconds', v['load-seconds'], base.loadSeconds, 1),
    connections: int('connections', v.connections, base.connections, 1),
    tagBatch: int('tag-batch', v['tag-batch'], base.tagBatch, 1),
    tagList: int('tag-list', v['tag-list'], base.tagList, 1),
    tagListLarge: int('tag-list-large', v['tag-list-large'], base.tagListLarge, 0),
    repoBatch: int('repo-batch', v['repo-batch'], base.repoBatch, 1),
    catalogSmall: int('catalog-small', v['catalog-small'], base.catalogSmall, 1),
    catalogLarge: int('catalog-large', v['catalog-large'], base.catalogLarge, 1),
    catalogHuge: int('catalog-huge', v['catalog-huge'], base.catalogHuge, 0),
    parallelism: int('parallelism', v.parallelism, base.parallelism, 1),
    pushClients: int('push-clients', v['push-clients'], base.pushClients, 1),
    pushClientMiB: int('push-client-mib', v['push-client-mib'], base.pushClientMiB, 1),
    pageSize: int('page-size', v['page-size'], base.pageSize, 1),
    soakClients: int('soak-clients', v['soak-clients'], base.soakClients, 1),
    soakWarmupSeconds: int('soak-warmup-seconds', v['soak-warmup-seconds'], base.soakWarmupSeconds, 1),
    soakSeconds: int('soak-seconds', v['soak-seconds'], base.soakSeconds, 1),
    soakIdleSeconds: int('soak-idle-seconds', v['soak-idle-seconds'], base.soakIdleSeconds, 1),
    gcRepos: int('gc-repos', v['gc-repos'], base.gcRepos, 1),
    gcBlobsPerRepo: int('gc-blobs-per-repo', v['gc-blobs-per-repo'], base.gcBlobsPerRepo, 2),
    gcGetClients: int('gc-get-clients', v['gc-get-clients'], base.gcGetClients, 0),
    searchRepos: int('search-repos', v['search-repos'], base.searchRepos, 1),
    s3BlobMiB: int('s3-blob-mib', v['s3-blob-mib'], base.s3BlobMiB, 1),
    soakServers: soakServers as BenchOptions['soakServers'],
    wharfWorkers: v['wharf-workers'] === undefined ? undefined : int('wharf-workers', v['wharf-workers'], 0, 0),
    wharfRoot: v['wharf-root'],
    wharfNodeArgs: (v['wharf-node-args'] ?? '').split(' ').filter(Boolean),
    resultsDir: v['results-dir'] ?? defaultResultsDir,
    skipLimits: v['skip-limits'] === true,
    only,
  };
  if (options.chunkMiB > options.blobMiB) options.chunkMiB = options.blobMiB;
  return options;
}
