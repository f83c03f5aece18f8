export type {
  CommandNotifierConfig,
  HttpNotifierConfig,
  HttpStep,
  NotifierConfig,
  NotifierOutcome,
  NotifyContext,
  SseNotifierConfig,
  VerifyConfig,
  VerifyExpect,
} from './types.js';
export { runNotifiers, type RunNotifiersOptions } from './run.js';
export { SseHub, SseHubs, type SseHubOptions, type VersionEvent } from './sse-hub.js';
export { renderTemplate, renderUrl } from './template.js';
