import type * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { SCAN_REPORT_SOURCE } from '../../lambda/domain/scan-report';

export interface ScanReporterPolicyProps {
  /** The governance bus scan reports are put on. */
  readonly bus: events.IEventBus;
}

/**
 * The managed policy `keyguard scan --quarantine` needs (stack output ScanReporterPolicyArn), attached to nothing: an
 * operator attaches it to a CI role (e.g. a GitHub OIDC role) or to whoever reports leaks. It allows one action,
 * events:PutEvents, on the governance bus only, and only for events whose source is `keyguard.scan` (the
 * `events:source` condition key of PutEvents, EventBridge User Guide "Using IAM policy conditions"): a holder cannot
 * put usage or credential events on the bus, nor put anything on another bus. What a holder CAN do is report a key
 * that was never found; the leak function never deactivates on a report alone (docs/operations.md).
 */
export class ScanReporterPolicy extends Construct {
  public readonly policy: iam.ManagedPolicy;

  constructor(scope: Construct, id: string, props: ScanReporterPolicyProps) {
    super(scope, id);
    this.policy = new iam.ManagedPolicy(this, 'Policy', {
      description:
        'Bedrock Key Guard: report leaked Bedrock API keys found by keyguard scan --quarantine (events:PutEvents on ' +
        `the governance bus, source ${SCAN_REPORT_SOURCE} only). Attach to a CI role.`,
      statements: [
        new iam.PolicyStatement({
          sid: 'PutScanReports',
          actions: ['events:PutEvents'],
          resources: [props.bus.eventBusArn],
          conditions: { StringEquals: { 'events:source': SCAN_REPORT_SOURCE } },
        }),
      ],
    });
  }
}
