import * as z from 'zod';

/**
 * The ASFF requirements keyguard's findings must meet, written from the Security Hub documentation (API reference
 * AwsSecurityFinding, Resource, Recommendation, FindingProviderFields; User Guide "Required top-level ASFF
 * attributes"; the BatchImportFindings limits): required fields, their types, lengths and allowed values. Strict
 * objects: a field keyguard sends that is not described here fails the check, so a new field has to be looked up.
 */

const nonEmpty = (max: number) => z.string().min(1).max(max).regex(/\S/);
/** Security Hub's timestamp formats (API reference, Timestamps): RFC 3339 with Z or an offset, up to 9 fraction digits. */
const timestamp = z.string().regex(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:?\d{2})$/);
const TYPE_NAMESPACES = [
  'Software and Configuration Checks',
  'TTPs',
  'Effects',
  'Unusual Behaviors',
  'Sensitive Data Identifications',
];
const findingType = z.string().refine((t) => {
  const parts = t.split('/');
  return (
    parts.length >= 2 &&
    parts.length <= 3 &&
    TYPE_NAMESPACES.includes(parts[0] ?? '') &&
    parts.every((p) => p.length > 0)
  );
}, 'namespace/category[/classifier] with a documented namespace');
const severity = z.strictObject({
  Label: z.enum(['INFORMATIONAL', 'LOW', 'MEDIUM', 'HIGH', 'CRITICAL']),
  Original: nonEmpty(1024).optional(),
});
const stringMap = (entries: number, key: number, value: number) =>
  z
    .record(z.string().min(1).max(key), z.string().max(value))
    .refine((m) => Object.keys(m).length <= entries, `at most ${entries} entries`);

const resource = z.strictObject({
  Type: nonEmpty(256),
  Id: nonEmpty(512),
  Partition: z.enum(['aws', 'aws-cn', 'aws-us-gov']).optional(),
  Region: z.string().min(1).max(16).optional(),
  Details: z
    .strictObject({
      AwsIamUser: z.strictObject({ UserName: nonEmpty(128) }).optional(),
      AwsIamAccessKey: z
        .strictObject({
          AccessKeyId: nonEmpty(128),
          AccountId: z.string().length(12),
          PrincipalName: nonEmpty(1024),
        })
        .optional(),
      Other: stringMap(50, 128, 1024).optional(),
    })
    .optional(),
});

export const AsffFindingSchema = z.strictObject({
  SchemaVersion: z.literal('2018-10-08'),
  Id: nonEmpty(512),
  ProductArn: z
    .string()
    .min(12)
    .max(2048)
    .regex(/^arn:aws(-cn|-us-gov)?:securityhub:[a-z0-9-]+:\d{12}:product\/\d{12}\/default$/),
  GeneratorId: nonEmpty(512),
  AwsAccountId: z.string().regex(/^\d{12}$/),
  Types: z.array(findingType).min(1).max(50),
  CreatedAt: timestamp,
  UpdatedAt: timestamp,
  FirstObservedAt: timestamp.optional(),
  LastObservedAt: timestamp.optional(),
  Severity: severity,
  FindingProviderFields: z
    .strictObject({ Severity: severity.optional(), Types: z.array(findingType).max(50).optional() })
    .optional(),
  Title: nonEmpty(256),
  Description: nonEmpty(1024),
  Remediation: z
    .strictObject({
      Recommendation: z.strictObject({
        Text: z.string().min(1).max(512).optional(),
        Url: z.string().optional(),
      }),
    })
    .optional(),
  ProductFields: stringMap(50, 128, 2048).optional(),
  Resources: z.array(resource).min(1).max(32),
  Compliance: z.strictObject({ Status: z.enum(['PASSED', 'WARNING', 'FAILED', 'NOT_AVAILABLE']) }).optional(),
  RecordState: z.enum(['ACTIVE', 'ARCHIVED']).optional(),
  Workflow: z.strictObject({ Status: z.enum(['NEW', 'NOTIFIED', 'RESOLVED', 'SUPPRESSED']) }).optional(),
});

/** Security Hub refuses a finding over 240 KB. */
export const ASFF_FINDING_MAX_BYTES = 240 * 1024;
