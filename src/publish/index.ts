/** Publication: version repository, atomic publication, retention, recovery, notifiers. */
export {
  beginVersion,
  finishVersion,
  swapCurrent,
  assertPipelineName,
  VersionExistsError,
  type Staging,
  type FinishInput,
  type FinishCheckpoint,
  type PublishedVersion,
} from './repository.js';
export { recoverRepository, type RecoveryReport, type RecoverOptions, type BrokenVersion } from './recover.js';
export { verifyVersion, type VersionProblem, type VerifyOptions, type ProblemKind } from './verify.js';
export { applyRetention, type RetentionPolicy } from './retention.js';
export { discardVersionsAbove } from './discard.js';
export { readManifest, manifestProblems, type Manifest, type ManifestCheckpoint } from './manifest.js';
export { listVersions, readCurrent, versionDir, stagingDir, parseVersionName } from './layout.js';
export { copyBaseFiles, baseFilesToCopy, type BaseFile } from './base-files.js';
export { renderModelCard, type ModelCardOptions } from './model-card.js';
export { findHubId, findHubIds, type HubIds } from './hub-ids.js';
export { beginModelFolder, finishModelFolder, discardModelFolder, type ModelFolderStaging } from './model-folder.js';
export { sha256File } from '../util/hash.js';
export * from './notifiers/index.js';
