import { createRequire } from 'node:module';

/** cmerge's own version, from package.json (recorded in manifests and state). */
export const cmergeVersion: string = (createRequire(import.meta.url)('../../../package.json') as { version: string }).version;
