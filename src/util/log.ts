import winston from 'winston';

/**
 * One logger for the process. JSON lines when not on a terminal (journald keeps them as structured
 * records), readable colored lines on a terminal. The daemon logs to stdout; one-shot commands log
 * to stderr so that their stdout (e.g. `--json`) stays machine-readable. CMERGE_LOG_LEVEL and
 * CMERGE_LOG_FORMAT=json|text override.
 */
export interface LogOptions {
  stream?: 'stdout' | 'stderr';
  level?: string;
}

function build(opts: LogOptions): winston.transport[] {
  const stream = opts.stream ?? 'stdout';
  const isTty = (stream === 'stdout' ? process.stdout : process.stderr).isTTY === true;
  const text = process.env.CMERGE_LOG_FORMAT ? process.env.CMERGE_LOG_FORMAT === 'text' : isTty;
  const format = text
    ? winston.format.combine(
        winston.format.timestamp({ format: 'HH:mm:ss' }),
        ...(isTty ? [winston.format.colorize()] : []),
        winston.format.printf(({ timestamp, level, message, ...rest }) => {
          const extra = Object.keys(rest).length ? ' ' + JSON.stringify(rest) : '';
          return `${timestamp} ${level} ${message}${extra}`;
        }),
      )
    : winston.format.combine(winston.format.timestamp(), winston.format.json());
  const levels = Object.keys(winston.config.npm.levels);
  return [new winston.transports.Console({ format, stderrLevels: stream === 'stderr' ? levels : [] })];
}

// A closed log reader (journald restarting, a pipe closed) must not kill the daemon: drop the lines.
for (const output of [process.stdout, process.stderr]) output.on('error', () => {});

export const log = winston.createLogger({ level: process.env.CMERGE_LOG_LEVEL ?? 'info', transports: build({}) });

export function configureLog(opts: LogOptions): void {
  log.clear();
  for (const transport of build(opts)) log.add(transport);
  log.level = process.env.CMERGE_LOG_LEVEL ?? opts.level ?? 'info';
}
