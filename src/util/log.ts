import winston from 'winston';

/**
 * One logger for the process. JSON lines on stdout when not on a terminal (journald keeps them
 * as structured records), readable colored lines on a terminal. CMERGE_LOG_LEVEL overrides.
 */
const tty = process.stdout.isTTY === true && process.env.CMERGE_LOG_FORMAT !== 'json';

export const log = winston.createLogger({
  level: process.env.CMERGE_LOG_LEVEL ?? 'info',
  format: tty
    ? winston.format.combine(
        winston.format.timestamp({ format: 'HH:mm:ss' }),
        winston.format.colorize(),
        winston.format.printf(({ timestamp, level, message, ...rest }) => {
          const extra = Object.keys(rest).length ? ' ' + JSON.stringify(rest) : '';
          return `${timestamp} ${level} ${message}${extra}`;
        }),
      )
    : winston.format.combine(winston.format.timestamp(), winston.format.json()),
  transports: [new winston.transports.Console({ stderrLevels: [] })],
});
