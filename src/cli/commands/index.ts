import type { Command } from 'commander';
import { registerCopy } from './copy.js';
import { registerHistory } from './history.js';
import { registerImages } from './images.js';
import { registerInspect } from './inspect.js';
import { registerLogin } from './login.js';
import { registerManifest } from './manifest.js';
import { registerPin } from './pin.js';
import { registerPull } from './pull.js';
import { registerPush } from './push.js';
import { registerRegistryCommands } from './registry.js';
import { registerSearch } from './search.js';
import { registerTag } from './tag.js';

/** Every client command, in the order `wharf --help` lists them. */
export function registerClientCommands(program: Command): void {
  registerLogin(program);
  registerSearch(program);
  registerPull(program);
  registerPush(program);
  registerTag(program);
  registerCopy(program);
  registerHistory(program);
  registerInspect(program);
  registerManifest(program);
  registerImages(program);
  registerRegistryCommands(program);
  registerPin(program);
}
