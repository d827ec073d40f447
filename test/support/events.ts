import { randomUUID } from 'node:crypto';

/**
 * Real-shaped IAM CloudTrail records and their EventBridge envelopes, as delivered on the us-east-1
 * default bus ("AWS API Call via CloudTrail"). Member names are lower camel case, as CloudTrail writes them.
 */

export const ACCOUNT = '111122223333';
export const ADMIN_ARN = `arn:aws:iam::${ACCOUNT}:user/alice-admin`;

export interface RecordOverrides {
  eventName: string;
  requestParameters?: Record<string, unknown> | null;
  responseElements?: Record<string, unknown> | null;
  eventTime?: string;
  eventID?: string;
  errorCode?: string;
  userIdentity?: Record<string, unknown>;
  eventSource?: string;
}

export function cloudTrailRecord(o: RecordOverrides): Record<string, unknown> {
  return {
    eventVersion: '1.10',
    userIdentity: o.userIdentity ?? {
      type: 'IAMUser',
      principalId: 'AIDAEXAMPLEPRINCIPAL1',
      arn: ADMIN_ARN,
      accountId: ACCOUNT,
      accessKeyId: 'AKIAEXAMPLEACCESSKEY',
      userName: 'alice-admin',
    },
    eventTime: o.eventTime ?? '2026-11-20T09:31:02Z',
    eventSource: o.eventSource ?? 'iam.amazonaws.com',
    eventName: o.eventName,
    awsRegion: 'us-east-1',
    sourceIPAddress: '203.0.113.10',
    userAgent: 'aws-cli/2.27.0 md/awscrt#0.26.1 ua/2.1 os/linux#6.1 md/arch#x86_64 lang/python#3.13.3',
    ...(o.errorCode
      ? { errorCode: o.errorCode, errorMessage: 'Cannot exceed quota for CredentialsPerUser: 2' }
      : {}),
    requestParameters: o.requestParameters ?? null,
    responseElements: o.responseElements ?? null,
    requestID: randomUUID(),
    eventID: o.eventID ?? randomUUID(),
    readOnly: false,
    eventType: 'AwsApiCall',
    managementEvent: true,
    recipientAccountId: ACCOUNT,
    eventCategory: 'Management',
    tlsDetails: {
      tlsVersion: 'TLSv1.3',
      cipherSuite: 'TLS_AES_128_GCM_SHA256',
      clientProvidedHostHeader: 'iam.amazonaws.com',
    },
  };
}

export function eventBridgeEvent(detail: Record<string, unknown>): Record<string, unknown> {
  return {
    version: '0',
    id: randomUUID(),
    'detail-type': 'AWS API Call via CloudTrail',
    source: 'aws.iam',
    account: ACCOUNT,
    time: detail.eventTime,
    region: 'us-east-1',
    resources: [],
    detail,
  };
}

export interface CreateOptions {
  userName: string;
  keyId: string;
  serviceName?: string;
  credentialAgeDays?: number;
  createDate?: string;
  expirationDate?: string;
  secret?: string;
  eventTime?: string;
  errorCode?: string;
}

export function createCredentialRecord(o: CreateOptions): Record<string, unknown> {
  const serviceName = o.serviceName ?? 'bedrock.amazonaws.com';
  return cloudTrailRecord({
    eventName: 'CreateServiceSpecificCredential',
    eventTime: o.eventTime,
    errorCode: o.errorCode,
    requestParameters: {
      userName: o.userName,
      serviceName,
      ...(o.credentialAgeDays !== undefined ? { credentialAgeDays: o.credentialAgeDays } : {}),
    },
    responseElements: o.errorCode
      ? null
      : {
          serviceSpecificCredential: {
            createDate: o.createDate ?? 'Nov 20, 2026, 9:31:02 AM',
            ...(o.expirationDate ? { expirationDate: o.expirationDate } : {}),
            serviceName,
            serviceCredentialAlias: `${o.userName}-at-${ACCOUNT}`,
            ...(o.secret ? { serviceCredentialSecret: o.secret } : {}),
            serviceSpecificCredentialId: o.keyId,
            userName: o.userName,
            status: 'Active',
          },
        },
  });
}

export function credentialChangeRecord(
  eventName:
    | 'UpdateServiceSpecificCredential'
    | 'ResetServiceSpecificCredential'
    | 'DeleteServiceSpecificCredential',
  userName: string,
  keyId: string,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return cloudTrailRecord({
    eventName,
    requestParameters: { userName, serviceSpecificCredentialId: keyId, ...extra },
  });
}

export function tagUserRecord(userName: string, tags: Record<string, string>): Record<string, unknown> {
  return cloudTrailRecord({
    eventName: 'TagUser',
    requestParameters: { userName, tags: Object.entries(tags).map(([key, value]) => ({ key, value })) },
  });
}

/** A minimal Lambda context: what Powertools idempotency reads. */
export function lambdaContext(): import('aws-lambda').Context {
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName: 'credential-event',
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:us-east-1:${ACCOUNT}:function:credential-event`,
    memoryLimitInMB: '512',
    awsRequestId: randomUUID(),
    logGroupName: '/aws/lambda/credential-event',
    logStreamName: '2026/11/20/[$LATEST]abcdef',
    getRemainingTimeInMillis: () => 55_000,
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
}
