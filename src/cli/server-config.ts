import { CONFIGURATION_PATH_VARIABLE, ConfigError, loadConfig, type ConfigFlags, type LoadedConfig } from '../config/config.js';

/**
 * The configuration of `wharf serve` and the maintenance commands that work on the same storage:
 * a config file (the argument, else REGISTRY_CONFIGURATION_PATH), REGISTRY_* variables and flags.
 * An invalid configuration ends the process with status 2 and a message naming the key.
 */
export function loadServerConfig(file: string | undefined, flags: ConfigFlags): LoadedConfig {
  try {
    const path = file ?? process.env[CONFIGURATION_PATH_VARIABLE];
    return loadConfig({ ...(path ? { file: path } : {}), env: process.env, flags });
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`wharf: invalid configuration: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
}
