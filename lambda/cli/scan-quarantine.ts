import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import {
  type PublisherOptions,
  type PublishResult,
  ScanReportPublisher,
} from '../adapters/scan-report-publisher';
import { buildScanReports, type ReportableFinding } from '../domain/scan-report';
import { visible } from '../shared/visible-text';
import { reportAwsFailure, tagAwsErrors } from './aws-errors';
import { type CliIO, EXIT_INPUT, problem } from './io';
import {
  type AwsFlags,
  type AwsTarget,
  awsTarget,
  clientConfig,
  DeployedStack,
  StackLookupError,
  stackValue,
} from './stack-outputs';

/**
 * `keyguard scan --quarantine [--bus ARN]` (issue 15): every distinct key found is reported to the deployed stack's
 * governance bus (lambda/domain/scan-report.ts: never the key), where the leak function decides it. The bus is found
 * before anything is scanned: --bus, else KEYGUARD_BUS, else the stack output GovernanceBusArn (--stack, --region,
 * --profile as every command that talks to the stack). Without one, the scan does not start.
 */

export interface QuarantineFlags extends AwsFlags {
  quarantine?: boolean;
  bus?: string;
}

export interface QuarantineDeps {
  /** The EventBridge client for the bus's region. @default a client with the run's profile and retry policy */
  eventBridge?: (target: AwsTarget, region: string) => EventBridgeClient;
  /** The deployed stack of the run. @default DeployedStack.of(flags, target, io) */
  stack?: (flags: AwsFlags, target: AwsTarget, io: CliIO) => DeployedStack;
  publisher?: PublisherOptions;
  env?: NodeJS.ProcessEnv;
}

const BUS_ARN =
  /^arn:aws[a-z-]*:events:([a-z]{2}(?:-[a-z]+)+-\d{1,2}):(\d{12}):event-bus\/[A-Za-z0-9._\-/]{1,256}$/;

/** A bus ready to take this run's reports. */
export interface Quarantine {
  busArn: string;
  /** Reports the findings (one event per key); returns the exit code to use (2 when some were not delivered). */
  send(
    findings: readonly ReportableFinding[],
    scan: { version: string; scannedAt: string },
  ): Promise<number | null>;
}

/** Finds the bus before the scan starts; undefined after a one-line error on stderr (exit 2). */
export async function openQuarantine(
  flags: QuarantineFlags,
  io: CliIO,
  deps: QuarantineDeps = {},
): Promise<Quarantine | undefined> {
  const env = deps.env ?? process.env;
  let target: AwsTarget;
  let busArn: string | undefined;
  try {
    target = awsTarget(flags, env);
    const explicit = flags.bus?.trim() || env.KEYGUARD_BUS?.trim();
    const stack = explicit ? undefined : (deps.stack ?? DeployedStack.of)(flags, target, io);
    busArn = await stackValue('governanceBus', flags.bus, env, stack, { flag: '--bus' });
    stack?.announce();
  } catch (err) {
    if (!(err instanceof StackLookupError)) throw err;
    problem(
      io,
      'scan',
      `--quarantine needs the deployed stack's governance bus, and none was found: ${err.message.replace(/\.+$/, '')}. ` +
        'Nothing was scanned.',
    );
    return undefined;
  }
  if (!busArn) {
    problem(io, 'scan', '--quarantine: no governance bus (pass --bus ARN). Nothing was scanned.');
    return undefined;
  }
  const arn = BUS_ARN.exec(busArn);
  if (!arn) {
    problem(
      io,
      'scan',
      `--bus: ${JSON.stringify(visible(busArn))} is not an EventBridge bus ARN ` +
        '(arn:aws:events:REGION:ACCOUNT:event-bus/NAME, the stack output GovernanceBusArn). Nothing was scanned.',
    );
    return undefined;
  }
  const region = arn[1] as string;
  const bus = busArn;
  const client = tagAwsErrors(
    (deps.eventBridge ?? ((t, r) => new EventBridgeClient(clientConfig(t, r))))(target, region),
  );
  return {
    busArn: bus,
    async send(findings, scan) {
      const reports = buildScanReports(findings, scan);
      if (reports.length === 0) {
        io.stderr.write(`keyguard scan: --quarantine: no key to report to ${visible(bus)}\n`);
        return null;
      }
      let result: PublishResult;
      try {
        result = await new ScanReportPublisher(client, bus, deps.publisher).publish(reports);
      } catch (err) {
        const code = await reportAwsFailure(io, err, {
          command: 'scan',
          service: 'EventBridge',
          operation: 'PutEvents',
          region,
          profile: target.profile,
          resource: `bus ${bus}`,
          deployRegion: region,
          permissions: `events:PutEvents on ${bus} with source keyguard.scan (the stack's ScanReporterPolicy)`,
        });
        io.stderr.write(
          `keyguard scan: --quarantine: ${reports.length} key${reports.length === 1 ? '' : 's'} NOT reported\n`,
        );
        if (code === null) throw err;
        return code;
      }
      const byFingerprint = new Map(reports.map((r) => [r.fingerprint, r]));
      for (const s of result.sent) {
        const r = byFingerprint.get(s.fingerprint);
        io.stderr.write(
          `keyguard scan: reported ${s.fingerprint} ${r?.redacted ?? ''} (${r?.locationCount ?? 0} ` +
            `location${r?.locationCount === 1 ? '' : 's'}) as event ${visible(s.eventId)}\n`,
        );
      }
      for (const u of result.undelivered) {
        io.stderr.write(
          `keyguard scan: NOT delivered ${u.fingerprint} ${byFingerprint.get(u.fingerprint)?.redacted ?? ''}: ` +
            `PutEvents rejected it (${visible(u.errorCode)}: ${visible(u.errorMessage)})\n`,
        );
      }
      io.stderr.write(
        `keyguard scan: --quarantine: ${result.sent.length} of ${reports.length} key${reports.length === 1 ? '' : 's'} ` +
          `reported to ${visible(bus)} in ${result.requests} PutEvents request${result.requests === 1 ? '' : 's'}` +
          (result.undelivered.length > 0
            ? `; ${result.undelivered.length} NOT delivered after retries: scan again with --quarantine`
            : '') +
          '\n',
      );
      return result.undelivered.length > 0 ? EXIT_INPUT : null;
    },
  };
}
